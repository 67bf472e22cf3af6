//! `scipp serve` under a low file limit (`ulimit -n 256`), flooded with
//! idle connections: it keeps serving the channel it already has, refuses
//! connections beyond its limit (or rides out `EMFILE` when the limit is
//! set above the file limit), and accepts again once the flood is gone.
#![cfg(unix)]

mod common;

use scipp::peer::{Channel, Peer};
use scipp::MsgpackCodec;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The file limit the server runs under.
const NOFILE: usize = 256;
/// Idle connections the flood opens: more than the server can hold.
const FLOOD: usize = 400;

/// A `scipp serve` child under `ulimit -n 256`; stderr lines arrive on the
/// channel. Handshakes may take 60 s, so no flood connection is dropped
/// for its silence during the test.
struct Server {
    child: Child,
    addr: String,
    stderr: std::sync::mpsc::Receiver<String>,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -n {NOFILE} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_scipp"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--handshake-timeout",
                "60",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawns scipp serve");
        let addr = common::listening_addr(&mut child);
        let (tx, stderr) = std::sync::mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Server {
            child,
            addr,
            stderr,
        }
    }

    fn assert_alive(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the server exited under the flood"
        );
    }

    /// Waits (bounded) for a stderr line containing `needle`.
    fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line containing {needle:?} within 20 s"),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn connect(addr: &str) -> Result<Channel<MsgpackCodec>, scipp::peer::PeerError> {
    Peer::new("scipp_client", MsgpackCodec::new())
        .connect_tcp(addr)
        .await
}

async fn add(chan: &Channel<MsgpackCodec>, a: i64, b: i64) -> i64 {
    tokio::time::timeout(
        Duration::from_secs(10),
        chan.rpc("scipp_peer", "add", &BTreeMap::from([("a", a), ("b", b)])),
    )
    .await
    .expect("the call hung")
    .expect("the call failed")
}

/// Opens `n` idle connections (no handshake). Each is watched by a task
/// that counts it in `closed` when the server closes it; aborting the
/// tasks closes the connections.
async fn flood(
    addr: &str,
    n: usize,
    closed: &Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut watchers = Vec::with_capacity(n);
    for _ in 0..n {
        let mut tcp = TcpStream::connect(addr)
            .await
            .expect("the backlog takes it");
        let closed = closed.clone();
        watchers.push(tokio::spawn(async move {
            let mut buf = [0u8; 256];
            // the server's Aid never comes (it waits for ours); a read of
            // 0 or an error is the server hanging up
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            closed.fetch_add(1, Ordering::SeqCst);
        }));
    }
    watchers
}

/// Waits (bounded) until `pred` holds, checking every 20 ms.
async fn until(what: &str, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pred() {
        assert!(Instant::now() < deadline, "{what}: not within 20 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (bounded) until a fresh connection is served: handshake and a
/// call succeed.
async fn serves_new_connections(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Ok(chan)) = tokio::time::timeout(Duration::from_secs(5), connect(addr)).await {
            assert_eq!(add(&chan, 40, 2).await, 42);
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no new connection served within 20 s after the flood closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn under_a_low_file_limit_the_connection_limit_refuses_the_flood_and_the_server_goes_on() {
    let mut server = Server::start(&[]);
    let chan = connect(&server.addr).await.unwrap();
    assert_eq!(add(&chan, 1, 2).await, 3);

    let closed = Arc::new(AtomicUsize::new(0));
    let watchers = flood(&server.addr, FLOOD, &closed).await;
    // the default limit is the file limit minus 64 headroom; our channel
    // holds one of those places, the flood the rest, and every further
    // flood connection is closed at once
    let limit = NOFILE - 64;
    let refused = FLOOD - (limit - 1);
    until("the server closes the connections beyond its limit", || {
        closed.load(Ordering::SeqCst) >= refused
    })
    .await;
    server.wait_for_log("connection limit reached");
    server.assert_alive();
    // the existing channel is still served during the flood
    assert_eq!(add(&chan, 20, 22).await, 42);
    // a new connection is refused while the limit is reached
    let late = tokio::time::timeout(Duration::from_secs(10), connect(&server.addr))
        .await
        .expect("a refused handshake ends at once");
    assert!(late.is_err(), "a connection beyond the limit was served");
    assert_eq!(
        closed.load(Ordering::SeqCst),
        refused,
        "only the excess was closed"
    );

    for w in &watchers {
        w.abort();
    }
    serves_new_connections(&server.addr).await;
    assert_eq!(add(&chan, 5, 5).await, 10);
    server.assert_alive();
}

#[tokio::test]
async fn past_the_file_limit_accept_errors_are_retried_and_the_server_goes_on() {
    // a limit above the file limit: `accept` runs into EMFILE
    let mut server = Server::start(&["--max-connections", "100000"]);
    let chan = connect(&server.addr).await.unwrap();
    assert_eq!(add(&chan, 1, 2).await, 3);

    let closed = Arc::new(AtomicUsize::new(0));
    // those the server cannot accept wait in its listen backlog (1024)
    let watchers = flood(&server.addr, FLOOD, &closed).await;
    let line = server.wait_for_log("accept: ");
    assert!(line.contains("Too many open files"), "{line}");
    server.assert_alive();
    // the existing channel is still served while accept fails
    assert_eq!(add(&chan, 20, 22).await, 42);
    assert_eq!(closed.load(Ordering::SeqCst), 0, "nothing was closed");

    for w in &watchers {
        w.abort();
    }
    serves_new_connections(&server.addr).await;
    assert_eq!(add(&chan, 5, 5).await, 10);
    server.assert_alive();
}
