//! Framing errors.

use std::io;

/// A frame that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A length prefix claims more than the configured maximum. Nothing of
    /// the claimed size was allocated.
    #[error("frame of {claimed} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The length the header (or the outgoing frame) claims.
        claimed: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame: {received} of {expected} bytes received")]
    Truncated {
        /// Bytes the frame needs, header included.
        expected: usize,
        /// Bytes that arrived before the end.
        received: usize,
    },
    /// The transport failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// Nothing arrived for longer than the channel's idle timeout
    /// (`peer::Config::idle_timeout`): the peer is gone or a middlebox
    /// dropped the connection without closing it.
    #[error("no frame from the peer for {after:?} (idle timeout)")]
    Idle {
        /// The idle timeout.
        after: std::time::Duration,
    },
}
