//! The msgpack envelope sink: `rmp`'s encoders, which pick the smallest
//! form for every length and int exactly as msgspec does.

use crate::codec::EncodeError;
use crate::envelope;
use bytes::{buf::Writer as BufWriter, BufMut, BytesMut};
use rmp::encode as enc;

pub(super) struct Writer<'a>(BufWriter<&'a mut BytesMut>);

impl<'a> Writer<'a> {
    pub(super) fn new(dst: &'a mut BytesMut) -> Self {
        Writer(dst.writer())
    }
}

/// `rmp` writes through `io::Write`, which into a `BytesMut` cannot fail;
/// an error is still passed on rather than unwrapped.
fn io<T, E: std::error::Error + Send + Sync + 'static>(r: Result<T, E>) -> Result<(), EncodeError> {
    r.map(drop)
        .map_err(|e| EncodeError::Io(std::io::Error::other(e)))
}

fn len32(n: usize) -> Result<u32, EncodeError> {
    u32::try_from(n).map_err(|_| EncodeError::BadRawPayload {
        field: "collection",
        reason: format!("{n} elements exceed msgpack's u32 length"),
    })
}

impl envelope::Write for Writer<'_> {
    fn map(&mut self, entries: usize) -> Result<(), EncodeError> {
        io(enc::write_map_len(&mut self.0, len32(entries)?))
    }

    fn array(&mut self, len: usize) -> Result<(), EncodeError> {
        io(enc::write_array_len(&mut self.0, len32(len)?))
    }

    fn str(&mut self, s: &str) -> Result<(), EncodeError> {
        io(enc::write_str(&mut self.0, s))
    }

    fn nil(&mut self) -> Result<(), EncodeError> {
        io(enc::write_nil(&mut self.0))
    }

    fn bool(&mut self, b: bool) -> Result<(), EncodeError> {
        io(enc::write_bool(&mut self.0, b))
    }

    fn uint(&mut self, n: u64) -> Result<(), EncodeError> {
        io(enc::write_uint(&mut self.0, n))
    }

    fn raw(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.0.get_mut().put_slice(bytes);
        Ok(())
    }
}
