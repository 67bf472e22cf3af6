//! Real processes and sockets: `scipp serve` as the peer, killed with
//! SIGKILL mid-stream, cancelled by request, stopped by SIGTERM; and the
//! faults a hostile or broken peer brings (no handshake, garbage after the
//! handshake, a truncated frame, a slow consumer, 500 connections at once,
//! a half-open connection). Under each: the server survives, its memory
//! stays bounded (its RSS), other connections keep working, and every
//! affected context ends with a typed error within a bounded time.

mod common;

use scipp::context::ContextError;
use scipp::payload::PldSpec;
use scipp::peer::{Channel, Peer};
use scipp::MsgpackCodec;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Starts `scipp serve` on an ephemeral port; returns it and its address
/// (read from its `listening on ADDR` line, so no guessing or sleeping).
fn serve() -> (Child, String) {
    serve_on("127.0.0.1:0")
}

fn serve_on(listen: &str) -> (Child, String) {
    serve_with(&["--listen", listen])
}

/// `scipp serve` with these arguments.
fn serve_with(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_scipp"))
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns scipp serve");
    let addr = common::listening_addr(&mut child);
    (child, addr)
}

async fn connect(addr: &str) -> Channel<MsgpackCodec> {
    Peer::new("scipp_client", MsgpackCodec::new())
        .connect_tcp(addr)
        .await
        .unwrap()
}

/// Bounded wait: a hang fails the test instead of blocking CI.
async fn bounded<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

#[tokio::test]
async fn a_peer_killed_mid_stream_ends_every_context_with_transport_closed() {
    let (child, addr) = serve();
    killed_mid_stream(child, connect(&addr).await).await;
}

#[cfg(unix)]
#[tokio::test]
async fn a_peer_killed_mid_stream_over_a_unix_socket() {
    let path = std::env::temp_dir().join(format!("scipp-kill-{}.sock", std::process::id()));
    let (child, addr) = serve_on(path.to_str().unwrap());
    let chan = Peer::new("scipp_client", MsgpackCodec::new())
        .connect_unix(&addr)
        .await
        .unwrap();
    killed_mid_stream(child, chan).await;
    let _ = std::fs::remove_file(path);
}

async fn killed_mid_stream(mut child: Child, chan: Channel<MsgpackCodec>) {
    let (mut echo, _): (_, Option<i64>) = chan
        .open_context("scipp_peer", "echo")
        .start()
        .await
        .unwrap();
    let (sleeper, ()) = chan
        .open_context("scipp_peer", "sleep_forever")
        .start()
        .await
        .unwrap();
    echo.send(&1).await.unwrap();
    assert_eq!(
        echo.recv::<i64>().await.unwrap(),
        Some(1),
        "accepted before the fault: delivered"
    );
    echo.send(&2).await.unwrap(); // in flight when the peer dies

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    match bounded("echo.recv", echo.recv::<i64>()).await {
        Ok(Some(2)) => {
            // the echo made it out before the kill; the next read must fail
            let err = bounded("echo.recv", echo.recv::<i64>()).await.unwrap_err();
            assert!(
                matches!(err, ContextError::TransportClosed { .. }),
                "{err:?}"
            );
        }
        Err(ContextError::TransportClosed { .. }) => {}
        other => panic!("expected TransportClosed, got {other:?}"),
    }
    let err = bounded("sleeper.result", sleeper.result::<()>())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ContextError::TransportClosed { .. }),
        "{err:?}"
    );
    bounded("chan.closed", chan.closed()).await;
    let err = bounded(
        "open after close",
        chan.open_context("scipp_peer", "echo").start::<()>(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ContextError::TransportClosed { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn serve_answers_the_example_endpoints_and_exits_on_actor_cancel() {
    let (mut child, addr) = serve();
    let chan = connect(&addr).await;
    let sum: i64 = chan
        .rpc("scipp_peer", "add", &BTreeMap::from([("a", 2), ("b", 3)]))
        .await
        .unwrap();
    assert_eq!(sum, 5);
    let (mut ctx, first): (_, i64) = chan
        .open_context("scipp_peer", "echo_int")
        .spec(PldSpec::of::<i64>())
        .start()
        .await
        .unwrap();
    assert_eq!(first, 0);
    ctx.send(&7).await.unwrap();
    assert_eq!(ctx.recv::<i64>().await.unwrap(), Some(7));
    ctx.close().await.unwrap();
    assert_eq!(ctx.result::<u64>().await.unwrap(), 1);

    chan.cancel_actor().await.unwrap();
    let status = bounded(
        "serve exit",
        tokio::task::spawn_blocking(move || child.wait()),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(status.success(), "{status:?}");
}

#[cfg(unix)]
#[tokio::test]
async fn serve_exits_cleanly_on_sigterm() {
    let (mut child, _addr) = serve();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = bounded(
        "serve exit",
        tokio::task::spawn_blocking(move || child.wait()),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(status.success(), "{status:?}");
}

// ---- faults ------------------------------------------------------------------

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use scipp::framing::{FrameCodec, FramingLayer};
use scipp::msg::{self as wire, Aid, Msg, Uid};
use scipp::Codec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use tower::Layer;

/// Kills the server however the test ends.
struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn server(args: &[&str]) -> Server {
    let mut all = vec!["--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let (child, addr) = serve_with(&all);
    Server(child, addr)
}

impl Server {
    /// Resident memory, from `/proc` (Linux), in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Alive, and serving a fresh connection: `add(2, 3) == 5`.
    async fn still_serves(&mut self) {
        assert!(self.0.try_wait().unwrap().is_none(), "the server died");
        let chan = bounded("connect", connect(&self.1)).await;
        let sum: i64 = bounded(
            "add",
            chan.rpc("scipp_peer", "add", &BTreeMap::from([("a", 2), ("b", 3)])),
        )
        .await
        .unwrap();
        assert_eq!(sum, 5);
    }
}

/// A hand-driven client on a real socket.
struct Raw {
    io: Framed<TcpStream, FrameCodec>,
    uid: Uid,
}

impl Raw {
    async fn connect(addr: &str) -> Raw {
        let tcp = TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        Raw {
            io: FramingLayer::new().layer(tcp),
            uid: Uid::new("raw_client", scipp::new_uuid()),
        }
    }

    async fn handshake(addr: &str) -> Raw {
        let mut raw = Raw::connect(addr).await;
        raw.send(Msg::from(Aid::new(
            raw.uid.name.clone(),
            raw.uid.uuid.clone(),
        )))
        .await;
        assert!(matches!(raw.recv().await, Some(Msg::Aid(_))));
        raw
    }

    async fn send(&mut self, msg: Msg) {
        let body = MsgpackCodec::new().encode_to_bytes(&msg).unwrap();
        self.io.send(body).await.unwrap();
    }

    /// The next message; `None` once the server hung up.
    async fn recv(&mut self) -> Option<Msg> {
        let frame = bounded("a frame", self.io.next()).await?;
        Some(MsgpackCodec::new().decode(frame.ok()?).unwrap())
    }

    fn start(&self, cid: &str, func: &str, kwargs: &BTreeMap<&str, i64>) -> Msg {
        Msg::from(wire::Start {
            cid: cid.into(),
            ns: "scipp_peer".into(),
            func: func.into(),
            kwargs: MsgpackCodec::new().encode_payload(kwargs).unwrap(),
            uid: self.uid.clone(),
            pld_spec: wire::Start::DEFAULT_PLD_SPEC.into(),
        })
    }

    fn yield_of(cid: &str, value: &impl serde::Serialize) -> Msg {
        Msg::Yield(wire::Yield {
            cid: cid.into(),
            pld: MsgpackCodec::new().encode_payload(value).unwrap(),
        })
    }

    /// Waits (bounded) for the server to close the connection.
    async fn hung_up(&mut self) {
        let tcp = self.io.get_mut();
        let mut buf = [0u8; 4096];
        loop {
            match bounded("the server hanging up", tcp.read(&mut buf)).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}

#[tokio::test]
async fn fault_a_peer_that_never_completes_the_handshake_is_dropped() {
    let mut server = server(&["--handshake-timeout", "0.3"]);
    let rss_before = server.rss_kib();
    let mut silent = Raw::connect(&server.1).await;
    // meanwhile others are served
    server.still_serves().await;
    // the server answers an Aid only to an Aid, and hangs up at the timeout
    silent.hung_up().await;
    server.still_serves().await;
    assert!(server.rss_kib() < rss_before + 32 * 1024);
}

#[tokio::test]
async fn fault_garbage_after_a_valid_handshake() {
    let mut server = server(&[]);
    let rss_before = server.rss_kib();
    let mut raw = Raw::handshake(&server.1).await;
    // undecodable frames: reported, the channel goes on
    for garbage in [&b"\xc1\xc1 not msgpack"[..], b"\x93\x01\x02", b""] {
        raw.io.send(Bytes::copy_from_slice(garbage)).await.unwrap();
    }
    raw.send(raw.start("c-1", "add", &BTreeMap::from([("a", 2), ("b", 3)])))
        .await;
    assert!(matches!(raw.recv().await, Some(Msg::StartAck(_))));
    match raw.recv().await {
        Some(Msg::Return(r)) => {
            assert_eq!(
                MsgpackCodec::new().decode_payload::<i64>(&r.pld).unwrap(),
                5
            )
        }
        other => panic!("expected Return(5), got {other:?}"),
    }
    // garbage in the framing itself (a 4 GiB length claim) ends this
    // connection only
    raw.io.get_mut().write_all(&[0xff; 8]).await.unwrap();
    raw.hung_up().await;
    server.still_serves().await;
    // the 4 GiB claim reserved nothing
    assert!(server.rss_kib() < rss_before + 32 * 1024);
}

#[tokio::test]
async fn fault_a_frame_truncated_by_a_closed_socket() {
    let mut server = server(&[]);
    let rss_before = server.rss_kib();
    let mut raw = Raw::handshake(&server.1).await;
    raw.send(raw.start("c-1", "echo", &BTreeMap::new())).await;
    assert!(matches!(raw.recv().await, Some(Msg::StartAck(_))));
    assert!(matches!(raw.recv().await, Some(Msg::Started(_))));
    raw.send(Raw::yield_of("c-1", &1)).await;
    assert!(matches!(raw.recv().await, Some(Msg::Yield(_))));
    // half a frame, then the socket closes
    let body = MsgpackCodec::new()
        .encode_to_bytes(&Raw::yield_of("c-1", &vec![7u8; 1000]))
        .unwrap();
    let mut framed = (body.len() as u32).to_le_bytes().to_vec();
    framed.extend_from_slice(&body[..body.len() / 2]);
    let mut tcp = raw.io.into_inner();
    tcp.write_all(&framed).await.unwrap();
    tcp.shutdown().await.unwrap();
    drop(tcp);
    server.still_serves().await;
    assert!(server.rss_kib() < rss_before + 32 * 1024);
}

#[tokio::test]
async fn fault_a_context_whose_peer_truncates_a_frame_ends_with_a_typed_error() {
    // the peer is a raw server: five Yields, then half a frame, then EOF
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let peer_side = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut raw = Raw {
            io: FramingLayer::new().layer(tcp),
            uid: Uid::new("raw_server", scipp::new_uuid()),
        };
        assert!(matches!(raw.recv().await, Some(Msg::Aid(_))));
        raw.send(Msg::from(Aid::new(
            raw.uid.name.clone(),
            raw.uid.uuid.clone(),
        )))
        .await;
        let Some(Msg::Start(start)) = raw.recv().await else {
            panic!("expected the Start")
        };
        let cid = start.cid.as_str().to_owned();
        raw.send(Msg::StartAck(wire::StartAck {
            cid: start.cid.clone(),
            functype: wire::FuncType::Context,
        }))
        .await;
        raw.send(Msg::Started(wire::Started {
            cid: start.cid.clone(),
            pld: MsgpackCodec::new().encode_payload(&()).unwrap(),
        }))
        .await;
        for i in 0..5 {
            raw.send(Raw::yield_of(&cid, &i)).await;
        }
        let body = MsgpackCodec::new()
            .encode_to_bytes(&Raw::yield_of(&cid, &5))
            .unwrap();
        let mut framed = (body.len() as u32).to_le_bytes().to_vec();
        framed.extend_from_slice(&body[..body.len() - 1]);
        let mut tcp = raw.io.into_inner();
        tcp.write_all(&framed).await.unwrap();
        tcp.shutdown().await.unwrap();
    });
    let chan = connect(&addr).await;
    let (mut ctx, ()) = bounded("open", chan.open_context("scipp_peer", "stream").start())
        .await
        .unwrap();
    let mut got = Vec::new();
    let end = loop {
        match bounded("the stream", ctx.recv::<i64>()).await {
            Ok(Some(v)) => got.push(v),
            Ok(None) => panic!("a clean end of stream"),
            Err(e) => break e,
        }
    };
    peer_side.await.unwrap();
    assert_eq!(got, [0, 1, 2, 3, 4], "every accepted item, once, in order");
    match end {
        ContextError::TransportClosed { reason, .. } => {
            assert!(reason.contains("stream ended inside a frame"), "{reason}")
        }
        other => panic!("expected TransportClosed, got {other:?}"),
    }
}

#[tokio::test]
async fn fault_five_hundred_connections_at_once() {
    let mut server = server(&[]);
    let rss_before = server.rss_kib();
    let addr = server.1.clone();
    let calls = (0..500).map(|i| {
        let addr = addr.clone();
        tokio::spawn(async move {
            let chan = connect(&addr).await;
            let sum: i64 = chan
                .rpc("scipp_peer", "add", &BTreeMap::from([("a", i), ("b", 1)]))
                .await
                .unwrap();
            (sum, chan)
        })
    });
    let done = bounded("500 calls", futures_util::future::join_all(calls)).await;
    let mut channels = Vec::new();
    for (i, d) in done.into_iter().enumerate() {
        let (sum, chan) = d.unwrap();
        assert_eq!(sum, i as i64 + 1);
        channels.push(chan);
    }
    // 500 open channels cost the server well under 64 MiB
    let grown = server.rss_kib().saturating_sub(rss_before);
    eprintln!("500 channels: the server grew {grown} KiB");
    assert!(grown < 64 * 1024, "{grown} KiB for 500 channels");
    drop(channels);
    server.still_serves().await;
}

/// A client that streams into `echo` and never reads: how much it got
/// into the server before its writes stalled, and the server's growth.
async fn slow_consumer(overrun: &str) {
    let mut server = server(&["--overrun", overrun, "--queue", "4"]);
    let rss_before = server.rss_kib();
    let mut raw = Raw::handshake(&server.1).await;
    raw.send(raw.start("c-1", "echo", &BTreeMap::new())).await;
    assert!(matches!(raw.recv().await, Some(Msg::StartAck(_))));
    assert!(matches!(raw.recv().await, Some(Msg::Started(_))));
    let item = MsgpackCodec::new()
        .encode_to_bytes(&Raw::yield_of(
            "c-1",
            &serde_bytes::ByteBuf::from(vec![0u8; 16 * 1024]),
        ))
        .unwrap();
    let mut frame = (item.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&item);
    // 256 MiB offered: more than every socket buffer on the way can hold
    let offered = 256 * 1024 * 1024 / frame.len();
    let mut tcp = raw.io.into_inner();
    let mut sent = 0;
    for _ in 0..offered {
        // a write that makes no progress for 2 s: the server pushes back
        match tokio::time::timeout(Duration::from_secs(2), tcp.write_all(&frame)).await {
            Ok(res) => res.unwrap(),
            Err(_) => break,
        }
        sent += 1;
    }
    assert!(
        sent < offered,
        "{overrun}: the server took all {offered} items"
    );
    let grown = server.rss_kib().saturating_sub(rss_before);
    eprintln!("{overrun}: {sent} of {offered} 16 KiB items got in before the writes stalled; the server grew {grown} KiB");
    assert!(grown < 64 * 1024, "{overrun}: grew {grown} KiB");
    // others are served while this one is stuck
    server.still_serves().await;
    drop(tcp);
    server.still_serves().await;
}

#[tokio::test]
async fn fault_a_slow_consumer_under_backpressure() {
    slow_consumer("backpressure").await;
}

#[tokio::test]
async fn fault_a_slow_consumer_under_tractors_overrun_reports() {
    slow_consumer("report").await;
}

/// A TCP proxy to `upstream` that can start dropping everything without
/// closing anything (a half-open connection).
async fn blackholing_proxy(
    upstream: String,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let dark = std::sync::Arc::new(AtomicBool::new(false));
    let flag = dark.clone();
    tokio::spawn(async move {
        let (down, _) = listener.accept().await.unwrap();
        let up = TcpStream::connect(upstream).await.unwrap();
        let (dr, dw) = down.into_split();
        let (ur, uw) = up.into_split();
        let pump = |mut from: tokio::net::tcp::OwnedReadHalf,
                    mut to: tokio::net::tcp::OwnedWriteHalf,
                    dark: std::sync::Arc<AtomicBool>| async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match from.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if !dark.load(Ordering::SeqCst) && to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        };
        let a = tokio::spawn(pump(dr, uw, flag.clone()));
        let b = tokio::spawn(pump(ur, dw, flag));
        let _ = tokio::join!(a, b);
    });
    (addr, dark)
}

#[tokio::test]
async fn fault_a_half_open_connection_is_detected_by_the_idle_timeout() {
    let mut server = server(&[]);
    let rss_before = server.rss_kib();
    let (proxy, dark) = blackholing_proxy(server.1.clone()).await;
    let client = Peer::new("scipp_client", MsgpackCodec::new()).config(scipp::peer::Config {
        idle_timeout: Some(Duration::from_millis(500)),
        ..scipp::peer::Config::default()
    });
    let chan = bounded("connect", client.connect_tcp(&proxy))
        .await
        .unwrap();
    let (mut echo, _): (_, Option<i64>) =
        bounded("open", chan.open_context("scipp_peer", "echo").start())
            .await
            .unwrap();
    echo.send(&1).await.unwrap();
    assert_eq!(bounded("echo", echo.recv::<i64>()).await.unwrap(), Some(1));
    // the middlebox goes dark: nothing arrives, nothing closes
    dark.store(true, std::sync::atomic::Ordering::SeqCst);
    echo.send(&2).await.unwrap();
    match bounded("the idle timeout", echo.recv::<i64>()).await {
        Err(ContextError::TransportClosed { reason, .. }) => {
            assert!(reason.contains("idle"), "{reason}")
        }
        other => panic!("expected TransportClosed, got {other:?}"),
    }
    server.still_serves().await;
    assert!(server.rss_kib() < rss_before + 32 * 1024);
}
