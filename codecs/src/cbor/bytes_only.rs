//! A payload that is one CBOR byte string, handed to serde in place.
//!
//! ciborium reads every byte string into a buffer of its own, so a
//! [`Blob`](crate::Blob) could not share the frame. When the whole payload
//! is one definite-length byte string, [`BytesOnly`] serves a type that
//! asks for bytes (`Blob`, `ByteBuf`) straight from the frame; any other
//! request fails, and the payload goes through ciborium as before, so
//! which payloads a type accepts does not change.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;

/// The content of `payload` if it is exactly one definite-length byte
/// string at least [`BLOB_SHARE_MIN`](crate::BLOB_SHARE_MIN) long.
pub(super) fn whole_byte_string(payload: &[u8]) -> Option<&[u8]> {
    let first = *payload.first()?;
    if first >> 5 != 2 {
        return None;
    }
    let arg = |n: usize| -> Option<u64> {
        let bytes = payload.get(1..1 + n)?;
        Some(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    };
    let (start, len) = match first & 0x1f {
        n @ 0..=23 => (1, u64::from(n)),
        24 => (2, arg(1)?),
        25 => (3, arg(2)?),
        26 => (5, arg(4)?),
        27 => (9, arg(8)?),
        _ => return None, // indefinite length or reserved
    };
    let content = payload.get(start..)?;
    (content.len() as u64 == len && content.len() >= crate::BLOB_SHARE_MIN).then_some(content)
}

/// Serves bytes, and nothing else.
pub(super) struct BytesOnly<'a>(pub(super) &'a [u8]);

/// "Not a bytes request": the caller falls back to ciborium.
#[derive(Debug)]
pub(super) struct NotBytes;

impl fmt::Display for NotBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a byte string request")
    }
}

impl std::error::Error for NotBytes {}

impl de::Error for NotBytes {
    fn custom<T: fmt::Display>(_: T) -> Self {
        NotBytes
    }
}

impl<'de> Deserializer<'de> for BytesOnly<'de> {
    type Error = NotBytes;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, NotBytes> {
        Err(NotBytes)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NotBytes> {
        visitor.visit_borrowed_bytes(self.0)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NotBytes> {
        visitor.visit_borrowed_bytes(self.0)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, NotBytes> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        option unit unit_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}
