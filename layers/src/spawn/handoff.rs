//! The spawn handshake done by hand, then the connection handed to a
//! [`Channel`](crate::peer::Channel).
//!
//! On the connect-back, the `Aid`s are followed by one unacknowledged
//! `SpawnSpec` that no channel stack expects. The parent and the child
//! therefore greet each other here, on the raw transport, and then give
//! the connection to [`Peer::channel`](crate::peer::Peer::channel) /
//! [`Peer::accept`](crate::peer::Peer::accept) wrapped in a [`Replayed`]:
//! it replays the peer's `Aid` frame (and whatever was read past it) to
//! the channel's handshake, and swallows the channel's own `Aid`, which
//! was already sent. The peer sees exactly tractor's frame sequence.

use crate::framing::{FrameCodec, FrameError, HEADER_LEN};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use scipp_codecs::msg::{Aid, Msg};
use scipp_codecs::{Codec, WireProfile};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_util::codec::FramedRead;

/// A transport with bytes to read first, and optionally the first frame
/// written to it dropped.
#[derive(Debug)]
pub(crate) struct Replayed<IO> {
    prefix: Bytes,
    inner: IO,
    skip: Skip,
}

/// How much of the first outgoing frame is still to be dropped.
#[derive(Debug)]
enum Skip {
    Header { buf: [u8; HEADER_LEN], have: usize },
    Body(usize),
    Done,
}

impl<IO> Replayed<IO> {
    /// `inner`, reading `prefix` first; if `skip_first_frame`, the first
    /// frame written is dropped.
    pub(crate) fn new(inner: IO, prefix: Bytes, skip_first_frame: bool) -> Self {
        let skip = if skip_first_frame {
            Skip::Header {
                buf: [0; HEADER_LEN],
                have: 0,
            }
        } else {
            Skip::Done
        };
        Replayed {
            prefix,
            inner,
            skip,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Replayed<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Replayed<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if data.is_empty() {
            return Pin::new(&mut this.inner).poll_write(cx, data);
        }
        match &mut this.skip {
            Skip::Done => Pin::new(&mut this.inner).poll_write(cx, data),
            Skip::Header { buf, have } => {
                let n = (HEADER_LEN - *have).min(data.len());
                buf[*have..*have + n].copy_from_slice(&data[..n]);
                *have += n;
                if *have == HEADER_LEN {
                    let len = u32::from_le_bytes(*buf) as usize;
                    this.skip = if len == 0 {
                        Skip::Done
                    } else {
                        Skip::Body(len)
                    };
                }
                Poll::Ready(Ok(n))
            }
            Skip::Body(left) => {
                let n = (*left).min(data.len());
                *left -= n;
                if *left == 0 {
                    this.skip = Skip::Done;
                }
                Poll::Ready(Ok(n))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Why the hand-made part of the spawn handshake failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GreetError {
    /// Nothing arrived in time.
    #[error("no {what} within {after:?}")]
    Timeout {
        /// The message waited for.
        what: &'static str,
        /// The bound.
        after: Duration,
    },
    /// The connection closed first.
    #[error("the connection closed before the {0}")]
    Closed(&'static str),
    /// A different message (or an undecodable frame) came.
    #[error("expected the {expected}, got {got}")]
    Unexpected {
        /// The message expected.
        expected: &'static str,
        /// What came instead.
        got: String,
    },
    /// Framing or I/O failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// A transport being greeted by hand: frames read so far are buffered.
pub(crate) struct Greeting<IO> {
    frames: FramedRead<IO, FrameCodec>,
    /// Frames (header included) to replay to the channel's handshake.
    replay: BytesMut,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Greeting<IO> {
    pub(crate) fn new(io: IO, max_frame_len: usize) -> Self {
        Greeting {
            frames: FramedRead::new(io, FrameCodec::new(max_frame_len)),
            replay: BytesMut::new(),
        }
    }

    /// The next message, bounded by `after`; `keep` puts its frame in the
    /// replay buffer.
    pub(crate) async fn read<C: Codec>(
        &mut self,
        codec: &C,
        what: &'static str,
        after: Duration,
        keep: bool,
    ) -> Result<Msg, GreetError> {
        let frame = tokio::time::timeout(after, self.frames.next())
            .await
            .map_err(|_| GreetError::Timeout { what, after })?
            .ok_or(GreetError::Closed(what))??;
        if keep {
            self.replay
                .extend_from_slice(&(frame.len() as u32).to_le_bytes());
            self.replay.extend_from_slice(&frame);
        }
        codec.decode(frame).map_err(|e| GreetError::Unexpected {
            expected: what,
            got: e.to_string(),
        })
    }

    /// The peer's `Aid` (kept for the channel's handshake).
    pub(crate) async fn read_aid<C: Codec>(
        &mut self,
        codec: &C,
        after: Duration,
    ) -> Result<Aid, GreetError> {
        match self.read(codec, "peer's Aid", after, true).await? {
            Msg::Aid(aid) => Ok(*aid),
            other => Err(GreetError::Unexpected {
                expected: "peer's Aid",
                got: format!("a `{}` message", other.kind()),
            }),
        }
    }

    /// Writes one message as a frame, straight to the transport.
    pub(crate) async fn write<C: Codec>(&mut self, codec: &C, msg: &Msg) -> Result<(), GreetError> {
        let body = codec
            .encode_to_bytes(msg)
            .map_err(|e| GreetError::Frame(FrameError::Io(std::io::Error::other(e.to_string()))))?;
        let io = self.frames.get_mut();
        io.write_all(&(body.len() as u32).to_le_bytes())
            .await
            .map_err(FrameError::Io)?;
        io.write_all(&body).await.map_err(FrameError::Io)?;
        io.flush().await.map_err(FrameError::Io)?;
        Ok(())
    }

    /// The transport for a channel: the kept frames and anything read past
    /// them are replayed; `skip_first_frame` drops the channel's own `Aid`.
    pub(crate) fn into_transport(self, skip_first_frame: bool) -> Replayed<IO> {
        let parts = self.frames.into_parts();
        let mut prefix = self.replay;
        prefix.extend_from_slice(&parts.read_buf);
        Replayed::new(parts.io, prefix.freeze(), skip_first_frame)
    }
}

/// The wire profile a channel picks for `peer_aid` (as `Peer::accept`).
pub(crate) fn profile_for(configured: Option<WireProfile>, peer_aid: &Aid) -> WireProfile {
    configured.unwrap_or_else(|| WireProfile::of_aid(peer_aid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn replays_then_reads_and_skips_one_frame() {
        let (a, mut b) = tokio::io::duplex(256);
        let mut io = Replayed::new(a, Bytes::from_static(b"pre"), true);
        b.write_all(b"fix").await.unwrap();
        let mut got = [0u8; 6];
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"prefix");
        // the first frame (header in two writes) is dropped, the rest passes
        io.write_all(&[3, 0]).await.unwrap();
        io.write_all(&[0, 0, b'a', b'i']).await.unwrap();
        io.write_all(&[b'd', 1, 0, 0, 0, b'x']).await.unwrap();
        let mut out = [0u8; 5];
        b.read_exact(&mut out).await.unwrap();
        assert_eq!(&out, &[1, 0, 0, 0, b'x']);
    }
}
