//! Arbitrary bytes into the protobuf decoder (see `scipp_fuzz::decode_roundtrip`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| scipp_fuzz::decode_roundtrip(
    &scipp_codecs::protobuf::ProtobufCodec::new(),
    data
));
