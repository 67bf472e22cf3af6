//! The CBOR envelope sink: `ciborium-ll`'s encoder, definite lengths only.

use crate::codec::EncodeError;
use crate::envelope;
use bytes::{buf::Writer as BufWriter, BufMut, BytesMut};
use ciborium_io::Write as _;
use ciborium_ll::{simple, Encoder, Header};

pub(super) struct Writer<'a>(Encoder<BufWriter<&'a mut BytesMut>>);

impl<'a> Writer<'a> {
    pub(super) fn new(dst: &'a mut BytesMut) -> Self {
        Writer(Encoder::from(dst.writer()))
    }

    fn push(&mut self, header: Header) -> Result<(), EncodeError> {
        self.0.push(header).map_err(EncodeError::Io)
    }
}

impl envelope::Write for Writer<'_> {
    fn map(&mut self, entries: usize) -> Result<(), EncodeError> {
        self.push(Header::Map(Some(entries)))
    }

    fn array(&mut self, len: usize) -> Result<(), EncodeError> {
        self.push(Header::Array(Some(len)))
    }

    fn str(&mut self, s: &str) -> Result<(), EncodeError> {
        self.0.text(s, None).map_err(EncodeError::Io)
    }

    fn nil(&mut self) -> Result<(), EncodeError> {
        self.push(Header::Simple(simple::NULL))
    }

    fn bool(&mut self, b: bool) -> Result<(), EncodeError> {
        self.push(Header::Simple(if b { simple::TRUE } else { simple::FALSE }))
    }

    fn uint(&mut self, n: u64) -> Result<(), EncodeError> {
        self.push(Header::Positive(n))
    }

    fn raw(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.0.write_all(bytes).map_err(EncodeError::Io)
    }
}
