//! [`Blob`]: byte payloads that are shared, not copied, on both ends.
//!
//! serde hands a `Deserialize` impl a `&[u8]` and a `Serialize` impl a
//! serializer, never the buffer behind them, so the codecs tell a `Blob`
//! about that buffer through two per-thread slots, for the duration of one
//! [`decode_payload`](crate::Codec::decode_payload) or
//! [`encode_payload`](crate::Codec::encode_payload) call:
//!
//! - decoding, the payload's `Bytes` is *lent*: a `Blob` whose borrowed
//!   bytes lie inside it becomes a [`Bytes::slice_ref`] of it;
//! - encoding, a *probe* is armed: a big `Blob` leaves its `Bytes` in the
//!   slot and serializes as an empty byte string; when the whole payload
//!   came out as exactly that empty byte string, the codec writes the
//!   length header itself and keeps the `Blob`'s `Bytes` as the payload's
//!   tail (see [`RawPayload::with_tail`]). Any other shape (a `Blob`
//!   inside a struct, two of them) is encoded again the ordinary way.

use bytes::Bytes;
use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::{Serialize, Serializer};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::ops::Deref;

/// Byte strings shorter than this are copied, on both ends: a copy of a
/// few hundred bytes costs less than sharing (a reference count, and on
/// send an extra piece to write), and a small slice would keep a whole
/// read buffer alive.
pub const BLOB_SHARE_MIN: usize = 512;

/// A byte payload (msgpack `bin`, CBOR byte string) held as [`Bytes`]:
/// received, a slice of the frame it arrived in; sent, written to the
/// transport from the caller's buffer. Big payloads are not copied on
/// either end.
///
/// Use it where you would use `serde_bytes::ByteBuf` or `Vec<u8>` for a
/// payload: as a payload spec ([`PldSpec::of::<Blob>()`]), as a dialog's
/// item type, with `recv::<Blob>()` and `send(&blob)`. On the wire it is
/// the same `bin` as `ByteBuf`, so the peer (tractor's `bytes`) sees no
/// difference.
///
/// - **Receive**: a payload that is a byte string of at least
///   [`BLOB_SHARE_MIN`] bytes comes back as a [`Bytes::slice_ref`] of the
///   received frame (msgpack: anywhere in the payload, e.g. a `Blob` field
///   of a struct; CBOR: a payload that is one byte string). Like any
///   slice, it keeps the frame's read buffer alive while you hold it:
///   `Bytes::copy_from_slice` it to keep a small part for long.
/// - **Send**: a payload that *is* a `Blob` of at least
///   [`BLOB_SHARE_MIN`] bytes is not copied into the frame: the envelope
///   and the `Blob`'s `Bytes` go to the socket in one vectored write (when
///   the peer has no frame layer of yours, which needs the frame in one
///   piece). The bytes on the wire are the same as for a `ByteBuf`.
///
/// ```
/// use scipp_codecs::{Blob, Codec, msgpack::MsgpackCodec, msg::RawPayload};
///
/// let codec = MsgpackCodec::new();
/// let data = bytes::Bytes::from(vec![7u8; 4096]);
/// let raw = codec.encode_payload(&Blob::from(data.clone())).unwrap();
/// // the wire form is a plain msgpack `bin`, as `ByteBuf` writes it
/// let owned = codec.encode_payload(serde_bytes::Bytes::new(&data)).unwrap();
/// assert_eq!(raw.as_bytes(), owned.as_bytes());
///
/// // decoding hands out a slice of the received bytes, not a copy
/// let received = RawPayload::new(bytes::Bytes::copy_from_slice(raw.as_bytes()));
/// let blob: Blob = codec.decode_payload(&received).unwrap();
/// assert_eq!(blob, data);
/// let frame = received.as_bytes().as_ptr_range();
/// assert!(frame.contains(&blob.as_ptr()));
/// ```
///
/// [`PldSpec::of::<Blob>()`]: https://docs.rs/scipp-layers/latest/scipp_layers/payload/struct.PldSpec.html
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Blob(Bytes);

impl Blob {
    /// A blob of `bytes`, shared (no copy).
    pub fn new(bytes: Bytes) -> Self {
        Blob(bytes)
    }

    /// A blob of static bytes.
    pub const fn from_static(bytes: &'static [u8]) -> Self {
        Blob(Bytes::from_static(bytes))
    }

    /// The shared buffer.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    /// Unwraps the shared buffer.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl Deref for Blob {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Blob {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Bytes> for Blob {
    fn from(bytes: Bytes) -> Self {
        Blob(bytes)
    }
}

impl From<Vec<u8>> for Blob {
    fn from(bytes: Vec<u8>) -> Self {
        Blob(Bytes::from(bytes))
    }
}

impl From<&'static [u8]> for Blob {
    fn from(bytes: &'static [u8]) -> Self {
        Blob(Bytes::from_static(bytes))
    }
}

impl From<Blob> for Bytes {
    fn from(blob: Blob) -> Self {
        blob.0
    }
}

impl PartialEq<Bytes> for Blob {
    fn eq(&self, other: &Bytes) -> bool {
        self.0 == *other
    }
}

impl PartialEq<[u8]> for Blob {
    fn eq(&self, other: &[u8]) -> bool {
        self.0 == other
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 32;
        write!(f, "Blob({} bytes: ", self.0.len())?;
        for b in self.0.iter().take(SHOWN) {
            write!(f, "{b:02x}")?;
        }
        if self.0.len() > SHOWN {
            f.write_str("..")?;
        }
        f.write_str(")")
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.len() >= BLOB_SHARE_MIN && offer(&self.0) {
            return serializer.serialize_bytes(&[]);
        }
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_byte_buf(BlobVisitor)
    }
}

/// Accepts what `serde_bytes::ByteBuf` accepts, so a `Blob` replaces one
/// without changing which payloads pass a spec.
struct BlobVisitor;

impl<'de> Visitor<'de> for BlobVisitor {
    type Value = Blob;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Blob, E> {
        Ok(Blob(shared(v).unwrap_or_else(|| Bytes::copy_from_slice(v))))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
        // a buffer the decoder filled for us: already ours, no copy
        Ok(Blob(Bytes::from(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Blob, E> {
        Ok(Blob(Bytes::copy_from_slice(v.as_bytes())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Blob, E> {
        Ok(Blob(Bytes::from(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Blob, A::Error> {
        // never trust the claimed length for the allocation
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(Blob(Bytes::from(out)))
    }
}

thread_local! {
    /// The payload being decoded on this thread, when it is big enough to
    /// share from.
    static LENT: RefCell<Option<Bytes>> = const { RefCell::new(None) };
    /// Whether an encode on this thread takes a `Blob`'s bytes aside, and
    /// what it was offered (the bytes themselves wait in `OFFERED`). A
    /// `Copy` state, so that an encode that meets no `Blob` (every small
    /// payload) costs two cell writes.
    static PROBE: Cell<Probe> = const { Cell::new(Probe::Off) };
    static OFFERED: RefCell<Option<Bytes>> = const { RefCell::new(None) };
}

/// The state of this thread's encode probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    Off,
    Armed,
    /// One `Blob` was taken aside (its bytes in `OFFERED`).
    One,
    /// More than one: the output is not one byte string.
    Many,
}

/// What `Blob`s offered to an armed encode.
#[derive(Debug, Default)]
pub(crate) enum Offered {
    /// No big `Blob` was serialized.
    #[default]
    Nothing,
    /// One was, as an empty byte string; these are its bytes.
    One(Bytes),
    /// More than one: the output is not one byte string.
    Many,
}

/// Runs `decode` with `payload` lent to the `Blob`s it decodes (when it is
/// big enough to hold a shared one).
pub(crate) fn lend<T>(payload: &Bytes, decode: impl FnOnce() -> T) -> T {
    if payload.len() < BLOB_SHARE_MIN {
        return decode();
    }
    let before = LENT.with(|slot| slot.replace(Some(payload.clone())));
    let out = decode();
    LENT.with(|slot| *slot.borrow_mut() = before);
    out
}

/// `v` as a slice of the lent payload, if it lies inside it.
fn shared(v: &[u8]) -> Option<Bytes> {
    if v.len() < BLOB_SHARE_MIN {
        return None;
    }
    LENT.with(|slot| {
        let slot = slot.try_borrow().ok()?;
        let lent = slot.as_ref()?;
        let outer = lent.as_ptr_range();
        let inner = v.as_ptr_range();
        (outer.start <= inner.start && inner.end <= outer.end).then(|| lent.slice_ref(v))
    })
}

/// Runs `encode` with the probe armed, returning what was offered.
fn probe<T>(encode: impl FnOnce() -> T) -> (T, Offered) {
    let before = PROBE.with(|p| p.replace(Probe::Armed));
    // an encode inside an encode (a `Serialize` impl calling a codec):
    // keep the outer one's offer aside
    let outer = (before == Probe::One).then(|| OFFERED.with(RefCell::take));
    let out = encode();
    let state = PROBE.with(|p| p.replace(before));
    let offered = match state {
        Probe::Off | Probe::Armed => Offered::Nothing,
        Probe::Many => Offered::Many,
        Probe::One => OFFERED
            .with(RefCell::take)
            .map_or(Offered::Many, Offered::One),
    };
    if let Some(outer) = outer {
        OFFERED.with(|o| *o.borrow_mut() = outer);
    }
    (out, offered)
}

/// Runs `encode` with the probe off (a `Blob` writes its bytes inline).
fn unprobed<T>(encode: impl FnOnce() -> T) -> T {
    let before = PROBE.with(|p| p.replace(Probe::Off));
    let out = encode();
    PROBE.with(|p| p.set(before));
    out
}

/// Offers `bytes` to an armed encode: `true` if taken (the caller then
/// serializes an empty byte string).
fn offer(bytes: &Bytes) -> bool {
    PROBE.with(|p| match p.get() {
        Probe::Off => false,
        Probe::Armed => {
            OFFERED.with(|o| *o.borrow_mut() = Some(bytes.clone()));
            p.set(Probe::One);
            true
        }
        Probe::One | Probe::Many => {
            OFFERED.with(|o| o.borrow_mut().take());
            p.set(Probe::Many);
            true
        }
    })
}

/// Encodes `value` with `encode`; when the payload is exactly one big
/// `Blob`, returns its length header (from `header`) and the `Blob`'s own
/// bytes as the tail, else the whole encoding. `empty` is the codec's
/// encoding of an empty byte string.
pub(crate) fn encode_sharing<E>(
    encode: impl Fn() -> Result<Bytes, E>,
    empty: &[u8],
    header: impl FnOnce(usize) -> Option<Bytes>,
) -> Result<crate::msg::RawPayload, E> {
    use crate::msg::RawPayload;
    let (out, offered) = probe(&encode);
    match offered {
        Offered::Nothing => out.map(RawPayload::new),
        Offered::One(tail) if out.as_ref().is_ok_and(|b| b.as_ref() == empty) => {
            match header(tail.len()) {
                Some(head) => Ok(RawPayload::with_tail(head, tail)),
                // too long for the format: the ordinary way says so
                None => unprobed(encode).map(RawPayload::new),
            }
        }
        // a `Blob` inside something else: the ordinary way
        _ => unprobed(encode).map(RawPayload::new),
    }
}
