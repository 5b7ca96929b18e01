//! `GET /v1/stats`: the counters of `GET /metrics` as JSON, for the web
//! view's panel (and any script that would rather not parse Prometheus's
//! text format).
//!
//! The JSON is made from the very text `/metrics` renders, so the two can
//! never disagree or drift apart: every family, every sample, the same
//! values. Shape: `{"time_ms": <unix ms>, "metrics": {"<family>":
//! [{"labels": {"core": "0"}, "value": 3}, ...]}}`; a histogram's samples
//! appear under their own names (`_bucket`, `_sum`, `_count`).
//!
//! Layer: API. Imports serde_json only.

use serde_json::{Map, Number, Value};

/// Why a line of the metrics text could not be read (a bug in a renderer:
/// the endpoint answers 500 naming the line rather than guess).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatsError {
    #[error("metrics line {0:?} is not `name[{{labels}}] value`")]
    Line(String),
}

/// The metrics text as the JSON document, taken at `time_ms`.
pub fn to_json(text: &str, time_ms: u128) -> Result<String, StatsError> {
    let mut families: Map<String, Value> = Map::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || StatsError::Line(line.to_string());
        let (series, value) = line.rsplit_once(' ').ok_or_else(bad)?;
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (
                name,
                labels(rest.strip_suffix('}').ok_or_else(bad)?).ok_or_else(bad)?,
            ),
            None => (series, Map::new()),
        };
        let value = number(value).ok_or_else(bad)?;
        let mut sample = Map::new();
        sample.insert("labels".into(), Value::Object(labels));
        sample.insert("value".into(), Value::Number(value));
        match families
            .entry(name.to_string())
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            Value::Array(samples) => samples.push(Value::Object(sample)),
            _ => unreachable!("families hold arrays"),
        }
    }
    let mut doc = Map::new();
    doc.insert(
        "time_ms".into(),
        Value::Number(Number::from(time_ms as u64)),
    );
    doc.insert("metrics".into(), Value::Object(families));
    Ok(Value::Object(doc).to_string())
}

/// `k="v",k2="v2"` (values with `\"`, `\\` and `\n` escapes).
fn labels(mut rest: &str) -> Option<Map<String, Value>> {
    let mut out = Map::new();
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        out.insert(key.to_string(), Value::String(value));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Some(out)
}

/// An integer as is; anything else as a float.
fn number(s: &str) -> Option<Number> {
    if let Ok(n) = s.parse::<u64>() {
        return Some(n.into());
    }
    if let Ok(n) = s.parse::<i64>() {
        return Some(n.into());
    }
    Number::from_f64(s.parse().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_of_the_text_is_in_the_json() {
        let text = "# HELP a x\n# TYPE a gauge\na{core=\"0\"} 3\na{core=\"1\"} 4\nb 7\nc{epoch=\"e \\\"1\\\"\",v=\"0.1\"} 1\nd -5\n";
        let doc: Value = serde_json::from_str(&to_json(text, 12).unwrap()).unwrap();
        assert_eq!(doc["time_ms"], 12);
        let m = &doc["metrics"];
        assert_eq!(m["a"][0]["labels"]["core"], "0");
        assert_eq!(m["a"][1]["value"], 4);
        assert_eq!(m["b"][0]["value"], 7);
        assert_eq!(m["c"][0]["labels"]["epoch"], "e \"1\"");
        assert_eq!(m["c"][0]["labels"]["v"], "0.1");
        assert_eq!(m["d"][0]["value"], -5);
    }

    #[test]
    fn a_malformed_line_is_an_error() {
        assert!(to_json("a{core=\"0\" 3\n", 0).is_err());
        assert!(to_json("novalue\n", 0).is_err());
    }
}
