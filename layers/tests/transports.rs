//! The same stacks over every kind of transport: an in-memory duplex, TCP
//! on loopback and a Unix socket, with two codecs. An endpoint's send stack
//! (payload check, msg-type, codec, batched writer) streams to the caller's
//! receive stack (codec, msg-type, payload check, policy) through real
//! bytes, and everything arrives, in order, typed.

use scipp_codecs::msg::*;
use scipp_codecs::{cbor::CborCodec, msgpack::MsgpackCodec, Codec};
use scipp_layers::channel::{self, Writer};
use scipp_layers::codec::CodecLayer;
use scipp_layers::framing::FramingLayer;
use scipp_layers::msg_type::EnforceMsgTypeLayer;
use scipp_layers::payload::{PayloadSpecs, PldSpec, ValidatePayloadLayer};
use scipp_layers::{policy, BoxError, Inbound};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::FramedRead;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

const N: i64 = 100;

fn start<C: Codec>(codec: &C, cid: &Cid) -> Msg {
    let kwargs = codec
        .encode_payload(&std::collections::BTreeMap::<String, i64>::new())
        .unwrap();
    Msg::from(Start {
        cid: cid.clone(),
        ns: "scipp_peer".into(),
        func: "count".into(),
        kwargs,
        uid: Uid::new("scipp_client", "1"),
        pld_spec: Start::DEFAULT_PLD_SPEC.into(),
    })
}

/// The endpoint streams `0..N` then returns `N`; returns what the caller's
/// stack delivered.
async fn stream_over<C, R, W>(codec: C, read: R, write: W) -> Vec<Msg>
where
    C: Codec,
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let cid = Cid::from("c-transport");
    let specs = PayloadSpecs::new(PldSpec::<C>::of::<i64>());
    let noop_tx = || tower::service_fn(|_: Msg| async { Ok::<_, BoxError>(()) });
    let noop_rx = || tower::service_fn(|_: Inbound| async { Ok::<_, BoxError>(()) });

    // The caller (receiving end): it sent the Start (recorded in its table).
    let caller_enforce = EnforceMsgTypeLayer::new();
    caller_enforce
        .layer(noop_tx())
        .oneshot(start(&codec, &cid))
        .await
        .unwrap();
    let (tx, mut got) = tokio::sync::mpsc::unbounded_channel();
    let app = tower::service_fn(move |item: Inbound| {
        let tx = tx.clone();
        async move { tx.send(item).map_err(|_| BoxError::from("gone")) }
    });
    let receive = ServiceBuilder::new()
        .layer(CodecLayer::new(codec.clone()))
        .layer(caller_enforce.clone())
        .layer(ValidatePayloadLayer::new(codec.clone(), specs.clone()))
        .layer(policy::fail_fast())
        .service(app);
    let reader = tokio::spawn(channel::drive(
        FramedRead::new(read, FramingLayer::new().codec()),
        receive,
    ));

    // The endpoint (sending end): it received that Start.
    let endpoint_enforce = EnforceMsgTypeLayer::new();
    endpoint_enforce
        .layer(noop_rx())
        .oneshot(Inbound::Msg(start(&codec, &cid)))
        .await
        .unwrap();
    let (writer, writer_task) = Writer::spawn(write, FramingLayer::new().codec(), 8);
    let mut send = ServiceBuilder::new()
        .layer(ValidatePayloadLayer::new(codec.clone(), specs).strict(true))
        .layer(endpoint_enforce)
        .layer(CodecLayer::new(codec.clone()))
        .service(writer);
    let pld = |v: i64| codec.encode_payload(&v).unwrap();
    let mut out = vec![
        Msg::StartAck(StartAck {
            cid: cid.clone(),
            functype: FuncType::Context,
        }),
        Msg::Started(Started {
            cid: cid.clone(),
            pld: pld(-1),
        }),
    ];
    out.extend((0..N).map(|i| {
        Msg::Yield(Yield {
            cid: cid.clone(),
            pld: pld(i),
        })
    }));
    out.push(Msg::Stop(Stop { cid: cid.clone() }));
    out.push(Msg::Return(Return {
        cid: cid.clone(),
        pld: pld(N),
    }));
    for msg in out {
        send.ready().await.unwrap().call(msg).await.unwrap();
    }
    drop(send); // the writer flushes what is queued, then closes: EOF
    writer_task.await.unwrap().unwrap();
    reader.await.unwrap().unwrap();
    assert_eq!(
        caller_enforce.live_dialogs(),
        0,
        "the Return ended the dialog"
    );

    let mut delivered = Vec::new();
    while let Ok(item) = got.try_recv() {
        match item {
            Inbound::Msg(m) => delivered.push(m),
            Inbound::Invalid(e) => panic!("unexpected invalid item: {e}"),
        }
    }
    delivered
}

fn check<C: Codec>(codec: &C, delivered: &[Msg]) {
    let kinds: Vec<MsgKind> = delivered.iter().map(Msg::kind).collect();
    assert_eq!(kinds.len() as i64, N + 4);
    assert_eq!(&kinds[..2], &[MsgKind::StartAck, MsgKind::Started]);
    assert_eq!(&kinds[kinds.len() - 2..], &[MsgKind::Stop, MsgKind::Return]);
    let ints: Vec<i64> = delivered
        .iter()
        .filter_map(|m| match m {
            Msg::Yield(y) => Some(codec.decode_payload(&y.pld).unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(ints, (0..N).collect::<Vec<_>>());
}

#[tokio::test]
async fn over_an_in_memory_duplex() {
    let (a, b) = tokio::io::duplex(4096);
    let codec = MsgpackCodec::new();
    check(&codec, &stream_over(codec, b, a).await);
}

#[tokio::test]
async fn over_tcp_loopback() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let (read, _) = client.into_split();
    let (_, write) = server.into_split();
    let codec = CborCodec::new();
    check(&codec, &stream_over(codec, read, write).await);
}

#[cfg(unix)]
#[tokio::test]
async fn over_a_unix_socket() {
    let (a, b) = tokio::net::UnixStream::pair().unwrap();
    let (read, _) = a.into_split();
    let (_, write) = b.into_split();
    let codec = MsgpackCodec::new();
    check(&codec, &stream_over(codec, read, write).await);
}
