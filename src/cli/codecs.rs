//! `scipp codecs`: size and speed of every codec on the same payloads.
//!
//! Each payload travels as the `pld` of a `Yield`, the message a stream
//! sends most. Per message, *encode* is payload serialization plus the
//! envelope, *decode* is the envelope plus the typed payload decode: the
//! whole cost a user pays on each side. Timings come from a measurement
//! loop after a short warm-up.

use super::CliError;
use scipp::msg::{Cid, Msg, Yield};
use scipp::sample::{self, Reading};
use scipp::{CborCodec, Codec, MsgpackCodec, ProtobufCodec};
use serde::{de::DeserializeOwned, Serialize};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub(crate) struct CodecsArgs {
    /// Your own payloads: a JSON array of values, or JSON lines (one value
    /// per line). Without it, a built-in sample is measured.
    #[arg(long, value_name = "FILE")]
    payloads: Option<PathBuf>,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
    /// Measurement time per codec and payload set, in milliseconds.
    #[arg(long, default_value_t = 150, value_name = "MS")]
    millis: u64,
}

/// One codec measured on one payload set.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) set: String,
    pub(crate) codec: &'static str,
    pub(crate) bytes: f64,
    pub(crate) encode_ns: f64,
    pub(crate) decode_ns: f64,
}

impl Row {
    fn total_ns(&self) -> f64 {
        self.encode_ns + self.decode_ns
    }
}

pub(crate) fn run(args: CodecsArgs) -> Result<(), CliError> {
    let budget = Duration::from_millis(args.millis.max(1));
    let rows = match &args.payloads {
        Some(path) => {
            let values = load_payloads(path)?;
            let set = format!("{} ({} payloads)", path.display(), values.len());
            measure_all(&set, &values, budget)?
        }
        None => builtin(budget)?,
    };
    if args.json {
        for r in &rows {
            let line = serde_json::json!({
                "set": r.set, "codec": r.codec, "bytes_per_msg": r.bytes,
                "encode_ns": r.encode_ns, "decode_ns": r.decode_ns,
            });
            out!("{line}");
        }
    } else {
        print_table(&rows);
    }
    Ok(())
}

/// The built-in sample: one set per payload shape.
pub(crate) fn builtin(budget: Duration) -> Result<Vec<Row>, CliError> {
    let mut rows = Vec::new();
    rows.extend(measure_all("int", &[42i64], budget)?);
    rows.extend(measure_all("str", &["hello, tractor".to_owned()], budget)?);
    rows.extend(measure_all("struct ~200 B", &[Reading::sample()], budget)?);
    let nested: serde_json::Value = serde_json::json!({
        "id": 7, "tags": ["a", "b"], "pos": {"x": 1.5, "y": -2.0}, "ok": true, "note": null
    });
    rows.extend(measure_all("nested map", &[nested], budget)?);
    rows.extend(measure_all("bytes 64 KiB", &[sample::blob_64k()], budget)?);
    Ok(rows)
}

fn measure_all<T>(set: &str, values: &[T], budget: Duration) -> Result<Vec<Row>, CliError>
where
    T: Serialize + DeserializeOwned,
{
    Ok(vec![
        measure(set, MsgpackCodec::new(), values, budget)?,
        measure(set, CborCodec::new(), values, budget)?,
        measure(set, ProtobufCodec::new(), values, budget)?,
    ])
}

/// Runs `f` repeatedly for about `budget` after a warm-up of a tenth of it;
/// returns nanoseconds per call.
fn time_per_call(budget: Duration, mut f: impl FnMut()) -> f64 {
    let warm = Instant::now();
    while warm.elapsed() < budget / 10 {
        f();
    }
    let (start, mut calls) = (Instant::now(), 0u64);
    loop {
        for _ in 0..16 {
            f();
        }
        calls += 16;
        if start.elapsed() >= budget {
            return start.elapsed().as_nanos() as f64 / calls as f64;
        }
    }
}

fn measure<C, T>(set: &str, codec: C, values: &[T], budget: Duration) -> Result<Row, CliError>
where
    C: Codec,
    T: Serialize + DeserializeOwned,
{
    let cid = Cid::from(sample::CID);
    let encode_one = |v: &T| -> Result<bytes::Bytes, CliError> {
        let msg = Msg::Yield(Yield {
            cid: cid.clone(),
            pld: codec.encode_payload(v)?,
        });
        Ok(codec.encode_to_bytes(&msg)?)
    };
    let frames: Vec<bytes::Bytes> = values.iter().map(encode_one).collect::<Result<_, _>>()?;
    // Check once, outside the timing, that every frame decodes back.
    for frame in &frames {
        let Msg::Yield(y) = codec.decode(frame.clone())? else {
            return Err("decoded a different message kind".into());
        };
        codec.decode_payload::<T>(&y.pld)?;
    }
    let n = values.len() as f64;
    let encode_ns = time_per_call(budget, || {
        for v in values {
            black_box(encode_one(black_box(v)).ok());
        }
    }) / n;
    let decode_ns = time_per_call(budget, || {
        for frame in &frames {
            if let Ok(Msg::Yield(y)) = codec.decode(black_box(frame.clone())) {
                black_box(codec.decode_payload::<T>(&y.pld).ok());
            }
        }
    }) / n;
    let bytes = frames.iter().map(|f| f.len() as f64).sum::<f64>() / n;
    Ok(Row {
        set: set.to_owned(),
        codec: codec.name(),
        bytes,
        encode_ns,
        decode_ns,
    })
}

fn load_payloads(path: &PathBuf) -> Result<Vec<serde_json::Value>, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let trimmed = text.trim_start();
    let values = if trimmed.starts_with('[') {
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{}: line {}, column {}: {e}",
                path.display(),
                e.line(),
                e.column()
            )
        })?;
        match value {
            serde_json::Value::Array(items) => items,
            other => vec![other],
        }
    } else {
        let mut values = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let value = serde_json::from_str(line).map_err(|e| {
                format!("{}: line {}: not a JSON value: {e}", path.display(), i + 1)
            })?;
            values.push(value);
        }
        values
    };
    if values.is_empty() {
        return Err(format!("{}: no payloads in the file", path.display()).into());
    }
    Ok(values)
}

/// Prints the rows as a table, one block per payload set, with each
/// codec's total time (encode + decode) relative to the set's fastest.
pub(crate) fn print_table(rows: &[Row]) {
    out!(
        "{:<16} {:<9} {:>10} {:>11} {:>11}  {:>10}",
        "payload",
        "codec",
        "bytes/msg",
        "encode ns",
        "decode ns",
        "vs fastest"
    );
    let mut sets: Vec<&str> = rows.iter().map(|r| r.set.as_str()).collect();
    sets.dedup();
    for set in sets {
        let block: Vec<&Row> = rows.iter().filter(|r| r.set == set).collect();
        let fastest = block
            .iter()
            .map(|r| r.total_ns())
            .fold(f64::INFINITY, f64::min);
        for (i, r) in block.iter().enumerate() {
            let label = if i == 0 { set } else { "" };
            out!(
                "{:<16} {:<9} {:>10.0} {:>11.0} {:>11.0}  {:>9.2}×",
                label,
                r.codec,
                r.bytes,
                r.encode_ns,
                r.decode_ns,
                r.total_ns() / fastest
            );
        }
    }
}
