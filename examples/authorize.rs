//! Authorization as a message layer: a peer may call only an allow-list
//! of `ns:func`, and only trusted peers may cancel the actor. A refused
//! call comes back to the caller as a typed error, and the channel keeps
//! serving.
//!
//! `AuthorizeLayer` is in the library (`scipp::authorize`); `scipp serve
//! --allow NS:FUNC` uses it too. This example also shows how little it
//! takes to write one: see `OnlyNamespace` below, a one-closure variant
//! built from tower's `filter`.
//!
//! ```sh
//! cargo run --example authorize
//! ```

use scipp::authorize::AuthorizeLayer;
use scipp::context::ContextError;
use scipp::msg::Msg;
use scipp::peer::Peer;
use scipp::relay::Raise;
use scipp::route::Endpoints;
use scipp::{BoxError, Inbound, MsgpackCodec};
use std::collections::BTreeMap;
use tower::filter::FilterLayer;

#[derive(serde::Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

fn endpoints() -> Endpoints<MsgpackCodec> {
    let mut endpoints = Endpoints::new();
    endpoints.rpc("math", "add", |kw: Add| async move { Ok(kw.a + kw.b) });
    endpoints.rpc("math", "shutdown_db", |_: Add| async move { Ok(0) });
    endpoints.rpc("admin", "stats", |_: Add| async move { Ok(1) });
    endpoints
}

/// How a refusal reads on the caller's side.
fn show(what: &str, outcome: Result<i64, ContextError>) {
    match outcome {
        Ok(v) => println!("{what}: ok, {v}"),
        Err(ContextError::Remote(e)) => {
            let why = e.traceback().lines().last().unwrap_or_default();
            println!("{what}: refused, {} ({why})", e.boxed_type());
        }
        Err(e) => println!("{what}: failed, {e}"),
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let rules = AuthorizeLayer::new().allow("math", "add").trust("operator");
    let server = Peer::new("server", MsgpackCodec::new())
        .endpoints(endpoints())
        .inbound_message_layer(rules)
        .serve_tcp("127.0.0.1:0")
        .await?;
    let kw = BTreeMap::from([("a", 2), ("b", 3)]);

    let guest = Peer::new("guest", MsgpackCodec::new())
        .connect_addr(server.local_addr())
        .await?;
    show("guest calls math:add", guest.rpc("math", "add", &kw).await);
    show(
        "guest calls math:shutdown_db",
        guest.rpc("math", "shutdown_db", &kw).await,
    );
    show(
        "guest cancels the actor",
        guest.cancel_actor().await.map(|()| 0),
    );
    show(
        "guest calls math:add again",
        guest.rpc("math", "add", &kw).await,
    );

    // the same rule as one closure: only the `math` namespace
    let only_math = FilterLayer::new(|item: Inbound| match item.as_msg() {
        Some(Msg::Start(s)) if s.ns != "math" && s.ns != "self" => Err(Raise::new(
            "PermissionError",
            format!("namespace `{}` is closed", s.ns),
        )),
        _ => Ok(item),
    });
    let strict = Peer::new("strict", MsgpackCodec::new())
        .endpoints(endpoints())
        .inbound_message_layer(only_math)
        .serve_tcp("127.0.0.1:0")
        .await?;
    let chan = Peer::new("guest", MsgpackCodec::new())
        .connect_addr(strict.local_addr())
        .await?;
    show(
        "guest calls admin:stats (filter)",
        chan.rpc("admin", "stats", &kw).await,
    );
    show(
        "guest calls math:add (filter)",
        chan.rpc("math", "add", &kw).await,
    );

    // a trusted peer may stop the actor
    let operator = Peer::new("operator", MsgpackCodec::new())
        .connect_addr(server.local_addr())
        .await?;
    operator.cancel_actor().await?;
    println!("operator cancels the actor: ok");
    server.cancel_requested().await;
    println!("the server saw the cancel and shuts down");
    server.shutdown().await?;
    strict.shutdown().await?;
    Ok(())
}
