//! The msgpack envelope sink.
//!
//! Hand-written on purpose, for a measured hot path: a `Yield(int)`
//! envelope took 121 ns through `rmp::encode` and its `io::Write` path, and
//! takes 46 ns written straight into the `BytesMut` (criterion,
//! `msgpack/encode/Yield(int)`). The envelope is only headers and short
//! strings; the forms chosen are msgpack's smallest, as msgspec writes
//! them, and the transcript tests pin them byte for byte. Payloads are
//! still encoded by `rmp-serde`.

use crate::codec::EncodeError;
use crate::envelope;
use bytes::{BufMut, BytesMut};

pub(super) struct Writer<'a>(&'a mut BytesMut);

impl<'a> Writer<'a> {
    pub(super) fn new(dst: &'a mut BytesMut) -> Self {
        Writer(dst)
    }

    /// A header for a str/map/array of `len`: the fix form (`fix` | len)
    /// below `fix_max`, else the 8 (str only), 16 or 32-bit form.
    fn header(
        &mut self,
        len: usize,
        fix: u8,
        fix_max: usize,
        m8: Option<u8>,
        m16: u8,
        m32: u8,
    ) -> Result<(), EncodeError> {
        let dst = &mut *self.0;
        if len < fix_max {
            dst.put_u8(fix | len as u8);
        } else if let (Some(m8), true) = (m8, len <= 0xff) {
            dst.put_u8(m8);
            dst.put_u8(len as u8);
        } else if len <= 0xffff {
            dst.put_u8(m16);
            dst.put_u16(len as u16);
        } else if let Ok(len) = u32::try_from(len) {
            dst.put_u8(m32);
            dst.put_u32(len);
        } else {
            return Err(EncodeError::BadRawPayload {
                field: "collection",
                reason: format!("{len} elements exceed msgpack's u32 length"),
            });
        }
        Ok(())
    }
}

impl envelope::Write for Writer<'_> {
    fn map(&mut self, entries: usize) -> Result<(), EncodeError> {
        self.0.reserve(64);
        self.header(entries, 0x80, 16, None, 0xde, 0xdf)
    }

    fn array(&mut self, len: usize) -> Result<(), EncodeError> {
        self.header(len, 0x90, 16, None, 0xdc, 0xdd)
    }

    fn str(&mut self, s: &str) -> Result<(), EncodeError> {
        self.header(s.len(), 0xa0, 32, Some(0xd9), 0xda, 0xdb)?;
        self.0.put_slice(s.as_bytes());
        Ok(())
    }

    fn nil(&mut self) -> Result<(), EncodeError> {
        self.0.put_u8(0xc0);
        Ok(())
    }

    fn bool(&mut self, b: bool) -> Result<(), EncodeError> {
        self.0.put_u8(if b { 0xc3 } else { 0xc2 });
        Ok(())
    }

    fn uint(&mut self, n: u64) -> Result<(), EncodeError> {
        let dst = &mut *self.0;
        match n {
            0..=0x7f => dst.put_u8(n as u8),
            0x80..=0xff => {
                dst.put_u8(0xcc);
                dst.put_u8(n as u8);
            }
            0x100..=0xffff => {
                dst.put_u8(0xcd);
                dst.put_u16(n as u16);
            }
            0x1_0000..=0xffff_ffff => {
                dst.put_u8(0xce);
                dst.put_u32(n as u32);
            }
            _ => {
                dst.put_u8(0xcf);
                dst.put_u64(n);
            }
        }
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
