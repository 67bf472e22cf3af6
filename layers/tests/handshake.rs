//! The handshake and errors that belong to no context, against a raw
//! hand-driven peer.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use scipp_codecs::msg::{Aid, Error, Msg, Uid};
use scipp_codecs::{msgpack::MsgpackCodec, Codec};
use scipp_layers::framing::FramingLayer;
use scipp_layers::peer::{Config, Peer, PeerError};
use std::time::Duration;
use tower::Layer;

fn frame(msg: &Msg) -> Bytes {
    MsgpackCodec::new().encode_to_bytes(msg).unwrap()
}

#[tokio::test]
async fn a_peer_that_never_sends_its_aid_times_out() {
    let (ours, theirs) = tokio::io::duplex(4096);
    let config = Config {
        handshake_timeout: Duration::from_millis(50),
        ..Config::default()
    };
    let peer = Peer::new("scipp_peer", MsgpackCodec::new()).config(config);
    let mut silent = FramingLayer::new().layer(theirs);
    let (res, hello) = tokio::join!(peer.channel(ours), silent.next());
    assert!(
        matches!(res, Err(PeerError::HandshakeTimeout(_))),
        "{res:?}"
    );
    let hello = MsgpackCodec::new().decode(hello.unwrap().unwrap()).unwrap();
    assert!(matches!(hello, Msg::Aid(_)), "we still sent our Aid first");
}

#[tokio::test]
async fn a_first_message_that_is_not_an_aid_is_refused() {
    let (ours, theirs) = tokio::io::duplex(4096);
    let peer = Peer::new("scipp_peer", MsgpackCodec::new());
    let mut raw = FramingLayer::new().layer(theirs);
    let stop = Msg::Stop(scipp_codecs::msg::Stop { cid: "c1".into() });
    raw.send(frame(&stop)).await.unwrap();
    let err = peer.channel(ours).await.unwrap_err();
    assert!(
        matches!(err, PeerError::Handshake(ref why) if why.contains("Stop")),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_error_without_a_cid_reaches_the_channel_owner() {
    let (ours, theirs) = tokio::io::duplex(4096);
    let peer = Peer::new("scipp_client", MsgpackCodec::new());
    let mut raw = FramingLayer::new().layer(theirs);
    let them = Uid::new("crashing_child", "u-1");
    raw.send(frame(&Msg::from(Aid::new(
        them.name.clone(),
        them.uuid.clone(),
    ))))
    .await
    .unwrap();
    let chan = peer.channel(ours).await.unwrap();
    let mut err = Error::new(them.clone(), "RuntimeError");
    err.tb_str = "runtime died".into();
    raw.send(frame(&Msg::from(err))).await.unwrap(); // no cid: tractor drops these silently
    raw.send(Bytes::from_static(b"\xc1 garbage")).await.unwrap();
    match chan.next_orphan().await.expect("surfaced") {
        scipp_layers::route::Orphan::Remote(r) => {
            assert_eq!(r.src_uid(), &them);
            assert_eq!(r.traceback(), "runtime died");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        chan.next_orphan().await,
        Some(scipp_layers::route::Orphan::MsgType(_))
    ));
}
