//! Per-thread scratch buffers for encoding small messages.
//!
//! A `Yield(int)` used to cost four allocations to send: the payload's
//! `Vec`, the `Bytes` header that `Bytes::from(Vec)` allocates whenever
//! the `Vec` has spare capacity, and the same two again for the frame
//! (callgrind, `BENCHMARKS.md`). Encoding into a reused buffer and copying
//! the result out into an exact-size `Bytes` costs one allocation each and
//! a copy of a few dozen bytes. Big encodings keep their own buffer: the
//! copy would cost more than the allocation it saves.

use bytes::{Bytes, BytesMut};
use std::cell::RefCell;

/// Encodings up to this many bytes are copied out of the scratch buffer.
const SMALL: usize = 1024;

/// The most room a scratch buffer keeps between uses.
const KEEP: usize = 64 * 1024;

thread_local! {
    static BYTES: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

#[cfg(any(feature = "msgpack", feature = "cbor"))]
thread_local! {
    static VEC: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `encode` on an empty reusable `Vec` and returns what it wrote.
#[cfg(any(feature = "msgpack", feature = "cbor"))]
pub(crate) fn encode_vec<E>(
    encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<Bytes, E> {
    VEC.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            encode(&mut buf)?;
            Ok(if buf.len() <= SMALL {
                Bytes::copy_from_slice(&buf)
            } else {
                Bytes::from(std::mem::take(&mut *buf))
            })
        }
        // an encoder that encodes while encoding (a `Serialize` impl
        // calling back into a codec): a buffer of its own
        Err(_) => {
            let mut buf = Vec::new();
            encode(&mut buf)?;
            Ok(Bytes::from(buf))
        }
    })
}

/// Runs `encode` on an empty reusable `BytesMut` (with room for `hint`
/// bytes) and returns what it wrote.
pub(crate) fn encode_bytes<E>(
    hint: usize,
    encode: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<Bytes, E> {
    let mut encode = Some(encode);
    if hint <= SMALL {
        let reused = BYTES.with(|cell| {
            let mut buf = cell.try_borrow_mut().ok()?;
            buf.clear();
            let encode = encode.take()?;
            let out = encode(&mut buf).map(|()| Bytes::copy_from_slice(&buf));
            if buf.capacity() > KEEP {
                // a long error message: do not hold its room forever
                *buf = BytesMut::new();
            }
            Some(out)
        });
        if let Some(out) = reused {
            return out;
        }
    }
    let mut buf = BytesMut::with_capacity(hint);
    (encode.take().expect("not used yet"))(&mut buf)?;
    Ok(buf.freeze())
}

#[cfg(all(test, feature = "msgpack"))]
mod tests {
    use super::*;

    #[test]
    fn small_and_big_encodings_come_back_whole_and_nested_ones_work() {
        let small = encode_vec(|b| {
            b.extend_from_slice(b"abc");
            Ok::<_, ()>(())
        })
        .unwrap();
        assert_eq!(small, "abc");
        let big = encode_vec(|b| {
            b.resize(SMALL + 1, 7);
            Ok::<_, ()>(())
        })
        .unwrap();
        assert_eq!(big.len(), SMALL + 1);
        // the scratch was taken by the big one; the next small one still works
        let nested = encode_vec(|outer| {
            let inner = encode_vec(|b| {
                b.push(1);
                Ok::<_, ()>(())
            })?;
            outer.extend_from_slice(&inner);
            outer.push(2);
            Ok::<_, ()>(())
        })
        .unwrap();
        assert_eq!(nested, &[1u8, 2][..]);
        let frame = encode_bytes(8, |b| {
            b.extend_from_slice(b"frame");
            Ok::<_, ()>(())
        })
        .unwrap();
        assert_eq!(frame, "frame");
        let failed = encode_bytes(8, |b| {
            b.extend_from_slice(b"half");
            Err("no")
        });
        assert_eq!(failed, Err("no"));
        let next = encode_bytes(8, |b| {
            b.extend_from_slice(b"next");
            Ok::<_, ()>(())
        })
        .unwrap();
        assert_eq!(next, "next", "a failed encoding leaves nothing behind");
    }
}
