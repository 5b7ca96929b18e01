//! The request-head parser and the upgrade check on arbitrary bytes: never
//! panics; a complete head is `Ok(None)` at every strict prefix, and any
//! prefix (the bytes a socket has delivered so far) gives either `Ok(None)`
//! or exactly what the whole input gives; every refusal has a status from
//! 400 to 505.
#![no_main]

use eventhub_proto::handshake::{check_upgrade, switching_protocols};
use eventhub_proto::http::{parse_head, HeadLimits};
use libfuzzer_sys::fuzz_target;

/// Prefix lengths to try: all of them for short inputs, otherwise 33 spread out
/// plus the few bytes before `end` (where a head is almost complete).
fn cuts(len: usize, end: usize) -> impl Iterator<Item = usize> {
    let step = if len <= 64 { 1 } else { len / 32 };
    (0..=len)
        .step_by(step)
        .chain(end.saturating_sub(8)..=end.min(len))
}

fuzz_target!(|data: &[u8]| {
    let limits = HeadLimits {
        max_head_bytes: 2048,
        max_headers: 32,
    };
    let whole = parse_head(data, &limits);
    let head_end = match &whole {
        Ok(Some((_, used))) => *used,
        _ => data.len() + 1,
    };
    for cut in cuts(data.len(), head_end) {
        let part = parse_head(&data[..cut], &limits);
        if cut < head_end {
            // A strict prefix of a complete head, or of an input that has
            // none: still waiting, unless already refused the same way.
            match &part {
                Ok(None) => {}
                Err(_) if head_end > data.len() => assert_eq!(part, whole, "cut {cut}"),
                other => panic!("strict prefix {cut} of a {head_end}-byte head gave {other:?}"),
            }
        } else {
            assert_eq!(part, whole, "cut {cut}");
        }
    }
    match whole {
        Ok(Some((req, used))) => {
            assert!(used <= data.len() && used <= limits.max_head_bytes);
            match check_upgrade(&req) {
                Ok(accept) => {
                    assert_eq!(accept.len(), 28);
                    let _ = switching_protocols(&accept, None);
                }
                Err(e) => {
                    assert!((400..=505).contains(&e.status()));
                    let _ = e.response().to_bytes(false);
                }
            }
            if let Err(e) = req.body_length(1 << 20) {
                assert!((400..=505).contains(&e.status()));
            }
        }
        Ok(None) => assert!(data.len() < limits.max_head_bytes),
        Err(e) => assert!((400..=505).contains(&e.status())),
    }
});
