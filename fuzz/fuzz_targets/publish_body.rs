//! What producers send and what `/events/ws` clients put in `filters`, on
//! arbitrary text: never panics; accepted events serialize to valid JSON.
#![no_main]

use eventhub::hub::channels::Channels;
use eventhub::hub::docker::DockerFilter;
use eventhub::hub::event::Prepared;
use eventhub::hub::ingest::parse_events;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let channels = Channels::new(&["alerts".to_string()]).expect("valid channel");
    if let Ok(events) = parse_events(text, &channels, 100) {
        for e in events {
            let mut p = Prepared::new(e.channel, channels.name(e.channel), &e.message, &e.body);
            if let Some(c) = &e.container {
                p = p.with_docker(c);
            }
            let frame = p.finish(7).frame;
            let header = eventhub::proto::FrameHeader::parse(&frame)
                .unwrap()
                .unwrap();
            let _: serde_json::Value =
                serde_json::from_slice(&frame[header.header_len..]).expect("valid JSON");
        }
    }
    let _ = DockerFilter::parse(text);
});
