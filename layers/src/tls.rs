//! TLS between scipp peers: a transport beneath framing, with the peer's
//! certificate identity.
//!
//! [`TlsAcceptor`] and [`TlsConnector`] run a TLS handshake (rustls, `ring`
//! provider, TLS 1.2 and 1.3) on any connected stream, then the SCIPP
//! handshake on the encrypted stream ([`Peer::accept`] /
//! [`Peer::channel`]), so every layer above framing is unchanged. Both
//! return the [`Channel`] with the other side's [`PeerIdentity`]: the names
//! in its end-entity certificate. The channel's layers see it too
//! ([`ChannelInfo::identity`](crate::peer::ChannelInfo::identity), in a
//! layer made per channel with
//! [`Peer::inbound_message_layer_fn`](crate::peer::Peer::inbound_message_layer_fn)),
//! so an [`AuthorizeLayer`](crate::authorize::AuthorizeLayer) can allow
//! per identity.
//!
//! - **Server certificates**: the acceptor presents a certificate chain;
//!   the connector checks it against its CA roots and the name it dialed
//!   (a DNS name, or an IP address, which the certificate must list).
//! - **Mutual TLS**: given client CA roots, the acceptor requires a client
//!   certificate that chains to them. A caller without one, with an
//!   expired one or one from another CA is refused during the TLS
//!   handshake, before any SCIPP frame is read: no `Aid`, no `Start`.
//!
//! TLS is for scipp peers only: tractor speaks plain TCP, and plain TCP
//! stays the default everywhere.
//!
//! ```
//! use scipp_layers::{peer::Peer, tls::{TlsAcceptor, TlsConnector}};
//! use scipp_codecs::msgpack::MsgpackCodec;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let made = rcgen::generate_simple_self_signed(vec!["svc.test".into()])?;
//! # let (server_cert, server_key) = (made.cert.pem(), made.key_pair.serialize_pem());
//! # let ca_pem = server_cert.clone();
//! // PEM text, e.g. read from files
//! let acceptor = TlsAcceptor::from_pem(server_cert.as_bytes(), server_key.as_bytes(), None)?;
//! let connector = TlsConnector::from_pem(ca_pem.as_bytes(), None)?;
//!
//! let server = Peer::new("scipp_svc", MsgpackCodec::new());
//! let client = Peer::new("scipp_client", MsgpackCodec::new());
//! let (a, b) = tokio::io::duplex(1 << 16);
//! let (served, chan) = tokio::join!(
//!     acceptor.accept(&server, a),
//!     connector.channel(&client, b, "svc.test"),
//! );
//! let (_served, client_identity) = served?;
//! let (_chan, server_identity) = chan?;
//! assert_eq!(client_identity, None, "no client certificate asked for");
//! assert_eq!(server_identity.dns_names(), ["svc.test"]);
//! # Ok(()) }
//! ```

use crate::peer::{Channel, ConnectInfo, Peer, PeerError};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use scipp_codecs::msg::Addr;
use scipp_codecs::Codec;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls;

pub use tokio_rustls::rustls::{ClientConfig, ServerConfig};

/// How long the TLS handshake may take by default: 10 s, as the SCIPP
/// handshake's timeout.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a TLS setup or connection failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM input could not be read.
    #[error("{what}: {source}")]
    Pem {
        /// Which input (e.g. "server certificate").
        what: &'static str,
        /// The parser's error.
        source: rustls_pki_types::pem::Error,
    },
    /// A PEM input held no certificate (or key) where one is needed.
    #[error("{0}: no PEM section found")]
    Empty(&'static str),
    /// rustls refused the configuration (e.g. a key that does not match
    /// the certificate, an unusable CA certificate).
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// A certificate does not parse as X.509.
    #[error("certificate: {0}")]
    Certificate(String),
    /// Client CA roots could not be turned into a verifier.
    #[error("TLS client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The name to check the server's certificate against is not a DNS
    /// name or IP address.
    #[error("{0:?} is not a DNS name or IP address")]
    ServerName(String),
    /// The TLS handshake failed: a certificate was refused (unknown CA,
    /// expired, missing client certificate, wrong name), the other side
    /// sent an alert, or it does not speak TLS.
    /// [`rustls_error`](Self::rustls_error) tells which.
    #[error("TLS handshake: {0}")]
    Handshake(std::io::Error),
    /// The TLS handshake did not finish in time.
    #[error("TLS handshake: not done within {0:?}")]
    HandshakeTimeout(Duration),
    /// Connecting failed.
    #[error("connect: {0}")]
    Io(std::io::Error),
    /// The SCIPP handshake over TLS failed. With TLS 1.3 this is also how
    /// a *client* learns that the server refused its certificate (the
    /// server checks it after the client considers the TLS handshake done,
    /// and answers with an alert instead of its `Aid`).
    #[error(transparent)]
    Peer(#[from] PeerError),
}

impl TlsError {
    /// The rustls error behind a [`Handshake`](Self::Handshake) failure
    /// (e.g. `InvalidCertificate(Expired)`, `AlertReceived(..)`), if any.
    pub fn rustls_error(&self) -> Option<&rustls::Error> {
        match self {
            TlsError::Handshake(e) => e.get_ref()?.downcast_ref(),
            _ => None,
        }
    }
}

/// Who the other side is, as its verified end-entity certificate says.
///
/// Compare names, not bytes, for authorization: a renewed certificate
/// keeps its names. Only certificates that chained to the configured
/// roots (and were valid for their purpose and time) make it here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    dns_names: Vec<String>,
    uri_names: Vec<String>,
    certificate: CertificateDer<'static>,
}

impl PeerIdentity {
    /// Reads the names of an end-entity certificate (DER).
    ///
    /// # Errors
    /// The certificate does not parse.
    pub fn from_certificate(certificate: CertificateDer<'static>) -> Result<Self, TlsError> {
        let parsed = webpki::EndEntityCert::try_from(&certificate)
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
        let dns_names = parsed.valid_dns_names().map(str::to_owned).collect();
        let uri_names = parsed.valid_uri_names().map(str::to_owned).collect();
        Ok(PeerIdentity {
            dns_names,
            uri_names,
            certificate,
        })
    }

    /// The DNS names of the certificate's subject alternative names.
    pub fn dns_names(&self) -> &[String] {
        &self.dns_names
    }

    /// The URIs of the certificate's subject alternative names (e.g. a
    /// SPIFFE id).
    pub fn uri_names(&self) -> &[String] {
        &self.uri_names
    }

    /// Whether `name` is one of the certificate's DNS names or URIs.
    pub fn has_name(&self, name: &str) -> bool {
        self.dns_names
            .iter()
            .chain(&self.uri_names)
            .any(|n| n == name)
    }

    /// The end-entity certificate itself (DER).
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.certificate
    }

    fn of(certs: Option<&[CertificateDer<'static>]>) -> Option<Self> {
        let end_entity = certs?.first()?.clone();
        match Self::from_certificate(end_entity) {
            Ok(identity) => Some(identity),
            Err(e) => {
                // rustls verified it, so this does not happen; no name then
                tracing::warn!("peer certificate: {e}");
                None
            }
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(what: &'static str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem { what, source })?;
    if certs.is_empty() {
        return Err(TlsError::Empty(what));
    }
    Ok(certs)
}

fn key(what: &'static str, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|source| match source {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::Empty(what),
        source => TlsError::Pem { what, source },
    })
}

fn roots(what: &'static str, pem: &[u8]) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(what, pem)? {
        roots.add(cert)?;
    }
    Ok(roots)
}

/// Runs `handshake` within `limit`.
async fn bounded<T>(
    limit: Duration,
    handshake: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T, TlsError> {
    match tokio::time::timeout(limit, handshake).await {
        Ok(done) => done.map_err(TlsError::Handshake),
        Err(_) => Err(TlsError::HandshakeTimeout(limit)),
    }
}

/// The accepting side: TLS with a server certificate, optionally requiring
/// client certificates, then [`Peer::accept`].
///
/// See the [module docs](self) for an example.
#[derive(Clone)]
pub struct TlsAcceptor {
    inner: tokio_rustls::TlsAcceptor,
    handshake_timeout: Duration,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// From PEM text: our certificate chain (end-entity first) and its
    /// private key; with `client_ca`, clients must present a certificate
    /// that chains to one of those roots (mutual TLS).
    ///
    /// # Errors
    /// Unreadable PEM, a key that does not fit, unusable roots.
    pub fn from_pem(
        cert_chain: &[u8],
        key_pem: &[u8],
        client_ca: Option<&[u8]>,
    ) -> Result<Self, TlsError> {
        let chain = certs("server certificate", cert_chain)?;
        let key = key("server key", key_pem)?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(pem) => {
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots("client CA", pem)?),
                    provider(),
                )
                .build()?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        Ok(Self::from_config(Arc::new(
            builder.with_single_cert(chain, key)?,
        )))
    }

    /// From a rustls configuration, for anything [`from_pem`](Self::from_pem)
    /// does not cover (optional client certificates, revocation lists,
    /// other providers).
    pub fn from_config(config: Arc<ServerConfig>) -> Self {
        TlsAcceptor {
            inner: tokio_rustls::TlsAcceptor::from(config),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// Bounds the TLS handshake (default [`DEFAULT_HANDSHAKE_TIMEOUT`]), so
    /// a connection that never speaks cannot hold an accept forever.
    pub fn handshake_timeout(mut self, limit: Duration) -> Self {
        self.handshake_timeout = limit;
        self
    }

    /// Runs the TLS handshake on `io`, then `peer`'s SCIPP handshake
    /// ([`Peer::accept`]) over it. The identity is the client's, if it
    /// presented a certificate.
    ///
    /// # Errors
    /// [`TlsError::Handshake`] when the client is refused (nothing of
    /// SCIPP was read then), [`TlsError::HandshakeTimeout`], or the SCIPP
    /// handshake's [`TlsError::Peer`].
    pub async fn accept<C, IO>(
        &self,
        peer: &Peer<C>,
        io: IO,
    ) -> Result<(Channel<C>, Option<PeerIdentity>), TlsError>
    where
        C: Codec,
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        self.accept_with(peer, io, ConnectInfo::new()).await
    }

    /// [`accept`](Self::accept), with what else is known about the
    /// connection (its address, say). The client's identity is added to
    /// it, so the channel's layers see it
    /// ([`ChannelInfo::identity`](crate::peer::ChannelInfo::identity),
    /// e.g. an [`AuthorizeLayer`](crate::authorize::AuthorizeLayer) with
    /// per-identity rules), and so does [`Channel::info`].
    ///
    /// # Errors
    /// As [`accept`](Self::accept).
    pub async fn accept_with<C, IO>(
        &self,
        peer: &Peer<C>,
        io: IO,
        connect: ConnectInfo,
    ) -> Result<(Channel<C>, Option<PeerIdentity>), TlsError>
    where
        C: Codec,
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let tls = bounded(self.handshake_timeout, self.inner.accept(io)).await?;
        let identity = PeerIdentity::of(tls.get_ref().1.peer_certificates());
        let connect = match &identity {
            Some(identity) => {
                tracing::debug!(names = ?identity.dns_names(), "TLS client certificate accepted");
                connect.identity(identity.clone())
            }
            None => connect,
        };
        Ok((peer.accept_with(tls, connect).await?, identity))
    }
}

/// The connecting side: TLS checking the server's certificate, optionally
/// presenting ours, then [`Peer::channel`].
///
/// See the [module docs](self) for an example.
#[derive(Clone)]
pub struct TlsConnector {
    inner: tokio_rustls::TlsConnector,
    handshake_timeout: Duration,
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnector")
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl TlsConnector {
    /// From PEM text: the CA roots the server's certificate must chain to,
    /// and optionally our certificate chain and key for mutual TLS.
    ///
    /// # Errors
    /// Unreadable PEM, a key that does not fit, unusable roots.
    pub fn from_pem(ca: &[u8], client_cert: Option<(&[u8], &[u8])>) -> Result<Self, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots("CA", ca)?);
        let config = match client_cert {
            None => builder.with_no_client_auth(),
            Some((chain, key_pem)) => builder.with_client_auth_cert(
                certs("client certificate", chain)?,
                key("client key", key_pem)?,
            )?,
        };
        Ok(Self::from_config(Arc::new(config)))
    }

    /// From a rustls configuration.
    pub fn from_config(config: Arc<ClientConfig>) -> Self {
        TlsConnector {
            inner: tokio_rustls::TlsConnector::from(config),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// Bounds the TLS handshake (default [`DEFAULT_HANDSHAKE_TIMEOUT`]).
    pub fn handshake_timeout(mut self, limit: Duration) -> Self {
        self.handshake_timeout = limit;
        self
    }

    /// Runs the TLS handshake on `io`, checking the server's certificate
    /// against `server_name` (a DNS name or an IP address), then `peer`'s
    /// SCIPP handshake ([`Peer::channel`]) over it. The identity is the
    /// server's.
    ///
    /// # Errors
    /// [`TlsError::ServerName`], [`TlsError::Handshake`] when the server's
    /// certificate is refused, [`TlsError::HandshakeTimeout`], or the
    /// SCIPP handshake's [`TlsError::Peer`].
    pub async fn channel<C, IO>(
        &self,
        peer: &Peer<C>,
        io: IO,
        server_name: &str,
    ) -> Result<(Channel<C>, PeerIdentity), TlsError>
    where
        C: Codec,
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        self.channel_with(peer, io, server_name, ConnectInfo::new())
            .await
    }

    async fn channel_with<C, IO>(
        &self,
        peer: &Peer<C>,
        io: IO,
        server_name: &str,
        connect: ConnectInfo,
    ) -> Result<(Channel<C>, PeerIdentity), TlsError>
    where
        C: Codec,
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| TlsError::ServerName(server_name.to_owned()))?;
        let tls = bounded(self.handshake_timeout, self.inner.connect(name, io)).await?;
        let identity = PeerIdentity::of(tls.get_ref().1.peer_certificates())
            .ok_or_else(|| TlsError::Empty("server certificate"))?;
        let connect = connect.identity(identity.clone());
        Ok((peer.channel_with(tls, connect).await?, identity))
    }

    /// Connects over TCP to `addr` and runs [`channel`](Self::channel),
    /// checking the certificate against `server_name`, or else the
    /// address's host.
    ///
    /// # Errors
    /// As [`channel`](Self::channel); [`TlsError::Io`] if connecting
    /// fails or `addr` is a Unix socket.
    pub async fn connect<C: Codec>(
        &self,
        peer: &Peer<C>,
        addr: &Addr,
        server_name: Option<&str>,
    ) -> Result<(Channel<C>, PeerIdentity), TlsError> {
        let Addr::Tcp { host, port } = addr else {
            return Err(TlsError::Io(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "TLS runs over TCP only",
            )));
        };
        let tcp = tokio::net::TcpStream::connect((host.as_str(), *port))
            .await
            .map_err(TlsError::Io)?;
        tcp.set_nodelay(true).map_err(TlsError::Io)?;
        let connect = ConnectInfo::new().remote_addr(tcp.peer_addr().map_err(TlsError::Io)?);
        self.channel_with(peer, tcp, server_name.unwrap_or(host), connect)
            .await
    }
}
