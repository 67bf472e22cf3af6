//! Throughput over loopback TCP, in one run: a one-way `Yield(int)` stream
//! and the context open → Started → Return rate through the full scipp
//! stack, next to raw length-prefixed frames written and read with plain
//! tokio + tokio-util (no decoding) — the machine's own ceiling.
//!
//! `cargo bench --bench throughput` (add `-- --json` for JSON lines).

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use scipp::context::ChildContext;
use scipp::framing::FramingLayer;
use scipp::msg::{Cid, Msg, Yield};
use scipp::payload::PldSpec;
use scipp::peer::Peer;
use scipp::route::Endpoints;
use scipp::{BoxError, Codec, MsgpackCodec};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tower::Layer;

const STREAM_N: i64 = 200_000;
const CONTEXTS_N: usize = 2_000;

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (a, b) = tokio::join!(
        listener.accept(),
        TcpStream::connect(listener.local_addr().unwrap())
    );
    let (a, b) = (a.unwrap().0, b.unwrap());
    a.set_nodelay(true).unwrap();
    b.set_nodelay(true).unwrap();
    (a, b)
}

/// Raw: the same Yield(int) frames, written in batches and read back as
/// frames, nothing decoded.
async fn raw_stream(n: i64) -> Duration {
    let (a, b) = tcp_pair().await;
    let codec = MsgpackCodec::new();
    let frame = codec
        .encode_to_bytes(&Msg::Yield(Yield {
            cid: Cid::from(scipp::sample::CID),
            pld: codec.encode_payload(&42i64).unwrap(),
        }))
        .unwrap();
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        let mut tx = FramingLayer::new().layer(a);
        for _ in 0..n {
            tx.feed(frame.clone()).await.unwrap();
        }
        tx.flush().await.unwrap();
        tx
    });
    let mut rx = FramingLayer::new().layer(b);
    for _ in 0..n {
        let f: Bytes = rx.next().await.unwrap().unwrap();
        std::hint::black_box(f);
    }
    let took = start.elapsed();
    drop(writer.await.unwrap());
    took
}

fn endpoints() -> Endpoints<MsgpackCodec> {
    let mut e = Endpoints::new();
    e.context(
        "bench",
        "stream_n",
        PldSpec::of::<i64>(),
        |mut ctx: ChildContext<MsgpackCodec>, kw: BTreeMap<String, i64>| async move {
            let n = kw["n"];
            ctx.started(&n).await?;
            for i in 0..n {
                ctx.send(&i).await?;
            }
            ctx.close().await?;
            Ok::<_, BoxError>(n)
        },
    );
    e.context(
        "bench",
        "noop",
        PldSpec::any(),
        |mut ctx: ChildContext<MsgpackCodec>, _: BTreeMap<String, i64>| async move {
            ctx.started(&()).await?;
            Ok::<_, BoxError>(0)
        },
    );
    e
}

async fn scipp_pair() -> scipp::peer::Channel<MsgpackCodec> {
    let (a, b) = tcp_pair().await;
    let server = Peer::new("bench_server", MsgpackCodec::new()).endpoints(endpoints());
    let client = Peer::new("bench_client", MsgpackCodec::new());
    let serve = tokio::spawn(async move {
        let chan = server.channel(a).await.unwrap();
        chan.closed().await;
    });
    let chan = client.channel(b).await.unwrap();
    drop(serve);
    chan
}

/// scipp: the child streams n Yield(int) through the whole stack; the
/// parent decodes each into an i64.
async fn scipp_stream(n: i64) -> Duration {
    let chan = scipp_pair().await;
    let start = Instant::now();
    let (mut ctx, first): (_, i64) = chan
        .open_context("bench", "stream_n")
        .kwargs(&BTreeMap::from([("n", n)]))
        .unwrap()
        .spec(PldSpec::of::<i64>())
        .start()
        .await
        .unwrap();
    assert_eq!(first, n);
    let mut count = 0;
    while let Some(v) = ctx.recv::<i64>().await.unwrap() {
        std::hint::black_box(v);
        count += 1;
    }
    assert_eq!(count, n);
    assert_eq!(ctx.result::<i64>().await.unwrap(), n);
    start.elapsed()
}

/// Context open → Started → Return, one after another.
async fn scipp_contexts(n: usize) -> Duration {
    let chan = scipp_pair().await;
    let start = Instant::now();
    for _ in 0..n {
        let (ctx, ()) = chan.open_context("bench", "noop").start().await.unwrap();
        assert_eq!(ctx.result::<i64>().await.unwrap(), 0);
    }
    start.elapsed()
}

/// Raw ping-pong of one frame, the floor for a request/response.
async fn raw_ping_pong(n: usize) -> Duration {
    let (a, b) = tcp_pair().await;
    let echo = tokio::spawn(async move {
        let mut io = FramingLayer::new().layer(a);
        while let Some(Ok(f)) = io.next().await {
            io.send(f).await.unwrap();
        }
    });
    let mut io = FramingLayer::new().layer(b);
    let frame = Bytes::from_static(b"\x82\xa8msg_type\xa4Stop\xa3cid\xa2c1");
    let start = Instant::now();
    for _ in 0..n {
        io.send(frame.clone()).await.unwrap();
        io.next().await.unwrap().unwrap();
    }
    let took = start.elapsed();
    drop(io);
    let _ = echo.await;
    took
}

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    let rt = if std::env::args().any(|a| a == "--current-thread") {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    };
    rt.block_on(async {
        // warm-up
        raw_stream(10_000).await;
        scipp_stream(10_000).await;

        let raw = raw_stream(STREAM_N).await;
        let ours = scipp_stream(STREAM_N).await;
        let ctx = scipp_contexts(CONTEXTS_N).await;
        let pp = raw_ping_pong(CONTEXTS_N).await;

        let rate = |n: f64, d: Duration| n / d.as_secs_f64();
        let (raw_rate, our_rate) = (rate(STREAM_N as f64, raw), rate(STREAM_N as f64, ours));
        let (ctx_rate, pp_rate) = (rate(CONTEXTS_N as f64, ctx), rate(CONTEXTS_N as f64, pp));
        if json {
            println!("{}", serde_json::json!({"case": "stream Yield(int)", "raw_msgs_per_s": raw_rate, "scipp_msgs_per_s": our_rate, "ratio": our_rate / raw_rate}));
            println!("{}", serde_json::json!({"case": "context open->Return", "scipp_per_s": ctx_rate, "raw_ping_pong_per_s": pp_rate, "latency_us": 1e6 / ctx_rate, "raw_ping_pong_us": 1e6 / pp_rate}));
        } else {
            println!("loopback TCP, one process, 2 worker threads\n");
            println!("{:<34} {:>14} {:>14} {:>8}", "case", "raw", "scipp", "ratio");
            println!("{:<34} {:>12.0}/s {:>12.0}/s {:>7.1}%", "one-way stream, Yield(int)", raw_rate, our_rate, 100.0 * our_rate / raw_rate);
            println!(
                "{:<34} {:>11.1} µs {:>11.1} µs {:>7.2}×",
                "open→Started→Return vs ping-pong",
                1e6 / pp_rate,
                1e6 / ctx_rate,
                pp_rate / ctx_rate
            );
        }
    });
}
