//! Arbitrary bytes into the protobuf decoder; whatever decodes must re-encode,
//! decode again to the same message, and its payloads must decode as Any.
#![no_main]
use libfuzzer_sys::fuzz_target;
use scipp_codecs::{protobuf, Codec};

fuzz_target!(|data: &[u8]| {
    let codec = protobuf::ProtobufCodec::new();
    let Ok(msg) = codec.decode(bytes::Bytes::copy_from_slice(data)) else {
        return;
    };
    let again = codec
        .encode_to_bytes(&msg)
        .expect("a decoded message encodes");
    assert_eq!(codec.decode(again).expect("and decodes again"), msg);
    if let Some(pld) = msg.pld() {
        let _ = codec.decode_payload::<rmpv::Value>(pld);
    }
});
