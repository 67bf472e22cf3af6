//! A bounds-checked CBOR cursor over one frame: `ciborium-ll` parses each
//! item header; this keeps the position so that strings and raw values
//! come out as zero-copy slices of the frame.

use crate::codec::{DecodeError, DecodeErrorKind};
use crate::envelope::{self, truncated, wrong_type, Result, ValueKind};
use bytes::Bytes;
use ciborium_ll::{simple, Decoder, Header};

/// Deepest nesting accepted inside a raw value.
const MAX_DEPTH: usize = 1024;

fn kind(h: Header) -> ValueKind {
    match h {
        Header::Positive(_) | Header::Negative(_) => ValueKind::Int,
        Header::Float(_) => ValueKind::Float,
        Header::Simple(simple::FALSE | simple::TRUE) => ValueKind::Bool,
        Header::Simple(simple::NULL | simple::UNDEFINED) => ValueKind::Nil,
        Header::Simple(_) | Header::Break => ValueKind::Other,
        Header::Tag(_) => ValueKind::Ext,
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
        let rest: &[u8] = &self.frame[self.pos..];
        let mut decoder = Decoder::from(rest);
        let header = decoder.pull().map_err(|e| match e {
            ciborium_ll::Error::Io(_) => truncated(),
            ciborium_ll::Error::Syntax(_) => malformed("invalid CBOR item header"),
        })?;
        self.pos += decoder.offset();
        Ok(header)
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
                Header::Tag(_) => false, // the tagged item follows
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
                Header::Positive(_)
                | Header::Negative(_)
                | Header::Float(_)
                | Header::Simple(_) => true,
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
