//! A bounds-checked CBOR cursor over one frame, handing out strings and
//! raw values as zero-copy slices of the frame.
//!
//! The item-header parser is hand-written for a measured hot path: going
//! through a `ciborium_ll::Decoder` per header cost 432 ns per `Yield(int)`
//! envelope (criterion, `cbor/decode/Yield(int)`), most of it decoder set-up
//! and `Read` plumbing for two or three bytes. The header layout is
//! RFC 8949 §3: major type in the top 3 bits, then the argument.

use crate::codec::{DecodeError, DecodeErrorKind};
use crate::envelope::{self, truncated, wrong_type, Result, ValueKind};
use bytes::Bytes;

/// One CBOR item header (the argument of strings and containers is their
/// length; `None` for indefinite length).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Header {
    Positive(u64),
    Negative(u64),
    Float,
    Simple(u8),
    Tag,
    Break,
    Bytes(Option<usize>),
    Text(Option<usize>),
    Array(Option<usize>),
    Map(Option<usize>),
}

mod simple {
    pub(super) const FALSE: u8 = 20;
    pub(super) const TRUE: u8 = 21;
    pub(super) const NULL: u8 = 22;
    pub(super) const UNDEFINED: u8 = 23;
}

/// Deepest nesting accepted inside a raw value.
const MAX_DEPTH: usize = 1024;

fn kind(h: Header) -> ValueKind {
    match h {
        Header::Positive(_) | Header::Negative(_) => ValueKind::Int,
        Header::Float => ValueKind::Float,
        Header::Simple(simple::FALSE | simple::TRUE) => ValueKind::Bool,
        Header::Simple(simple::NULL | simple::UNDEFINED) => ValueKind::Nil,
        Header::Simple(_) | Header::Break => ValueKind::Other,
        Header::Tag => ValueKind::Ext,
        Header::Bytes(_) => ValueKind::Bin,
        Header::Text(_) => ValueKind::Str,
        Header::Array(_) => ValueKind::Array,
        Header::Map(_) => ValueKind::Map,
    }
}

fn malformed(why: &str) -> DecodeError {
    DecodeError::new(DecodeErrorKind::Malformed(why.into()))
}

pub(super) struct Reader<'a> {
    frame: &'a Bytes,
    pos: usize,
}

/// One open container while skipping a raw value.
enum Level {
    /// Items still owed by a definite-length container.
    Definite(usize),
    /// An indefinite-length container, closed by a break.
    Indefinite,
}

impl<'a> Reader<'a> {
    pub(super) fn new(frame: &'a Bytes) -> Self {
        Reader { frame, pos: 0 }
    }

    fn left(&self) -> usize {
        self.frame.len() - self.pos
    }

    fn header(&mut self) -> Result<Header> {
        let initial = *self.take(1)?.first().ok_or_else(truncated)?;
        let (major, info) = (initial >> 5, initial & 0x1f);
        let arg = match info {
            0..=23 => Some(u64::from(info)),
            24 => Some(u64::from(self.take(1)?[0])),
            25 => Some(self.be(2)?),
            26 => Some(self.be(4)?),
            27 => Some(self.be(8)?),
            31 => None,
            _ => return Err(malformed("reserved CBOR additional info")),
        };
        let len = |arg: Option<u64>| -> Result<Option<usize>> {
            arg.map(|n| usize::try_from(n).map_err(|_| truncated()))
                .transpose()
        };
        Ok(match (major, arg) {
            (0, Some(n)) => Header::Positive(n),
            (1, Some(n)) => Header::Negative(n),
            (2, n) => Header::Bytes(len(n)?),
            (3, n) => Header::Text(len(n)?),
            (4, n) => Header::Array(len(n)?),
            (5, n) => Header::Map(len(n)?),
            (6, Some(_)) => Header::Tag,
            (7, None) => Header::Break,
            (7, Some(_)) if matches!(info, 25..=27) => Header::Float,
            (7, Some(n)) if info <= 24 => Header::Simple(n as u8),
            _ => return Err(malformed("invalid CBOR item header")),
        })
    }

    fn be(&mut self, n: usize) -> Result<u64> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn peek_header(&mut self) -> Result<Header> {
        let at = self.pos;
        let header = self.header();
        self.pos = at;
        header
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.left() {
            return Err(truncated());
        }
        let frame: &'a [u8] = self.frame;
        let out = &frame[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// A definite count of `per_item`-byte-minimum items, checked against
    /// the bytes left.
    fn count(&self, n: usize, per_item: usize) -> Result<usize> {
        if n.saturating_mul(per_item) > self.left() {
            Err(truncated())
        } else {
            Ok(n)
        }
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
        self.left()
    }

    fn peek_kind(&mut self) -> Result<ValueKind> {
        self.peek_header().map(kind)
    }

    fn map_len(&mut self) -> Result<Option<usize>> {
        match self.peek_header()? {
            Header::Map(Some(n)) => {
                self.header()?;
                self.count(n, 2).map(Some)
            }
            Header::Map(None) => Err(malformed("indefinite-length map in the envelope")),
            _ => Ok(None),
        }
    }

    fn array_len(&mut self) -> Result<Option<usize>> {
        match self.peek_header()? {
            Header::Array(Some(n)) => {
                self.header()?;
                self.count(n, 1).map(Some)
            }
            Header::Array(None) => Err(malformed("indefinite-length array in the envelope")),
            _ => Ok(None),
        }
    }

    fn str_bytes(&mut self, expected: &'static str) -> Result<&'a [u8]> {
        match self.header()? {
            Header::Text(Some(n)) => self.take(n),
            Header::Text(None) => Err(malformed("indefinite-length text in the envelope")),
            h => Err(wrong_type(expected, kind(h))),
        }
    }

    fn nil(&mut self) -> Result<bool> {
        if self.peek_header()? == Header::Simple(simple::NULL) {
            self.header()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn bool(&mut self) -> Result<bool> {
        match self.header()? {
            Header::Simple(simple::TRUE) => Ok(true),
            Header::Simple(simple::FALSE) => Ok(false),
            h => Err(wrong_type("bool", kind(h))),
        }
    }

    fn int(&mut self) -> Result<i128> {
        match self.header()? {
            Header::Positive(n) => Ok(i128::from(n)),
            Header::Negative(n) => Ok(-1 - i128::from(n)),
            h => Err(wrong_type("int", kind(h))),
        }
    }

    /// Iterative, with an explicit stack of open containers capped at
    /// [`MAX_DEPTH`]; every count is checked against the bytes left.
    fn raw_value(&mut self) -> Result<Bytes> {
        let start = self.pos;
        let mut open: Vec<Level> = Vec::new();
        loop {
            let item_done = match self.header()? {
                Header::Tag => false, // the tagged item follows
                Header::Bytes(Some(n)) | Header::Text(Some(n)) => {
                    self.take(n)?;
                    true
                }
                Header::Array(Some(0)) | Header::Map(Some(0)) => true,
                Header::Array(Some(n)) => {
                    open.push(Level::Definite(self.count(n, 1)?));
                    false
                }
                Header::Map(Some(n)) => {
                    open.push(Level::Definite(self.count(n, 2)? * 2));
                    false
                }
                Header::Bytes(None)
                | Header::Text(None)
                | Header::Array(None)
                | Header::Map(None) => {
                    open.push(Level::Indefinite);
                    false
                }
                Header::Break => match open.pop() {
                    Some(Level::Indefinite) => true,
                    _ => return Err(malformed("break outside an indefinite-length item")),
                },
                Header::Positive(_) | Header::Negative(_) | Header::Float | Header::Simple(_) => {
                    true
                }
            };
            if open.len() > MAX_DEPTH {
                return Err(DecodeError::new(DecodeErrorKind::TooDeep));
            }
            if item_done && Self::complete(&mut open) {
                return Ok(self.frame.slice(start..self.pos));
            }
        }
    }
}

impl Reader<'_> {
    /// Counts one finished item against its container; closes every
    /// definite container that is now full. True when the value is done.
    fn complete(open: &mut Vec<Level>) -> bool {
        loop {
            match open.last_mut() {
                None => return true,
                Some(Level::Indefinite) => return false,
                Some(Level::Definite(n)) => {
                    *n -= 1;
                    if *n > 0 {
                        return false;
                    }
                    open.pop();
                }
            }
        }
    }
}
