use super::{ContextError, Core};
use crate::relay;
use crate::route::state::{ChildCancel, Shared};
use crate::BoxError;
use scipp_codecs::msg::{self, Cid, FuncType, Msg, RawPayload, Uid};
use scipp_codecs::Codec;
use serde::{de::DeserializeOwned, Serialize};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};

/// Stream state the endpoint task and its runner both need.
#[derive(Debug, Default)]
struct Flags {
    started: AtomicBool,
    /// A `Yield` went either way: the stream is open (tractor's child
    /// opens it explicitly; streaming is our sign of it).
    streaming: AtomicBool,
    stop_sent: AtomicBool,
    stop_received: AtomicBool,
}

/// The child (endpoint) side of a context.
///
/// ```
/// use scipp_layers::{context::ChildContext, payload::PldSpec, peer::Peer, route::Endpoints, BoxError};
/// use scipp_codecs::msgpack::MsgpackCodec;
///
/// // `echo`: started(first), echo every streamed value, return the count.
/// async fn echo(mut ctx: ChildContext<MsgpackCodec>, kw: std::collections::BTreeMap<String, i64>) -> Result<u64, BoxError> {
///     ctx.started(&kw.get("first")).await?;
///     let mut n = 0;
///     while let Some(v) = ctx.recv::<i64>().await? {
///         ctx.send(&v).await?;
///         n += 1;
///     }
///     Ok(n)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut endpoints = Endpoints::new();
/// endpoints.context("demo", "echo", PldSpec::any(), echo);
/// let server = Peer::new("server", MsgpackCodec::new()).endpoints(endpoints);
/// let (a, b) = tokio::io::duplex(4096);
/// let client = Peer::new("client", MsgpackCodec::new());
/// let (_served, chan) = tokio::join!(server.channel(a), client.channel(b));
/// let chan = chan.unwrap(); // dropping the channel would close it
/// let (mut ctx, first): (_, Option<i64>) = chan.open_context("demo", "echo").start().await.unwrap();
/// assert_eq!(first, None);
/// ctx.send(&7).await.unwrap();
/// assert_eq!(ctx.recv::<i64>().await.unwrap(), Some(7));
/// ctx.close().await.unwrap();
/// assert_eq!(ctx.result::<u64>().await.unwrap(), 1);
/// # }
/// ```
pub struct ChildContext<C = crate::DefaultCodec> {
    core: Core<C>,
    flags: Arc<Flags>,
    cancel: Arc<ChildCancel>,
    place: Arc<str>,
}

impl<C> std::fmt::Debug for ChildContext<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildContext")
            .field("cid", &self.core.cid)
            .field("endpoint", &self.place)
            .finish()
    }
}

/// Runs an endpoint task to its end and sends its final message.
pub(crate) struct ChildRunner {
    cid: Cid,
    flags: Arc<Flags>,
    cancel: Arc<ChildCancel>,
    place: Arc<str>,
}

impl<C: Codec> ChildContext<C> {
    pub(crate) fn open(
        shared: Arc<Shared<C>>,
        cid: Cid,
        _functype: FuncType,
        place: Arc<str>,
    ) -> Result<(Self, ChildRunner), ContextError> {
        let cancel = Arc::new(ChildCancel::default());
        let rx = shared.open_slot(&cid, Some(cancel.clone()))?;
        let flags = Arc::new(Flags::default());
        let runner = ChildRunner {
            cid: cid.clone(),
            flags: flags.clone(),
            cancel: cancel.clone(),
            place: place.clone(),
        };
        let ctx = ChildContext {
            core: Core::new(shared, cid, rx),
            flags,
            cancel,
            place,
        };
        Ok((ctx, runner))
    }

    /// Sends this context's `StartAck` through its own handle on the send
    /// stack (no clone of the stack for it).
    pub(crate) async fn ack_start(&mut self, functype: FuncType) -> Result<(), ContextError> {
        let ack = msg::StartAck {
            cid: self.core.cid.clone(),
            functype,
        };
        self.core.send(Msg::StartAck(ack)).await
    }

    /// [`ack_start`](Self::ack_start) without waiting, when the send stack
    /// has room now (see `Core::send_now`).
    pub(crate) fn ack_start_now(
        &mut self,
        functype: FuncType,
    ) -> Result<super::SendNow, ContextError> {
        let ack = msg::StartAck {
            cid: self.core.cid.clone(),
            functype,
        };
        self.core.send_now(Msg::StartAck(ack))
    }

    /// The context id.
    pub fn cid(&self) -> &Cid {
        &self.core.cid
    }

    /// The parent's uid.
    pub fn peer(&self) -> &Uid {
        &self.core.shared.peer
    }

    /// The channel's wire profile (the tractor version the parent speaks).
    pub fn profile(&self) -> scipp_codecs::WireProfile {
        self.core.shared.profile
    }

    /// The channel's codec (to encode or decode payloads by hand).
    pub fn codec(&self) -> &C {
        &self.core.shared.codec
    }

    /// Sends the first value. Exactly once, before any stream; the value is
    /// round-trip validated against the context's payload spec before
    /// anything is written.
    ///
    /// # Errors
    /// A send-side [`MsgTypeError`](crate::MsgTypeError) for a value
    /// outside the spec, or a second call.
    pub async fn started<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ContextError> {
        let pld = self.core.encode(value)?;
        self.core
            .send(Msg::Started(msg::Started {
                cid: self.core.cid.clone(),
                pld,
            }))
            .await?;
        self.flags.started.store(true, Ordering::Release);
        Ok(())
    }

    /// Sends one stream item.
    ///
    /// # Errors
    /// Before `started`, after `close`, or when the channel is gone.
    pub async fn send<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ContextError> {
        let pld = self.core.encode(value)?;
        self.flags.streaming.store(true, Ordering::Release);
        self.core
            .send(Msg::Yield(msg::Yield {
                cid: self.core.cid.clone(),
                pld,
            }))
            .await
    }

    /// The parent's next stream item; `None` once it closed its stream.
    ///
    /// # Errors
    /// A remote error, an invalid message, or a closed channel.
    pub async fn recv<T: DeserializeOwned + 'static>(&mut self) -> Result<Option<T>, ContextError> {
        if self.flags.stop_received.load(Ordering::Acquire) {
            return Ok(None);
        }
        loop {
            match self.core.next().await? {
                Msg::Yield(y) => {
                    self.flags.streaming.store(true, Ordering::Release);
                    return self.core.decode(y.pld).map(Some);
                }
                Msg::Stop(_) => {
                    self.flags.stop_received.store(true, Ordering::Release);
                    return Ok(None);
                }
                Msg::Error(e) => return Err(relay::RemoteError::from(*e).into()),
                other => tracing::debug!("child ignoring {:?}", other.kind()),
            }
        }
    }

    /// Closes our side of the stream (sends `Stop`, once).
    ///
    /// # Errors
    /// When the channel is gone.
    pub async fn close(&mut self) -> Result<(), ContextError> {
        if self.flags.stop_sent.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.core
            .send(Msg::Stop(msg::Stop {
                cid: self.core.cid.clone(),
            }))
            .await
    }

    /// This context's receive policy: what it does with an invalid
    /// message from the parent, instead of the peer's policy
    /// ([`Peer::policy`](crate::peer::Peer::policy)). Any policy layer, a
    /// [`ReceivePolicy`](crate::policy::ReceivePolicy) or an
    /// [`OnInvalid`](super::OnInvalid).
    pub fn set_policy(&mut self, policy: impl Into<crate::policy::ReceivePolicy>) {
        self.core.set_policy(policy.into());
    }

    /// Shorthand for [`set_policy`](Self::set_policy) with an
    /// [`OnInvalid`](super::OnInvalid).
    pub fn on_invalid(&mut self, policy: super::OnInvalid) {
        self.set_policy(policy);
    }

    /// Resolves when the parent (or an actor cancel) cancels this task.
    pub async fn cancelled(&self) {
        self.cancel.token.cancelled().await;
    }

    /// Cancels this context from the child side: the task stops at its
    /// next `.await`, and the parent gets `ContextCancelled` with this
    /// actor as the canceller (tractor's child-side `ctx.cancel()`).
    pub fn cancel(&self) {
        let mut who = self
            .cancel
            .canceller
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if who.is_none() {
            *who = Some(self.core.shared.me.clone());
        }
        drop(who);
        self.cancel.token.cancel();
    }
}

impl ChildRunner {
    /// Drives the endpoint future; sends `Return`, a boxed `Error`, or (on
    /// cancel) `Stop` if its stream is open and `ContextCancelled`. A
    /// panicking endpoint is an error like any other: the peer gets it
    /// boxed, and the channel goes on.
    pub(crate) async fn run<C, F>(self, shared: Arc<Shared<C>>, functype: FuncType, endpoint: F)
    where
        C: Codec,
        F: Future<Output = Result<RawPayload, BoxError>>,
    {
        use futures_util::FutureExt;
        let endpoint = std::panic::AssertUnwindSafe(endpoint)
            .catch_unwind()
            .map(|out| out.unwrap_or_else(|panic| Err(panicked(&self.place, &*panic))));
        let outcome = tokio::select! {
            biased;
            () = self.cancel.token.cancelled() => None,
            out = endpoint => Some(out),
        };
        // A task that cancelled itself and then returned is still cancelled.
        let outcome = outcome.filter(|_| !self.cancel.token.is_cancelled());
        let cid = self.cid.clone();
        let f = &self.flags;
        let stream_open = f.streaming.load(Ordering::Acquire)
            && !f.stop_sent.load(Ordering::Acquire)
            && !f.stop_received.load(Ordering::Acquire);
        // An open stream closes (sends `Stop`) before an error or a cancel
        // goes out, as tractor's stream close does.
        let close_first =
            stream_open && !matches!(outcome, Some(Ok(_))) && functype != FuncType::AsyncFunc;
        if close_first && !shared.closed.is_cancelled() {
            let _ = shared.send(Msg::Stop(msg::Stop { cid: cid.clone() })).await;
        }
        let final_msg = match outcome {
            Some(Ok(_)) if functype == FuncType::AsyncGen => {
                (!self.flags.stop_sent.load(Ordering::Acquire))
                    .then(|| Msg::Stop(msg::Stop { cid: cid.clone() }))
            }
            Some(Ok(pld)) => Some(Msg::Return(msg::Return {
                cid: cid.clone(),
                pld,
            })),
            Some(Err(e)) => Some(Msg::from(relay::pack_as(
                &*e,
                &shared.me,
                Some(cid.clone()),
                &self.place,
                shared.profile,
            ))),
            // A cancelled plain RPC sends nothing (tractor).
            None if functype == FuncType::AsyncFunc => None,
            None => {
                let canceller = self
                    .cancel
                    .canceller
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                Some(Msg::from(context_cancelled(
                    &shared.me,
                    canceller,
                    &cid,
                    &self.place,
                )))
            }
        };
        if let Some(m) = final_msg {
            if !shared.closed.is_cancelled() {
                if let Err(e) = shared.send(m).await {
                    tracing::debug!(cid = cid.as_str(), "could not send the final message: {e}");
                }
            }
        }
        shared.close_slot(&cid);
        self.cancel.finished.cancel();
    }
}

/// `Error(ContextCancelled)` as tractor's `_invoke` sends it (spec §6.4).
pub(crate) fn context_cancelled(
    me: &Uid,
    canceller: Option<Uid>,
    cid: &Cid,
    place: &str,
) -> msg::Error {
    let canceller = canceller.unwrap_or_else(|| me.clone());
    let by = if &canceller == me {
        "itself"
    } else {
        "its 'parent'-side peer"
    };
    let func = place.rsplit(':').next().unwrap_or(place);
    // tractor shows the Python task's address; ours is a stable stand-in.
    let addr = cid.as_str().bytes().fold(0x7f00_0000_0000u64, |h, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b))
    }) & 0xffff_ffff_ffff;
    let mut err = msg::Error::new(me.clone(), "ContextCancelled");
    err.message = Some(format!(
        "'child'-side task was cancelled by {by}\n                      ------ - ------\n<= canceller: {canceller}\n=> cancellee: {me}\n  |_'child' <Task '{func}' at 0x{addr:012x}>"
    ));
    err.tb_str = format!("Traceback (scipp, Rust):\n  in endpoint {place}\nContextCancelled: 'child'-side task was cancelled by {by}\n<= canceller: {canceller}\n");
    err.canceller = Some(canceller);
    err.cid = Some(cid.clone());
    err
}

/// The error a panicking endpoint becomes.
fn panicked(place: &str, panic: &(dyn std::any::Any + Send)) -> BoxError {
    let what = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-string panic payload");
    tracing::error!(endpoint = place, "endpoint panicked: {what}");
    format!("the endpoint `{place}` panicked: {what}").into()
}
