//! tractor's wire format: msgpack as msgspec writes it.
//!
//! [`MsgpackCodec`] encodes every message byte for byte as tractor does
//! (proven against the captures in `vectors/tractor/`) and decodes
//! leniently, as msgspec does: any key order, unknown keys ignored,
//! missing defaults filled in. Payloads are msgpack values; typed payloads
//! go through `rmp-serde` with structs as maps (msgspec's default).

mod reader;
mod writer;

/// See `Reader::check_one_value`.
#[cfg(feature = "protobuf")]
pub(crate) fn check_one_value(bytes: &Bytes) -> Result<(), DecodeError> {
    reader::Reader::check_one_value(bytes)
}

use crate::codec::{Codec, DecodeError, EncodeError, PayloadError};
use crate::envelope::{self, encode::AidFields};
use crate::msg::{Msg, RawPayload};
use crate::WireProfile;
use bytes::{Bytes, BytesMut};
use serde::{de::DeserializeOwned, Serialize};

/// The msgpack codec: tractor's own wire.
///
/// # Example
///
/// ```
/// use scipp_codecs::{Codec, msgpack::MsgpackCodec};
/// use scipp_codecs::msg::{Cid, Msg, Stop};
///
/// // The `Stop(cid="c1")` example of the spec, without its length prefix.
/// let body = hex("82a86d73675f74797065a453746f70a3636964a26331");
/// let codec = MsgpackCodec::new();
/// let msg = codec.decode(body.clone().into()).unwrap();
/// assert_eq!(msg, Msg::Stop(Stop { cid: Cid::from("c1") }));
/// assert_eq!(codec.encode_to_bytes(&msg).unwrap(), body);
/// # fn hex(s: &str) -> Vec<u8> {
/// #     (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgpackCodec {
    profile: WireProfile,
    max_depth: u16,
}

impl Default for MsgpackCodec {
    fn default() -> Self {
        MsgpackCodec {
            profile: WireProfile::default(),
            max_depth: crate::DEFAULT_MAX_DEPTH,
        }
    }
}

impl MsgpackCodec {
    /// The codec with the default [`WireProfile`] and payload nesting
    /// bound ([`DEFAULT_MAX_DEPTH`](crate::DEFAULT_MAX_DEPTH)).
    pub fn new() -> Self {
        MsgpackCodec::default()
    }

    /// Bounds how deeply nested arrays and maps inside a payload may be
    /// when it is decoded (the envelope itself is walked without
    /// recursion). Deeper payloads fail to decode with a typed error
    /// instead of exhausting the stack of the decoding thread.
    ///
    /// ```
    /// use scipp_codecs::{msgpack::MsgpackCodec, msg::RawPayload, Codec};
    /// let codec = MsgpackCodec::new().max_depth(2);
    /// let nested = RawPayload::from(vec![0x91, 0x91, 0x91, 0xc0]); // [[[None]]]
    /// assert!(codec.decode_payload::<rmpv::Value>(&nested).is_err());
    /// assert!(MsgpackCodec::new().decode_payload::<rmpv::Value>(&nested).is_ok());
    /// ```
    pub fn max_depth(mut self, depth: u16) -> Self {
        self.max_depth = depth;
        self
    }

    /// The codec writing the given tractor version's wire.
    ///
    /// ```
    /// use scipp_codecs::{msgpack::MsgpackCodec, WireProfile};
    /// let codec = MsgpackCodec::with_profile(WireProfile::Head);
    /// assert_eq!(codec.profile(), WireProfile::Head);
    /// ```
    pub fn with_profile(profile: WireProfile) -> Self {
        MsgpackCodec {
            profile,
            ..MsgpackCodec::default()
        }
    }

    /// The profile used for encoding (decoding accepts both).
    pub fn profile(&self) -> WireProfile {
        self.profile
    }
}

impl Codec for MsgpackCodec {
    fn name(&self) -> &'static str {
        "msgpack"
    }

    fn encode(&self, msg: &Msg, dst: &mut BytesMut) -> Result<(), EncodeError> {
        let aid_fields = match self.profile {
            WireProfile::V978691c6 => AidFields::NameAndUuid,
            WireProfile::Head => AidFields::All,
        };
        envelope::encode::encode_msg(msg, aid_fields, &mut writer::Writer::new(dst))
    }

    fn encode_vectored(&self, msg: &Msg, dst: &mut BytesMut) -> Result<Option<Bytes>, EncodeError> {
        let aid_fields = match self.profile {
            WireProfile::V978691c6 => AidFields::NameAndUuid,
            WireProfile::Head => AidFields::All,
        };
        let mut w = envelope::Deferring::new(writer::Writer::new(dst));
        envelope::encode::encode_msg(msg, aid_fields, &mut w)?;
        let deferred = w.into_tail();
        Ok(envelope::finish_deferred(dst, deferred))
    }

    fn decode(&self, frame: Bytes) -> Result<Msg, DecodeError> {
        envelope::decode::decode_frame(&frame, || reader::Reader::new(&frame))
    }

    fn encode_payload<T: Serialize + ?Sized>(&self, value: &T) -> Result<RawPayload, PayloadError> {
        // a big `Blob` is kept aside and written by the transport
        crate::blob::encode_sharing(
            || crate::scratch::encode_vec(|buf| rmp_serde::encode::write_named(buf, value)),
            &[0xc4, 0x00],
            |len| {
                let mut header = Vec::with_capacity(5);
                // rmp's own choice of bin8/16/32, as for a `ByteBuf`
                rmp::encode::write_bin_len(&mut header, u32::try_from(len).ok()?).ok()?;
                Some(Bytes::from(header))
            },
        )
        .map_err(|e| PayloadError::encode("msgpack", e))
    }

    fn decode_payload<T: DeserializeOwned>(&self, raw: &RawPayload) -> Result<T, PayloadError> {
        let bytes = raw.bytes();
        // `Blob`s decoded from these bytes share them
        crate::blob::lend(bytes, || {
            let mut de = rmp_serde::Deserializer::from_read_ref(&bytes[..]);
            de.set_max_depth(usize::from(self.max_depth));
            serde::Deserialize::deserialize(&mut de)
        })
        .map_err(|e| PayloadError::decode("msgpack", e))
    }

    fn wire_profile(&self) -> WireProfile {
        self.profile
    }

    fn for_profile(&self, profile: WireProfile) -> Self {
        MsgpackCodec { profile, ..*self }
    }
}
