//! IPC contexts: the two ends of one structured-concurrency dialog.
//!
//! - [`Context`] is the parent (caller) side, opened with
//!   [`Channel::open_context`](crate::peer::Channel::open_context): the
//!   child's first value, a bidirectional typed stream, then the final
//!   result or a typed error.
//! - [`ChildContext`] is what an endpoint gets: send `Started` once,
//!   stream, return.
//!
//! # Structured concurrency
//!
//! A [`Context`] cannot outlive the code that opened it without the remote
//! task hearing of it: dropping it before its final message (an early
//! return, `?`, a panic) sends `self._cancel_task` to the peer from a
//! background task that waits, bounded, for the peer's answer. Prefer
//! calling [`Context::cancel`] (which waits, and tells you the outcome) or
//! [`Context::result`] explicitly; the drop path is the safety net, and
//! needs a running tokio runtime.

mod child;
mod error;
mod parent;
pub mod typed;

pub use self::child::ChildContext;
pub(crate) use self::child::ChildRunner;

pub use self::error::ContextError;
pub use self::parent::{Context, OpenContext};
pub use self::typed::{Dialog, NoKwargs, OpenDialog, TypedChildContext, TypedContext};

/// Shorthand for the common [`ReceivePolicy`]s of one context:
/// `OnInvalid::IgnoreAndWarn` is [`policy::ignore_and_warn`], and so on.
/// Every method that takes it takes any `Into<ReceivePolicy>`, so the
/// policy layers themselves (and your own) work the same way.
///
/// ```
/// use scipp_layers::{context::OnInvalid, policy::ReceivePolicy};
/// assert_eq!(ReceivePolicy::from(OnInvalid::IgnoreAndWarn).name(), "ignore_and_warn");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnInvalid {
    /// [`policy::deliver`]: the next receive fails with the
    /// [`MsgTypeError`](crate::MsgTypeError) (tractor's default).
    #[default]
    FailFast,
    /// [`policy::ignore_and_warn`]: log a warning, drop the message, keep
    /// receiving.
    IgnoreAndWarn,
    /// [`ReceivePolicy::relay_to_sender`]: send the peer an `Error` naming
    /// the bad message, drop it, keep receiving.
    RelayToSender,
}

impl From<OnInvalid> for ReceivePolicy {
    fn from(on_invalid: OnInvalid) -> Self {
        match on_invalid {
            OnInvalid::FailFast => policy::deliver().into(),
            OnInvalid::IgnoreAndWarn => policy::ignore_and_warn().into(),
            OnInvalid::RelayToSender => ReceivePolicy::relay_to_sender(),
        }
    }
}

use crate::policy::{self, ReceivePolicy, Verdicts};
use crate::route::state::{Sender, Shared};
use crate::Inbound;
use scipp_codecs::msg::{Cid, Msg, RawPayload};
use scipp_codecs::Codec;
use serde::{de::DeserializeOwned, Serialize};
use std::sync::Arc;
use tower::{Service, ServiceExt};

/// What both ends of a context hold: the channel, the cid, the queue.
struct Core<C> {
    shared: Arc<Shared<C>>,
    /// This context's own handle on the send stack (cloned once, not per
    /// message).
    sender: Sender<C>,
    cid: Cid,
    rx: crate::route::queue::Receiver,
    /// Whether dropping this closes the context's queue (false once a
    /// background cancel took the queue over).
    owns_slot: bool,
    /// This context's own policy; `None`: the peer's.
    policy: Option<ReceivePolicy>,
    /// The policy's service, made when the first invalid item arrives.
    verdicts: Option<Verdicts>,
}

impl<C: Codec> Core<C> {
    fn new(shared: Arc<Shared<C>>, cid: Cid, rx: crate::route::queue::Receiver) -> Self {
        Core {
            sender: shared.sender.clone(),
            shared,
            cid,
            rx,
            owns_slot: true,
            policy: None,
            verdicts: None,
        }
    }

    fn set_policy(&mut self, policy: ReceivePolicy) {
        self.policy = Some(policy);
        self.verdicts = None;
    }

    /// The next message of this context; an invalid one goes through the
    /// context's policy (its own, else the peer's): delivered, it fails
    /// this receive; dropped, the next item is read.
    async fn next(&mut self) -> Result<Msg, ContextError> {
        loop {
            match self.rx.recv().await {
                Some(Inbound::Msg(msg)) => return Ok(msg),
                Some(invalid) => {
                    if let Some(item) = self.judge(invalid).await? {
                        return match item {
                            Inbound::Msg(msg) => Ok(msg),
                            Inbound::Invalid(err) => Err(ContextError::MsgType(err)),
                        };
                    }
                }
                None => return Err(self.shared.transport_closed()),
            }
        }
    }

    /// Runs one invalid item through the context's policy.
    async fn judge(&mut self, invalid: Inbound) -> Result<Option<Inbound>, ContextError> {
        let verdicts = match &mut self.verdicts {
            Some(v) => v,
            empty => {
                let policy = self.policy.as_ref().unwrap_or(&self.shared.policy);
                empty.insert(Verdicts::new(policy, &self.shared.link()))
            }
        };
        verdicts
            .judge(invalid)
            .await
            .map_err(|e| match e.downcast::<crate::MsgTypeError>() {
                Ok(mte) => ContextError::MsgType(*mte),
                Err(e) => ContextError::Policy(e),
            })
    }

    async fn send(&mut self, msg: Msg) -> Result<(), ContextError> {
        if self.shared.closed.is_cancelled() {
            return Err(self.shared.transport_closed());
        }
        let sent = match self.sender.ready().await {
            Ok(svc) => svc.call(msg).await,
            Err(e) => Err(e),
        };
        sent.map_err(send_error)
    }

    /// Sends `msg` without waiting, when the channel's built-in send stack
    /// has room now. [`SendNow::Wait`]: it would have
    /// to wait (or the stack is a user's): nothing was sent, `send` it.
    fn send_now(&mut self, msg: Msg) -> Result<SendNow, ContextError> {
        use std::future::Future;
        use std::task::{Context, Poll};
        if self.shared.closed.is_cancelled() {
            return Err(self.shared.transport_closed());
        }
        let crate::route::state::Sender::Plain(stack) = &mut self.sender else {
            return Ok(SendNow::Wait);
        };
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        match stack.poll_ready(&mut cx) {
            // a later `send` polls again, with a waker that counts
            Poll::Pending => return Ok(SendNow::Wait),
            Poll::Ready(Err(e)) => return Err(send_error(e)),
            Poll::Ready(Ok(())) => {}
        }
        let mut sent = stack.call(msg);
        match std::pin::Pin::new(&mut sent).poll(&mut cx) {
            Poll::Ready(done) => done.map(|()| SendNow::Sent).map_err(send_error),
            // not so with the built-in layers, which answer in `call`
            Poll::Pending => Ok(SendNow::Sending(Box::pin(async move {
                sent.await.map_err(send_error)
            }))),
        }
    }

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<RawPayload, ContextError> {
        Ok(self.shared.codec.encode_payload(value)?)
    }

    /// The payload as a `T`: the value the payload-spec check already
    /// decoded when it is one, else a fresh decode.
    fn decode<T: DeserializeOwned + 'static>(
        &self,
        mut raw: RawPayload,
    ) -> Result<T, ContextError> {
        if let Some(value) = raw.take_decoded::<T>() {
            return Ok(value);
        }
        Ok(self.shared.codec.decode_payload(&raw)?)
    }
}

/// What [`Core::send_now`] did.
pub(crate) enum SendNow {
    /// Sent.
    Sent,
    /// Not sent: the stack has no room now.
    Wait,
    /// Handed to the stack; done when this is.
    Sending(std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), ContextError>> + Send>>),
}

/// A send stack's error as a context's.
fn send_error(e: crate::BoxError) -> ContextError {
    match e.downcast::<crate::MsgTypeError>() {
        Ok(mte) => ContextError::MsgType(*mte),
        Err(e) => ContextError::Send(e),
    }
}

impl<C> Drop for Core<C> {
    fn drop(&mut self) {
        if self.owns_slot {
            self.shared.close_slot(&self.cid);
        }
    }
}
