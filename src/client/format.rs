//! What `eventhub events` prints, and the times `--since`/`--until` take.
//!
//! `--format json` prints each event as the hub sent it, one per line;
//! the readable format is one compact line per event in `docker events`'
//! manner: the time, the channel (or Docker's type), the message (or
//! action), then the key fields. Times are parsed and printed here without
//! a date library: RFC 3339 in UTC is a few lines of civil-date arithmetic.
//!
//! Layer: client. Imports nothing of the crate; serde_json.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::civil::{civil_from_days, days_from_civil};

/// How events are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One readable line per event.
    Text,
    /// Each event's JSON exactly as received, one per line.
    Json,
}

/// Seconds since the Unix epoch now.
pub fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A `--since`/`--until` value as Docker takes it: Unix seconds
/// (`1700000000`, `1700000000.5`), an RFC 3339 time or date
/// (`2025-12-11T13:04:37Z`, `2025-12-11`), or a duration before now
/// (`10m`, `1h30m`, `90s`, `500ms`); Unix seconds out.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let whole = s.split_once('.').map_or(s, |(w, _)| w);
    let fraction_ok = s
        .split_once('.')
        .is_none_or(|(_, f)| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    if !whole.is_empty() && whole.bytes().all(|b| b.is_ascii_digit()) && fraction_ok {
        return whole.parse().map_err(|_| format!("{s:?} is out of range"));
    }
    if let Some(t) = rfc3339_seconds(s) {
        return Ok(t);
    }
    if let Some(ago) = duration_ms(s) {
        return Ok(now_s() - (ago / 1000) as i64);
    }
    Err(format!(
        "{s:?} is not a time: give Unix seconds (1700000000), RFC 3339 (2025-12-11T13:04:37Z) or a duration ago (10m, 1h30m)"
    ))
}

/// A Go-style duration (`1h30m`, `10m`, `45s`, `500ms`) in milliseconds.
fn duration_ms(s: &str) -> Option<u64> {
    let mut rest = s;
    let mut total = 0u64;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = match rest.as_bytes() {
            [b'm', b's', ..] => (1, 2),
            [b'h', ..] => (3_600_000, 1),
            [b'm', ..] => (60_000, 1),
            [b's', ..] => (1000, 1),
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
        rest = &rest[len..];
    }
    (!s.is_empty()).then_some(total)
}

/// `YYYY-MM-DD[THH:MM:SS[.frac](Z|±HH:MM)]` as Unix seconds (a date
/// alone is its midnight, UTC).
pub fn rfc3339_seconds(s: &str) -> Option<i64> {
    let num = |t: &str| -> Option<i64> {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse().ok())?
    };
    let (date, time) = match s.split_once(['T', 't', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut parts = date.splitn(3, '-');
    let (y, m, d) = (
        num(parts.next()?)?,
        num(parts.next()?)?,
        num(parts.next()?)?,
    );
    if date.len() != 10 || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    let Some(time) = time else {
        return Some(days * 86_400);
    };
    let (clock, offset) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else {
        let i = time.rfind(['+', '-'])?;
        let (h, mi) = time[i + 1..].split_once(':')?;
        let sign = if time.as_bytes()[i] == b'-' { -1 } else { 1 };
        (&time[..i], sign * (num(h)? * 3600 + num(mi)? * 60))
    };
    let clock = clock.split_once('.').map_or(clock, |(c, f)| {
        if f.bytes().all(|b| b.is_ascii_digit()) {
            c
        } else {
            ""
        }
    });
    let mut hms = clock.splitn(3, ':');
    let (h, mi, sec) = (num(hms.next()?)?, num(hms.next()?)?, num(hms.next()?)?);
    if clock.len() != 8 || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    Some(days * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// Nanoseconds since the epoch as RFC 3339 in UTC, to the nanosecond
/// (as `docker events` prints them).
pub fn rfc3339_nanos(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:09}Z",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// A message's JSON as received, on one line: a producer's body is kept
/// verbatim by the hub and may hold line breaks, which outside strings
/// (the only place JSON allows them raw) are whitespace.
pub fn json_line(raw: &str) -> Cow<'_, str> {
    if raw.contains(['\n', '\r']) {
        Cow::Owned(raw.replace(['\n', '\r'], " "))
    } else {
        Cow::Borrowed(raw)
    }
}

/// A Docker-shaped container event's actor: `ID (image=.., name=..,
/// label=..)`, attributes sorted, as `docker events` prints them.
fn docker_actor(v: &Value, out: &mut String) {
    out.push_str(v["Actor"]["ID"].as_str().unwrap_or("-"));
    if let Some(attrs) = v["Actor"]["Attributes"].as_object() {
        let mut pairs: Vec<String> = attrs
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().map_or(v.to_string(), str::to_string)))
            .collect();
        pairs.sort();
        let _ = write!(out, " ({})", pairs.join(", "));
    }
}

/// A Docker-shaped event's time: `timeNano`, else `time` in seconds.
fn docker_nanos(v: &Value) -> Option<i64> {
    let n = &v["timeNano"];
    n.as_i64()
        .or_else(|| n.as_f64().map(|f| f as i64))
        .or_else(|| {
            let t = &v["time"];
            t.as_i64()
                .map(|s| s * 1_000_000_000)
                .or_else(|| t.as_f64().map(|f| (f * 1e9) as i64))
        })
}

/// A frame of `/events/ws`, readable.
pub fn docker_line(v: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let mut out = docker_nanos(v).map_or_else(|| "-".to_string(), rfc3339_nanos);
    let _ = write!(out, " {} {} ", s(&v["Type"]), s(&v["Action"]));
    docker_actor(v, &mut out);
    out
}

/// An Events Hub event, readable: `TIME CHANNEL MESSAGE seq=N BODY`, the
/// body compact (a container event's as its action, then its actor).
pub fn hub_line(v: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let mut out = format!("{} {}", s(&v["timestamp"]), s(&v["event_type"]));
    let body = &v["body"];
    let docker = body.get("Actor").is_some() && body.get("Action").is_some();
    let message = match v["message"].as_str().filter(|m| !m.is_empty()) {
        Some(m) => m,
        None if docker => body["Action"].as_str().unwrap_or("-"),
        None => "-",
    };
    let _ = write!(out, " {message}");
    if let Some(seq) = v["seq"].as_u64() {
        let _ = write!(out, " seq={seq}");
    }
    if docker {
        out.push(' ');
        docker_actor(body, &mut out);
    } else if !body.is_null() && body.as_object().is_none_or(|o| !o.is_empty()) {
        let _ = write!(out, " {body}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_docker_takes_them() {
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000));
        assert_eq!(parse_time("1700000000.75"), Ok(1_700_000_000));
        assert_eq!(parse_time("2025-12-11T13:04:37Z"), Ok(1_765_458_277));
        assert_eq!(parse_time("2025-12-11T13:04:37.484843Z"), Ok(1_765_458_277));
        assert_eq!(parse_time("2025-12-11T15:04:37+02:00"), Ok(1_765_458_277));
        assert_eq!(parse_time("2025-12-11"), Ok(1_765_411_200));
        let ago = now_s() - parse_time("1h30m").unwrap();
        assert!((5399..=5401).contains(&ago), "{ago}");
        assert!((now_s() - parse_time("10s").unwrap()) <= 11);
        for bad in ["", "soon", "10x", "2025-13-01", "12:00", "1.", "m"] {
            assert!(parse_time(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn nanosecond_times_are_rfc_3339() {
        assert_eq!(
            rfc3339_nanos(1_476_375_852_191_659_300),
            "2016-10-13T16:24:12.191659300Z"
        );
    }

    #[test]
    fn readable_lines_hold_the_key_fields() {
        let hub: Value = serde_json::from_str(
            r#"{"id":"ab","event_type":"pdfm","timestamp":"2025-12-11T13:04:37.484843Z","message":"VM_STATE_CHANGED","body":{"vm_id":"x"},"seq":7}"#,
        )
        .unwrap();
        assert_eq!(
            hub_line(&hub),
            r#"2025-12-11T13:04:37.484843Z pdfm VM_STATE_CHANGED seq=7 {"vm_id":"x"}"#
        );
        let docker: Value = serde_json::from_str(
            r#"{"status":"start","id":"c1","from":"busybox","Type":"container","Action":"start","Actor":{"ID":"c1","Attributes":{"name":"web","image":"busybox"}},"time":1476375852,"timeNano":1476375852191659300}"#,
        )
        .unwrap();
        assert_eq!(
            docker_line(&docker),
            "2016-10-13T16:24:12.191659300Z container start c1 (image=busybox, name=web)"
        );
        let wrapped = serde_json::json!({"timestamp":"T","event_type":"container","message":"","body":docker,"seq":3});
        assert_eq!(
            hub_line(&wrapped),
            "T container start seq=3 c1 (image=busybox, name=web)"
        );
    }

    #[test]
    fn json_lines_stay_one_line() {
        assert_eq!(json_line("{\"a\":\n 1}"), "{\"a\":  1}");
        assert!(matches!(json_line("{}"), Cow::Borrowed(_)));
    }
}
