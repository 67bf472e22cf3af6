//! The throughput harness: scipp next to the machine's own limit, measured
//! in the same run.
//!
//! - **one-way stream**: a child *process* streams `Yield`s of an int, a
//!   ~200 B struct, 4 KiB and 64 KiB of bytes through the full default
//!   stack (framing, codec, message-type enforcement, payload-spec
//!   validation, routing, the context's policy) to this process, which
//!   decodes each into its typed value; next to **raw**: the same frames
//!   written by a child process with plain tokio + tokio-util framing and
//!   read here as frames, nothing decoded. Over loopback TCP and a Unix
//!   socket, msgpack; CBOR and protobuf over TCP.
//! - **latency**: stream ping-pong (`send` → echoed `recv`) and context
//!   open → `Started` → `Return`, p50 and p99, next to a raw ping-pong of
//!   one frame.
//! - **memory**: heap bytes per idle open context (10 000 of them, both
//!   ends counted) and per queued message, from a counting allocator.
//!
//! ```sh
//! cargo bench --bench throughput            # the table
//! cargo bench --bench throughput -- --json  # JSON lines
//! cargo test --bench throughput -- --smoke  # a few thousand messages, counts checked (CI)
//! cargo bench --bench throughput -- --only memory          # heap per idle context, per queued item
//! cargo bench --bench throughput -- --soak   # 1 M contexts, 100 M items, RSS sampled (not in CI)
//! cargo bench --bench throughput -- --soak quick            # 100 k contexts, 10 M items
//! cargo bench --bench throughput -- --soak 200000 20000000  # CONTEXTS ITEMS
//! ```
//!
//! - **soak** (`--soak`): one channel to a child process; contexts opened
//!   and closed one after another (a few at a time), each streaming its
//!   share of the items; both processes' RSS (`VmRSS`) sampled every
//!   second. After the warm-up (the first fifth of the contexts) RSS must
//!   stay flat: growth under 8 MiB in each process, or the run fails.
#![allow(unsafe_code)] // the counting global allocator

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use scipp::context::ChildContext;
use scipp::framing::FramingLayer;
use scipp::msg::{Cid, Msg, RawPayload, Yield};
use scipp::payload::PldSpec;
use scipp::peer::{Config, Peer};
use scipp::route::Endpoints;
use scipp::sample::Reading;
use scipp::{Blob, BoxError, CborCodec, Codec, MsgpackCodec, ProtobufCodec};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tower::Layer;

// ---- the counting allocator ----------------------------------------------------

/// Counts live heap bytes while [`COUNTING`] is on (off during the timed
/// runs, so it costs them one relaxed load per allocation).
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

// ---- what is sent ----------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Kind {
    Int,
    Struct,
    Bytes4K,
    Bytes64K,
}

const KINDS: [Kind; 4] = [Kind::Int, Kind::Struct, Kind::Bytes4K, Kind::Bytes64K];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Int => "int",
            Kind::Struct => "struct ~200 B",
            Kind::Bytes4K => "bytes 4 KiB",
            Kind::Bytes64K => "bytes 64 KiB",
        }
    }

    /// Messages per timed run: about 0.3-1 s of raw time each.
    fn count(self, smoke: bool) -> u64 {
        match (self, smoke) {
            (_, true) => 2_000,
            (Kind::Int, false) => 1_000_000,
            (Kind::Struct, false) => 300_000,
            (Kind::Bytes4K, false) => 100_000,
            (Kind::Bytes64K, false) => 10_000,
        }
    }

    fn payload<C: Codec>(self, codec: &C) -> RawPayload {
        match self {
            Kind::Int => codec.encode_payload(&42i64),
            Kind::Struct => codec.encode_payload(&Reading::sample()),
            Kind::Bytes4K => codec.encode_payload(&ByteBuf::from(vec![7u8; 4096])),
            Kind::Bytes64K => codec.encode_payload(&scipp::sample::blob_64k()),
        }
        .unwrap()
    }

    /// The `Yield` frame body scipp writes for one item.
    fn frame<C: Codec>(self, codec: &C) -> Bytes {
        codec
            .encode_to_bytes(&Msg::Yield(Yield {
                cid: Cid::from(scipp::sample::CID),
                pld: self.payload(codec),
            }))
            .unwrap()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Tcp,
    Unix,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Unix => "unix",
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

async fn connect(addr: &str) -> Box<dyn Io> {
    if let Some(path) = addr.strip_prefix("unix:") {
        Box::new(tokio::net::UnixStream::connect(path).await.unwrap())
    } else {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        Box::new(tcp)
    }
}

// ---- the child process -------------------------------------------------------------

/// `--child scipp|raw CODEC TRANSPORT`: listen, print `ready ADDR`, serve
/// until stdin closes.
fn child(args: &[String]) {
    let (role, codec, transport) = (args[0].as_str(), args[1].as_str(), args[2].as_str());
    let rt = runtime();
    rt.block_on(async {
        let (listener, addr) = Listener::bind(transport).await;
        println!("ready {addr}");
        std::io::stdout().flush().unwrap();
        let serving = async {
            loop {
                let io = listener.accept().await;
                match (role, codec) {
                    ("raw", c) => {
                        let c = c.to_owned();
                        tokio::spawn(async move {
                            match c.as_str() {
                                "cbor" => raw_serve(io, CborCodec::new()).await,
                                "protobuf" => raw_serve(io, ProtobufCodec::new()).await,
                                _ => raw_serve(io, MsgpackCodec::new()).await,
                            }
                        });
                    }
                    (_, "cbor") => serve_one(io, CborCodec::new()),
                    (_, "protobuf") => serve_one(io, ProtobufCodec::new()),
                    _ => serve_one(io, MsgpackCodec::new()),
                }
            }
        };
        let stdin_closed = tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
        });
        tokio::select! {
            () = serving => {}
            _ = stdin_closed => {}
        }
        listener.cleanup();
    });
}

enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener, std::path::PathBuf),
}

impl Listener {
    async fn bind(transport: &str) -> (Listener, String) {
        if transport == "unix" {
            let path =
                std::env::temp_dir().join(format!("scipp-bench-{}.sock", std::process::id()));
            let _ = std::fs::remove_file(&path);
            let l = tokio::net::UnixListener::bind(&path).unwrap();
            let addr = format!("unix:{}", path.display());
            (Listener::Unix(l, path), addr)
        } else {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap().to_string();
            (Listener::Tcp(l), addr)
        }
    }

    async fn accept(&self) -> Box<dyn Io> {
        match self {
            Listener::Tcp(l) => {
                let (tcp, _) = l.accept().await.unwrap();
                tcp.set_nodelay(true).unwrap();
                Box::new(tcp)
            }
            Listener::Unix(l, _) => Box::new(l.accept().await.unwrap().0),
        }
    }

    fn cleanup(&self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// One streamed item, whatever its kind (serialized as the item itself).
#[derive(Serialize)]
#[serde(untagged)]
enum Item {
    Int(i64),
    Struct(Reading),
    // as a user streams bytes: shared, not copied, on both ends
    Bytes(Blob),
}

#[derive(Serialize, Deserialize)]
struct StreamKwargs {
    n: u64,
    kind: Kind,
}

/// The scipp side of the child: `bench:stream`, `bench:echo`, `bench:ret`.
fn bench_endpoints<C: Codec>() -> Endpoints<C> {
    let mut e = Endpoints::new();
    e.context(
        "bench",
        "stream",
        PldSpec::any(),
        |mut ctx: ChildContext<C>, kw: StreamKwargs| async move {
            // `Started` and `Return` carry an item too: the spec covers them
            let item = match kw.kind {
                Kind::Int => Item::Int(42),
                Kind::Struct => Item::Struct(Reading::sample()),
                Kind::Bytes4K => Item::Bytes(Blob::from(vec![7u8; 4096])),
                Kind::Bytes64K => Item::Bytes(Blob::from(scipp::sample::blob_64k().into_vec())),
            };
            match &item {
                Item::Int(v) => send_n(&mut ctx, kw.n, v).await?,
                Item::Struct(v) => send_n(&mut ctx, kw.n, v).await?,
                Item::Bytes(v) => send_n(&mut ctx, kw.n, v).await?,
            }
            ctx.close().await?;
            Ok::<_, BoxError>(item)
        },
    );
    e.context(
        "bench",
        "echo",
        PldSpec::of::<i64>(),
        |mut ctx: ChildContext<C>, _: serde::de::IgnoredAny| async move {
            ctx.started(&0i64).await?;
            let mut n = 0u64;
            while let Some(v) = ctx.recv::<i64>().await? {
                ctx.send(&v).await?;
                n += 1;
            }
            Ok::<_, BoxError>(n)
        },
    );
    e.context(
        "bench",
        "ret",
        PldSpec::any(),
        |mut ctx: ChildContext<C>, _: serde::de::IgnoredAny| async move {
            ctx.started(&()).await?;
            Ok::<_, BoxError>(0)
        },
    );
    e
}

async fn send_n<C: Codec, T: Serialize>(
    ctx: &mut ChildContext<C>,
    n: u64,
    value: &T,
) -> Result<(), BoxError> {
    ctx.started(value).await?;
    for _ in 0..n {
        ctx.send(value).await?;
    }
    Ok(())
}

/// `SCIPP_BENCH_USER_LAYER=1`: one pass-through user layer at the messages
/// position of both peers (what an empty layer of the user's costs).
fn with_user_layer<C: Codec>(peer: Peer<C>) -> Peer<C> {
    if std::env::var_os("SCIPP_BENCH_USER_LAYER").is_some() {
        peer.message_layer(tower::layer::util::Identity::new())
    } else {
        peer
    }
}

fn serve_one<C: Codec>(io: Box<dyn Io>, codec: C) {
    let peer = with_user_layer(
        Peer::new("bench_server", codec)
            .endpoints(bench_endpoints())
            .config(big_config()),
    );
    tokio::spawn(async move {
        if let Ok(chan) = peer.accept(io).await {
            chan.closed().await;
        }
    });
}

fn big_config() -> Config {
    Config {
        max_contexts: 20_000,
        ..Config::default()
    }
}

/// The raw side of the child: one request frame `[mode, kind, n u64 LE]`;
/// mode 0 writes `n` copies of the kind's `Yield` frame (batched, one
/// flush), mode 1 echoes every frame back.
async fn raw_serve<C: Codec>(io: Box<dyn Io>, codec: C) {
    let mut io = FramingLayer::new().layer(io);
    let Some(Ok(req)) = io.next().await else {
        return;
    };
    let kind = KINDS[usize::from(req[1])];
    let n = u64::from_le_bytes(req[2..10].try_into().unwrap());
    if req[0] == 0 {
        let frame = kind.frame(&codec);
        for _ in 0..n {
            io.feed(frame.clone()).await.unwrap();
        }
        io.flush().await.unwrap();
        // hold the connection until the reader has everything
        let _ = io.next().await;
    } else {
        while let Some(Ok(f)) = io.next().await {
            if io.send(f).await.is_err() {
                break;
            }
        }
    }
}

// ---- the parent: measurements -------------------------------------------------------

/// A child process serving `role` with `codec` on `transport`.
struct ChildProc(Child, String);

impl ChildProc {
    fn spawn(role: &str, codec: &str, transport: Transport) -> ChildProc {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--child", role, codec, transport.name()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line.trim().strip_prefix("ready ").unwrap().to_owned();
        ChildProc(child, addr)
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        drop(self.0.stdin.take()); // the child exits on EOF
        let _ = self.0.wait();
    }
}

fn raw_request(mode: u8, kind: Kind, n: u64) -> Bytes {
    let mut req = vec![mode, KINDS.iter().position(|k| *k == kind).unwrap() as u8];
    req.extend_from_slice(&n.to_le_bytes());
    Bytes::from(req)
}

/// Raw: `n` frames from the child, read as frames.
async fn raw_stream(addr: &str, kind: Kind, n: u64) -> Duration {
    let mut io = FramingLayer::new().layer(connect(addr).await);
    let start = Instant::now();
    io.send(raw_request(0, kind, n)).await.unwrap();
    let mut bytes = 0usize;
    for _ in 0..n {
        bytes += std::hint::black_box(io.next().await.unwrap().unwrap()).len();
    }
    let took = start.elapsed();
    assert!(bytes > 0);
    took
}

/// The codec alone, the ceiling for any stack speaking this protocol: the
/// raw child's frames, each decoded (envelope, then the typed payload) in
/// this task, nothing checked, routed or handed over.
async fn codec_only_stream<C: Codec>(codec: C, addr: &str, kind: Kind, n: u64) -> Duration {
    fn typed<C: Codec, T: serde::de::DeserializeOwned>(codec: &C, frame: Bytes) {
        let msg = codec.decode(frame).unwrap();
        let pld = msg.pld().expect("a Yield has a payload");
        std::hint::black_box(codec.decode_payload::<T>(pld).unwrap());
    }
    let mut io = FramingLayer::new().layer(connect(addr).await);
    let start = Instant::now();
    io.send(raw_request(0, kind, n)).await.unwrap();
    for _ in 0..n {
        let frame = io.next().await.unwrap().unwrap();
        match kind {
            Kind::Int => typed::<C, i64>(&codec, frame),
            Kind::Struct => typed::<C, Reading>(&codec, frame),
            Kind::Bytes4K | Kind::Bytes64K => typed::<C, Blob>(&codec, frame),
        }
    }
    start.elapsed()
}

fn peer<C: Codec>(codec: C) -> Peer<C> {
    with_user_layer(Peer::new("bench_client", codec).config(big_config()))
}

/// scipp: `n` typed items from the child's `bench:stream` endpoint.
async fn scipp_stream<C: Codec>(codec: C, addr: &str, kind: Kind, n: u64) -> Duration {
    let chan = peer(codec).channel(connect(addr).await).await.unwrap();
    let kwargs = StreamKwargs { n, kind };
    let start = Instant::now();
    let got = match kind {
        Kind::Int => receive_n::<C, i64>(&chan, &kwargs).await,
        Kind::Struct => receive_n::<C, Reading>(&chan, &kwargs).await,
        Kind::Bytes4K | Kind::Bytes64K => receive_n::<C, Blob>(&chan, &kwargs).await,
    };
    let took = start.elapsed();
    assert_eq!(got, n, "{kind:?}: every item arrives, once");
    took
}

async fn receive_n<C: Codec, T: serde::de::DeserializeOwned + Send + Sync + 'static>(
    chan: &scipp::peer::Channel<C>,
    kwargs: &StreamKwargs,
) -> u64 {
    let (mut ctx, first): (_, T) = chan
        .open_context("bench", "stream")
        .kwargs(kwargs)
        .spec(PldSpec::of::<T>())
        .start()
        .await
        .unwrap();
    std::hint::black_box(first);
    let mut got = 0;
    while let Some(v) = ctx.recv::<T>().await.unwrap() {
        std::hint::black_box(v);
        got += 1;
    }
    std::hint::black_box(ctx.result::<T>().await.unwrap());
    got
}

/// Per-round-trip latencies, sorted.
struct Latencies(Vec<Duration>);

impl Latencies {
    fn new(mut v: Vec<Duration>) -> Self {
        v.sort();
        Latencies(v)
    }
    fn pct(&self, p: f64) -> Duration {
        let i = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0[i]
    }
    fn us(&self, p: f64) -> f64 {
        self.pct(p).as_secs_f64() * 1e6
    }
    fn rate(&self) -> f64 {
        self.0.len() as f64 / self.0.iter().sum::<Duration>().as_secs_f64()
    }
}

async fn raw_ping_pong(addr: &str, n: usize) -> Latencies {
    let mut io = FramingLayer::new().layer(connect(addr).await);
    io.send(raw_request(1, Kind::Int, 0)).await.unwrap();
    let frame = Kind::Int.frame(&MsgpackCodec::new());
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        io.send(frame.clone()).await.unwrap();
        io.next().await.unwrap().unwrap();
        lat.push(t.elapsed());
    }
    Latencies::new(lat)
}

/// A msgpack channel to the scipp child at `addr`.
async fn scipp_channel(addr: &str) -> scipp::peer::Channel<MsgpackCodec> {
    peer(MsgpackCodec::new())
        .channel(connect(addr).await)
        .await
        .unwrap()
}

async fn scipp_ping_pong(addr: &str, n: usize) -> Latencies {
    let chan = scipp_channel(addr).await;
    let (mut ctx, _): (_, i64) = chan
        .open_context("bench", "echo")
        .spec(PldSpec::of::<i64>())
        .start()
        .await
        .unwrap();
    let mut lat = Vec::with_capacity(n);
    for i in 0..n as i64 {
        let t = Instant::now();
        ctx.send(&i).await.unwrap();
        assert_eq!(ctx.recv::<i64>().await.unwrap(), Some(i));
        lat.push(t.elapsed());
    }
    ctx.close().await.unwrap();
    assert_eq!(ctx.result::<u64>().await.unwrap(), n as u64);
    Latencies::new(lat)
}

async fn scipp_open_to_return(addr: &str, n: usize) -> Latencies {
    let chan = scipp_channel(addr).await;
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let (ctx, ()) = chan.open_context("bench", "ret").start().await.unwrap();
        assert_eq!(ctx.result::<u64>().await.unwrap(), 0);
        lat.push(t.elapsed());
    }
    Latencies::new(lat)
}

// ---- memory -------------------------------------------------------------------

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Heap bytes per idle open context (both ends, in one process) and per
/// queued `Yield(int)`.
async fn memory(contexts: usize, queued: usize) -> (f64, f64) {
    let (flood_done_tx, flood_done) = tokio::sync::oneshot::channel::<()>();
    let flood_done_tx = std::sync::Mutex::new(Some(flood_done_tx));
    let mut endpoints = bench_endpoints::<MsgpackCodec>();
    endpoints.context(
        "bench",
        "idle",
        PldSpec::any(),
        |mut ctx: ChildContext<MsgpackCodec>, _: serde::de::IgnoredAny| async move {
            ctx.started(&()).await?;
            while ctx.recv::<i64>().await?.is_some() {}
            Ok::<_, BoxError>(0)
        },
    );
    let flood_done_tx = std::sync::Arc::new(flood_done_tx);
    endpoints.context(
        "bench",
        "flood",
        PldSpec::any(),
        move |mut ctx: ChildContext<MsgpackCodec>, kw: StreamKwargs| {
            let done = flood_done_tx.clone();
            async move {
                send_n(&mut ctx, kw.n, &42i64).await?;
                if let Some(tx) = done.lock().unwrap().take() {
                    let _ = tx.send(());
                }
                std::future::pending::<()>().await;
                Ok::<_, BoxError>(0)
            }
        },
    );
    let config = Config {
        max_contexts: contexts + 10,
        queue: queued + 10,
        ..Config::default()
    };
    let server = Peer::new("bench_server", MsgpackCodec::new())
        .endpoints(endpoints)
        .config(config);
    let client = Peer::new("bench_client", MsgpackCodec::new()).config(config);
    let (a, b) = tokio::io::duplex(1 << 16);
    let (served, chan) = tokio::join!(server.accept(a), client.channel(b));
    let (served, chan) = (served.unwrap(), chan.unwrap());
    // warm up: let every lazily built structure exist first
    for _ in 0..64 {
        let (ctx, ()) = chan.open_context("bench", "ret").start().await.unwrap();
        ctx.result::<u64>().await.unwrap();
    }

    COUNTING.store(true, Ordering::SeqCst);
    let before = live();
    let mut open = Vec::with_capacity(contexts);
    for _ in 0..contexts {
        let (ctx, ()) = chan.open_context("bench", "idle").start().await.unwrap();
        open.push(ctx);
    }
    assert_eq!(served.open_contexts(), contexts);
    let per_context = (live() - before) as f64 / contexts as f64;
    COUNTING.store(false, Ordering::SeqCst);
    for mut ctx in open {
        ctx.close().await.unwrap();
        ctx.result::<u64>().await.unwrap();
    }

    COUNTING.store(true, Ordering::SeqCst);
    let before = live();
    let (mut ctx, _): (_, i64) = chan
        .open_context("bench", "flood")
        .kwargs(&StreamKwargs {
            n: queued as u64,
            kind: Kind::Int,
        })
        .start()
        .await
        .unwrap();
    flood_done.await.unwrap();
    // a round trip after the flood: every Yield is queued by now
    let (ret, ()) = chan.open_context("bench", "ret").start().await.unwrap();
    ret.result::<u64>().await.unwrap();
    let per_queued = (live() - before) as f64 / queued as f64;
    COUNTING.store(false, Ordering::SeqCst);
    for _ in 0..queued {
        assert_eq!(ctx.recv::<i64>().await.unwrap(), Some(42));
    }
    drop(ctx);
    (per_context, per_queued)
}

// ---- soak ---------------------------------------------------------------------

/// The size of a soak run.
#[derive(Debug, Clone, Copy)]
struct Soak {
    contexts: u64,
    items: u64,
}

impl Soak {
    /// `[quick | CONTEXTS [ITEMS]]` after `--soak` (the issue's size by
    /// default: 1 M contexts, 100 M items).
    fn from_args(args: &[String]) -> Soak {
        let mut size = Soak {
            contexts: 1_000_000,
            items: 100_000_000,
        };
        let numbers: Vec<u64> = args.iter().map_while(|a| a.parse().ok()).collect();
        if args.first().map(String::as_str) == Some("quick") {
            size = Soak {
                contexts: 100_000,
                items: 10_000_000,
            };
        } else if let Some(&contexts) = numbers.first() {
            size.contexts = contexts.max(1);
            size.items = numbers.get(1).copied().unwrap_or(contexts * 100);
        }
        size
    }
}

/// `VmRSS` of process `pid` (`self` for this one), in bytes.
fn rss(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// How much a process's RSS may grow after the warm-up.
const SOAK_GROWTH_LIMIT: u64 = 8 << 20;

/// One channel, `size.contexts` contexts opened and closed (`WORKERS` at a
/// time), each streaming `size.items / size.contexts` `Yield(int)`s from
/// the child; both processes' RSS sampled every second. Returns whether
/// RSS stayed flat after the warm-up.
async fn soak(size: Soak) -> bool {
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;
    const WORKERS: u64 = 4;
    let per_context = size.items / size.contexts;
    let child = ChildProc::spawn("scipp", "msgpack", Transport::Tcp);
    let child_pid = child.0.id().to_string();
    let chan = peer(MsgpackCodec::new())
        .channel(connect(&child.1).await)
        .await
        .unwrap();
    println!(
        "soak: one channel, {} contexts opened and closed ({WORKERS} at a time), {per_context} Yield(int) each ({} items)",
        size.contexts,
        per_context * size.contexts
    );
    let (next, done, items) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (chan, next, done, items) =
                (chan.clone(), next.clone(), done.clone(), items.clone());
            tokio::spawn(async move {
                let kwargs = StreamKwargs {
                    n: per_context,
                    kind: Kind::Int,
                };
                while next.fetch_add(1, Ordering::Relaxed) < size.contexts {
                    let got = receive_n::<MsgpackCodec, i64>(&chan, &kwargs).await;
                    assert_eq!(got, per_context, "every item arrives, once");
                    items.fetch_add(got, Ordering::Relaxed);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let start = Instant::now();
    let mut samples = Vec::new();
    let sample = |samples: &mut Vec<(f64, u64, u64, u64, u64)>| {
        let s = (
            start.elapsed().as_secs_f64(),
            done.load(Ordering::Relaxed),
            items.load(Ordering::Relaxed),
            rss("self"),
            rss(&child_pid),
        );
        println!(
            "{:>8.1} s {:>10} contexts {:>12} items   rss: this {:>7.1} MiB, child {:>7.1} MiB",
            s.0,
            s.1,
            s.2,
            s.3 as f64 / 1048576.0,
            s.4 as f64 / 1048576.0
        );
        samples.push(s);
    };
    println!("    time      contexts done      items");
    sample(&mut samples);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while done.load(Ordering::Relaxed) < size.contexts {
        tick.tick().await;
        sample(&mut samples);
    }
    for w in workers {
        w.await.unwrap();
    }
    sample(&mut samples);
    let took = start.elapsed();
    assert_eq!(chan.open_contexts(), 0, "every context closed");
    // warm-up: the first fifth of the contexts
    let warm = size.contexts / 5;
    let after: Vec<_> = samples.iter().filter(|s| s.1 >= warm).collect();
    let growth = |rss: fn(&&(f64, u64, u64, u64, u64)) -> u64| {
        let base = after.first().map_or(0, rss);
        let max = after.iter().map(rss).max().unwrap_or(0);
        max.saturating_sub(base)
    };
    let (this, child_growth) = (growth(|s| s.3), growth(|s| s.4));
    let flat = after.len() >= 2 && this < SOAK_GROWTH_LIMIT && child_growth < SOAK_GROWTH_LIMIT;
    println!(
        "soak: {} contexts, {} items in {:.1} s ({:.0} items/s, {:.0} contexts/s); after warm-up ({} samples from {warm} contexts on): RSS growth this {:.2} MiB, child {:.2} MiB (limit {} MiB): {}",
        size.contexts,
        items.load(Ordering::Relaxed),
        took.as_secs_f64(),
        items.load(Ordering::Relaxed) as f64 / took.as_secs_f64(),
        size.contexts as f64 / took.as_secs_f64(),
        after.len(),
        this as f64 / 1048576.0,
        child_growth as f64 / 1048576.0,
        SOAK_GROWTH_LIMIT >> 20,
        if flat { "flat" } else if after.len() < 2 { "too short to tell" } else { "GROWING" }
    );
    drop(chan);
    drop(child);
    flat
}

// ---- the run ------------------------------------------------------------------

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

struct Row {
    codec: &'static str,
    transport: Transport,
    kind: Kind,
    n: u64,
    frame_len: usize,
    raw: Duration,
    codec_only: Duration,
    scipp: Duration,
}

impl Row {
    fn rates(&self) -> (f64, f64, f64, f64) {
        let n = self.n as f64;
        let mb = (self.frame_len + 4) as f64 * n / 1e6;
        let (r, s) = (self.raw.as_secs_f64(), self.scipp.as_secs_f64());
        (n / r, n / s, mb / r, mb / s)
    }

    /// The codec-only ceiling in msgs/s.
    fn codec_only_rate(&self) -> f64 {
        self.n as f64 / self.codec_only.as_secs_f64()
    }
}

async fn stream_row<C: Codec>(
    codec: C,
    codec_name: &'static str,
    transport: Transport,
    kind: Kind,
    smoke: bool,
) -> Row {
    let n = PROFILE.get().map_or(kind.count(smoke), |p| p.count);
    let side = |s: &str| PROFILE.get().map_or(true, |p| p.side == s);
    let (mut raw, mut codec_only, mut scipp) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    if side("raw") || side("codec") {
        let raw_child = ChildProc::spawn("raw", codec_name, transport);
        raw_stream(&raw_child.1, kind, (n / 10).max(100)).await; // warm-up
        if side("raw") {
            raw = raw_stream(&raw_child.1, kind, n).await;
        }
        if side("codec") {
            codec_only = codec_only_stream(codec.clone(), &raw_child.1, kind, n).await;
        }
    }
    if side("scipp") {
        let scipp_child = ChildProc::spawn("scipp", codec_name, transport);
        scipp_stream(codec.clone(), &scipp_child.1, kind, (n / 10).max(100)).await;
        scipp = scipp_stream(codec.clone(), &scipp_child.1, kind, n).await;
    }
    Row {
        codec: codec_name,
        transport,
        kind,
        n,
        frame_len: kind.frame(&codec).len(),
        raw,
        codec_only,
        scipp,
    }
}

/// `--profile raw|codec|scipp N`: with `--only`, one side, `N` messages, no
/// warm-up of the other side (for callgrind/perf).
struct Profile {
    side: String,
    count: u64,
}

static PROFILE: std::sync::OnceLock<Profile> = std::sync::OnceLock::new();

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        return child(&args[i + 1..]);
    }
    if let Some(i) = args.iter().position(|a| a == "--profile") {
        let side = args[i + 1].clone();
        let count = args[i + 2].parse().expect("--profile SIDE COUNT");
        let _ = PROFILE.set(Profile { side, count });
    }
    if let Some(i) = args.iter().position(|a| a == "--soak") {
        let size = Soak::from_args(&args[i + 1..]);
        let rt = runtime();
        let flat = rt.block_on(async move { tokio::spawn(soak(size)).await.unwrap() });
        if !flat {
            std::process::exit(1);
        }
        return;
    }
    let json = args.iter().any(|a| a == "--json");
    let smoke = args.iter().any(|a| a == "--smoke");
    // `--only msgpack/tcp/int`: one stream case, nothing else (for profiling)
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    // Measured in a spawned task, on a worker thread like everything the
    // child runs: `block_on`'s own thread is not a worker, and waking a
    // task that runs there costs a futex call per wake-up (what made a
    // first version of this harness measure its own set-up).
    let rt = runtime();
    rt.block_on(async move { tokio::spawn(measure(json, smoke, only)).await.unwrap() });
}

async fn measure(json: bool, smoke: bool, only: Option<String>) {
    let wanted = |codec: &str, t: Transport, k: Kind| {
        only.as_deref().map_or(true, |o| {
            let name = format!("{codec}/{}/{}", t.name(), k.name());
            name.starts_with(o)
        })
    };
    let mut rows = Vec::new();
    let mut cases: Vec<(&'static str, Transport, Kind)> = Vec::new();
    for transport in [Transport::Tcp, Transport::Unix] {
        cases.extend(KINDS.map(|k| ("msgpack", transport, k)));
    }
    cases.extend(KINDS.map(|k| ("cbor", Transport::Tcp, k)));
    cases.extend(KINDS.map(|k| ("protobuf", Transport::Tcp, k)));
    for (codec, transport, kind) in cases {
        if !wanted(codec, transport, kind) {
            continue;
        }
        rows.push(match codec {
            "cbor" => stream_row(CborCodec::new(), codec, transport, kind, smoke).await,
            "protobuf" => stream_row(ProtobufCodec::new(), codec, transport, kind, smoke).await,
            _ => stream_row(MsgpackCodec::new(), codec, transport, kind, smoke).await,
        });
    }
    if only.as_deref() == Some("latency") {
        // `--only latency`: the latency part alone, as a short table
        let (raw, pp, open) = latencies(20_000).await;
        let (raw, pp, open) = (raw.us(0.5), pp.us(0.5), open.us(0.5));
        println!("p50 µs: raw ping-pong {raw:.1}, scipp ping-pong {pp:.1} ({:.2}×), open->Return {open:.1} ({:.2}×)", pp / raw, open / raw);
        return;
    }
    if only.as_deref() == Some("memory") {
        // `--only memory`: the memory part alone
        let (per_ctx, per_msg) = memory(10_000, 10_000).await;
        println!("heap per idle open context (10000 open, both ends): {per_ctx:.0} B; per queued Yield(int) (10000 queued): {per_msg:.0} B");
        return;
    }
    if only.is_some() {
        for r in &rows {
            let (rr, sr, _, _) = r.rates();
            let co = r.codec_only_rate();
            println!(
                "{}/{}/{}: raw {rr:.0}/s codec-only {co:.0}/s ({:.1}%) scipp {sr:.0}/s ({:.1}%)",
                r.codec,
                r.transport.name(),
                r.kind.name(),
                100.0 * co / rr,
                100.0 * sr / rr
            );
        }
        return;
    }

    let rounds = if smoke { 500 } else { 20_000 };
    let (raw_pp, scipp_pp, open_ret) = latencies(rounds).await;

    let (contexts, queued) = if smoke { (500, 500) } else { (10_000, 10_000) };
    let (per_ctx, per_msg) = memory(contexts, queued).await;

    if json {
        for r in &rows {
            let (rr, sr, rmb, smb) = r.rates();
            println!(
                "{}",
                serde_json::json!({"bench": "stream", "codec": r.codec, "transport": r.transport.name(),
                    "payload": r.kind.name(), "messages": r.n, "frame_bytes": r.frame_len + 4,
                    "raw_msgs_per_s": rr, "scipp_msgs_per_s": sr, "raw_mb_per_s": rmb, "scipp_mb_per_s": smb,
                    "ratio": sr / rr, "codec_only_msgs_per_s": r.codec_only_rate(),
                    "codec_only_ratio": r.codec_only_rate() / rr})
            );
        }
        for (name, l) in [
            ("raw ping-pong", &raw_pp),
            ("scipp stream ping-pong", &scipp_pp),
            ("scipp open->Started->Return", &open_ret),
        ] {
            println!(
                "{}",
                serde_json::json!({"bench": "latency", "case": name, "rounds": l.0.len(),
                    "p50_us": l.us(0.5), "p99_us": l.us(0.99), "per_s": l.rate()})
            );
        }
        println!(
            "{}",
            serde_json::json!({"bench": "memory", "idle_contexts": contexts, "bytes_per_idle_context": per_ctx,
                "queued_messages": queued, "bytes_per_queued_message": per_msg})
        );
        return;
    }
    println!("one-way stream: child process -> this process, 2 worker threads each");
    println!("(codec msg/s: the raw frames decoded by the codec alone, envelope and typed payload, in one task: the ceiling of any stack)\n");
    println!(
        "{:<9} {:<5} {:<14} {:>8} {:>12} {:>12} {:>9} {:>10} {:>7} {:>12} {:>7}",
        "codec",
        "via",
        "payload",
        "frame B",
        "raw msg/s",
        "scipp msg/s",
        "raw MB/s",
        "scipp MB/s",
        "ratio",
        "codec msg/s",
        "ratio"
    );
    for r in &rows {
        let (rr, sr, rmb, smb) = r.rates();
        println!(
            "{:<9} {:<5} {:<14} {:>8} {:>12.0} {:>12.0} {:>9.0} {:>10.0} {:>6.1}% {:>12.0} {:>6.1}%",
            r.codec,
            r.transport.name(),
            r.kind.name(),
            r.frame_len + 4,
            rr,
            sr,
            rmb,
            smb,
            100.0 * sr / rr,
            r.codec_only_rate(),
            100.0 * r.codec_only_rate() / rr
        );
    }
    println!(
        "\nlatency, loopback TCP, {rounds} rounds (open->Return: {})\n",
        rounds / 4
    );
    println!(
        "{:<32} {:>9} {:>9} {:>10} {:>14}",
        "case", "p50 µs", "p99 µs", "per s", "p50 vs raw"
    );
    let raw_p50 = raw_pp.us(0.5);
    for (name, l) in [
        ("raw ping-pong (one frame)", &raw_pp),
        ("scipp stream ping-pong", &scipp_pp),
        ("scipp open->Started->Return", &open_ret),
    ] {
        println!(
            "{:<32} {:>9.1} {:>9.1} {:>10.0} {:>13.2}×",
            name,
            l.us(0.5),
            l.us(0.99),
            l.rate(),
            l.us(0.5) / raw_p50
        );
    }
    println!("\nmemory (counting allocator, both ends of the channel in one process)\n");
    println!("heap per idle open context ({contexts} open): {per_ctx:.0} B");
    println!("heap per queued Yield(int) ({queued} queued): {per_msg:.0} B");
    println!(
        "(a context's queue allocates on its first message; a queued item is a {} B slot plus its share of the read buffer)",
        std::mem::size_of::<scipp::Inbound>()
    );
}

/// Raw ping-pong, scipp stream ping-pong (`rounds` each, after a tenth as
/// warm-up) and open->Return (`rounds / 4`), against fresh children.
async fn latencies(rounds: usize) -> (Latencies, Latencies, Latencies) {
    let raw_child = ChildProc::spawn("raw", "msgpack", Transport::Tcp);
    let scipp_child = ChildProc::spawn("scipp", "msgpack", Transport::Tcp);
    raw_ping_pong(&raw_child.1, rounds / 10).await;
    scipp_ping_pong(&scipp_child.1, rounds / 10).await;
    let raw = raw_ping_pong(&raw_child.1, rounds).await;
    let ping_pong = scipp_ping_pong(&scipp_child.1, rounds).await;
    let open_ret = scipp_open_to_return(&scipp_child.1, rounds / 4).await;
    (raw, ping_pong, open_ret)
}
