//! What a channel knows about its other end ([`ChannelInfo`]), and the
//! layers a peer builds from it once per channel.

use scipp_codecs::msgpack::MsgpackCodec;
use scipp_layers::peer::{ChannelInfo, ConnectInfo, Peer};
use scipp_layers::route::Endpoints;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service};

const LIMIT: Duration = Duration::from_secs(10);

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f).await.expect("timed out")
}

/// Counts every message it passes, whichever direction: one counter per
/// layer value.
#[derive(Clone)]
struct CountLayer {
    seen: Arc<AtomicUsize>,
}

impl<S> Layer<S> for CountLayer {
    type Service = Counted<S>;
    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            seen: self.seen.clone(),
        }
    }
}

#[derive(Clone)]
struct Counted<S> {
    inner: S,
    seen: Arc<AtomicUsize>,
}

impl<S: Service<T>, T> Service<T> for Counted<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }
    fn call(&mut self, item: T) -> S::Future {
        self.seen.fetch_add(1, Ordering::SeqCst);
        self.inner.call(item)
    }
}

/// A layer made for a channel: its peer's name and address, and its
/// counter.
type Made = (String, Option<std::net::SocketAddr>, Arc<AtomicUsize>);

/// Each channel gets its own layer value, made from its info, and that
/// one value wraps both directions: a served RPC counts its `Start` (in),
/// `StartAck` and `Return` (out) on its channel's counter only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_channel_layer_is_made_once_per_channel_from_its_info() {
    let mut endpoints = Endpoints::new();
    endpoints.rpc("svc", "one", |_: BTreeMap<String, ()>| async { Ok(1) });
    let made: Arc<Mutex<Vec<Made>>> = Arc::default();
    let record = made.clone();
    let server = Peer::new("svc", MsgpackCodec::new())
        .endpoints(endpoints)
        .message_layer_fn(move |info: &ChannelInfo| {
            let seen = Arc::new(AtomicUsize::new(0));
            record.lock().unwrap().push((
                info.peer().name.clone(),
                info.remote_addr(),
                seen.clone(),
            ));
            CountLayer { seen }
        })
        .serve_tcp("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr().to_string();
    let no_kwargs = BTreeMap::<String, ()>::new();

    // any transport: say what is known about it
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let first_addr = tcp.local_addr().unwrap();
    let connect = ConnectInfo::new().remote_addr(tcp.peer_addr().unwrap());
    let first = Peer::new("first", MsgpackCodec::new());
    let a = within(first.channel_with(tcp, connect)).await.unwrap();
    assert_eq!(a.info().remote_addr(), Some(addr.parse().unwrap()));
    assert_eq!(a.info().peer().name, "svc");
    let n: i64 = within(a.rpc("svc", "one", &no_kwargs)).await.unwrap();
    assert_eq!(n, 1);
    let second = Peer::new("second", MsgpackCodec::new());
    // `connect_tcp` fills it in itself
    let b = within(second.connect_tcp(&addr)).await.unwrap();
    assert_eq!(b.info().remote_addr(), Some(addr.parse().unwrap()));
    for _ in 0..2 {
        let n: i64 = within(b.rpc("svc", "one", &no_kwargs)).await.unwrap();
        assert_eq!(n, 1);
    }

    let made = made.lock().unwrap();
    let names: Vec<&str> = made.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["first", "second"], "one layer per channel");
    // the server saw each client's own address
    assert_eq!(made[0].1, Some(first_addr));
    let second_addr = made[1]
        .1
        .expect("the server knows every TCP peer's address");
    assert!(second_addr.ip().is_loopback() && second_addr != first_addr);
    // Start in; StartAck and Return out: per RPC, on its channel only
    assert_eq!(made[0].2.load(Ordering::SeqCst), 3);
    assert_eq!(made[1].2.load(Ordering::SeqCst), 6);
}
