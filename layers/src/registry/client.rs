//! The client side: talking to a registrar over a channel.

use crate::context::ContextError;
use crate::peer::{Channel, Peer, PeerError};
use scipp_codecs::msg::{Addr, Uid};
use scipp_codecs::{Codec, WireProfile};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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
}

/// A channel to a registrar, with the registry RPCs as methods.
///
/// Arguments follow the channel's [`WireProfile`] (`sockaddr=` for
/// 978691c6, `addr=` for HEAD); results of either shape are accepted.
/// See the [module docs](super) for a full example.
#[derive(Debug)]
pub struct RegistryClient<C> {
    chan: Arc<Channel<C>>,
}

impl<C> Clone for RegistryClient<C> {
    fn clone(&self) -> Self {
        RegistryClient {
            chan: self.chan.clone(),
        }
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
    pub fn new(chan: impl Into<Arc<Channel<C>>>) -> Self {
        RegistryClient { chan: chan.into() }
    }

    /// Connects `peer` to the registrar at `addr`.
    ///
    /// # Errors
    /// Connection or handshake failures.
    pub async fn connect(peer: &Peer<C>, addr: &Addr) -> Result<Self, RegistryError> {
        Ok(Self::new(peer.connect_addr(addr).await?))
    }

    /// The channel to the registrar.
    pub fn channel(&self) -> &Channel<C> {
        &self.chan
    }

    /// Registers `uid` as reachable at `addr` (`self:register_actor`).
    ///
    /// # Errors
    /// The registrar's error or a closed channel.
    pub async fn register(&self, uid: &Uid, addr: &Addr) -> Result<(), RegistryError> {
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

    /// Registers `peer` at `addr` and returns a guard that unregisters it
    /// (call [`Registration::unregister`] on a clean shutdown).
    ///
    /// # Errors
    /// As [`register`](Self::register).
    pub async fn register_peer(
        &self,
        peer: &Peer<C>,
        addr: &Addr,
    ) -> Result<Registration<C>, RegistryError> {
        let uid = peer.uid();
        self.register(&uid, addr).await?;
        Ok(Registration {
            client: Some(self.clone()),
            uid,
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
pub struct Registration<C: Codec> {
    client: Option<RegistryClient<C>>,
    uid: Uid,
}

impl<C: Codec> Registration<C> {
    /// The registered uid.
    pub fn uid(&self) -> &Uid {
        &self.uid
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
