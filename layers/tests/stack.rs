//! The stack a `Peer` builds, open to the user: layers at the frames and
//! messages positions see a real dialog, two-way layers share state, the
//! peer's policy and a context's own act on real bad payloads, and a
//! refusing message layer answers with a typed error while the channel
//! keeps serving.

use bytes::Bytes;
use scipp_codecs::msg::{Msg, MsgKind};
use scipp_codecs::{msgpack::MsgpackCodec, Codec};
use scipp_layers::authorize::AuthorizeLayer;
use scipp_layers::context::{ChildContext, ContextError};
use scipp_layers::payload::PldSpec;
use scipp_layers::peer::{Channel, Peer};
use scipp_layers::policy::{self, Action};
use scipp_layers::route::Endpoints;
use scipp_layers::{BoxError, Inbound, MsgTypeError};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tower::{Layer, Service};

type Kw = BTreeMap<String, i64>;

/// One entry of a [`Tap`]'s log: a global sequence number, where, which
/// way, which message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    seq: usize,
    position: &'static str,
    inbound: bool,
    kind: MsgKind,
}

/// A two-way layer that logs every item it sees; the one log (and the one
/// counter) is shared by every service the layer makes, both directions.
#[derive(Clone)]
struct TapLayer {
    position: &'static str,
    log: Arc<Mutex<Vec<Seen>>>,
}

impl TapLayer {
    fn new(position: &'static str, log: &Arc<Mutex<Vec<Seen>>>) -> Self {
        TapLayer {
            position,
            log: log.clone(),
        }
    }

    fn kinds(log: &Arc<Mutex<Vec<Seen>>>, position: &str, inbound: bool) -> Vec<MsgKind> {
        log.lock()
            .unwrap()
            .iter()
            .filter(|s| s.position == position && s.inbound == inbound)
            .map(|s| s.kind)
            .collect()
    }
}

impl<S> Layer<S> for TapLayer {
    type Service = Tap<S>;
    fn layer(&self, inner: S) -> Tap<S> {
        Tap {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
struct Tap<S> {
    inner: S,
    layer: TapLayer,
}

/// What a tap can name: the kind of a message, of a frame (decoded), of
/// an inbound item.
trait Kind {
    const INBOUND: bool;
    fn kind(&self) -> Option<MsgKind>;
}

impl Kind for Inbound {
    const INBOUND: bool = true;
    fn kind(&self) -> Option<MsgKind> {
        self.as_msg().map(Msg::kind)
    }
}

impl Kind for Msg {
    const INBOUND: bool = false;
    fn kind(&self) -> Option<MsgKind> {
        Some(Msg::kind(self))
    }
}

/// Frames both ways are `Bytes`: the direction comes from the wrapped
/// service's type, see the two impls below.
fn frame_kind(frame: &Bytes) -> Option<MsgKind> {
    MsgpackCodec::new()
        .decode(frame.clone())
        .ok()
        .map(|m| m.kind())
}

impl<S> Tap<S> {
    fn record(&self, inbound: bool, kind: Option<MsgKind>) {
        if let Some(kind) = kind {
            let mut log = self.layer.log.lock().unwrap();
            let seq = log.len();
            log.push(Seen {
                seq,
                position: self.layer.position,
                inbound,
                kind,
            });
        }
    }
}

impl<S, T> Service<T> for Tap<S>
where
    S: Service<T>,
    T: Kind,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }
    fn call(&mut self, item: T) -> S::Future {
        self.record(T::INBOUND, item.kind());
        self.inner.call(item)
    }
}

/// Frames: one tap type per direction (the items are `Bytes` both ways).
#[derive(Clone)]
struct FrameTapLayer(TapLayer);

impl Layer<scipp_layers::stack::InboundFrames> for FrameTapLayer {
    type Service = FrameTap<scipp_layers::stack::InboundFrames, true>;
    fn layer(&self, inner: scipp_layers::stack::InboundFrames) -> Self::Service {
        FrameTap(Tap {
            inner,
            layer: self.0.clone(),
        })
    }
}

impl Layer<scipp_layers::stack::OutboundFrames> for FrameTapLayer {
    type Service = FrameTap<scipp_layers::stack::OutboundFrames, false>;
    fn layer(&self, inner: scipp_layers::stack::OutboundFrames) -> Self::Service {
        FrameTap(Tap {
            inner,
            layer: self.0.clone(),
        })
    }
}

#[derive(Clone)]
struct FrameTap<S, const INBOUND: bool>(Tap<S>);

impl<S: Service<Bytes>, const INBOUND: bool> Service<Bytes> for FrameTap<S, INBOUND> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.inner.poll_ready(cx)
    }
    fn call(&mut self, frame: Bytes) -> S::Future {
        self.0.record(INBOUND, frame_kind(&frame));
        self.0.inner.call(frame)
    }
}

/// `double`: Started(0), doubles every item, returns how many.
fn server_endpoints() -> Endpoints<MsgpackCodec> {
    let mut endpoints = Endpoints::new();
    endpoints.context(
        "demo",
        "double",
        PldSpec::of::<i64>(),
        |mut ctx: ChildContext<MsgpackCodec>, _: Kw| async move {
            ctx.started(&0).await?;
            let mut n = 0;
            while let Some(v) = ctx.recv::<i64>().await? {
                ctx.send(&(2 * v)).await?;
                n += 1;
            }
            Ok::<_, BoxError>(n)
        },
    );
    // one bad Yield (a string where ints are expected), then 1 and 2
    endpoints.context(
        "demo",
        "one_bad",
        PldSpec::any(),
        |mut ctx: ChildContext<MsgpackCodec>, _: Kw| async move {
            ctx.started(&0).await?;
            ctx.send(&"oops").await?;
            ctx.send(&1).await?;
            ctx.send(&2).await?;
            ctx.close().await?; // a stream closes before its Return
            Ok::<_, BoxError>(2)
        },
    );
    // two bad Yields, then 7
    endpoints.context(
        "demo",
        "two_bad",
        PldSpec::any(),
        |mut ctx: ChildContext<MsgpackCodec>, _: Kw| async move {
            ctx.started(&0).await?;
            ctx.send(&"bad-1").await?;
            ctx.send(&"bad-2").await?;
            ctx.send(&7).await?;
            ctx.close().await?;
            Ok::<_, BoxError>(1)
        },
    );
    #[derive(serde::Deserialize)]
    struct Add {
        a: i64,
        b: i64,
    }
    endpoints.rpc("math", "add", |kw: Add| async move { Ok(kw.a + kw.b) });
    endpoints.rpc("math", "secret", |_: Kw| async move { Ok(42) });
    endpoints
}

enum Transport {
    Memory,
    Tcp,
}

/// Connects `client` to `server` over `transport`; returns (server's
/// channel, client's channel).
async fn connect(
    server: Peer<MsgpackCodec>,
    client: Peer<MsgpackCodec>,
    transport: Transport,
) -> (Channel<MsgpackCodec>, Channel<MsgpackCodec>) {
    match transport {
        Transport::Memory => {
            let (a, b) = tokio::io::duplex(64 * 1024);
            let (s, c) = tokio::join!(server.accept(a), client.channel(b));
            (s.unwrap(), c.unwrap())
        }
        Transport::Tcp => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let accept = async {
                let (tcp, _) = listener.accept().await.unwrap();
                tcp.set_nodelay(true).unwrap();
                server.accept(tcp).await.unwrap()
            };
            let (s, c) = tokio::join!(accept, client.connect_tcp(addr));
            (s, c.unwrap())
        }
    }
}

async fn a_dialog_passes_every_user_layer_in_order(transport: Transport) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let server = Peer::new("server", MsgpackCodec::new()).endpoints(server_endpoints());
    let client = Peer::new("client", MsgpackCodec::new())
        .frame_layer(FrameTapLayer(TapLayer::new("frames", &log)))
        .message_layer(TapLayer::new("messages", &log));
    let (_server, chan) = connect(server, client, transport).await;

    let (mut ctx, first): (_, i64) = chan
        .open_context("demo", "double")
        .spec(PldSpec::of::<i64>())
        .start()
        .await
        .unwrap();
    assert_eq!(first, 0);
    ctx.send(&21).await.unwrap();
    assert_eq!(ctx.recv::<i64>().await.unwrap(), Some(42));
    ctx.close().await.unwrap();
    assert_eq!(ctx.result::<i64>().await.unwrap(), 1);

    use MsgKind::*;
    let sent = TapLayer::kinds(&log, "messages", false);
    let received = TapLayer::kinds(&log, "messages", true);
    assert_eq!(sent, [Start, Yield, Stop], "sent, at the messages position");
    assert_eq!(
        received,
        [StartAck, Started, Yield, Return],
        "received, at the messages position"
    );
    // the frames position sees the same messages, in the same order
    assert_eq!(TapLayer::kinds(&log, "frames", false), sent);
    assert_eq!(TapLayer::kinds(&log, "frames", true), received);
    // and the stack says where the layers landed
    let stack = chan.stack();
    let at = |name: &str| {
        stack
            .receive()
            .iter()
            .position(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} not in {stack}"))
    };
    assert!(at("framing") < at("[yours] FrameTapLayer"));
    assert!(at("[yours] FrameTapLayer") < at("codec"));
    assert!(at("payload") < at("[yours] TapLayer") && at("[yours] TapLayer") < at("route"));
}

#[tokio::test]
async fn a_dialog_passes_every_user_layer_in_order_in_memory() {
    a_dialog_passes_every_user_layer_in_order(Transport::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialog_passes_every_user_layer_in_order_over_tcp() {
    a_dialog_passes_every_user_layer_in_order(Transport::Tcp).await;
}

#[tokio::test]
async fn a_two_way_layer_shares_its_state_between_directions() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let server = Peer::new("server", MsgpackCodec::new()).endpoints(server_endpoints());
    let client = Peer::new("client", MsgpackCodec::new()).message_layer(TapLayer::new("m", &log));
    let (_server, chan) = connect(server, client, Transport::Memory).await;
    let kw = BTreeMap::from([("a", 2), ("b", 3)]);
    assert_eq!(chan.rpc::<_, i64>("math", "add", &kw).await.unwrap(), 5);

    // one counter numbers both directions: the request went out before
    // its answers came in, and no number is used twice
    let log = log.lock().unwrap().clone();
    let seqs: Vec<usize> = log.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, (0..log.len()).collect::<Vec<_>>());
    let start = log.iter().find(|s| s.kind == MsgKind::Start).unwrap();
    let ret = log.iter().find(|s| s.kind == MsgKind::Return).unwrap();
    assert!(!start.inbound && ret.inbound && start.seq < ret.seq);
}

#[tokio::test]
async fn the_peers_policy_and_a_contexts_own_act_differently_on_one_channel() {
    let server = Peer::new("server", MsgpackCodec::new()).endpoints(server_endpoints());
    let client = Peer::new("client", MsgpackCodec::new()).policy(policy::ignore_and_warn());
    let (_server, chan) = connect(server, client, Transport::Memory).await;

    // the peer's policy: the bad item is dropped, the good ones arrive
    let (mut lenient, _): (_, i64) = chan
        .open_context("demo", "one_bad")
        .spec(PldSpec::of::<i64>())
        .start()
        .await
        .unwrap();
    // this context's own: the same bad item fails the receive
    let (mut strict, _): (_, i64) = chan
        .open_context("demo", "one_bad")
        .spec(PldSpec::of::<i64>())
        .policy(policy::fail_fast())
        .start()
        .await
        .unwrap();

    assert_eq!(lenient.recv::<i64>().await.unwrap(), Some(1));
    assert_eq!(lenient.recv::<i64>().await.unwrap(), Some(2));
    assert_eq!(lenient.result::<i64>().await.unwrap(), 2);

    match strict.recv::<i64>().await {
        Err(ContextError::MsgType(err)) => {
            assert_eq!(err.kind(), Some(MsgKind::Yield));
            assert!(err.to_string().contains("oops"), "{err}");
        }
        other => panic!("expected the bad Yield, got {other:?}"),
    }
    strict.cancel().await.unwrap();
}

#[tokio::test]
async fn a_closure_policy_on_the_peer_decides_per_message() {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    // drop the first bad payload, deliver (fail on) the next
    let decide = move |_: &MsgTypeError| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            Action::Drop
        } else {
            Action::Deliver
        }
    };
    let server = Peer::new("server", MsgpackCodec::new()).endpoints(server_endpoints());
    let client = Peer::new("client", MsgpackCodec::new()).policy(policy::from_fn(decide));
    let (_server, chan) = connect(server, client, Transport::Memory).await;

    let (mut ctx, _): (_, i64) = chan
        .open_context("demo", "two_bad")
        .spec(PldSpec::of::<i64>())
        .start()
        .await
        .unwrap();
    match ctx.recv::<i64>().await {
        Err(ContextError::MsgType(err)) => assert!(err.to_string().contains("bad-2"), "{err}"),
        other => panic!("expected the second bad Yield, got {other:?}"),
    }
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    // the context goes on after a delivered error
    assert_eq!(ctx.recv::<i64>().await.unwrap(), Some(7));
    assert_eq!(ctx.result::<i64>().await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_refuses_a_call_and_an_actor_cancel_while_the_channel_serves() {
    let server = Peer::new("server", MsgpackCodec::new())
        .endpoints(server_endpoints())
        .inbound_message_layer(AuthorizeLayer::new().allow("math", "add").trust("admin"));
    let guest = Peer::new("guest", MsgpackCodec::new());
    let (served, chan) = connect(server, guest, Transport::Tcp).await;
    let kw = BTreeMap::from([("a", 2), ("b", 3)]);

    assert_eq!(chan.rpc::<_, i64>("math", "add", &kw).await.unwrap(), 5);
    match chan.rpc::<_, i64>("math", "secret", &kw).await {
        Err(ContextError::Remote(err)) => {
            assert_eq!(err.boxed_type(), "PermissionError");
            assert!(
                err.traceback().contains("may not call `math:secret`"),
                "{err}"
            );
        }
        other => panic!("expected a PermissionError, got {other:?}"),
    }
    match chan.cancel_actor().await {
        Err(ContextError::Remote(err)) => {
            assert_eq!(err.boxed_type(), "PermissionError");
            assert!(
                err.traceback().contains("may not cancel this actor"),
                "{err}"
            );
        }
        other => panic!("expected a PermissionError, got {other:?}"),
    }
    // still serving, and the actor was not cancelled
    assert_eq!(chan.rpc::<_, i64>("math", "add", &kw).await.unwrap(), 5);
    use futures_util::FutureExt;
    assert!(
        served.cancel_requested().now_or_never().is_none(),
        "the refused cancel reached the actor"
    );
}

#[tokio::test]
async fn a_channel_is_clone_and_clones_share_the_connection() {
    let server = Peer::new("server", MsgpackCodec::new()).endpoints(server_endpoints());
    let client = Peer::new("client", MsgpackCodec::new());
    let (_server, chan) = connect(server, client, Transport::Memory).await;
    let other = chan.clone();
    drop(chan);
    let kw = BTreeMap::from([("a", 1), ("b", 1)]);
    assert_eq!(other.rpc::<_, i64>("math", "add", &kw).await.unwrap(), 2);
}

#[tokio::test]
async fn cancel_after_a_failed_receive_skips_the_bad_messages_still_queued() {
    let server = Peer::new("server", MsgpackCodec::new()).endpoints(server_endpoints());
    let client = Peer::new("client", MsgpackCodec::new());
    let (_server, chan) = connect(server, client, Transport::Memory).await;
    let (mut ctx, _): (_, i64) = chan
        .open_context("demo", "two_bad")
        .spec(PldSpec::of::<i64>())
        .start()
        .await
        .unwrap();
    assert!(matches!(
        ctx.recv::<i64>().await,
        Err(ContextError::MsgType(_))
    ));
    // `bad-2` may still be queued: cancelling must not trip over it
    ctx.cancel().await.unwrap();
}
