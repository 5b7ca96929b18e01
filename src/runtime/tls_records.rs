//! A TLS 1.3 connection's records once its handshake is done, sealed and
//! opened by the hub itself with the ciphers the handshake agreed on.
//!
//! Runtime layer, a leaf over rustls's kernel-connection API (meant for
//! kTLS): after the handshake rustls hands over the traffic keys and keeps
//! only the key schedule, for key updates. What a connection then holds
//! is the two ciphers and their sequence numbers, about 2 KB, where the
//! whole rustls connection held 3.2 KB; and sealing a record is one call
//! to the cipher, without running rustls's state machine first (about a
//! fifth of a small record's cost over wss: README, "wss against ws").
//!
//! The rules of RFC 8446 this layer keeps itself: records of at most
//! 2^14 + 256 bytes of ciphertext, all of them of outer type
//! application_data; after the handshake only application data, alerts
//! (close_notify ends the input; a fatal alert is an error) and a
//! KeyUpdate (section 4.6.3: the receiving key changes after it, and one
//! that asks for an update is answered with ours before the sending key
//! changes); and a new sending key before the cipher's confidentiality
//! limit (section 5.5). Anything else is an error, answered with a fatal
//! alert.

use rustls::crypto::cipher::{
    InboundOpaqueMessage, MessageDecrypter, MessageEncrypter, OutboundChunks, OutboundPlainMessage,
};
use rustls::kernel::KernelConnection;
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::{ConnectionTrafficSecrets, ContentType, Error, ProtocolVersion, Tls13CipherSuite};

/// The most ciphertext a TLS 1.3 record may carry (RFC 8446, 5.2).
const MAX_CIPHERTEXT: usize = (1 << 14) + 256;

/// The largest plaintext of one record.
const MAX_PLAINTEXT: usize = 1 << 14;

/// Records sealed with one key at most, well inside every TLS 1.3
/// cipher's confidentiality limit (AES-GCM's is 2^24.5).
const REKEY_AFTER: u64 = 1 << 23;

const HANDSHAKE_KEY_UPDATE: u8 = 24;
const ALERT_WARNING: u8 = 1;
const ALERT_FATAL: u8 = 2;
const CLOSE_NOTIFY: u8 = 0;
const USER_CANCELED: u8 = 90;
const UNEXPECTED_MESSAGE: u8 = 10;
const RECORD_OVERFLOW: u8 = 22;
const BAD_RECORD_MAC: u8 = 20;
const DECODE_ERROR: u8 = 50;

/// A TLS 1.3 connection after its handshake.
pub(super) struct Records {
    kernel: KernelConnection<ServerConnectionData>,
    suite: &'static Tls13CipherSuite,
    enc: Box<dyn MessageEncrypter>,
    tx_seq: u64,
    dec: Box<dyn MessageDecrypter>,
    rx_seq: u64,
    /// Records sealed with one key before the next ([`REKEY_AFTER`]).
    rekey_after: u64,
}

/// Why [`Records::take_over`] did not.
pub(super) enum TakeOver {
    /// TLS 1.2: the connection stays rustls's, given back.
    NotTls13(Box<UnbufferedServerConnection>),
    /// rustls refused to hand over the keys; the connection is lost.
    Failed(Error),
}

/// What [`Records::open`] found.
pub(super) struct Opened {
    /// Bytes of the buffer used (whole records).
    pub(super) used: usize,
    /// The client sent close_notify.
    pub(super) closed: bool,
}

fn cipher_keys(
    secrets: ConnectionTrafficSecrets,
) -> Result<(rustls::crypto::cipher::AeadKey, rustls::crypto::cipher::Iv), Error> {
    match secrets {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv }
        | ConnectionTrafficSecrets::Aes256Gcm { key, iv }
        | ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => Ok((key, iv)),
        _ => Err(Error::General("an AEAD this layer does not know".into())),
    }
}

impl Records {
    /// Takes over a TLS 1.3 connection whose handshake is done and whose
    /// messages are all encoded.
    pub(super) fn take_over(conn: Box<UnbufferedServerConnection>) -> Result<Records, TakeOver> {
        let suite = match (conn.protocol_version(), conn.negotiated_cipher_suite()) {
            (Some(ProtocolVersion::TLSv1_3), Some(rustls::SupportedCipherSuite::Tls13(s))) => s,
            _ => return Err(TakeOver::NotTls13(conn)),
        };
        let (secrets, kernel) = conn
            .dangerous_into_kernel_connection()
            .map_err(TakeOver::Failed)?;
        let ((tx_seq, tx), (rx_seq, rx)) = (secrets.tx, secrets.rx);
        let (key, iv) = cipher_keys(tx).map_err(TakeOver::Failed)?;
        let enc = suite.aead_alg.encrypter(key, iv);
        let (key, iv) = cipher_keys(rx).map_err(TakeOver::Failed)?;
        let dec = suite.aead_alg.decrypter(key, iv);
        Ok(Records {
            kernel,
            suite,
            enc,
            tx_seq,
            dec,
            rx_seq,
            rekey_after: REKEY_AFTER,
        })
    }

    /// Changes the sending key after `records` records (tests: the limit
    /// itself is millions of records away).
    #[cfg(test)]
    pub(super) fn rekey_after(&mut self, records: u64) {
        self.rekey_after = records;
    }

    /// Records sealed with the current sending key (tests).
    #[cfg(test)]
    pub(super) fn sealed_with_this_key(&self) -> u64 {
        self.tx_seq
    }

    /// Opens the whole records at the start of `buf`: application data to
    /// `plain`, what must be sent in answer (a key update) to `out`. On an
    /// error `out` holds the fatal alert to send before closing.
    pub(super) fn open(
        &mut self,
        buf: &mut [u8],
        plain: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<Opened, Error> {
        let mut used = 0;
        loop {
            let rest = &mut buf[used..];
            if rest.len() < 5 {
                return Ok(Opened {
                    used,
                    closed: false,
                });
            }
            let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
            if len > MAX_CIPHERTEXT {
                return Err(self.fail(RECORD_OVERFLOW, Error::PeerSentOversizedRecord, out));
            }
            if rest.len() < 5 + len {
                return Ok(Opened {
                    used,
                    closed: false,
                });
            }
            let (typ, version) = (
                ContentType::from(rest[0]),
                ProtocolVersion::from(u16::from_be_bytes([rest[1], rest[2]])),
            );
            if typ != ContentType::ApplicationData {
                let e = Error::General("a plaintext record after the handshake".into());
                return Err(self.fail(UNEXPECTED_MESSAGE, e, out));
            }
            let record = InboundOpaqueMessage::new(typ, version, &mut rest[5..5 + len]);
            let opened = match self.dec.decrypt(record, self.rx_seq) {
                Ok(m) => m,
                Err(e) => return Err(self.fail(BAD_RECORD_MAC, e, out)),
            };
            self.rx_seq += 1;
            used += 5 + len;
            match opened.typ {
                ContentType::ApplicationData => plain.extend_from_slice(opened.payload),
                ContentType::Alert => match opened.payload {
                    [_, CLOSE_NOTIFY] => return Ok(Opened { used, closed: true }),
                    [ALERT_WARNING, USER_CANCELED] => {}
                    [_, desc] => {
                        let e = Error::AlertReceived(rustls::AlertDescription::from(*desc));
                        return Err(e);
                    }
                    _ => {
                        return Err(self.fail(
                            DECODE_ERROR,
                            Error::General("a malformed alert".into()),
                            out,
                        ))
                    }
                },
                ContentType::Handshake => {
                    let requested = match opened.payload {
                        [HANDSHAKE_KEY_UPDATE, 0, 0, 1, asked @ (0 | 1)] => *asked == 1,
                        _ => {
                            let e = Error::General(
                                "a handshake message after the handshake other than KeyUpdate"
                                    .into(),
                            );
                            return Err(self.fail(UNEXPECTED_MESSAGE, e, out));
                        }
                    };
                    let (seq, secrets) = self.kernel.update_rx_secret()?;
                    let (key, iv) = cipher_keys(secrets)?;
                    self.dec = self.suite.aead_alg.decrypter(key, iv);
                    self.rx_seq = seq;
                    if requested {
                        self.update_tx(out)?;
                    }
                }
                _ => {
                    let e = Error::General("an unexpected record type after the handshake".into());
                    return Err(self.fail(UNEXPECTED_MESSAGE, e, out));
                }
            }
        }
    }

    /// Sends our KeyUpdate (under the old key, to `out`), then changes the
    /// sending key.
    fn update_tx(&mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        self.seal_one(
            ContentType::Handshake,
            &[HANDSHAKE_KEY_UPDATE, 0, 0, 1, 0],
            out,
        )?;
        let (seq, secrets) = self.kernel.update_tx_secret()?;
        let (key, iv) = cipher_keys(secrets)?;
        self.enc = self.suite.aead_alg.encrypter(key, iv);
        self.tx_seq = seq;
        Ok(())
    }

    /// A fatal alert `desc` appended to `out`; returns `e`.
    fn fail(&mut self, desc: u8, e: Error, out: &mut Vec<u8>) -> Error {
        let _ = self.seal_one(ContentType::Alert, &[ALERT_FATAL, desc], out);
        e
    }

    /// One record of `typ` around `payload` (at most a record's worth),
    /// appended to `out`.
    fn seal_one(
        &mut self,
        typ: ContentType,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let msg = OutboundPlainMessage {
            typ,
            version: ProtocolVersion::TLSv1_2,
            payload: OutboundChunks::Single(payload),
        };
        let sealed = self.enc.encrypt(msg, self.tx_seq)?;
        self.tx_seq += 1;
        out.extend_from_slice(&sealed.encode());
        Ok(())
    }

    /// Seals `plain` into records of application data in `scratch`;
    /// returns their length, or the room they need (`Err(Ok(n))`). A key
    /// update due first goes to `before`.
    pub(super) fn seal(
        &mut self,
        plain: &[u8],
        scratch: &mut [u8],
        before: &mut Vec<u8>,
    ) -> Result<usize, Result<usize, Error>> {
        if self.tx_seq >= self.rekey_after {
            self.update_tx(before).map_err(Err)?;
        }
        let need: usize = plain
            .chunks(MAX_PLAINTEXT)
            .map(|c| 5 + self.enc.encrypted_payload_len(c.len()))
            .sum();
        if need > scratch.len() {
            return Err(Ok(need));
        }
        let mut at = 0;
        for chunk in plain.chunks(MAX_PLAINTEXT) {
            let msg = OutboundPlainMessage {
                typ: ContentType::ApplicationData,
                version: ProtocolVersion::TLSv1_2,
                payload: OutboundChunks::Single(chunk),
            };
            let sealed = self.enc.encrypt(msg, self.tx_seq).map_err(Err)?.encode();
            self.tx_seq += 1;
            scratch[at..at + sealed.len()].copy_from_slice(&sealed);
            at += sealed.len();
        }
        Ok(at)
    }

    /// A close_notify alert, appended to `out`.
    pub(super) fn close_notify(&mut self, out: &mut Vec<u8>) {
        let _ = self.seal_one(ContentType::Alert, &[ALERT_WARNING, CLOSE_NOTIFY], out);
    }
}
