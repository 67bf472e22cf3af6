//! The endpoint's side of a typed dialog, and its registration.

use super::{kwargs, spec_of, Dialog};
use crate::context::{ChildContext, ContextError, OnInvalid};
use crate::route::{Call, Endpoints};
use crate::BoxError;
use scipp_codecs::msg::{Cid, FuncType, Uid};
use scipp_codecs::Codec;
use std::borrow::Borrow;
use std::future::Future;
use std::marker::PhantomData;

impl<C: Codec> Endpoints<C> {
    /// Registers the endpoint of dialog `D` (under `D::NS`, `D::FUNC`,
    /// with `D`'s per-phase payload spec): an async fn of the typed child
    /// context and the kwargs. It must call
    /// [`started`](TypedChildContext::started) once; its `D::Return` is
    /// sent as `Return`, its error as a boxed `Error`. Kwargs that do not
    /// fit `D::Kwargs` are Python's `TypeError`. See the
    /// [`typed` module docs](crate::context::Dialog) for an example.
    pub fn dialog<D, F, Fut>(&mut self, _dialog: D, f: F) -> &mut Self
    where
        D: Dialog,
        F: Fn(TypedChildContext<D, C>, D::Kwargs) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<D::Return, BoxError>> + Send + 'static,
    {
        let svc = tower::service_fn(move |call: Call<C>| {
            let f = f.clone();
            async move {
                let codec = call.ctx.codec().clone();
                let kw: D::Kwargs =
                    kwargs::decode(&codec, D::FUNC, &call.kwargs, || call.kwargs())?;
                let ctx = TypedChildContext {
                    inner: call.ctx,
                    dialog: PhantomData,
                };
                let out = f(ctx, kw).await?;
                Ok::<_, BoxError>(codec.encode_payload(&out)?)
            }
        });
        self.service(D::NS, D::FUNC, FuncType::Context, spec_of::<D, C>(), svc)
    }
}

/// The endpoint's side of a typed dialog: a [`ChildContext`] whose first
/// value and stream items have the types of `D`.
pub struct TypedChildContext<D: Dialog, C = crate::DefaultCodec> {
    inner: ChildContext<C>,
    dialog: PhantomData<fn() -> D>,
}

impl<D: Dialog, C: Codec> std::fmt::Debug for TypedChildContext<D, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedChildContext")
            .field("dialog", &format_args!("{}:{}", D::NS, D::FUNC))
            .field("context", &self.inner)
            .finish()
    }
}

impl<D: Dialog, C: Codec> TypedChildContext<D, C> {
    /// The context id.
    pub fn cid(&self) -> &Cid {
        self.inner.cid()
    }

    /// The parent's uid.
    pub fn peer(&self) -> &Uid {
        self.inner.peer()
    }

    /// Sends the first value, once, before any stream item.
    ///
    /// # Errors
    /// A second call, or a closed channel.
    pub async fn started(&mut self, value: impl Borrow<D::Started>) -> Result<(), ContextError> {
        self.inner.started(value.borrow()).await
    }

    /// Sends one stream item (by value or by reference).
    ///
    /// # Errors
    /// After `close`, or when the channel is gone.
    pub async fn send(&mut self, item: impl Borrow<D::Item>) -> Result<(), ContextError> {
        self.inner.send(item.borrow()).await
    }

    /// The parent's next stream item; `None` once it closed its stream.
    ///
    /// # Errors
    /// A remote error, an item that is not a `D::Item` (a `MsgTypeError`
    /// naming `Yield.pld`), or a closed channel.
    pub async fn recv(&mut self) -> Result<Option<D::Item>, ContextError> {
        self.inner.recv::<D::Item>().await
    }

    /// Closes our side of the stream (sends `Stop`, once).
    ///
    /// # Errors
    /// When the channel is gone.
    pub async fn close(&mut self) -> Result<(), ContextError> {
        self.inner.close().await
    }

    /// What this context does with an invalid message from the parent
    /// (fail-fast by default).
    pub fn on_invalid(&mut self, policy: OnInvalid) {
        self.inner.on_invalid(policy);
    }

    /// Resolves when the parent (or an actor cancel) cancels this task.
    pub async fn cancelled(&self) {
        self.inner.cancelled().await;
    }

    /// Cancels this context from the child side (the parent gets
    /// `ContextCancelled`).
    pub fn cancel(&self) {
        self.inner.cancel();
    }

    /// The untyped context underneath (its codec, its profile, ...).
    pub fn untyped(&mut self) -> &mut ChildContext<C> {
        &mut self.inner
    }
}
