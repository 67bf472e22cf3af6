//! The stack a [`Peer`](crate::peer::Peer) builds for every channel, and
//! where your own layers go in it.
//!
//! ```text
//!  receive (bottom-up)                          send (top-down)
//!
//!  route::Router ─> contexts / endpoints         contexts / endpoints / router replies
//!    └ orphans ─> policy ─> Channel::next_orphan        │
//!  [your message layers]      Inbound         [your message layers]      Msg
//!  relay::ErrorRelay (a failure above -> Error to the peer)   │
//!  payload::ValidatePayload   (spec check)    payload::ValidatePayload   (Started round trip)
//!  msg_type::EnforceMsgType   (dialog state)  msg_type::EnforceMsgType   (never send illegal)
//!  codec::CodecService        (Bytes -> Msg)  codec::CodecService        (Msg -> Bytes)
//!  [your frame layers]        Bytes           [your frame layers]        Bytes
//!  framing (u32-LE frames)                    channel::Writer            (batched writes)
//!  transport: TCP, Unix socket, tokio::io::duplex, TLS ...
//! ```
//!
//! Two positions take your layers, in both directions:
//!
//! - **frames** ([`Peer::frame_layer`](crate::peer::Peer::frame_layer)):
//!   raw frame bodies under the codec: compression, encryption, frame
//!   metrics. The handshake's `Aid`s are exchanged before the stack runs,
//!   so they pass no frame layer.
//! - **messages** ([`Peer::message_layer`](crate::peer::Peer::message_layer)):
//!   typed messages between payload validation and routing: metrics,
//!   authorization, rate limits, audit logs. A message layer that fails a
//!   message with a `cid` does not end the channel: the error relay boxes
//!   the failure into an `Error` for that dialog (a
//!   [`Raise`](crate::relay::Raise) names the Python type) and the channel
//!   goes on.
//!
//! Layers are listed from the wire up: the first one you add sits closest
//! to the transport, in both directions, so
//! `.frame_layer(encrypt).frame_layer(compress)` compresses, then
//! encrypts on the way out, and decrypts, then decompresses on the way in.
//! A two-way layer (one value that is a `Layer` of both the inbound and
//! the outbound service types) wraps both stacks from that one value, so
//! the services it makes share whatever state it holds.
//!
//! Your layers see the stack's services boxed, as the types below: any
//! `tower` middleware whose service fits them works unchanged. With no
//! layer of yours, nothing is boxed (the built-in stack keeps its concrete
//! types).
//!
//! [`Channel::stack`](crate::peer::Channel::stack) describes the stack a
//! channel runs, bottom-up, your layers included.

use crate::{BoxError, Inbound};
use bytes::Bytes;
use scipp_codecs::msg::Msg;
use std::fmt;
use std::sync::Arc;
use tower::util::{BoxCloneSyncService, BoxService};
use tower::{Layer, Service, ServiceExt};

/// What an inbound frame layer wraps: the rest of the receive stack, from
/// the codec up (a frame body in, nothing out).
pub type InboundFrames = BoxService<Bytes, (), BoxError>;

/// What an outbound frame layer wraps: the rest of the send stack, down to
/// the writer (a frame body in).
pub type OutboundFrames = BoxCloneSyncService<Bytes, (), BoxError>;

/// What an inbound message layer wraps: the rest of the receive stack,
/// the router on top.
pub type InboundMessages = BoxService<Inbound, (), BoxError>;

/// What an outbound message layer wraps: the rest of the send stack, from
/// payload validation down.
pub type OutboundMessages = BoxCloneSyncService<Msg, (), BoxError>;

type Wrap<S> = Arc<dyn Fn(S) -> S + Send + Sync>;

/// One user layer, type-erased, with a name for [`StackDescription`].
struct Named<S> {
    name: String,
    wrap: Wrap<S>,
}

impl<S> Clone for Named<S> {
    fn clone(&self) -> Self {
        Named {
            name: self.name.clone(),
            wrap: self.wrap.clone(),
        }
    }
}

/// The user's layers of a peer, per position and direction, listed from
/// the wire up.
#[derive(Clone, Default)]
pub(crate) struct UserLayers {
    frames_in: Vec<Named<InboundFrames>>,
    frames_out: Vec<Named<OutboundFrames>>,
    messages_in: Vec<Named<InboundMessages>>,
    messages_out: Vec<Named<OutboundMessages>>,
}

impl fmt::Debug for UserLayers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserLayers")
            .field("frames_in", &names_of(&self.frames_in))
            .field("frames_out", &names_of(&self.frames_out))
            .field("messages_in", &names_of(&self.messages_in))
            .field("messages_out", &names_of(&self.messages_out))
            .finish()
    }
}

fn names_of<S>(v: &[Named<S>]) -> Vec<String> {
    v.iter().map(|n| n.name.clone()).collect()
}

/// A layer that fits the receive stack at the position whose items are
/// `T` (`Bytes` for frames, [`Inbound`] for messages). Every
/// `tower::Layer` whose service takes `T`, answers `()`, fails with an
/// error that converts into [`BoxError`] and is `Send` is one; you never
/// implement this trait yourself.
pub trait InboundLayer<T>: Send + Sync + 'static {
    /// Wraps the rest of the receive stack.
    fn wrap_inbound(&self, inner: BoxService<T, (), BoxError>) -> BoxService<T, (), BoxError>;
}

impl<T, L> InboundLayer<T> for L
where
    T: 'static,
    L: Layer<BoxService<T, (), BoxError>> + Send + Sync + 'static,
    L::Service: Service<T, Response = ()> + Send + 'static,
    <L::Service as Service<T>>::Error: Into<BoxError>,
    <L::Service as Service<T>>::Future: Send + 'static,
{
    fn wrap_inbound(&self, inner: BoxService<T, (), BoxError>) -> BoxService<T, (), BoxError> {
        BoxService::new(self.layer(inner).map_err(Into::into))
    }
}

/// A layer that fits the send stack at the position whose items are `T`
/// (`Bytes` for frames, `Msg` for messages): as [`InboundLayer`], and its
/// service is `Clone + Sync` too (every context holds a clone of the send
/// stack). You never implement this trait yourself.
pub trait OutboundLayer<T>: Send + Sync + 'static {
    /// Wraps the rest of the send stack.
    fn wrap_outbound(
        &self,
        inner: BoxCloneSyncService<T, (), BoxError>,
    ) -> BoxCloneSyncService<T, (), BoxError>;
}

impl<T, L> OutboundLayer<T> for L
where
    T: 'static,
    L: Layer<BoxCloneSyncService<T, (), BoxError>> + Send + Sync + 'static,
    L::Service: Service<T, Response = ()> + Clone + Send + Sync + 'static,
    <L::Service as Service<T>>::Error: Into<BoxError>,
    <L::Service as Service<T>>::Future: Send + 'static,
{
    fn wrap_outbound(
        &self,
        inner: BoxCloneSyncService<T, (), BoxError>,
    ) -> BoxCloneSyncService<T, (), BoxError> {
        BoxCloneSyncService::new(self.layer(inner).map_err(Into::into))
    }
}

impl UserLayers {
    pub(crate) fn add_frames_in<L: InboundLayer<Bytes>>(&mut self, layer: Arc<L>) {
        self.frames_in.push(Named {
            name: short_type_name::<L>(),
            wrap: Arc::new(move |inner| layer.wrap_inbound(inner)),
        });
    }

    pub(crate) fn add_frames_out<L: OutboundLayer<Bytes>>(&mut self, layer: Arc<L>) {
        self.frames_out.push(Named {
            name: short_type_name::<L>(),
            wrap: Arc::new(move |inner| layer.wrap_outbound(inner)),
        });
    }

    pub(crate) fn add_messages_in<L: InboundLayer<Inbound>>(&mut self, layer: Arc<L>) {
        self.messages_in.push(Named {
            name: short_type_name::<L>(),
            wrap: Arc::new(move |inner| layer.wrap_inbound(inner)),
        });
    }

    pub(crate) fn add_messages_out<L: OutboundLayer<Msg>>(&mut self, layer: Arc<L>) {
        self.messages_out.push(Named {
            name: short_type_name::<L>(),
            wrap: Arc::new(move |inner| layer.wrap_outbound(inner)),
        });
    }

    /// Whether the receive stack has no layer of the user's.
    pub(crate) fn inbound_is_empty(&self) -> bool {
        self.frames_in.is_empty() && self.messages_in.is_empty()
    }

    /// Whether the send stack has no layer of the user's.
    pub(crate) fn outbound_is_empty(&self) -> bool {
        self.frames_out.is_empty() && self.messages_out.is_empty()
    }

    /// The inbound frame layers around `codec` (the first added outermost:
    /// it meets a frame first).
    pub(crate) fn wrap_frames_in(&self, codec: InboundFrames) -> InboundFrames {
        self.frames_in
            .iter()
            .rev()
            .fold(codec, |svc, layer| (layer.wrap)(svc))
    }

    /// The outbound frame layers around `writer` (the first added
    /// innermost: it is the last to touch a frame).
    pub(crate) fn wrap_frames_out(&self, writer: OutboundFrames) -> OutboundFrames {
        self.frames_out
            .iter()
            .fold(writer, |svc, layer| (layer.wrap)(svc))
    }

    /// The inbound message layers around `router`.
    pub(crate) fn wrap_messages_in(&self, router: InboundMessages) -> InboundMessages {
        self.messages_in
            .iter()
            .rev()
            .fold(router, |svc, layer| (layer.wrap)(svc))
    }

    /// The outbound message layers around `checks` (payload validation
    /// and below).
    pub(crate) fn wrap_messages_out(&self, checks: OutboundMessages) -> OutboundMessages {
        self.messages_out
            .iter()
            .fold(checks, |svc, layer| (layer.wrap)(svc))
    }

    /// The stack these layers make, around the built-in ones.
    pub(crate) fn describe(&self, codec: &str, policy: &str) -> StackDescription {
        let user = |v: Vec<String>| v.into_iter().map(|n| format!("[yours] {n}"));
        let mut receive = vec!["framing (u32-LE length prefix)".to_owned()];
        receive.extend(user(names_of(&self.frames_in)));
        receive.push(format!("codec ({codec})"));
        receive.push("msg_type (dialog state)".to_owned());
        receive.push("payload (spec check)".to_owned());
        receive.push("relay (failures above -> Error to the peer)".to_owned());
        receive.extend(user(names_of(&self.messages_in)));
        receive.push(format!(
            "route (contexts and endpoints; policy for invalid items: {policy})"
        ));
        let mut send = vec!["writer (batched writes)".to_owned()];
        send.extend(user(names_of(&self.frames_out)));
        send.push(format!("codec ({codec})"));
        send.push("msg_type (never send an illegal message)".to_owned());
        send.push("payload (Started round trip)".to_owned());
        send.extend(user(names_of(&self.messages_out)));
        send.push("contexts, endpoints and router replies".to_owned());
        StackDescription { receive, send }
    }
}

/// The layers of a channel's two stacks, bottom-up (from the transport),
/// as [`Channel::stack`](crate::peer::Channel::stack) reports them. Your
/// layers show as `[yours] TypeName`.
///
/// ```
/// use scipp_layers::peer::Peer;
/// use scipp_codecs::msgpack::MsgpackCodec;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let server = Peer::new("server", MsgpackCodec::new());
/// let client = Peer::new("client", MsgpackCodec::new())
///     .message_layer(tower::layer::util::Identity::new());
/// let (a, b) = tokio::io::duplex(4096);
/// let (_served, chan) = tokio::join!(server.accept(a), client.channel(b));
/// let stack = chan.unwrap().stack();
/// let at = |name: &str| stack.receive().iter().position(|l| l.contains(name)).unwrap();
/// assert!(at("payload") < at("[yours] Identity") && at("[yours] Identity") < at("route"));
/// println!("{stack}");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackDescription {
    receive: Vec<String>,
    send: Vec<String>,
}

impl StackDescription {
    /// The receive stack's layers, from the transport up.
    pub fn receive(&self) -> &[String] {
        &self.receive
    }

    /// The send stack's layers, from the transport up (a message meets
    /// them last to first).
    pub fn send(&self) -> &[String] {
        &self.send
    }
}

impl fmt::Display for StackDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "receive, from the transport up:")?;
        for (i, layer) in self.receive.iter().enumerate() {
            writeln!(f, "  {}. {layer}", i + 1)?;
        }
        writeln!(f, "send, from the transport up:")?;
        for (i, layer) in self.send.iter().enumerate() {
            writeln!(f, "  {}. {layer}", i + 1)?;
        }
        Ok(())
    }
}

/// `my_crate::metrics::CountLayer<Foo>` -> `CountLayer<Foo>`.
pub(crate) fn short_type_name<T: ?Sized>() -> String {
    let full = std::any::type_name::<T>();
    let head = full.split('<').next().unwrap_or(full);
    let start = head.rfind("::").map_or(0, |i| i + 2);
    full[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::short_type_name;

    #[test]
    fn short_names_drop_the_module_path() {
        assert_eq!(short_type_name::<String>(), "String");
        assert_eq!(
            short_type_name::<tower::layer::util::Identity>(),
            "Identity"
        );
        assert_eq!(
            short_type_name::<Vec<String>>(),
            "Vec<alloc::string::String>"
        );
    }
}
