//! What a subscriber counts of every delivery, whichever reader handed it
//! over (`--reader`): received, gaps, duplicates and disorder per
//! publisher, latency from the publisher's timestamp, the confirmation
//! first for eventhub, and what the run is told (subscribers done, the
//! publishers' window). One place, so that the two readers' figures differ
//! only in how the bytes were read.

use hdrhistogram::Histogram;

use crate::progress::Progress;

/// What one subscriber saw.
pub struct SubscriberStats {
    pub received: u64,
    pub gaps: u64,
    pub duplicates: u64,
    pub disorder: u64,
    pub slow: bool,
    pub close_code: Option<u16>,
    /// WebSocket bytes read from the socket (after TLS), the handshake and
    /// what came with the 101 left out.
    pub wire_bytes: u64,
}

/// A subscriber's state.
pub struct Subscriber {
    stats: SubscriberStats,
    /// Last `n` seen per publisher.
    last: Vec<Option<u64>>,
    /// The first message arrived, or none is expected before events (a
    /// slow consumer stops reading from then on).
    confirmed: bool,
    /// Counted in the run's `done`.
    finished: bool,
}

/// The unsigned integer after `key` in `text` (run for three keys of
/// every message, so a vectorized search and no string conversion).
fn field(text: &[u8], key: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(text, key)? + key.len();
    let digits = text[at..].iter().take_while(|b| b.is_ascii_digit());
    let mut value: u64 = 0;
    let mut any = false;
    for d in digits {
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        any = true;
    }
    any.then_some(value)
}

/// A latency histogram: 1 µs to 60 s, three significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("histogram bounds")
}

impl Subscriber {
    /// `expects_confirmation`: the server sends a message (eventhub's
    /// confirmation) before any event.
    pub fn new(slow: bool, publishers: usize, expects_confirmation: bool) -> Subscriber {
        Subscriber {
            stats: SubscriberStats {
                received: 0,
                gaps: 0,
                duplicates: 0,
                disorder: 0,
                slow,
                close_code: None,
                wire_bytes: 0,
            },
            last: vec![None; publishers],
            confirmed: !expects_confirmation,
            finished: false,
        }
    }

    /// Counts a data message that arrived at `now` (CLOCK_MONOTONIC ns):
    /// its latency goes to `latency` (one histogram per reader thread
    /// rather than per subscriber: a few kilobytes touched per message
    /// instead of one histogram's worth per socket), and the run hears of
    /// this subscriber's progress.
    pub fn on_message(
        &mut self,
        payload: &[u8],
        now: u64,
        latency: &mut Histogram<u64>,
        progress: &Progress,
    ) {
        self.confirmed = true;
        if !self.on_text(payload, now, latency) {
            return;
        }
        if self.stats.slow {
            return;
        }
        if let Some(window) = &progress.window {
            window.received(self.stats.received);
        }
        if !self.finished && self.stats.received >= progress.expected {
            self.finished = true;
            progress.subscriber_done();
        }
    }

    /// Counts an event; false for the confirmation or another hub message.
    /// Slow consumers' latency is left out.
    fn on_text(&mut self, text: &[u8], now: u64, latency: &mut Histogram<u64>) -> bool {
        let (Some(t), Some(n), Some(p)) = (
            field(text, b"\"t\":"),
            field(text, b"\"n\":"),
            field(text, b"\"p\":"),
        ) else {
            return false;
        };
        if !self.stats.slow {
            let _ = latency.record(now.saturating_sub(t).max(1_000));
        }
        self.stats.received += 1;
        let Some(last) = self.last.get_mut(p as usize) else {
            return true;
        };
        match *last {
            Some(prev) if n == prev + 1 => {}
            Some(prev) if n == prev => self.stats.duplicates += 1,
            Some(prev) if n < prev => self.stats.disorder += 1,
            Some(prev) => self.stats.gaps += n - prev - 1,
            None => self.stats.gaps += n - 1,
        }
        if last.is_none_or(|prev| n > prev) {
            *last = Some(n);
        }
        true
    }

    /// Still reading: false for a slow consumer once its confirmation came
    /// (it stops reading until the run is over).
    pub fn reading(&self) -> bool {
        !(self.stats.slow && self.confirmed)
    }

    pub fn stats(&self) -> &SubscriberStats {
        &self.stats
    }

    /// `n` more WebSocket bytes were read.
    pub fn count_bytes(&mut self, n: usize) {
        self.stats.wire_bytes += n as u64;
    }

    pub fn set_close_code(&mut self, code: u16) {
        self.stats.close_code = Some(code);
    }

    pub fn into_stats(self) -> SubscriberStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_in_envelopes_and_raw_bodies() {
        let env =
            br#"{"id":"x","event_type":"pdfm","body":{"t":123,"n":7,"p":0,"pad":"xx"},"seq":9}"#;
        assert_eq!(
            (
                field(env, b"\"t\":"),
                field(env, b"\"n\":"),
                field(env, b"\"seq\":")
            ),
            (Some(123), Some(7), Some(9))
        );
        assert_eq!(field(env, b"\"q\":"), None);
        assert_eq!(field(br#"{"t":x}"#, b"\"t\":"), None, "no digits");
        assert_eq!(
            field(br#"{"t":99999999999999999999}"#, b"\"t\":"),
            None,
            "overflow"
        );
    }

    #[test]
    fn gaps_duplicates_and_disorder_are_counted() {
        let mut s = Subscriber::new(false, 1, true);
        let mut latency = latency_histogram();
        for n in [1u64, 2, 2, 5, 4] {
            s.on_text(
                format!(r#"{{"t":1,"n":{n},"p":0}}"#).as_bytes(),
                10_000,
                &mut latency,
            );
        }
        assert_eq!(latency.len(), 5);
        assert_eq!(
            (
                s.stats.received,
                s.stats.duplicates,
                s.stats.gaps,
                s.stats.disorder
            ),
            (5, 1, 2, 1)
        );
    }

    #[test]
    fn the_confirmation_is_not_an_event_and_stops_a_slow_consumer() {
        let progress = Progress::new(1, None);
        let mut latency = latency_histogram();
        let mut slow = Subscriber::new(true, 1, true);
        assert!(slow.reading());
        slow.on_message(br#"{"subscribed":["pdfm"]}"#, 0, &mut latency, &progress);
        assert!(!slow.reading());
        assert_eq!(slow.stats().received, 0);
        let mut healthy = Subscriber::new(false, 1, true);
        healthy.on_message(br#"{"t":1,"n":1,"p":0}"#, 5_000, &mut latency, &progress);
        assert!(healthy.reading());
        assert_eq!((healthy.stats().received, progress.done()), (1, 1));
    }
}
