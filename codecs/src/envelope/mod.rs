//! The message envelope, written once for every self-describing format.
//!
//! msgpack and CBOR share one logical shape (a map with str keys, the
//! `msg_type` tag first, fields in tractor's definition order), so the
//! field logic lives here, generic over a small cursor ([`Read`]) and sink
//! ([`Write`]) that each format implements.

pub(crate) mod decode;
pub(crate) mod encode;

use crate::codec::{DecodeError, DecodeErrorKind, EncodeError};
use bytes::Bytes;

pub(crate) type Result<T> = std::result::Result<T, DecodeError>;

/// The type of the next value, for branching and for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueKind {
    Int,
    Float,
    Nil,
    Bool,
    Str,
    Bin,
    Array,
    Map,
    Ext,
    Other,
}

impl ValueKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ValueKind::Int => "int",
            ValueKind::Float => "float",
            ValueKind::Nil => "nil",
            ValueKind::Bool => "bool",
            ValueKind::Str => "str",
            ValueKind::Bin => "bin",
            ValueKind::Array => "array",
            ValueKind::Map => "map",
            ValueKind::Ext => "ext",
            ValueKind::Other => "unknown value",
        }
    }
}

pub(crate) fn wrong_type(expected: &'static str, found: ValueKind) -> DecodeError {
    DecodeError::new(DecodeErrorKind::WrongType {
        expected,
        found: found.name().to_owned(),
    })
}

pub(crate) fn truncated() -> DecodeError {
    DecodeError::new(DecodeErrorKind::Malformed("unexpected end of frame".into()))
}

/// A bounds-checked cursor over one frame. Every length it reads is checked
/// against the bytes left before anything is taken or allocated.
pub(crate) trait Read<'a> {
    fn pos(&self) -> usize;
    fn set_pos(&mut self, pos: usize);
    fn remaining(&self) -> usize;
    /// The type of the next value, consuming nothing.
    fn peek_kind(&mut self) -> Result<ValueKind>;
    /// A map header; `None`, consuming nothing, if the next value is not one.
    fn map_len(&mut self) -> Result<Option<usize>>;
    /// An array header; `None`, consuming nothing, if not an array.
    fn array_len(&mut self) -> Result<Option<usize>>;
    /// The bytes of a str, not yet checked to be UTF-8, or a `WrongType`
    /// naming `expected`.
    fn str_bytes(&mut self, expected: &'static str) -> Result<&'a [u8]>;
    /// A str, or a `WrongType` naming `expected`.
    fn str(&mut self, expected: &'static str) -> Result<&'a str> {
        let bytes = self.str_bytes(expected)?;
        std::str::from_utf8(bytes).map_err(|e| {
            DecodeError::new(DecodeErrorKind::Malformed(format!(
                "invalid UTF-8 in str: {e}"
            )))
        })
    }
    /// Consumes a nil if one is next.
    fn nil(&mut self) -> Result<bool>;
    fn bool(&mut self) -> Result<bool>;
    fn int(&mut self) -> Result<i128>;
    /// Skips one whole value, returning it as a zero-copy slice.
    fn raw_value(&mut self) -> Result<Bytes>;
}

/// Where an envelope is written. Raw payloads are spliced in as they are.
pub(crate) trait Write {
    fn map(&mut self, entries: usize) -> std::result::Result<(), EncodeError>;
    fn array(&mut self, len: usize) -> std::result::Result<(), EncodeError>;
    fn str(&mut self, s: &str) -> std::result::Result<(), EncodeError>;
    fn nil(&mut self) -> std::result::Result<(), EncodeError>;
    fn bool(&mut self, b: bool) -> std::result::Result<(), EncodeError>;
    fn uint(&mut self, n: u64) -> std::result::Result<(), EncodeError>;
    fn raw(&mut self, bytes: &[u8]) -> std::result::Result<(), EncodeError>;
    /// How many bytes the destination holds.
    fn written(&self) -> usize;
    /// The tail of a payload in two pieces: copied in, unless deferred
    /// (see [`Deferring`]).
    fn tail(&mut self, tail: &Bytes) -> std::result::Result<(), EncodeError> {
        self.raw(tail)
    }
    /// A raw payload, in as many pieces as it is held.
    fn payload(&mut self, raw: &crate::msg::RawPayload) -> std::result::Result<(), EncodeError> {
        self.raw(raw.head())?;
        match raw.tail() {
            Some(tail) => self.tail(tail),
            None => Ok(()),
        }
    }
}

/// A [`Write`] that leaves the first payload tail out of the destination,
/// for the transport to write from its own buffer (a vectored write).
pub(crate) struct Deferring<W> {
    inner: W,
    /// The deferred tail and where in the output it belongs.
    tail: Option<(usize, Bytes)>,
}

impl<W: Write> Deferring<W> {
    pub(crate) fn new(inner: W) -> Self {
        Deferring { inner, tail: None }
    }

    /// The deferred tail and its offset in the output.
    pub(crate) fn into_tail(self) -> Option<(usize, Bytes)> {
        self.tail
    }
}

/// Completes an encoding whose tail was deferred: the tail to write after
/// `dst`, or `None` once it is spliced in (it was not the last thing
/// written, which no envelope does today).
pub(crate) fn finish_deferred(
    dst: &mut bytes::BytesMut,
    deferred: Option<(usize, Bytes)>,
) -> Option<Bytes> {
    let (at, tail) = deferred?;
    if at == dst.len() {
        return Some(tail);
    }
    let rest = dst.split_off(at);
    dst.extend_from_slice(&tail);
    dst.extend_from_slice(&rest);
    None
}

impl<W: Write> Write for Deferring<W> {
    fn map(&mut self, entries: usize) -> std::result::Result<(), EncodeError> {
        self.inner.map(entries)
    }
    fn array(&mut self, len: usize) -> std::result::Result<(), EncodeError> {
        self.inner.array(len)
    }
    fn str(&mut self, s: &str) -> std::result::Result<(), EncodeError> {
        self.inner.str(s)
    }
    fn nil(&mut self) -> std::result::Result<(), EncodeError> {
        self.inner.nil()
    }
    fn bool(&mut self, b: bool) -> std::result::Result<(), EncodeError> {
        self.inner.bool(b)
    }
    fn uint(&mut self, n: u64) -> std::result::Result<(), EncodeError> {
        self.inner.uint(n)
    }
    fn raw(&mut self, bytes: &[u8]) -> std::result::Result<(), EncodeError> {
        self.inner.raw(bytes)
    }
    fn written(&self) -> usize {
        self.inner.written()
    }
    fn tail(&mut self, tail: &Bytes) -> std::result::Result<(), EncodeError> {
        if self.tail.is_some() {
            return self.inner.raw(tail);
        }
        self.tail = Some((self.inner.written(), tail.clone()));
        Ok(())
    }
}
