use super::{FrameError, HEADER_LEN, READ_AHEAD};
use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// Room made for a partly arrived small frame (under a quarter of this):
/// this much, so that the next read takes the frames behind it too (a
/// stream of 4 KiB frames read into exactly-missing room cost about a
/// syscall per frame). A bigger frame gets exactly the room it misses: one
/// that straddled the end of the room would be copied when it grows.
const READ_CHUNK: usize = 64 * 1024;

/// tractor's framing: a `u32` little-endian body length, then the body.
///
/// Decoding yields each body as [`Bytes`] (the header stripped), so later
/// layers can slice payloads out of it without copying.
///
/// ```
/// use bytes::BytesMut;
/// use scipp_layers::framing::FrameCodec;
/// use tokio_util::codec::Decoder;
///
/// let mut codec = FrameCodec::new(1024);
/// let mut buf = BytesMut::from(&b"\x05\x00\x00\x00hello"[..]);
/// assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), "hello");
/// ```
#[derive(Debug)]
pub struct FrameCodec {
    inner: LengthDelimitedCodec,
    max_frame_len: usize,
}

impl FrameCodec {
    /// A codec refusing bodies longer than `max_frame_len` bytes.
    pub fn new(max_frame_len: usize) -> Self {
        let inner = LengthDelimitedCodec::builder()
            .little_endian()
            .length_field_length(HEADER_LEN)
            .max_frame_length(max_frame_len)
            .new_codec();
        FrameCodec {
            inner,
            max_frame_len,
        }
    }

    /// The largest body accepted, in bytes.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    fn claimed_len(src: &BytesMut) -> Option<usize> {
        let header: [u8; HEADER_LEN] = src.get(..HEADER_LEN)?.try_into().ok()?;
        Some(u32::from_le_bytes(header) as usize)
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::new(super::DEFAULT_MAX_FRAME_LEN)
    }
}

/// Whether a frame of `claimed` bytes is read into a buffer of its own
/// size: one of at least a quarter of [`READ_CHUNK`] (smaller ones share
/// read-ahead room) that the bound on what a claim may make us allocate,
/// [`READ_AHEAD`], allows (bigger ones grow step by step).
fn is_big(claimed: usize) -> bool {
    (READ_CHUNK / 4..=READ_AHEAD).contains(&claimed)
}

impl Decoder for FrameCodec {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(claimed) = Self::claimed_len(src) else {
            return Ok(None);
        };
        if claimed > self.max_frame_len {
            return Err(FrameError::TooLarge {
                claimed,
                max: self.max_frame_len,
            });
        }
        let missing = (HEADER_LEN + claimed).saturating_sub(src.len());
        let big = is_big(claimed);
        if missing > 0 {
            if big && src.capacity() - src.len() < missing {
                // A big frame gets a buffer of exactly its size, and only
                // what has arrived of it (in the steady state its header)
                // is moved there: the reads then end at its last byte.
                // Growing the buffer instead reallocated it, copying
                // everything in it, and let the read run into the next
                // frame, whose bytes the next growth copied again: one
                // frame-sized copy per 64 KiB frame, 45 % of a `Blob`
                // stream's instructions (callgrind, BENCHMARKS.md).
                let mut exact = BytesMut::with_capacity(HEADER_LEN + claimed);
                exact.extend_from_slice(src);
                *src = exact;
            } else if !big {
                // LengthDelimitedCodec would reserve the whole claimed
                // length here; grow only a bounded step ahead of what has
                // arrived.
                let room = if claimed < READ_CHUNK / 4 {
                    READ_CHUNK
                } else {
                    missing
                };
                src.reserve(room.min(READ_AHEAD));
            }
            return Ok(None);
        }
        // The whole frame is buffered: split the body off. (Handing this to
        // the inner codec read and checked the header a second time: ~100
        // instructions per frame, callgrind.)
        src.advance(HEADER_LEN);
        let body = src.split_to(claimed).freeze();
        if big && src.is_empty() {
            // Read the next header alone: if it is another big frame, its
            // own buffer is made from four bytes, not from a read-ahead
            // that would have to be moved. (The one spent buffer stays with
            // the frame.)
            *src = BytesMut::with_capacity(HEADER_LEN);
        } else {
            // as the inner codec did: room for the next header (this
            // decides when the read buffer is reused or replaced, and so
            // what the frames' slices keep alive)
            src.reserve(HEADER_LEN.saturating_sub(src.len()));
        }
        Ok(Some(body))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(FrameError::Truncated {
                expected: HEADER_LEN + Self::claimed_len(src).unwrap_or(0),
                received: src.len(),
            }),
        }
    }
}

impl FrameCodec {
    /// The u32-LE length prefix of a body of `len` bytes, or `TooLarge`
    /// past the maximum: the one rule for every frame written, buffered
    /// or written straight through.
    pub(crate) fn header(&self, len: usize) -> Result<[u8; HEADER_LEN], FrameError> {
        let too_large = || FrameError::TooLarge {
            claimed: len,
            max: self.max_frame_len,
        };
        if len > self.max_frame_len {
            return Err(too_large());
        }
        u32::try_from(len)
            .map(u32::to_le_bytes)
            .map_err(|_| too_large())
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, body: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.header(body.len())?;
        self.inner.encode(body, dst).map_err(FrameError::Io)
    }
}
