//! Arbitrary bytes, in arbitrary chunks, into tractor's framer.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use scipp_layers::framing::FrameCodec;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut codec = FrameCodec::new(1 << 20);
    let mut buf = BytesMut::new();
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => assert!(frame.len() <= 1 << 20),
                Ok(None) => break,
                Err(_) => return,
            }
        }
        // what arrived plus one 64 KiB read-ahead step, at most doubled by
        // `Vec`-style growth: never what a header merely claims
        assert!(buf.capacity() <= 2 * (rest.len() + scipp_layers::framing::READ_AHEAD) + 8192);
    }
    let _ = codec.decode_eof(&mut buf);
});
