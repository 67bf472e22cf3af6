use super::{FailFastLayer, IgnoreAndWarnLayer, PolicyFnLayer, RelayToSenderLayer};
use crate::stack::{InboundLayer, InboundMessages, OutboundMessages};
use crate::{BoxError, Inbound, MsgTypeError};
use scipp_codecs::msg::{Msg, Uid};
use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use tower::util::BoxService;
use tower::{Layer, Service, ServiceExt};

/// What a policy may need from the channel it runs on.
pub(crate) struct Link {
    /// The channel's send stack (for policies that answer the peer).
    pub(crate) outbound: OutboundMessages,
    /// Who signs what the policy sends.
    pub(crate) me: Uid,
}

type Make = Arc<dyn Fn(InboundMessages, &Link) -> InboundMessages + Send + Sync>;

/// The receive-side policy of a [`Peer`](crate::peer::Peer)'s channels or
/// of one context: what happens to an invalid item (a
/// [`MsgTypeError`]). Any of this module's layers converts into one, and
/// so does your own layer ([`ReceivePolicy::layer`]):
///
/// ```
/// use scipp_layers::{peer::Peer, policy::{self, Action}};
/// use scipp_codecs::msgpack::MsgpackCodec;
///
/// let strict = Peer::new("a", MsgpackCodec::new()).policy(policy::fail_fast());
/// let lenient = Peer::new("b", MsgpackCodec::new()).policy(policy::ignore_and_warn());
/// let relaying = Peer::new("c", MsgpackCodec::new()).policy(policy::ReceivePolicy::relay_to_sender());
/// let custom = Peer::new("d", MsgpackCodec::new())
///     .policy(policy::from_fn(|err: &scipp_layers::MsgTypeError| {
///         if err.kind().is_some() { Action::Drop } else { Action::Deliver }
///     }));
/// # drop((strict, lenient, relaying, custom));
/// ```
///
/// Where it acts: an invalid item of an open context goes to that
/// context, whose policy (its own, set with
/// [`OpenContext::policy`](crate::context::OpenContext::policy) or
/// [`ChildContext::set_policy`](crate::context::ChildContext::set_policy),
/// else the peer's) decides when the context reads it; valid items always
/// reach the context. An invalid item that belongs to no context (a
/// garbage frame) goes through the peer's policy, and what it delivers
/// lands in [`Channel::next_orphan`](crate::peer::Channel::next_orphan);
/// a failure there ends the channel. The default is [`deliver`].
#[derive(Clone)]
pub struct ReceivePolicy {
    name: Cow<'static, str>,
    make: Make,
}

impl fmt::Debug for ReceivePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReceivePolicy").field(&self.name).finish()
    }
}

impl Default for ReceivePolicy {
    fn default() -> Self {
        deliver().into()
    }
}

impl ReceivePolicy {
    /// Any layer over the items a policy sees (its service is handed the
    /// invalid items; what it passes on is delivered, what it drops is
    /// gone, an error fails the context or, outside any context, the
    /// channel).
    ///
    /// ```
    /// use scipp_layers::{peer::Peer, policy::ReceivePolicy};
    /// use scipp_codecs::msgpack::MsgpackCodec;
    ///
    /// // any tower layer over the policy's items fits; this one passes them on
    /// let peer = Peer::new("a", MsgpackCodec::new())
    ///     .policy(ReceivePolicy::layer(tower::layer::util::Identity::new()));
    /// # drop(peer);
    /// ```
    pub fn layer<L: InboundLayer<Inbound>>(layer: L) -> Self {
        Self::named(crate::stack::short_type_name::<L>(), layer)
    }

    fn named<L: InboundLayer<Inbound>>(name: impl Into<Cow<'static, str>>, layer: L) -> Self {
        ReceivePolicy {
            name: name.into(),
            make: Arc::new(move |inner, _link| layer.wrap_inbound(inner)),
        }
    }

    /// [`relay_to_sender`](super::relay_to_sender) on the channel the
    /// policy runs on: each invalid item is answered with an `Error` to
    /// its sender, and dropped.
    pub fn relay_to_sender() -> Self {
        ReceivePolicy {
            name: "relay_to_sender".into(),
            make: Arc::new(|inner, link| {
                let layer = super::relay_to_sender(link.outbound.clone(), link.me.clone());
                BoxService::new(layer.layer(inner))
            }),
        }
    }

    /// The policy's name (e.g. `fail_fast`, or your layer's type name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The policy's service in front of `inner`, on `link`'s channel.
    pub(crate) fn apply(&self, inner: InboundMessages, link: &Link) -> InboundMessages {
        (self.make)(inner, link)
    }
}

impl From<IgnoreAndWarnLayer> for ReceivePolicy {
    fn from(layer: IgnoreAndWarnLayer) -> Self {
        Self::named("ignore_and_warn", layer)
    }
}

impl From<FailFastLayer> for ReceivePolicy {
    fn from(layer: FailFastLayer) -> Self {
        Self::named("fail_fast", layer)
    }
}

impl<P> From<PolicyFnLayer<P>> for ReceivePolicy
where
    P: super::Policy + Clone + Send + Sync + 'static,
{
    fn from(layer: PolicyFnLayer<P>) -> Self {
        let name = if std::any::type_name::<P>() == std::any::type_name::<DeliverFn>() {
            "deliver"
        } else {
            "from_fn"
        };
        Self::named(name, layer)
    }
}

impl<O> From<RelayToSenderLayer<O>> for ReceivePolicy
where
    O: Service<Msg, Response = ()> + Clone + Send + Sync + 'static,
    O::Error: Into<BoxError>,
    O::Future: Send,
{
    fn from(layer: RelayToSenderLayer<O>) -> Self {
        Self::named("relay_to_sender", layer)
    }
}

type DeliverFn = fn(&MsgTypeError) -> super::Action;

/// Passes every invalid item on to whoever reads next: a context's next
/// receive fails with it (the context goes on if you read again), an item
/// of no context lands in
/// [`Channel::next_orphan`](crate::peer::Channel::next_orphan). The
/// default policy of a [`Peer`](crate::peer::Peer).
///
/// ```
/// use scipp_layers::{peer::Peer, policy};
/// use scipp_codecs::msgpack::MsgpackCodec;
/// let peer = Peer::new("a", MsgpackCodec::new()).policy(policy::deliver());
/// # drop(peer);
/// ```
pub fn deliver() -> PolicyFnLayer<DeliverFn> {
    fn deliver_all(_: &MsgTypeError) -> super::Action {
        super::Action::Deliver
    }
    super::from_fn(deliver_all as DeliverFn)
}

/// A policy's service with a sink on top that keeps what it delivers: runs
/// one invalid item at a time through the policy and says what became of
/// it.
pub(crate) struct Verdicts {
    svc: Mutex<InboundMessages>,
    delivered: Arc<Mutex<Option<Inbound>>>,
}

impl fmt::Debug for Verdicts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Verdicts")
    }
}

impl Verdicts {
    pub(crate) fn new(policy: &ReceivePolicy, link: &Link) -> Self {
        let delivered = Arc::new(Mutex::new(None));
        let sink = BoxService::new(Keep {
            slot: delivered.clone(),
        });
        Verdicts {
            svc: Mutex::new(policy.apply(sink, link)),
            delivered,
        }
    }

    /// `Ok(Some(item))`: the policy delivered it; `Ok(None)`: dropped;
    /// `Err`: the policy failed it.
    pub(crate) async fn judge(&mut self, item: Inbound) -> Result<Option<Inbound>, BoxError> {
        let svc = self.svc.get_mut().unwrap_or_else(PoisonError::into_inner);
        svc.ready().await?.call(item).await?;
        Ok(self
            .delivered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take())
    }
}

/// The sink under a policy: keeps the one item it is given.
struct Keep {
    slot: Arc<Mutex<Option<Inbound>>>,
}

impl Service<Inbound> for Keep {
    type Response = ();
    type Error = BoxError;
    type Future = std::future::Ready<Result<(), BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, item: Inbound) -> Self::Future {
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(item);
        std::future::ready(Ok(()))
    }
}
