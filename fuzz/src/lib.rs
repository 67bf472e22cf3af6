//! What every decoder target checks, whatever the codec.

use scipp_codecs::Codec;

/// Decodes `data`; whatever decodes must re-encode, decode again to the
/// same message, and its payload must decode as `Any`. Never panics on
/// peer input: only a broken invariant does.
pub fn decode_roundtrip<C: Codec>(codec: &C, data: &[u8]) {
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
}
