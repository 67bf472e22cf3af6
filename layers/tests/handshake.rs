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
async fn weakness_s5_1_an_error_without_a_cid_reaches_the_channel_owner() {
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

fn start_from(uid: &Uid, cid: &str, func: &str) -> Msg {
    let codec = MsgpackCodec::new();
    let kwargs = codec
        .encode_payload(&std::collections::BTreeMap::from([("a", 2), ("b", 3)]))
        .unwrap();
    Msg::from(scipp_codecs::msg::Start {
        cid: cid.into(),
        ns: "scipp_peer".into(),
        func: func.into(),
        kwargs,
        uid: uid.clone(),
        pld_spec: "typing.Any".into(),
    })
}

#[tokio::test]
async fn a_start_naming_another_actor_is_refused_and_the_channel_goes_on() {
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let server = Peer::new("scipp_peer", MsgpackCodec::new())
        .endpoints(scipp_layers::examples::scipp_peer());
    let mut raw = FramingLayer::new().layer(theirs);
    let me = Uid::new("scipp_client", "u-1");
    raw.send(frame(&Msg::from(Aid::new(
        me.name.clone(),
        me.uuid.clone(),
    ))))
    .await
    .unwrap();
    let _chan = server.channel(ours).await.unwrap();
    let codec = MsgpackCodec::new();
    let _their_aid = raw.next().await.unwrap().unwrap();

    raw.send(frame(&start_from(
        &Uid::new("impostor", "u-2"),
        "c-bad",
        "add",
    )))
    .await
    .unwrap();
    match codec.decode(raw.next().await.unwrap().unwrap()).unwrap() {
        Msg::Error(e) => {
            assert_eq!(e.cid.as_ref().map(|c| c.as_str()), Some("c-bad"));
            assert_eq!(e.boxed_type_str, "RuntimeError");
            assert!(e.tb_str.contains("chan.aid mismatch"), "{}", e.tb_str);
        }
        other => panic!("expected an Error, got {other:?}"),
    }
    raw.send(frame(&start_from(&me, "c-good", "add")))
        .await
        .unwrap();
    assert!(matches!(
        codec.decode(raw.next().await.unwrap().unwrap()).unwrap(),
        Msg::StartAck(_)
    ));
    match codec.decode(raw.next().await.unwrap().unwrap()).unwrap() {
        Msg::Return(r) => assert_eq!(codec.decode_payload::<i64>(&r.pld).unwrap(), 5),
        other => panic!("expected the Return, got {other:?}"),
    }
}

#[tokio::test]
async fn a_registry_probe_gets_our_aid_and_a_closed_connection() {
    let (ours, theirs) = tokio::io::duplex(4096);
    let peer = Peer::new("scipp_peer", MsgpackCodec::new());
    let mut raw = FramingLayer::new().layer(theirs);
    let mut probe = Aid::new("registry-probe", "u-9");
    probe.is_probe = true;
    // a HEAD actor probes with HEAD's Aid (the only one with `is_probe`)
    let head = MsgpackCodec::with_profile(scipp_codecs::WireProfile::Head);
    raw.send(head.encode_to_bytes(&Msg::from(probe)).unwrap())
        .await
        .unwrap();
    let err = peer.channel(ours).await.unwrap_err();
    assert!(
        matches!(err, PeerError::Probed(ref uid) if uid.name == "registry-probe"),
        "{err:?}"
    );
    let answer = MsgpackCodec::new()
        .decode(raw.next().await.unwrap().unwrap())
        .unwrap();
    assert!(matches!(answer, Msg::Aid(ref a) if a.name == "scipp_peer"));
    assert!(raw.next().await.is_none(), "then the connection is closed");
}
