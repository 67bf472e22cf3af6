//! Running a stack on a transport: the read loop that feeds frames into a
//! receive stack, and the writer that the send stack ends in.

use crate::framing::{Frame, FrameCodec, FrameError};
use crate::BoxError;
use bytes::Bytes;
use futures_util::{SinkExt, Stream, StreamExt};
use std::task::{Context, Poll};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::{SendError, TrySendError};
use tokio::sync::mpsc::OwnedPermit;
use tokio_util::codec::FramedWrite;
use tokio_util::sync::{CancellationToken, ReusableBoxFuture};
use tower::{Service, ServiceExt};

/// Why a channel's read loop ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// The transport or the framing failed.
    #[error("transport: {0}")]
    Frame(#[from] FrameError),
    /// A layer ended the channel (e.g. a fail-fast policy on an error that
    /// belongs to no context).
    #[error("stack: {0}")]
    Stack(BoxError),
}

/// Feeds every frame of `frames` through the receive stack `stack`, one at
/// a time, in order: `poll_ready` is the backpressure. Returns `Ok` at a
/// clean end of stream.
///
/// # Errors
/// The first framing error or stack error, which ends the loop.
///
/// ```
/// use bytes::Bytes;
/// use scipp_layers::{channel, codec::CodecLayer, Inbound, BoxError};
/// use scipp_codecs::msgpack::MsgpackCodec;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let frames = futures_util::stream::iter(vec![
///     Ok(Bytes::from_static(b"\x82\xa8msg_type\xa4Stop\xa3cid\xa2c1")),
/// ]);
/// let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
/// let app = tower::service_fn(move |item: Inbound| {
///     let tx = tx.clone();
///     async move { tx.send(item).map_err(|_| BoxError::from("closed")) }
/// });
/// let stack = tower::ServiceBuilder::new().layer(CodecLayer::new(MsgpackCodec::new())).service(app);
/// channel::drive(frames, stack).await.unwrap();
/// assert!(rx.recv().await.unwrap().as_msg().is_some());
/// # }
/// ```
pub async fn drive<F, S>(frames: F, mut stack: S) -> Result<(), ChannelError>
where
    F: Stream<Item = Result<Bytes, FrameError>>,
    S: Service<Bytes, Response = ()>,
    S::Error: Into<BoxError>,
{
    futures_util::pin_mut!(frames);
    while let Some(frame) = frames.next().await {
        let frame = frame?;
        let svc = stack
            .ready()
            .await
            .map_err(|e| ChannelError::Stack(e.into()))?;
        svc.call(frame)
            .await
            .map_err(|e| ChannelError::Stack(e.into()))?;
    }
    Ok(())
}

/// The bottom of a send stack: a `Service<Bytes>` that queues frames for a
/// writer task. The task writes every frame that is ready before one
/// flush, so bursts of messages cost one syscall; a big frame goes out from
/// its own buffer. [`vectored`](Writer::vectored) takes [`Frame`]s in two
/// pieces instead. Cloning shares the writer.
///
/// ```
/// use bytes::Bytes;
/// use futures_util::StreamExt;
/// use scipp_layers::{channel::Writer, framing::FramingLayer};
/// use tower::{Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (a, b) = tokio::io::duplex(1024);
/// let (writer, task) = Writer::spawn(a, FramingLayer::new().codec(), 64);
/// writer.oneshot(Bytes::from_static(b"hi")).await.unwrap();
/// let mut frames = FramingLayer::new().layer(b);
/// assert_eq!(frames.next().await.unwrap().unwrap(), "hi");
/// # drop(task);
/// # }
/// ```
pub struct Writer {
    /// Kept to make clones from whatever state `state` is in.
    tx: mpsc::Sender<Frame>,
    state: Slot,
}

/// Where a [`Writer`] is between `poll_ready` and `call`.
///
/// Hand-written instead of tokio-util's `PollSender`, which goes through
/// its boxed acquire future on every `poll_ready`: that was ~1 100 of the
/// ~4 000 instructions a `Yield(int)` cost to send (callgrind). Here a
/// queue with room costs one `try_reserve_owned`; only a full queue
/// waits on a boxed future.
enum Slot {
    /// No room reserved.
    Idle(mpsc::Sender<Frame>),
    /// Room for one frame, taken by the next `call`.
    Reserved(OwnedPermit<Frame>),
    /// The queue was full: waiting for room.
    Waiting(ReusableBoxFuture<'static, Result<OwnedPermit<Frame>, SendError<()>>>),
    /// The writer task has stopped.
    Stopped,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            Slot::Idle(_) => "idle",
            Slot::Reserved(_) => "reserved",
            Slot::Waiting(_) => "waiting for room",
            Slot::Stopped => "stopped",
        };
        f.debug_struct("Writer").field("state", &state).finish()
    }
}

impl Clone for Writer {
    /// A new handle on the same writer task, without the original's
    /// reserved room.
    fn clone(&self) -> Self {
        Writer {
            tx: self.tx.clone(),
            state: Slot::Idle(self.tx.clone()),
        }
    }
}

impl Writer {
    /// Starts a writer task on `io`, with room for `queue` frames before
    /// senders wait. The task ends when every `Writer` is dropped (after
    /// writing what was queued) or on the first write error, which it
    /// returns.
    pub fn spawn<W>(
        io: W,
        codec: FrameCodec,
        queue: usize,
    ) -> (Writer, tokio::task::JoinHandle<Result<(), FrameError>>)
    where
        W: AsyncWrite + Send + Unpin + 'static,
    {
        Self::spawn_until(io, codec, queue, CancellationToken::new())
    }

    /// Like [`spawn`](Self::spawn), and the task also ends when `shutdown`
    /// is cancelled: it writes what is already queued (for at most
    /// [`SHUTDOWN_GRACE`]; a peer that stops reading does not hold it
    /// up), then shuts the transport down, so the peer sees the
    /// connection close. A channel does this when its read side ends.
    pub fn spawn_until<W>(
        io: W,
        codec: FrameCodec,
        queue: usize,
        shutdown: CancellationToken,
    ) -> (Writer, tokio::task::JoinHandle<Result<(), FrameError>>)
    where
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let (tx, mut rx) = mpsc::channel::<Frame>(queue.max(1));
        let task = tokio::spawn(async move {
            let mut sink = FramedWrite::new(io, codec);
            loop {
                let first = tokio::select! {
                    biased;
                    first = rx.recv() => first,
                    () = shutdown.cancelled() => break,
                };
                let Some(first) = first else {
                    return sink.close().await;
                };
                put(&mut sink, first).await?;
                // No yield before a lone frame: it let ready tasks join the
                // write, but measured with the harness on worker threads it
                // cost latency (stream ping-pong p50 ~2.0x -> ~1.4x raw
                // without it) and bought no throughput.
                while let Ok(next) = rx.try_recv() {
                    put(&mut sink, next).await?;
                }
                sink.flush().await?;
            }
            let last_words = async {
                while let Ok(next) = rx.try_recv() {
                    put(&mut sink, next).await?;
                }
                sink.close().await
            };
            tokio::time::timeout(SHUTDOWN_GRACE, last_words)
                .await
                .unwrap_or(Ok(()))
        });
        (
            Writer {
                tx: tx.clone(),
                state: Slot::Idle(tx),
            },
            task,
        )
    }
}

/// Frames at least this big skip the write buffer: they go to the
/// transport from their own buffers (length prefix, head and tail in one
/// vectored write) instead of being copied into the batch first. Smaller
/// frames are batched, one flush per burst.
const DIRECT_WRITE_MIN: usize = 16 * 1024;

/// Queues `frame` in the batch, or writes a big one straight through
/// (after what is already batched, to keep the order).
async fn put<W: AsyncWrite + Unpin>(
    sink: &mut FramedWrite<W, FrameCodec>,
    frame: Frame,
) -> Result<(), FrameError> {
    let (head, tail) = frame.into_parts();
    let tail = match tail {
        // the common case first, as it was before frames had tails
        None if head.len() < DIRECT_WRITE_MIN => return sink.feed(head).await,
        tail => tail.unwrap_or_default(),
    };
    let header = sink.encoder().header(head.len() + tail.len())?;
    if head.len() + tail.len() < DIRECT_WRITE_MIN {
        // into the batch in one copy, as `feed` would (flushing first at
        // the same mark)
        if sink.write_buffer().len() >= sink.backpressure_boundary() {
            sink.flush().await?;
        }
        let batch = sink.write_buffer_mut();
        batch.reserve(header.len() + head.len() + tail.len());
        batch.extend_from_slice(&header);
        batch.extend_from_slice(&head);
        batch.extend_from_slice(&tail);
        return Ok(());
    }
    sink.flush().await?;
    write_all_vectored(sink.get_mut(), &mut [&header[..], &head[..], &tail[..]]).await?;
    Ok(())
}

/// Writes every byte of `pieces`, in order, with vectored writes.
async fn write_all_vectored<W: AsyncWrite + Unpin>(
    io: &mut W,
    pieces: &mut [&[u8]; 3],
) -> std::io::Result<()> {
    while pieces.iter().any(|p| !p.is_empty()) {
        let slices = pieces.map(std::io::IoSlice::new);
        let mut n = io.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        for piece in pieces.iter_mut() {
            let took = n.min(piece.len());
            *piece = &piece[took..];
            n -= took;
        }
    }
    Ok(())
}

/// How long a shut-down [`Writer`] keeps writing what was queued before
/// it drops the transport: 1 s.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

impl Service<Bytes> for Writer {
    type Response = ();
    type Error = BoxError;
    type Future = std::future::Ready<Result<(), BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.reserve(cx)
    }

    fn call(&mut self, frame: Bytes) -> Self::Future {
        self.send(Frame::new(frame))
    }
}

impl Writer {
    /// This writer as a `Service<Frame>`: a frame in two pieces goes out
    /// with its tail written from the tail's own buffer (one vectored
    /// write of the length prefix, head and tail when the frame is big),
    /// never copied into a frame first. [`CodecLayer::vectored`] encodes
    /// for it.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use futures_util::StreamExt;
    /// use scipp_layers::{channel::Writer, framing::{Frame, FramingLayer}};
    /// use tower::{Layer, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (a, b) = tokio::io::duplex(1 << 16);
    /// let (writer, task) = Writer::spawn(a, FramingLayer::new().codec(), 64);
    /// let tail = Bytes::from(vec![b'x'; 20_000]);
    /// let frame = Frame::with_tail(Bytes::from_static(b"head:"), tail.clone());
    /// writer.vectored().oneshot(frame).await.unwrap();
    /// let mut frames = FramingLayer::new().layer(b);
    /// let got = frames.next().await.unwrap().unwrap();
    /// assert_eq!(&got[..5], b"head:");
    /// assert_eq!(&got[5..], &tail[..]);
    /// # drop(task);
    /// # }
    /// ```
    ///
    /// [`CodecLayer::vectored`]: crate::codec::CodecLayer::vectored
    pub fn vectored(self) -> VectoredWriter {
        VectoredWriter(self)
    }

    fn reserve(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        loop {
            self.state = match std::mem::replace(&mut self.state, Slot::Stopped) {
                Slot::Reserved(permit) => {
                    self.state = Slot::Reserved(permit);
                    return Poll::Ready(Ok(()));
                }
                Slot::Idle(tx) => match tx.try_reserve_owned() {
                    Ok(permit) => Slot::Reserved(permit),
                    Err(TrySendError::Full(tx)) => {
                        Slot::Waiting(ReusableBoxFuture::new(tx.reserve_owned()))
                    }
                    Err(TrySendError::Closed(_)) => return Poll::Ready(Err(stopped())),
                },
                Slot::Waiting(mut room) => match room.poll(cx) {
                    Poll::Pending => {
                        self.state = Slot::Waiting(room);
                        return Poll::Pending;
                    }
                    Poll::Ready(Ok(permit)) => Slot::Reserved(permit),
                    Poll::Ready(Err(_)) => return Poll::Ready(Err(stopped())),
                },
                Slot::Stopped => return Poll::Ready(Err(stopped())),
            };
        }
    }

    fn send(&mut self, frame: Frame) -> std::future::Ready<Result<(), BoxError>> {
        match std::mem::replace(&mut self.state, Slot::Stopped) {
            Slot::Reserved(permit) => {
                self.state = Slot::Idle(permit.send(frame));
                std::future::ready(Ok(()))
            }
            other => {
                self.state = other;
                std::future::ready(Err("Writer::call without a ready poll_ready".into()))
            }
        }
    }
}

/// A [`Writer`] taking [`Frame`]s, from [`Writer::vectored`].
#[derive(Debug, Clone)]
pub struct VectoredWriter(Writer);

impl Service<Frame> for VectoredWriter {
    type Response = ();
    type Error = BoxError;
    type Future = std::future::Ready<Result<(), BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.reserve(cx)
    }

    fn call(&mut self, frame: Frame) -> Self::Future {
        self.0.send(frame)
    }
}

fn stopped() -> BoxError {
    "the channel's writer has stopped".into()
}
