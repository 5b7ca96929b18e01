//! What every connection of the tool runs over: plain TCP (ws, http), or
//! TLS over TCP (wss, https) with `--tls-ca`, so that a server's wss can be
//! measured with the same load, the same readers and the same counting as
//! its plain ws.
//!
//! The TLS client is rustls with the ring provider, trusting only the CA in
//! the given PEM file (`eventhub dev-cert` writes one), for the name in the
//! server's address (the dev certificate is for 127.0.0.1 and localhost),
//! TLS 1.3 or 1.2 as the server picks, ALPN `http/1.1` as a browser sends
//! it. Connecting and upgrading go through tokio-rustls, on the tool's own
//! runtime; the readers then take each subscriber over:
//!
//! - the epoll reader as a raw socket and the rustls session
//!   ([`Stream::into_raw`]), which it feeds the ciphertext of each read;
//! - the tungstenite reader as the stream itself, on the runtime of its
//!   own. A tokio socket belongs to the runtime whose I/O driver it was
//!   registered with, and a tokio-rustls stream cannot be taken apart and
//!   put together again, so the socket inside moves on its own
//!   ([`Stream::detach`], [`Stream::attach`]) with the session left in
//!   place.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Where the tool connects, and how.
#[derive(Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    tls: Option<TlsConnector>,
}

impl Endpoint {
    /// Plain TCP to `addr`.
    pub fn plain(addr: SocketAddr) -> Endpoint {
        Endpoint { addr, tls: None }
    }

    /// TLS to `addr`, trusting the CA certificates in the PEM file `ca`.
    pub fn tls(addr: SocketAddr, ca: &Path) -> io::Result<Endpoint> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).map_err(io::Error::other)? {
            roots
                .add(cert.map_err(io::Error::other)?)
                .map_err(io::Error::other)?;
        }
        if roots.is_empty() {
            return Err(io::Error::other(format!(
                "no certificate in {}",
                ca.display()
            )));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Endpoint {
            addr,
            tls: Some(TlsConnector::from(Arc::new(config))),
        })
    }

    /// `ws` or `wss`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "wss"
        } else {
            "ws"
        }
    }

    /// Connects from `source` if given (with a 4 KiB receive buffer if
    /// `small_rcvbuf`), with Nagle off, TLS handshake done if TLS.
    pub async fn connect(&self, source: Option<IpAddr>, small_rcvbuf: bool) -> io::Result<Stream> {
        let socket = TcpSocket::new_v4()?;
        if let Some(ip) = source {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        if small_rcvbuf {
            socket.set_recv_buffer_size(4096)?;
        }
        let tcp = socket.connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let socket = Socket {
            tokio: Some(tcp),
            moving: None,
        };
        match &self.tls {
            None => Ok(Stream::Plain(socket)),
            Some(connector) => {
                let name = ServerName::IpAddress(self.addr.ip().into());
                let tls = connector.connect(name, socket).await?;
                Ok(Stream::Tls(Box::new(tls)))
            }
        }
    }
}

/// A TCP socket that can move to another runtime: registered with one
/// (`tokio`), or on its way there (`moving`, a std socket to be registered
/// where it lands). Neither once a move failed (the connection is lost).
pub struct Socket {
    tokio: Option<TcpStream>,
    moving: Option<std::net::TcpStream>,
}

impl Socket {
    fn detach(&mut self) -> io::Result<()> {
        if let Some(tcp) = self.tokio.take() {
            self.moving = Some(tcp.into_std()?);
        }
        Ok(())
    }

    fn attach(&mut self) -> io::Result<()> {
        if let Some(std) = self.moving.take() {
            self.tokio = Some(TcpStream::from_std(std)?);
        }
        Ok(())
    }

    fn registered(self: Pin<&mut Self>) -> io::Result<Pin<&mut TcpStream>> {
        self.get_mut().tokio.as_mut().map(Pin::new).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "socket not on this runtime")
        })
    }

    fn into_fd(self) -> io::Result<OwnedFd> {
        match (self.tokio, self.moving) {
            (Some(tcp), _) => Ok(tcp.into_std()?.into()),
            (None, Some(std)) => Ok(std.into()),
            (None, None) => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "socket lost in a move",
            )),
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.registered() {
            Ok(tcp) => tcp.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.registered() {
            Ok(tcp) => tcp.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.registered() {
            Ok(tcp) => tcp.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.registered() {
            Ok(tcp) => tcp.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

/// A connection: plain, or TLS.
pub enum Stream {
    Plain(Socket),
    Tls(Box<TlsStream<Socket>>),
}

impl Stream {
    fn socket(&mut self) -> &mut Socket {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(tls) => tls.get_mut().0,
        }
    }

    /// Takes the socket off the runtime it was registered with (it can
    /// then be sent to another thread and [`Stream::attach`]ed there).
    pub fn detach(&mut self) -> io::Result<()> {
        self.socket().detach()
    }

    /// Registers a [`Stream::detach`]ed socket with the runtime this is
    /// called on.
    pub fn attach(&mut self) -> io::Result<()> {
        self.socket().attach()
    }

    /// The socket, and the TLS session over it if any (with whatever it
    /// holds that was not read yet).
    pub fn into_raw(self) -> io::Result<(OwnedFd, Option<ClientConnection>)> {
        match self {
            Stream::Plain(s) => Ok((s.into_fd()?, None)),
            Stream::Tls(tls) => {
                let (socket, session) = tls.into_inner();
                Ok((socket.into_fd()?, Some(session)))
            }
        }
    }

    /// What TLS was agreed on (`TLSv1_3 TLS13_AES_256_GCM_SHA384`), if TLS.
    pub fn tls_description(&self) -> Option<String> {
        let Stream::Tls(tls) = self else {
            return None;
        };
        let session = tls.get_ref().1;
        let version = session.protocol_version()?;
        let suite = session.negotiated_cipher_suite()?;
        Some(format!("{version:?} {:?}", suite.suite()))
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}
