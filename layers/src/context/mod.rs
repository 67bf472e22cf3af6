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
mod typed;

pub use self::child::ChildContext;
pub use self::error::ContextError;
pub use self::parent::{Context, OpenContext};
pub use self::typed::{Dialog, NoKwargs, OpenDialog, TypedChildContext, TypedContext};

/// What a context does with an invalid message of its own (a payload
/// outside its spec, an out-of-order message): the per-context form of the
/// [`policy`](crate::policy) layers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnInvalid {
    /// The next receive fails with the [`MsgTypeError`](crate::MsgTypeError)
    /// (tractor's default).
    #[default]
    FailFast,
    /// Log a warning, drop the message, keep receiving.
    IgnoreAndWarn,
    /// Send the peer an `Error` naming the bad message, drop it, keep
    /// receiving.
    RelayToSender,
}

use crate::route::state::{SendStack, Shared};
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
    sender: SendStack<C>,
    cid: Cid,
    rx: crate::route::queue::Receiver,
    /// Whether dropping this closes the context's queue (false once a
    /// background cancel took the queue over).
    owns_slot: bool,
    on_invalid: OnInvalid,
}

impl<C: Codec> Core<C> {
    /// The next message of this context; an invalid one is handled by the
    /// context's [`OnInvalid`] policy.
    async fn next(&mut self) -> Result<Msg, ContextError> {
        loop {
            match self.rx.recv().await {
                Some(Inbound::Msg(msg)) => return Ok(msg),
                Some(Inbound::Invalid(err)) => match self.on_invalid {
                    OnInvalid::FailFast => return Err(ContextError::MsgType(err)),
                    OnInvalid::IgnoreAndWarn => {
                        tracing::warn!(
                            cid = self.cid.as_str(),
                            "dropping an invalid message: {}",
                            err.summary()
                        );
                    }
                    OnInvalid::RelayToSender => {
                        tracing::debug!(
                            cid = self.cid.as_str(),
                            "relaying a MsgTypeError to the sender"
                        );
                        let mut wire = err.to_wire(&self.shared.me);
                        wire.cid = Some(self.cid.clone());
                        self.send(Msg::from(wire)).await?;
                    }
                },
                None => return Err(self.shared.transport_closed()),
            }
        }
    }

    async fn send(&mut self, msg: Msg) -> Result<(), ContextError> {
        if self.shared.closed.is_cancelled() {
            return Err(self.shared.transport_closed());
        }
        let sent = match self.sender.ready().await {
            Ok(svc) => svc.call(msg).await,
            Err(e) => Err(e),
        };
        sent.map_err(|e| match e.downcast::<crate::MsgTypeError>() {
            Ok(mte) => ContextError::MsgType(*mte),
            Err(e) => ContextError::Send(e),
        })
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

impl<C> Drop for Core<C> {
    fn drop(&mut self) {
        if self.owns_slot {
            self.shared.close_slot(&self.cid);
        }
    }
}
