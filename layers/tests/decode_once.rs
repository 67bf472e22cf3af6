//! A received payload is decoded once: the payload-spec check's value is
//! the one the context hands out (a 64 KiB payload is copied out of the
//! frame once, by the typed decode itself).

use scipp_codecs::msgpack::MsgpackCodec;
use scipp_layers::context::ChildContext;
use scipp_layers::payload::PldSpec;
use scipp_layers::peer::Peer;
use scipp_layers::route::Endpoints;
use scipp_layers::BoxError;
use serde::{Deserialize, Deserializer, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};

static DECODES: AtomicUsize = AtomicUsize::new(0);

/// 64 KiB of bytes that count their own decodes.
#[derive(Debug, Serialize)]
struct Counted(serde_bytes::ByteBuf);

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DECODES.fetch_add(1, Ordering::SeqCst);
        serde_bytes::ByteBuf::deserialize(d).map(Counted)
    }
}

#[tokio::test]
async fn a_big_payload_is_decoded_once_on_its_way_to_the_user() {
    let mut endpoints = Endpoints::new();
    endpoints.context(
        "t",
        "blob",
        PldSpec::of::<Counted>(),
        |mut ctx: ChildContext<MsgpackCodec>, _: serde::de::IgnoredAny| async move {
            let blob = Counted(serde_bytes::ByteBuf::from(vec![7u8; 64 * 1024]));
            ctx.started(&blob).await?;
            ctx.send(&blob).await?;
            ctx.close().await?;
            Ok::<_, BoxError>(blob)
        },
    );
    let server = Peer::new("server", MsgpackCodec::new()).endpoints(endpoints);
    let client = Peer::new("client", MsgpackCodec::new());
    let (a, b) = tokio::io::duplex(1 << 20);
    let (served, chan) = tokio::join!(server.accept(a), client.channel(b));
    let (_served, chan) = (served.unwrap(), chan.unwrap());
    // the child's send-side check of `Started` decodes once (a round trip)
    let (mut ctx, first): (_, Counted) = chan
        .open_context("t", "blob")
        .spec(PldSpec::of::<Counted>())
        .start()
        .await
        .unwrap();
    assert_eq!(first.0.len(), 64 * 1024);
    let item = ctx.recv::<Counted>().await.unwrap().unwrap();
    assert_eq!(item.0.len(), 64 * 1024);
    assert_eq!(
        ctx.recv::<Counted>().await.unwrap().map(|c| c.0.len()),
        None
    );
    let last = ctx.result::<Counted>().await.unwrap();
    assert_eq!(last.0.len(), 64 * 1024);
    // Started: 1 send-side check + 1 receive; Yield: 1; Return: 1
    assert_eq!(DECODES.load(Ordering::SeqCst), 4);
}
