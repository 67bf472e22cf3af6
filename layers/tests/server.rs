//! `Peer::serve*` and its `Server` handle: the bound address, live
//! channels, the connection limit, handshakes that do not block accepting,
//! `self.cancel`, and a graceful shutdown that delivers every queued reply.

use scipp_codecs::msgpack::MsgpackCodec;
use scipp_layers::context::{ChildContext, ContextError};
use scipp_layers::payload::PldSpec;
use scipp_layers::peer::{Channel, Config, Peer};
use scipp_layers::route::Endpoints;
use scipp_layers::server::{ServeConfig, Server};
use scipp_layers::BoxError;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Bounded wait: a hang fails the test instead of blocking CI.
async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

#[derive(serde::Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

fn calc() -> Peer<MsgpackCodec> {
    let mut endpoints = Endpoints::new();
    endpoints.rpc("calc", "add", |kw: Add| async move { Ok(kw.a + kw.b) });
    Peer::new("calc", MsgpackCodec::new()).endpoints(endpoints)
}

async fn connect(server: &Server) -> Result<Channel<MsgpackCodec>, scipp_layers::peer::PeerError> {
    Peer::new("client", MsgpackCodec::new())
        .connect_tcp(server.local_addr().to_string())
        .await
}

async fn add(chan: &Channel<MsgpackCodec>, a: i64, b: i64) -> i64 {
    bounded(
        "add",
        chan.rpc("calc", "add", &BTreeMap::from([("a", a), ("b", b)])),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn serves_every_connection_and_lists_its_channels() {
    let server = calc().serve_tcp("127.0.0.1:0").await.unwrap();
    let (alice, bob) = (
        Peer::new("alice", MsgpackCodec::new()),
        Peer::new("bob", MsgpackCodec::new()),
    );
    let addr = server.local_addr().to_string();
    let (one, two) = (
        alice.connect_tcp(&addr).await.unwrap(),
        bob.connect_tcp(&addr).await.unwrap(),
    );
    assert_eq!(add(&one, 1, 2).await, 3);
    assert_eq!(add(&two, 3, 4).await, 7);
    bounded("two channels", server.wait_channels(|n| n == 2)).await;
    let mut peers: Vec<String> = server.channels().iter().map(|u| u.to_string()).collect();
    peers.sort();
    let mut expected = vec![alice.uid().to_string(), bob.uid().to_string()];
    expected.sort();
    assert_eq!(peers, expected);
    assert_eq!(server.connections(), 2);
    drop(one);
    bounded("one left", server.wait_channels(|n| n == 1)).await;
    assert_eq!(add(&two, 5, 6).await, 11);
    server.shutdown().await.unwrap();
    bounded("the client sees the close", two.closed()).await;
}

#[tokio::test]
async fn a_silent_handshake_does_not_block_accepting() {
    let peer = calc().config(Config {
        handshake_timeout: Duration::from_secs(600),
        ..Config::default()
    });
    let server = peer.serve_tcp("127.0.0.1:0").await.unwrap();
    // connects and never sends its Aid
    let _silent = tokio::net::TcpStream::connect(server.local_addr().to_string())
        .await
        .unwrap();
    bounded(
        "the silent connection is held",
        server.wait_connections(|n| n == 1),
    )
    .await;
    let chan = bounded("a second client", connect(&server)).await.unwrap();
    assert_eq!(add(&chan, 2, 2).await, 4);
    assert_eq!(server.connections(), 2);
    assert_eq!(server.channels().len(), 1);
}

#[tokio::test]
async fn beyond_the_connection_limit_connections_are_closed_until_one_leaves() {
    let config = ServeConfig {
        max_connections: 1,
        ..ServeConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = calc().serve_with(listener, config);
    let first = connect(&server).await.unwrap();
    let refused = bounded("the refused handshake", connect(&server)).await;
    assert!(refused.is_err(), "a second connection was served");
    assert_eq!(add(&first, 1, 1).await, 2, "the first is still served");
    drop(first);
    bounded("the first left", server.wait_connections(|n| n == 0)).await;
    let again = connect(&server).await.unwrap();
    assert_eq!(add(&again, 2, 3).await, 5);
}

#[tokio::test]
async fn a_peers_self_cancel_is_reported_and_acked_before_shutdown() {
    let server = calc().serve_tcp("127.0.0.1:0").await.unwrap();
    let chan = connect(&server).await.unwrap();
    let (acked, ()) = bounded("self.cancel", async {
        tokio::join!(chan.cancel_actor(), server.cancel_requested())
    })
    .await;
    acked.unwrap();
    server.shutdown().await.unwrap();
    bounded("the close", chan.closed()).await;
}

#[cfg(unix)]
#[tokio::test]
async fn serves_a_unix_socket_and_removes_it_on_shutdown() {
    let path = std::env::temp_dir().join(format!("scipp-serve-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let server = calc().serve_unix(&path).unwrap();
    assert_eq!(
        server.local_addr().to_string(),
        std::path::absolute(&path).unwrap().display().to_string()
    );
    let chan = Peer::new("client", MsgpackCodec::new())
        .connect_unix(&path)
        .await
        .unwrap();
    assert_eq!(add(&chan, 20, 22).await, 42);
    server.shutdown().await.unwrap();
    assert!(!path.exists(), "the socket file is removed");
    bounded("the close", chan.closed()).await;
}

/// Items the streaming endpoint sends: its index, and padding that fills
/// the socket buffers, so replies are still queued at the server when it
/// shuts down.
type Item = (u64, serde_bytes::ByteBuf);

#[tokio::test]
async fn graceful_shutdown_delivers_every_queued_reply_of_live_contexts() {
    let sent = Arc::new(AtomicUsize::new(0));
    let (enough_tx, enough) = tokio::sync::watch::channel(false);
    let mut endpoints = Endpoints::new();
    let counter = sent.clone();
    endpoints.context(
        "t",
        "flood",
        PldSpec::any(),
        move |mut ctx: ChildContext<MsgpackCodec>, _: BTreeMap<String, i64>| {
            let (sent, enough) = (counter.clone(), enough_tx.clone());
            async move {
                ctx.started(&()).await?;
                for i in 0_u64.. {
                    let item: Item = (i, serde_bytes::ByteBuf::from(vec![7; 8 * 1024]));
                    ctx.send(&item).await?;
                    // counted only once the send queued it
                    if sent.fetch_add(1, Ordering::SeqCst) + 1 == 300 {
                        enough.send_replace(true);
                    }
                }
                Ok::<_, BoxError>(())
            }
        },
    );
    let server = Peer::new("server", MsgpackCodec::new())
        .endpoints(endpoints)
        .serve_tcp("127.0.0.1:0")
        .await
        .unwrap();
    let chan = connect(&server).await.unwrap();
    let (mut ctx, ()) = bounded("open", chan.open_context("t", "flood").start())
        .await
        .unwrap();
    // the endpoint has queued 300 replies we have not read (it blocks
    // long before we read them all: the queues and socket buffers fill)
    let mut enough = enough;
    bounded("300 sends", enough.wait_for(|e| *e)).await.unwrap();

    let shutdown = tokio::spawn(server.shutdown());
    let mut received = 0_u64;
    let end = loop {
        match bounded("the next reply", ctx.recv::<Item>()).await {
            Ok(Some((i, _))) => {
                assert_eq!(i, received, "in order, none lost");
                received += 1;
            }
            Ok(None) => panic!("the stream ended cleanly; expected the close"),
            Err(e) => break e,
        }
    };
    bounded("shutdown", shutdown).await.unwrap().unwrap();
    assert!(
        matches!(end, ContextError::TransportClosed { .. }),
        "expected TransportClosed, got {end:?}"
    );
    let sent = sent.load(Ordering::SeqCst) as u64;
    assert!(sent >= 300);
    eprintln!("the endpoint queued {sent} replies; all arrived");
    assert_eq!(received, sent, "every reply the endpoint queued arrived");
}
