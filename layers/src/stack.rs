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
//! A layer that depends on *who* is at the other end (authorization by
//! TLS certificate, per-peer metrics or audit) is made per channel: the
//! `_fn` variants ([`Peer::message_layer_fn`](crate::peer::Peer::message_layer_fn),
//! [`Peer::inbound_message_layer_fn`](crate::peer::Peer::inbound_message_layer_fn))
//! take a closure that builds the layer from the channel's
//! [`ChannelInfo`] (the peer's `Aid`, address and certificate identity)
//! once the handshake is done, as `axum`'s connect info or a tonic
//! request's peer certificates. It runs once per channel; nothing is
//! added per message.
//!
//! Your layers see the stack's services boxed, as the types below: any
//! `tower` middleware whose service fits them works unchanged. With no
//! layer of yours, nothing is boxed (the built-in stack keeps its concrete
//! types).
//!
//! [`Channel::stack`](crate::peer::Channel::stack) describes the stack a
//! channel runs, bottom-up, your layers included.

use crate::peer::ChannelInfo;
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

/// One user layer made for one channel: wraps the rest of the stack.
type Wrap<S> = Box<dyn FnOnce(S) -> S + Send>;

/// What one user layer adds to one channel's stacks, per position and
/// direction.
#[derive(Default)]
pub(crate) struct Made {
    frames_in: Option<Wrap<InboundFrames>>,
    frames_out: Option<Wrap<OutboundFrames>>,
    messages_in: Option<Wrap<InboundMessages>>,
    messages_out: Option<Wrap<OutboundMessages>>,
}

/// Makes a layer's wrappers for a channel, given what is known about it.
type Make = Arc<dyn Fn(&ChannelInfo) -> Made + Send + Sync>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Position {
    Frames,
    Messages,
}

/// One user layer of a peer, type-erased, with a name for
/// [`StackDescription`] and where it goes.
#[derive(Clone)]
struct Entry {
    name: String,
    position: Position,
    inbound: bool,
    outbound: bool,
    make: Make,
}

/// The user's layers of a peer, in the order they were added (from the
/// wire up). A channel makes its own wrappers from them
/// ([`for_channel`](Self::for_channel)) once its peer is known.
#[derive(Clone, Default)]
pub(crate) struct UserLayers {
    entries: Vec<Entry>,
}

impl fmt::Debug for UserLayers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserLayers")
            .field("frames_in", &self.names(Position::Frames, true))
            .field("frames_out", &self.names(Position::Frames, false))
            .field("messages_in", &self.names(Position::Messages, true))
            .field("messages_out", &self.names(Position::Messages, false))
            .finish()
    }
}

fn wrap_in<T: 'static, L: InboundLayer<T>>(layer: Arc<L>) -> Wrap<BoxService<T, (), BoxError>> {
    Box::new(move |inner| layer.wrap_inbound(inner))
}

fn wrap_out<T: 'static, L: OutboundLayer<T>>(
    layer: Arc<L>,
) -> Wrap<BoxCloneSyncService<T, (), BoxError>> {
    Box::new(move |inner| layer.wrap_outbound(inner))
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
    fn push<L: ?Sized>(&mut self, position: Position, inbound: bool, outbound: bool, make: Make) {
        self.entries.push(Entry {
            name: short_type_name::<L>(),
            position,
            inbound,
            outbound,
            make,
        });
    }

    pub(crate) fn add_frames_in<L: InboundLayer<Bytes>>(&mut self, layer: Arc<L>) {
        let make = move |_: &ChannelInfo| Made {
            frames_in: Some(wrap_in(layer.clone())),
            ..Made::default()
        };
        self.push::<L>(Position::Frames, true, false, Arc::new(make));
    }

    pub(crate) fn add_frames_out<L: OutboundLayer<Bytes>>(&mut self, layer: Arc<L>) {
        let make = move |_: &ChannelInfo| Made {
            frames_out: Some(wrap_out(layer.clone())),
            ..Made::default()
        };
        self.push::<L>(Position::Frames, false, true, Arc::new(make));
    }

    pub(crate) fn add_messages_in<L: InboundLayer<Inbound>>(&mut self, layer: Arc<L>) {
        let make = move |_: &ChannelInfo| Made {
            messages_in: Some(wrap_in(layer.clone())),
            ..Made::default()
        };
        self.push::<L>(Position::Messages, true, false, Arc::new(make));
    }

    pub(crate) fn add_messages_out<L: OutboundLayer<Msg>>(&mut self, layer: Arc<L>) {
        let make = move |_: &ChannelInfo| Made {
            messages_out: Some(wrap_out(layer.clone())),
            ..Made::default()
        };
        self.push::<L>(Position::Messages, false, true, Arc::new(make));
    }

    /// A messages-position layer that `make` builds for each channel, in
    /// the directions asked for; one value per channel serves both.
    pub(crate) fn add_messages_per_channel<L, F>(&mut self, make: F, inbound: bool, outbound: bool)
    where
        L: InboundLayer<Inbound> + OutboundLayer<Msg>,
        F: Fn(&ChannelInfo) -> L + Send + Sync + 'static,
    {
        let make = move |info: &ChannelInfo| {
            let layer = Arc::new(make(info));
            Made {
                messages_in: inbound.then(|| wrap_in(layer.clone())),
                messages_out: outbound.then(|| wrap_out(layer)),
                ..Made::default()
            }
        };
        self.push::<L>(Position::Messages, inbound, outbound, Arc::new(make));
    }

    /// An inbound-only messages-position layer that `make` builds for
    /// each channel.
    pub(crate) fn add_messages_in_per_channel<L, F>(&mut self, make: F)
    where
        L: InboundLayer<Inbound>,
        F: Fn(&ChannelInfo) -> L + Send + Sync + 'static,
    {
        let make = move |info: &ChannelInfo| Made {
            messages_in: Some(wrap_in(Arc::new(make(info)))),
            ..Made::default()
        };
        self.push::<L>(Position::Messages, true, false, Arc::new(make));
    }

    /// An outbound-only messages-position layer that `make` builds for
    /// each channel.
    pub(crate) fn add_messages_out_per_channel<L, F>(&mut self, make: F)
    where
        L: OutboundLayer<Msg>,
        F: Fn(&ChannelInfo) -> L + Send + Sync + 'static,
    {
        let make = move |info: &ChannelInfo| Made {
            messages_out: Some(wrap_out(Arc::new(make(info)))),
            ..Made::default()
        };
        self.push::<L>(Position::Messages, false, true, Arc::new(make));
    }

    /// Whether the send stack has no layer of the user's.
    pub(crate) fn outbound_is_empty(&self) -> bool {
        !self.entries.iter().any(|e| e.outbound)
    }

    fn names(&self, position: Position, inbound: bool) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| e.position == position && if inbound { e.inbound } else { e.outbound })
            .map(|e| e.name.clone())
            .collect()
    }

    /// The wrappers of one channel, made from what is known about it.
    pub(crate) fn for_channel(&self, info: &ChannelInfo) -> ChannelLayers {
        let mut layers = ChannelLayers::default();
        for entry in &self.entries {
            let made = (entry.make)(info);
            layers.frames_in.extend(made.frames_in);
            layers.frames_out.extend(made.frames_out);
            layers.messages_in.extend(made.messages_in);
            layers.messages_out.extend(made.messages_out);
        }
        layers
    }

    /// The stack these layers make, around the built-in ones.
    pub(crate) fn describe(&self, codec: &str, policy: &str) -> StackDescription {
        let user = |v: Vec<String>| v.into_iter().map(|n| format!("[yours] {n}"));
        let mut receive = vec!["framing (u32-LE length prefix)".to_owned()];
        receive.extend(user(self.names(Position::Frames, true)));
        receive.push(format!("codec ({codec})"));
        receive.push("msg_type (dialog state)".to_owned());
        receive.push("payload (spec check)".to_owned());
        receive.push("relay (failures above -> Error to the peer)".to_owned());
        receive.extend(user(self.names(Position::Messages, true)));
        receive.push(format!(
            "route (contexts and endpoints; policy for invalid items: {policy})"
        ));
        let mut send = vec!["writer (batched writes)".to_owned()];
        send.extend(user(self.names(Position::Frames, false)));
        send.push(format!("codec ({codec})"));
        send.push("msg_type (never send an illegal message)".to_owned());
        send.push("payload (Started round trip)".to_owned());
        send.extend(user(self.names(Position::Messages, false)));
        send.push("contexts, endpoints and router replies".to_owned());
        StackDescription { receive, send }
    }
}

/// The user's layers made for one channel, per position and direction,
/// listed from the wire up; each wraps once.
#[derive(Default)]
pub(crate) struct ChannelLayers {
    frames_in: Vec<Wrap<InboundFrames>>,
    frames_out: Vec<Wrap<OutboundFrames>>,
    messages_in: Vec<Wrap<InboundMessages>>,
    messages_out: Vec<Wrap<OutboundMessages>>,
}

impl ChannelLayers {
    /// Whether there are inbound frame layers.
    pub(crate) fn has_frames_in(&self) -> bool {
        !self.frames_in.is_empty()
    }

    /// Whether there are outbound frame layers.
    pub(crate) fn has_frames_out(&self) -> bool {
        !self.frames_out.is_empty()
    }

    /// Whether there are inbound message layers.
    pub(crate) fn has_messages_in(&self) -> bool {
        !self.messages_in.is_empty()
    }

    /// The inbound frame layers around `codec` (the first added outermost:
    /// it meets a frame first).
    pub(crate) fn wrap_frames_in(&mut self, codec: InboundFrames) -> InboundFrames {
        std::mem::take(&mut self.frames_in)
            .into_iter()
            .rev()
            .fold(codec, |svc, wrap| wrap(svc))
    }

    /// The outbound frame layers around `writer` (the first added
    /// innermost: it is the last to touch a frame).
    pub(crate) fn wrap_frames_out(&mut self, writer: OutboundFrames) -> OutboundFrames {
        std::mem::take(&mut self.frames_out)
            .into_iter()
            .fold(writer, |svc, wrap| wrap(svc))
    }

    /// The inbound message layers around `router`.
    pub(crate) fn wrap_messages_in(&mut self, router: InboundMessages) -> InboundMessages {
        std::mem::take(&mut self.messages_in)
            .into_iter()
            .rev()
            .fold(router, |svc, wrap| wrap(svc))
    }

    /// The outbound message layers around `checks` (payload validation
    /// and below).
    pub(crate) fn wrap_messages_out(&mut self, checks: OutboundMessages) -> OutboundMessages {
        std::mem::take(&mut self.messages_out)
            .into_iter()
            .fold(checks, |svc, wrap| wrap(svc))
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
