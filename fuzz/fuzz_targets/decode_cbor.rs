//! Arbitrary bytes into the cbor decoder (see `scipp_fuzz::decode_roundtrip`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| scipp_fuzz::decode_roundtrip(
    &scipp_codecs::cbor::CborCodec::new(),
    data
));
