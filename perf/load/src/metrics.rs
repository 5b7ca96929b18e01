//! eventhub's `/metrics` (Prometheus text), read with a plain HTTP/1.1
//! GET over a TCP socket (TLS with `--tls-ca`, where the hub serves https
//! on the same address): the tool needs two figures from it, not an HTTP
//! client. They are the slow-consumer closes, set beside what the
//! subscribers saw, and the `eventhub_frames_per_write` histogram, whose
//! growth over the publishing gives the writes per delivery (how well the
//! hub coalesces frames into one `sendmsg`). Either is `None` where the
//! server does not have it (a peer, an older hub). With several addresses
//! (a cluster's nodes) both are summed over every node's `/metrics`: each
//! subscriber is on one node, so the sums set against all the deliveries.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::transport::Endpoint;

/// The text of `/metrics` (read with `token`, which must be an admin's).
pub async fn scrape(endpoint: &Endpoint, token: &str) -> Option<String> {
    let addr = endpoint.addr;
    let mut stream = endpoint.connect(None, false).await.ok()?;
    let req = format!(
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await.ok()?;
    stream.flush().await.ok()?;
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut resp))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8(resp).ok()?;
    text.starts_with("HTTP/1.1 200").then_some(text)
}

/// The text of every address's `/metrics`; `None` if one cannot be read.
pub async fn scrape_all(endpoints: &[Endpoint], token: &str) -> Option<Vec<String>> {
    let mut texts = Vec::with_capacity(endpoints.len());
    for endpoint in endpoints {
        texts.push(scrape(endpoint, token).await?);
    }
    Some(texts)
}

/// The sum of the samples named `name` (with or without labels); `None`
/// if there is none.
pub fn family_sum(text: &str, name: &str) -> Option<f64> {
    let mut samples = text.lines().filter_map(|line| {
        let (key, value) = line.rsplit_once(' ')?;
        let key_name = key.split('{').next()?;
        (key_name == name).then(|| value.parse::<f64>().ok())?
    });
    let first = samples.next()?;
    Some(first + samples.sum::<f64>())
}

/// The `eventhub_frames_per_write` histogram over every core (summed over
/// the nodes of a cluster).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Writes {
    /// `sendmsg` calls (`_count`).
    pub writes: f64,
    /// Frames they wrote whole (`_sum`).
    pub frames: f64,
}

impl Writes {
    pub fn parse(text: &str) -> Option<Writes> {
        Some(Writes {
            writes: family_sum(text, "eventhub_frames_per_write_count")?,
            frames: family_sum(text, "eventhub_frames_per_write_sum")?,
        })
    }

    /// What was written between `earlier` and this.
    pub fn since(self, earlier: Writes) -> Writes {
        Writes {
            writes: self.writes - earlier.writes,
            frames: self.frames - earlier.frames,
        }
    }
}

impl std::iter::Sum for Writes {
    fn sum<I: Iterator<Item = Writes>>(iter: I) -> Writes {
        iter.fold(
            Writes {
                writes: 0.0,
                frames: 0.0,
            },
            |a, b| Writes {
                writes: a.writes + b.writes,
                frames: a.frames + b.frames,
            },
        )
    }
}

/// eventhub's permessage-deflate counters (`eventhub_deflate_*`), summed
/// over every core (and node).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Deflate {
    /// Event frames compressed (once each, whatever the subscribers).
    pub frames: f64,
    /// Their bytes before and after.
    pub bytes_in: f64,
    pub bytes_out: f64,
    /// Time spent compressing them.
    pub nanos: f64,
    /// Compressed frames queued to subscribers.
    pub deliveries: f64,
}

impl Deflate {
    pub fn parse(text: &str) -> Option<Deflate> {
        Some(Deflate {
            frames: family_sum(text, "eventhub_deflate_frames_total")?,
            bytes_in: family_sum(text, "eventhub_deflate_bytes_in_total")?,
            bytes_out: family_sum(text, "eventhub_deflate_bytes_out_total")?,
            nanos: family_sum(text, "eventhub_deflate_nanoseconds_total")?,
            deliveries: family_sum(text, "eventhub_deflated_deliveries_total").unwrap_or(0.0),
        })
    }

    /// What was counted between `earlier` and this.
    pub fn since(self, earlier: Deflate) -> Deflate {
        Deflate {
            frames: self.frames - earlier.frames,
            bytes_in: self.bytes_in - earlier.bytes_in,
            bytes_out: self.bytes_out - earlier.bytes_out,
            nanos: self.nanos - earlier.nanos,
            deliveries: self.deliveries - earlier.deliveries,
        }
    }

    /// Compressing time per compressed event, in ns.
    pub fn ns_per_frame(&self) -> Option<f64> {
        (self.frames > 0.0).then(|| self.nanos / self.frames)
    }

    fn add(self, b: Deflate) -> Deflate {
        Deflate {
            frames: self.frames + b.frames,
            bytes_in: self.bytes_in + b.bytes_in,
            bytes_out: self.bytes_out + b.bytes_out,
            nanos: self.nanos + b.nanos,
            deliveries: self.deliveries + b.deliveries,
        }
    }
}

/// What the tool reads of eventhub's `/metrics` before and after a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Counters {
    pub writes: Option<Writes>,
    pub deflate: Option<Deflate>,
}

impl Counters {
    /// Summed over the nodes' texts; a part is `None` if one lacks it.
    pub fn parse_all(texts: &[String]) -> Counters {
        Counters {
            writes: texts.iter().map(|text| Writes::parse(text)).sum(),
            deflate: texts
                .iter()
                .map(|text| Deflate::parse(text))
                .try_fold(None::<Deflate>, |acc, d| {
                    let d = d?;
                    Some(Some(acc.map_or(d, |a| a.add(d))))
                })
                .flatten(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n\
# TYPE eventhub_frames_per_write histogram
eventhub_frames_per_write_bucket{core=\"0\",le=\"1\"} 3
eventhub_frames_per_write_bucket{core=\"0\",le=\"+Inf\"} 10
eventhub_frames_per_write_sum{core=\"0\"} 40
eventhub_frames_per_write_count{core=\"0\"} 10
eventhub_frames_per_write_sum{core=\"1\"} 2.5e1
eventhub_frames_per_write_count{core=\"1\"} 5
eventhub_slow_consumer_closes_total{core=\"0\"} 2
eventhub_slow_consumer_closes_total_other 7
";

    #[test]
    fn families_are_summed_over_cores_and_told_apart_by_name() {
        assert_eq!(
            family_sum(TEXT, "eventhub_slow_consumer_closes_total"),
            Some(2.0)
        );
        assert_eq!(family_sum(TEXT, "eventhub_frames_per_write"), None);
        assert_eq!(
            Writes::parse(TEXT),
            Some(Writes {
                writes: 15.0,
                frames: 65.0
            })
        );
        assert_eq!(Writes::parse("HTTP/1.1 200 OK\r\n\r\nother 1\n"), None);
    }

    #[test]
    fn nodes_are_summed_and_one_without_the_histogram_makes_none() {
        let texts = [TEXT, TEXT];
        let sum: Option<Writes> = texts.iter().map(|t| Writes::parse(t)).sum();
        assert_eq!(
            sum,
            Some(Writes {
                writes: 30.0,
                frames: 130.0
            })
        );
        let texts = [TEXT, "HTTP/1.1 200 OK\r\n\r\nother 1\n"];
        let sum: Option<Writes> = texts.iter().map(|t| Writes::parse(t)).sum();
        assert_eq!(sum, None);
    }

    #[test]
    fn deflate_counters_are_summed_over_cores() {
        let text = "eventhub_deflate_frames_total{core=\"0\"} 10
eventhub_deflate_frames_total{core=\"1\"} 30
eventhub_deflate_bytes_in_total{core=\"0\"} 4000
eventhub_deflate_bytes_out_total{core=\"0\"} 1000
eventhub_deflate_nanoseconds_total{core=\"0\"} 80000
eventhub_deflated_deliveries_total{core=\"0\"} 4000
";
        let d = Deflate::parse(text).unwrap();
        assert_eq!((d.frames, d.nanos, d.deliveries), (40.0, 80000.0, 4000.0));
        assert_eq!(d.ns_per_frame(), Some(2000.0));
        let both = Counters::parse_all(&[text.to_string(), text.to_string()]);
        assert_eq!(both.deflate.unwrap().frames, 80.0);
        assert_eq!(both.writes, None);
        assert_eq!(
            Counters::parse_all(&[text.into(), TEXT.into()]).deflate,
            None
        );
    }

    #[test]
    fn the_difference_is_what_was_written_in_between() {
        let before = Writes {
            writes: 10.0,
            frames: 40.0,
        };
        let after = Writes {
            writes: 30.0,
            frames: 100.0,
        };
        assert_eq!(
            after.since(before),
            Writes {
                writes: 20.0,
                frames: 60.0
            }
        );
    }
}
