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
//!
//! rustls runs the handshake, and TLS 1.2 connections for their life.
//! Once a TLS 1.3 handshake is done, the link takes the traffic keys over
//! and its records go to [`super::tls_records`], which keeps only the two
//! ciphers: the rustls connection (3.2 KB) is dropped.

use std::sync::Arc;

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls::ServerConfig;

use super::tls_records::{Records, TakeOver};

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

/// Who holds a connection's TLS state.
enum Stage {
    /// rustls: the handshake, and TLS 1.2 for the connection's life.
    Rustls(Box<UnbufferedServerConnection>),
    /// The hub's own record layer, TLS 1.3 after the handshake.
    Records(Box<Records>),
    /// A take-over that failed halfway: nothing more is sent or read.
    Gone,
}

/// A TLS connection's state between reads and writes.
pub struct TlsLink {
    stage: Stage,
    /// Ciphertext of a record not yet whole.
    partial: Vec<u8>,
    /// The client sent close_notify.
    peer_closed: bool,
    /// The server config lets the keys be taken over after a TLS 1.3
    /// handshake (`enable_secret_extraction`).
    take_over: bool,
    /// The subject common name of the verified client certificate, kept
    /// when rustls hands the connection over.
    client_name: Option<String>,
}

impl std::fmt::Debug for TlsLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsLink")
            .field("handshaking", &self.is_handshaking())
            .field("partial", &self.partial.len())
            .finish()
    }
}

impl TlsLink {
    pub(super) fn new(config: Arc<ServerConfig>) -> Result<TlsLink, rustls::Error> {
        let take_over = config.enable_secret_extraction;
        Ok(TlsLink {
            stage: Stage::Rustls(Box::new(UnbufferedServerConnection::new(config)?)),
            partial: Vec::new(),
            peer_closed: false,
            take_over,
            client_name: None,
        })
    }

    pub(super) fn is_handshaking(&self) -> bool {
        match &self.stage {
            Stage::Rustls(conn) => conn.is_handshaking(),
            Stage::Records(_) | Stage::Gone => false,
        }
    }

    /// The subject common name of the client certificate the handshake
    /// verified (mutual TLS), if any.
    pub(super) fn client_name(&self) -> Option<String> {
        match &self.stage {
            Stage::Rustls(conn) => {
                let cert = conn.peer_certificates()?.first()?;
                crate::tls::x509::subject_common_name(cert).ok().flatten()
            }
            Stage::Records(_) | Stage::Gone => self.client_name.clone(),
        }
    }

    /// Once a TLS 1.3 handshake is done, its records go to the hub's own
    /// layer ([`Records`]); TLS 1.2 stays with rustls.
    fn maybe_take_over(&mut self) -> Result<(), rustls::Error> {
        if !self.take_over || self.is_handshaking() || !matches!(self.stage, Stage::Rustls(_)) {
            return Ok(());
        }
        self.client_name = self.client_name();
        let Stage::Rustls(conn) = std::mem::replace(&mut self.stage, Stage::Gone) else {
            unreachable!("matched above");
        };
        self.stage = match Records::take_over(conn) {
            Ok(records) => Stage::Records(Box::new(records)),
            Err(TakeOver::NotTls13(conn)) => {
                self.take_over = false;
                Stage::Rustls(conn)
            }
            Err(TakeOver::Failed(e)) => return Err(e),
        };
        Ok(())
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
        result?;
        self.maybe_take_over()
    }

    /// Runs the records of `buf` through rustls; returns the bytes used.
    fn process(
        &mut self,
        buf: &mut [u8],
        plain: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<usize, rustls::Error> {
        let conn = match &mut self.stage {
            Stage::Rustls(conn) => conn,
            Stage::Records(records) => {
                let opened = records.open(buf, plain, out)?;
                self.peer_closed |= opened.closed;
                return Ok(opened.used);
            }
            Stage::Gone => return Err(rustls::Error::General("TLS state lost".into())),
        };
        let mut used = 0;
        loop {
            let UnbufferedStatus { discard, state } = conn.process_tls_records(&mut buf[used..]);
            let state = match state {
                Ok(state) => state,
                Err(e) => {
                    used += discard;
                    encode_pending(conn, &mut buf[used..], out);
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
        let conn = match &mut self.stage {
            Stage::Rustls(conn) => conn,
            Stage::Records(records) => {
                return records.seal(plain, scratch, before).map_err(|e| match e {
                    Ok(room) => SealError::Room(room),
                    Err(_) => SealError::Closed,
                })
            }
            Stage::Gone => return Err(SealError::Closed),
        };
        loop {
            // The kept part of a record, not an empty buffer: see
            // `encode_pending`. It holds no whole record (`receive` took
            // them all), so nothing is read from it here.
            let UnbufferedStatus { discard, state } = conn.process_tls_records(&mut self.partial);
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
        let conn = match &mut self.stage {
            Stage::Rustls(conn) => conn,
            Stage::Records(records) => return records.close_notify(out),
            Stage::Gone => return,
        };
        let UnbufferedStatus { discard, state } = conn.process_tls_records(&mut self.partial);
        if let Ok(ConnectionState::WriteTraffic(mut w)) = state {
            let mut alert = [0u8; 64];
            if let Ok(n) = w.queue_close_notify(&mut alert) {
                out.extend_from_slice(&alert[..n]);
            }
        }
        self.partial.drain(..discard);
    }
}

/// Encodes the alert rustls queued with an error. One call only: the alert
/// is the one message queued, and rustls hands queued messages out before
/// it looks at the input again; a second call would run the failed input
/// through it once more. `buf` must be what the failed call was given,
/// less what it discarded: rustls keeps positions in the buffer of a
/// handshake message received in part, and a call with another buffer
/// would find them out of bounds.
fn encode_pending(conn: &mut UnbufferedServerConnection, buf: &mut [u8], out: &mut Vec<u8>) {
    if let Ok(ConnectionState::EncodeTlsData(mut data)) = conn.process_tls_records(buf).state {
        encode(&mut data, out);
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
    /// config that trusts it (TLS 1.3, the keys taken over).
    pub(crate) fn configs() -> (Arc<ServerConfig>, Arc<rustls::ClientConfig>) {
        configs_with(false, true)
    }

    /// [`configs`] with the client on TLS 1.2 only, and the keys taken
    /// over by the hub after a TLS 1.3 handshake or left to rustls.
    pub(crate) fn configs_with(
        tls12: bool,
        take_over: bool,
    ) -> (Arc<ServerConfig>, Arc<rustls::ClientConfig>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let der: CertificateDer<'static> = cert.der().clone();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        server.enable_secret_extraction = take_over;
        let versions: &[&rustls::SupportedProtocolVersion] = if tls12 {
            &[&rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13]
        };
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
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

    /// Seals `data` a record's worth at a time after `first` (records
    /// already made) and lets `client` read it all.
    fn to_client(
        link: &mut TlsLink,
        client: &mut rustls::ClientConnection,
        first: Vec<u8>,
        data: &[u8],
    ) -> Vec<u8> {
        let mut sealed = first;
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
        got
    }

    /// What `client` has to send, fed to `link`.
    fn from_client(
        link: &mut TlsLink,
        client: &mut rustls::ClientConnection,
    ) -> (Vec<u8>, Vec<u8>, bool) {
        let mut wire = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut wire).unwrap();
        }
        feed(link, &wire, &[])
    }

    #[test]
    fn the_sending_key_changes_before_its_limit_and_the_client_follows() {
        let (mut link, mut client) = connected();
        let Stage::Records(records) = &mut link.stage else {
            panic!("TLS 1.3 records are the hub's own");
        };
        records.rekey_after(3);
        let data: Vec<u8> = (0..10 * 1000).map(|i| (i % 251) as u8).collect();
        for chunk in data.chunks(1000) {
            assert_eq!(to_client(&mut link, &mut client, Vec::new(), chunk), chunk);
        }
        let Stage::Records(records) = &link.stage else {
            unreachable!()
        };
        assert!(
            records.sealed_with_this_key() <= 3,
            "ten records, a new key every three"
        );
        // And the client's own records still open after it updated.
        std::io::Write::write_all(&mut client.writer(), b"after").unwrap();
        let (plain, _, failed) = from_client(&mut link, &mut client);
        assert!(!failed && plain == b"after");
    }

    #[test]
    fn close_notify_ends_the_input_and_a_fatal_alert_is_an_error() {
        let (mut link, mut client) = connected();
        std::io::Write::write_all(&mut client.writer(), b"last").unwrap();
        client.send_close_notify();
        let (plain, _, failed) = from_client(&mut link, &mut client);
        assert!(!failed && plain == b"last");
        assert!(link.peer_closed());
        let mut out = Vec::new();
        link.close_notify(&mut out);
        assert!(!out.is_empty(), "our close_notify");

        // A record that does not open: an error, with our alert.
        let (mut link, _client) = connected();
        let mut forged = vec![0x17, 0x03, 0x03, 0x00, 0x20];
        forged.extend_from_slice(&[7u8; 32]);
        let (_, alert, failed) = feed(&mut link, &forged, &[]);
        assert!(failed);
        assert_eq!(alert.first(), Some(&0x17), "an encrypted alert record");
        // A record longer than TLS 1.3 allows.
        let (mut link, _client) = connected();
        let (_, _, failed) = feed(&mut link, &[0x17, 0x03, 0x03, 0xff, 0xff], &[]);
        assert!(failed);
    }

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
            tls12 in any::<bool>(),
            take_over in any::<bool>(),
        ) {
            let (server, client_config) = configs_with(tls12, take_over);
            let mut link = TlsLink::new(server).unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            let mut client = rustls::ClientConnection::new(client_config, name).unwrap();
            handshake(&mut link, &mut client, &cuts);
            prop_assert_eq!(
                matches!(link.stage, Stage::Records(_)),
                take_over && !tls12,
                "TLS 1.3 records are the hub's own when the keys may be taken"
            );
            for (&size, &update) in sizes.iter().zip(&key_updates) {
                let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
                // Client to server.
                if update && !tls12 {
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
                prop_assert!(to_client(&mut link, &mut client, answer, &data) == data);
            }
            // Garbage after a good session: an error, not a panic.
            feed(&mut link, &garbage, &cuts);
        }
    }
}
