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
///
/// A payload can also be held in two pieces, a head and a tail that
/// follows it ([`with_tail`](Self::with_tail)): that is how a big
/// [`Blob`](crate::Blob) is sent without copying it, the codec writing the
/// envelope and the head, and the transport the tail from its own buffer.
#[derive(Default)]
pub struct RawPayload(Bytes, Option<Decoded>);

/// The rest of a payload held in two pieces, kept in the decoded value's
/// slot (a send-side payload has no decoded value; a second field would
/// make every `Msg` 8 bytes bigger).
struct Split {
    tail: Bytes,
    /// Head and tail in one buffer, made the first time someone asks for
    /// the payload as one slice (codecs write the pieces without it).
    joined: std::sync::OnceLock<Bytes>,
}

impl Split {
    fn joined(&self, head: &Bytes) -> &Bytes {
        self.joined.get_or_init(|| {
            let mut all = bytes::BytesMut::with_capacity(head.len() + self.tail.len());
            all.extend_from_slice(head);
            all.extend_from_slice(&self.tail);
            all.freeze()
        })
    }
}

/// A typed value already decoded from the bytes (see
/// [`RawPayload::set_decoded`]). Boxed once: a second box (to keep the
/// empty case a thin pointer) cost an allocation and a free per received
/// message (callgrind, `BENCHMARKS.md`); the price is 8 bytes more per
/// payload (a `Msg` is 72 bytes instead of 64).
type Decoded = Box<dyn Any + Send + Sync>;

/// A clone carries the bytes (both pieces), not the decoded value (that
/// is taken once).
impl Clone for RawPayload {
    fn clone(&self) -> Self {
        let split = self.split().map(|split| {
            Box::new(Split {
                tail: split.tail.clone(),
                joined: split.joined.clone(),
            }) as Decoded
        });
        RawPayload(self.0.clone(), split)
    }
}

/// Payloads are equal when their bytes are (however they are split).
impl PartialEq for RawPayload {
    fn eq(&self, other: &Self) -> bool {
        match (self.tail(), other.tail()) {
            (None, None) => self.0 == other.0,
            _ => self.len() == other.len() && self.as_bytes() == other.as_bytes(),
        }
    }
}

impl Eq for RawPayload {}

impl Hash for RawPayload {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl RawPayload {
    /// Wraps already-encoded bytes. The caller vouches that they hold
    /// exactly one value in the channel codec's format.
    pub fn new(bytes: Bytes) -> Self {
        RawPayload(bytes, None)
    }

    /// A payload in two pieces: the encoded value is `head` followed by
    /// `tail`. Codecs write the two pieces without joining them, so a big
    /// `tail` goes to the transport from its own buffer; asking for the
    /// payload as one slice ([`as_bytes`](Self::as_bytes)) joins them
    /// once.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use scipp_codecs::msg::RawPayload;
    /// // msgpack bin8 of 3 bytes, in two pieces
    /// let raw = RawPayload::with_tail(Bytes::from_static(&[0xc4, 3]), Bytes::from_static(b"abc"));
    /// assert_eq!(raw.len(), 5);
    /// assert_eq!(raw.tail().unwrap(), "abc");
    /// assert_eq!(raw, RawPayload::from_static(b"\xc4\x03abc"));
    /// assert_eq!(raw.as_bytes(), b"\xc4\x03abc");
    /// ```
    pub fn with_tail(head: Bytes, tail: Bytes) -> Self {
        let split = Split {
            tail,
            joined: std::sync::OnceLock::new(),
        };
        RawPayload(head, Some(Box::new(split)))
    }

    /// The split-off rest, if the payload is held in two pieces.
    fn split(&self) -> Option<&Split> {
        self.1.as_ref()?.downcast_ref::<Split>()
    }

    /// The second piece of a payload made [`with_tail`](Self::with_tail).
    pub fn tail(&self) -> Option<&Bytes> {
        self.split().map(|split| &split.tail)
    }

    /// The first piece: all the bytes, unless the payload has a
    /// [`tail`](Self::tail).
    pub fn head(&self) -> &Bytes {
        &self.0
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
        if self.tail().is_some() {
            // one piece again, so that the decoded value has the slot
            self.0 = self.bytes().clone();
        }
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

    /// The encoded bytes (a payload in two pieces is joined, once).
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes()
    }

    /// The encoded bytes as a shared buffer (cheap to clone; a payload in
    /// two pieces is joined, once).
    pub fn bytes(&self) -> &Bytes {
        match self.split() {
            Some(split) => split.joined(&self.0),
            None => &self.0,
        }
    }

    /// Unwraps the shared buffer (a payload in two pieces is joined).
    pub fn into_bytes(self) -> Bytes {
        match self.split() {
            Some(split) => split.joined(&self.0).clone(),
            None => self.0,
        }
    }

    /// The encoded length in bytes.
    pub fn len(&self) -> usize {
        self.0.len() + self.tail().map_or(0, Bytes::len)
    }

    /// Whether no bytes are held (never the case for a decoded payload).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        write!(f, "RawPayload({} bytes: ", self.len())?;
        let tail = self.tail().map_or(&[][..], |t| &t[..]);
        for b in self.0.iter().chain(tail).take(SHOWN) {
            write!(f, "{b:02x}")?;
        }
        if self.len() > SHOWN {
            f.write_str("..")?;
        }
        f.write_str(")")
    }
}
