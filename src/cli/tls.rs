//! `--tls-*` flags shared by `serve` and `call`: TLS between scipp peers
//! (plain TCP, the default, is what tractor speaks).

use super::CliError;
use scipp::msg::Addr;
use scipp::peer::{Channel, Peer};
use scipp::Codec;

/// TLS settings; without `--tls-cert` (serve) or `--tls-ca` (call), plain TCP.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct TlsArgs {
    /// Our certificate chain (PEM, end-entity first). `serve`: enables
    /// TLS. `call`: our client certificate, for mutual TLS.
    #[cfg(feature = "tls")]
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[cfg(feature = "tls")]
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// CA certificates (PEM) the other side's certificate must chain to.
    /// `serve`: clients must present one (mutual TLS), and the registrar
    /// is reached over TLS. `call`: enables TLS, checking the server.
    #[cfg(feature = "tls")]
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<std::path::PathBuf>,
    /// The name the server's certificate must hold (default: the host we
    /// connect to, a DNS name or an IP address).
    #[cfg(feature = "tls")]
    #[arg(long, value_name = "NAME", requires = "tls_ca")]
    tls_server_name: Option<String>,
}

#[cfg(feature = "tls")]
fn read(path: &std::path::Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()).into())
}

/// The accepting side's TLS, if configured.
#[cfg(feature = "tls")]
pub(crate) type Acceptor = scipp::tls::TlsAcceptor;
/// The accepting side's TLS, if configured (never: built without TLS).
#[cfg(not(feature = "tls"))]
#[derive(Debug)]
pub(crate) enum Acceptor {}

/// The connecting side's TLS, with the server name to check.
#[cfg(feature = "tls")]
#[derive(Debug)]
pub(crate) struct Connector(scipp::tls::TlsConnector, Option<String>);
/// The connecting side's TLS (never: built without TLS).
#[cfg(not(feature = "tls"))]
#[derive(Debug)]
pub(crate) enum Connector {}

impl TlsArgs {
    /// `serve`: TLS with our certificate, requiring client certificates
    /// when `--tls-ca` is given.
    pub(crate) fn acceptor(&self) -> Result<Option<Acceptor>, CliError> {
        #[cfg(feature = "tls")]
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            let ca = self.tls_ca.as_deref().map(read).transpose()?;
            return Ok(Some(scipp::tls::TlsAcceptor::from_pem(
                &read(cert)?,
                &read(key)?,
                ca.as_deref(),
            )?));
        }
        Ok(None)
    }

    /// `call` (and `serve` toward its registrar): TLS checking the server
    /// against `--tls-ca`, with our certificate if given.
    pub(crate) fn connector(&self) -> Result<Option<Connector>, CliError> {
        #[cfg(feature = "tls")]
        if let Some(ca) = &self.tls_ca {
            let ours = match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
                _ => None,
            };
            let connector = scipp::tls::TlsConnector::from_pem(
                &read(ca)?,
                ours.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
            )?;
            return Ok(Some(Connector(connector, self.tls_server_name.clone())));
        }
        Ok(None)
    }
}

/// [`Peer::connect_addr`], over TLS if `tls` is set.
pub(crate) async fn connect<C: Codec>(
    peer: &Peer<C>,
    addr: &Addr,
    tls: Option<&Connector>,
) -> Result<Channel<C>, CliError> {
    let Some(tls) = tls else {
        return Ok(peer.connect_addr(addr).await?);
    };
    #[cfg(feature = "tls")]
    {
        let (chan, identity) = tls.0.connect(peer, addr, tls.1.as_deref()).await?;
        tracing::info!(names = ?identity.dns_names(), "TLS server certificate");
        Ok(chan)
    }
    #[cfg(not(feature = "tls"))]
    match *tls {}
}

/// A registry client for the registrar at `addr`, over TLS if `tls` is
/// set, knowing its end of the connection (so a wildcard listener
/// registers a routable address).
pub(crate) async fn registry<C: Codec>(
    peer: &Peer<C>,
    addr: &Addr,
    tls: Option<&Connector>,
) -> Result<scipp::registry::RegistryClient<C>, CliError> {
    let Some(tls) = tls else {
        return Ok(scipp::registry::RegistryClient::connect(peer, addr).await?);
    };
    #[cfg(feature = "tls")]
    {
        let Addr::Tcp { host, port } = addr else {
            return Err("TLS runs over TCP only".into());
        };
        let tcp = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
        tcp.set_nodelay(true)?;
        let local = tcp.local_addr()?;
        let (chan, _) = tls
            .0
            .channel(peer, tcp, tls.1.as_deref().unwrap_or(host))
            .await?;
        Ok(scipp::registry::RegistryClient::new(chan).local_addr(local))
    }
    #[cfg(not(feature = "tls"))]
    match *tls {}
}
