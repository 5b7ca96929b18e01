//! Events as they travel: serialized once, at ingest, into a complete
//! WebSocket frame.
//!
//! An event's JSON is built in two parts outside any lock ([`Prepared`]:
//! everything but the sequence number), and finished under the sequencer's
//! lock by writing the frame header, the prepared bytes and the `seq`
//! digits into one buffer ([`Prepared::finish`]). The result, an
//! [`EventFrame`], is what every core fans out: subscribers share its
//! `Bytes`, nobody serializes it again.
//!
//! Messages for one client only (the confirmation, pongs, replies to
//! in-band requests) are built by [`reply`]; they carry no `seq`.
//!
//! Layer: hub. Imports the hub's [`channels`](super::channels) ids, the
//! Docker event model and the protocol crate's frames and JSON escaping.

use std::fmt::Write as _;
use std::ops::Range;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};

use super::channels::{ChannelId, CONTAINER};
use super::docker::event::{ContainerEvent, ContainerEventError, DockerKeys};
use crate::proto::json::push_string as push_json_string;
use crate::proto::{HeaderBuf, Opcode};

/// A sequenced event, ready to send.
#[derive(Debug, Clone)]
pub struct EventFrame {
    pub seq: u64,
    pub channel: ChannelId,
    /// The complete WebSocket text frame of the event's envelope.
    pub frame: Bytes,
    /// The same, permessage-deflate compressed: made once, by the first
    /// core that has a subscriber wanting it (none: it would not shrink,
    /// or is below `compression.min_bytes`), shared by the ring and every
    /// core.
    pub deflated: Arc<OnceLock<Option<Bytes>>>,
    /// For a container event: its Docker-shaped frame and filter keys.
    pub docker: Option<Arc<DockerFrame>>,
}

/// A container event as `/events/ws` sends it.
#[derive(Debug)]
pub struct DockerFrame {
    /// The complete text frame of the Docker-shaped JSON.
    pub frame: Bytes,
    /// Its compressed frame, made once as [`EventFrame::deflated`] is.
    pub deflated: OnceLock<Option<Bytes>>,
    pub keys: DockerKeys,
}

/// What follows the body in a prepared envelope; the digits follow it.
const SEQ_KEY: &str = ",\"seq\":";

/// Why a record read from a log is not an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("not UTF-8")]
    NotUtf8,
    #[error("not JSON: {0}")]
    Json(String),
    #[error("its id is not 64 lowercase hex characters")]
    BadId,
    #[error("its event_type {0:?} is not the channel of its subject")]
    WrongChannel(String),
    #[error("not an envelope as the hub writes it (id, event_type, timestamp, message, body)")]
    NotAnEnvelope,
    #[error("container event body: {0}")]
    Container(ContainerEventError),
}

/// The members of a record the hub reads back.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordIn<'a> {
    #[serde(borrow)]
    id: &'a str,
    #[serde(borrow)]
    event_type: &'a str,
    #[serde(rename = "timestamp")]
    _timestamp: serde::de::IgnoredAny,
    #[serde(rename = "message")]
    _message: serde::de::IgnoredAny,
    #[serde(borrow)]
    body: &'a serde_json::value::RawValue,
}

/// An event serialized up to its sequence number.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub channel: ChannelId,
    /// 64 lowercase hex characters.
    pub id: String,
    /// `{"id":...,"body":...,"seq":` — the digits and `}` follow.
    json_head: String,
    /// Where the body lies in `json_head`.
    body: Range<usize>,
    docker: Option<Arc<DockerFrame>>,
}

impl Prepared {
    /// Builds the envelope of an event on `channel` (named `channel_name`)
    /// with `message` and `body` (raw JSON, already validated), and a new
    /// random id.
    pub fn new(channel: ChannelId, channel_name: &str, message: &str, body: &str) -> Prepared {
        Prepared::with_id(event_id(), channel, channel_name, message, body)
    }

    /// [`Prepared::new`] with the id given (64 lowercase hex characters).
    pub fn with_id(
        id: String,
        channel: ChannelId,
        channel_name: &str,
        message: &str,
        body: &str,
    ) -> Prepared {
        let mut s = String::with_capacity(160 + message.len() + body.len());
        let _ = write!(
            s,
            "{{\"id\":\"{id}\",\"event_type\":\"{channel_name}\",\"timestamp\":\""
        );
        push_timestamp(&mut s, SystemTime::now());
        s.push_str("\",\"message\":");
        push_json_string(&mut s, message);
        s.push_str(",\"body\":");
        let start = s.len();
        s.push_str(body);
        let body = start..s.len();
        s.push_str(SEQ_KEY);
        Prepared {
            channel,
            id,
            json_head: s,
            body,
            docker: None,
        }
    }

    /// Adds the Docker-shaped frame of a container event, whose Docker
    /// JSON is this event's body (as ingest and the engine source make
    /// it): the frame is made from the body's bytes, not serialized again.
    pub fn with_docker(mut self, event: &ContainerEvent) -> Prepared {
        let json = &self.json_head[self.body.clone()];
        debug_assert_eq!(json, event.to_json(), "the body is the Docker JSON");
        self.docker = Some(Arc::new(DockerFrame {
            frame: crate::proto::text_frame(json),
            deflated: OnceLock::new(),
            keys: event.keys(),
        }));
        self
    }

    /// The envelope without `seq`, as an external log stores it: the
    /// prepared bytes closed with `}`.
    pub fn record(&self) -> Bytes {
        let head = &self.json_head[..self.json_head.len() - SEQ_KEY.len()];
        let mut buf = BytesMut::with_capacity(head.len() + 1);
        buf.put_slice(head.as_bytes());
        buf.put_u8(b'}');
        buf.freeze()
    }

    /// Takes back what [`Prepared::record`] made (read from a log, on
    /// `channel`): checked to be an envelope of that channel, and for a
    /// container event its body to be Docker's shape (for the Docker frame
    /// and filter keys).
    pub fn from_record(
        channel: ChannelId,
        channel_name: &str,
        record: &[u8],
    ) -> Result<Prepared, RecordError> {
        let text = std::str::from_utf8(record).map_err(|_| RecordError::NotUtf8)?;
        let parsed: RecordIn<'_> =
            serde_json::from_str(text).map_err(|e| RecordError::Json(e.to_string()))?;
        let id_ok = parsed.id.len() == 64
            && parsed
                .id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !id_ok {
            return Err(RecordError::BadId);
        }
        if parsed.event_type != channel_name {
            return Err(RecordError::WrongChannel(parsed.event_type.to_string()));
        }
        let body = parsed.body.get();
        let start = body.as_ptr() as usize - text.as_ptr() as usize;
        let expected = format!(
            "{{\"id\":\"{}\",\"event_type\":\"{channel_name}\",",
            parsed.id
        );
        if !text.starts_with(&expected) || !text.ends_with(&format!("{body}}}")) {
            return Err(RecordError::NotAnEnvelope);
        }
        let mut json_head = String::with_capacity(text.len() + SEQ_KEY.len());
        json_head.push_str(&text[..text.len() - 1]);
        json_head.push_str(SEQ_KEY);
        let prepared = Prepared {
            channel,
            id: parsed.id.to_string(),
            json_head,
            body: start..start + body.len(),
            docker: None,
        };
        if channel != CONTAINER {
            return Ok(prepared);
        }
        // The Docker frame is the body's bytes, as the publishing node made
        // them; the filter keys come from parsing them.
        let event = ContainerEvent::from_json(body).map_err(RecordError::Container)?;
        Ok(Prepared {
            docker: Some(Arc::new(DockerFrame {
                frame: crate::proto::text_frame(body),
                deflated: OnceLock::new(),
                keys: event.keys(),
            })),
            ..prepared
        })
    }

    /// Appends the sequence number and makes the one frame every
    /// subscriber will share.
    pub fn finish(&self, seq: u64) -> EventFrame {
        let mut digits = itoa_buf(seq);
        let digits = digits.as_str();
        let len = self.json_head.len() + digits.len() + 1;
        let header = HeaderBuf::new(true, Opcode::Text, len as u64, None);
        let mut buf = BytesMut::with_capacity(header.as_slice().len() + len);
        buf.put_slice(header.as_slice());
        buf.put_slice(self.json_head.as_bytes());
        buf.put_slice(digits.as_bytes());
        buf.put_u8(b'}');
        EventFrame {
            seq,
            channel: self.channel,
            frame: buf.freeze(),
            deflated: Arc::new(OnceLock::new()),
            docker: self.docker.clone(),
        }
    }
}

/// Decimal digits of a u64 without allocating.
struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    fn as_str(&mut self) -> &str {
        std::str::from_utf8(&self.buf[self.start..]).expect("ASCII digits")
    }
}

fn itoa_buf(mut n: u64) -> Digits {
    let mut buf = [0u8; 20];
    let mut i = 20;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    Digits { buf, start: i }
}

/// A new event id: 64 lowercase hex characters (256 random bits).
pub fn event_id() -> String {
    let mut s = String::with_capacity(64);
    for _ in 0..4 {
        let _ = write!(s, "{:016x}", fastrand::u64(..));
    }
    s
}

/// Appends `t` as RFC 3339 UTC with microseconds, e.g.
/// `2025-12-11T13:04:37.484843Z`.
pub fn push_timestamp(out: &mut String, t: SystemTime) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_micros()
    );
}

/// The current time in the events' format.
pub fn timestamp_now() -> String {
    let mut s = String::with_capacity(27);
    push_timestamp(&mut s, SystemTime::now());
    s
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A message for one client: `{"id","event_type","timestamp","message",
/// ...extra}` where `extra` is a list of `"key":value` JSON members.
pub fn reply(channel_name: &str, message: &str, extra: &str) -> Bytes {
    let mut s = String::with_capacity(160 + extra.len());
    let _ = write!(
        s,
        "{{\"id\":\"{}\",\"event_type\":\"{channel_name}\",\"timestamp\":\"",
        event_id()
    );
    push_timestamp(&mut s, SystemTime::now());
    s.push_str("\",\"message\":");
    push_json_string(&mut s, message);
    if !extra.is_empty() {
        s.push(',');
        s.push_str(extra);
    }
    s.push('}');
    crate::proto::text_frame(&s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamp_is_rfc3339_utc_with_microseconds() {
        let t = UNIX_EPOCH + Duration::from_micros(1_765_458_277_484_843);
        let mut s = String::new();
        push_timestamp(&mut s, t);
        assert_eq!(s, "2025-12-11T13:04:37.484843Z");
        s.clear();
        push_timestamp(&mut s, UNIX_EPOCH + Duration::from_secs(951_782_400));
        assert_eq!(s, "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn ids_are_64_lowercase_hex() {
        let id = event_id();
        assert_eq!(id.len(), 64);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_ne!(id, event_id());
    }

    #[test]
    fn finished_event_is_one_text_frame_of_valid_json_with_its_seq() {
        let p = Prepared::new(1, "pdfm", "VM_STATE_CHANGED", r#"{"vm_id":"x"}"#);
        let ev = p.finish(1234567);
        let header = crate::proto::FrameHeader::parse(&ev.frame)
            .unwrap()
            .unwrap();
        assert_eq!(header.opcode, Opcode::Text);
        let json: serde_json::Value =
            serde_json::from_slice(&ev.frame[header.header_len..]).unwrap();
        assert_eq!(json["seq"], 1234567);
        assert_eq!(json["event_type"], "pdfm");
        assert_eq!(json["message"], "VM_STATE_CHANGED");
        assert_eq!(json["body"]["vm_id"], "x");
        assert_eq!(json["id"].as_str().unwrap(), p.id);
        assert_eq!(itoa_buf(0).as_str(), "0");
        assert_eq!(itoa_buf(u64::MAX).as_str(), "18446744073709551615");
    }

    #[test]
    fn a_record_read_back_makes_the_same_frames_as_the_event_it_came_from() {
        let p = Prepared::new(1, "pdfm", "m \"q\"", r#"{"a":[1,{"b":null}]}"#);
        let record = p.record();
        let json: serde_json::Value = serde_json::from_slice(&record).unwrap();
        assert_eq!(json["id"].as_str().unwrap(), p.id);
        assert!(json.get("seq").is_none(), "no seq in a record");
        let back = Prepared::from_record(1, "pdfm", &record).unwrap();
        assert_eq!(back.finish(42).frame, p.finish(42).frame);
        let body = r#"{"id":"c1","Type":"container","Action":"stop","Actor":{"ID":"c1","Attributes":{"name":"web","image":"busybox","exitCode":"3","com.example/ü":"x"}},"time":1700000000,"timeNano":1700000000123456789}"#;
        let ev = ContainerEvent::from_json(body).unwrap();
        let p = Prepared::new(CONTAINER, "container", "stop", &ev.to_json()).with_docker(&ev);
        let back = Prepared::from_record(CONTAINER, "container", &p.record()).unwrap();
        let (a, b) = (p.finish(7), back.finish(7));
        assert_eq!(a.frame, b.frame);
        let (da, db) = (a.docker.unwrap(), b.docker.unwrap());
        assert_eq!(da.frame, db.frame);
        assert_eq!(format!("{:?}", da.keys), format!("{:?}", db.keys));
    }

    #[test]
    fn a_record_that_is_not_an_envelope_of_its_channel_is_refused() {
        let p = Prepared::new(1, "pdfm", "m", "{}");
        let record = p.record();
        assert_eq!(
            Prepared::from_record(2, "orchestrator", &record).unwrap_err(),
            RecordError::WrongChannel("pdfm".into())
        );
        let err = |r: &[u8]| Prepared::from_record(1, "pdfm", r).unwrap_err();
        assert!(matches!(err(b"{nope"), RecordError::Json(_)));
        assert_eq!(err(&[0xff]), RecordError::NotUtf8);
        let short_id = r#"{"id":"ab","event_type":"pdfm","timestamp":"t","message":"m","body":{}}"#;
        assert_eq!(err(short_id.as_bytes()), RecordError::BadId);
        let id = "a".repeat(64);
        let reordered = format!(
            r#"{{"event_type":"pdfm","id":"{id}","timestamp":"t","message":"m","body":{{}}}}"#
        );
        assert_eq!(err(reordered.as_bytes()), RecordError::NotAnEnvelope);
        let bad_container = format!(
            r#"{{"id":"{id}","event_type":"container","timestamp":"t","message":"m","body":{{}}}}"#
        );
        assert!(matches!(
            Prepared::from_record(CONTAINER, "container", bad_container.as_bytes()).unwrap_err(),
            RecordError::Container(_)
        ));
    }

    #[test]
    fn reply_is_valid_json_with_extra_members() {
        let f = reply("health", "pong", r#""ref_id":"ping-1","client_id":"c""#);
        let header = crate::proto::FrameHeader::parse(&f).unwrap().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&f[header.header_len..]).unwrap();
        assert_eq!(json["ref_id"], "ping-1");
        assert_eq!(json["message"], "pong");
    }
}
