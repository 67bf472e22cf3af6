//! Metrics as a message layer: count every message by kind and direction
//! on a live channel, and print the counts.
//!
//! One `CountLayer` value goes in both stacks of the client
//! (`Peer::message_layer`), so its inbound and outbound services share
//! one table.
//!
//! ```sh
//! cargo run --example metrics
//! ```

use scipp::context::ChildContext;
use scipp::msg::{Msg, MsgKind};
use scipp::payload::PldSpec;
use scipp::peer::Peer;
use scipp::route::Endpoints;
use scipp::{BoxError, Inbound, MsgpackCodec};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Direction {
    In,
    Out,
}

type Counts = Arc<Mutex<BTreeMap<(Direction, &'static str), u64>>>;

/// Counts messages; both directions share `counts`.
#[derive(Clone, Default)]
struct CountLayer {
    counts: Counts,
}

impl<S> Layer<S> for CountLayer {
    type Service = Count<S>;

    fn layer(&self, inner: S) -> Count<S> {
        Count {
            inner,
            counts: self.counts.clone(),
        }
    }
}

#[derive(Clone)]
struct Count<S> {
    inner: S,
    counts: Counts,
}

impl<S> Count<S> {
    fn count(&self, direction: Direction, kind: MsgKind) {
        *self
            .counts
            .lock()
            .unwrap()
            .entry((direction, kind.as_str()))
            .or_default() += 1;
    }
}

/// Inbound: typed items from payload validation, on their way to routing.
impl<S: Service<Inbound>> Service<Inbound> for Count<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, item: Inbound) -> S::Future {
        match item.as_msg() {
            Some(msg) => self.count(Direction::In, msg.kind()),
            None => self.count(Direction::In, MsgKind::Error), // an invalid item
        }
        self.inner.call(item)
    }
}

/// Outbound: messages from contexts and endpoints, on their way to the wire.
impl<S: Service<Msg>> Service<Msg> for Count<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, msg: Msg) -> S::Future {
        self.count(Direction::Out, msg.kind());
        self.inner.call(msg)
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // a server with one streaming endpoint and one RPC
    let mut endpoints = Endpoints::new();
    endpoints.context(
        "demo",
        "double",
        PldSpec::of::<i64>(),
        |mut ctx: ChildContext<MsgpackCodec>, _: BTreeMap<String, i64>| async move {
            ctx.started(&0).await?;
            let mut n = 0;
            while let Some(v) = ctx.recv::<i64>().await? {
                ctx.send(&(2 * v)).await?;
                n += 1;
            }
            Ok::<_, BoxError>(n)
        },
    );
    #[derive(serde::Deserialize)]
    struct Add {
        a: i64,
        b: i64,
    }
    endpoints.rpc("demo", "add", |kw: Add| async move { Ok(kw.a + kw.b) });
    let server = Peer::new("server", MsgpackCodec::new())
        .endpoints(endpoints)
        .serve_tcp("127.0.0.1:0")
        .await?;

    // the client counts what it sends and receives
    let metrics = CountLayer::default();
    let client = Peer::new("client", MsgpackCodec::new()).message_layer(metrics.clone());
    let chan = client.connect_addr(server.local_addr()).await?;
    println!("{}", chan.stack());

    let (mut ctx, _first): (_, i64) = chan
        .open_context("demo", "double")
        .spec(PldSpec::of::<i64>())
        .start()
        .await?;
    for v in 1..=5 {
        ctx.send(&v).await?;
        let doubled: Option<i64> = ctx.recv().await?;
        assert_eq!(doubled, Some(2 * v));
    }
    ctx.close().await?;
    assert_eq!(ctx.result::<i64>().await?, 5);
    let sum: i64 = chan
        .rpc("demo", "add", &BTreeMap::from([("a", 2), ("b", 3)]))
        .await?;
    assert_eq!(sum, 5);

    println!("messages seen by the client's metrics layer:");
    println!("{:<5} {:<10} {:>5}", "dir", "kind", "count");
    for ((direction, kind), n) in metrics.counts.lock().unwrap().iter() {
        let dir = match direction {
            Direction::In => "in",
            Direction::Out => "out",
        };
        println!("{dir:<5} {kind:<10} {n:>5}");
    }
    chan.close().await?;
    server.shutdown().await?;
    Ok(())
}
