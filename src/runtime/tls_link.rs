//! One connection's TLS, sans-IO: ciphertext in, plaintext out, and the
//! other way round, with the sockets left to the caller (the HTTP phase
//! during the handshake and the request, the reactor afterwards).
//!
//! Runtime layer, a leaf over rustls's unbuffered API, which works on
//! buffers the caller owns. That is what keeps wss cheap here: a
//! connection holds its rustls state and nothing else while idle; records
//! are opened into the reader's plaintext buffer and sealed into the
//! writer's per-core scratch buffer (`outbox`), and only ciphertext the
//! kernel did not take stays with the connection, queued like a frame.
//! The one buffer of its own is for a record that arrived in part, and it
//! is given back as soon as the record is whole.

use std::sync::Arc;

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls::ServerConfig;

/// Bytes a record adds to its plaintext at most: a 5-byte header, an
/// 8-byte explicit nonce (TLS 1.2 AES-GCM) or a content type byte (TLS
/// 1.3), and a 16-byte tag; rounded up.
pub(super) const RECORD_OVERHEAD: usize = 32;

/// The largest plaintext of one record (RFC 8446, section 5.1).
pub(super) const MAX_RECORD_PLAINTEXT: usize = 16 * 1024;

/// Why a TLS connection failed, as `/metrics` counts handshake failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// The handshake did not finish within `limits.handshake_timeout_ms`.
    Timeout,
    /// Plain HTTP arrived on a TLS listener (answered with a 400).
    PlainHttp,
    /// Bytes that are not TLS records.
    Malformed,
    /// No protocol version, cipher suite or ALPN protocol in common.
    Incompatible,
    /// A client certificate missing or refused (mutual TLS).
    ClientCertificate,
    /// The client ended the handshake with an alert (it refused ours).
    AlertReceived,
    /// The client closed the connection during the handshake.
    Closed,
    /// Any other rustls error.
    Other,
}

impl TlsFailure {
    /// Every failure with its `/metrics` label.
    pub const ALL: [(TlsFailure, &'static str); 8] = [
        (TlsFailure::Timeout, "timeout"),
        (TlsFailure::PlainHttp, "plain_http"),
        (TlsFailure::Malformed, "malformed"),
        (TlsFailure::Incompatible, "incompatible"),
        (TlsFailure::ClientCertificate, "client_certificate"),
        (TlsFailure::AlertReceived, "alert_received"),
        (TlsFailure::Closed, "closed"),
        (TlsFailure::Other, "other"),
    ];

    pub(super) fn of(e: &rustls::Error) -> TlsFailure {
        use rustls::Error as E;
        match e {
            E::InvalidMessage(_)
            | E::InappropriateMessage { .. }
            | E::InappropriateHandshakeMessage { .. }
            | E::DecryptError
            | E::PeerMisbehaved(_) => TlsFailure::Malformed,
            E::PeerIncompatible(_) | E::NoApplicationProtocol => TlsFailure::Incompatible,
            E::NoCertificatesPresented | E::InvalidCertificate(_) => TlsFailure::ClientCertificate,
            E::AlertReceived(_) => TlsFailure::AlertReceived,
            _ => TlsFailure::Other,
        }
    }
}

/// A TLS connection's state between reads and writes.
pub struct TlsLink {
    conn: UnbufferedServerConnection,
    /// Ciphertext of a record not yet whole.
    partial: Vec<u8>,
    /// The client sent close_notify.
    peer_closed: bool,
}

impl std::fmt::Debug for TlsLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsLink")
            .field("handshaking", &self.conn.is_handshaking())
            .field("partial", &self.partial.len())
            .finish()
    }
}

impl TlsLink {
    pub(super) fn new(config: Arc<ServerConfig>) -> Result<TlsLink, rustls::Error> {
        Ok(TlsLink {
            conn: UnbufferedServerConnection::new(config)?,
            partial: Vec::new(),
            peer_closed: false,
        })
    }

    pub(super) fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// The subject common name of the client certificate the handshake
    /// verified (mutual TLS), if any.
    pub(super) fn client_name(&self) -> Option<String> {
        let cert = self.conn.peer_certificates()?.first()?;
        crate::tls::x509::subject_common_name(cert).ok().flatten()
    }

    /// The client sent close_notify: no more input will come.
    pub(super) fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Takes ciphertext read from the socket: appends what it decrypts to
    /// `plain`, and what the connection must send in answer (handshake
    /// messages; an alert on failure) to `out`. On an error `out` holds
    /// the alert to send before closing, and the link is done with.
    pub(super) fn receive(
        &mut self,
        fresh: &mut [u8],
        plain: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<(), rustls::Error> {
        let result = if self.partial.is_empty() {
            let r = self.process(fresh, plain, out);
            let used = *r.as_ref().unwrap_or(&fresh.len());
            if used < fresh.len() {
                self.partial.extend_from_slice(&fresh[used..]);
            }
            r
        } else {
            self.partial.extend_from_slice(fresh);
            let mut buf = std::mem::take(&mut self.partial);
            let r = self.process(&mut buf, plain, out);
            if let Ok(used) = r {
                buf.drain(..used);
                if !buf.is_empty() {
                    self.partial = buf;
                }
            }
            r
        };
        result.map(|_| ())
    }

    /// Runs the records of `buf` through rustls; returns the bytes used.
    fn process(
        &mut self,
        buf: &mut [u8],
        plain: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<usize, rustls::Error> {
        let mut used = 0;
        loop {
            let UnbufferedStatus { discard, state } =
                self.conn.process_tls_records(&mut buf[used..]);
            let state = match state {
                Ok(state) => state,
                Err(e) => {
                    used += discard;
                    self.encode_pending(&mut buf[used..], out);
                    return Err(e);
                }
            };
            let more = match state {
                ConnectionState::ReadTraffic(mut records) => {
                    while let Some(record) = records.next_record() {
                        plain.extend_from_slice(record?.payload);
                    }
                    true
                }
                ConnectionState::EncodeTlsData(mut data) => {
                    encode(&mut data, out);
                    true
                }
                ConnectionState::TransmitTlsData(sent) => {
                    // Sent in order by the caller, from `out`.
                    sent.done();
                    true
                }
                ConnectionState::PeerClosed => {
                    self.peer_closed = true;
                    true
                }
                ConnectionState::Closed => {
                    self.peer_closed = true;
                    false
                }
                _ => false,
            };
            used += discard;
            if !more {
                return Ok(used);
            }
        }
    }

    /// Encodes the alert rustls queued with an error. One call only: the
    /// alert is the one message queued, and rustls hands queued messages
    /// out before it looks at the input again; a second call would run
    /// the failed input through it once more. `buf` must be what the
    /// failed call was given, less what it discarded: rustls keeps
    /// positions in the buffer of a handshake message received in part,
    /// and a call with another buffer would find them out of bounds.
    fn encode_pending(&mut self, buf: &mut [u8], out: &mut Vec<u8>) {
        if let Ok(ConnectionState::EncodeTlsData(mut data)) =
            self.conn.process_tls_records(buf).state
        {
            encode(&mut data, out);
        }
    }

    /// Encrypts `plain` (at most [`MAX_RECORD_PLAINTEXT`] bytes make one
    /// record) into `scratch`; returns the ciphertext's length. Messages
    /// rustls must send first (a key update) go to `before`, to be sent
    /// ahead of the records.
    pub(super) fn seal(
        &mut self,
        plain: &[u8],
        scratch: &mut [u8],
        before: &mut Vec<u8>,
    ) -> Result<usize, SealError> {
        loop {
            // The kept part of a record, not an empty buffer: see
            // `encode_pending`. It holds no whole record (`receive` took
            // them all), so nothing is read from it here.
            let UnbufferedStatus { discard, state } =
                self.conn.process_tls_records(&mut self.partial);
            let done = match state {
                Ok(ConnectionState::EncodeTlsData(mut data)) => {
                    encode(&mut data, before);
                    None
                }
                Ok(ConnectionState::TransmitTlsData(sent)) => {
                    sent.done();
                    None
                }
                Ok(ConnectionState::WriteTraffic(mut w)) => {
                    Some(w.encrypt(plain, scratch).map_err(|e| match e {
                        EncryptError::InsufficientSize(s) => SealError::Room(s.required_size),
                        _ => SealError::Closed,
                    }))
                }
                // Closing (or failed): nothing more is sent.
                _ => Some(Err(SealError::Closed)),
            };
            self.partial.drain(..discard);
            if let Some(result) = done {
                return result;
            }
        }
    }

    /// Encrypts `plain`, in as many records as it takes, appending them
    /// (after anything rustls must send first) to `out`.
    pub(super) fn seal_to_vec(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), SealError> {
        let records = plain.len().div_ceil(MAX_RECORD_PLAINTEXT).max(1);
        let mut room = plain.len() + records * RECORD_OVERHEAD;
        loop {
            let mut buf = vec![0u8; room];
            match self.seal(plain, &mut buf, out) {
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    return Ok(());
                }
                Err(SealError::Room(need)) if need > room => room = need,
                Err(e) => return Err(e),
            }
        }
    }

    /// A close_notify alert, appended to `out` (nothing if it cannot be
    /// sent any more).
    pub(super) fn close_notify(&mut self, out: &mut Vec<u8>) {
        let UnbufferedStatus { discard, state } = self.conn.process_tls_records(&mut self.partial);
        if let Ok(ConnectionState::WriteTraffic(mut w)) = state {
            let mut alert = [0u8; 64];
            if let Ok(n) = w.queue_close_notify(&mut alert) {
                out.extend_from_slice(&alert[..n]);
            }
        }
        self.partial.drain(..discard);
    }
}

/// Why [`TlsLink::seal`] made no ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SealError {
    /// `scratch` needs this many bytes.
    Room(usize),
    /// The connection sends no more application data.
    Closed,
}

/// Appends one queued handshake or alert message to `out`.
fn encode(
    data: &mut rustls::unbuffered::EncodeTlsData<'_, rustls::server::ServerConnectionData>,
    out: &mut Vec<u8>,
) {
    let start = out.len();
    let mut room = 512;
    loop {
        out.resize(start + room, 0);
        match data.encode(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return;
            }
            Err(EncodeError::InsufficientSize(s)) => room = s.required_size,
            Err(_) => {
                out.truncate(start);
                return;
            }
        }
    }
}

/// A server link and a rustls client with their handshake done in memory,
/// for the tests of what runs over a link (here and in `outbox`).
#[cfg(test)]
pub(super) mod testing {
    use super::*;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

    /// A server config with a self-signed certificate, and a client
    /// config that trusts it.
    pub(crate) fn configs() -> (Arc<ServerConfig>, Arc<rustls::ClientConfig>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let der: CertificateDer<'static> = cert.der().clone();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    /// Feeds `bytes` to `link` cut at `cuts` (positions, any order);
    /// returns the plaintext, the answers, and whether it failed.
    pub(crate) fn feed(
        link: &mut TlsLink,
        bytes: &[u8],
        cuts: &[usize],
    ) -> (Vec<u8>, Vec<u8>, bool) {
        let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        at.push(bytes.len());
        at.sort_unstable();
        let (mut plain, mut out, mut start) = (Vec::new(), Vec::new(), 0);
        for end in at {
            if end > start {
                let mut chunk = bytes[start..end].to_vec();
                if link.receive(&mut chunk, &mut plain, &mut out).is_err() {
                    return (plain, out, true);
                }
                start = end;
            }
        }
        (plain, out, false)
    }

    /// Runs the handshake of `client` with `link`, each flight cut at
    /// `cuts`.
    pub(crate) fn handshake(
        link: &mut TlsLink,
        client: &mut rustls::ClientConnection,
        cuts: &[usize],
    ) {
        while client.is_handshaking() || link.is_handshaking() {
            let mut flight = Vec::new();
            client.write_tls(&mut flight).unwrap();
            let (_, answer, failed) = feed(link, &flight, cuts);
            assert!(!failed, "the handshake failed");
            client.read_tls(&mut &answer[..]).unwrap();
            client.process_new_packets().unwrap();
        }
    }

    /// A link and a client, connected.
    pub(crate) fn connected() -> (TlsLink, rustls::ClientConnection) {
        let (server, client_config) = configs();
        let mut link = TlsLink::new(server).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let mut client = rustls::ClientConnection::new(client_config, name).unwrap();
        handshake(&mut link, &mut client, &[]);
        (link, client)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use proptest::prelude::*;
    use rustls::pki_types::ServerName;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever arrives, in whatever pieces, is an error at worst:
        /// never a panic (rustls's unbuffered API panics when misused).
        #[test]
        fn arbitrary_input_in_arbitrary_pieces_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..3000),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
            record_header in any::<bool>(),
        ) {
            let (server, _) = configs();
            let mut link = TlsLink::new(server).unwrap();
            let mut input = if record_header { vec![0x16, 0x03, 0x01, 0x01, 0x00] } else { Vec::new() };
            input.extend_from_slice(&bytes);
            feed(&mut link, &input, &cuts);
        }

        /// A real handshake in any pieces, then records both ways: what
        /// one side seals the other opens, whatever the sizes, across key
        /// updates the client asks for (TLS 1.3) between messages.
        #[test]
        fn records_round_trip_after_a_handshake_in_pieces(
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
            sizes in proptest::collection::vec(0usize..40_000, 1..5),
            key_updates in proptest::collection::vec(any::<bool>(), 5),
            garbage in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let (server, client_config) = configs();
            let mut link = TlsLink::new(server).unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            let mut client = rustls::ClientConnection::new(client_config, name).unwrap();
            handshake(&mut link, &mut client, &cuts);
            for (&size, &update) in sizes.iter().zip(&key_updates) {
                let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
                // Client to server.
                if update {
                    client.refresh_traffic_keys().unwrap();
                }
                std::io::Write::write_all(&mut client.writer(), &data).unwrap();
                let mut wire = Vec::new();
                while client.wants_write() {
                    client.write_tls(&mut wire).unwrap();
                }
                let (plain, answer, failed) = feed(&mut link, &wire, &cuts);
                prop_assert!(!failed);
                prop_assert!(plain == data);
                // Server to client: the server's own key update first (its
                // answer to the client's), then records a record's worth
                // at a time.
                let mut sealed = answer;
                for chunk in data.chunks(MAX_RECORD_PLAINTEXT) {
                    link.seal_to_vec(chunk, &mut sealed).unwrap();
                }
                let mut reader = &sealed[..];
                let mut got = Vec::new();
                while !reader.is_empty() {
                    client.read_tls(&mut reader).unwrap();
                    client.process_new_packets().unwrap();
                    let _ = std::io::Read::read_to_end(&mut client.reader(), &mut got);
                }
                prop_assert!(got == data);
            }
            // Garbage after a good session: an error, not a panic.
            feed(&mut link, &garbage, &cuts);
        }
    }
}
