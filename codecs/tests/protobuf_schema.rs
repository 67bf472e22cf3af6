//! Keeps `scipp.proto` and the hand-written prost types in sync: every
//! message of the `.proto` text must have a Rust type with the same field
//! names, tags and wire types, and every `Envelope` case must encode under
//! the tag the `.proto` gives it.
#![cfg(feature = "protobuf")]

use bytes::Bytes;
use prost::Message;
use scipp_codecs::protobuf::{schema::*, PROTO};
use std::collections::BTreeMap;

/// `message -> field -> (tag, wire type)`, read from the `.proto` text.
fn proto_fields() -> BTreeMap<String, BTreeMap<String, (u32, u8)>> {
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in PROTO.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("message ") {
            let name = rest.trim_end_matches('{').trim().to_owned();
            out.insert(name.clone(), BTreeMap::new());
            current = Some(name);
        } else if line == "}" {
            // Closes a message (or Envelope's oneof, whose cases all come
            // before it).
            current = None;
        } else if let (Some(msg), Some((decl, tag))) = (&current, line.split_once('=')) {
            let tag: u32 = tag.trim().trim_end_matches(';').parse().expect("tag");
            let words: Vec<&str> = decl.split_whitespace().collect();
            let (ty, name) = (words[words.len() - 2], words[words.len() - 1]);
            let wire = match ty {
                "uint64" | "uint32" | "bool" | "FuncType" => 0,
                _ => 2, // string, bytes, messages
            };
            out.get_mut(msg)
                .unwrap()
                .insert(name.to_owned(), (tag, wire));
        }
    }
    out
}

fn varint(buf: &mut &[u8]) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = buf[0];
        *buf = &buf[1..];
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
    }
    v
}

/// The `(tag, wire type)` of every top-level field in an encoding.
fn wire_fields(bytes: &[u8]) -> Vec<(u32, u8)> {
    let mut buf = bytes;
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf);
        let (tag, wire) = ((key >> 3) as u32, (key & 7) as u8);
        match wire {
            0 => drop(varint(&mut buf)),
            2 => {
                let n = varint(&mut buf) as usize;
                buf = &buf[n..];
            }
            other => panic!("unexpected wire type {other}"),
        }
        if out.last() != Some(&(tag, wire)) {
            out.push((tag, wire));
        }
    }
    out
}

/// Field names of a prost message, from its `Debug` rendering.
fn debug_names(debug: &str) -> Vec<String> {
    let inner = &debug[debug.find('{').unwrap() + 1..debug.rfind('}').unwrap()];
    let (mut depth, mut names, mut token) = (0, Vec::new(), String::new());
    let mut chars = inner.chars().peekable();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => in_str = !in_str,
            '\\' if in_str => {
                chars.next();
            }
            _ if in_str => {}
            '{' | '(' | '[' => depth += 1,
            '}' | ')' | ']' => depth -= 1,
            ':' if depth == 0 && !token.trim().is_empty() => {
                names.push(token.trim().trim_start_matches(',').trim().to_owned());
                token.clear();
                continue;
            }
            ',' if depth == 0 => token.clear(),
            _ if depth == 0 => token.push(c),
            _ => {}
        }
    }
    names
}

fn uid() -> Uid {
    Uid {
        name: "n".into(),
        uuid: "u".into(),
    }
}

fn addr() -> Addr {
    Addr {
        host: "h".into(),
        port: Some(1),
        file: Some("f".into()),
    }
}

fn b() -> Bytes {
    Bytes::from_static(b"\x01")
}

fn check<M: Message>(proto: &BTreeMap<String, BTreeMap<String, (u32, u8)>>, name: &str, m: &M) {
    let fields = proto
        .get(name)
        .unwrap_or_else(|| panic!("message {name} missing from scipp.proto"));
    let mut declared: Vec<(u32, u8)> = fields.values().copied().collect();
    declared.sort();
    assert_eq!(
        wire_fields(&m.encode_to_vec()),
        declared,
        "{name}: tags / wire types"
    );
    let mut proto_names: Vec<&String> = fields.keys().collect();
    proto_names.sort_by_key(|n| fields[*n].0);
    assert_eq!(
        debug_names(&format!("{m:?}")),
        proto_names
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
        "{name}: field names"
    );
}

#[test]
fn proto_text_matches_the_rust_types() {
    let proto = proto_fields();
    check(&proto, "Uid", &uid());
    check(
        &proto,
        "Aid",
        &Aid {
            name: "n".into(),
            uuid: "u".into(),
            pid: Some(1),
            is_registrar: Some(true),
            is_probe: true,
        },
    );
    check(&proto, "Addr", &addr());
    check(
        &proto,
        "ModulePath",
        &ModulePath {
            module: "m".into(),
            path: "p".into(),
        },
    );
    check(
        &proto,
        "AddrList",
        &AddrList {
            addrs: vec![addr()],
        },
    );
    check(
        &proto,
        "SpawnSpec",
        &SpawnSpec {
            parent_main_data: b(),
            runtime_vars: b(),
            enable_modules: vec![ModulePath {
                module: "m".into(),
                path: "p".into(),
            }],
            reg_addrs: vec![addr()],
            bind_addrs: Some(AddrList {
                addrs: vec![addr()],
            }),
        },
    );
    check(
        &proto,
        "Start",
        &Start {
            cid: "c".into(),
            ns: "n".into(),
            func: "f".into(),
            kwargs: b(),
            uid: Some(uid()),
            pld_spec: "s".into(),
        },
    );
    check(
        &proto,
        "StartAck",
        &StartAck {
            cid: "c".into(),
            functype: FuncType::Context as i32,
        },
    );
    for name in ["Started", "Yield", "Return"] {
        check(
            &proto,
            name,
            &Payload {
                cid: "c".into(),
                pld: b(),
            },
        );
    }
    check(&proto, "Stop", &Stop { cid: "c".into() });
    check(
        &proto,
        "CancelAck",
        &CancelAck {
            cid: "c".into(),
            pld: true,
        },
    );
    let stop = Envelope {
        msg: Some(Body::Stop(Stop { cid: "c".into() })),
    };
    check(
        &proto,
        "Error",
        &Error {
            src_uid: Some(uid()),
            src_type_str: "s".into(),
            boxed_type_str: "b".into(),
            relay_path: vec![uid()],
            message: Some("m".into()),
            tb_str: "t".into(),
            canceller: Some(uid()),
            sender: Some(uid()),
            cid: Some("c".into()),
            bad_msg: Some(Box::new(stop)),
            bad_msg_as_dict: Some(b()),
        },
    );
    assert_eq!(
        proto.len(),
        15,
        "every .proto message is checked (Envelope below)"
    );
}

#[test]
fn envelope_cases_use_the_proto_tags() {
    let proto = proto_fields();
    let cases = &proto["Envelope"];
    let p = || Payload {
        cid: "c".into(),
        pld: b(),
    };
    let bodies = [
        ("aid", Body::Aid(Aid::default())),
        ("spawn_spec", Body::SpawnSpec(SpawnSpec::default())),
        ("start", Body::Start(Start::default())),
        ("start_ack", Body::StartAck(StartAck::default())),
        ("started", Body::Started(p())),
        ("yield", Body::Yield(p())),
        ("stop", Body::Stop(Stop::default())),
        ("return", Body::Return(p())),
        ("cancel_ack", Body::CancelAck(CancelAck::default())),
        ("error", Body::Error(Error::default())),
    ];
    assert_eq!(cases.len(), bodies.len());
    for (name, body) in bodies {
        let bytes = Envelope { msg: Some(body) }.encode_to_vec();
        assert_eq!(wire_fields(&bytes), vec![cases[name]], "Envelope.{name}");
    }
}
