//! Encode and decode cost of every message kind, per codec: envelope
//! encode, envelope decode (payload left raw) and typed payload decode.
//!
//! `cargo bench --bench codecs`; filter with e.g. `-- 'msgpack/Yield'`.
#![allow(missing_docs)] // criterion_main! generates an undocumented `main`

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use scipp::msg::Msg;
use scipp::sample::{self, Reading};
use scipp::Codec;

fn bench_codec<C: Codec>(c: &mut Criterion, codec: C) {
    let name = codec.name();
    let samples = sample::messages(&codec).expect("samples encode");
    for s in &samples {
        let size = codec.encode_to_bytes(&s.msg).expect("encodes").len();
        eprintln!("encoded size {name}/{}: {size} bytes", s.name);
    }

    let mut group = c.benchmark_group(format!("{name}/encode"));
    for s in &samples {
        let size = codec.encode_to_bytes(&s.msg).expect("encodes").len();
        group.throughput(Throughput::Bytes(size as u64));
        let mut buf = BytesMut::with_capacity(size * 2);
        group.bench_function(BenchmarkId::from_parameter(s.name), |b| {
            b.iter(|| {
                buf.clear();
                codec.encode(black_box(&s.msg), &mut buf).expect("encodes");
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group(format!("{name}/decode"));
    for s in &samples {
        let frame = codec.encode_to_bytes(&s.msg).expect("encodes");
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_function(BenchmarkId::from_parameter(s.name), |b| {
            b.iter(|| codec.decode(black_box(frame.clone())).expect("decodes"))
        });
    }
    group.finish();

    let mut group = c.benchmark_group(format!("{name}/payload_decode"));
    for s in &samples {
        let Msg::Yield(y) = &s.msg else { continue };
        let pld = &y.pld;
        group.bench_function(BenchmarkId::from_parameter(s.name), |b| match s.name {
            "Yield(int)" => b.iter(|| codec.decode_payload::<i64>(black_box(pld)).unwrap()),
            "Yield(struct)" => b.iter(|| codec.decode_payload::<Reading>(black_box(pld)).unwrap()),
            _ => b.iter(|| {
                codec
                    .decode_payload::<serde_bytes::ByteBuf>(black_box(pld))
                    .unwrap()
            }),
        });
    }
    group.finish();
}

fn codecs(c: &mut Criterion) {
    bench_codec(c, scipp::MsgpackCodec::new());
    bench_codec(c, scipp::CborCodec::new());
    bench_codec(c, scipp::ProtobufCodec::new());
}

criterion_group!(benches, codecs);
criterion_main!(benches);
