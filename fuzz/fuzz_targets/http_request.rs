//! The request-head parser and the upgrade check on arbitrary bytes: never
//! panics; a complete head is `Ok(None)` at every strict prefix and parses
//! the same when given whole; every refusal has a status from 400 to 505.
#![no_main]

use eventhub::proto::handshake::check_upgrade;
use eventhub::proto::http::{parse_head, HeadLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = HeadLimits {
        max_head_bytes: 2048,
        max_headers: 32,
    };
    match parse_head(data, &limits) {
        Ok(Some((req, used))) => {
            assert!(used <= data.len());
            for cut in [used / 2, used.saturating_sub(1)] {
                if cut < used {
                    assert!(matches!(parse_head(&data[..cut], &limits), Ok(None)));
                }
            }
            if let Err(e) = check_upgrade(&req) {
                assert!((400..=505).contains(&e.status()));
                let _ = e.response().to_bytes(false);
            }
            let _ = req.body_length(1 << 20);
        }
        Ok(None) => assert!(data.len() < limits.max_head_bytes),
        Err(e) => assert!((400..=505).contains(&e.status())),
    }
});
