//! Undecoded payloads: the first half of the two-phase decode.

use bytes::Bytes;
use std::fmt;

/// One encoded value, kept as the codec wrote it: the `pld` of a payload
/// message, `Start.kwargs`, or a dict-valued field.
///
/// Decoding a frame does not decode its payload; the payload stays a
/// zero-copy slice of the frame buffer until the receiving context decodes
/// it against its payload spec (like msgspec's `Raw` in tractor). The bytes
/// are in the format of the codec that produced them (msgpack bytes from
/// [`MsgpackCodec`](crate::msgpack::MsgpackCodec), CBOR bytes from the CBOR
/// codec, ...); hand a `RawPayload` only to a codec of the same format.
///
/// ```
/// use scipp_codecs::msg::RawPayload;
/// // msgpack for the int 8
/// let raw = RawPayload::from_static(&[0x08]);
/// assert_eq!(raw.as_bytes(), &[0x08]);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct RawPayload(Bytes);

impl RawPayload {
    /// Wraps already-encoded bytes. The caller vouches that they hold
    /// exactly one value in the channel codec's format.
    pub fn new(bytes: Bytes) -> Self {
        RawPayload(bytes)
    }

    /// Wraps a static encoded value.
    pub const fn from_static(bytes: &'static [u8]) -> Self {
        RawPayload(Bytes::from_static(bytes))
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The encoded bytes as a shared buffer (cheap to clone).
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    /// Unwraps the shared buffer.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// The encoded length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no bytes are held (never the case for a decoded payload).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Bytes> for RawPayload {
    fn from(bytes: Bytes) -> Self {
        RawPayload(bytes)
    }
}

impl From<Vec<u8>> for RawPayload {
    fn from(bytes: Vec<u8>) -> Self {
        RawPayload(Bytes::from(bytes))
    }
}

impl fmt::Debug for RawPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 32;
        write!(f, "RawPayload({} bytes: ", self.0.len())?;
        for b in self.0.iter().take(SHOWN) {
            write!(f, "{b:02x}")?;
        }
        if self.0.len() > SHOWN {
            f.write_str("..")?;
        }
        f.write_str(")")
    }
}
