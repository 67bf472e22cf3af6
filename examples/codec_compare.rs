//! Comparing the codecs (msgpack, CBOR, protobuf) on your own payload type:
//! the size of a `Yield` frame carrying it, and the time to encode and to
//! decode it, measured here with `std::time::Instant`.
//!
//! ```sh
//! cargo run --release --example codec_compare        # 20 000 rounds
//! cargo run --release --example codec_compare -- 500 # fewer
//! ```
//!
//! prints a table (timings vary by machine and build; sizes do not):
//!
//! ```text
//! payload: Reading { sensor: "boiler-7", .. } (8 samples, 2 tags), 20000 rounds each
//! codec       frame B   payload B   encode ns/msg   decode ns/msg   round trip
//! msgpack         ...         ...             ...             ...   ok
//! cbor            ...         ...             ...             ...   ok
//! protobuf        ...         ...             ...             ...   ok
//! ```
//!
//! Swap `Reading` for your own type: anything `Serialize + Deserialize`
//! works with every codec. (`scipp codecs --payloads FILE` does the same
//! from the command line, on JSON values.)

use bytes::Bytes;
use scipp::msg::{Cid, Msg, Yield};
use scipp::{CborCodec, Codec, MsgpackCodec, ProtobufCodec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Your own payload type: one sensor reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Reading {
    sensor: String,
    at_unix_ms: u64,
    samples: Vec<f64>,
    tags: BTreeMap<String, String>,
    ok: bool,
}

fn sample() -> Reading {
    Reading {
        sensor: "boiler-7".to_owned(),
        at_unix_ms: 1_764_460_800_000,
        samples: (0..8).map(|i| 20.0 + f64::from(i) * 0.25).collect(),
        tags: BTreeMap::from([
            ("site".to_owned(), "north".to_owned()),
            ("unit".to_owned(), "celsius".to_owned()),
        ]),
        ok: true,
    }
}

/// One codec's numbers.
struct Row {
    codec: &'static str,
    frame_len: usize,
    payload_len: usize,
    encode: Duration,
    decode: Duration,
    round_trip: bool,
}

/// Encodes `value` as a `Yield` frame and decodes it back, `rounds` times
/// each way.
fn measure<C: Codec>(
    codec: C,
    value: &Reading,
    rounds: u32,
) -> Result<Row, Box<dyn std::error::Error>> {
    let cid = Cid::from("6f0e3a52-3c1c-4a9e-9f5e-0d2b7d1c4e11");
    let encode_one = |v: &Reading| -> Result<Bytes, Box<dyn std::error::Error>> {
        let pld = codec.encode_payload(v)?;
        Ok(codec.encode_to_bytes(&Msg::Yield(Yield {
            cid: cid.clone(),
            pld,
        }))?)
    };
    let decode_one = |frame: Bytes| -> Result<Reading, Box<dyn std::error::Error>> {
        match codec.decode(frame)? {
            Msg::Yield(y) => Ok(codec.decode_payload(&y.pld)?),
            other => Err(format!("decoded a {} instead of a Yield", other.kind()).into()),
        }
    };

    let frame = encode_one(value)?;
    let payload_len = codec.encode_payload(value)?.len();
    let round_trip = decode_one(frame.clone())? == *value;

    let start = Instant::now();
    for _ in 0..rounds {
        black_box(encode_one(black_box(value))?);
    }
    let encode = start.elapsed();

    let start = Instant::now();
    for _ in 0..rounds {
        black_box(decode_one(black_box(frame.clone()))?);
    }
    let decode = start.elapsed();

    Ok(Row {
        codec: codec.name(),
        frame_len: frame.len(),
        payload_len,
        encode,
        decode,
        round_trip,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: u32 = match std::env::args().nth(1) {
        Some(n) => n.parse().map_err(|e| format!("rounds {n:?}: {e}"))?,
        None => 20_000,
    };
    let rounds = rounds.max(1);
    let value = sample();
    println!(
        "payload: Reading {{ sensor: {:?}, .. }} ({} samples, {} tags), {rounds} rounds each",
        value.sensor,
        value.samples.len(),
        value.tags.len()
    );
    let rows = [
        measure(MsgpackCodec::new(), &value, rounds)?,
        measure(CborCodec::new(), &value, rounds)?,
        measure(ProtobufCodec::new(), &value, rounds)?,
    ];
    println!("codec       frame B   payload B   encode ns/msg   decode ns/msg   round trip");
    for row in &rows {
        let per_msg = |d: Duration| d.as_nanos() / u128::from(rounds);
        println!(
            "{:<10} {:>8} {:>11} {:>15} {:>15}   {}",
            row.codec,
            row.frame_len,
            row.payload_len,
            per_msg(row.encode),
            per_msg(row.decode),
            if row.round_trip { "ok" } else { "MISMATCH" }
        );
    }
    if rows.iter().any(|r| !r.round_trip) {
        return Err("a codec did not give the payload back unchanged".into());
    }
    Ok(())
}
