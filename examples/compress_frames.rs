//! A frame layer: compress frames above a size between two scipp peers.
//!
//! `Compress` sits at the frames position (`Peer::frame_layer`): under the
//! codec, it sees raw frame bodies. Outbound, a frame of 1 KiB or more is
//! deflated and marked with a leading `0xc1`, the one byte msgpack never
//! uses, so a marked frame cannot be mistaken for a message; inbound,
//! marked frames are inflated. Both peers need the layer (tractor has no
//! such thing: keep it between scipp peers). The `Aid` handshake runs
//! before the stack, uncompressed.
//!
//! ```sh
//! cargo run --example compress_frames
//! ```

use bytes::Bytes;
use flate2::{read::DeflateDecoder, write::DeflateEncoder, Compression};
use scipp::context::ChildContext;
use scipp::payload::PldSpec;
use scipp::peer::Peer;
use scipp::route::Endpoints;
use scipp::{BoxError, MsgpackCodec};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// The marker of a compressed frame (never the first byte of msgpack).
const MARK: u8 = 0xc1;
/// Frames this big or bigger are compressed.
const MIN: usize = 1024;
/// The most a frame may inflate to: the peer's default frame limit.
const MAX_INFLATED: u64 = 16 * 1024 * 1024;

/// Bytes before and after compression, outbound.
#[derive(Default)]
struct Stats {
    frames: AtomicU64,
    compressed: AtomicU64,
    raw_bytes: AtomicU64,
    wire_bytes: AtomicU64,
}

#[derive(Clone, Default)]
struct CompressLayer {
    stats: Arc<Stats>,
}

impl<S> Layer<S> for CompressLayer {
    type Service = Compress<S>;
    fn layer(&self, inner: S) -> Compress<S> {
        Compress {
            inner,
            stats: self.stats.clone(),
        }
    }
}

/// One service type for both directions: which way a frame goes is told by
/// the stack's types, so the two impls below are on the boxed inner types.
#[derive(Clone)]
struct Compress<S> {
    inner: S,
    stats: Arc<Stats>,
}

/// Outbound frames: compress the big ones.
impl Service<Bytes> for Compress<scipp::stack::OutboundFrames> {
    type Response = ();
    type Error = BoxError;
    type Future = <scipp::stack::OutboundFrames as Service<Bytes>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, frame: Bytes) -> Self::Future {
        self.stats.frames.fetch_add(1, Ordering::Relaxed);
        self.stats
            .raw_bytes
            .fetch_add(frame.len() as u64, Ordering::Relaxed);
        let out = if frame.len() >= MIN {
            let mut z = DeflateEncoder::new(vec![MARK], Compression::fast());
            z.write_all(&frame).expect("writing to a Vec");
            self.stats.compressed.fetch_add(1, Ordering::Relaxed);
            Bytes::from(z.finish().expect("writing to a Vec"))
        } else {
            frame
        };
        self.stats
            .wire_bytes
            .fetch_add(out.len() as u64, Ordering::Relaxed);
        self.inner.call(out)
    }
}

/// Inbound frames: inflate the marked ones (bounded: a peer cannot make us
/// inflate a bomb past the frame limit).
impl Service<Bytes> for Compress<scipp::stack::InboundFrames> {
    type Response = ();
    type Error = BoxError;
    type Future = <scipp::stack::InboundFrames as Service<Bytes>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, frame: Bytes) -> Self::Future {
        if frame.first() != Some(&MARK) {
            return self.inner.call(frame);
        }
        let mut raw = Vec::new();
        let inflated = DeflateDecoder::new(&frame[1..])
            .take(MAX_INFLATED + 1)
            .read_to_end(&mut raw);
        match inflated {
            Ok(n) if n as u64 <= MAX_INFLATED => self.inner.call(Bytes::from(raw)),
            // hand the codec what it cannot decode: it becomes an invalid
            // item for the policy, not a dead channel
            _ => self.inner.call(frame),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut endpoints = Endpoints::new();
    endpoints.context(
        "logs",
        "tail",
        PldSpec::of::<String>(),
        |mut ctx: ChildContext<MsgpackCodec>, kw: BTreeMap<String, u64>| async move {
            ctx.started(&"tailing".to_owned()).await?;
            let lines = kw.get("lines").copied().unwrap_or(10);
            for i in 0..lines {
                // a chatty, repetitive log line: compresses well
                let line = format!("{i:06} INFO request served: {}", "ok ".repeat(600));
                ctx.send(&line).await?;
            }
            ctx.close().await?;
            Ok::<_, BoxError>(format!("{lines} lines"))
        },
    );
    let server_side = CompressLayer::default();
    let server = Peer::new("server", MsgpackCodec::new())
        .endpoints(endpoints)
        .frame_layer(server_side.clone())
        .serve_tcp("127.0.0.1:0")
        .await?;
    let client = Peer::new("client", MsgpackCodec::new()).frame_layer(CompressLayer::default());
    let chan = client.connect_addr(server.local_addr()).await?;
    println!("{}", chan.stack());

    let (mut ctx, first): (_, String) = chan
        .open_context("logs", "tail")
        .kwargs(&BTreeMap::from([("lines", 50u64)]))
        .spec(PldSpec::of::<String>())
        .start()
        .await?;
    println!("started: {first}");
    let mut received = 0;
    while let Some(line) = ctx.recv::<String>().await? {
        assert!(line.ends_with("ok "), "a line arrived damaged");
        received += 1;
    }
    println!("return: {}", ctx.result::<String>().await?);

    let s = &server_side.stats;
    let (raw, wire) = (
        s.raw_bytes.load(Ordering::Relaxed),
        s.wire_bytes.load(Ordering::Relaxed),
    );
    println!("lines received: {received}");
    println!(
        "server sent {} frames, {} compressed: {raw} bytes -> {wire} bytes on the wire ({:.1}x smaller)",
        s.frames.load(Ordering::Relaxed),
        s.compressed.load(Ordering::Relaxed),
        raw as f64 / wire.max(1) as f64
    );
    chan.close().await?;
    server.shutdown().await?;
    Ok(())
}
