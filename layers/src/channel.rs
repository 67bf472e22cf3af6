//! Running a stack on a transport: the read loop that feeds frames into a
//! receive stack, and the writer that the send stack ends in.

use crate::framing::{Frame, FrameCodec, FrameError, HEADER_LEN};
use crate::BoxError;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
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
    shared: Arc<Shared>,
    /// `poll_ready` reserved room for one frame, which the next `call`
    /// takes.
    reserved: bool,
}

/// What the handles of a [`Writer`] share with its task.
///
/// Hand-written instead of an mpsc of frames (a measured hot path, issue
/// 14): a sender appends its frame, length prefix and all, to the one
/// batch under a short lock and wakes the task only when it is parked;
/// the task swaps the whole batch out and writes it. The mpsc cost a
/// queue slot, its atomics and a pop per frame, and the task then copied
/// each frame into its write buffer anyway.
struct Shared {
    state: Mutex<State>,
    codec: FrameCodec,
    /// Frames queued (and rooms reserved) before senders wait.
    cap: usize,
}

#[derive(Default)]
struct State {
    pending: Pending,
    /// Frames in `pending`.
    queued: usize,
    /// Rooms reserved by `poll_ready`, not yet used by a `call`.
    reserved: usize,
    /// Live `Writer` handles: at none, the task writes what is queued and
    /// ends.
    handles: usize,
    /// The writer task, while it waits for frames.
    task: Option<Waker>,
    /// The writer task has ended.
    stopped: bool,
}

/// Frames on their way, in order: the small ones copied into `batch`
/// (length prefixes included), the big ones kept in their own buffers,
/// each with the offset in `batch` it goes out at.
#[derive(Default)]
struct Pending {
    batch: BytesMut,
    big: Vec<(usize, [u8; HEADER_LEN], Bytes, Bytes)>,
    /// Senders waiting for room, woken when this is taken.
    waiting: Vec<Waker>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Swaps what is queued into `into` (which must be empty) and wakes
    /// the senders that waited for room. `Ready(false)` once every handle
    /// is gone and nothing is left; `Pending` (registering the task) while
    /// there is nothing to write.
    fn take(&self, into: &mut Pending, cx: Option<&mut Context<'_>>) -> Poll<bool> {
        let mut st = self.lock();
        if st.queued > 0 {
            std::mem::swap(&mut st.pending, into);
            // the waiting senders' wakers came along, to be woken now
            st.queued = 0;
            drop(st);
            for w in into.waiting.drain(..) {
                w.wake();
            }
            return Poll::Ready(true);
        }
        if st.handles == 0 {
            return Poll::Ready(false);
        }
        if let Some(cx) = cx {
            match &st.task {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => st.task = Some(cx.waker().clone()),
            }
        }
        Poll::Pending
    }

    fn wake_waiting(&self, mut st: std::sync::MutexGuard<'_, State>) {
        let waiting = std::mem::take(&mut st.pending.waiting);
        drop(st);
        waiting.into_iter().for_each(Waker::wake);
    }
}

/// Marks the writer stopped however its task ends (error, abort, panic):
/// waiting senders wake to an error instead of waiting for ever.
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.stopped = true;
        self.0.wake_waiting(st);
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("reserved", &self.reserved)
            .finish_non_exhaustive()
    }
}

impl Clone for Writer {
    /// A new handle on the same writer task, without the original's
    /// reserved room.
    fn clone(&self) -> Self {
        self.shared.lock().handles += 1;
        Writer {
            shared: self.shared.clone(),
            reserved: false,
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.handles -= 1;
        let task = if st.handles == 0 {
            st.task.take()
        } else {
            None
        };
        if self.reserved {
            st.reserved -= 1;
            self.shared.wake_waiting(st);
        } else {
            drop(st);
        }
        if let Some(task) = task {
            task.wake();
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
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                handles: 1,
                ..State::default()
            }),
            codec,
            cap: queue.max(1),
        });
        let task = tokio::spawn(write_loop(io, shared.clone(), shutdown));
        (
            Writer {
                shared,
                reserved: false,
            },
            task,
        )
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut io: W,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) -> Result<(), FrameError> {
    let _stop = StopOnDrop(shared.clone());
    let mut taken = Pending::default();
    loop {
        let more = tokio::select! {
            biased;
            more = std::future::poll_fn(|cx| shared.take(&mut taken, Some(cx))) => more,
            () = shutdown.cancelled() => break,
        };
        if !more {
            io.flush().await?;
            io.shutdown().await?;
            return Ok(());
        }
        // No yield before a lone frame: it let ready tasks join the
        // write, but measured with the harness on worker threads it
        // cost latency (stream ping-pong p50 ~2.0x -> ~1.4x raw
        // without it) and bought no throughput.
        write_pending(&mut io, &mut taken).await?;
        io.flush().await?;
    }
    let last_words = async {
        if let Poll::Ready(true) = shared.take(&mut taken, None) {
            write_pending(&mut io, &mut taken).await?;
        }
        io.flush().await?;
        io.shutdown().await?;
        Ok(())
    };
    tokio::time::timeout(SHUTDOWN_GRACE, last_words)
        .await
        .unwrap_or(Ok(()))
}

/// Frames at least this big skip the write batch: they go to the
/// transport from their own buffers (length prefix, head and tail in one
/// vectored write) instead of being copied into the batch first. Smaller
/// frames are batched, one flush per burst.
const DIRECT_WRITE_MIN: usize = 16 * 1024;

/// A write batch that grew past this is not kept for the next one.
const BATCH_KEEP_MAX: usize = 256 * 1024;

/// Writes what was taken, in order, and leaves it empty for the next swap.
async fn write_pending<W: AsyncWrite + Unpin>(
    io: &mut W,
    taken: &mut Pending,
) -> std::io::Result<()> {
    let mut at = 0;
    for (offset, header, head, tail) in taken.big.drain(..) {
        io.write_all(&taken.batch[at..offset]).await?;
        at = offset;
        write_all_vectored(io, &mut [&header[..], &head[..], &tail[..]]).await?;
    }
    io.write_all(&taken.batch[at..]).await?;
    taken.batch.clear();
    if taken.batch.capacity() > BATCH_KEEP_MAX {
        taken.batch = BytesMut::new();
    }
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
        if self.reserved {
            return Poll::Ready(Ok(()));
        }
        let mut st = self.shared.lock();
        if st.stopped {
            return Poll::Ready(Err(stopped()));
        }
        if st.queued + st.reserved < self.shared.cap {
            st.reserved += 1;
            self.reserved = true;
            return Poll::Ready(Ok(()));
        }
        let waker = cx.waker();
        if !st.pending.waiting.iter().any(|w| w.will_wake(waker)) {
            st.pending.waiting.push(waker.clone());
        }
        Poll::Pending
    }

    fn send(&mut self, frame: Frame) -> std::future::Ready<Result<(), BoxError>> {
        if !std::mem::take(&mut self.reserved) {
            return std::future::ready(Err("Writer::call without a ready poll_ready".into()));
        }
        let (head, tail) = frame.into_parts();
        let tail = tail.unwrap_or_default();
        let len = head.len() + tail.len();
        let header = self.shared.codec.header(len);
        let mut st = self.shared.lock();
        st.reserved -= 1;
        let header = match header {
            Ok(header) if !st.stopped => header,
            Ok(_) => return std::future::ready(Err(stopped())),
            Err(e) => {
                // the room goes back; the channel goes on
                self.shared.wake_waiting(st);
                return std::future::ready(Err(e.into()));
            }
        };
        let pending = &mut st.pending;
        if len < DIRECT_WRITE_MIN {
            pending.batch.reserve(HEADER_LEN + len);
            pending.batch.extend_from_slice(&header);
            pending.batch.extend_from_slice(&head);
            pending.batch.extend_from_slice(&tail);
        } else {
            let at = pending.batch.len();
            pending.big.push((at, header, head, tail));
        }
        st.queued += 1;
        let task = st.task.take();
        drop(st);
        if let Some(task) = task {
            task.wake();
        }
        std::future::ready(Ok(()))
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
