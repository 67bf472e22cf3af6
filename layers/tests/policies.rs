//! The receive-side policies, driven end to end: real frames through the
//! codec, msg-type and payload layers, then each policy; what the user
//! receives (and what the peer gets back) is asserted exactly.

use bytes::Bytes;
use futures_util::StreamExt;
use scipp_codecs::msg::*;
use scipp_codecs::{msgpack::MsgpackCodec, Codec};
use scipp_layers::channel::{self, ChannelError, Writer};
use scipp_layers::codec::CodecLayer;
use scipp_layers::framing::FramingLayer;
use scipp_layers::msg_type::EnforceMsgTypeLayer;
use scipp_layers::payload::{PayloadSpecs, PldSpec, Problem, ValidatePayloadLayer};
use scipp_layers::policy::{self, Action};
use scipp_layers::{BoxError, Inbound, MsgTypeError};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
#[path = "../../tests/support/transcripts.rs"]
mod support;
use support::unhex;

const CID: &str = "f3ae7fac-3352-4cf5-b26f-b29198be782c";
const OTHER: &str = "0b7a3c1e-0000-4000-8000-000000000002";

fn codec() -> MsgpackCodec {
    MsgpackCodec::new()
}

fn client() -> Uid {
    Uid::new("scipp_client", "e6c23380-01c1-472d-a24d-7e06a1f1cbe5")
}

fn me() -> Uid {
    Uid::new("scipp_peer", "659aea7d-8870-4c70-8c64-345c54084a49")
}

fn frame(msg: &Msg) -> Bytes {
    codec().encode_to_bytes(msg).unwrap()
}

fn yield_of<T: serde::Serialize>(cid: &str, v: T) -> Msg {
    Msg::Yield(Yield {
        cid: Cid::from(cid),
        pld: codec().encode_payload(&v).unwrap(),
    })
}

fn start(cid: &str) -> Msg {
    Msg::from(Start {
        cid: Cid::from(cid),
        ns: "scipp_peer".into(),
        func: "echo_int".into(),
        kwargs: codec()
            .encode_payload(&std::collections::BTreeMap::<String, i64>::new())
            .unwrap(),
        uid: client(),
        pld_spec: Start::DEFAULT_PLD_SPEC.into(),
    })
}

fn started(cid: &str, v: i64) -> Msg {
    Msg::Started(Started {
        cid: Cid::from(cid),
        pld: codec().encode_payload(&v).unwrap(),
    })
}

/// A raw msgpack Yield without pld, built byte by byte.
fn yield_without_pld(cid: &str) -> Bytes {
    let mut b = vec![0x82, 0xa8];
    b.extend_from_slice(b"msg_type");
    b.push(0xa5);
    b.extend_from_slice(b"Yield");
    b.push(0xa3);
    b.extend_from_slice(b"cid");
    b.push(0xd9);
    b.push(cid.len() as u8);
    b.extend_from_slice(cid.as_bytes());
    Bytes::from(b)
}

/// What the peer (the parent of two `echo_int` contexts) sends us, the
/// child: good items interleaved with four bad ones, each with a cid.
/// Returns the frames and how many are bad.
fn frames() -> (Vec<Bytes>, usize) {
    let frames = vec![
        frame(&yield_of(CID, 1)),
        frame(&yield_of(OTHER, 100)),
        frame(&yield_of(CID, "not-an-int")), // bad payload
        frame(&yield_of(CID, 2)),
        yield_without_pld(CID), // undecodable (its cid is still read)
        frame(&yield_of(OTHER, 101)),
        frame(&started(CID, 3)), // out of state: a parent never sends Started
        frame(&yield_of(CID, 3)),
        frame(&yield_of(CID, 4.5)), // bad payload
        frame(&yield_of(CID, 4)),
        frame(&Msg::Stop(Stop {
            cid: Cid::from(CID),
        })),
    ];
    (frames, 4)
}

/// The stack under test: codec, msg-type and payload layers (both
/// contexts typed `int`), then `policy`, then a collector.
struct Harness {
    enforce: EnforceMsgTypeLayer,
    specs: PayloadSpecs<MsgpackCodec>,
    got: mpsc::UnboundedReceiver<Inbound>,
    app: tower::util::BoxCloneService<Inbound, (), BoxError>,
}

impl Harness {
    fn new() -> Self {
        let (tx, got) = mpsc::unbounded_channel();
        let app = tower::service_fn(move |item: Inbound| {
            let tx = tx.clone();
            async move { tx.send(item).map_err(|_| BoxError::from("collector gone")) }
        });
        let specs = PayloadSpecs::new(PldSpec::<MsgpackCodec>::of::<i64>());
        Harness {
            enforce: EnforceMsgTypeLayer::new().peer(client()),
            specs,
            got,
            app: tower::util::BoxCloneService::new(app),
        }
    }

    /// The peer opens both contexts and we answer with `Started`, so that
    /// the peer may stream.
    async fn open_both<S>(&self, receive: &mut S)
    where
        S: Service<Bytes, Response = (), Error = BoxError>,
    {
        let sent = tower::service_fn(|_: Msg| async { Ok::<_, BoxError>(()) });
        for cid in [CID, OTHER] {
            receive
                .ready()
                .await
                .unwrap()
                .call(frame(&start(cid)))
                .await
                .unwrap();
            self.enforce
                .layer(sent)
                .oneshot(started(cid, 0))
                .await
                .unwrap();
        }
    }

    fn receive<P>(&self, policy: P) -> impl Service<Bytes, Response = (), Error = BoxError>
    where
        P: Layer<tower::util::BoxCloneService<Inbound, (), BoxError>>,
        P::Service: Service<Inbound, Response = (), Error = BoxError>,
    {
        ServiceBuilder::new()
            .layer(CodecLayer::new(codec()).peer(client()))
            .layer(self.enforce.clone())
            .layer(ValidatePayloadLayer::new(codec(), self.specs.clone()).peer(client()))
            .layer(policy)
            .service(self.app.clone())
    }

    fn drain(&mut self) -> Vec<Inbound> {
        let mut out = Vec::new();
        while let Ok(item) = self.got.try_recv() {
            out.push(item);
        }
        out
    }
}

/// Feeds `frames` one by one, with the policy service built once, the
/// way the read loop does.
async fn feed<S>(svc: &mut S, frames: Vec<Bytes>) -> Result<(), BoxError>
where
    S: Service<Bytes, Response = (), Error = BoxError>,
{
    for f in frames {
        svc.ready().await?.call(f).await?;
    }
    Ok(())
}

fn yields_of(items: &[Inbound], cid: &str) -> Vec<i64> {
    items
        .iter()
        .filter_map(Inbound::as_msg)
        .filter_map(|m| match m {
            Msg::Yield(y) if y.cid.as_str() == cid => {
                Some(codec().decode_payload::<i64>(&y.pld).unwrap())
            }
            _ => None,
        })
        .collect()
}

thread_local! {
    /// The WARN events of this thread's test.
    static WARNED: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A global subscriber that files each WARN event under the thread that
/// emitted it. Global, not `set_default`: tracing caches callsite interest
/// process-wide, and a test running in parallel without a subscriber
/// could otherwise switch the callsite off for this one.
struct Warnings;

impl Warnings {
    fn install() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| tracing::subscriber::set_global_default(Warnings).unwrap());
        WARNED.with(|w| w.borrow_mut().clear());
    }

    fn taken() -> Vec<String> {
        WARNED.with(|w| std::mem::take(&mut *w.borrow_mut()))
    }
}

impl tracing::Subscriber for Warnings {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::WARN {
            struct Msg(String);
            impl tracing::field::Visit for Msg {
                fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                    if f.name() == "message" {
                        self.0 = format!("{v:?}");
                    }
                }
            }
            let mut m = Msg(String::new());
            event.record(&mut m);
            WARNED.with(|w| w.borrow_mut().push(m.0));
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn ignore_and_warn_delivers_every_good_value_once_in_order_and_warns_per_bad_one() {
    Warnings::install();
    let mut h = Harness::new();
    let (frames, bad) = frames();
    let mut svc = h.receive(policy::ignore_and_warn());
    h.open_both(&mut svc).await;
    feed(&mut svc, frames).await.unwrap();

    let items = h.drain();
    assert!(
        items.iter().all(|i| i.as_msg().is_some()),
        "no invalid item reaches the user"
    );
    assert_eq!(yields_of(&items, CID), vec![1, 2, 3, 4]);
    assert_eq!(yields_of(&items, OTHER), vec![100, 101]);
    let kinds: Vec<MsgKind> = items
        .iter()
        .filter_map(Inbound::as_msg)
        .map(Msg::kind)
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == MsgKind::Start).count(), 2);
    assert_eq!(kinds.last(), Some(&MsgKind::Stop));

    let warned = Warnings::taken();
    assert_eq!(
        warned.len(),
        bad,
        "one warning per bad message: {warned:#?}"
    );
    assert!(
        warned[0].contains("value: `'not-an-int'` does not match type-spec: `Yield.pld: int`"),
        "{}",
        warned[0]
    );
    assert!(
        warned[1].contains("field `pld`: required field is missing"),
        "{}",
        warned[1]
    );
    assert!(
        warned[2].contains("unexpected `Started` msg"),
        "{}",
        warned[2]
    );
    assert!(warned[3].contains("value: `4.5`"), "{}", warned[3]);
}

#[tokio::test]
async fn fail_fast_delivers_the_first_error_then_nothing_valid_from_that_context() {
    let mut h = Harness::new();
    let (frames, _) = frames();
    let mut svc = h.receive(policy::fail_fast());
    h.open_both(&mut svc).await;
    feed(&mut svc, frames).await.unwrap();

    let items = h.drain();
    let first_bad = items
        .iter()
        .position(|i| i.as_invalid().is_some())
        .expect("the error arrives");
    let err = items[first_bad].as_invalid().unwrap();
    assert_eq!(err.problem(), Problem::Payload);
    assert_eq!(err.value(), Some("'not-an-int'"));
    assert_eq!(err.src_uid(), Some(&client()));
    let after: Vec<&Inbound> = items[first_bad + 1..]
        .iter()
        .filter(|i| i.cid().map(Cid::as_str) == Some(CID))
        .collect();
    assert!(
        after.is_empty(),
        "nothing of the failed context after its error: {after:?}"
    );
    assert_eq!(
        yields_of(&items, CID),
        vec![1],
        "only what came before the error"
    );
    assert_eq!(
        yields_of(&items, OTHER),
        vec![100, 101],
        "the other context goes on"
    );
    assert_eq!(
        items.iter().filter(|i| i.as_invalid().is_some()).count(),
        1,
        "one error, the first"
    );
}

#[tokio::test]
async fn fail_fast_ends_the_channel_on_an_error_that_belongs_to_no_context() {
    let h = Harness::new();
    let frames = futures_util::stream::iter(vec![Ok(Bytes::from_static(b"\xc1garbage"))]);
    match channel::drive(frames, h.receive(policy::fail_fast())).await {
        Err(ChannelError::Stack(e)) => assert!(e.is::<MsgTypeError>(), "{e}"),
        other => panic!("expected a stack error, got {other:?}"),
    }
}

#[tokio::test]
async fn relay_to_sender_sends_one_tractor_shaped_error_per_bad_message() {
    let mut h = Harness::new();
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let (writer, _task) = Writer::spawn(ours, FramingLayer::new().codec(), 16);
    let send = ServiceBuilder::new()
        .layer(CodecLayer::new(codec()))
        .service(writer);
    let (frames, bad) = frames();
    let bad_yields: Vec<Msg> = [2usize, 8]
        .iter()
        .map(|i| codec().decode(frames[*i].clone()).unwrap())
        .collect();
    let mut svc = h.receive(policy::relay_to_sender(send, me()));
    h.open_both(&mut svc).await;
    feed(&mut svc, frames).await.unwrap();

    let items = h.drain();
    assert!(items.iter().all(|i| i.as_msg().is_some()));
    assert_eq!(yields_of(&items, CID), vec![1, 2, 3, 4]);

    // The recorded tractor Error, for its keys in wire order.
    let file: serde_json::Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../vectors/tractor/mte_c2s.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let recorded = file["frames"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["msg_type"] == "Error")
        .unwrap();
    let recorded_keys = keys_in_order(&unhex(recorded["hex"].as_str().unwrap())[4..]);

    let mut peer = FramingLayer::new().layer(theirs);
    let mut errors = Vec::new();
    for _ in 0..bad {
        let body = peer.next().await.unwrap().unwrap();
        assert_eq!(
            keys_in_order(&body),
            recorded_keys,
            "same keys, same order as tractor's"
        );
        let Msg::Error(err) = codec().decode(body).unwrap() else {
            panic!("not an Error")
        };
        assert_eq!(
            (err.boxed_type_str.as_str(), err.src_type_str.as_str()),
            ("MsgTypeError", "MsgTypeError")
        );
        assert_eq!(err.src_uid, me());
        assert_eq!(err.cid.as_ref().map(Cid::as_str), Some(CID));
        errors.push(err);
    }
    assert_eq!(
        errors[0].bad_msg.as_deref(),
        Some(&bad_yields[0]),
        "_bad_msg is the offending Yield"
    );
    assert!(
        errors[1].bad_msg.is_none() && errors[1].bad_msg_as_dict.is_some(),
        "undecodable: as dict"
    );
    assert_eq!(
        errors[2].bad_msg.as_ref().map(|m| m.kind()),
        Some(MsgKind::Started)
    );
    assert_eq!(errors[3].bad_msg.as_deref(), Some(&bad_yields[1]));
    assert_eq!(
        errors[0].message.as_deref(),
        Some("invalid `Yield` msg payload\n\nvalue: `'not-an-int'` does not match type-spec: `Yield.pld: int`")
    );
    // and they unpack back into MsgTypeErrors
    let back = MsgTypeError::from_wire(&errors[0]).unwrap();
    assert_eq!(
        (back.spec(), back.value()),
        (Some("int"), Some("'not-an-int'"))
    );
}

fn keys_in_order(body: &[u8]) -> Vec<String> {
    let v = rmpv::decode::read_value(&mut &body[..]).unwrap();
    v.as_map()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_str().unwrap().to_owned())
        .collect()
}

/// A user layer: counts what passes through it.
#[derive(Clone)]
struct CountLayer(Arc<Mutex<usize>>);

impl<S> Layer<S> for CountLayer {
    type Service = Count<S>;
    fn layer(&self, inner: S) -> Count<S> {
        Count(inner, self.0.clone())
    }
}

#[derive(Clone)]
struct Count<S>(S, Arc<Mutex<usize>>);

impl<S: Service<Inbound>> Service<Inbound> for Count<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;
    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }
    fn call(&mut self, item: Inbound) -> S::Future {
        *self.1.lock().unwrap() += 1;
        self.0.call(item)
    }
}

#[tokio::test]
async fn a_user_layer_and_a_user_policy_slot_into_the_stack() {
    let mut h = Harness::new();
    let counted = Arc::new(Mutex::new(0));
    let seen_by_policy = Arc::new(Mutex::new(Vec::new()));
    let log = seen_by_policy.clone();
    let policy = policy::from_fn(move |e: &MsgTypeError| {
        log.lock().unwrap().push(e.problem());
        // deliver payload errors to the app, drop the rest
        if e.problem() == Problem::Payload {
            Action::Deliver
        } else {
            Action::Drop
        }
    });
    let mut svc = ServiceBuilder::new()
        .layer(CodecLayer::new(codec()).peer(client()))
        .layer(h.enforce.clone())
        .layer(CountLayer(counted.clone())) // between two built-in layers
        .layer(ValidatePayloadLayer::new(codec(), h.specs.clone()))
        .layer(policy)
        .service(h.app.clone());
    h.open_both(&mut svc).await;
    let (frames, _) = frames();
    let n = frames.len();
    feed(&mut svc, frames).await.unwrap();

    assert_eq!(
        *counted.lock().unwrap(),
        n + 2,
        "the user layer saw every item"
    );
    assert_eq!(
        *seen_by_policy.lock().unwrap(),
        vec![
            Problem::Payload,
            Problem::Undecodable,
            Problem::OutOfState,
            Problem::Payload
        ]
    );
    let items = h.drain();
    assert_eq!(
        items.iter().filter(|i| i.as_invalid().is_some()).count(),
        2,
        "payload errors delivered"
    );
}

#[tokio::test]
async fn a_started_outside_the_spec_fails_before_any_byte_is_written() {
    let h = Harness::new();
    // the peer opened the context
    let mut receive = h.receive(policy::ignore_and_warn());
    receive
        .ready()
        .await
        .unwrap()
        .call(frame(&start(CID)))
        .await
        .unwrap();

    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let (writer, _task) = Writer::spawn(ours, FramingLayer::new().codec(), 16);
    let mut send = ServiceBuilder::new()
        .layer(ValidatePayloadLayer::new(codec(), h.specs.clone()))
        .layer(h.enforce.clone())
        .layer(CodecLayer::new(codec()))
        .service(writer);

    let bad = Msg::Started(Started {
        cid: Cid::from(CID),
        pld: codec().encode_payload("not-an-int").unwrap(),
    });
    let err = send.ready().await.unwrap().call(bad).await.unwrap_err();
    let err = err.downcast::<MsgTypeError>().expect("a MsgTypeError");
    assert!(err.is_send_side());
    assert_eq!(
        err.tractor_message(),
        "invalid `Started` msg payload\n\nvalue: `'not-an-int'` does not match type-spec: `Started.pld: int`",
        "word for word as tractor's bad_started.json"
    );
    let wire = err.to_wire(&me());
    let recorded = recorded_error("bad_started.json");
    assert_eq!(wire.message.as_deref(), recorded["message"].as_str());
    assert_eq!(
        wire.boxed_type_str,
        recorded["boxed_type_str"].as_str().unwrap()
    );
    assert_eq!(
        wire.bad_msg.as_ref().map(|m| m.kind().as_str()),
        recorded["_bad_msg"]["msg_type"].as_str()
    );

    // The dialog is untouched: a valid Started still goes out, and it is
    // the first thing on the wire.
    send.ready()
        .await
        .unwrap()
        .call(started(CID, 0))
        .await
        .unwrap();
    let mut peer = FramingLayer::new().layer(theirs);
    let first = codec().decode(peer.next().await.unwrap().unwrap()).unwrap();
    assert_eq!(first, started(CID, 0));
}

fn recorded_error(file: &str) -> serde_json::Value {
    let path = format!("{}/../vectors/tractor/{file}", env!("CARGO_MANIFEST_DIR"));
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    file["frames"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["msg_type"] == "Error")
        .unwrap()["msg"]
        .clone()
}

#[tokio::test]
async fn cancel_ack_passes_whatever_the_spec() {
    let mut h = Harness::new();
    let mut svc = h.receive(policy::fail_fast());
    let ack = Msg::CancelAck(CancelAck {
        cid: Cid::from(CID),
        pld: true,
    });
    svc.ready().await.unwrap().call(frame(&ack)).await.unwrap();
    assert_eq!(h.drain().len(), 1);
}

type Route = tower::util::BoxCloneService<Inbound, (), BoxError>;

/// A stand-in for the context router (a later layer): hands each item to
/// the delivery stack of its context.
#[derive(Clone)]
struct PerContext {
    routes: Arc<Mutex<std::collections::HashMap<String, Route>>>,
}

impl Service<Inbound> for PerContext {
    type Response = ();
    type Error = BoxError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), BoxError>> + Send>>;
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn call(&mut self, item: Inbound) -> Self::Future {
        let key = item
            .cid()
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default();
        let route = self.routes.lock().unwrap().get(&key).cloned();
        Box::pin(async move {
            match route {
                Some(svc) => svc.oneshot(item).await,
                None => Ok(()),
            }
        })
    }
}

#[tokio::test]
async fn policies_can_differ_per_context() {
    let mut h = Harness::new();
    // CID fails fast, OTHER ignores and warns; both deliver to the app.
    let routes = [
        (
            CID.to_owned(),
            tower::util::BoxCloneService::new(policy::fail_fast().layer(h.app.clone())),
        ),
        (
            OTHER.to_owned(),
            tower::util::BoxCloneService::new(policy::ignore_and_warn().layer(h.app.clone())),
        ),
    ];
    let router = PerContext {
        routes: Arc::new(Mutex::new(routes.into_iter().collect())),
    };
    let mut svc = ServiceBuilder::new()
        .layer(CodecLayer::new(codec()).peer(client()))
        .layer(h.enforce.clone())
        .layer(ValidatePayloadLayer::new(codec(), h.specs.clone()))
        .service(router);
    h.open_both(&mut svc).await;
    let frames = vec![
        frame(&yield_of(CID, 1)),
        frame(&yield_of(OTHER, 1)),
        frame(&yield_of(CID, "bad")),
        frame(&yield_of(OTHER, "bad")),
        frame(&yield_of(CID, 2)),
        frame(&yield_of(OTHER, 2)),
    ];
    feed(&mut svc, frames).await.unwrap();
    let items = h.drain();
    assert_eq!(
        yields_of(&items, CID),
        vec![1],
        "fail-fast context stops at its error"
    );
    assert_eq!(
        yields_of(&items, OTHER),
        vec![1, 2],
        "ignore-and-warn context goes on"
    );
    let errors: Vec<&str> = items
        .iter()
        .filter_map(Inbound::as_invalid)
        .filter_map(|e| e.cid())
        .map(Cid::as_str)
        .collect();
    assert_eq!(
        errors,
        vec![CID],
        "only the fail-fast context sees its error"
    );
}
