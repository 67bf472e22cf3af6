//! Plain RPCs (`Start → StartAck → Return`) under load: many callers on
//! one channel, and callers that give up.

use scipp_codecs::msgpack::MsgpackCodec;
use scipp_layers::peer::{Channel, Peer};
use scipp_layers::route::Endpoints;
use scipp_layers::BoxError;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::mpsc;

type C = MsgpackCodec;

#[derive(Serialize, Deserialize)]
struct X {
    x: i64,
}

/// What the `hang` endpoint reports: it started, or it was dropped.
#[derive(Debug, PartialEq)]
enum Seen {
    Started,
    Dropped,
}

fn endpoints(seen: mpsc::UnboundedSender<Seen>) -> Endpoints<C> {
    let mut e = Endpoints::new();
    e.rpc(
        "t",
        "inc",
        |kw: X| async move { Ok::<_, BoxError>(kw.x + 1) },
    );
    e.rpc("t", "inc_later", |kw: X| async move {
        tokio::task::yield_now().await;
        Ok::<_, BoxError>(kw.x + 1)
    });
    e.rpc("t", "hang", move |_: X| {
        let seen = seen.clone();
        async move {
            struct OnDrop(mpsc::UnboundedSender<Seen>);
            impl Drop for OnDrop {
                fn drop(&mut self) {
                    let _ = self.0.send(Seen::Dropped);
                }
            }
            let _ = seen.send(Seen::Started);
            let _guard = OnDrop(seen);
            std::future::pending::<()>().await;
            Ok::<_, BoxError>(0i64)
        }
    });
    e
}

/// A client connected with `connect_tcp` (its stream split without a
/// lock) to a server accepting with `accept` (a generic transport).
async fn pair() -> (Channel<C>, Channel<C>, mpsc::UnboundedReceiver<Seen>) {
    let (seen_tx, seen) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Peer::new("server", C::new()).endpoints(endpoints(seen_tx));
    let client = Peer::new("client", C::new());
    let serve = async {
        let (tcp, _) = listener.accept().await.unwrap();
        tcp.set_nodelay(true).unwrap();
        server.accept(tcp).await.unwrap()
    };
    let (served, chan) = tokio::join!(serve, client.connect_tcp(addr));
    (chan.unwrap(), served, seen)
}

/// 64 callers, one channel, calls answered at once and after a task hop:
/// every call gets its own answer, once, and no context is left open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rpcs_each_get_their_own_answer_once() {
    const CALLERS: i64 = 64;
    const CALLS: i64 = 50;
    let (client, server, _seen) = pair().await;
    let callers: Vec<_> = (0..CALLERS)
        .map(|c| {
            let chan = client.clone();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for i in 0..CALLS {
                    let x = i * CALLERS + c;
                    let func = if i % 2 == 0 { "inc" } else { "inc_later" };
                    let r: i64 = chan.rpc("t", func, &X { x }).await.unwrap();
                    answers.push((x, r));
                }
                answers
            })
        })
        .collect();
    let mut xs = HashSet::new();
    for caller in callers {
        for (x, r) in caller.await.unwrap() {
            assert_eq!(r, x + 1, "the answer to {x} is its own");
            assert!(xs.insert(x), "{x} answered once");
        }
    }
    assert_eq!(xs.len() as i64, CALLERS * CALLS);
    // the caller closes its context before `rpc` returns
    assert_eq!(client.open_contexts(), 0, "client");
    // the server closes each right after queueing its `Return`
    until_no_context_is_open(&client, &server).await;
}

/// Waits, bounded, until neither end has a context open.
async fn until_no_context_is_open(a: &Channel<C>, b: &Channel<C>) {
    let settled = async {
        while a.open_contexts() + b.open_contexts() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), settled)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "contexts left open: client {}, server {}",
                a.open_contexts(),
                b.open_contexts()
            )
        });
}

/// A call whose caller is dropped cancels the remote task, and leaves no
/// entry behind on either end; the channel goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_rpc_leaves_no_entry_behind() {
    let (client, server, mut seen) = pair().await;
    let chan = client.clone();
    let call = tokio::spawn(async move { chan.rpc::<_, i64>("t", "hang", &X { x: 0 }).await });
    assert_eq!(seen.recv().await, Some(Seen::Started));
    assert_eq!(client.open_contexts(), 1);
    call.abort(); // the caller gives up: its context is dropped
    assert!(call.await.unwrap_err().is_cancelled());
    assert_eq!(
        seen.recv().await,
        Some(Seen::Dropped),
        "the remote task is cancelled"
    );
    until_no_context_is_open(&client, &server).await;
    let r: i64 = client.rpc("t", "inc", &X { x: 41 }).await.unwrap();
    assert_eq!(r, 42);
    assert_eq!(client.open_contexts() + server.open_contexts(), 0);
}
