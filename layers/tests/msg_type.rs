//! The dialog state machine (spec §5.7), one scenario per test: which
//! messages pass, which become `MsgTypeError`s, in both directions.

use scipp_codecs::msg::*;
use scipp_codecs::{msgpack::MsgpackCodec, Codec};
use scipp_layers::msg_type::{EnforceMsgTypeLayer, Side};
use scipp_layers::payload::Problem;
use scipp_layers::{BoxError, Inbound, MsgTypeError};
use tower::{Layer, Service, ServiceExt};

#[derive(Clone, Copy)]
enum Dir {
    Rx,
    Tx,
}
use Dir::{Rx, Tx};

fn pld(v: i64) -> RawPayload {
    MsgpackCodec::new().encode_payload(&v).unwrap()
}

fn c() -> Cid {
    Cid::from("c1")
}

fn start() -> Msg {
    Msg::from(Start {
        cid: c(),
        ns: "scipp_peer".into(),
        func: "echo".into(),
        kwargs: MsgpackCodec::new()
            .encode_payload(&std::collections::BTreeMap::<String, i64>::new())
            .unwrap(),
        uid: Uid::new("a", "b"),
        pld_spec: "typing.Any".into(),
    })
}
fn ack(functype: FuncType) -> Msg {
    Msg::StartAck(StartAck { cid: c(), functype })
}
fn started() -> Msg {
    Msg::Started(Started {
        cid: c(),
        pld: pld(0),
    })
}
fn yld(v: i64) -> Msg {
    Msg::Yield(Yield {
        cid: c(),
        pld: pld(v),
    })
}
fn stop() -> Msg {
    Msg::Stop(Stop { cid: c() })
}
fn ret() -> Msg {
    Msg::Return(Return {
        cid: c(),
        pld: pld(1),
    })
}
fn err() -> Msg {
    let mut e = Error::new(Uid::new("a", "b"), "ValueError");
    e.cid = Some(c());
    e.into()
}

/// Runs the sequence through one layer; returns, per step, `None` if it
/// passed or the error's state text if it was refused.
async fn run(layer: &EnforceMsgTypeLayer, steps: &[(Dir, Msg)]) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for (dir, msg) in steps {
        let verdict = match dir {
            Rx => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let app = tower::service_fn(move |i: Inbound| {
                    let tx = tx.clone();
                    async move { tx.send(i).map_err(|_| BoxError::from("gone")) }
                });
                layer
                    .layer(app)
                    .oneshot(Inbound::Msg(msg.clone()))
                    .await
                    .unwrap();
                match rx.recv().await.unwrap() {
                    Inbound::Msg(_) => None,
                    Inbound::Invalid(e) => {
                        assert_eq!(e.problem(), Problem::OutOfState);
                        assert_eq!(
                            e.bad_msg(),
                            Some(msg),
                            "the bad message travels with the error"
                        );
                        Some(e.detail().to_owned())
                    }
                }
            }
            Tx => {
                let sink = tower::service_fn(|_: Msg| async { Ok::<_, BoxError>(()) });
                match layer.layer(sink).oneshot(msg.clone()).await {
                    Ok(()) => None,
                    Err(e) => {
                        let e = e.downcast::<MsgTypeError>().unwrap();
                        assert!(e.is_send_side());
                        Some(e.detail().to_owned())
                    }
                }
            }
        };
        out.push(verdict);
    }
    out
}

fn refused(v: &[Option<String>]) -> Vec<usize> {
    v.iter()
        .enumerate()
        .filter(|(_, x)| x.is_some())
        .map(|(i, _)| i)
        .collect()
}

#[tokio::test]
async fn a_clean_echo_dialog_passes_on_both_sides() {
    let parent = EnforceMsgTypeLayer::new();
    let steps = [
        (Tx, start()),
        (Rx, ack(FuncType::Context)),
        (Rx, started()),
        (Tx, yld(1)),
        (Rx, yld(1)),
        (Tx, stop()),
        (Rx, ret()),
    ];
    assert!(refused(&run(&parent, &steps).await).is_empty());
    assert_eq!(parent.live_dialogs(), 0, "the Return ended the dialog");

    let child = EnforceMsgTypeLayer::new();
    let steps = [
        (Rx, start()),
        (Tx, ack(FuncType::Context)),
        (Tx, started()),
        (Rx, yld(1)),
        (Tx, yld(1)),
        (Rx, stop()),
        (Tx, ret()),
    ];
    assert!(refused(&run(&child, &steps).await).is_empty());
    assert_eq!(child.live_dialogs(), 0);
}

#[tokio::test]
async fn yield_before_started_is_refused_and_the_dialog_goes_on() {
    let parent = EnforceMsgTypeLayer::new();
    let steps = [
        (Tx, start()),
        (Rx, ack(FuncType::Context)),
        (Rx, yld(1)),
        (Rx, started()),
        (Rx, yld(2)),
    ];
    let v = run(&parent, &steps).await;
    assert_eq!(refused(&v), vec![2]);
    assert!(
        v[2].as_deref().unwrap().contains("awaiting Started"),
        "{v:?}"
    );
}

#[tokio::test]
async fn return_mid_stream_is_refused_until_a_stop() {
    let parent = EnforceMsgTypeLayer::new();
    let steps = [
        (Tx, start()),
        (Rx, ack(FuncType::Context)),
        (Rx, started()),
        (Rx, yld(1)),
        (Rx, ret()),     // the child still streams: illegal
        (Rx, started()), // a second Started: illegal
        (Tx, stop()),
        (Rx, ret()), // after our Stop: the end
    ];
    assert_eq!(refused(&run(&parent, &steps).await), vec![4, 5]);
    assert_eq!(parent.side(&c()), None);
}

#[tokio::test]
async fn a_return_without_a_stream_is_legal() {
    let parent = EnforceMsgTypeLayer::new();
    let steps = [
        (Tx, start()),
        (Rx, ack(FuncType::Context)),
        (Rx, started()),
        (Rx, ret()),
    ];
    assert!(refused(&run(&parent, &steps).await).is_empty());
}

#[tokio::test]
async fn the_child_refuses_a_stream_before_its_started_and_never_sends_one() {
    let child = EnforceMsgTypeLayer::new();
    let steps = [
        (Rx, start()),
        (Tx, ack(FuncType::Context)),
        (Rx, yld(1)), // the parent cannot stream yet
        (Tx, yld(1)), // nor can we
        (Tx, started()),
        (Tx, started()), // once only
        (Rx, ret()),     // a parent never sends Return
        (Rx, err()),     // an Error is always legal
    ];
    assert_eq!(refused(&run(&child, &steps).await), vec![2, 3, 5, 6]);
    assert_eq!(child.side(&c()), Some(Side::Child));
}

#[tokio::test]
async fn rpc_and_async_generator_dialogs() {
    let rpc = EnforceMsgTypeLayer::new();
    let v = run(
        &rpc,
        &[
            (Tx, start()),
            (Rx, ack(FuncType::AsyncFunc)),
            (Rx, yld(1)),
            (Rx, ret()),
        ],
    )
    .await;
    assert_eq!(refused(&v), vec![2]);
    let gen = EnforceMsgTypeLayer::new();
    let v = run(
        &gen,
        &[
            (Tx, start()),
            (Rx, ack(FuncType::AsyncGen)),
            (Rx, yld(0)),
            (Rx, yld(1)),
            (Rx, stop()),
        ],
    )
    .await;
    assert!(refused(&v).is_empty());
    let child_gen = EnforceMsgTypeLayer::new();
    let v = run(
        &child_gen,
        &[
            (Rx, start()),
            (Tx, ack(FuncType::AsyncGen)),
            (Tx, yld(0)),
            (Tx, stop()),
        ],
    )
    .await;
    assert!(refused(&v).is_empty(), "{v:?}");
}

#[tokio::test]
async fn handshake_order_is_enforced() {
    let layer = EnforceMsgTypeLayer::expecting_handshake();
    let aid = Msg::from(Aid::new("scipp_client", "u1"));
    let v = run(&layer, &[(Rx, start()), (Rx, aid.clone()), (Rx, aid)]).await;
    assert_eq!(
        refused(&v),
        vec![0, 2],
        "Start before the Aid, and a second Aid"
    );
}

#[tokio::test]
async fn messages_of_unknown_or_finished_dialogs_pass_to_the_router() {
    let layer = EnforceMsgTypeLayer::new();
    let v = run(
        &layer,
        &[(Rx, yld(1)), (Rx, stop()), (Rx, ret()), (Rx, err())],
    )
    .await;
    assert!(refused(&v).is_empty());
}

/// One receive service kept across a dialog's end and a new dialog on the
/// same cid: the receive side remembers its last legal `Yield` (to skip
/// the table's lock on a stream), and that memory must not outlive the
/// dialog it was about.
#[tokio::test]
async fn a_reused_cid_is_checked_afresh_by_a_receive_side_that_saw_its_stream() {
    let child = EnforceMsgTypeLayer::new();
    let (items_tx, mut items) = tokio::sync::mpsc::unbounded_channel();
    let app = tower::service_fn(move |i: Inbound| {
        let tx = items_tx.clone();
        async move { tx.send(i).map_err(|_| BoxError::from("gone")) }
    });
    let mut rx = child.layer(app);
    let mut receive = async |msg: Msg| {
        rx.ready()
            .await
            .unwrap()
            .call(Inbound::Msg(msg))
            .await
            .unwrap();
        match items.recv().await.unwrap() {
            Inbound::Msg(_) => None,
            Inbound::Invalid(e) => Some(e.detail().to_owned()),
        }
    };
    let send = |msg: Msg| {
        let sink = tower::service_fn(|_: Msg| async { Ok::<_, BoxError>(()) });
        child.layer(sink).oneshot(msg)
    };
    assert_eq!(receive(start()).await, None);
    send(ack(FuncType::Context)).await.unwrap();
    send(started()).await.unwrap();
    for v in 0..3 {
        assert_eq!(receive(yld(v)).await, None, "a stream of Yields passes");
    }
    send(ret()).await.unwrap();
    assert_eq!(child.live_dialogs(), 0);
    // the same cid again: before our Started, a Yield is out of state,
    // however many of that cid's Yields passed in the dialog before
    assert_eq!(receive(start()).await, None);
    let refused = receive(yld(9)).await;
    assert!(
        refused.as_deref().is_some_and(|d| d.contains("Started")),
        "{refused:?}"
    );
    send(started()).await.unwrap();
    assert_eq!(receive(yld(10)).await, None);
}
