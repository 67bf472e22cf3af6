//! The codec conformance suite: one set of tests, run against every codec.
//!
//! Each codec must round-trip every message kind with representative
//! payloads, decode typed payloads (and refuse mistyped ones with a typed
//! error), and survive arbitrary bytes without panicking or allocating
//! beyond a bound proportional to the bytes it was given.
#![allow(unsafe_code)] // the counting allocator below

use bytes::Bytes;
use proptest::prelude::*;
use scipp::msg::*;
use scipp::sample::{self, Reading};
use scipp::{CborCodec, Codec, DecodeErrorKind, MsgpackCodec, ProtobufCodec, WireProfile};
use serde::{Deserialize, Serialize};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

// ---- a per-thread peak-allocation counter ---------------------------------

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    LIVE.with(|live| {
        let now = live.get() + delta;
        live.set(now);
        PEAK.with(|peak| peak.set(peak.get().max(now)));
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as isize));
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as isize - layout.size() as isize);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result with the peak heap growth it caused on
/// this thread.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    let peak = PEAK.with(Cell::get) - base;
    (out, peak.max(0) as usize)
}

/// What decoding a frame of `len` bytes may allocate at most: memory
/// follows the bytes that arrived, never a length a header claims.
fn alloc_bound(len: usize) -> usize {
    64 * len + 4096
}

// ---- payload types ----------------------------------------------------------

/// A union payload spec, as a Rust enum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum PointOrInt {
    Point { x: i64, y: i64 },
    Int(i64),
}

fn arb_value() -> BoxedStrategy<rmpv::Value> {
    use rmpv::Value as V;
    let leaf = prop_oneof![
        Just(V::Nil),
        any::<bool>().prop_map(V::from),
        any::<i64>().prop_map(V::from),
        any::<u64>().prop_map(V::from),
        (-1e12f64..1e12).prop_map(V::from),
        ".{0,12}".prop_map(V::from),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(V::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(V::Array),
            proptest::collection::vec(("[a-z]{1,6}", inner), 0..6)
                .prop_map(|kv| { V::Map(kv.into_iter().map(|(k, v)| (V::from(k), v)).collect()) }),
        ]
    })
    .boxed()
}

fn arb_uid() -> impl Strategy<Value = Uid> {
    ("[a-z_]{0,12}", "[0-9a-f-]{0,36}").prop_map(|(n, u)| Uid::new(n, u))
}

fn arb_msg<C: Codec>(codec: C) -> impl Strategy<Value = Msg> {
    let c = codec.clone();
    let pld = arb_value()
        .prop_map(move |v| c.encode_payload(&v).expect("encodes"))
        .boxed();
    let c = codec.clone();
    let kwargs = proptest::collection::btree_map("[a-z]{1,8}", arb_value(), 0..4)
        .prop_map(move |m| c.encode_payload(&m).expect("encodes"))
        .boxed();
    let cid = "[0-9a-f-]{1,36}".prop_map(Cid::from).boxed();
    let payload_kind = prop_oneof![
        Just(MsgKind::Started),
        Just(MsgKind::Yield),
        Just(MsgKind::Return)
    ];
    let payload_msg = (payload_kind, cid.clone(), pld.clone())
        .prop_map(|(kind, cid, pld)| match kind {
            MsgKind::Started => Msg::Started(Started { cid, pld }),
            MsgKind::Yield => Msg::Yield(Yield { cid, pld }),
            _ => Msg::Return(Return { cid, pld }),
        })
        .boxed();
    let functype = prop_oneof![
        Just(FuncType::AsyncFunc),
        Just(FuncType::AsyncGen),
        Just(FuncType::Context)
    ];
    let error = (
        (
            arb_uid(),
            "[A-Za-z]{1,20}",
            "[A-Za-z]{1,20}",
            proptest::collection::vec(arb_uid(), 0..4),
        ),
        (proptest::option::of(".{0,40}"), ".{0,80}"),
        (
            proptest::option::of(arb_uid()),
            proptest::option::of(arb_uid()),
        ),
        (
            proptest::option::of(cid.clone()),
            proptest::option::of(payload_msg.clone()),
        ),
        proptest::option::of(kwargs.clone()),
    )
        .prop_map(
            |((src, st, bt, path), (message, tb), (canceller, sender), (cid, bad), dict)| {
                Msg::from(Error {
                    src_uid: src,
                    src_type_str: st,
                    boxed_type_str: bt,
                    relay_path: path,
                    message,
                    tb_str: tb,
                    canceller,
                    sender,
                    cid,
                    bad_msg: bad.map(Box::new),
                    bad_msg_as_dict: dict,
                })
            },
        );
    prop_oneof![
        (
            arb_uid(),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<bool>()),
            any::<bool>()
        )
            .prop_map(|(u, pid, reg, probe)| Msg::from(Aid {
                name: u.name,
                uuid: u.uuid,
                pid,
                is_registrar: reg,
                is_probe: probe
            })),
        (
            cid.clone(),
            "[a-z_.]{1,20}",
            "[a-z_]{1,20}",
            kwargs.clone(),
            arb_uid(),
            "[a-zA-Z.]{0,12}"
        )
            .prop_map(|(cid, ns, func, kwargs, uid, pld_spec)| Msg::from(Start {
                cid,
                ns,
                func,
                kwargs,
                uid,
                pld_spec
            })),
        (cid.clone(), functype)
            .prop_map(|(cid, functype)| Msg::StartAck(StartAck { cid, functype })),
        payload_msg,
        cid.clone().prop_map(|cid| Msg::Stop(Stop { cid })),
        (cid, any::<bool>()).prop_map(|(cid, pld)| Msg::CancelAck(CancelAck { cid, pld })),
        error,
        (kwargs.clone(), kwargs).prop_map(|(main, vars)| Msg::from(SpawnSpec {
            parent_main_data: main,
            runtime_vars: vars,
            enable_modules: vec![("scipp_peer".into(), "/srv/scipp_peer.py".into())],
            reg_addrs: vec![Addr::Tcp {
                host: "127.0.0.1".into(),
                port: 1616
            }],
            bind_addrs: Some(vec![Addr::Uds {
                dir: "/run/tractor".into(),
                file: "x.sock".into()
            }]),
        })),
    ]
}

// ---- the suite ------------------------------------------------------------

fn roundtrip<C: Codec>(codec: &C, msg: &Msg) -> Msg {
    let frame = codec
        .encode_to_bytes(msg)
        .unwrap_or_else(|e| panic!("{}: encode {msg:?}: {e}", codec.name()));
    codec
        .decode(frame)
        .unwrap_or_else(|e| panic!("{}: decode {msg:?}: {e}", codec.name()))
}

fn typed_roundtrip<C: Codec, T>(codec: &C, value: &T)
where
    T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let msg = Msg::Yield(Yield {
        cid: Cid::from(sample::CID),
        pld: codec.encode_payload(value).unwrap(),
    });
    let Msg::Yield(back) = roundtrip(codec, &msg) else {
        panic!("{}: kind changed", codec.name())
    };
    let decoded: T = codec
        .decode_payload(&back.pld)
        .unwrap_or_else(|e| panic!("{}: {e}", codec.name()));
    assert_eq!(&decoded, value, "{}", codec.name());
}

macro_rules! conformance {
    ($name:ident, $codec:expr) => {
        mod $name {
            use super::*;

            fn codec() -> impl Codec {
                $codec
            }

            #[test]
            fn every_message_kind_roundtrips() {
                let codec = codec();
                let samples = sample::messages(&codec).unwrap();
                let kinds: std::collections::BTreeSet<_> = samples.iter().map(|s| s.msg.kind()).collect();
                assert_eq!(kinds.len(), 9, "samples cover every kind but SpawnSpec");
                for s in &samples {
                    assert_eq!(roundtrip(&codec, &s.msg), s.msg, "{}", s.name);
                }
            }

            #[test]
            fn representative_payloads_roundtrip_typed() {
                let codec = codec();
                typed_roundtrip(&codec, &0i64);
                typed_roundtrip(&codec, &-9_007_199_254_740_993i64);
                typed_roundtrip(&codec, &u64::MAX);
                typed_roundtrip(&codec, &3.25f64);
                typed_roundtrip(&codec, &"héllo".to_string());
                typed_roundtrip(&codec, &Option::<i64>::None);
                typed_roundtrip(&codec, &sample::blob_64k());
                typed_roundtrip(&codec, &Reading::sample());
                let nested: std::collections::BTreeMap<String, Vec<Option<String>>> =
                    [("a".into(), vec![Some("x".into()), None]), ("b".into(), vec![])].into();
                typed_roundtrip(&codec, &nested);
                typed_roundtrip(&codec, &PointOrInt::Point { x: 1, y: -2 });
                typed_roundtrip(&codec, &PointOrInt::Int(7));
                typed_roundtrip(&codec, &vec![PointOrInt::Int(1), PointOrInt::Point { x: 0, y: 0 }]);
            }

            #[test]
            fn mistyped_payload_is_a_typed_decode_error() {
                let codec = codec();
                let raw = codec.encode_payload("not-an-int").unwrap();
                let err = codec.decode_payload::<i64>(&raw).unwrap_err();
                assert!(err.is_decode());
                let err = codec.decode_payload::<Reading>(&codec.encode_payload(&5).unwrap()).unwrap_err();
                assert!(err.is_decode(), "{err}");
                let err = codec.decode_payload::<PointOrInt>(&codec.encode_payload("x").unwrap()).unwrap_err();
                assert!(err.is_decode(), "{err}");
            }

            #[test]
            fn an_mte_error_keeps_its_bad_message() {
                let codec = codec();
                let samples = sample::messages(&codec).unwrap();
                let mte = samples.iter().find(|s| s.name == "Error(MTE)").unwrap();
                let Msg::Error(back) = roundtrip(&codec, &mte.msg) else { panic!() };
                let Some(bad) = back.bad_msg.as_deref() else { panic!("_bad_msg lost") };
                let Msg::Yield(y) = bad else { panic!("_bad_msg is not the Yield") };
                assert_eq!(codec.decode_payload::<String>(&y.pld).unwrap(), "not-an-int");
            }

            #[test]
            fn a_big_payload_stays_inside_the_frame() {
                let codec = codec();
                let msg = Msg::Yield(Yield {
                    cid: Cid::from(sample::CID),
                    pld: codec.encode_payload(&sample::blob_64k()).unwrap(),
                });
                let frame = codec.encode_to_bytes(&msg).unwrap();
                let range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
                let Msg::Yield(y) = codec.decode(frame.clone()).unwrap() else { panic!() };
                assert!(range.contains(&(y.pld.as_bytes().as_ptr() as usize)), "payload copied");
            }

            #[test]
            fn a_deeply_nested_payload_is_an_error_not_a_stack_overflow() {
                // 100 000 levels of one-element arrays: 100 KB on the wire
                let codec = codec();
                let name = codec.name();
                let shallow = nested_payload(name, 200);
                assert!(codec.decode_payload::<rmpv::Value>(&shallow).is_ok());
                let pld = nested_payload(name, 100_000);
                let msg = Msg::Yield(Yield { cid: Cid::from(sample::CID), pld });
                let frame = codec.encode_to_bytes(&msg).unwrap();
                // the envelope is walked without recursion; it may refuse
                // the depth itself (CBOR does, past 1024 levels)
                let y = match codec.decode(frame) {
                    Ok(Msg::Yield(y)) => y,
                    Ok(other) => panic!("{other:?}"),
                    Err(e) => return assert_eq!(e.kind(), &DecodeErrorKind::TooDeep),
                };
                // a Tokio worker's stack size
                let decoded = std::thread::Builder::new()
                    .stack_size(2 << 20)
                    .spawn(move || codec.decode_payload::<rmpv::Value>(&y.pld).map(drop))
                    .unwrap()
                    .join()
                    .expect("no stack overflow");
                assert!(decoded.is_err());
            }

            #[test]
            fn a_payload_claiming_a_huge_array_allocates_nothing_big() {
                // what a peer can send: the claim inside a frame
                let codec = codec();
                let pld = huge_array_claim(codec.name());
                let msg = Msg::Yield(Yield { cid: Cid::from(sample::CID), pld });
                let frame = codec.encode_to_bytes(&msg).unwrap();
                let len = frame.len();
                let (decoded, peak) = peak_during(|| codec.decode(frame));
                assert!(peak <= alloc_bound(len), "{peak}");
                let Ok(Msg::Yield(y)) = decoded else { return };
                let (res, peak) = peak_during(|| codec.decode_payload::<rmpv::Value>(&y.pld));
                assert!(res.is_err());
                assert!(peak <= alloc_bound(len), "{peak}");
                let (res, peak) = peak_during(|| codec.decode_payload::<Vec<u64>>(&y.pld));
                assert!(res.is_err());
                assert!(peak <= alloc_bound(len), "{peak}");
            }

            #[test]
            fn empty_and_garbage_frames_are_errors() {
                let codec = codec();
                assert!(codec.decode(Bytes::new()).is_err());
                assert!(codec.decode(Bytes::from_static(&[0xff; 16])).is_err());
            }

            proptest! {
                #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

                #[test]
                fn arbitrary_messages_roundtrip(msg in arb_msg(codec())) {
                    let codec = codec();
                    prop_assert_eq!(roundtrip(&codec, &msg), msg.clone());
                    if let Some(pld) = msg.pld() {
                        // Phase two works on whatever phase one kept.
                        codec.decode_payload::<rmpv::Value>(pld).unwrap();
                    }
                }

                #[test]
                fn arbitrary_bytes_never_panic_or_overallocate(
                    data in proptest::collection::vec(any::<u8>(), 0..2048),
                ) {
                    let codec = codec();
                    let len = data.len();
                    let frame = Bytes::from(data);
                    let (_, peak) = peak_during(|| { let _ = codec.decode(frame); });
                    prop_assert!(peak <= alloc_bound(len), "{} bytes allocated for a {len}-byte frame", peak);
                }

                #[test]
                fn damaged_frames_never_panic_or_overallocate(
                    msg in arb_msg(codec()),
                    flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
                    cut in any::<prop::sample::Index>(),
                ) {
                    let codec = codec();
                    let mut frame = codec.encode_to_bytes(&msg).unwrap().to_vec();
                    for (at, byte) in flips {
                        let i = at.index(frame.len());
                        frame[i] = byte;
                    }
                    let keep = cut.index(frame.len() + 1);
                    for body in [frame.clone(), frame[..keep].to_vec()] {
                        let len = body.len();
                        let (_, peak) = peak_during(|| { let _ = codec.decode(Bytes::from(body)); });
                        prop_assert!(peak <= alloc_bound(len), "{} bytes for {len}", peak);
                    }
                }
            }
        }
    };
}

conformance!(msgpack, MsgpackCodec::with_profile(WireProfile::Head));
conformance!(cbor, CborCodec::new());
conformance!(protobuf, ProtobufCodec::new());

/// `depth` nested one-element arrays around a nil, in the codec's payload
/// format (protobuf carries msgpack payloads).
fn nested_payload(codec: &str, depth: usize) -> RawPayload {
    let (open, nil) = match codec {
        "cbor" => (0x81, 0xf6),
        _ => (0x91, 0xc0),
    };
    let mut bytes = vec![open; depth];
    bytes.push(nil);
    RawPayload::from(bytes)
}

/// An array header claiming 2^32 - 1 elements, followed by three.
fn huge_array_claim(codec: &str) -> RawPayload {
    let mut bytes = match codec {
        "cbor" => vec![0x9a, 0xff, 0xff, 0xff, 0xff],
        _ => vec![0xdd, 0xff, 0xff, 0xff, 0xff],
    };
    bytes.extend_from_slice(&[1, 2, 3]);
    RawPayload::from(bytes)
}

#[test]
fn msgpack_claims_of_huge_collections_allocate_nothing_big() {
    // A Start whose kwargs map claims 2^32 - 1 entries, in a 60-byte frame.
    let mut frame = b"\x87\xa8msg_type\xa5Start\xa6kwargs\xdf\xff\xff\xff\xff".to_vec();
    frame.extend_from_slice(&[0xa1, b'k'].repeat(10));
    let codec = MsgpackCodec::new();
    let len = frame.len();
    let (res, peak) = peak_during(|| codec.decode(Bytes::from(frame)));
    assert!(res.is_err());
    assert!(peak <= alloc_bound(len), "{peak}");
}

#[test]
fn the_allocation_counter_sees_allocations() {
    let (v, peak) = peak_during(|| vec![0u8; 100_000]);
    assert_eq!(v.len(), 100_000);
    assert!(peak >= 100_000, "counter saw only {peak} bytes");
}
