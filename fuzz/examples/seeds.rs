//! Writes the seed corpora from the golden transcripts:
//! `seeds/msgpack` (every frame body), `seeds/payload` (every payload),
//! `seeds/cbor` and `seeds/protobuf` (every transcript frame re-encoded
//! with that codec) and `seeds/dialog` (one frame sequence per
//! connection and side, in the `dialog` target's record format).
//!
//! ```sh
//! cd fuzz && cargo run --example seeds
//! ```

use scipp_codecs::{cbor::CborCodec, msgpack::MsgpackCodec, protobuf::ProtobufCodec, Codec};
use std::collections::BTreeMap;
use std::path::Path;

/// Frames bigger than this stay out of the corpus: it is committed, and
/// the fuzzer grows big inputs itself.
const MAX_SEED: usize = 4096;

fn main() {
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors");
    let mut frames: Vec<(String, u64, bool, Vec<u8>)> = Vec::new();
    for set in ["tractor", "tractor-more", "tractor-head"] {
        let mut files: Vec<_> = std::fs::read_dir(vectors.join(set))
            .expect("transcripts")
            .map(|e| e.expect("entry").path())
            .filter(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                name.ends_with(".json") || name.ends_with(".json.gz")
            })
            .collect();
        files.sort();
        for file in files {
            let raw = std::fs::read(&file).expect("read");
            let text = if file.extension().is_some_and(|x| x == "gz") {
                let mut text = String::new();
                std::io::Read::read_to_string(
                    &mut flate2::read::GzDecoder::new(&raw[..]),
                    &mut text,
                )
                .expect("gunzip");
                text
            } else {
                String::from_utf8(raw).expect("utf-8")
            };
            let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
            let name = format!("{set}/{}", file.file_name().unwrap().to_string_lossy());
            for f in doc["frames"].as_array().into_iter().flatten() {
                let hex = f["hex"].as_str().expect("hex");
                let bytes = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit"))
                    .collect::<Vec<u8>>();
                let conn = f["conn"].as_u64().unwrap_or(0);
                let c2s = f["dir"].as_str() == Some("c2s");
                if bytes.len() - 4 <= MAX_SEED {
                    frames.push((name.clone(), conn, c2s, bytes[4..].to_vec()));
                }
            }
        }
    }
    let msgpack = MsgpackCodec::new();
    let mut written = BTreeMap::new();
    for (dir, codec) in [
        ("cbor", &CborCodec::new() as &dyn Reencode),
        ("protobuf", &ProtobufCodec::new()),
    ] {
        let out = Path::new("seeds").join(dir);
        std::fs::create_dir_all(&out).expect("mkdir");
        for (_, _, _, body) in &frames {
            let Ok(msg) = msgpack.decode(bytes::Bytes::copy_from_slice(body)) else {
                continue;
            };
            let bytes = codec.reencode(&msg);
            std::fs::write(out.join(name_of(&bytes)), &bytes).expect("write");
            *written.entry(dir).or_insert(0) += 1;
        }
    }
    for (dir, bodies) in [
        (
            "msgpack",
            frames.iter().map(|f| f.3.clone()).collect::<Vec<_>>(),
        ),
        (
            "payload",
            frames
                .iter()
                .filter_map(|f| msgpack.decode(bytes::Bytes::copy_from_slice(&f.3)).ok())
                .filter_map(|m| m.pld().map(|p| p.as_bytes().to_vec()))
                .collect(),
        ),
    ] {
        let out = Path::new("seeds").join(dir);
        std::fs::create_dir_all(&out).expect("mkdir");
        for body in bodies {
            std::fs::write(out.join(name_of(&body)), &body).expect("write");
            *written.entry(dir).or_insert(0) += 1;
        }
    }
    // one sequence per (file, connection, side we play)
    let out = Path::new("seeds").join("dialog");
    std::fs::create_dir_all(&out).expect("mkdir");
    let mut conns: BTreeMap<(String, u64), Vec<(bool, Vec<u8>)>> = BTreeMap::new();
    for (file, conn, c2s, body) in frames {
        conns.entry((file, conn)).or_default().push((c2s, body));
    }
    for frames in conns.values() {
        for we_are_server in [true, false] {
            let mut seed = Vec::new();
            for (c2s, body) in frames {
                let sent_by_us = *c2s != we_are_server;
                let len = u16::try_from(body.len()).expect("seed frames are small");
                seed.push(u8::from(sent_by_us));
                seed.extend_from_slice(&len.to_le_bytes());
                seed.extend_from_slice(body);
            }
            std::fs::write(out.join(name_of(&seed)), &seed).expect("write");
            *written.entry("dialog").or_insert(0) += 1;
        }
    }
    println!("{written:?}");
}

trait Reencode {
    fn reencode(&self, msg: &scipp_codecs::msg::Msg) -> Vec<u8>;
}

impl<C: Codec> Reencode for C {
    fn reencode(&self, msg: &scipp_codecs::msg::Msg) -> Vec<u8> {
        self.encode_to_bytes(msg).expect("encodes").to_vec()
    }
}

/// A stable file name from the content (FNV-1a), so reruns do not duplicate.
fn name_of(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}
