use crate::future::ResponseFuture;
use crate::{BoxError, Inbound};
use scipp_codecs::msg::{Msg, Uid};
use std::task::{Context, Poll};
use tower::{Layer, Service, ServiceExt};

/// Sends the peer one `Error` per invalid item (a boxed `MsgTypeError`
/// naming the bad message, shaped like tractor's), drops the item and goes
/// on. `outbound` is the channel's send stack; `me` signs the error.
///
/// An invalid item without a `cid` is only logged: tractor drops an
/// `Error` without a `cid`, so relaying it would tell the sender nothing.
///
/// ```
/// use scipp_layers::{policy, Inbound, BoxError};
/// use scipp_codecs::msg::{Msg, Uid};
/// use tower::ServiceBuilder;
///
/// let send_stack = tower::service_fn(|_: Msg| async { Ok::<_, BoxError>(()) });
/// let me = Uid::new("scipp_peer", "659aea7d-8870-4c70-8c64-345c54084a49");
/// let app = tower::service_fn(|_: Inbound| async { Ok::<_, BoxError>(()) });
/// let svc = ServiceBuilder::new().layer(policy::relay_to_sender(send_stack, me)).service(app);
/// # drop(svc);
/// ```
pub fn relay_to_sender<O>(outbound: O, me: Uid) -> RelayToSenderLayer<O> {
    RelayToSenderLayer { outbound, me }
}

/// The layer of [`relay_to_sender`].
#[derive(Debug, Clone)]
pub struct RelayToSenderLayer<O> {
    outbound: O,
    me: Uid,
}

impl<S, O: Clone> Layer<S> for RelayToSenderLayer<O> {
    type Service = RelayToSender<S, O>;

    fn layer(&self, inner: S) -> Self::Service {
        RelayToSender {
            inner,
            outbound: self.outbound.clone(),
            me: self.me.clone(),
        }
    }
}

/// The service of [`relay_to_sender`].
#[derive(Debug, Clone)]
pub struct RelayToSender<S, O> {
    inner: S,
    outbound: O,
    me: Uid,
}

impl<S, O> Service<Inbound> for RelayToSender<S, O>
where
    S: Service<Inbound, Response = ()>,
    S::Error: Into<BoxError>,
    O: Service<Msg, Response = ()> + Clone + Send + 'static,
    O::Error: Into<BoxError>,
    O::Future: Send,
{
    type Response = ();
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, item: Inbound) -> Self::Future {
        let Inbound::Invalid(err) = item else {
            return ResponseFuture::inner(self.inner.call(item));
        };
        if err.cid().is_none() {
            tracing::warn!(
                "dropping an invalid message without a cid (not relayable): {}",
                err.summary()
            );
            return ResponseFuture::ready(Ok(()));
        }
        tracing::debug!(
            cid = err.cid().map(|c| c.as_str()),
            "relaying a MsgTypeError to its sender"
        );
        let reply = Msg::from(err.to_wire(&self.me));
        let outbound = self.outbound.clone();
        ResponseFuture::boxed(async move { outbound.oneshot(reply).await.map_err(Into::into) })
    }
}
