//! The CBOR envelope sink, definite lengths only.
//!
//! Hand-written like the msgpack one, for the same measured reason: through
//! `ciborium_ll::Encoder` and its `Write` plumbing a `Yield(int)` envelope
//! took 178 ns (criterion, `cbor/encode/Yield(int)`). An item header is
//! RFC 8949 §3's major type plus the shortest argument encoding.

use crate::codec::EncodeError;
use crate::envelope;
use bytes::{BufMut, BytesMut};

const UINT: u8 = 0;
const BYTES: u8 = 2;
const TEXT: u8 = 3;
const ARRAY: u8 = 4;
const MAP: u8 = 5;
const FALSE: u8 = 0xf4;
const TRUE: u8 = 0xf5;
const NULL: u8 = 0xf6;

/// The header of a definite-length byte string of `len` bytes, as
/// ciborium writes it for a `serde_bytes` value.
pub(super) fn byte_string_header(len: u64) -> bytes::Bytes {
    let mut dst = BytesMut::with_capacity(9);
    Writer(&mut dst).header(BYTES, len);
    dst.freeze()
}

pub(super) struct Writer<'a>(&'a mut BytesMut);

impl<'a> Writer<'a> {
    pub(super) fn new(dst: &'a mut BytesMut) -> Self {
        Writer(dst)
    }

    /// An item header: major type and argument, in the shortest form.
    fn header(&mut self, major: u8, arg: u64) {
        let dst = &mut *self.0;
        let major = major << 5;
        match arg {
            0..=23 => dst.put_u8(major | arg as u8),
            24..=0xff => {
                dst.put_u8(major | 24);
                dst.put_u8(arg as u8);
            }
            0x100..=0xffff => {
                dst.put_u8(major | 25);
                dst.put_u16(arg as u16);
            }
            0x1_0000..=0xffff_ffff => {
                dst.put_u8(major | 26);
                dst.put_u32(arg as u32);
            }
            _ => {
                dst.put_u8(major | 27);
                dst.put_u64(arg);
            }
        }
    }
}

impl envelope::Write for Writer<'_> {
    fn map(&mut self, entries: usize) -> Result<(), EncodeError> {
        self.0.reserve(64);
        self.header(MAP, entries as u64);
        Ok(())
    }

    fn array(&mut self, len: usize) -> Result<(), EncodeError> {
        self.header(ARRAY, len as u64);
        Ok(())
    }

    fn str(&mut self, s: &str) -> Result<(), EncodeError> {
        self.header(TEXT, s.len() as u64);
        self.0.put_slice(s.as_bytes());
        Ok(())
    }

    fn nil(&mut self) -> Result<(), EncodeError> {
        self.0.put_u8(NULL);
        Ok(())
    }

    fn bool(&mut self, b: bool) -> Result<(), EncodeError> {
        self.0.put_u8(if b { TRUE } else { FALSE });
        Ok(())
    }

    fn uint(&mut self, n: u64) -> Result<(), EncodeError> {
        self.header(UINT, n);
        Ok(())
    }

    fn raw(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.0.put_slice(bytes);
        Ok(())
    }

    fn written(&self) -> usize {
        self.0.len()
    }
}
