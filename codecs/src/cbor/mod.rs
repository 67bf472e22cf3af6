//! CBOR (RFC 8949) via `ciborium`: the same logical map as tractor's
//! msgpack wire (`msg_type` first, the same field names and order), with
//! payloads kept raw as CBOR bytes.

mod bytes_only;
mod reader;
mod writer;

use crate::codec::{Codec, DecodeError, EncodeError, PayloadError};
use crate::envelope::{self, encode::AidFields};
use crate::msg::{Msg, RawPayload};
use bytes::{Bytes, BytesMut};
use serde::{de::DeserializeOwned, Serialize};

/// The CBOR codec.
///
/// Every message is a CBOR map with text keys, shaped like the msgpack
/// envelope; `Aid` always carries all of its fields. Payloads are CBOR
/// values, typed through serde.
///
/// # Example
///
/// ```
/// use scipp_codecs::{Codec, cbor::CborCodec};
/// use scipp_codecs::msg::{Cid, Msg, Yield};
///
/// let codec = CborCodec::new();
/// let pld = codec.encode_payload(&vec![1u8, 2, 3]).unwrap();
/// let msg = Msg::Yield(Yield { cid: Cid::from("c1"), pld });
/// let frame = codec.encode_to_bytes(&msg).unwrap();
/// assert_eq!(codec.decode(frame).unwrap(), msg);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CborCodec {
    _priv: (),
}

impl CborCodec {
    /// The CBOR codec.
    pub fn new() -> Self {
        CborCodec::default()
    }
}

impl Codec for CborCodec {
    fn name(&self) -> &'static str {
        "cbor"
    }

    fn encode(&self, msg: &Msg, dst: &mut BytesMut) -> Result<(), EncodeError> {
        envelope::encode::encode_msg(msg, AidFields::All, &mut writer::Writer::new(dst))
    }

    fn encode_vectored(&self, msg: &Msg, dst: &mut BytesMut) -> Result<Option<Bytes>, EncodeError> {
        let mut w = envelope::Deferring::new(writer::Writer::new(dst));
        envelope::encode::encode_msg(msg, AidFields::All, &mut w)?;
        let deferred = w.into_tail();
        Ok(envelope::finish_deferred(dst, deferred))
    }

    fn decode(&self, frame: Bytes) -> Result<Msg, DecodeError> {
        envelope::decode::decode_frame(&frame, || reader::Reader::new(&frame))
    }

    fn encode_payload<T: Serialize + ?Sized>(&self, value: &T) -> Result<RawPayload, PayloadError> {
        // a big `Blob` is kept aside and written by the transport
        crate::blob::encode_sharing(
            || crate::scratch::encode_vec(|buf| ciborium::into_writer(value, buf)),
            &[0x40],
            |len| Some(writer::byte_string_header(len as u64)),
        )
        .map_err(|e| PayloadError::encode("cbor", e))
    }

    fn decode_payload<T: DeserializeOwned>(&self, raw: &RawPayload) -> Result<T, PayloadError> {
        let bytes = raw.bytes();
        crate::blob::lend(bytes, || {
            // ciborium copies every byte string out; a payload that is
            // one big byte string is handed out in place
            if let Some(content) = bytes_only::whole_byte_string(bytes) {
                if let Ok(value) = T::deserialize(bytes_only::BytesOnly(content)) {
                    return Ok(value);
                }
            }
            ciborium::from_reader(&bytes[..])
        })
        .map_err(|e| PayloadError::decode("cbor", e))
    }
}
