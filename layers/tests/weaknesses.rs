//! tractor's weak spots (spec §5.1, §5.4, §7.3, §8.4, §8.5, §9, §13), one
//! named test each, against a hand-driven raw peer: what tractor does, and
//! what scipp does instead.
//!
//! Three more live with the scenarios they extend:
//! - §5.1 `Error` without `cid`: `handshake.rs::weakness_s5_1_an_error_without_a_cid_reaches_the_channel_owner`
//! - §7.3 three-hop relay: `dialogs.rs::*::weakness_s7_3_an_error_relayed_over_three_hops_keeps_its_origin`
//! - §8.4 MTE received by the parent: `dialogs.rs::*::weakness_s8_4_parent_side_mte_under_each_policy`

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use scipp_codecs::msg::{self, Aid, Cid, FuncType, Msg, Uid};
use scipp_codecs::{msgpack::MsgpackCodec, Codec};
use scipp_layers::context::ContextError;
use scipp_layers::framing::{FrameCodec, FramingLayer};
use scipp_layers::peer::{Channel, Config, Peer};
use scipp_layers::route::Overrun;
use scipp_layers::{examples, BoxError};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio_util::codec::Framed;
use tower::Layer;

type C = MsgpackCodec;
const LIMIT: Duration = Duration::from_secs(10);

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f).await.expect("timed out")
}

/// The far end of a channel, driven frame by frame.
struct Raw {
    io: Framed<DuplexStream, FrameCodec>,
    uid: Uid,
}

impl Raw {
    async fn send(&mut self, msg: Msg) {
        self.send_bytes(C::new().encode_to_bytes(&msg).unwrap())
            .await;
    }

    async fn send_bytes(&mut self, body: Bytes) {
        self.io.send(body).await.unwrap();
    }

    async fn recv(&mut self) -> Msg {
        let frame = within(self.io.next()).await.expect("closed").unwrap();
        C::new().decode(frame).unwrap()
    }

    fn start(&self, cid: &str, func: &str, kwargs: &BTreeMap<&str, i64>) -> Msg {
        Msg::from(msg::Start {
            cid: cid.into(),
            ns: examples::NS.into(),
            func: func.into(),
            kwargs: C::new().encode_payload(kwargs).unwrap(),
            uid: self.uid.clone(),
            pld_spec: msg::Start::DEFAULT_PLD_SPEC.into(),
        })
    }

    /// `add(a=2, b=3)` answers 5: the channel is still serving.
    async fn still_served(&mut self, cid: &str) {
        let kwargs = BTreeMap::from([("a", 2), ("b", 3)]);
        self.send(self.start(cid, "add", &kwargs)).await;
        assert!(matches!(self.recv().await, Msg::StartAck(_)));
        match self.recv().await {
            Msg::Return(r) => assert_eq!(C::new().decode_payload::<i64>(&r.pld).unwrap(), 5),
            other => panic!("expected Return(5), got {other:?}"),
        }
    }
}

/// `peer` on one end of an in-memory pipe, a raw peer named `name` on the
/// other, handshake done.
async fn raw_and(peer: &Peer<C>, name: &str) -> (Raw, Channel<C>) {
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let mut raw = Raw {
        io: FramingLayer::new().layer(theirs),
        uid: Uid::new(name, scipp_layers::new_uuid()),
    };
    raw.send(Msg::from(Aid::new(
        raw.uid.name.clone(),
        raw.uid.uuid.clone(),
    )))
    .await;
    let chan = within(peer.accept(ours)).await.unwrap();
    assert!(matches!(raw.recv().await, Msg::Aid(_)));
    (raw, chan)
}

fn server() -> Peer<C> {
    Peer::new("scipp_peer", C::new()).endpoints(examples::scipp_peer())
}

#[tokio::test]
async fn weakness_s5_1_an_oversize_length_claim_ends_only_that_channel() {
    let server = server();
    let (mut hostile, hostile_chan) = raw_and(&server, "hostile").await;
    let (mut other, _other_chan) = raw_and(&server, "other").await;
    // 4 GiB - 1 claimed: tractor would try to read it all
    hostile
        .io
        .get_mut()
        .write_all(&[0xff, 0xff, 0xff, 0xff, 0x80])
        .await
        .unwrap();
    within(hostile_chan.closed()).await;
    assert!(within(hostile.io.next()).await.is_none(), "we hung up");
    other.still_served("c-1").await;
}

#[tokio::test]
async fn weakness_s5_1_an_unknown_msg_type_is_an_orphan_error_not_a_dead_loop() {
    let server = server();
    let (mut raw, chan) = raw_and(&server, "scipp_client").await;
    // a msgpack map, but no tractor message: for a dialog nobody has open,
    // dropped with a warning (tractor's loop dies)
    raw.send_bytes(map_frame(&[("msg_type", "Bogus"), ("cid", "c-x")]))
        .await;
    raw.still_served("c-1").await;
    // without a cid, it goes to the channel's owner
    raw.send_bytes(map_frame(&[("msg_type", "Bogus")])).await;
    let orphan = within(chan.next_orphan()).await.unwrap();
    assert!(format!("{orphan:?}").contains("Bogus"), "{orphan:?}");
    raw.still_served("c-2").await;
}

#[tokio::test]
async fn weakness_s5_1_a_message_without_a_cid_is_an_orphan_error_not_a_dead_loop() {
    let server = server();
    let (mut raw, chan) = raw_and(&server, "scipp_client").await;
    raw.send_bytes(map_frame(&[("msg_type", "Yield"), ("pld", "x")]))
        .await;
    let orphan = within(chan.next_orphan()).await.unwrap();
    assert!(format!("{orphan:?}").contains("cid"), "{orphan:?}");
    raw.still_served("c-1").await;
}

/// A msgpack map of string pairs: a frame body no typed encoder would write.
fn map_frame(pairs: &[(&str, &str)]) -> Bytes {
    let map = rmpv::Value::Map(
        pairs
            .iter()
            .map(|(k, v)| (rmpv::Value::from(*k), rmpv::Value::from(*v)))
            .collect(),
    );
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &map).unwrap();
    Bytes::from(out)
}

/// Our peer on one end, the raw peer (playing the child) on the other.
async fn parent_of_raw_child() -> (Raw, Channel<C>) {
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let client = Peer::new("scipp_client", C::new());
    let mut raw = Raw {
        io: FramingLayer::new().layer(theirs),
        uid: Uid::new("raw_child", "u-child"),
    };
    raw.send(Msg::from(Aid::new("raw_child", "u-child"))).await;
    let chan = within(client.channel(ours)).await.unwrap();
    assert!(matches!(raw.recv().await, Msg::Aid(_)));
    (raw, chan)
}

async fn child_answers_start(raw: &mut Raw) -> Cid {
    let Msg::Start(start) = raw.recv().await else {
        panic!("expected the Start")
    };
    let cid = start.cid.clone();
    raw.send(Msg::StartAck(msg::StartAck {
        cid: cid.clone(),
        functype: FuncType::Context,
    }))
    .await;
    raw.send(Msg::Started(msg::Started {
        cid: cid.clone(),
        pld: C::new().encode_payload(&0).unwrap(),
    }))
    .await;
    cid
}

fn payload<T: serde::Serialize>(v: &T) -> msg::RawPayload {
    C::new().encode_payload(v).unwrap()
}

#[tokio::test]
async fn weakness_s5_4_a_started_or_return_mid_stream_is_refused_not_taken_as_an_item() {
    for late in ["Started", "Return"] {
        let (mut raw, chan) = parent_of_raw_child().await;
        let opening = chan.open_context(examples::NS, "echo").start::<i64>();
        let (answered, cid) = tokio::join!(opening, child_answers_start(&mut raw));
        let (mut ctx, _) = answered.unwrap();
        raw.send(Msg::Yield(msg::Yield {
            cid: cid.clone(),
            pld: payload(&1),
        }))
        .await;
        assert_eq!(within(ctx.recv::<i64>()).await.unwrap(), Some(1));
        // tractor decodes these as stream items (spec §5.4)
        let bad = match late {
            "Started" => Msg::Started(msg::Started {
                cid: cid.clone(),
                pld: payload(&2),
            }),
            _ => Msg::Return(msg::Return {
                cid: cid.clone(),
                pld: payload(&2),
            }),
        };
        raw.send(bad).await;
        match within(ctx.recv::<i64>()).await {
            Err(ContextError::MsgType(e)) => {
                assert_eq!(e.kind().map(|k| k.as_str()), Some(late), "{e}")
            }
            other => panic!("{late} mid-stream: expected a MsgTypeError, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn weakness_s5_4_yields_queued_for_a_parent_that_never_opened_a_stream() {
    let (mut raw, chan) = parent_of_raw_child().await;
    let opening = chan.open_context(examples::NS, "echo").start::<i64>();
    let (answered, cid) = tokio::join!(opening, child_answers_start(&mut raw));
    let (ctx, _) = answered.unwrap();
    for i in 0..3 {
        raw.send(Msg::Yield(msg::Yield {
            cid: cid.clone(),
            pld: payload(&i),
        }))
        .await;
    }
    raw.send(Msg::Stop(msg::Stop { cid: cid.clone() })).await;
    raw.send(Msg::Return(msg::Return {
        cid: cid.clone(),
        pld: payload(&3),
    }))
    .await;
    // tractor's result drain crashes on the queued Yields (AttributeError)
    assert_eq!(within(ctx.result::<i64>()).await.unwrap(), 3);
    assert_eq!(chan.open_contexts(), 0);
}

#[tokio::test]
async fn weakness_s8_5_a_schema_violation_with_a_cid_reaches_its_context() {
    let (mut raw, chan) = parent_of_raw_child().await;
    let opening = chan.open_context(examples::NS, "echo").start::<i64>();
    let (answered, cid) = tokio::join!(opening, child_answers_start(&mut raw));
    let (mut ctx, _) = answered.unwrap();
    // a Yield whose required `pld` is missing: tractor's fatal variant
    // is a missing cid; with one, the error goes to that context
    raw.send_bytes(map_frame(&[("msg_type", "Yield"), ("cid", cid.as_str())]))
        .await;
    match within(ctx.recv::<i64>()).await {
        Err(ContextError::MsgType(e)) => assert!(e.to_string().contains("pld"), "{e}"),
        other => panic!("expected a MsgTypeError, got {other:?}"),
    }
}

/// A child that overruns-reports: 2 slots, tractor's report mode.
fn tiny_reporting_child() -> Peer<C> {
    let mut endpoints = scipp_layers::route::Endpoints::new();
    endpoints.context(
        examples::NS,
        "sleepy",
        scipp_layers::payload::PldSpec::any(),
        |mut ctx: scipp_layers::context::ChildContext<C>, _: BTreeMap<String, i64>| async move {
            ctx.started(&0).await?;
            // never reads its stream; ends when cancelled
            std::future::pending::<()>().await;
            Ok::<_, BoxError>(0)
        },
    );
    #[derive(serde::Deserialize)]
    struct Add {
        a: i64,
        b: i64,
    }
    endpoints.rpc(
        examples::NS,
        "add",
        |kw: Add| async move { Ok(kw.a + kw.b) },
    );
    Peer::new("scipp_child", C::new())
        .endpoints(endpoints)
        .config(Config {
            queue: 2,
            overrun: Overrun::Report,
            ..Config::default()
        })
}

#[tokio::test]
async fn weakness_s9_overrun_reports_of_our_own_sends_are_absorbed_by_cancel() {
    let child = tiny_reporting_child();
    let parent = Peer::new("scipp_parent", C::new());
    let (a, b) = tokio::io::duplex(1 << 16);
    let (served, chan) = tokio::join!(child.accept(a), parent.channel(b));
    let (_served, chan) = (served.unwrap(), chan.unwrap());
    let (mut ctx, _) = within(chan.open_context(examples::NS, "sleepy").start::<i64>())
        .await
        .unwrap();
    // 10 into 2 slots: the child reports each one it drops
    for i in 0..10 {
        ctx.send(&i).await.unwrap();
    }
    // tractor's absorb check compares `sender` with the peer and never
    // matches, so the first report would escape the cancel
    within(ctx.cancel()).await.unwrap();
    let sum: i64 = within(chan.rpc(examples::NS, "add", &BTreeMap::from([("a", 2), ("b", 3)])))
        .await
        .unwrap();
    assert_eq!(sum, 5, "the channel goes on");
}
