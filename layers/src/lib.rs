//! The SCIPP middleware stack: each IPC concern of tractor's protocol as a
//! composable [`tower::Layer`].
//!
//! ```text
//!            receive path (Service<Bytes> ... Service<Inbound>)      send path (Service<Msg> ... Service<Bytes>)
//!
//!   7        policy (a ReceivePolicy: per context, else the peer's; for the items of no context)
//!   6        route::Router              (contexts, endpoints)        contexts, endpoints, router replies
//!   user     [your message layers]      Peer::message_layer          [your message layers]
//!   6        relay::ErrorRelayLayer     (failures -> Error)
//!   5        payload::ValidatePayloadLayer  (spec check)             payload::ValidatePayloadLayer (Started round trip)
//!   4        msg_type::EnforceMsgTypeLayer  (dialog state)           msg_type::EnforceMsgTypeLayer (never send illegal)
//!   3        codec::CodecLayer              (Bytes -> Inbound)       codec::CodecLayer              (Msg -> Bytes)
//!   user     [your frame layers]        Peer::frame_layer            [your frame layers]
//!   2        framing::FrameCodec            (u32-LE frames)          channel::Writer                (batched writes)
//!   1        any AsyncRead + AsyncWrite: TCP, Unix socket, tokio::io::duplex, TLS
//! ```
//!
//! This is the stack a [`Peer`](peer::Peer) builds for every channel (see
//! [`stack`] for where your layers go, and
//! [`Channel::stack`](peer::Channel::stack) for a channel's own listing).
//! The same layers compose by hand, as below, for a stack without a peer.
//!
//! Each layer is a `tower::Layer`; [`tower::ServiceBuilder`] stacks them,
//! first layer outermost, so a receive stack reads bottom-up in the order
//! a frame meets the layers, and a user can insert their own layer
//! (metrics, decryption, rate limits) between any two. Bad input travels
//! up as an [`Inbound::Invalid`] item carrying a [`MsgTypeError`]: no layer
//! below the policy ends the channel because of it. The layers that care
//! about both directions (codec, msg-type, payload) implement both
//! `Service<Inbound>` and `Service<Msg>`, so one layer value goes in both
//! stacks and shares its state between them.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use scipp_layers::{codec::CodecLayer, msg_type::EnforceMsgTypeLayer, policy, Inbound, BoxError};
//! use scipp_layers::payload::{PayloadSpecs, PldSpec, ValidatePayloadLayer};
//! use scipp_codecs::msgpack::MsgpackCodec;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let codec = MsgpackCodec::new();
//! let specs = PayloadSpecs::new(PldSpec::<MsgpackCodec>::any());
//! let app = tower::service_fn(|item: Inbound| async move {
//!     println!("{item:?}");
//!     Ok::<_, BoxError>(())
//! });
//! let receive = ServiceBuilder::new()
//!     .layer(CodecLayer::new(codec))
//!     .layer(EnforceMsgTypeLayer::new())
//!     .layer(ValidatePayloadLayer::new(codec, specs))
//!     .layer(policy::ignore_and_warn())
//!     .service(app);
//! let garbage = Bytes::from_static(b"\xc1 not msgpack");
//! receive.oneshot(garbage).await.unwrap(); // warned and dropped, not fatal
//! # }
//! ```
#![doc(test(attr(deny(warnings))))]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use scipp_codecs as codecs;

pub mod authorize;
pub mod channel;
mod cid_map;
pub mod codec;
pub mod context;
pub mod examples;
pub mod framing;
pub mod future;
mod inbound;
pub mod msg_type;
pub mod payload;
pub mod peer;
pub mod policy;
pub mod registry;
pub mod relay;
pub mod route;
pub mod server;
pub mod spawn;
pub mod stack;
#[cfg(feature = "tls")]
pub mod tls;
mod uuid;

pub use inbound::Inbound;
pub use payload::MsgTypeError;
pub use uuid::new_uuid;

/// The codec every generic type of the stack ([`Peer`](peer::Peer),
/// [`Channel`](peer::Channel), [`Endpoints`](route::Endpoints),
/// [`ChildContext`](context::ChildContext), ...) uses when none is named:
/// tractor's msgpack, byte for byte. [`Peer::named`](peer::Peer::named)
/// makes a peer with it; `Peer::new(name, codec)` takes any other.
///
/// ```
/// use scipp_layers::context::{ChildContext, NoKwargs};
/// use scipp_layers::{payload::PldSpec, peer::Peer, route::Endpoints, BoxError};
///
/// // no codec named anywhere: these are all msgpack
/// async fn ready(mut ctx: ChildContext, _: NoKwargs) -> Result<u64, BoxError> {
///     ctx.started("ready").await?;
///     Ok(0)
/// }
/// fn endpoints() -> Endpoints {
///     let mut endpoints = Endpoints::new();
///     endpoints.context("demo", "ready", PldSpec::any(), ready);
///     endpoints
/// }
/// let server: Peer = Peer::named("server").endpoints(endpoints());
/// # drop(server);
/// ```
pub type DefaultCodec = scipp_codecs::msgpack::MsgpackCodec;

/// The error type of the stack's services.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The crate README's example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
