//! Cancellation from every side, error relay across several peers, and
//! both overrun modes.

use scipp_codecs::msgpack::MsgpackCodec;
use scipp_layers::context::{ChildContext, ContextError};
use scipp_layers::payload::PldSpec;
use scipp_layers::peer::{Channel, Config, Peer};
use scipp_layers::relay::Raise;
use scipp_layers::route::{Endpoints, Overrun};
use scipp_layers::BoxError;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

type C = MsgpackCodec;
type Kw = BTreeMap<String, i64>;

/// Which transport a test runs over.
#[derive(Debug, Clone, Copy)]
enum Transport {
    InMemory,
    Tcp,
    Unix,
}

async fn connect(t: Transport, server: &Peer<C>, client: &Peer<C>) -> (Channel<C>, Channel<C>) {
    match t {
        Transport::InMemory => {
            let (a, b) = tokio::io::duplex(1 << 16);
            let (s, c) = tokio::join!(server.channel(a), client.channel(b));
            (s.unwrap(), c.unwrap())
        }
        Transport::Tcp => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let connect = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
            let (accepted, connected) = tokio::join!(listener.accept(), connect);
            let (accepted, connected) = (accepted.unwrap(), connected.unwrap());
            accepted.0.set_nodelay(true).unwrap();
            connected.set_nodelay(true).unwrap();
            let (accepted, connected) = (Ok::<_, ()>(accepted), Ok::<_, ()>(connected));
            let (s, c) = tokio::join!(
                server.channel(accepted.unwrap().0),
                client.channel(connected.unwrap())
            );
            (s.unwrap(), c.unwrap())
        }
        Transport::Unix => {
            let (a, b) = tokio::net::UnixStream::pair().unwrap();
            let (s, c) = tokio::join!(server.channel(a), client.channel(b));
            (s.unwrap(), c.unwrap())
        }
    }
}

async fn child_self_cancel_reaches_the_parent_as_context_cancelled(t: Transport) {
    let mut e = Endpoints::<C>::new();
    e.context(
        "scipp_peer",
        "self_cancel",
        PldSpec::any(),
        |mut ctx: ChildContext<C>, _: Kw| async move {
            ctx.started(&()).await?;
            ctx.cancel();
            ctx.cancelled().await;
            Ok(())
        },
    );
    let server = Peer::new("scipp_peer", MsgpackCodec::new()).endpoints(e);
    let client = Peer::new("scipp_client", MsgpackCodec::new());
    let (_s, chan) = connect(t, &server, &client).await;
    let (ctx, ()) = chan
        .open_context("scipp_peer", "self_cancel")
        .start()
        .await
        .unwrap();
    let err = ctx.result::<()>().await.unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    let remote = err.remote().unwrap();
    assert_eq!(
        remote.canceller(),
        Some(&server.uid()),
        "the child cancelled itself"
    );
    assert!(
        remote.message().contains("cancelled by itself"),
        "{}",
        remote.message()
    );
}

async fn actor_cancel_cancels_every_task_and_tells_the_owner(t: Transport) {
    let mut e = Endpoints::<C>::new();
    e.context(
        "scipp_peer",
        "sleep_forever",
        PldSpec::any(),
        |mut ctx: ChildContext<C>, _: Kw| async move {
            ctx.started(&()).await?;
            std::future::pending::<()>().await;
            Ok(())
        },
    );
    let server = Peer::new("scipp_peer", MsgpackCodec::new()).endpoints(e);
    let client = Peer::new("scipp_client", MsgpackCodec::new());
    let (served, chan) = connect(t, &server, &client).await;
    let (a, ()) = chan
        .open_context("scipp_peer", "sleep_forever")
        .start()
        .await
        .unwrap();
    let (b, ()) = chan
        .open_context("scipp_peer", "sleep_forever")
        .start()
        .await
        .unwrap();
    chan.cancel_actor().await.unwrap();
    served.cancel_requested().await;
    for ctx in [a, b] {
        let err = ctx.result::<()>().await.unwrap_err();
        assert!(err.is_cancelled(), "{err}");
        assert_eq!(err.remote().unwrap().canceller(), Some(&client.uid()));
    }
}

/// A peer whose `relay` endpoint opens `func` on the next hop and lets its
/// error escape (tractor-more's `relay_chain` scenario).
fn relay_peer(name: &str, next: Arc<Channel<C>>, func: &'static str) -> Peer<C> {
    let mut e = Endpoints::<C>::new();
    e.context(
        "scipp_peer",
        "relay",
        PldSpec::any(),
        move |_ctx: ChildContext<C>, _: Kw| {
            let next = next.clone();
            async move {
                let (ctx, _first): (_, rmpv::Value) =
                    next.open_context("scipp_peer", func).start().await?;
                ctx.result::<()>().await?;
                Ok(())
            }
        },
    );
    Peer::new(name, MsgpackCodec::new()).endpoints(e)
}

async fn weakness_s7_3_an_error_relayed_over_three_hops_keeps_its_origin(t: Transport) {
    let mut e = Endpoints::<C>::new();
    e.context(
        "scipp_peer",
        "raises",
        PldSpec::any(),
        |mut ctx: ChildContext<C>, _: Kw| async move {
            ctx.started("ready").await?;
            Err::<(), BoxError>(Box::new(Raise::new("ValueError", "leaf: boom")))
        },
    );
    let leaf = Peer::new("scipp_leaf", MsgpackCodec::new()).endpoints(e);
    // mid -> leaf
    let mid_client = Peer::new("scipp_mid", MsgpackCodec::new());
    let (_l, mid_to_leaf) = connect(t, &leaf, &mid_client).await;
    let mid = relay_peer("scipp_mid", Arc::new(mid_to_leaf), "raises");
    // peer -> mid
    let peer_client = Peer::new("scipp_peer", MsgpackCodec::new());
    let (_m, peer_to_mid) = connect(t, &mid, &peer_client).await;
    let peer = relay_peer("scipp_peer", Arc::new(peer_to_mid), "relay");
    // client -> peer
    let client = Peer::new("scipp_client", MsgpackCodec::new());
    let (_p, chan) = connect(t, &peer, &client).await;

    let err = chan
        .open_context("scipp_peer", "relay")
        .start::<()>()
        .await
        .unwrap_err();
    let remote = err.remote().expect("a remote error");
    // tractor loses these from the third hop on; we keep them
    assert_eq!(remote.src_uid(), &leaf.uid());
    assert_eq!(remote.src_type(), "ValueError");
    assert_eq!(remote.boxed_type(), "RemoteActorError");
    let path: Vec<&str> = remote
        .relay_path()
        .iter()
        .map(|u| u.name.as_str())
        .collect();
    assert_eq!(path, ["scipp_leaf", "scipp_mid", "scipp_peer"]);
    assert!(
        remote.traceback().contains("leaf: boom"),
        "{}",
        remote.traceback()
    );
    let shown = err.to_string();
    assert!(shown.contains("|_src_type: 'ValueError'"), "{shown}");
    assert!(
        shown.contains("scipp_leaf -> scipp_mid -> scipp_peer"),
        "{shown}"
    );
}

/// `stream_n`: started(n), n Yields back to back, close, return n.
fn stream_n() -> Endpoints<C> {
    let mut e = Endpoints::<C>::new();
    e.context(
        "scipp_peer",
        "stream_n",
        PldSpec::of::<i64>(),
        |mut ctx: ChildContext<C>, kw: Kw| async move {
            let n = kw["n"];
            ctx.started(&n).await?;
            for i in 0..n {
                ctx.send(&i).await?;
            }
            ctx.close().await?;
            Ok(n)
        },
    );
    e
}

async fn backpressure_loses_nothing_with_a_tiny_queue(t: Transport) {
    let server = Peer::new("scipp_peer", MsgpackCodec::new()).endpoints(stream_n());
    let config = Config {
        queue: 2,
        ..Config::default()
    };
    let client = Peer::new("scipp_client", MsgpackCodec::new()).config(config);
    let (_s, chan) = connect(t, &server, &client).await;
    let n = 500;
    let (mut ctx, first): (_, i64) = chan
        .open_context("scipp_peer", "stream_n")
        .kwargs(&Kw::from([("n".into(), n)]))
        .start()
        .await
        .unwrap();
    assert_eq!(first, n);
    let mut got = Vec::new();
    while let Some(v) = ctx.recv::<i64>().await.unwrap() {
        got.push(v);
    }
    assert_eq!(
        got,
        (0..n).collect::<Vec<_>>(),
        "every item, in order, once"
    );
    assert_eq!(ctx.result::<i64>().await.unwrap(), n);
}

async fn report_mode_drops_and_reports_each_overrun_like_tractor(t: Transport) {
    // The child streams 10 Yields into a parent queue of 4 that is not being
    // read; it counts the StreamOverrun reports, signals, then waits for the
    // parent to drain before closing and returning the count.
    let (counted_tx, counted) = oneshot::channel::<usize>();
    let (drained, drained_rx) = oneshot::channel::<()>();
    let (go, go_rx) = oneshot::channel::<()>();
    let signals = Arc::new(Mutex::new(Some((counted_tx, drained_rx, go_rx))));
    let mut e = Endpoints::<C>::new();
    e.context(
        "scipp_peer",
        "flood",
        PldSpec::of::<i64>(),
        move |mut ctx: ChildContext<C>, _: Kw| {
            let signals = signals.clone();
            async move {
                let (counted_tx, drained_rx, go_rx) =
                    signals.lock().unwrap().take().expect("called once");
                ctx.started(&0).await?;
                go_rx.await.unwrap(); // the parent has consumed Started: its queue is empty
                for i in 0..10 {
                    ctx.send(&i).await?;
                }
                let mut reports = 0;
                while reports < 6 {
                    match ctx.recv::<i64>().await {
                        Err(ContextError::Remote(r)) if r.is_overrun() => {
                            assert_eq!(
                                r.wire().sender.as_ref().map(|u| u.name.as_str()),
                                Some("scipp_peer")
                            );
                            reports += 1;
                        }
                        other => panic!("expected a StreamOverrun report, got {other:?}"),
                    }
                }
                counted_tx.send(reports).unwrap();
                drained_rx.await.unwrap();
                ctx.close().await?;
                Ok(reports as i64)
            }
        },
    );
    let server = Peer::new("scipp_peer", MsgpackCodec::new()).endpoints(e);
    let config = Config {
        queue: 4,
        overrun: Overrun::Report,
        ..Config::default()
    };
    let client = Peer::new("scipp_client", MsgpackCodec::new()).config(config);
    let (_s, chan) = connect(t, &server, &client).await;
    let (mut ctx, _): (_, i64) = chan
        .open_context("scipp_peer", "flood")
        .spec(PldSpec::of::<i64>())
        .start()
        .await
        .unwrap();
    go.send(()).unwrap();
    assert_eq!(counted.await.unwrap(), 6, "one report per dropped message");
    let mut kept = Vec::new();
    for _ in 0..4 {
        kept.push(ctx.recv::<i64>().await.unwrap().unwrap());
    }
    assert_eq!(kept, vec![0, 1, 2, 3], "the first four, in order");
    drained.send(()).unwrap();
    assert_eq!(ctx.result::<i64>().await.unwrap(), 6);
}

use scipp_layers::context::OnInvalid;

/// `bad_then_good`: started(0), Yield 1, "bad", 2, Stop; then reports
/// whether an Error came back from the parent (1) or not (0).
fn bad_then_good() -> Endpoints<C> {
    let mut e = Endpoints::<C>::new();
    e.context(
        "scipp_peer",
        "bad_then_good",
        PldSpec::of::<i64>(),
        |mut ctx: ChildContext<C>, kw: Kw| async move {
            ctx.started(&0).await?;
            ctx.send(&1).await?;
            ctx.send("bad").await?;
            ctx.send(&2).await?;
            ctx.close().await?;
            if kw.get("expect_relay") == Some(&1) {
                match ctx.recv::<i64>().await {
                    Err(ContextError::Remote(r)) if r.boxed_type() == "MsgTypeError" => {
                        return Ok(1)
                    }
                    other => {
                        return Err(format!("expected a relayed MsgTypeError, got {other:?}").into())
                    }
                }
            }
            Ok(0)
        },
    );
    e.context(
        "scipp_peer",
        "echo_with_policy",
        PldSpec::of::<i64>(),
        |mut ctx: ChildContext<C>, kw: Kw| async move {
            ctx.on_invalid(match kw["policy"] {
                0 => OnInvalid::FailFast,
                1 => OnInvalid::IgnoreAndWarn,
                _ => OnInvalid::RelayToSender,
            });
            ctx.started(&0).await?;
            let mut n = 0;
            while let Some(v) = ctx.recv::<i64>().await? {
                ctx.send(&v).await?;
                n += 1;
            }
            Ok(n)
        },
    );
    e
}

async fn policy_pair(t: Transport) -> (Channel<C>, Channel<C>) {
    let server = Peer::new("scipp_peer", MsgpackCodec::new()).endpoints(bad_then_good());
    let client = Peer::new("scipp_client", MsgpackCodec::new());
    connect(t, &server, &client).await
}

async fn parent_receiving_a_bad_yield(
    t: Transport,
    policy: OnInvalid,
) -> (Vec<i64>, Result<i64, ContextError>) {
    let (_s, chan) = policy_pair(t).await;
    let expect_relay = i64::from(policy == OnInvalid::RelayToSender);
    let (mut ctx, _): (_, i64) = chan
        .open_context("scipp_peer", "bad_then_good")
        .kwargs(&Kw::from([("expect_relay".into(), expect_relay)]))
        .spec(PldSpec::of::<i64>())
        .on_invalid(policy)
        .start()
        .await
        .unwrap();
    let mut got = Vec::new();
    loop {
        match ctx.recv::<i64>().await {
            Ok(Some(v)) => got.push(v),
            Ok(None) => break,
            Err(e) => return (got, Err(e)),
        }
    }
    (got, ctx.result::<i64>().await)
}

async fn weakness_s8_4_parent_side_mte_under_each_policy(t: Transport) {
    let (got, err) = parent_receiving_a_bad_yield(t, OnInvalid::FailFast).await;
    assert_eq!(got, vec![1]);
    match err {
        Err(ContextError::MsgType(e)) => assert_eq!(e.value(), Some("'bad'")),
        other => panic!("{other:?}"),
    }
    let (got, result) = parent_receiving_a_bad_yield(t, OnInvalid::IgnoreAndWarn).await;
    assert_eq!((got, result.unwrap()), (vec![1, 2], 0));
    let (got, result) = parent_receiving_a_bad_yield(t, OnInvalid::RelayToSender).await;
    assert_eq!(
        (got, result.unwrap()),
        (vec![1, 2], 1),
        "the child learned of its bad Yield"
    );
}

async fn child_receiving_a_bad_yield(
    t: Transport,
    policy: i64,
) -> (Vec<i64>, Result<i64, ContextError>) {
    let (_s, chan) = policy_pair(t).await;
    let (mut ctx, _): (_, i64) = chan
        .open_context("scipp_peer", "echo_with_policy")
        .kwargs(&Kw::from([("policy".into(), policy)]))
        .spec(PldSpec::of::<i64>())
        .start()
        .await
        .unwrap();
    let mut got = Vec::new();
    for v in [rmpv::Value::from(1), "bad".into(), 2.into()] {
        ctx.send(&v).await.unwrap();
        if v.is_str() && policy != 2 {
            continue; // nothing comes back for it
        }
        match ctx.recv::<i64>().await {
            Ok(Some(x)) => got.push(x),
            Ok(None) => return (got, ctx.result::<i64>().await),
            Err(e) => return (got, Err(e)),
        }
    }
    ctx.close().await.unwrap();
    (got, ctx.result::<i64>().await)
}

async fn child_side_mte_under_each_policy(t: Transport) {
    // fail-fast: the child's task dies of it; Stop, then its Error
    let (got, result) = child_receiving_a_bad_yield(t, 0).await;
    assert_eq!(got, vec![1]);
    assert_eq!(
        result
            .unwrap_err()
            .remote()
            .map(|r| r.boxed_type().to_owned())
            .as_deref(),
        Some("MsgTypeError")
    );
    // ignore-and-warn: the stream goes on
    let (got, result) = child_receiving_a_bad_yield(t, 1).await;
    assert_eq!((got, result.unwrap()), (vec![1, 2], 2));
    // relay-to-sender: the parent hears of its bad Yield, naming it
    let (got, result) = child_receiving_a_bad_yield(t, 2).await;
    assert_eq!(got, vec![1]);
    let err = result.unwrap_err();
    let remote = err.remote().expect("remote");
    assert_eq!(remote.boxed_type(), "MsgTypeError");
    let bad = remote.wire().bad_msg.as_deref().expect("_bad_msg");
    assert_eq!(
        scipp_codecs::Codec::decode_payload::<String>(&MsgpackCodec::new(), bad.pld().unwrap())
            .unwrap(),
        "bad"
    );
}

/// Runs every scenario over one transport, in a module of its own.
macro_rules! over {
    ($transport:ident, $which:ident: $($name:ident),* $(,)?) => {
        mod $transport {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Transport::$which).await;
                }
            )*
        }
    };
}

macro_rules! every_scenario_over {
    ($($transport:ident => $which:ident),*) => {
        $( over!($transport, $which: child_self_cancel_reaches_the_parent_as_context_cancelled, actor_cancel_cancels_every_task_and_tells_the_owner, weakness_s7_3_an_error_relayed_over_three_hops_keeps_its_origin, backpressure_loses_nothing_with_a_tiny_queue, report_mode_drops_and_reports_each_overrun_like_tractor, weakness_s8_4_parent_side_mte_under_each_policy, child_side_mte_under_each_policy); )*
    };
}

every_scenario_over!(in_memory => InMemory, tcp => Tcp, unix_socket => Unix);
