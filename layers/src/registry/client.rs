//! The client side: talking to a registrar over a channel.

use crate::context::ContextError;
use crate::peer::{Channel, Peer, PeerError};
use scipp_codecs::msg::{Addr, Uid};
use scipp_codecs::{Codec, WireProfile};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Connecting to the registrar or to the found actor failed.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// The registry RPC failed (remote error, closed channel, bad result).
    #[error("registry call: {0}")]
    Call(#[from] ContextError),
    /// No actor of that name is registered.
    #[error("no actor named {0:?} is registered")]
    NotFound(String),
    /// The address to register has a wildcard host (`0.0.0.0`, `::`) and
    /// no connection to the registrar to learn a routable one from (see
    /// [`RegistryClient::routable`]): advertise an address instead.
    #[error("{0} is a wildcard address no other host can connect to; advertise a routable one")]
    Unroutable(Addr),
}

/// A channel to a registrar, with the registry RPCs as methods.
///
/// Arguments follow the channel's [`WireProfile`] (`sockaddr=` for
/// 978691c6, `addr=` for HEAD); results of either shape are accepted.
/// See the [module docs](super) for a full example.
#[derive(Debug)]
pub struct RegistryClient<C = crate::DefaultCodec> {
    chan: Arc<Channel<C>>,
    /// Our end of the TCP connection to the registrar, when we made it.
    local: Option<SocketAddr>,
}

impl<C> Clone for RegistryClient<C> {
    fn clone(&self) -> Self {
        RegistryClient {
            chan: self.chan.clone(),
            local: self.local,
        }
    }
}

/// Whether `addr` is TCP on a wildcard host (`0.0.0.0`, `::`): where a
/// listener accepts on every interface, and no peer can connect to.
///
/// ```
/// use scipp_layers::registry::is_wildcard;
///
/// assert!(is_wildcard(&"0.0.0.0:1616".parse().unwrap()));
/// assert!(is_wildcard(&"[::]:1616".parse().unwrap()));
/// assert!(!is_wildcard(&"10.0.0.7:1616".parse().unwrap()));
/// ```
pub fn is_wildcard(addr: &Addr) -> bool {
    match addr {
        Addr::Tcp { host, .. } => host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified()),
        Addr::Uds { .. } => false,
    }
}

/// One address, or HEAD's list of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(Addr),
    Many(Vec<Addr>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<Addr> {
        match self {
            OneOrMany::One(a) => vec![a],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Serialize)]
struct Name<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct UidOnly<'a> {
    uid: &'a Uid,
}

impl<C: Codec> RegistryClient<C> {
    /// Uses an open channel to a registrar (owned, or shared through an
    /// `Arc` with other users of the channel).
    ///
    /// A client made this way does not know its own end of the connection:
    /// give it with [`local_addr`](Self::local_addr) so wildcard addresses
    /// can be made [routable](Self::routable).
    pub fn new(chan: impl Into<Arc<Channel<C>>>) -> Self {
        RegistryClient {
            chan: chan.into(),
            local: None,
        }
    }

    /// Sets our end of the connection to the registrar (e.g. the
    /// [`TcpStream::local_addr`](tokio::net::TcpStream::local_addr) of the
    /// stream the channel runs on): its IP is the one registered for a
    /// listener bound to a wildcard address.
    pub fn local_addr(mut self, local: SocketAddr) -> Self {
        self.local = Some(local);
        self
    }

    /// Connects `peer` to the registrar at `addr`, remembering our end of
    /// a TCP connection (see [`routable`](Self::routable)).
    ///
    /// # Errors
    /// Connection or handshake failures.
    pub async fn connect(peer: &Peer<C>, addr: &Addr) -> Result<Self, RegistryError> {
        match addr {
            Addr::Tcp { host, port } => {
                let tcp = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(PeerError::from)?;
                tcp.set_nodelay(true).map_err(PeerError::from)?;
                let local = tcp.local_addr().map_err(PeerError::from)?;
                Ok(Self::new(peer.channel(tcp).await?).local_addr(local))
            }
            Addr::Uds { .. } => Ok(Self::new(peer.connect_addr(addr).await?)),
        }
    }

    /// The address to register for a listener at `listening`: itself,
    /// unless its host is a wildcard (`0.0.0.0`, `::`); then the IP of our
    /// end of the connection to the registrar (the interface that reaches
    /// it, so likely one that its other clients reach too) with
    /// `listening`'s port.
    ///
    /// To register some other address (a NAT's, a DNS name), pass it to
    /// [`register_peer`](Self::register_peer) yourself: an address that is
    /// not a wildcard is registered as given.
    ///
    /// ```
    /// use scipp_layers::{peer::Peer, registry::{Registrar, RegistryClient}, route::Endpoints};
    /// use scipp_codecs::{msg::Addr, msgpack::MsgpackCodec};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let registrar = Registrar::new();
    /// # let mut endpoints = Endpoints::new();
    /// # registrar.install(&mut endpoints);
    /// # let server = Peer::new("registrar", MsgpackCodec::new()).endpoints(endpoints).is_registrar(true);
    /// let client = Peer::new("scipp_client", MsgpackCodec::new());
    /// let (a, b) = tokio::io::duplex(1 << 16);
    /// # let (served, chan) = tokio::join!(server.accept(a), client.channel(b));
    /// // a channel over TCP would have come from `RegistryClient::connect`
    /// let registry = RegistryClient::new(chan.unwrap()).local_addr("10.1.2.3:50000".parse().unwrap());
    /// let listening: Addr = "0.0.0.0:4242".parse().unwrap();
    /// assert_eq!(registry.routable(&listening).unwrap(), "10.1.2.3:4242".parse().unwrap());
    /// # drop(served);
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`RegistryError::Unroutable`] for a wildcard address when the
    /// client does not know its end of the connection.
    pub fn routable(&self, listening: &Addr) -> Result<Addr, RegistryError> {
        if !is_wildcard(listening) {
            return Ok(listening.clone());
        }
        let (Addr::Tcp { port, .. }, Some(local)) = (listening, self.local) else {
            return Err(RegistryError::Unroutable(listening.clone()));
        };
        // an IPv4 connection over a dual-stack socket shows up as ::ffff:a.b.c.d
        let ip = match local.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        Ok(Addr::Tcp {
            host: ip.to_string(),
            port: *port,
        })
    }

    /// The channel to the registrar.
    pub fn channel(&self) -> &Channel<C> {
        &self.chan
    }

    /// Registers `uid` as reachable at `addr` (`self:register_actor`).
    ///
    /// # Errors
    /// [`RegistryError::Unroutable`] for a wildcard address (nothing is
    /// sent; see [`routable`](Self::routable)), the registrar's error or a
    /// closed channel.
    pub async fn register(&self, uid: &Uid, addr: &Addr) -> Result<(), RegistryError> {
        if is_wildcard(addr) {
            return Err(RegistryError::Unroutable(addr.clone()));
        }
        #[derive(Serialize)]
        struct Old<'a> {
            uid: &'a Uid,
            sockaddr: &'a Addr,
        }
        #[derive(Serialize)]
        struct Head<'a> {
            uid: &'a Uid,
            addr: &'a Addr,
        }
        let done: Option<()> = match self.chan.profile() {
            WireProfile::Head => self.call("register_actor", &Head { uid, addr }).await?,
            WireProfile::V978691c6 => {
                self.call(
                    "register_actor",
                    &Old {
                        uid,
                        sockaddr: addr,
                    },
                )
                .await?
            }
        };
        let _ = done;
        tracing::debug!(%uid, %addr, registrar = %self.chan.peer(), "registered");
        Ok(())
    }

    /// Registers `peer` at [`routable(addr)`](Self::routable) (so a
    /// listener bound to `0.0.0.0` registers the interface address that
    /// reaches the registrar) and returns a guard that unregisters it
    /// (call [`Registration::unregister`] on a clean shutdown).
    ///
    /// # Errors
    /// As [`routable`](Self::routable) and [`register`](Self::register).
    pub async fn register_peer(
        &self,
        peer: &Peer<C>,
        addr: &Addr,
    ) -> Result<Registration<C>, RegistryError> {
        let uid = peer.uid();
        let addr = self.routable(addr)?;
        self.register(&uid, &addr).await?;
        Ok(Registration {
            client: Some(self.clone()),
            uid,
            addr,
        })
    }

    /// Removes `uid` (`self:unregister_actor`); unknown uids are fine.
    ///
    /// # Errors
    /// The registrar's error or a closed channel.
    pub async fn unregister(&self, uid: &Uid) -> Result<(), RegistryError> {
        let _: Option<()> = self.call("unregister_actor", &UidOnly { uid }).await?;
        Ok(())
    }

    /// The addresses of the actor whose name (or uuid) is `name`, or an
    /// empty list (`self:find_actor`).
    ///
    /// # Errors
    /// The registrar's error or a closed channel.
    pub async fn find(&self, name: &str) -> Result<Vec<Addr>, RegistryError> {
        let found: Option<OneOrMany> = self.call("find_actor", &Name { name }).await?;
        Ok(found.map(OneOrMany::into_vec).unwrap_or_default())
    }

    /// The addresses of every actor named `name`, waiting until one
    /// registers (`self:wait_for_actor`). Bound it with a timeout; dropping
    /// the future cancels the remote wait.
    ///
    /// # Errors
    /// The registrar's error or a closed channel.
    pub async fn wait_for(&self, name: &str) -> Result<Vec<Addr>, RegistryError> {
        Ok(self.call("wait_for_actor", &Name { name }).await?)
    }

    /// The whole registry: `"name.uuid"` → addresses (`self:get_registry`).
    ///
    /// # Errors
    /// The registrar's error or a closed channel.
    pub async fn entries(&self) -> Result<BTreeMap<String, Vec<Addr>>, RegistryError> {
        let map: BTreeMap<String, OneOrMany> = self
            .call("get_registry", &BTreeMap::<String, ()>::new())
            .await?;
        Ok(map.into_iter().map(|(k, v)| (k, v.into_vec())).collect())
    }

    /// Finds `name` and connects `peer` to its first address.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`], or the connection's failure.
    pub async fn connect_to(
        &self,
        peer: &Peer<C>,
        name: &str,
    ) -> Result<Channel<C>, RegistryError> {
        let addrs = self.find(name).await?;
        let addr = addrs
            .first()
            .ok_or_else(|| RegistryError::NotFound(name.to_owned()))?;
        Ok(peer.connect_addr(addr).await?)
    }

    async fn call<K: Serialize + ?Sized, R: serde::de::DeserializeOwned + 'static>(
        &self,
        func: &str,
        kwargs: &K,
    ) -> Result<R, ContextError> {
        self.chan.rpc("self", func, kwargs).await
    }
}

impl<C: Codec> Peer<C> {
    /// Asks the registrar at `registry` where the actor `name` is
    /// (`find_actor`) and connects to it: open contexts on the returned
    /// channel as on any other.
    ///
    /// ```no_run
    /// use scipp_layers::peer::Peer;
    /// use scipp_codecs::msgpack::MsgpackCodec;
    ///
    /// # #[allow(dead_code)]
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let me = Peer::new("scipp_client", MsgpackCodec::new());
    /// let chan = me.connect_by_name(&"127.0.0.1:1616".parse()?, "scipp_svc").await?;
    /// let sum: i64 = chan.rpc("scipp_peer", "add", &[("a", 2), ("b", 3)].into_iter().collect::<std::collections::BTreeMap<_, _>>()).await?;
    /// # let _ = sum; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`RegistryError::NotFound`], or connecting to either failed.
    pub async fn connect_by_name(
        &self,
        registry: &Addr,
        name: &str,
    ) -> Result<Channel<C>, RegistryError> {
        RegistryClient::connect(self, registry)
            .await?
            .connect_to(self, name)
            .await
    }
}

/// A registration of a peer with a registrar; see
/// [`RegistryClient::register_peer`].
///
/// Call [`unregister`](Self::unregister) on a clean shutdown. Dropping it
/// without doing so unregisters from a background task (best effort: it
/// needs a running Tokio runtime and cannot report the outcome).
#[derive(Debug)]
pub struct Registration<C: Codec = crate::DefaultCodec> {
    client: Option<RegistryClient<C>>,
    uid: Uid,
    addr: Addr,
}

impl<C: Codec> Registration<C> {
    /// The registered uid.
    pub fn uid(&self) -> &Uid {
        &self.uid
    }

    /// The registered address (routable: never a wildcard).
    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// Unregisters now and waits for the registrar's answer.
    ///
    /// # Errors
    /// The registrar's error or a closed channel.
    pub async fn unregister(mut self) -> Result<(), RegistryError> {
        let client = self.client.take().expect("only taken here or in drop");
        client.unregister(&self.uid).await
    }
}

impl<C: Codec> Drop for Registration<C> {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let uid = self.uid.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = client.unregister(&uid).await {
                    tracing::debug!(%uid, "unregister on drop: {e}");
                }
            });
        }
    }
}
