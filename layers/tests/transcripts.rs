//! Every recorded tractor dialog is legal for our dialog state machine,
//! seen from either end: the msg-type layer refuses nothing real tractor
//! actors put on the wire.

use bytes::Bytes;
use scipp_codecs::msg::Msg;
use scipp_codecs::{msgpack::MsgpackCodec, Codec};
use scipp_layers::msg_type::EnforceMsgTypeLayer;
use scipp_layers::{BoxError, Inbound};
use std::path::Path;
use tower::{Layer, ServiceExt};
#[path = "../../tests/support/transcripts.rs"]
mod support;
use support::{read_transcript, unhex};

/// Plays one file as the side that sends `ours` ("c2s" or "s2c").
async fn play(path: &Path, ours: &str) -> Vec<String> {
    let file = read_transcript(path);
    let layer = EnforceMsgTypeLayer::expecting_handshake();
    let mut refused = Vec::new();
    for f in file["frames"].as_array().unwrap() {
        let body = Bytes::from(unhex(f["hex"].as_str().unwrap())).slice(4..);
        let msg: Msg = MsgpackCodec::new().decode(body).unwrap();
        let seq = &f["seq"];
        if f["dir"] == ours {
            if matches!(msg, Msg::Aid(_)) {
                continue; // our own handshake is not part of the table
            }
            let sink = tower::service_fn(|_: Msg| async { Ok::<_, BoxError>(()) });
            if let Err(e) = layer.layer(sink).oneshot(msg).await {
                refused.push(format!("{} seq {seq} (tx): {e}", path.display()));
            }
        } else {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let app = tower::service_fn(move |i: Inbound| {
                let tx = tx.clone();
                async move { tx.send(i).map_err(|_| BoxError::from("gone")) }
            });
            layer.layer(app).oneshot(Inbound::Msg(msg)).await.unwrap();
            if let Inbound::Invalid(e) = rx.recv().await.unwrap() {
                refused.push(format!("{} seq {seq} (rx): {e}", path.display()));
            }
        }
    }
    refused
}

#[tokio::test]
async fn every_transcript_is_legal_from_both_ends() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors");
    let mut files = 0;
    let mut refused = Vec::new();
    for set in ["tractor", "tractor-more", "tractor-head"] {
        for entry in std::fs::read_dir(root.join(set)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy();
            if name.ends_with(".json") || name.ends_with(".json.gz") {
                refused.extend(play(&path, "c2s").await);
                refused.extend(play(&path, "s2c").await);
                files += 1;
            }
        }
    }
    assert!(files >= 35, "{files} transcript files");
    assert!(
        refused.is_empty(),
        "{} refused:\n{}",
        refused.len(),
        refused.join("\n")
    );
}
