//! Transcript replay, server role: for every file in
//! `../shared/vectors/tractor/`, a scripted client sends the recorded
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

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn is_uuid_at(b: &[u8], i: usize) -> bool {
    b.len() >= i + 36
        && (0..36).all(|k| match k {
            8 | 13 | 18 | 23 => b[i + k] == b'-',
            _ => b[i + k].is_ascii_hexdigit(),
        })
}

/// Replaces uuids with `<uuid>` and `0x...` addresses with `0x?`.
fn normalise_text(s: &str) -> String {
    let b = s.as_bytes();
    let (mut out, mut i) = (String::new(), 0);
    while i < b.len() {
        if is_uuid_at(b, i) {
            out.push_str("<uuid>");
            i += 36;
        } else if b[i..].starts_with(b"0x") && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit) {
            out.push_str("0x?");
            i += 2;
            while b.get(i).is_some_and(u8::is_ascii_hexdigit) {
                i += 1;
            }
        } else {
            let ch = s[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn normalise(v: &rmpv::Value, key: Option<&str>) -> rmpv::Value {
    use rmpv::Value as V;
    match v {
        V::String(_) if key == Some("tb_str") => V::from("<traceback>"),
        V::String(s) => V::from(normalise_text(s.as_str().unwrap_or(""))),
        V::Array(items) => V::Array(items.iter().map(|x| normalise(x, None)).collect()),
        V::Map(entries) => V::Map(
            entries
                .iter()
                .map(|(k, x)| (k.clone(), normalise(x, k.as_str())))
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
    let server = Peer::new("scipp_peer", MsgpackCodec::new()).endpoints(examples::scipp_peer());
    let mut serving = Some(tokio::spawn(async move { server.channel(ours).await }));
    let mut client = FramingLayer::new().layer(theirs);
    let mut channel = None;
    let mut compared = 0;
    for f in file["frames"].as_array().unwrap() {
        let at = format!("{} seq {}", path.display(), f["seq"]);
        let body = Bytes::from(unhex(f["hex"].as_str().unwrap())).slice(4..);
        if f["dir"] == "c2s" {
            client
                .send(body)
                .await
                .unwrap_or_else(|e| panic!("{at}: send: {e}"));
            if f["msg_type"] == "Aid" {
                // the handshake is symmetric: our Aid went out at once
                channel = Some(serving.take().unwrap().await.unwrap().unwrap());
            }
            continue;
        }
        let ours = tokio::time::timeout(Duration::from_secs(10), client.next())
            .await
            .unwrap_or_else(|_| panic!("{at}: the peer sent nothing (expected {})", f["msg_type"]))
            .unwrap_or_else(|| panic!("{at}: the peer closed"))
            .unwrap();
        assert_eq!(
            decode(&ours),
            decode(&body),
            "{at}: our server's frame differs from the recording"
        );
        compared += 1;
    }
    drop(channel);
    compared
}

#[tokio::test]
async fn our_peer_plays_the_server_side_of_every_transcript() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors/tractor");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    let mut total = 0;
    for path in &paths {
        total += replay_server_role(path).await;
    }
    assert!(paths.len() >= 11);
    eprintln!(
        "server role: {} files, {total} server frames matched",
        paths.len()
    );
}
