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

/// A typed value already decoded from a payload's bytes, kept for the
/// consumer that wants that type (see [`RawPayload::keep_decoded`]).
///
/// The small plain values a stream of numbers carries (`i64`, `u64`,
/// `f64`, `bool`) are kept inline; anything else is boxed, once. Boxing
/// an `i64` was an allocation and a free per received message, ~280
/// instructions of the receive path's ~3 250 (callgrind, `BENCHMARKS.md`).
///
/// ```
/// use scipp_codecs::msg::Decoded;
/// let kept = Decoded::new(8i64);
/// let kept = kept.take::<String>().unwrap_err(); // another type: handed back
/// assert_eq!(kept.take::<i64>().ok(), Some(8));
/// assert_eq!(Decoded::new(String::from("x")).take::<String>().ok().as_deref(), Some("x"));
/// ```
pub struct Decoded(Repr);

enum Repr {
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    Boxed(Box<dyn Any + Send + Sync>),
}

/// `value` as a `U` if it is one (no allocation, no unsafe: a downcast of
/// an `Option` on the stack).
fn cast<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    let mut slot = Some(value);
    match (&mut slot as &mut dyn Any).downcast_mut::<Option<U>>() {
        Some(u) => Ok(u.take().expect("filled above")),
        None => Err(slot.expect("untouched")),
    }
}

impl Decoded {
    /// Keeps `value`: inline if it is a small plain value, else boxed.
    pub fn new<T: Any + Send + Sync>(value: T) -> Self {
        let value = match cast::<T, i64>(value) {
            Ok(v) => return Decoded(Repr::I64(v)),
            Err(value) => value,
        };
        let value = match cast::<T, u64>(value) {
            Ok(v) => return Decoded(Repr::U64(v)),
            Err(value) => value,
        };
        let value = match cast::<T, f64>(value) {
            Ok(v) => return Decoded(Repr::F64(v)),
            Err(value) => value,
        };
        match cast::<T, bool>(value) {
            Ok(v) => Decoded(Repr::Bool(v)),
            Err(value) => Decoded(Repr::Boxed(Box::new(value))),
        }
    }

    /// The value if it is a `T`, else `self` back.
    ///
    /// # Errors
    /// `self`, when the value is of another type.
    pub fn take<T: 'static>(self) -> Result<T, Decoded> {
        match self.0 {
            Repr::I64(v) => cast(v).map_err(|v| Decoded(Repr::I64(v))),
            Repr::U64(v) => cast(v).map_err(|v| Decoded(Repr::U64(v))),
            Repr::F64(v) => cast(v).map_err(|v| Decoded(Repr::F64(v))),
            Repr::Bool(v) => cast(v).map_err(|v| Decoded(Repr::Bool(v))),
            Repr::Boxed(b) => b
                .downcast::<T>()
                .map(|v| *v)
                .map_err(|b| Decoded(Repr::Boxed(b))),
        }
    }
}

impl From<Box<dyn Any + Send + Sync>> for Decoded {
    fn from(value: Box<dyn Any + Send + Sync>) -> Self {
        Decoded(Repr::Boxed(value))
    }
}

impl fmt::Debug for Decoded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::I64(v) => write!(f, "Decoded({v})"),
            Repr::U64(v) => write!(f, "Decoded({v})"),
            Repr::F64(v) => write!(f, "Decoded({v})"),
            Repr::Bool(v) => write!(f, "Decoded({v})"),
            Repr::Boxed(_) => f.write_str("Decoded(..)"),
        }
    }
}

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
        self.1 = Some(Decoded::from(value));
    }

    /// [`set_decoded`](Self::set_decoded) for a value kept as a
    /// [`Decoded`] (small plain values without an allocation).
    ///
    /// ```
    /// use scipp_codecs::msg::{Decoded, RawPayload};
    /// let mut raw = RawPayload::from_static(&[0x08]);
    /// raw.keep_decoded(Decoded::new(8i64));
    /// assert_eq!(raw.take_decoded::<i64>(), Some(8));
    /// ```
    pub fn keep_decoded(&mut self, value: Decoded) {
        self.1 = Some(value);
    }

    /// Takes the attached decoded value if it is a `T`.
    pub fn take_decoded<T: 'static>(&mut self) -> Option<T> {
        match self.1.take()?.take::<T>() {
            Ok(value) => Some(value),
            Err(other) => {
                self.1 = Some(other);
                None
            }
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
