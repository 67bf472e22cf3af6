//! Arbitrary payloads under the `Any` spec, msgpack and CBOR (see
//! `scipp_fuzz::payload_any`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    scipp_fuzz::payload_any(&scipp_codecs::msgpack::MsgpackCodec::new(), data);
    scipp_fuzz::payload_any(&scipp_codecs::cbor::CborCodec::new(), data);
});
