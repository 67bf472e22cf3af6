//! Transcript replay, server role: for every file in
//! `vectors/tractor/` and `vectors/tractor-head/`, and
//! for `tractor-more/registrar.json`, a scripted client sends the recorded
//! client frames byte for byte to a scipp peer serving the example
//! endpoints, and everything the peer sends must match the recorded server
//! frames — kind, order and every field — after normalising uuids, cids,
//! Python task addresses and traceback text.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use scipp::framing::FramingLayer;
use scipp::peer::Peer;
use scipp::{examples, MsgpackCodec};
use std::path::Path;
use std::time::Duration;
use tower::Layer;
#[path = "support/client_script.rs"]
mod client_script;
#[path = "support/transcripts.rs"]
mod support;
use support::{normalise_text, unhex};

/// Every transcript file of the base sets (978691c6 and HEAD), sorted,
/// and the registrar scenario.
fn transcripts() -> Vec<std::path::PathBuf> {
    let vectors = support::vectors_dir();
    let mut paths = Vec::new();
    for set in ["tractor", "tractor-head"] {
        let mut files: Vec<_> = std::fs::read_dir(vectors.join(set))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        paths.extend(files);
    }
    paths.push(vectors.join("tractor-more/registrar.json"));
    paths
}

fn is_head(path: &Path) -> bool {
    path.parent().is_some_and(|d| d.ends_with("tractor-head"))
}

/// The recorded server's tractor was its own registrar, at this address.
const RECORDED_REGISTRAR: &str = "127.0.0.1:50895";

/// A peer like the recorded server: the example endpoints, plus the
/// registry RPCs and `is_registrar = true` where the recording's server
/// was a registrar (HEAD says so in its `Aid`; `registrar.json` uses it).
fn recorded_server() -> Peer<MsgpackCodec> {
    let mut endpoints = examples::scipp_peer();
    let registrar = Registrar::new();
    registrar.install(&mut endpoints);
    let peer = Peer::new("scipp_peer", MsgpackCodec::new())
        .endpoints(endpoints)
        .is_registrar(true);
    registrar.register(peer.uid(), RECORDED_REGISTRAR.parse().unwrap());
    peer
}

fn normalise(v: &rmpv::Value, key: Option<&str>) -> rmpv::Value {
    use rmpv::Value as V;
    match v {
        V::String(_) if key == Some("tb_str") => V::from("<traceback>"),
        V::Integer(_) if key == Some("pid") => V::from(0),
        V::String(s) => V::from(normalise_text(s.as_str().unwrap_or(""))),
        V::Array(items) => V::Array(items.iter().map(|x| normalise(x, None)).collect()),
        V::Map(entries) => V::Map(
            entries
                .iter()
                .map(|(k, x)| (normalise(k, None), normalise(x, k.as_str())))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn decode(body: &[u8]) -> rmpv::Value {
    normalise(&rmpv::decode::read_value(&mut &body[..]).unwrap(), None)
}

async fn replay_server_role(path: &Path) -> usize {
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let server = recorded_server();
    // the accepting side answers in the client's wire profile
    let serving = tokio::spawn(async move { server.accept(ours).await });
    let client = FramingLayer::new().layer(theirs);
    let frames = file["frames"].as_array().unwrap();
    client_script::play(path, frames, client, serving, |at, ours, body| {
        assert_eq!(
            decode(ours),
            decode(body),
            "{at}: our server's frame differs from the recording"
        );
    })
    .await
}

#[tokio::test]
async fn our_peer_plays_the_server_side_of_every_transcript() {
    let paths = transcripts();
    let mut total = 0;
    for path in &paths {
        total += replay_server_role(path).await;
    }
    assert!(paths.len() >= 23);
    eprintln!(
        "server role: {} files, {total} server frames matched",
        paths.len()
    );
}

// ---- client role -----------------------------------------------------------

use scipp::context::ContextError;
use scipp::msg::{Cid, Msg, Uid};
use scipp::payload::PldSpec;
use scipp::peer::{Channel, Config};
use scipp::registry::{Registrar, RegistryClient};
use scipp::{Codec, WireProfile};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What the recorded client of `registrar.json` did: every registry RPC,
/// including a `wait_for_actor` answered by a later `register_actor`.
async fn registrar_script(chan: Arc<Channel<C>>) {
    let registry = RegistryClient::new(chan);
    let me = "scipp_peer";
    let fake = Uid::new("scipp_fake", "00000000-0000-4000-8000-000000000001");
    let late = Uid::new("scipp_late", "00000000-0000-4000-8000-000000000002");
    let (fake_at, late_at) = (
        "127.0.0.1:4242".parse().unwrap(),
        "127.0.0.1:4243".parse().unwrap(),
    );
    let names = |m: BTreeMap<String, Vec<scipp::msg::Addr>>| {
        m.keys()
            .map(|k| k.split('.').next().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(registry.entries().await.unwrap()), [me]);
    registry.register(&fake, &fake_at).await.unwrap();
    assert_eq!(
        registry.find("scipp_fake").await.unwrap(),
        vec![fake_at.clone()]
    );
    assert_eq!(registry.wait_for("scipp_fake").await.unwrap(), [fake_at]);
    // the wait goes out first and stays pending until the registration
    let (waited, registered) = tokio::join!(
        registry.wait_for("scipp_late"),
        registry.register(&late, &late_at)
    );
    registered.unwrap();
    assert_eq!(waited.unwrap(), [late_at]);
    assert_eq!(
        names(registry.entries().await.unwrap()),
        ["scipp_fake", "scipp_late", me]
    );
    registry.unregister(&fake).await.unwrap();
    registry.unregister(&late).await.unwrap();
    assert!(registry.find("scipp_fake").await.unwrap().is_empty());
    assert_eq!(names(registry.entries().await.unwrap()), [me]);
}

type C = MsgpackCodec;

/// The payloads the recorded client streamed, in order.
fn recorded_yields(file: &serde_json::Value) -> Vec<rmpv::Value> {
    file["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["dir"] == "c2s" && f["msg_type"] == "Yield")
        .map(|f| {
            let body = Bytes::from(unhex(f["hex"].as_str().unwrap())).slice(4..);
            match MsgpackCodec::new().decode(body).unwrap() {
                Msg::Yield(y) => MsgpackCodec::new().decode_payload(&y.pld).unwrap(),
                _ => unreachable!(),
            }
        })
        .collect()
}

fn first<V: serde::Serialize>(v: V) -> BTreeMap<&'static str, V> {
    BTreeMap::from([("first", v)])
}

/// What the recorded client did, scenario by scenario, with our API.
async fn client_script(name: &str, chan: &Arc<Channel<C>>, file: &serde_json::Value) {
    let ns = examples::NS;
    match name {
        "handshake" => {}
        "echo_stream" => {
            let (mut ctx, hello): (_, String) = chan
                .open_context(ns, "echo")
                .kwargs(&first("hello"))
                .start()
                .await
                .unwrap();
            assert_eq!(hello, "hello");
            let values = recorded_yields(file);
            for v in &values {
                ctx.send(v).await.unwrap();
                assert_eq!(ctx.recv::<rmpv::Value>().await.unwrap().as_ref(), Some(v));
            }
            ctx.close().await.unwrap();
            assert_eq!(ctx.result::<usize>().await.unwrap(), values.len());
        }
        "typed_struct" => {
            let (mut ctx, origin): (_, examples::PointOrInt) = chan
                .open_context(ns, "echo_point")
                .spec(examples::point_spec())
                .start()
                .await
                .unwrap();
            assert_eq!(
                origin,
                examples::PointOrInt::Point(examples::Point { x: 0, y: 0 })
            );
            let values = recorded_yields(file);
            for v in &values {
                ctx.send(v).await.unwrap();
                ctx.recv::<examples::PointOrInt>().await.unwrap().unwrap();
            }
            ctx.close().await.unwrap();
            assert_eq!(ctx.result::<usize>().await.unwrap(), values.len());
        }
        "asyncfunc" => {
            let sum: i64 = chan
                .rpc(ns, "add", &BTreeMap::from([("a", 2), ("b", 3)]))
                .await
                .unwrap();
            assert_eq!(sum, 5);
        }
        "remote_error" => {
            let (mut ctx, ready): (_, String) =
                chan.open_context(ns, "raises").start().await.unwrap();
            assert_eq!(ready, "ready");
            let err = ctx.recv::<rmpv::Value>().await.unwrap_err();
            assert_eq!(err.remote().unwrap().boxed_type(), "ValueError");
        }
        "unknown_func" => {
            let err = chan
                .open_context(ns, "no_such_func")
                .start::<()>()
                .await
                .unwrap_err();
            assert_eq!(err.remote().unwrap().boxed_type(), "AttributeError");
        }
        "ctx_cancel" => {
            let (ctx, ()) = chan
                .open_context(ns, "sleep_forever")
                .start()
                .await
                .unwrap();
            ctx.cancel().await.unwrap();
        }
        "mte_c2s" => {
            let (mut ctx, zero): (_, i64) = chan
                .open_context(ns, "echo_int")
                .kwargs(&first(0))
                .spec(PldSpec::of::<i64>())
                .start()
                .await
                .unwrap();
            assert_eq!(zero, 0);
            ctx.send(&1).await.unwrap();
            assert_eq!(ctx.recv::<i64>().await.unwrap(), Some(1));
            ctx.send("not-an-int").await.unwrap();
            assert_eq!(ctx.recv::<i64>().await.unwrap(), None);
            let err = ctx.result::<i64>().await.unwrap_err();
            assert_eq!(err.remote().unwrap().boxed_type(), "MsgTypeError");
        }
        "mte_s2c" => {
            let (mut ctx, _): (_, i64) = chan
                .open_context(ns, "bad_yield")
                .spec(PldSpec::of::<i64>())
                .start()
                .await
                .unwrap();
            assert_eq!(ctx.recv::<i64>().await.unwrap(), Some(1));
            match ctx.recv::<i64>().await {
                Err(ContextError::MsgType(e)) => assert_eq!(e.value(), Some("'not-an-int'")),
                other => panic!("expected a MsgTypeError, got {other:?}"),
            }
            // the error escapes the block: close the stream, cancel
            ctx.close().await.unwrap();
            ctx.cancel().await.unwrap();
        }
        "bad_started" => {
            let err = chan
                .open_context(ns, "bad_started")
                .spec(PldSpec::of::<i64>())
                .start::<i64>()
                .await
                .unwrap_err();
            assert_eq!(err.remote().unwrap().boxed_type(), "MsgTypeError");
        }
        "actor_cancel" => chan.cancel_actor().await.unwrap(),
        "registrar" => registrar_script(chan.clone()).await,
        other => panic!("no client script for scenario {other}"),
    }
}

/// Rewrites the recorded server frame's cids to the ones our client chose,
/// and the recorded client's uid to ours.
fn with_our_ids(body: Bytes, cids: &HashMap<String, Cid>, client: &Option<(Uid, Uid)>) -> Bytes {
    let codec = MsgpackCodec::new();
    let uid = |u: &Uid| match client {
        Some((recorded, ours)) if u == recorded => ours.clone(),
        _ => u.clone(),
    };
    let map = |c: &Cid| cids.get(c.as_str()).cloned().unwrap_or_else(|| c.clone());
    let msg = match codec.decode(body).unwrap() {
        Msg::StartAck(mut m) => {
            m.cid = map(&m.cid);
            Msg::StartAck(m)
        }
        Msg::Started(mut m) => {
            m.cid = map(&m.cid);
            Msg::Started(m)
        }
        Msg::Yield(mut m) => {
            m.cid = map(&m.cid);
            Msg::Yield(m)
        }
        Msg::Return(mut m) => {
            m.cid = map(&m.cid);
            Msg::Return(m)
        }
        Msg::Stop(mut m) => {
            m.cid = map(&m.cid);
            Msg::Stop(m)
        }
        Msg::CancelAck(mut m) => {
            m.cid = map(&m.cid);
            Msg::CancelAck(m)
        }
        Msg::Error(mut e) => {
            e.cid = e.cid.as_ref().map(map);
            e.canceller = e.canceller.as_ref().map(uid);
            e.sender = e.sender.as_ref().map(uid);
            e.src_uid = uid(&e.src_uid);
            e.relay_path = e.relay_path.iter().map(uid).collect();
            Msg::Error(e)
        }
        other => other,
    };
    codec.encode_to_bytes(&msg).unwrap()
}

async fn replay_client_role(path: &Path) -> usize {
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let mut client = Peer::new("scipp_client", MsgpackCodec::new());
    if is_head(path) {
        // the recorded HEAD client was its own registrar
        client = client
            .config(Config {
                profile: Some(WireProfile::Head),
                ..Config::default()
            })
            .is_registrar(true);
    }
    let frames = file["frames"].as_array().unwrap().clone();
    let at = |f: &serde_json::Value| format!("{} seq {}", path.display(), f["seq"]);
    let server = async {
        let mut io = FramingLayer::new().layer(theirs);
        let mut cids: HashMap<String, Cid> = HashMap::new();
        let mut client_uid: Option<(Uid, Uid)> = None;
        let mut compared = 0;
        for f in &frames {
            let body = Bytes::from(unhex(f["hex"].as_str().unwrap())).slice(4..);
            if f["dir"] == "s2c" {
                io.send(with_our_ids(body, &cids, &client_uid))
                    .await
                    .unwrap();
                continue;
            }
            let got = tokio::time::timeout(Duration::from_secs(10), io.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "{}: our client sent nothing (expected {})",
                        at(f),
                        f["msg_type"]
                    )
                })
                .unwrap_or_else(|| panic!("{}: our client closed", at(f)))
                .unwrap();
            match (
                MsgpackCodec::new().decode(got.clone()),
                MsgpackCodec::new().decode(body.clone()),
            ) {
                (Ok(Msg::Start(ours)), Ok(Msg::Start(rec))) => {
                    cids.insert(rec.cid.as_str().to_owned(), ours.cid.clone());
                }
                (Ok(Msg::Aid(ours)), Ok(Msg::Aid(rec))) => {
                    client_uid = Some((rec.uid(), ours.uid()))
                }
                _ => {}
            }
            assert_eq!(
                decode(&got),
                decode(&body),
                "{}: our client's frame differs from the recording",
                at(f)
            );
            compared += 1;
        }
        compared
    };
    let script = async {
        let chan = Arc::new(client.channel(ours).await.unwrap());
        client_script(&name, &chan, &file).await;
        chan
    };
    let (compared, chan) = tokio::join!(server, script);
    drop(chan);
    compared
}

#[tokio::test]
async fn our_peer_plays_the_client_side_of_every_transcript() {
    let paths = transcripts();
    let mut total = 0;
    for path in &paths {
        total += replay_client_role(path).await;
    }
    assert!(paths.len() >= 23);
    eprintln!(
        "client role: {} files, {total} client frames matched",
        paths.len()
    );
}
