//! Principals and how a request proves it is one.
//!
//! Secrets (bearer tokens and API keys) are held only as SHA-256 digests:
//! a plain secret in the config is hashed at load, and a `*_sha256` one is
//! taken as is. A presented secret is hashed once and compared with every
//! stored digest in constant time, so neither the comparison nor the order
//! of the principals tells an attacker how close a guess was.
//!
//! A principal's rights are asked of it here ([`Principal::may_subscribe`],
//! [`Principal::may_publish`], [`Principal::may_unsubscribe`]), by every
//! route that subscribes, publishes or changes a subscription.
//!
//! Layer: hub. Imports the hub's [`channels`](super::channels), the
//! config's [`PrincipalConfig`] and the protocol crate's request head.

use sha2::{Digest, Sha256};

use super::channels::{ChannelId, ChannelSet, Channels, UnknownChannel, GLOBAL};
use crate::config::PrincipalConfig;
use crate::proto::http::Request;

/// A principal's secrets and rights.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    tokens: Vec<[u8; 32]>,
    api_keys: Vec<[u8; 32]>,
    /// The client certificate subject common name that stands for it
    /// (mutual TLS).
    client_cert_cn: Option<String>,
    pub subscribe: ChannelSet,
    pub publish: ChannelSet,
    pub admin: bool,
}

/// The rule every subscription change follows: `global` stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the global channel cannot be removed")]
pub struct GlobalIsPermanent;

impl Principal {
    /// Whether it may subscribe to every channel of `set`; if not, the
    /// first channel it may not.
    pub fn may_subscribe(&self, set: ChannelSet) -> Result<(), ChannelId> {
        match set.minus(self.subscribe).iter().next() {
            Some(denied) => Err(denied),
            None => Ok(()),
        }
    }

    /// Whether it may publish to `channel`.
    pub fn may_publish(&self, channel: ChannelId) -> Result<(), ChannelId> {
        if self.publish.contains(channel) {
            Ok(())
        } else {
            Err(channel)
        }
    }

    /// Whether it may publish at all (the publisher socket needs this).
    pub fn may_publish_anywhere(&self) -> bool {
        !self.publish.is_empty()
    }

    /// Whether it may drop the channels of `set` from a subscription:
    /// any but `global`, for every principal.
    pub fn may_unsubscribe(&self, set: ChannelSet) -> Result<(), GlobalIsPermanent> {
        if set.contains(GLOBAL) {
            Err(GlobalIsPermanent)
        } else {
            Ok(())
        }
    }
}

/// Why the configured principals were refused; each names the principal
/// (`principals[i] ("name")`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    #[error("principals[{index}] ({name:?}): token must be at least 16 characters")]
    ShortToken { index: usize, name: String },
    #[error("principals[{index}] ({name:?}): token_sha256 must be 64 hex characters")]
    BadTokenDigest { index: usize, name: String },
    #[error("principals[{index}] ({name:?}): api_key must be at least 16 characters")]
    ShortApiKey { index: usize, name: String },
    #[error("principals[{index}] ({name:?}): api_key_sha256 must be 64 hex characters")]
    BadApiKeyDigest { index: usize, name: String },
    #[error(
        "principals[{index}] ({name:?}): needs a token, token_sha256, api_key, api_key_sha256 or client_cert_cn"
    )]
    NoSecret { index: usize, name: String },
    #[error("principals[{index}] ({name:?}): subscribe: {channel}")]
    Subscribe {
        index: usize,
        name: String,
        channel: UnknownChannel,
    },
    #[error("principals[{index}] ({name:?}): publish: {channel}")]
    Publish {
        index: usize,
        name: String,
        channel: UnknownChannel,
    },
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing credentials: send Authorization: Bearer <token>, X-Api-Key: <key>, or access_token=<token>")]
    Missing,
    #[error("unknown credentials")]
    Unknown,
    #[error(
        "no principal has this client certificate's common name (client_cert_cn); send a token"
    )]
    UnknownCertificate,
}

/// Every principal.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    principals: Vec<Principal>,
}

/// SHA-256 of a secret.
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn parse_hex_digest(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
    }
    Some(out)
}

/// Compares two digests without an early exit.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

impl Auth {
    /// Builds the principals from the config; errors name the principal
    /// and what is wrong with it.
    pub fn from_config(
        configs: &[PrincipalConfig],
        channels: &Channels,
    ) -> Result<Auth, PrincipalError> {
        let mut principals = Vec::new();
        for (index, pc) in configs.iter().enumerate() {
            let name = || pc.name.clone();
            let mut tokens = Vec::new();
            let mut api_keys = Vec::new();
            if let Some(t) = &pc.token {
                if t.len() < 16 {
                    return Err(PrincipalError::ShortToken {
                        index,
                        name: name(),
                    });
                }
                tokens.push(digest(t));
            }
            if let Some(h) = &pc.token_sha256 {
                tokens.push(
                    parse_hex_digest(h).ok_or_else(|| PrincipalError::BadTokenDigest {
                        index,
                        name: name(),
                    })?,
                );
            }
            if let Some(k) = &pc.api_key {
                if k.len() < 16 {
                    return Err(PrincipalError::ShortApiKey {
                        index,
                        name: name(),
                    });
                }
                api_keys.push(digest(k));
            }
            if let Some(h) = &pc.api_key_sha256 {
                api_keys.push(parse_hex_digest(h).ok_or_else(|| {
                    PrincipalError::BadApiKeyDigest {
                        index,
                        name: name(),
                    }
                })?);
            }
            if tokens.is_empty() && api_keys.is_empty() && pc.client_cert_cn.is_none() {
                return Err(PrincipalError::NoSecret {
                    index,
                    name: name(),
                });
            }
            let subscribe = channels
                .parse(pc.subscribe.iter().map(String::as_str))
                .map_err(|channel| PrincipalError::Subscribe {
                    index,
                    name: name(),
                    channel,
                })?;
            let publish = channels
                .parse(pc.publish.iter().map(String::as_str))
                .map_err(|channel| PrincipalError::Publish {
                    index,
                    name: name(),
                    channel,
                })?;
            principals.push(Principal {
                name: pc.name.clone(),
                tokens,
                api_keys,
                client_cert_cn: pc.client_cert_cn.clone(),
                subscribe: subscribe.union(ChannelSet::only(GLOBAL)),
                publish,
                admin: pc.admin,
            });
        }
        Ok(Auth { principals })
    }

    /// An administrator with every right and one token.
    pub fn single_admin(token: &str, channels: &Channels) -> Auth {
        Auth {
            principals: vec![Principal {
                name: "admin".to_string(),
                tokens: vec![digest(token)],
                api_keys: Vec::new(),
                client_cert_cn: None,
                subscribe: channels.all(),
                publish: channels.all(),
                admin: true,
            }],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.principals.is_empty()
    }

    pub fn principal(&self, index: usize) -> &Principal {
        &self.principals[index]
    }

    /// Finds the principal a request speaks for, by `Authorization:
    /// Bearer`, `X-Api-Key`, or the `access_token` query parameter; without
    /// any of them, by `cert_name`, the common name of the client
    /// certificate its TLS handshake verified (a secret that is sent is
    /// always the one that counts).
    pub fn authenticate(&self, req: &Request, cert_name: Option<&str>) -> Result<usize, AuthError> {
        let bearer = req.header("authorization").and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
        let (secret, is_key) = match (
            bearer,
            req.header("x-api-key"),
            req.query_param("access_token"),
        ) {
            (Some(t), _, _) => (t, false),
            (None, Some(k), _) => (k.trim(), true),
            (None, None, Some(t)) => (t, false),
            (None, None, None) => {
                let name = cert_name.ok_or(AuthError::Missing)?;
                return self
                    .principals
                    .iter()
                    .position(|p| p.client_cert_cn.as_deref() == Some(name))
                    .ok_or(AuthError::UnknownCertificate);
            }
        };
        let presented = digest(secret);
        let mut found = None;
        for (i, p) in self.principals.iter().enumerate() {
            let stored = if is_key { &p.api_keys } else { &p.tokens };
            for d in stored {
                if ct_eq(d, &presented) && found.is_none() {
                    found = Some(i);
                }
            }
        }
        found.ok_or(AuthError::Unknown)
    }
}

/// A fresh random secret: 48 lowercase hex characters (192 bits).
pub fn generate_token() -> String {
    let mut raw = [0u8; 24];
    getrandom::fill(&mut raw).expect("the OS random source works");
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::http::{parse_head, HeadLimits};

    fn req(extra: &str, query: &str) -> Request {
        let head = format!("GET /x{query} HTTP/1.1\r\nHost: h\r\n{extra}\r\n");
        parse_head(head.as_bytes(), &HeadLimits::default())
            .unwrap()
            .unwrap()
            .0
    }

    fn auth() -> Auth {
        let channels = Channels::new(&[]).unwrap();
        let configs: Vec<PrincipalConfig> = toml::from_str::<toml::Table>(&format!(
            r#"[[p]]
name = "ops"
token = "ops-token-0123456789"
subscribe = ["pdfm", "health"]
[[p]]
name = "ci"
api_key_sha256 = "{}"
publish = ["*"]
[[p]]
name = "dashboard"
client_cert_cn = "dash-01"
subscribe = ["health"]"#,
            digest("ci-key-0123456789ab")
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ))
        .unwrap()["p"]
            .clone()
            .try_into()
            .unwrap();
        Auth::from_config(&configs, &channels).unwrap()
    }

    #[test]
    fn bearer_api_key_and_query_token_each_identify_their_principal() {
        let a = auth();
        assert_eq!(
            a.authenticate(
                &req("Authorization: Bearer ops-token-0123456789\r\n", ""),
                None
            ),
            Ok(0)
        );
        assert_eq!(
            a.authenticate(&req("X-Api-Key: ci-key-0123456789ab\r\n", ""), None),
            Ok(1)
        );
        assert_eq!(
            a.authenticate(&req("", "?access_token=ops-token-0123456789"), None),
            Ok(0)
        );
    }

    #[test]
    fn missing_and_wrong_credentials_are_told_apart() {
        let a = auth();
        assert_eq!(a.authenticate(&req("", ""), None), Err(AuthError::Missing));
        assert_eq!(
            a.authenticate(&req("Authorization: Bearer nope\r\n", ""), None),
            Err(AuthError::Unknown)
        );
        assert_eq!(
            a.authenticate(&req("X-Api-Key: ops-token-0123456789\r\n", ""), None),
            Err(AuthError::Unknown),
            "a token is not a key"
        );
    }

    #[test]
    fn a_client_certificate_name_stands_for_its_principal_when_no_secret_is_sent() {
        let a = auth();
        assert_eq!(a.authenticate(&req("", ""), Some("dash-01")), Ok(2));
        assert_eq!(
            a.authenticate(&req("", ""), Some("dash-02")),
            Err(AuthError::UnknownCertificate)
        );
        assert_eq!(
            a.authenticate(
                &req("Authorization: Bearer ops-token-0123456789\r\n", ""),
                Some("dash-01")
            ),
            Ok(0),
            "a secret sent is the one that counts"
        );
    }

    #[test]
    fn rights_come_from_the_config_with_global_always_included() {
        let a = auth();
        let ch = Channels::new(&[]).unwrap();
        assert_eq!(
            a.principal(0).subscribe,
            ch.parse(["pdfm", "health", "global"]).unwrap()
        );
        assert!(a.principal(0).publish.is_empty());
        assert_eq!(a.principal(1).publish, ch.all());
    }

    #[test]
    fn principal_without_secret_is_refused_by_name() {
        let pc = PrincipalConfig {
            name: "x".into(),
            token: None,
            token_sha256: None,
            api_key: None,
            api_key_sha256: None,
            client_cert_cn: None,
            subscribe: vec![],
            publish: vec![],
            admin: false,
        };
        let e = Auth::from_config(&[pc], &Channels::new(&[]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("principals[0] (\"x\")"), "{e}");
    }

    #[test]
    fn generated_tokens_are_long_and_distinct() {
        let t = generate_token();
        assert_eq!(t.len(), 48);
        assert_ne!(t, generate_token());
    }
}
