//! The caller's side of a typed dialog.

use super::{kwargs, spec_of, Dialog};
use crate::context::{Context, ContextError, OnInvalid, OpenContext};
use crate::peer::Channel;
use scipp_codecs::msg::{Cid, Uid};
use scipp_codecs::Codec;
use std::borrow::Borrow;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;

impl<C: Codec> Channel<C> {
    /// Starts opening the dialog `D` on the peer with these kwargs (`()`
    /// for none); `.await` it (or [`start`](OpenDialog::start) it) for the
    /// open context and the child's first value.
    ///
    /// ```
    /// # use scipp_layers::{context::Dialog, peer::Peer, route::Endpoints};
    /// # use scipp_codecs::msgpack::MsgpackCodec;
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Range { below: u32 }
    ///
    /// /// Streams 0..below, returns their sum.
    /// struct Count;
    /// impl Dialog for Count {
    ///     const NS: &'static str = "demo";
    ///     const FUNC: &'static str = "count";
    ///     type Kwargs = Range;
    ///     type Started = ();
    ///     type Item = u32;
    ///     type Return = u64;
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut endpoints = Endpoints::new();
    /// endpoints.dialog(Count, |mut ctx, range| async move {
    ///     ctx.started(()).await?;
    ///     for i in 0..range.below {
    ///         ctx.send(i).await?;
    ///     }
    ///     ctx.close().await?; // the stream ends before the Return
    ///     Ok((0..range.below).map(u64::from).sum())
    /// });
    /// # let server = Peer::new("server", MsgpackCodec::new()).endpoints(endpoints);
    /// # let client = Peer::new("client", MsgpackCodec::new());
    /// # let (a, b) = tokio::io::duplex(4096);
    /// # let (_served, chan) = tokio::join!(server.channel(a), client.channel(b));
    /// # let chan = chan?;
    /// let (mut ctx, ()) = chan.dialog(Count, Range { below: 3 }).await?;
    /// let mut got = Vec::new();
    /// while let Some(i) = ctx.recv().await? {
    ///     got.push(i);
    /// }
    /// assert_eq!(got, [0, 1, 2]);
    /// assert_eq!(ctx.result().await?, 3);
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn dialog<D: Dialog>(&self, _dialog: D, kwargs: D::Kwargs) -> OpenDialog<D, C> {
        OpenDialog {
            open: self.open_context(D::NS, D::FUNC).spec(spec_of::<D, C>()),
            kwargs,
        }
    }
}

/// Opens a typed dialog: `.await` it, or set options first.
#[must_use = "a dialog opens only when awaited"]
pub struct OpenDialog<D: Dialog, C = crate::DefaultCodec> {
    open: OpenContext<C>,
    kwargs: D::Kwargs,
}

impl<D: Dialog, C> std::fmt::Debug for OpenDialog<D, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("OpenDialog").field(&self.open).finish()
    }
}

impl<D: Dialog, C: Codec> OpenDialog<D, C> {
    /// What the context does with an invalid message from the child, a
    /// payload of the wrong type say (fail-fast by default).
    pub fn on_invalid(mut self, policy: OnInvalid) -> Self {
        self.open = self.open.on_invalid(policy);
        self
    }

    /// Sends `Start`, waits for `StartAck` and `Started`, and returns the
    /// open context with the child's first value.
    ///
    /// # Errors
    /// The peer's `Error` (e.g. no such endpoint), a first value that is
    /// not a `D::Started` (a `MsgTypeError` naming `Started.pld`), or a
    /// closed channel.
    pub async fn start(self) -> Result<(TypedContext<D, C>, D::Started), ContextError> {
        let open = if kwargs::is_nothing(&self.kwargs) {
            self.open.kwargs(&super::NoKwargs)
        } else {
            self.open.kwargs(&self.kwargs)
        };
        let (inner, first) = open.start::<D::Started>().await?;
        Ok((
            TypedContext {
                inner,
                dialog: PhantomData,
            },
            first,
        ))
    }
}

impl<D: Dialog, C: Codec> IntoFuture for OpenDialog<D, C> {
    type Output = Result<(TypedContext<D, C>, D::Started), ContextError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.start())
    }
}

/// The caller's side of an open typed dialog: a [`Context`] whose stream
/// items and result have the types of `D`.
///
/// Dropping it before its final message cancels the remote task, as
/// [`Context`] does.
pub struct TypedContext<D: Dialog, C: Codec = crate::DefaultCodec> {
    inner: Context<C>,
    dialog: PhantomData<fn() -> D>,
}

impl<D: Dialog, C: Codec> std::fmt::Debug for TypedContext<D, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedContext")
            .field("dialog", &format_args!("{}:{}", D::NS, D::FUNC))
            .field("context", &self.inner)
            .finish()
    }
}

impl<D: Dialog, C: Codec> TypedContext<D, C> {
    /// The context id.
    pub fn cid(&self) -> &Cid {
        self.inner.cid()
    }

    /// The child's uid.
    pub fn peer(&self) -> &Uid {
        self.inner.peer()
    }

    /// Sends one stream item (by value or by reference).
    ///
    /// # Errors
    /// After `close`, when the child ended the context, or when the
    /// channel is gone.
    pub async fn send(&mut self, item: impl Borrow<D::Item>) -> Result<(), ContextError> {
        self.inner.send(item.borrow()).await
    }

    /// The child's next stream item; `None` once it closed its stream (or
    /// returned).
    ///
    /// # Errors
    /// The child's error, an item that is not a `D::Item` (a
    /// `MsgTypeError` naming `Yield.pld`), or a closed channel.
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

    /// Waits for the child's final value. Stream items still queued are
    /// dropped (with a warning): read the stream first if they matter.
    ///
    /// # Errors
    /// The child's error, a result that is not a `D::Return` (a
    /// `MsgTypeError` naming `Return.pld`), or a closed channel.
    pub async fn result(self) -> Result<D::Return, ContextError> {
        self.inner.result::<D::Return>().await
    }

    /// Cancels the remote task and waits, bounded, for its end.
    ///
    /// # Errors
    /// Any other error the child sent, or a timeout.
    pub async fn cancel(self) -> Result<(), ContextError> {
        self.inner.cancel().await
    }

    /// The untyped context underneath.
    pub fn into_untyped(self) -> Context<C> {
        self.inner
    }
}
