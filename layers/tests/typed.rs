//! Typed dialogs: kwargs, `Started`, stream items and `Return` declared
//! once ([`Dialog`]) with three distinct phase types, end to end over an
//! in-memory duplex and over TCP; no-kwargs calls; per-phase payload specs
//! enforced against peers that use the untyped API; the single-spec API
//! unchanged.

use scipp_codecs::msgpack::MsgpackCodec;
use scipp_layers::context::{ChildContext, ContextError, Dialog, NoKwargs};
use scipp_layers::payload::PldSpec;
use scipp_layers::peer::{Channel, Peer};
use scipp_layers::route::Endpoints;
use scipp_layers::BoxError;
use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::time::Duration;

async fn bounded<T>(what: &str, fut: impl IntoFuture<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Scale {
    factor: i64,
}

/// Scales every int it is sent; starts with a greeting, returns every
/// scaled value: three distinct phase types.
struct Scaler;

impl Dialog for Scaler {
    const NS: &'static str = "typed";
    const FUNC: &'static str = "scale";
    type Kwargs = Scale;
    type Started = String;
    type Item = i64;
    type Return = Vec<i64>;
}

/// Counts what it is sent; no kwargs.
struct Counter;

impl Dialog for Counter {
    const NS: &'static str = "typed";
    const FUNC: &'static str = "count";
    type Kwargs = ();
    type Started = bool;
    type Item = String;
    type Return = u64;
}

fn typed_endpoints() -> Endpoints<MsgpackCodec> {
    let mut endpoints = Endpoints::new();
    endpoints.dialog(Scaler, |mut ctx, kw| async move {
        ctx.started(format!("scaling by {}", kw.factor)).await?;
        let mut all = Vec::new();
        while let Some(v) = ctx.recv().await? {
            let scaled = v * kw.factor;
            ctx.send(scaled).await?;
            all.push(scaled);
        }
        Ok(all)
    });
    endpoints.dialog(Counter, |mut ctx, ()| async move {
        ctx.started(true).await?;
        let mut n = 0;
        while ctx.recv().await?.is_some() {
            n += 1;
        }
        Ok(n)
    });
    endpoints
}

async fn duplex_pair(server: Peer<MsgpackCodec>) -> (Channel<MsgpackCodec>, Channel<MsgpackCodec>) {
    let client = Peer::new("client", MsgpackCodec::new());
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (served, chan) = tokio::join!(server.accept(a), client.channel(b));
    (served.unwrap(), chan.unwrap())
}

/// The whole Scaler dialog, and a Counter without kwargs.
async fn scaler_dialog(chan: &Channel<MsgpackCodec>) {
    let (mut ctx, started) = bounded("open", chan.dialog(Scaler, Scale { factor: 3 }))
        .await
        .unwrap();
    assert_eq!(started, "scaling by 3");
    for v in [1, 2, 7] {
        ctx.send(v).await.unwrap();
        assert_eq!(bounded("an item", ctx.recv()).await.unwrap(), Some(3 * v));
    }
    ctx.close().await.unwrap();
    assert_eq!(
        bounded("the result", ctx.result()).await.unwrap(),
        [3, 6, 21]
    );

    let (mut ctx, ready) = bounded("open", chan.dialog(Counter, ())).await.unwrap();
    assert!(ready);
    for word in ["a", "b"] {
        ctx.send(word.to_owned()).await.unwrap();
    }
    ctx.close().await.unwrap();
    assert_eq!(bounded("the count", ctx.result()).await.unwrap(), 2);
}

#[tokio::test]
async fn a_typed_dialog_over_a_duplex() {
    let server = Peer::new("server", MsgpackCodec::new()).endpoints(typed_endpoints());
    let (_served, chan) = duplex_pair(server).await;
    scaler_dialog(&chan).await;
}

#[tokio::test]
async fn a_typed_dialog_over_tcp() {
    let server = Peer::new("server", MsgpackCodec::new())
        .endpoints(typed_endpoints())
        .serve_tcp("127.0.0.1:0")
        .await
        .unwrap();
    let chan = Peer::new("client", MsgpackCodec::new())
        .connect_tcp(server.local_addr().to_string())
        .await
        .unwrap();
    scaler_dialog(&chan).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn no_kwargs_go_out_as_an_empty_map_and_extra_kwargs_are_a_type_error() {
    // an untyped endpoint that shows the kwargs it got
    let mut endpoints = typed_endpoints();
    endpoints.context(
        "typed",
        "kwargs",
        PldSpec::any(),
        |mut ctx: ChildContext<MsgpackCodec>, kw: BTreeMap<String, i64>| async move {
            ctx.started(&kw.len()).await?;
            Ok::<_, BoxError>(())
        },
    );
    endpoints.rpc("typed", "ping", |NoKwargs| async move { Ok("pong") });
    let server = Peer::new("server", MsgpackCodec::new()).endpoints(endpoints);
    let (_served, chan) = duplex_pair(server).await;

    /// The untyped endpoint, declared with no kwargs.
    struct KwargsProbe;
    impl Dialog for KwargsProbe {
        const NS: &'static str = "typed";
        const FUNC: &'static str = "kwargs";
        type Kwargs = ();
        type Started = usize;
        type Item = ();
        type Return = ();
    }
    let (ctx, n) = chan.dialog(KwargsProbe, ()).await.unwrap();
    assert_eq!(n, 0, "`()` arrived as an empty kwargs map");
    ctx.result().await.unwrap();
    let pong: String = chan.rpc("typed", "ping", &NoKwargs).await.unwrap();
    assert_eq!(pong, "pong");

    // the no-kwargs endpoint called with one, as Python reports it
    let err = chan
        .open_context("typed", "count")
        .kwargs(&BTreeMap::from([("c", 3)]))
        .start::<bool>()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("TypeError"), "{text}");
    assert!(
        text.contains("count() got an unexpected keyword argument 'c'"),
        "{text}"
    );
    let err = chan
        .rpc::<_, String>("typed", "ping", &BTreeMap::from([("loud", true)]))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("got an unexpected keyword argument 'loud'"),
        "{err}"
    );
}

/// A server whose `typed:scale` breaks the Scaler declaration in one
/// phase, through the untyped API (spec `Any` on its side).
fn untyped_scaler(bad: &'static str) -> Peer<MsgpackCodec> {
    let mut endpoints = Endpoints::new();
    endpoints.context(
        "typed",
        "scale",
        PldSpec::any(),
        move |mut ctx: ChildContext<MsgpackCodec>, _: Scale| async move {
            if bad == "started" {
                ctx.started(&42).await?;
                return Ok::<_, BoxError>(rmpv::Value::Nil);
            }
            ctx.started(&"hello").await?;
            if bad == "yield" {
                ctx.send(&"not-an-int").await?;
                ctx.close().await?;
                let _ = ctx.recv::<rmpv::Value>().await;
                return Ok(rmpv::Value::Nil);
            }
            while ctx.recv::<rmpv::Value>().await?.is_some() {}
            Ok(rmpv::Value::from("not-a-list"))
        },
    );
    Peer::new("server", MsgpackCodec::new()).endpoints(endpoints)
}

fn msg_type_text(err: ContextError) -> String {
    match err {
        ContextError::MsgType(e) => e.to_string(),
        other => panic!("expected a MsgTypeError, got {other:?}"),
    }
}

#[tokio::test]
async fn a_started_of_the_wrong_type_names_started_pld() {
    let (_served, chan) = duplex_pair(untyped_scaler("started")).await;
    let err = chan.dialog(Scaler, Scale { factor: 1 }).await.unwrap_err();
    let text = msg_type_text(err);
    assert!(text.starts_with("invalid `Started` msg payload"), "{text}");
    assert!(
        text.contains("value: `42` does not match type-spec: `Started.pld: str`"),
        "{text}"
    );
}

#[tokio::test]
async fn a_yield_of_the_wrong_type_names_yield_pld() {
    let (_served, chan) = duplex_pair(untyped_scaler("yield")).await;
    let (mut ctx, hello) = chan.dialog(Scaler, Scale { factor: 1 }).await.unwrap();
    assert_eq!(hello, "hello");
    let text = msg_type_text(bounded("recv", ctx.recv()).await.unwrap_err());
    assert!(
        text.contains("value: `'not-an-int'` does not match type-spec: `Yield.pld: int`"),
        "{text}"
    );
}

#[tokio::test]
async fn a_return_of_the_wrong_type_names_return_pld() {
    let (_served, chan) = duplex_pair(untyped_scaler("return")).await;
    let (mut ctx, _) = chan.dialog(Scaler, Scale { factor: 1 }).await.unwrap();
    ctx.close().await.unwrap();
    let text = msg_type_text(bounded("result", ctx.result()).await.unwrap_err());
    assert!(text.starts_with("invalid `Return` msg payload"), "{text}");
    assert!(
        text.contains("value: `'not-a-list'` does not match type-spec: `Return.pld: list[int]`"),
        "{text}"
    );
}

#[tokio::test]
async fn a_typed_endpoint_rejects_a_yield_of_the_wrong_type() {
    let server = Peer::new("server", MsgpackCodec::new()).endpoints(typed_endpoints());
    let (_served, chan) = duplex_pair(server).await;
    // an untyped caller that breaks Scaler's item type
    let (mut ctx, _): (_, String) = chan
        .open_context("typed", "scale")
        .kwargs(&BTreeMap::from([("factor", 2)]))
        .start()
        .await
        .unwrap();
    ctx.send(&"seven").await.unwrap();
    let err = bounded("the endpoint's error", ctx.result::<rmpv::Value>())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("MsgTypeError"), "{text}");
    assert!(text.contains("Yield.pld: int"), "{text}");
}

#[tokio::test]
async fn a_started_outside_its_phase_spec_is_refused_before_it_is_sent() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut endpoints = Endpoints::new();
    endpoints.context(
        "typed",
        "scale",
        PldSpec::dialog::<String, i64, Vec<i64>>(),
        move |mut ctx: ChildContext<MsgpackCodec>, _: Scale| {
            let tx = tx.clone();
            async move {
                // an int where the spec says `Started.pld: str`
                let refused = ctx.started(&7).await.unwrap_err();
                tx.send(refused.to_string()).unwrap();
                ctx.started(&"fine").await?;
                while ctx.recv::<i64>().await?.is_some() {}
                Ok::<_, BoxError>(vec![1_i64])
            }
        },
    );
    let server = Peer::new("server", MsgpackCodec::new()).endpoints(endpoints);
    let (_served, chan) = duplex_pair(server).await;
    let (mut ctx, first) = chan.dialog(Scaler, Scale { factor: 1 }).await.unwrap();
    assert_eq!(first, "fine", "the refused Started never left");
    ctx.close().await.unwrap();
    assert_eq!(ctx.result().await.unwrap(), [1]);
    let text = rx.recv().await.unwrap();
    assert!(text.contains("Started.pld: str"), "{text}");
}

#[tokio::test]
async fn the_single_spec_api_covers_every_phase_as_before() {
    let mut endpoints = Endpoints::new();
    endpoints.context(
        "plain",
        "double",
        PldSpec::of::<i64>(),
        |mut ctx: ChildContext<MsgpackCodec>, _: BTreeMap<String, i64>| async move {
            ctx.started(&0).await?;
            while let Some(v) = ctx.recv::<i64>().await? {
                ctx.send(&(2 * v)).await?;
            }
            // a Return outside the one spec: the caller rejects it
            Ok::<_, BoxError>("done")
        },
    );
    let server = Peer::new("server", MsgpackCodec::new()).endpoints(endpoints);
    let (_served, chan) = duplex_pair(server).await;
    let (mut ctx, first): (_, i64) = chan
        .open_context("plain", "double")
        .spec(PldSpec::of::<i64>())
        .start()
        .await
        .unwrap();
    assert_eq!(first, 0);
    ctx.send(&21).await.unwrap();
    assert_eq!(ctx.recv::<i64>().await.unwrap(), Some(42));
    ctx.close().await.unwrap();
    let text = msg_type_text(ctx.result::<i64>().await.unwrap_err());
    assert!(
        text.contains("value: `'done'` does not match type-spec: `Return.pld: int`"),
        "{text}"
    );
}

#[tokio::test]
async fn a_dialog_without_kwargs_sends_an_empty_kwargs_map_as_tractor_does() {
    use futures_util::{SinkExt, StreamExt};
    use scipp_codecs::msg::{Aid, Msg};
    use scipp_codecs::Codec;
    use tower::Layer;

    let codec = MsgpackCodec::new();
    let client = Peer::new("client", MsgpackCodec::new());
    let (a, b) = tokio::io::duplex(64 * 1024);
    let chan = tokio::spawn(async move {
        let chan = client.channel(b).await.unwrap();
        // never answered: the frame on the wire is what this test reads
        let _ = chan.dialog(Counter, ()).await;
    });
    let mut raw = scipp_layers::framing::FramingLayer::new().layer(a);
    let hello = bounded("the client's Aid", raw.next())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(codec.decode(hello).unwrap(), Msg::Aid(_)));
    let aid = Msg::from(Aid::new("server", scipp_layers::new_uuid()));
    raw.send(codec.encode_to_bytes(&aid).unwrap())
        .await
        .unwrap();
    let start = bounded("the Start", raw.next()).await.unwrap().unwrap();
    match codec.decode(start).unwrap() {
        Msg::Start(start) => {
            assert_eq!((start.ns.as_str(), start.func.as_str()), ("typed", "count"));
            // tractor's `kwargs: {}` (an empty fixmap), as in its transcripts
            assert_eq!(start.kwargs.as_bytes(), b"\x80");
        }
        other => panic!("expected a Start, got {other:?}"),
    }
    chan.abort();
}
