//! Peers and channels: an identity, the handshake, and a running stack per
//! connection.
//!
//! A [`Peer`] is an actor identity ([`Aid`]: name + uuid), the endpoints it
//! serves and its settings. [`Peer::channel`] turns any connected
//! `AsyncRead + AsyncWrite` (TCP, Unix socket, `tokio::io::duplex`) into a
//! [`Channel`]: both sides send their `Aid` and read the other's (bounded
//! by a timeout), then the full stack runs:
//!
//! ```text
//! read loop:  frames -> CodecLayer -> EnforceMsgTypeLayer -> ValidatePayloadLayer -> Router -> contexts / endpoints
//! send path:  contexts -> ValidatePayloadLayer -> EnforceMsgTypeLayer -> CodecLayer -> Writer (batched)
//! ```
//!
//! The handshake is symmetric, as in tractor: the same call serves the
//! connecting and the accepting side.

use crate::channel::{self, Writer};
use crate::codec::CodecLayer;
use crate::context::{Context, ContextError, OpenContext};
use crate::framing::{FrameError, FramingLayer};
use crate::msg_type::EnforceMsgTypeLayer;
use crate::payload::{PayloadSpecs, PldSpec, ValidatePayloadLayer};
use crate::policy::ReceivePolicy;
use crate::relay::ErrorRelayLayer;
use crate::route::state::{Orphan, Sender, Shared};
use crate::route::{Endpoints, Overrun, Router};
use crate::stack::{
    InboundFrames, InboundLayer, InboundMessages, OutboundFrames, OutboundLayer, OutboundMessages,
    StackDescription, UserLayers,
};
use crate::Inbound;
use bytes::Bytes;
use futures_util::StreamExt;
use scipp_codecs::msg::{Addr, Aid, Msg, Uid};
use scipp_codecs::{Codec, WireProfile};
use serde::{de::DeserializeOwned, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, Mutex};
use tokio_util::codec::FramedRead;
use tower::{ServiceBuilder, ServiceExt};

/// Why a channel could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The peer did not send its `Aid` in time.
    #[error("handshake: no Aid from the peer within {0:?}")]
    HandshakeTimeout(Duration),
    /// The peer's first message was not an `Aid`.
    #[error("handshake: expected the peer's Aid, got {0}")]
    Handshake(String),
    /// The peer only probed us (tractor HEAD's registry probe, `is_probe`):
    /// it got our `Aid` and the connection is closed.
    #[error("handshake: {0} only probed us; connection closed")]
    Probed(Uid),
    /// The transport failed or closed during the handshake.
    #[error("handshake: {0}")]
    Transport(#[from] FrameError),
    /// Connecting failed.
    #[error("connect: {0}")]
    Io(#[from] std::io::Error),
}

/// Settings of a [`Peer`], with documented defaults.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// How long to wait for the peer's `Aid`: 10 s (tractor HEAD's).
    pub handshake_timeout: Duration,
    /// Messages queued per context before [`Overrun`] applies: 64
    /// (tractor's `msg_buffer_size`).
    pub queue: usize,
    /// What a full context queue does: [`Overrun::Backpressure`].
    pub overrun: Overrun,
    /// Validate every outgoing `Yield`/`Return` against the spec, not only
    /// `Started`: off.
    pub strict: bool,
    /// Largest frame body accepted or sent: 16 MiB. A bigger length
    /// prefix ends the channel with [`FrameError::TooLarge`] before
    /// anything is allocated for it.
    pub max_frame_len: usize,
    /// Open contexts per channel, both sides together: 4096. At the limit
    /// a peer's `Start` is refused with an `Error` (the channel goes on)
    /// and a local open fails with `ContextError::TooManyContexts`.
    pub max_contexts: usize,
    /// Close the channel when nothing arrives for this long: off (`None`),
    /// as in tractor. Set it to detect half-open connections (a peer or
    /// middlebox that vanished without a FIN); open contexts then end with
    /// `TransportClosed` naming the timeout.
    pub idle_timeout: Option<Duration>,
    /// The tractor version to speak: `None` (the default) picks it per
    /// channel from the peer's `Aid` (see [`WireProfile::of_aid`]); the
    /// connecting side's own `Aid` goes out in the codec's profile, which
    /// every tractor version accepts.
    pub profile: Option<WireProfile>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            handshake_timeout: Duration::from_secs(10),
            queue: 64,
            overrun: Overrun::Backpressure,
            strict: false,
            max_frame_len: crate::framing::DEFAULT_MAX_FRAME_LEN,
            max_contexts: 4096,
            idle_timeout: None,
            profile: None,
        }
    }
}

/// What the transport knows about the other side of a connection before
/// the SCIPP handshake: its address, and the identity its TLS certificate
/// proved. Hand it to [`Peer::accept_with`] / [`Peer::channel_with`]; the
/// server, [`connect_tcp`](Peer::connect_tcp) and the TLS acceptor and
/// connector fill it in themselves.
///
/// ```
/// use scipp_layers::peer::ConnectInfo;
/// let info = ConnectInfo::new().remote_addr("192.0.2.7:4242".parse().unwrap());
/// # drop(info);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ConnectInfo {
    remote_addr: Option<std::net::SocketAddr>,
    #[cfg(feature = "tls")]
    identity: Option<crate::tls::PeerIdentity>,
}

impl ConnectInfo {
    /// Nothing known yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The other side's socket address.
    pub fn remote_addr(mut self, addr: std::net::SocketAddr) -> Self {
        self.remote_addr = Some(addr);
        self
    }

    /// The other side's verified certificate identity.
    #[cfg(feature = "tls")]
    pub fn identity(mut self, identity: crate::tls::PeerIdentity) -> Self {
        self.identity = Some(identity);
        self
    }
}

/// Who is at the other end of a channel: its `Aid` (as it sent it: a
/// *claim*), its address, and the identity its TLS certificate *proved*.
///
/// The layers a peer builds per channel see it
/// ([`Peer::message_layer_fn`], [`Peer::inbound_message_layer_fn`]), so
/// an authorization or audit layer can decide by certificate; the channel
/// keeps it ([`Channel::info`]). Made once per channel, after the
/// handshake: reading it costs nothing per message.
///
/// ```
/// use scipp_layers::peer::Peer;
/// use scipp_codecs::msgpack::MsgpackCodec;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let server = Peer::new("server", MsgpackCodec::new());
/// let client = Peer::new("client", MsgpackCodec::new());
/// let (a, b) = tokio::io::duplex(4096);
/// let (served, _chan) = tokio::join!(server.accept(a), client.channel(b));
/// let info = served.unwrap().info().clone();
/// assert_eq!(info.peer().name, "client");
/// assert_eq!(info.remote_addr(), None); // an in-memory pipe has none
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ChannelInfo {
    peer: Uid,
    peer_aid: Aid,
    connect: ConnectInfo,
}

impl ChannelInfo {
    /// The peer's uid, from its `Aid` (self-declared).
    pub fn peer(&self) -> &Uid {
        &self.peer
    }

    /// The peer's `Aid` as it sent it.
    pub fn peer_aid(&self) -> &Aid {
        &self.peer_aid
    }

    /// The peer's socket address, when the transport has one.
    pub fn remote_addr(&self) -> Option<std::net::SocketAddr> {
        self.connect.remote_addr
    }

    /// The identity the peer's TLS certificate proved: the client's on an
    /// accepted channel (with client certificates required), the server's
    /// on a connected one; `None` without TLS.
    #[cfg(feature = "tls")]
    pub fn identity(&self) -> Option<&crate::tls::PeerIdentity> {
        self.connect.identity.as_ref()
    }
}

/// An actor identity with the endpoints it serves.
///
/// ```
/// use scipp_layers::{peer::Peer, route::Endpoints};
/// use scipp_codecs::msgpack::MsgpackCodec;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// #[derive(serde::Deserialize)]
/// struct Add { a: i64, b: i64 }
/// let mut endpoints = Endpoints::new();
/// endpoints.rpc("scipp_peer", "add", |kw: Add| async move { Ok(kw.a + kw.b) });
/// let server = Peer::new("scipp_peer", MsgpackCodec::new()).endpoints(endpoints);
/// let client = Peer::new("scipp_client", MsgpackCodec::new());
///
/// let (a, b) = tokio::io::duplex(4096);
/// let (served, chan) = tokio::join!(server.channel(a), client.channel(b));
/// let chan = chan.unwrap();
/// let sum: i64 = chan.rpc("scipp_peer", "add", &[("a", 2), ("b", 3)].into_iter().collect::<std::collections::BTreeMap<_, _>>()).await.unwrap();
/// assert_eq!(sum, 5);
/// # drop(served);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Peer<C = crate::DefaultCodec> {
    aid: Aid,
    codec: C,
    endpoints: Arc<Endpoints<C>>,
    config: Config,
    layers: UserLayers,
    policy: ReceivePolicy,
}

impl Peer {
    /// A peer named `name` speaking the [`DefaultCodec`](crate::DefaultCodec)
    /// (tractor's msgpack), with a fresh uuid, no endpoints, default config:
    /// [`Peer::new`] with `MsgpackCodec::new()`.
    ///
    /// ```
    /// use scipp_layers::peer::Peer;
    /// let peer = Peer::named("server");
    /// assert_eq!(peer.aid_ref().name, "server");
    /// ```
    pub fn named(name: &str) -> Self {
        Peer::new(name, crate::DefaultCodec::new())
    }
}

impl<C: Codec> Peer<C> {
    /// A peer named `name` with a fresh uuid, no endpoints, default config.
    pub fn new(name: &str, codec: C) -> Self {
        Peer {
            aid: Aid {
                pid: Some(u64::from(std::process::id())),
                is_registrar: Some(false),
                ..Aid::new(name, crate::new_uuid())
            },
            codec,
            endpoints: Arc::new(Endpoints::new()),
            config: Config::default(),
            layers: UserLayers::default(),
            policy: ReceivePolicy::default(),
        }
    }

    /// Uses this exact identity (e.g. with HEAD's `pid`/`is_registrar`).
    pub fn aid(mut self, aid: Aid) -> Self {
        self.aid = aid;
        self
    }

    /// Serves these endpoints.
    pub fn endpoints(mut self, endpoints: Endpoints<C>) -> Self {
        self.endpoints = Arc::new(endpoints);
        self
    }

    /// Uses these settings.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Adds a layer at the *frames* position of every channel's two
    /// stacks: raw frame bodies, under the codec (compression, encryption,
    /// frame metrics). One value wraps both directions, so the services it
    /// makes can share its state. Layers go from the wire up: the first
    /// one added sits closest to the transport. See [`stack`](crate::stack).
    ///
    /// ```
    /// use scipp_layers::peer::Peer;
    /// use scipp_codecs::msgpack::MsgpackCodec;
    /// // any tower layer whose service fits `Bytes` in, `()` out
    /// let peer = Peer::new("a", MsgpackCodec::new())
    ///     .frame_layer(tower::layer::util::Identity::new());
    /// # drop(peer);
    /// ```
    pub fn frame_layer<L>(mut self, layer: L) -> Self
    where
        L: InboundLayer<Bytes> + OutboundLayer<Bytes>,
    {
        let layer = Arc::new(layer);
        self.layers.add_frames_in(layer.clone());
        self.layers.add_frames_out(layer);
        self
    }

    /// Adds a layer at the frames position of the receive stack only.
    pub fn inbound_frame_layer<L: InboundLayer<Bytes>>(mut self, layer: L) -> Self {
        self.layers.add_frames_in(Arc::new(layer));
        self
    }

    /// Adds a layer at the frames position of the send stack only.
    pub fn outbound_frame_layer<L: OutboundLayer<Bytes>>(mut self, layer: L) -> Self {
        self.layers.add_frames_out(Arc::new(layer));
        self
    }

    /// Adds a layer at the *messages* position of every channel's two
    /// stacks: typed messages ([`Inbound`] in, `Msg` out)
    /// between payload validation and routing (metrics, authorization,
    /// rate limits, audit logs). One value wraps both directions. A
    /// message your layer fails on the way in is answered with an `Error`
    /// for its dialog and the channel goes on (see
    /// [`relay::ErrorRelayLayer`](crate::relay::ErrorRelayLayer)).
    ///
    /// ```
    /// use scipp_layers::{peer::Peer, relay::Raise, Inbound};
    /// use scipp_codecs::{msg::Msg, msgpack::MsgpackCodec};
    /// use tower::filter::FilterLayer;
    ///
    /// // refuse every Start of the `admin` namespace, inbound only
    /// let no_admin = FilterLayer::new(|item: Inbound| match item.as_msg() {
    ///     Some(Msg::Start(s)) if s.ns == "admin" => Err(Raise::new("PermissionError", "no admin here")),
    ///     _ => Ok(item),
    /// });
    /// let peer = Peer::new("a", MsgpackCodec::new()).inbound_message_layer(no_admin);
    /// # drop(peer);
    /// ```
    pub fn message_layer<L>(mut self, layer: L) -> Self
    where
        L: InboundLayer<Inbound> + OutboundLayer<Msg>,
    {
        let layer = Arc::new(layer);
        self.layers.add_messages_in(layer.clone());
        self.layers.add_messages_out(layer);
        self
    }

    /// Adds a layer at the messages position of the receive stack only.
    pub fn inbound_message_layer<L: InboundLayer<Inbound>>(mut self, layer: L) -> Self {
        self.layers.add_messages_in(Arc::new(layer));
        self
    }

    /// Adds a layer at the messages position of the send stack only.
    pub fn outbound_message_layer<L: OutboundLayer<Msg>>(mut self, layer: L) -> Self {
        self.layers.add_messages_out(Arc::new(layer));
        self
    }

    /// Adds a layer at the messages position of both stacks that `make`
    /// builds for each channel from what is known about it
    /// ([`ChannelInfo`]: the peer's `Aid`, address and certificate
    /// identity), once the handshake is done. One value per channel wraps
    /// both directions. The cost is one call of `make` per channel;
    /// nothing per message.
    ///
    /// ```
    /// use scipp_layers::peer::Peer;
    /// use scipp_codecs::msgpack::MsgpackCodec;
    ///
    /// let peer = Peer::new("a", MsgpackCodec::new()).message_layer_fn(|info| {
    ///     tracing::info!(peer = %info.peer(), "new channel");
    ///     tower::layer::util::Identity::new()
    /// });
    /// # drop(peer);
    /// ```
    pub fn message_layer_fn<L, F>(mut self, make: F) -> Self
    where
        L: InboundLayer<Inbound> + OutboundLayer<Msg>,
        F: Fn(&ChannelInfo) -> L + Send + Sync + 'static,
    {
        self.layers.add_messages_per_channel(make, true, true);
        self
    }

    /// As [`message_layer_fn`](Self::message_layer_fn), receive stack
    /// only: e.g. authorization by certificate identity.
    ///
    /// ```
    /// use scipp_layers::{authorize::AuthorizeLayer, peer::Peer};
    /// use scipp_codecs::msgpack::MsgpackCodec;
    ///
    /// let rules = AuthorizeLayer::new().allow("math", "add").trust_identity("admin.example");
    /// let peer = Peer::new("a", MsgpackCodec::new())
    ///     .inbound_message_layer_fn(move |info| rules.for_channel(info));
    /// # drop(peer);
    /// ```
    pub fn inbound_message_layer_fn<L, F>(mut self, make: F) -> Self
    where
        L: InboundLayer<Inbound>,
        F: Fn(&ChannelInfo) -> L + Send + Sync + 'static,
    {
        self.layers.add_messages_in_per_channel(make);
        self
    }

    /// As [`message_layer_fn`](Self::message_layer_fn), send stack only.
    pub fn outbound_message_layer_fn<L, F>(mut self, make: F) -> Self
    where
        L: OutboundLayer<Msg>,
        F: Fn(&ChannelInfo) -> L + Send + Sync + 'static,
    {
        self.layers.add_messages_out_per_channel(make);
        self
    }

    /// The receive policy of every channel: what happens to an invalid
    /// item ([`policy::deliver`](crate::policy::deliver) by default). A
    /// context can set its own. See [`ReceivePolicy`].
    ///
    /// ```
    /// use scipp_layers::{peer::Peer, policy};
    /// use scipp_codecs::msgpack::MsgpackCodec;
    /// let peer = Peer::new("a", MsgpackCodec::new()).policy(policy::ignore_and_warn());
    /// # drop(peer);
    /// ```
    pub fn policy(mut self, policy: impl Into<ReceivePolicy>) -> Self {
        self.policy = policy.into();
        self
    }

    /// This peer's uid.
    pub fn uid(&self) -> Uid {
        self.aid.uid()
    }

    /// Marks this peer as a registrar (or not) in its `Aid`
    /// (`is_registrar`, sent under the [`Head`](WireProfile::Head)
    /// profile); set it when the peer serves a
    /// [`Registrar`](crate::registry::Registrar)'s endpoints. A tractor
    /// HEAD actor probing a registry address treats any peer that does not
    /// say `false` as a registrar; `Peer::new` says `false`.
    pub fn is_registrar(mut self, yes: bool) -> Self {
        self.aid.is_registrar = Some(yes);
        self
    }

    /// This peer's `Aid`.
    pub fn aid_ref(&self) -> &Aid {
        &self.aid
    }

    /// The connecting side of the handshake: sends our `Aid` (in the
    /// configured profile, else the codec's), reads the peer's, and starts
    /// the channel. Any connected transport works, including the accepting
    /// end of a connection; [`accept`](Self::accept) is the better choice
    /// there, as it answers in the peer's own profile.
    ///
    /// For TCP, set `TCP_NODELAY` on the stream first (as
    /// [`connect_tcp`](Self::connect_tcp) does): with Nagle's algorithm,
    /// small request/response messages wait for delayed ACKs (~40 ms).
    ///
    /// # Errors
    /// A [`PeerError`] if the peer does not answer with its `Aid` in time.
    pub async fn channel<IO>(&self, io: IO) -> Result<Channel<C>, PeerError>
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        self.handshake(io, false, ConnectInfo::default()).await
    }

    /// [`channel`](Self::channel), telling the channel's layers what the
    /// transport knows about the other side ([`ChannelInfo`]).
    ///
    /// # Errors
    /// As [`channel`](Self::channel).
    pub async fn channel_with<IO>(
        &self,
        io: IO,
        connect: ConnectInfo,
    ) -> Result<Channel<C>, PeerError>
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        self.handshake(io, false, connect).await
    }

    /// The accepting side of the handshake: reads the peer's `Aid` first
    /// and, unless [`Config::profile`] fixes one, answers in the peer's
    /// wire profile (a tractor HEAD peer gets HEAD's `Aid` with
    /// `is_registrar`, a 978691c6 peer the short one). A registry probe
    /// (`is_probe`) gets our `Aid` and a closed connection
    /// ([`PeerError::Probed`]).
    ///
    /// # Errors
    /// A [`PeerError`] if the peer does not send its `Aid` in time.
    pub async fn accept<IO>(&self, io: IO) -> Result<Channel<C>, PeerError>
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        self.handshake(io, true, ConnectInfo::default()).await
    }

    /// [`accept`](Self::accept), telling the channel's layers what the
    /// transport knows about the other side ([`ChannelInfo`]): its
    /// address, its certificate identity.
    ///
    /// ```
    /// use scipp_layers::peer::{ConnectInfo, Peer};
    /// use scipp_codecs::msgpack::MsgpackCodec;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let from: std::net::SocketAddr = "192.0.2.7:4242".parse().unwrap();
    /// let server = Peer::new("server", MsgpackCodec::new());
    /// let client = Peer::new("client", MsgpackCodec::new());
    /// let (a, b) = tokio::io::duplex(4096);
    /// let (served, _chan) = tokio::join!(
    ///     server.accept_with(a, ConnectInfo::new().remote_addr(from)),
    ///     client.channel(b),
    /// );
    /// assert_eq!(served.unwrap().info().remote_addr(), Some(from));
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`accept`](Self::accept).
    pub async fn accept_with<IO>(
        &self,
        io: IO,
        connect: ConnectInfo,
    ) -> Result<Channel<C>, PeerError>
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        self.handshake(io, true, connect).await
    }

    async fn handshake<IO>(
        &self,
        io: IO,
        listen_first: bool,
        connect: ConnectInfo,
    ) -> Result<Channel<C>, PeerError>
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(io);
        self.handshake_halves(read, write, listen_first, connect)
            .await
    }

    /// The handshake over a stream's two halves, for the transports that
    /// split without a lock: `TcpStream::into_split` and
    /// `UnixStream::into_split`. `tokio::io::split` puts a mutex around the
    /// stream, which the reader and the writer task, on two worker
    /// threads, then take for every read and write: strace counted ~9 000
    /// `futex` calls for 32 000 unary calls from 64 callers, most of them
    /// there (`benches/peers`).
    pub(crate) async fn handshake_halves<R, W>(
        &self,
        read: R,
        write: W,
        listen_first: bool,
        connect: ConnectInfo,
    ) -> Result<Channel<C>, PeerError>
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let framing = FramingLayer::builder()
            .max_frame_len(self.config.max_frame_len)
            .new_layer();
        // cancelled when the read side ends: the writer then flushes and
        // hangs up, so the peer sees the connection close
        let closed = tokio_util::sync::CancellationToken::new();
        let (writer, writer_task) =
            Writer::spawn_until(write, framing.codec(), self.config.queue, closed.clone());
        let mut frames = FramedRead::new(read, framing.codec());
        // our Aid, in `profile`'s wire
        let hello = |profile: WireProfile| {
            let frame = self
                .codec
                .for_profile(profile)
                .encode_to_bytes(&Msg::from(self.aid.clone()))
                .map_err(|e| PeerError::Handshake(e.to_string()));
            let writer = writer.clone();
            async move {
                writer
                    .oneshot(frame?)
                    .await
                    .map_err(|e| PeerError::Handshake(e.to_string()))
            }
        };
        let mut sent = None;
        if !listen_first {
            let profile = self.config.profile.unwrap_or(self.codec.wire_profile());
            hello(profile).await?;
            sent = Some(profile);
        }
        let timeout = self.config.handshake_timeout;
        let first = tokio::time::timeout(timeout, frames.next())
            .await
            .map_err(|_| PeerError::HandshakeTimeout(timeout))?;
        let body = match first {
            Some(frame) => frame?,
            None => return Err(PeerError::Handshake("end of stream".into())),
        };
        let peer_aid = match self.codec.decode(body) {
            Ok(Msg::Aid(aid)) => *aid,
            Ok(other) => {
                return Err(PeerError::Handshake(format!(
                    "a `{}` message",
                    other.kind()
                )))
            }
            Err(e) => return Err(PeerError::Handshake(e.to_string())),
        };
        let profile = self
            .config
            .profile
            .unwrap_or_else(|| WireProfile::of_aid(&peer_aid));
        if sent.is_none() {
            hello(profile).await?;
        }
        if peer_aid.is_probe {
            return Err(PeerError::Probed(peer_aid.uid()));
        }
        let peer = peer_aid.uid();
        let info = ChannelInfo {
            peer: peer.clone(),
            peer_aid,
            connect,
        };
        // no user layer: nothing to make, and the stack stays unboxed
        let mut layers = self.layers.for_channel(&info);
        let codec = self.codec.for_profile(profile);
        tracing::debug!(peer = %peer, me = %self.aid.name, ?profile, "handshake done");

        let specs = PayloadSpecs::new(PldSpec::<C>::any());
        let enforce = EnforceMsgTypeLayer::new().peer(peer.clone());
        let checks_out = ServiceBuilder::new()
            .layer(
                ValidatePayloadLayer::new(codec.clone(), specs.clone()).strict(self.config.strict),
            )
            .layer(enforce.clone());
        // Frames go to the writer in two pieces when a payload is (a big
        // `Blob`, written from the sender's buffer); a frame layer of the
        // user's is a `Service<Bytes>` and gets them in one.
        let encode = CodecLayer::new(codec.clone());
        // Each type-erased level costs a boxed future per message: box
        // only the levels that have a layer of the user's around them.
        let send = if self.layers.outbound_is_empty() {
            Sender::Plain(
                checks_out
                    .layer(encode.vectored())
                    .service(writer.vectored()),
            )
        } else {
            let checks = if layers.has_frames_out() {
                let frames = layers.wrap_frames_out(OutboundFrames::new(writer));
                OutboundMessages::new(checks_out.layer(encode).service(frames))
            } else {
                OutboundMessages::new(
                    checks_out
                        .layer(encode.vectored())
                        .service(writer.vectored()),
                )
            };
            Sender::Layered(layers.wrap_messages_out(checks))
        };
        let (orphan_tx, orphans) = mpsc::channel(64);
        let shared = Arc::new(Shared::new(
            codec.clone(),
            self.uid(),
            peer.clone(),
            profile,
            send.clone(),
            self.policy.clone(),
            self.layers.describe(codec.name(), self.policy.name()),
            specs.clone(),
            self.endpoints.clone(),
            self.config.overrun,
            self.config.queue,
            self.config.max_contexts,
            closed,
            orphan_tx,
        ));
        let checks_in = ServiceBuilder::new()
            .layer(CodecLayer::new(codec.clone()).peer(peer.clone()))
            .layer(enforce)
            .layer(ValidatePayloadLayer::new(codec.clone(), specs).peer(peer.clone()))
            .layer(ErrorRelayLayer::with_profile(send, self.uid(), profile));
        let router = Router::new(shared.clone());
        let span = tracing::debug_span!("channel", peer = %peer.name, me = %self.aid.name, codec = codec.name());
        let idle = self.config.idle_timeout;
        let (with_frames, with_messages) = (layers.has_frames_in(), layers.has_messages_in());
        let reader = match (with_frames, with_messages) {
            (false, false) => spawn_reader(
                frames,
                checks_in.service(router),
                idle,
                shared.clone(),
                span,
            ),
            (false, true) => {
                let top = layers.wrap_messages_in(InboundMessages::new(router));
                spawn_reader(frames, checks_in.service(top), idle, shared.clone(), span)
            }
            (true, false) => {
                let bottom = InboundFrames::new(checks_in.service(router));
                let receive = layers.wrap_frames_in(bottom);
                spawn_reader(frames, receive, idle, shared.clone(), span)
            }
            (true, true) => {
                let top = layers.wrap_messages_in(InboundMessages::new(router));
                let bottom = InboundFrames::new(checks_in.service(top));
                let receive = layers.wrap_frames_in(bottom);
                spawn_reader(frames, receive, idle, shared.clone(), span)
            }
        };
        Ok(Channel {
            inner: Arc::new(ChannelInner {
                shared,
                info,
                reader,
                writer: std::sync::Mutex::new(Some(writer_task)),
                orphans: Mutex::new(orphans),
            }),
        })
    }

    /// Connects over TCP and runs the handshake.
    ///
    /// # Errors
    /// Connection or handshake failures.
    pub async fn connect_tcp(
        &self,
        addr: impl tokio::net::ToSocketAddrs,
    ) -> Result<Channel<C>, PeerError> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let connect = ConnectInfo::new().remote_addr(tcp.peer_addr()?);
        let (read, write) = tcp.into_split();
        self.handshake_halves(read, write, false, connect).await
    }

    /// Connects over a Unix socket and runs the handshake.
    ///
    /// # Errors
    /// Connection or handshake failures.
    #[cfg(unix)]
    pub async fn connect_unix(
        &self,
        path: impl AsRef<std::path::Path>,
    ) -> Result<Channel<C>, PeerError> {
        let uds = tokio::net::UnixStream::connect(path).await?;
        let (read, write) = uds.into_split();
        self.handshake_halves(read, write, false, ConnectInfo::default())
            .await
    }
}

impl<C: Codec> Peer<C> {
    /// Connects to a SCIPP address (TCP `[host, port]` or a Unix socket)
    /// and runs the handshake.
    ///
    /// # Errors
    /// Connection or handshake failures.
    pub async fn connect_addr(&self, addr: &Addr) -> Result<Channel<C>, PeerError> {
        match addr {
            Addr::Tcp { host, port } => self.connect_tcp((host.as_str(), *port)).await,
            #[cfg(unix)]
            Addr::Uds { dir, file } => {
                self.connect_unix(std::path::Path::new(dir).join(file))
                    .await
            }
            #[cfg(not(unix))]
            Addr::Uds { .. } => Err(PeerError::Io(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "Unix sockets are not supported here",
            ))),
        }
    }
}

/// Runs the read loop of a channel: every frame through `receive`, until
/// the transport ends (or stays silent for `idle`); then every open
/// context hears why.
fn spawn_reader<C, R>(
    frames: FramedRead<impl AsyncRead + Send + Unpin + 'static, crate::framing::FrameCodec>,
    receive: R,
    idle: Option<Duration>,
    shared: Arc<Shared<C>>,
    span: tracing::Span,
) -> tokio::task::JoinHandle<()>
where
    C: Codec,
    R: tower::Service<bytes::Bytes, Response = ()> + Send + 'static,
    R::Error: Into<crate::BoxError>,
    R::Future: Send,
{
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            let out = match idle {
                None => channel::drive(frames, receive).await,
                Some(after) => channel::drive(idle_limited(frames, after), receive).await,
            };
            let reason = match &out {
                Ok(()) => "the peer closed the connection".to_owned(),
                Err(e) => e.to_string(),
            };
            tracing::debug!("channel ended: {reason}");
            shared.on_transport_closed(reason);
        },
        span,
    ))
}

/// `frames`, ending with [`FrameError::Idle`] when none arrives for `after`.
fn idle_limited<S>(frames: S, after: Duration) -> impl futures_util::Stream<Item = S::Item>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, FrameError>> + Unpin,
{
    futures_util::stream::unfold(Some(frames), move |frames| async move {
        let mut frames = frames?;
        match tokio::time::timeout(after, frames.next()).await {
            Ok(Some(item)) => Some((item, Some(frames))),
            Ok(None) => None,
            Err(_) => Some((Err(FrameError::Idle { after }), None)),
        }
    })
}

/// One connection to a peer, with its stack running.
///
/// Cheap to clone: clones share the connection (as tonic's and tarpc's
/// clients do). Dropping the last clone stops reading (open contexts then
/// see `TransportClosed`); what was already queued is still written in the
/// background. [`close`](Channel::close) does the same and waits for those
/// writes, which matters before a process exits.
#[derive(Clone)]
pub struct Channel<C = crate::DefaultCodec> {
    inner: Arc<ChannelInner<C>>,
}

struct ChannelInner<C> {
    shared: Arc<Shared<C>>,
    info: ChannelInfo,
    reader: tokio::task::JoinHandle<()>,
    writer: std::sync::Mutex<Option<tokio::task::JoinHandle<Result<(), FrameError>>>>,
    orphans: Mutex<mpsc::Receiver<Orphan>>,
}

impl<C> std::fmt::Debug for Channel<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("peer", &self.inner.shared.peer)
            .finish_non_exhaustive()
    }
}

impl<C> Drop for ChannelInner<C> {
    fn drop(&mut self) {
        self.reader.abort();
        self.shared.on_transport_closed("the channel was dropped");
    }
}

impl<C: Codec> Channel<C> {
    /// The peer's uid (from its `Aid`).
    pub fn peer(&self) -> &Uid {
        &self.inner.shared.peer
    }

    /// The peer's `Aid` as it sent it (HEAD peers add `pid` and
    /// `is_registrar`).
    pub fn peer_aid(&self) -> &Aid {
        &self.inner.info.peer_aid
    }

    /// Who is at the other end: its `Aid`, address and certificate
    /// identity, as this channel's layers saw it. See [`ChannelInfo`].
    pub fn info(&self) -> &ChannelInfo {
        &self.inner.info
    }

    /// The wire profile of this channel: the configured one, else the
    /// peer's (from its `Aid`).
    pub fn profile(&self) -> WireProfile {
        self.inner.shared.profile
    }

    /// Starts opening a context on the peer's endpoint `ns:func`.
    #[track_caller]
    pub fn open_context(&self, ns: &str, func: &str) -> OpenContext<C> {
        OpenContext::new(
            self.inner.shared.clone(),
            ns,
            func,
            std::panic::Location::caller(),
        )
    }

    /// Calls a plain RPC endpoint (`functype = "asyncfunc"`).
    ///
    /// # Errors
    /// The remote error, a result that is not an `R`, or a closed channel.
    pub async fn rpc<K: Serialize + ?Sized, R: DeserializeOwned + 'static>(
        &self,
        ns: &str,
        func: &str,
        kwargs: &K,
    ) -> Result<R, ContextError> {
        let kwargs = self.inner.shared.codec.encode_payload(kwargs)?;
        Context::rpc(&self.inner.shared, ns, func, kwargs).await
    }

    /// Asks the peer actor to cancel itself (`self.cancel`): every task it
    /// runs for this channel gets cancelled, then it acks.
    ///
    /// # Errors
    /// The peer's error, a timeout, or a closed channel.
    pub async fn cancel_actor(&self) -> Result<(), ContextError> {
        let kwargs = self
            .inner
            .shared
            .codec
            .encode_payload(&std::collections::BTreeMap::<String, ()>::new())?;
        Context::actor_cancel(&self.inner.shared, kwargs).await
    }

    /// How many contexts (either side) are open on this channel.
    pub fn open_contexts(&self) -> usize {
        self.inner.shared.open_contexts()
    }

    /// Hangs up gracefully: stops reading (open contexts see
    /// `TransportClosed`), writes what is already queued — an ack just
    /// sent, say — and shuts the transport down. Resolves once that is
    /// done, after at most [`SHUTDOWN_GRACE`](crate::channel::SHUTDOWN_GRACE)
    /// of writing to a peer that stopped reading.
    ///
    /// Dropping a `Channel` also writes the queue, but in the background:
    /// a process that exits right after may lose it. Call this first.
    ///
    /// ```
    /// use scipp_layers::peer::Peer;
    /// use scipp_codecs::msgpack::MsgpackCodec;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = Peer::new("server", MsgpackCodec::new());
    /// let client = Peer::new("client", MsgpackCodec::new());
    /// let (a, b) = tokio::io::duplex(4096);
    /// let (served, chan) = tokio::join!(server.accept(a), client.channel(b));
    /// let (served, chan) = (served.unwrap(), chan.unwrap());
    ///
    /// // the server hangs up: its acks are out, and the client sees the close
    /// let (closed, ()) = tokio::join!(served.close(), chan.closed());
    /// closed.unwrap();
    /// # }
    /// ```
    ///
    /// # Errors
    /// The transport failed while writing the queue.
    pub async fn close(self) -> Result<(), FrameError> {
        self.inner.reader.abort();
        self.inner
            .shared
            .on_transport_closed("we closed the channel");
        let writer = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match writer {
            Some(writer) => match writer.await {
                Ok(written) => written,
                // the writer task only ends by returning; a panic in it
                // or a runtime shutting down leaves nothing to flush
                Err(_) => Ok(()),
            },
            // a clone is closing it already
            None => Ok(()),
        }
    }

    /// The layers of this channel's two stacks, bottom-up, your own
    /// included: see where a layer of yours landed.
    ///
    /// ```
    /// use scipp_layers::peer::Peer;
    /// use scipp_codecs::msgpack::MsgpackCodec;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (a, b) = tokio::io::duplex(4096);
    /// let server = Peer::new("server", MsgpackCodec::new());
    /// let client = Peer::new("client", MsgpackCodec::new());
    /// let (_served, chan) = tokio::join!(server.accept(a), client.channel(b));
    /// let stack = chan.unwrap().stack();
    /// assert!(stack.receive().last().unwrap().starts_with("route"));
    /// # }
    /// ```
    pub fn stack(&self) -> StackDescription {
        self.inner.shared.stack.clone()
    }

    /// Resolves when the transport has closed.
    pub async fn closed(&self) {
        self.inner.shared.closed.cancelled().await;
    }

    /// Resolves when the peer asked this actor to cancel (`self.cancel`).
    pub async fn cancel_requested(&self) {
        self.inner.shared.actor_cancel.cancelled().await;
    }

    /// The next error that belonged to no open context (an `Error` without
    /// a `cid`, or a bad frame without one); `None` once the channel closed.
    pub async fn next_orphan(&self) -> Option<Orphan> {
        self.inner.orphans.lock().await.recv().await
    }
}
