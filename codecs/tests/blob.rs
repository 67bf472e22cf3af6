//! `Blob`: byte payloads shared with the frame on receive and with the
//! caller's buffer on send, on the same wire as `ByteBuf`.

use bytes::{BufMut, Bytes, BytesMut};
use scipp_codecs::msg::{Cid, Msg, RawPayload, Yield};
use scipp_codecs::msgpack::MsgpackCodec;
use scipp_codecs::{Blob, Codec, BLOB_SHARE_MIN};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

const SIZES: [usize; 9] = [0, 1, 255, 256, 511, 512, 4096, 65535, 65536 + 7];

fn data(len: usize) -> Bytes {
    (0..len)
        .map(|i| (i * 7 + 3) as u8)
        .collect::<Vec<u8>>()
        .into()
}

fn inside(outer: &[u8], inner: &[u8]) -> bool {
    let (o, i) = (outer.as_ptr_range(), inner.as_ptr_range());
    !inner.is_empty() && o.start <= i.start && i.end <= o.end
}

fn yield_of(pld: RawPayload) -> Msg {
    Msg::Yield(Yield {
        cid: Cid::from("c49c48d4-7aa3-4d52-9303-281a3a1fe10d"),
        pld,
    })
}

/// Every codec that carries a `Blob`: the same bytes as `ByteBuf`, the
/// caller's buffer kept aside when big, and the frame shared on decode.
fn round_trips<C: Codec>(codec: C) {
    for len in SIZES {
        let bytes = data(len);
        let blob = Blob::new(bytes.clone());
        let raw = codec.encode_payload(&blob).unwrap();
        let owned = codec
            .encode_payload(&ByteBuf::from(bytes.to_vec()))
            .unwrap();
        assert_eq!(raw.len(), owned.len(), "{len}");
        assert_eq!(
            raw.as_bytes(),
            owned.as_bytes(),
            "{len}: same wire as ByteBuf"
        );
        match raw.tail() {
            Some(tail) => {
                assert!(len >= BLOB_SHARE_MIN, "{len}");
                assert_eq!(tail.as_ptr(), bytes.as_ptr(), "{len}: the caller's buffer");
            }
            None => assert!(len < BLOB_SHARE_MIN, "{len}: a big blob is kept aside"),
        }

        // the envelope, with the tail deferred: the same bytes in two parts
        let msg = yield_of(raw.clone());
        let whole = codec.encode_to_bytes(&msg).unwrap();
        assert_eq!(whole, codec.encode_to_bytes(&yield_of(owned)).unwrap());
        let (head, tail) = codec.encode_to_parts(&msg).unwrap();
        let tail = tail.unwrap_or_default();
        assert_eq!([&head[..], &tail[..]].concat(), whole, "{len}");
        if len >= BLOB_SHARE_MIN {
            assert_eq!(tail.as_ptr(), bytes.as_ptr(), "{len}: not copied");
        }

        // received: a slice of the frame
        let back = codec.decode(whole.clone()).unwrap();
        let got: Blob = codec.decode_payload(back.pld().unwrap()).unwrap();
        assert_eq!(got, bytes, "{len}");
        if len >= BLOB_SHARE_MIN {
            assert!(inside(&whole, &got), "{len}: a slice of the frame");
        }
        // the owned types read the same payload as before
        let owned: ByteBuf = codec.decode_payload(back.pld().unwrap()).unwrap();
        assert_eq!(owned.as_slice(), &bytes[..]);
    }
}

#[test]
fn msgpack_blobs_are_byte_bufs_on_the_wire_and_shared_both_ways() {
    round_trips(MsgpackCodec::new());
    let codec = MsgpackCodec::new();
    // and `Vec<u8>` still reads a `bin`
    let raw = codec.encode_payload(&Blob::new(data(4096))).unwrap();
    let vec: Vec<u8> = codec.decode_payload(&raw).unwrap();
    assert_eq!(vec, data(4096));
}

#[test]
fn cbor_blobs_are_byte_strings_on_the_wire_and_shared_both_ways() {
    round_trips(scipp_codecs::cbor::CborCodec::new());
}

#[test]
fn a_received_blob_outlives_its_frame_and_the_read_buffer_reused() {
    let codec = MsgpackCodec::new();
    let payload = data(64 * 1024);
    let frame_of = |pld: RawPayload| codec.encode_to_bytes(&yield_of(pld)).unwrap();
    let first = frame_of(codec.encode_payload(&Blob::new(payload.clone())).unwrap());
    let second = frame_of(codec.encode_payload(&7i64).unwrap());

    // a read buffer holding both frames and part of a third, as a socket
    // read leaves it; frames are split off it as the framing does
    let mut read = BytesMut::with_capacity(first.len() + second.len() + 64);
    read.put_slice(&first);
    read.put_slice(&second);
    read.put_slice(&[0xab; 16]);
    let frame = read.split_to(first.len()).freeze();
    let other = read.split_to(second.len()).freeze();

    let msg = codec.decode(frame.clone()).unwrap();
    let blob: Blob = codec.decode_payload(msg.pld().unwrap()).unwrap();
    assert!(inside(&frame, &blob), "a slice of the received frame");

    // the frame, its message and the other message go; the rest of the
    // read buffer is overwritten and grown
    let _: i64 = codec
        .decode_payload(codec.decode(other.clone()).unwrap().pld().unwrap())
        .unwrap();
    drop((msg, frame, other));
    read.clear();
    read.put_slice(&vec![0xff; 256 * 1024]);
    assert_eq!(blob, payload, "unchanged");
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Chunk {
    seq: u64,
    data: Blob,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct OwnedChunk {
    seq: u64,
    data: ByteBuf,
}

#[test]
fn blobs_inside_other_values_are_encoded_inline_and_shared_on_decode() {
    let codec = MsgpackCodec::new();
    let bytes = data(8192);
    let chunk = Chunk {
        seq: 3,
        data: Blob::new(bytes.clone()),
    };
    let raw = codec.encode_payload(&chunk).unwrap();
    assert!(
        raw.tail().is_none(),
        "only a whole-payload blob is kept aside"
    );
    let owned = OwnedChunk {
        seq: 3,
        data: ByteBuf::from(bytes.to_vec()),
    };
    assert_eq!(raw, codec.encode_payload(&owned).unwrap());
    let back: Chunk = codec.decode_payload(&raw).unwrap();
    assert_eq!(back, chunk);
    assert!(
        inside(raw.as_bytes(), &back.data),
        "msgpack shares nested blobs too"
    );

    // two big blobs, one value: inline as well
    let pair = (Blob::new(bytes.clone()), Blob::new(bytes.clone()));
    let raw = codec.encode_payload(&pair).unwrap();
    assert!(raw.tail().is_none());
    let owned = (ByteBuf::from(bytes.to_vec()), ByteBuf::from(bytes.to_vec()));
    assert_eq!(raw, codec.encode_payload(&owned).unwrap());
    // a newtype around a blob is the blob on the wire: kept aside
    #[derive(Serialize)]
    struct Wrapped(Blob);
    let raw = codec
        .encode_payload(&Wrapped(Blob::new(bytes.clone())))
        .unwrap();
    assert_eq!(raw.tail().map(|t| t.as_ptr()), Some(bytes.as_ptr()));
    assert_eq!(
        raw,
        codec
            .encode_payload(&ByteBuf::from(bytes.to_vec()))
            .unwrap()
    );
}

#[test]
fn blobs_accept_what_byte_bufs_accept_and_refuse_the_rest() {
    let codec = MsgpackCodec::new();
    for raw in [
        codec.encode_payload("text").unwrap(),
        codec.encode_payload(&[1u8, 2, 3]).unwrap(),
        codec.encode_payload(&ByteBuf::from(vec![1u8])).unwrap(),
    ] {
        let blob: Result<Blob, _> = codec.decode_payload(&raw);
        let buf: Result<ByteBuf, _> = codec.decode_payload(&raw);
        assert_eq!(
            blob.map(|b| b.to_vec()).ok(),
            buf.map(|b| b.into_vec()).ok(),
            "{raw:?}"
        );
    }
    let int = codec.encode_payload(&5i64).unwrap();
    assert!(codec.decode_payload::<Blob>(&int).is_err());
    let cbor = scipp_codecs::cbor::CborCodec::new();
    let int = cbor.encode_payload(&5i64).unwrap();
    assert!(cbor.decode_payload::<Blob>(&int).is_err());
    // a big CBOR byte string still refuses to be a string
    let big = cbor.encode_payload(&Blob::new(data(4096))).unwrap();
    assert!(cbor.decode_payload::<String>(&big).is_err());
}

#[test]
fn small_blobs_are_copied() {
    let codec = MsgpackCodec::new();
    let small = data(BLOB_SHARE_MIN - 1);
    let raw = codec.encode_payload(&Blob::new(small.clone())).unwrap();
    assert!(raw.tail().is_none());
    let back: Blob = codec.decode_payload(&raw).unwrap();
    assert_eq!(back, small);
    assert!(
        !inside(raw.as_bytes(), &back),
        "copied: no read buffer pinned"
    );
}
