//! The stream that is the event log: created with `[cluster]`'s settings
//! when it does not exist, checked (and what was found logged) when it
//! does, and its epoch.
//!
//! An existing stream is not changed: whoever runs NATS owns its settings.
//! One whose subjects do not hold the hub's is an error (publishes would
//! go nowhere); other differences from the config are logged as warnings.
//!
//! The epoch of a stream is its name and creation time hashed to 16 hex
//! characters: the same on every node, and new when the stream is made
//! anew (its seqs restart at 1).
//!
//! Layer: cluster. Imports the config and the cluster's error.

use std::time::Duration;

use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::stream::{
    Config, DiscardPolicy, Info, RetentionPolicy, StorageType, Stream,
};
use async_nats::jetstream::Context;
use sha2::Digest as _;

use super::ClusterError;
use crate::config::{ClusterConfig, ClusterStorage};

/// The subjects the hub publishes on: `<prefix>.<channel>`.
pub fn subjects(config: &ClusterConfig) -> String {
    format!("{}.>", config.subject_prefix)
}

/// The stream `[cluster]` asks for.
pub fn wanted(config: &ClusterConfig) -> Config {
    Config {
        name: config.stream.clone(),
        subjects: vec![subjects(config)],
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        storage: match config.storage {
            ClusterStorage::File => StorageType::File,
            ClusterStorage::Memory => StorageType::Memory,
        },
        num_replicas: config.replicas,
        max_age: Duration::from_secs(config.max_age_s),
        max_bytes: if config.max_bytes == 0 {
            -1
        } else {
            config.max_bytes.min(i64::MAX as u64) as i64
        },
        duplicate_window: Duration::from_secs(config.duplicate_window_s),
        ..Config::default()
    }
}

/// The stream, made if missing; `created` says whether it was.
pub async fn ensure(js: &Context, config: &ClusterConfig) -> Result<(Stream, bool), ClusterError> {
    let unreachable = |e: String| ClusterError::Stream {
        stream: config.stream.clone(),
        reason: e,
    };
    match js.get_stream(&config.stream).await {
        Ok(stream) => {
            check(stream.cached_info(), config)?;
            Ok((stream, false))
        }
        Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(j) if j.code() == 404) => {
            let stream = js
                .create_stream(wanted(config))
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            Ok((stream, true))
        }
        Err(e) => Err(unreachable(e.to_string())),
    }
}

/// Whether an existing stream serves: it must hold the hub's subjects;
/// other differences from the config are logged.
fn check(info: &Info, config: &ClusterConfig) -> Result<(), ClusterError> {
    let want = wanted(config);
    let ours = subjects(config);
    let holds = info.config.subjects.iter().any(|s| {
        s == &ours
            || s == ">"
            || s.strip_suffix(".>")
                .is_some_and(|p| ours.starts_with(&format!("{p}.")))
    });
    if !holds {
        return Err(ClusterError::StreamUnfit {
            stream: config.stream.clone(),
            reason: format!(
                "it holds subjects {:?}, not {ours:?} (cluster.subject_prefix)",
                info.config.subjects
            ),
        });
    }
    let c = &info.config;
    let differences = [
        (c.storage != want.storage, "storage"),
        (c.num_replicas != want.num_replicas, "replicas"),
        (c.max_age != want.max_age, "max_age_s"),
        (c.max_bytes != want.max_bytes, "max_bytes"),
        (
            c.duplicate_window != want.duplicate_window,
            "duplicate_window_s",
        ),
    ];
    for (_, key) in differences.iter().filter(|(differs, _)| *differs) {
        log::warn!(
            "cluster: stream {} exists with another {key} than cluster.{key} says; it is kept as it is",
            config.stream
        );
    }
    Ok(())
}

/// The epoch of a stream: its name and creation time, hashed.
pub fn epoch(info: &Info) -> String {
    let mut h = sha2::Sha256::new();
    h.update(info.config.name.as_bytes());
    h.update(info.created.unix_timestamp_nanos().to_be_bytes());
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}
