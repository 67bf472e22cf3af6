//! `Blob` end to end: a received one is a slice of the channel's read
//! buffer, a sent one reaches the socket from the sender's own buffer, and
//! both still hold with a frame layer of the user's (which gets a copy).

use bytes::Bytes;
use scipp_codecs::msgpack::MsgpackCodec;
use scipp_codecs::Blob;
use scipp_layers::context::{ChildContext, Dialog};
use scipp_layers::payload::PldSpec;
use scipp_layers::peer::Peer;
use scipp_layers::route::Endpoints;
use scipp_layers::BoxError;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

/// The memory a transport was handed: the ranges its reads filled and the
/// buffers its writes were given.
#[derive(Debug, Default, Clone)]
struct Seen {
    reads: Arc<Mutex<Vec<Range<usize>>>>,
    writes: Arc<Mutex<Vec<Range<usize>>>>,
}

impl Seen {
    /// Whether `bytes` ends in memory that a read filled: a slice of the
    /// read buffer, not a copy. (Its start may lie in memory no read
    /// filled: a frame longer than the buffer moves, with what arrived so
    /// far, when the buffer grows; its last read lands in place.)
    fn read_into(&self, bytes: &[u8]) -> bool {
        let last = bytes.as_ptr_range().end as usize - 1;
        self.reads.lock().unwrap().iter().any(|s| s.contains(&last))
    }

    /// Whether a write was handed exactly the memory of `bytes`.
    fn wrote_from(&self, bytes: &[u8]) -> bool {
        let r = bytes.as_ptr_range();
        let want = r.start as usize..r.end as usize;
        self.writes.lock().unwrap().contains(&want)
    }
}

/// A duplex end that notes the memory it is handed.
struct Recording {
    io: DuplexStream,
    seen: Seen,
}

fn range(bytes: &[u8]) -> Range<usize> {
    let r = bytes.as_ptr_range();
    r.start as usize..r.end as usize
}

impl AsyncRead for Recording {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        let filled = &buf.filled()[before..];
        if !filled.is_empty() {
            self.seen.reads.lock().unwrap().push(range(filled));
        }
        polled
    }
}

impl AsyncWrite for Recording {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.seen.writes.lock().unwrap().push(range(buf));
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.seen
            .writes
            .lock()
            .unwrap()
            .extend(bufs.iter().filter(|b| !b.is_empty()).map(|b| range(b)));
        // write it all (a duplex writes one slice per call otherwise)
        let mut total = 0;
        for b in bufs {
            match Pin::new(&mut self.io).poll_write(cx, b) {
                Poll::Ready(Ok(n)) => {
                    total += n;
                    if n < b.len() {
                        break;
                    }
                }
                Poll::Ready(Err(e)) if total == 0 => return Poll::Ready(Err(e)),
                Poll::Pending if total == 0 => return Poll::Pending,
                _ => break,
            }
        }
        Poll::Ready(Ok(total))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Echoes every blob it is sent.
struct Echo;

impl Dialog for Echo {
    const NS: &'static str = "blob";
    const FUNC: &'static str = "echo";
    type Kwargs = ();
    type Started = ();
    type Item = Blob;
    type Return = u64;
}

fn blob(len: usize, seed: u8) -> Blob {
    Blob::new(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect::<Bytes>(),
    )
}

const SIZES: [usize; 4] = [64 * 1024, 4096, 100, 300 * 1024];

/// A server whose transport is recorded, echoing blobs (typed) and
/// counting the bytes of blobs sunk into an untyped context.
async fn serve(
    client: Peer<MsgpackCodec>,
) -> (scipp_layers::peer::Channel<MsgpackCodec>, Seen, Seen) {
    let server_seen = Seen::default();
    let mut endpoints = Endpoints::new();
    let seen = server_seen.clone();
    endpoints.dialog(Echo, move |mut ctx, ()| {
        let seen = seen.clone();
        async move {
            ctx.started(()).await?;
            let mut n = 0;
            while let Some(item) = ctx.recv().await? {
                if item.len() >= scipp_codecs::BLOB_SHARE_MIN {
                    assert!(seen.read_into(&item), "a slice of the server's read buffer");
                }
                // forwarded as received: the slice goes back out, uncopied
                ctx.send(&item).await?;
                n += 1;
            }
            Ok(n)
        }
    });
    let seen = server_seen.clone();
    endpoints.context(
        "blob",
        "sink",
        PldSpec::dialog::<(), Blob, u64>(),
        move |mut ctx: ChildContext<MsgpackCodec>, _: serde::de::IgnoredAny| {
            let seen = seen.clone();
            async move {
                ctx.started(&()).await?;
                let mut total = 0u64;
                while let Some(item) = ctx.recv::<Blob>().await? {
                    assert!(
                        seen.read_into(&item),
                        "untyped recv: a slice of the read buffer"
                    );
                    total += item.len() as u64;
                }
                Ok::<_, BoxError>(total)
            }
        },
    );
    let server = Peer::new("server", MsgpackCodec::new()).endpoints(endpoints);
    let (a, b) = tokio::io::duplex(1 << 16);
    let client_seen = Seen::default();
    let (a, b) = (
        Recording {
            io: a,
            seen: server_seen.clone(),
        },
        Recording {
            io: b,
            seen: client_seen.clone(),
        },
    );
    let (served, chan) = tokio::join!(server.accept(a), client.channel(b));
    std::mem::forget(served.unwrap());
    (chan.unwrap(), client_seen, server_seen)
}

#[tokio::test]
async fn blobs_are_shared_with_the_read_buffer_and_sent_from_the_callers_buffer() {
    let (chan, seen, _) = serve(Peer::new("client", MsgpackCodec::new())).await;
    let (mut ctx, ()) = chan.dialog(Echo, ()).await.unwrap();
    for (i, len) in SIZES.into_iter().enumerate() {
        let sent = blob(len, i as u8);
        ctx.send(&sent).await.unwrap();
        let back = ctx.recv().await.unwrap().unwrap();
        assert_eq!(back, sent);
        if len >= scipp_codecs::BLOB_SHARE_MIN {
            assert!(
                seen.read_into(&back),
                "{len}: a slice of the client's read buffer"
            );
        }
        if len >= 16 * 1024 {
            assert!(
                seen.wrote_from(&sent),
                "{len}: written from the caller's buffer"
            );
        }
    }
    ctx.close().await.unwrap();
    assert_eq!(ctx.result().await.unwrap(), SIZES.len() as u64);

    // untyped, with a payload spec
    let (mut ctx, ()) = chan
        .open_context("blob", "sink")
        .spec(PldSpec::dialog::<(), Blob, u64>())
        .start::<()>()
        .await
        .unwrap();
    let big = blob(64 * 1024, 9);
    ctx.send(&big).await.unwrap();
    ctx.close().await.unwrap();
    assert_eq!(ctx.result::<u64>().await.unwrap(), 64 * 1024);
    assert!(seen.wrote_from(&big));
}

#[tokio::test]
async fn a_frame_layer_of_the_users_gets_whole_frames_and_blobs_still_arrive() {
    let client =
        Peer::new("client", MsgpackCodec::new()).frame_layer(tower::layer::util::Identity::new());
    let (chan, seen, _) = serve(client).await;
    let (mut ctx, ()) = chan.dialog(Echo, ()).await.unwrap();
    for (i, len) in SIZES.into_iter().enumerate() {
        let sent = blob(len, i as u8);
        ctx.send(&sent).await.unwrap();
        assert_eq!(ctx.recv().await.unwrap().unwrap(), sent);
        assert!(!seen.wrote_from(&sent), "{len}: the frame layer got a copy");
    }
    ctx.close().await.unwrap();
    assert_eq!(ctx.result().await.unwrap(), SIZES.len() as u64);
}

#[tokio::test]
async fn the_writer_sends_frames_in_two_pieces_as_the_same_bytes_as_in_one() {
    use futures_util::StreamExt;
    use scipp_layers::channel::Writer;
    use scipp_layers::framing::{Frame, FramingLayer};
    use tower::{Layer, ServiceExt};

    // a tiny pipe: every write is partial, vectored ones too
    let (a, b) = tokio::io::duplex(7);
    let (writer, task) = Writer::spawn(a, FramingLayer::new().codec(), 4);
    let frames: Vec<Frame> = [
        (5, 0),
        (3, 100),
        (10, 20_000),
        (0, 70_000),
        (40_000, 0),
        (2, 1),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (head, tail))| {
        let head: Bytes = blob(head, i as u8).into();
        match tail {
            0 => Frame::new(head),
            n => Frame::with_tail(head, blob(n, 100 + i as u8).into()),
        }
    })
    .collect();
    let expected: Vec<Bytes> = frames.iter().cloned().map(Frame::into_bytes).collect();
    let send = async move {
        let mut w = writer.vectored();
        for frame in frames {
            w = w.ready_oneshot().await.unwrap();
            tower::Service::call(&mut w, frame).await.unwrap();
        }
    };
    let mut read = FramingLayer::new().layer(b);
    let receive = async {
        let mut got = Vec::new();
        for _ in 0..expected.len() {
            got.push(read.next().await.unwrap().unwrap());
        }
        got
    };
    let ((), got) = tokio::join!(send, receive);
    assert_eq!(got, expected);
    task.await.unwrap().unwrap();
}
