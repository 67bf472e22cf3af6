//! Arbitrary bytes into the msgpack decoder (see `scipp_fuzz::decode_roundtrip`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| scipp_fuzz::decode_roundtrip(
    &scipp_codecs::msgpack::MsgpackCodec::with_profile(scipp_codecs::WireProfile::Head),
    data
));
