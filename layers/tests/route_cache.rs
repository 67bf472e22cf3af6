//! The receive path remembers the last context it delivered to (the
//! router's queue, the dialog check of a `Yield`): a stream's messages all
//! name one cid. That memory must never outlive the context: a message
//! for a closed context reaches nobody, and a cid used again by a new
//! context reaches the new one only.

use futures_util::{SinkExt, StreamExt};
use scipp_codecs::msg::{self, Aid, Cid, Msg, Uid};
use scipp_codecs::{msgpack::MsgpackCodec, Codec};
use scipp_layers::examples;
use scipp_layers::framing::{FrameCodec, FramingLayer};
use scipp_layers::peer::{Channel, Peer};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::DuplexStream;
use tokio_util::codec::Framed;
use tower::Layer;

type C = MsgpackCodec;

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("timed out")
}

/// The parent, driven frame by frame.
struct Raw {
    io: Framed<DuplexStream, FrameCodec>,
    uid: Uid,
}

impl Raw {
    async fn send(&mut self, msg: Msg) {
        self.io
            .send(C::new().encode_to_bytes(&msg).unwrap())
            .await
            .unwrap();
    }

    async fn recv(&mut self) -> Msg {
        let frame = within(self.io.next()).await.expect("closed").unwrap();
        C::new().decode(frame).unwrap()
    }

    async fn recv_int(&mut self, kind: &str) -> i64 {
        let msg = self.recv().await;
        assert_eq!(msg.kind().as_str(), kind, "{msg:?}");
        C::new().decode_payload(msg.pld().unwrap()).unwrap()
    }

    /// `echo_int` opened on `cid`, answered with `StartAck` and `Started`.
    async fn open(&mut self, cid: &Cid) {
        self.send(Msg::from(msg::Start {
            cid: cid.clone(),
            ns: examples::NS.into(),
            func: "echo_int".into(),
            kwargs: C::new()
                .encode_payload(&BTreeMap::<&str, i64>::new())
                .unwrap(),
            uid: self.uid.clone(),
            pld_spec: msg::Start::DEFAULT_PLD_SPEC.into(),
        }))
        .await;
        assert!(matches!(self.recv().await, Msg::StartAck(_)));
        assert_eq!(self.recv_int("Started").await, 0);
    }

    async fn yield_int(&mut self, cid: &Cid, v: i64) {
        self.send(Msg::Yield(msg::Yield {
            cid: cid.clone(),
            pld: C::new().encode_payload(&v).unwrap(),
        }))
        .await;
    }
}

async fn served_by_raw_parent() -> (Raw, Channel<C>) {
    let server = Peer::new("scipp_peer", C::new()).endpoints(examples::scipp_peer());
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let mut raw = Raw {
        io: FramingLayer::new().layer(theirs),
        uid: Uid::new("raw_parent", "u-parent"),
    };
    raw.send(Msg::from(Aid::new("raw_parent", "u-parent")))
        .await;
    let chan = within(server.accept(ours)).await.unwrap();
    assert!(matches!(raw.recv().await, Msg::Aid(_)));
    (raw, chan)
}

/// Waits (bounded) until the served side has closed every context.
async fn all_closed(chan: &Channel<C>) {
    within(async {
        while chan.open_contexts() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_closed_context_gets_nothing_more_and_a_reused_cid_reaches_only_the_new_one() {
    let (mut raw, chan) = served_by_raw_parent().await;
    let cid = Cid::from("c-reused");
    raw.open(&cid).await;
    for v in 1..=3 {
        raw.yield_int(&cid, v).await;
        assert_eq!(raw.recv_int("Yield").await, v, "echoed");
    }
    raw.send(Msg::Stop(msg::Stop { cid: cid.clone() })).await;
    assert_eq!(raw.recv_int("Return").await, 3, "three items echoed");
    all_closed(&chan).await;

    // late: the context this cid was cached for is closed
    raw.yield_int(&cid, 99).await;
    raw.yield_int(&cid, 98).await;

    // the same cid, a new context: it sees its own items, none of the late
    raw.open(&cid).await;
    raw.yield_int(&cid, 7).await;
    assert_eq!(raw.recv_int("Yield").await, 7, "the new context's own item");
    raw.send(Msg::Stop(msg::Stop { cid: cid.clone() })).await;
    assert_eq!(
        raw.recv_int("Return").await,
        1,
        "exactly one item reached the new context"
    );
    all_closed(&chan).await;
}
