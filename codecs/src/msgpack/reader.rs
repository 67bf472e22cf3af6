//! A bounds-checked msgpack cursor over one frame.
//!
//! Hand-written on purpose: the envelope walk is this crate's hot path, it
//! must hand out zero-copy slices of the frame for raw payloads, and it
//! must never trust a length the peer claims. Marker classification is
//! `rmp`'s; nothing here allocates except the strings it returns.

use crate::codec::{DecodeError, DecodeErrorKind};
use crate::envelope::{self, truncated, wrong_type, Result, ValueKind};
use bytes::Bytes;
use rmp::Marker;

/// The type of the msgpack value starting with `marker`.
fn kind(marker: Marker) -> ValueKind {
    match marker {
        Marker::FixPos(_) | Marker::FixNeg(_) => ValueKind::Int,
        Marker::U8 | Marker::U16 | Marker::U32 | Marker::U64 => ValueKind::Int,
        Marker::I8 | Marker::I16 | Marker::I32 | Marker::I64 => ValueKind::Int,
        Marker::F32 | Marker::F64 => ValueKind::Float,
        Marker::Null => ValueKind::Nil,
        Marker::True | Marker::False => ValueKind::Bool,
        Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => ValueKind::Str,
        Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => ValueKind::Bin,
        Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => ValueKind::Array,
        Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => ValueKind::Map,
        Marker::FixExt1 | Marker::FixExt2 | Marker::FixExt4 | Marker::FixExt8 => ValueKind::Ext,
        Marker::FixExt16 | Marker::Ext8 | Marker::Ext16 | Marker::Ext32 => ValueKind::Ext,
        Marker::Reserved => ValueKind::Other,
    }
}

/// A cursor over `frame`.
pub(super) struct Reader<'a> {
    frame: &'a Bytes,
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(frame: &'a Bytes) -> Self {
        Reader { frame, pos: 0 }
    }

    /// Checks that `bytes` hold exactly one well-formed value whose claimed
    /// counts fit in them: what the envelope checks of an inline payload,
    /// for codecs that carry msgpack payloads as opaque bytes (protobuf).
    #[cfg(feature = "protobuf")]
    pub(crate) fn check_one_value(bytes: &Bytes) -> Result<()> {
        let mut r = Reader::new(bytes);
        envelope::Read::raw_value(&mut r)?;
        if r.remaining() != 0 {
            return Err(DecodeError::new(DecodeErrorKind::Malformed(format!(
                "{} bytes after the payload value",
                r.remaining()
            ))));
        }
        Ok(())
    }

    fn remaining(&self) -> usize {
        self.frame.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(truncated());
        }
        let frame: &'a [u8] = self.frame;
        let out = &frame[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn be(&mut self, n: usize) -> Result<u64> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// Reads the next marker without consuming it.
    fn peek(&self) -> Result<Marker> {
        self.frame
            .get(self.pos)
            .map(|b| Marker::from_u8(*b))
            .ok_or_else(truncated)
    }

    fn marker(&mut self) -> Result<Marker> {
        let m = self.peek()?;
        self.pos += 1;
        Ok(m)
    }

    /// The length that follows a str marker, or `None` for another type.
    fn str_len(&mut self, m: Marker) -> Result<Option<usize>> {
        Ok(Some(match m {
            Marker::FixStr(n) => usize::from(n),
            Marker::Str8 => self.be(1)? as usize,
            Marker::Str16 => self.be(2)? as usize,
            Marker::Str32 => self.be(4)? as usize,
            _ => return Ok(None),
        }))
    }
}

impl<'a> envelope::Read<'a> for Reader<'a> {
    fn pos(&self) -> usize {
        self.pos
    }

    fn set_pos(&mut self, pos: usize) {
        self.pos = pos;
    }

    fn remaining(&self) -> usize {
        Reader::remaining(self)
    }

    fn peek_kind(&mut self) -> Result<ValueKind> {
        self.peek().map(kind)
    }

    /// The count is checked against the bytes left, so a claim of 2^32
    /// entries in a short frame fails here.
    fn map_len(&mut self) -> Result<Option<usize>> {
        let start = self.pos;
        let n = match self.marker()? {
            Marker::FixMap(n) => usize::from(n),
            Marker::Map16 => self.be(2)? as usize,
            Marker::Map32 => self.be(4)? as usize,
            _ => {
                self.pos = start;
                return Ok(None);
            }
        };
        if n > self.remaining() / 2 {
            return Err(truncated());
        }
        Ok(Some(n))
    }

    /// Reads an array header; `None` (nothing consumed) if not an array.
    fn array_len(&mut self) -> Result<Option<usize>> {
        let start = self.pos;
        let n = match self.marker()? {
            Marker::FixArray(n) => usize::from(n),
            Marker::Array16 => self.be(2)? as usize,
            Marker::Array32 => self.be(4)? as usize,
            _ => {
                self.pos = start;
                return Ok(None);
            }
        };
        if n > self.remaining() {
            return Err(truncated());
        }
        Ok(Some(n))
    }

    /// Reads a str, or fails with a `WrongType` naming `expected`.
    fn str_bytes(&mut self, expected: &'static str) -> Result<&'a [u8]> {
        // Every key of an envelope and every cid is a fixstr: read its one
        // byte header directly, without classifying the marker (a measured
        // hot path: five of these per message).
        if let Some(&b) = self.frame.get(self.pos) {
            if b & 0xe0 == 0xa0 {
                self.pos += 1;
                return self.take(usize::from(b & 0x1f));
            }
        }
        let m = self.marker()?;
        match self.str_len(m)? {
            Some(n) => self.take(n),
            None => Err(wrong_type(expected, kind(m))),
        }
    }

    /// Consumes a nil if one is next.
    fn nil(&mut self) -> Result<bool> {
        if self.peek()? == Marker::Null {
            self.pos += 1;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn bool(&mut self) -> Result<bool> {
        match self.marker()? {
            Marker::True => Ok(true),
            Marker::False => Ok(false),
            m => Err(wrong_type("bool", kind(m))),
        }
    }

    /// Reads any int that fits an `i128` (msgpack ints always do).
    fn int(&mut self) -> Result<i128> {
        Ok(match self.marker()? {
            Marker::FixPos(v) => i128::from(v),
            Marker::FixNeg(v) => i128::from(v),
            Marker::U8 => i128::from(self.be(1)?),
            Marker::U16 => i128::from(self.be(2)?),
            Marker::U32 => i128::from(self.be(4)?),
            Marker::U64 => i128::from(self.be(8)?),
            Marker::I8 => i128::from(self.be(1)? as u8 as i8),
            Marker::I16 => i128::from(self.be(2)? as u16 as i16),
            Marker::I32 => i128::from(self.be(4)? as u32 as i32),
            Marker::I64 => i128::from(self.be(8)? as i64),
            m => return Err(wrong_type("int", kind(m))),
        })
    }

    /// Skips one whole value and returns it as a zero-copy slice.
    ///
    /// Iterative: it only counts the values still owed, so no nesting depth
    /// can exhaust the stack, and every claimed count is checked against
    /// the bytes left (each value takes at least one byte).
    fn raw_value(&mut self) -> Result<Bytes> {
        let start = self.pos;
        // a fixint is its one byte (a stream of small ints: every payload)
        if let Some(&b) = self.frame.get(start) {
            if !(0x80..0xe0).contains(&b) {
                self.pos += 1;
                return Ok(self.frame.slice(start..self.pos));
            }
        }
        let mut owed: usize = 1;
        while owed > 0 {
            owed -= 1;
            let m = self.marker()?;
            let skip = match m {
                Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null => 0,
                Marker::True | Marker::False => 0,
                Marker::U8 | Marker::I8 => 1,
                Marker::U16 | Marker::I16 => 2,
                Marker::U32 | Marker::I32 | Marker::F32 => 4,
                Marker::U64 | Marker::I64 | Marker::F64 => 8,
                Marker::FixStr(n) => usize::from(n),
                Marker::Str8 | Marker::Bin8 => self.be(1)? as usize,
                Marker::Str16 | Marker::Bin16 => self.be(2)? as usize,
                Marker::Str32 | Marker::Bin32 => self.be(4)? as usize,
                Marker::FixExt1 => 2,
                Marker::FixExt2 => 3,
                Marker::FixExt4 => 5,
                Marker::FixExt8 => 9,
                Marker::FixExt16 => 17,
                Marker::Ext8 => self.be(1)? as usize + 1,
                Marker::Ext16 => self.be(2)? as usize + 1,
                Marker::Ext32 => self.be(4)? as usize + 1,
                Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
                    self.pos -= 1;
                    owed += self.array_len()?.unwrap_or(0);
                    0
                }
                Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
                    self.pos -= 1;
                    owed += 2 * self.map_len()?.unwrap_or(0);
                    0
                }
                Marker::Reserved => {
                    return Err(DecodeError::new(DecodeErrorKind::Malformed(
                        "reserved marker 0xc1".into(),
                    )))
                }
            };
            self.take(skip)?;
            if owed > self.remaining() {
                return Err(truncated());
            }
        }
        Ok(self.frame.slice(start..self.pos))
    }
}
