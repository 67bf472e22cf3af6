use crate::future::ResponseFuture;
use crate::payload::MsgTypeError;
use crate::{BoxError, Inbound};
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// What a [`Policy`] decides for one invalid item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Pass the invalid item up to the next service.
    Deliver,
    /// Drop it and go on.
    Drop,
    /// Fail the channel with this error.
    Fail,
}

/// A receive-side policy for invalid items. Closures
/// `FnMut(&MsgTypeError) -> Action` are policies.
pub trait Policy {
    /// Decides what happens to one invalid item.
    fn on_invalid(&mut self, err: &MsgTypeError) -> Action;
}

impl<F: FnMut(&MsgTypeError) -> Action> Policy for F {
    fn on_invalid(&mut self, err: &MsgTypeError) -> Action {
        self(err)
    }
}

/// A policy layer from a closure (or any [`Policy`]).
///
/// ```
/// use scipp_layers::{policy::{self, Action}, Inbound, BoxError, MsgTypeError};
/// use tower::ServiceBuilder;
/// let mut seen = 0;
/// let app = tower::service_fn(|_: Inbound| async { Ok::<_, BoxError>(()) });
/// let svc = ServiceBuilder::new()
///     .layer(policy::from_fn(move |_: &MsgTypeError| {
///         seen += 1;
///         if seen < 3 { Action::Drop } else { Action::Fail }
///     }))
///     .service(app);
/// # drop(svc);
/// ```
pub fn from_fn<P: Policy + Clone>(policy: P) -> PolicyFnLayer<P> {
    PolicyFnLayer { policy }
}

/// The layer of [`from_fn`].
#[derive(Debug, Clone)]
pub struct PolicyFnLayer<P> {
    policy: P,
}

impl<S, P: Clone> Layer<S> for PolicyFnLayer<P> {
    type Service = PolicyFn<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        PolicyFn {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// The service of [`from_fn`].
#[derive(Debug, Clone)]
pub struct PolicyFn<S, P> {
    inner: S,
    policy: P,
}

impl<S, P> Service<Inbound> for PolicyFn<S, P>
where
    S: Service<Inbound, Response = ()>,
    S::Error: Into<BoxError>,
    P: Policy,
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
        match self.policy.on_invalid(&err) {
            Action::Deliver => ResponseFuture::inner(self.inner.call(Inbound::Invalid(err))),
            Action::Drop => ResponseFuture::ready(Ok(())),
            Action::Fail => ResponseFuture::ready(Err(Box::new(err))),
        }
    }
}
