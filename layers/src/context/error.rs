//! What can end a context, as seen by the code holding it.

use crate::relay::RemoteError;
use crate::{BoxError, MsgTypeError};
use scipp_codecs::PayloadError;

/// Why a context operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// The peer's side failed (its error boxed as tractor does), or
    /// cancelled the context (`ContextCancelled`).
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// A message broke the protocol or the payload spec.
    #[error(transparent)]
    MsgType(#[from] MsgTypeError),
    /// A payload did not decode into the requested type.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// The channel's transport closed (EOF, reset, a bad frame, the idle
    /// timeout) while the context was open. Every message received before
    /// that was delivered first.
    #[error("the channel to {peer} closed while the context was open: {reason}")]
    TransportClosed {
        /// The peer's name.
        peer: String,
        /// Why the channel closed.
        reason: String,
    },
    /// The channel already has as many open contexts as
    /// `peer::Config::max_contexts` allows.
    #[error("{limit} contexts are already open on this channel (Config::max_contexts)")]
    TooManyContexts {
        /// The limit.
        limit: usize,
    },
    /// The peer has no such endpoint, or answered out of order.
    #[error("protocol: {0}")]
    Protocol(String),
    /// Waiting for the peer took longer than allowed.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// Sending failed (the writer is gone or a send-side check refused).
    #[error("send failed: {0}")]
    Send(BoxError),
    /// The context's receive policy failed an invalid message with an
    /// error of its own.
    #[error("receive policy: {0}")]
    Policy(BoxError),
}

impl ContextError {
    /// The remote error, if this is one.
    pub fn remote(&self) -> Option<&RemoteError> {
        match self {
            ContextError::Remote(r) => Some(r),
            _ => None,
        }
    }

    /// Whether the context was cancelled (a `ContextCancelled` from the peer).
    pub fn is_cancelled(&self) -> bool {
        self.remote().is_some_and(RemoteError::is_cancelled)
    }
}
