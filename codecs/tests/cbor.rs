//! CBOR specifics the conformance suite cannot reach through serde:
//! indefinite lengths, tags and hostile nesting inside raw payloads.
#![cfg(feature = "cbor")]

use bytes::Bytes;
use scipp_codecs::cbor::CborCodec;
use scipp_codecs::msg::Msg;
use scipp_codecs::{Codec, DecodeErrorKind};

/// `{"msg_type": "Yield", "cid": "c1", "pld": <pld>}`
fn yield_with(pld: &[u8]) -> Bytes {
    let mut frame = b"\xa3\x68msg_type\x65Yield\x63cid\x62c1\x63pld".to_vec();
    frame.extend_from_slice(pld);
    Bytes::from(frame)
}

#[test]
fn indefinite_lengths_and_tags_in_a_payload_are_kept_raw() {
    // [_ 1, "a", (_ h'01', h'02'), {_ "k": 1(1700000000)}]
    let pld = b"\x9f\x01\x61a\x5f\x41\x01\x41\x02\xff\xbf\x61k\xc1\x1a\x65\x53\xf1\x00\xff\xff";
    let msg = CborCodec::new().decode(yield_with(pld)).unwrap();
    let Msg::Yield(y) = msg else {
        panic!("not a Yield")
    };
    assert_eq!(y.pld.as_bytes(), pld);
}

#[test]
fn a_break_outside_an_indefinite_item_is_malformed() {
    let err = CborCodec::new()
        .decode(yield_with(b"\x82\x01\xff"))
        .unwrap_err();
    assert!(matches!(err.kind(), DecodeErrorKind::Malformed(_)), "{err}");
}

#[test]
fn nesting_beyond_the_limit_is_refused_not_recursed() {
    let mut pld = vec![0x9f; 5000]; // 5000 open indefinite arrays
    pld.extend(std::iter::repeat(0xff).take(5000));
    let err = CborCodec::new().decode(yield_with(&pld)).unwrap_err();
    assert_eq!(err.kind(), &DecodeErrorKind::TooDeep);
}

#[test]
fn a_claimed_length_beyond_the_frame_is_truncation() {
    // bytes(2^32 - 1) with 3 bytes of data
    let err = CborCodec::new()
        .decode(yield_with(b"\x5a\xff\xff\xff\xff\x01\x02\x03"))
        .unwrap_err();
    assert!(matches!(err.kind(), DecodeErrorKind::Malformed(_)), "{err}");
}
