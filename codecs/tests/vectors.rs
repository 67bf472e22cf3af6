//! Replays every golden transcript in `vectors/*/` (in-repo copies): each frame
//! must decode, match the capture's decoded form field by field, and
//! re-encode to the very same bytes under the file's wire profile.
//!
//! New transcript files are picked up with no code change.

use bytes::Bytes;
use scipp_codecs::msg::*;
use scipp_codecs::{msgpack::MsgpackCodec, Codec, WireProfile};
use serde_json::{json, Map, Value as Json};
use std::path::Path;
#[path = "../../tests/support/transcripts.rs"]
mod support;
use support::{hex, read_transcript, unhex, vectors_dir};

/// Whether `path` is a transcript: `*.json` or `*.json.gz`.
fn is_transcript(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".json") || name.ends_with(".json.gz")
}

/// A msgpack value rendered as the transcripts render it: bin as hex.
fn value_json(v: &rmpv::Value) -> Json {
    use rmpv::Value as V;
    match v {
        V::Nil => Json::Null,
        V::Boolean(b) => json!(b),
        V::Integer(i) => i
            .as_i64()
            .map(|i| json!(i))
            .unwrap_or_else(|| json!(i.as_u64())),
        V::F32(f) => json!(f),
        V::F64(f) => json!(f),
        V::String(s) => json!(s.as_str().expect("utf8")),
        V::Binary(b) => json!(hex(b)),
        V::Array(a) => Json::Array(a.iter().map(value_json).collect()),
        V::Map(m) => Json::Object(
            m.iter()
                .map(|(k, v)| {
                    let key = k
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| k.to_string());
                    (key, value_json(v))
                })
                .collect(),
        ),
        V::Ext(t, d) => json!({"ext": t, "data": hex(d)}),
    }
}

fn raw_json(codec: &MsgpackCodec, raw: &RawPayload) -> Json {
    let v: rmpv::Value = codec.decode_payload(raw).expect("payload decodes as Any");
    value_json(&v)
}

fn uid_json(u: &Uid) -> Json {
    json!([u.name, u.uuid])
}

fn opt_uid_json(u: Option<&Uid>) -> Json {
    u.map(uid_json).unwrap_or(Json::Null)
}

fn addrs_json(a: &[Addr]) -> Json {
    a.iter()
        .map(|a| match a {
            Addr::Tcp { host, port } => json!([host, port]),
            Addr::Uds { dir, file } => json!([dir, file]),
        })
        .collect()
}

/// Our decoded message, rendered like the capture's `msg` field.
fn msg_json(codec: &MsgpackCodec, msg: &Msg, profile: WireProfile) -> Json {
    let mut o = Map::new();
    o.insert("msg_type".into(), json!(msg.kind().as_str()));
    let mut put = |k: &str, v: Json| {
        o.insert(k.into(), v);
    };
    match msg {
        Msg::Aid(m) => {
            put("name", json!(m.name));
            put("uuid", json!(m.uuid));
            if profile == WireProfile::Head {
                put("pid", json!(m.pid));
                put("is_registrar", json!(m.is_registrar));
                put("is_probe", json!(m.is_probe));
            }
        }
        Msg::SpawnSpec(m) => {
            put("_parent_main_data", raw_json(codec, &m.parent_main_data));
            put("_runtime_vars", raw_json(codec, &m.runtime_vars));
            put(
                "enable_modules",
                m.enable_modules
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect(),
            );
            put("reg_addrs", addrs_json(&m.reg_addrs));
            put(
                "bind_addrs",
                m.bind_addrs
                    .as_deref()
                    .map(addrs_json)
                    .unwrap_or(Json::Null),
            );
        }
        Msg::Start(m) => {
            put("cid", json!(m.cid.as_str()));
            put("ns", json!(m.ns));
            put("func", json!(m.func));
            put("kwargs", raw_json(codec, &m.kwargs));
            put("uid", uid_json(&m.uid));
            put("pld_spec", json!(m.pld_spec));
        }
        Msg::StartAck(m) => {
            put("cid", json!(m.cid.as_str()));
            put("functype", json!(m.functype.as_str()));
        }
        Msg::Started(Started { cid, pld })
        | Msg::Yield(Yield { cid, pld })
        | Msg::Return(Return { cid, pld }) => {
            put("cid", json!(cid.as_str()));
            put("pld", raw_json(codec, pld));
        }
        Msg::Stop(m) => put("cid", json!(m.cid.as_str())),
        Msg::CancelAck(m) => {
            put("cid", json!(m.cid.as_str()));
            put("pld", json!(m.pld));
        }
        Msg::Error(m) => {
            put("src_uid", uid_json(&m.src_uid));
            put("src_type_str", json!(m.src_type_str));
            put("boxed_type_str", json!(m.boxed_type_str));
            put("relay_path", m.relay_path.iter().map(uid_json).collect());
            put("message", json!(m.message));
            put("tb_str", json!(m.tb_str));
            put("canceller", opt_uid_json(m.canceller.as_ref()));
            put("sender", opt_uid_json(m.sender.as_ref()));
            put("cid", json!(m.cid.as_ref().map(Cid::as_str)));
            put(
                "_bad_msg",
                m.bad_msg
                    .as_deref()
                    .map(|b| msg_json(codec, b, profile))
                    .unwrap_or(Json::Null),
            );
            put(
                "_bad_msg_as_dict",
                m.bad_msg_as_dict
                    .as_ref()
                    .map(|r| raw_json(codec, r))
                    .unwrap_or(Json::Null),
            );
        }
    }
    Json::Object(o)
}

struct Tally {
    files: usize,
    frames: usize,
}

fn replay_dir(name: &str) -> Tally {
    let dir = vectors_dir().join(name);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| is_transcript(p))
        .collect();
    paths.sort();
    let mut tally = Tally {
        files: 0,
        frames: 0,
    };
    for path in paths {
        let file: Json = read_transcript(&path);
        let commit = file["meta"]["tractor_commit"]
            .as_str()
            .expect("meta.tractor_commit");
        let profile = WireProfile::from_commit(commit)
            .unwrap_or_else(|| panic!("{}: unknown tractor commit {commit}", path.display()));
        let codec = MsgpackCodec::with_profile(profile);
        let frames = file["frames"].as_array().expect("frames");
        assert!(!frames.is_empty(), "{}: no frames", path.display());
        for f in frames {
            let at = format!("{} seq {}", path.display(), f["seq"]);
            let wire = unhex(f["hex"].as_str().unwrap());
            let len = u32::from_le_bytes(wire[..4].try_into().unwrap()) as usize;
            assert_eq!(len, wire.len() - 4, "{at}: length prefix");
            assert_eq!(len as u64, f["len"].as_u64().unwrap(), "{at}: len field");
            let body = Bytes::from(wire).slice(4..);

            let msg = codec
                .decode(body.clone())
                .unwrap_or_else(|e| panic!("{at}: {e}"));
            assert_eq!(
                msg.kind().as_str(),
                f["msg_type"].as_str().unwrap(),
                "{at}: msg_type"
            );
            assert_eq!(
                msg.cid().map(Cid::as_str),
                f["msg"]["cid"].as_str(),
                "{at}: cid"
            );
            assert_eq!(
                msg_json(&codec, &msg, profile),
                f["msg"],
                "{at}: decoded fields"
            );

            let again = codec.encode_to_bytes(&msg).unwrap();
            assert!(
                again == body,
                "{at}: re-encoded bytes differ\n ours: {}\n wire: {}",
                hex(&again),
                hex(&body)
            );
            tally.frames += 1;
        }
        tally.files += 1;
    }
    tally
}

#[test]
fn tractor_978691c6_frames_reencode_byte_identical() {
    let t = replay_dir("tractor");
    eprintln!(
        "tractor/: {} files, {} frames byte-identical",
        t.files, t.frames
    );
    assert!(
        t.files >= 11 && t.frames >= 99,
        "expected the full base set"
    );
}

#[test]
fn tractor_more_frames_reencode_byte_identical() {
    let t = replay_dir("tractor-more");
    eprintln!(
        "tractor-more/: {} files, {} frames byte-identical",
        t.files, t.frames
    );
    assert!(t.files >= 13);
}

#[test]
fn tractor_head_frames_reencode_byte_identical_under_head_profile() {
    let t = replay_dir("tractor-head");
    eprintln!(
        "tractor-head/: {} files, {} frames byte-identical",
        t.files, t.frames
    );
    assert!(t.files >= 11 && t.frames >= 99);
}

#[test]
fn tractor_spawn_frames_reencode_byte_identical() {
    let t = replay_dir("tractor-spawn");
    eprintln!(
        "tractor-spawn/: {} files, {} frames byte-identical",
        t.files, t.frames
    );
    assert!(t.files >= 12);
}

#[test]
fn a_yield_payload_is_a_slice_of_the_frame() {
    // Yield with 64 KiB of bin, as in tractor-more/big_payload.json.
    let codec = MsgpackCodec::new();
    let data: Vec<u8> = (0..65_536u32).map(|i| (i % 251) as u8).collect();
    let msg = Msg::Yield(Yield {
        cid: Cid::from("f3ae7fac-3352-4cf5-b26f-b29198be782c"),
        pld: codec
            .encode_payload(serde_bytes::Bytes::new(&data))
            .unwrap(),
    });
    let frame = codec.encode_to_bytes(&msg).unwrap();

    let Msg::Yield(y) = codec.decode(frame.clone()).unwrap() else {
        panic!()
    };
    let frame_range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
    let pld = y.pld.as_bytes();
    assert!(
        frame_range.contains(&(pld.as_ptr() as usize)),
        "pld was copied out of the frame"
    );
    assert!(frame_range.contains(&(pld.as_ptr() as usize + pld.len() - 1)));
    assert_eq!(&pld[5..], &data[..], "bin32 header then the data");
}
