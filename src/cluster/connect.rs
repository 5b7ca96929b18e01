//! Connecting to NATS as `[cluster]` says: servers, credentials, TLS, and
//! the connection events the hub follows.
//!
//! The client reconnects on its own, for ever, with its backoff; every
//! change of state reaches the callback given, which records it and tells
//! the cores ([`super::notice`]).
//!
//! Layer: cluster. Imports the config and the cluster's error.

use std::sync::Arc;
use std::time::Duration;

use async_nats::ConnectOptions;

use super::ClusterError;
use crate::config::ClusterConfig;

/// The client options for `config`; `on_event` sees every connection event.
pub fn options<F>(config: &ClusterConfig, on_event: F) -> Result<ConnectOptions, ClusterError>
where
    F: Fn(async_nats::Event) + Send + Sync + 'static,
{
    let mut opts = if !config.creds_file.is_empty() {
        let creds = read(&config.creds_file, "cluster.creds_file")?;
        ConnectOptions::with_credentials(&creds).map_err(|e| ClusterError::File {
            key: "cluster.creds_file",
            path: config.creds_file.clone(),
            reason: e.to_string(),
        })?
    } else if !config.nkey_seed_file.is_empty() {
        let seed = read(&config.nkey_seed_file, "cluster.nkey_seed_file")?;
        ConnectOptions::with_nkey(seed.trim().to_string())
    } else if !config.user.is_empty() {
        ConnectOptions::with_user_and_password(config.user.clone(), config.password.clone())
    } else if !config.token.is_empty() {
        ConnectOptions::with_token(config.token.clone())
    } else {
        ConnectOptions::new()
    };
    let on_event = Arc::new(on_event);
    opts = opts
        .name("eventhub")
        .connection_timeout(Duration::from_secs(config.connect_timeout_s))
        .max_reconnects(None)
        .event_callback(move |event| {
            let on_event = on_event.clone();
            async move { on_event(event) }
        });
    if !config.tls_ca.is_empty() {
        check_file(&config.tls_ca, "cluster.tls_ca")?;
        opts = opts.add_root_certificates(config.tls_ca.clone().into());
    }
    if !config.tls_cert.is_empty() {
        check_file(&config.tls_cert, "cluster.tls_cert")?;
        check_file(&config.tls_key, "cluster.tls_key")?;
        opts = opts.add_client_certificate(
            config.tls_cert.clone().into(),
            config.tls_key.clone().into(),
        );
    }
    if config.tls_required || !config.tls_ca.is_empty() {
        opts = opts.require_tls(true);
    }
    Ok(opts)
}

fn read(path: &str, key: &'static str) -> Result<String, ClusterError> {
    std::fs::read_to_string(path).map_err(|e| ClusterError::File {
        key,
        path: path.to_string(),
        reason: e.to_string(),
    })
}

fn check_file(path: &str, key: &'static str) -> Result<(), ClusterError> {
    std::fs::metadata(path)
        .map(drop)
        .map_err(|e| ClusterError::File {
            key,
            path: path.to_string(),
            reason: e.to_string(),
        })
}
