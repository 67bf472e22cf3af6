//! Undecoded payloads: the first half of the two-phase decode.

use bytes::Bytes;
use std::any::Any;
use std::fmt;
use std::hash::{Hash, Hasher};

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
#[derive(Default)]
pub struct RawPayload(Bytes, Option<Decoded>);

/// A typed value already decoded from the bytes (see
/// [`RawPayload::set_decoded`]). Boxed once: a second box (to keep the
/// empty case a thin pointer) cost an allocation and a free per received
/// message (callgrind, `BENCHMARKS.md`); the price is 8 bytes more per
/// payload (a `Msg` is 72 bytes instead of 64).
type Decoded = Box<dyn Any + Send + Sync>;

/// A clone carries the bytes, not the decoded value (that is taken once).
impl Clone for RawPayload {
    fn clone(&self) -> Self {
        RawPayload(self.0.clone(), None)
    }
}

/// Payloads are equal when their bytes are.
impl PartialEq for RawPayload {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for RawPayload {}

impl Hash for RawPayload {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl RawPayload {
    /// Wraps already-encoded bytes. The caller vouches that they hold
    /// exactly one value in the channel codec's format.
    pub fn new(bytes: Bytes) -> Self {
        RawPayload(bytes, None)
    }

    /// Wraps a static encoded value.
    pub const fn from_static(bytes: &'static [u8]) -> Self {
        RawPayload(Bytes::from_static(bytes), None)
    }

    /// Attaches the typed value a layer already decoded from these bytes
    /// (the payload-spec check does), so the consumer that wants the same
    /// type [takes](Self::take_decoded) it instead of decoding again: a
    /// big payload is then decoded, and copied, once.
    ///
    /// ```
    /// use scipp_codecs::msg::RawPayload;
    /// let mut raw = RawPayload::from_static(&[0x08]);
    /// raw.set_decoded(Box::new(8i64));
    /// assert_eq!(raw.take_decoded::<String>(), None); // another type: kept
    /// assert_eq!(raw.take_decoded::<i64>(), Some(8));
    /// assert_eq!(raw.take_decoded::<i64>(), None); // taken once
    /// ```
    pub fn set_decoded(&mut self, value: Box<dyn Any + Send + Sync>) {
        self.1 = Some(value);
    }

    /// Takes the attached decoded value if it is a `T`.
    pub fn take_decoded<T: 'static>(&mut self) -> Option<T> {
        let decoded = self.1.take()?;
        if decoded.is::<T>() {
            decoded.downcast::<T>().ok().map(|v| *v)
        } else {
            self.1 = Some(decoded);
            None
        }
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
        RawPayload(bytes, None)
    }
}

impl From<Vec<u8>> for RawPayload {
    fn from(bytes: Vec<u8>) -> Self {
        RawPayload(Bytes::from(bytes), None)
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
