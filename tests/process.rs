//! Real processes: `scipp serve` as the peer, killed with SIGKILL
//! mid-stream, cancelled by request, stopped by SIGTERM.

use scipp::context::ContextError;
use scipp::payload::PldSpec;
use scipp::peer::{Channel, Peer};
use scipp::MsgpackCodec;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Starts `scipp serve` on an ephemeral port; returns it and its address
/// (read from its `listening on ADDR` line, so no guessing or sleeping).
fn serve() -> (Child, String) {
    serve_on("127.0.0.1:0")
}

fn serve_on(listen: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_scipp"))
        .args(["serve", "--listen", listen])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns scipp serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
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
