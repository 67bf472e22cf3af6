//! scipp next to tonic and tarpc, in one process, over loopback TCP.
//!
//! Each system serves and calls on one 2-worker Tokio runtime, one
//! connection per measurement. The tests (the same for every system that
//! has the feature): a one-way stream of `i64`, of 4 KiB and of 64 KiB
//! byte payloads; unary calls one after the other and from 64 concurrent
//! callers on one connection; ping-pong inside one open stream (p50). Each
//! test runs 5 times, the systems interleaved inside each repetition; the
//! table gives the median and the range of the per-repetition ratios.
//!
//! ```sh
//! cd benches/peers && cargo run --release            # the table
//! cd benches/peers && cargo run --release -- --smoke # tiny counts, counts asserted, nothing timed
//! # one system, one test, a given count: for callgrind (the per-call cost
//! # is the difference between two counts)
//! cd benches/peers && valgrind --tool=callgrind target/release/scipp-peer-bench \
//!     --only UnaryConcurrent --system Scipp --count 6400 --reps 1
//! ```
//!
//! Every system is used as its users write it: scipp through its public
//! API (endpoints, `Peer::serve`, `Channel::open_context` / `rpc`), tonic
//! with hand-derived prost messages and a hand-written service (what
//! `tonic-build` would generate, without `protoc`), tarpc with its
//! `#[tarpc::service]` macro over its serde transport with bincode.
//! tarpc has no streams: its columns cover the unary tests.

use std::time::{Duration, Instant};

mod scipp_side;
mod tarpc_side;
mod tonic_side;

/// What one test measures, per system and repetition.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Test {
    StreamInt,
    Stream4K,
    Stream64K,
    UnarySeq,
    UnaryConcurrent,
    PingPong,
}

const TESTS: [Test; 6] = [
    Test::StreamInt,
    Test::Stream4K,
    Test::Stream64K,
    Test::UnarySeq,
    Test::UnaryConcurrent,
    Test::PingPong,
];

/// Concurrent callers on one connection.
const CALLERS: usize = 64;

impl Test {
    fn name(self) -> &'static str {
        match self {
            Test::StreamInt => "one-way stream of i64",
            Test::Stream4K => "one-way stream, 4 KiB payloads",
            Test::Stream64K => "one-way stream, 64 KiB payloads",
            Test::UnarySeq => "unary, sequential",
            Test::UnaryConcurrent => "unary, 64 concurrent callers",
            Test::PingPong => "ping-pong in one stream, p50",
        }
    }
    /// Items (stream), calls (unary, all callers together) or rounds.
    fn count(self, smoke: bool) -> usize {
        match (self, smoke) {
            (Test::StreamInt, false) => 200_000,
            (Test::Stream4K, false) => 20_000,
            (Test::Stream64K, false) => 2_000,
            (Test::UnarySeq, false) => 10_000,
            (Test::UnaryConcurrent, false) => CALLERS * 500,
            (Test::PingPong, false) => 10_000,
            (Test::StreamInt, true) => 1_000,
            (Test::Stream4K | Test::Stream64K, true) => 20,
            (Test::UnaryConcurrent, true) => CALLERS * 2,
            (_, true) => 50,
        }
    }
    /// Payload bytes per stream item (0: an `i64`).
    fn payload_len(self) -> usize {
        match self {
            Test::Stream4K => 4096,
            Test::Stream64K => 65536,
            _ => 0,
        }
    }
    /// Higher is better (a rate); the ping-pong reports a latency.
    fn is_latency(self) -> bool {
        self == Test::PingPong
    }
}

/// One measurement: how many items/calls/rounds were seen and what it took
/// (for the ping-pong: the p50 of one round).
#[derive(Clone, Copy, Debug)]
struct Sample {
    count: usize,
    took: Duration,
}

impl Sample {
    /// Items (or calls) per second, or the p50 in µs for a latency.
    fn figure(&self, test: Test) -> f64 {
        if test.is_latency() {
            self.took.as_secs_f64() * 1e6
        } else {
            self.count as f64 / self.took.as_secs_f64()
        }
    }
}

/// p50 of a set of round-trip times.
fn p50(mut rounds: Vec<Duration>) -> Duration {
    rounds.sort();
    rounds[rounds.len() / 2]
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum System {
    Scipp,
    Tonic,
    Tarpc,
}

const SYSTEMS: [System; 3] = [System::Scipp, System::Tonic, System::Tarpc];

impl System {
    fn has(self, test: Test) -> bool {
        self != System::Tarpc || matches!(test, Test::UnarySeq | Test::UnaryConcurrent)
    }
}

/// The three servers, started once.
struct Servers {
    scipp: std::net::SocketAddr,
    tonic: std::net::SocketAddr,
    tarpc: std::net::SocketAddr,
}

async fn run_one(
    servers: &Servers,
    system: System,
    test: Test,
    smoke: bool,
    count: Option<usize>,
) -> Sample {
    let n = count.unwrap_or_else(|| test.count(smoke));
    let len = test.payload_len();
    let sample = match system {
        System::Scipp => {
            let client = scipp_side::Client::connect(servers.scipp).await;
            match test {
                Test::StreamInt | Test::Stream4K | Test::Stream64K => client.stream(n, len).await,
                Test::UnarySeq => client.unary_seq(n).await,
                Test::UnaryConcurrent => client.unary_concurrent(n).await,
                Test::PingPong => client.ping_pong(n).await,
            }
        }
        System::Tonic => {
            let client = tonic_side::Client::connect(servers.tonic).await;
            match test {
                Test::StreamInt | Test::Stream4K | Test::Stream64K => client.stream(n, len).await,
                Test::UnarySeq => client.unary_seq(n).await,
                Test::UnaryConcurrent => client.unary_concurrent(n).await,
                Test::PingPong => client.ping_pong(n).await,
            }
        }
        System::Tarpc => {
            let client = tarpc_side::Client::connect(servers.tarpc).await;
            match test {
                Test::UnarySeq => client.unary_seq(n).await,
                Test::UnaryConcurrent => client.unary_concurrent(n).await,
                _ => unreachable!("tarpc has no streams"),
            }
        }
    };
    assert_eq!(
        sample.count, n,
        "{system:?} {test:?}: every item/call/round completes, once"
    );
    sample
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn range(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    let reps: usize = match args.iter().position(|a| a == "--reps") {
        Some(i) => args[i + 1].parse().expect("--reps N"),
        None if smoke => 1,
        None => 5,
    };
    let value = |flag: &str| -> Option<String> {
        args.iter()
            .position(|a| a == flag)
            .map(|i| args[i + 1].clone())
    };
    let only = value("--only");
    let system = value("--system");
    let count = value("--count").map(|n| n.parse().expect("--count N"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // every measurement runs in a spawned task, on a worker thread
    rt.block_on(async move {
        tokio::spawn(measure(smoke, reps, only, system, count))
            .await
            .unwrap();
    });
}

async fn measure(
    smoke: bool,
    reps: usize,
    only: Option<String>,
    only_system: Option<String>,
    count: Option<usize>,
) {
    let servers = Servers {
        scipp: scipp_side::serve().await,
        tonic: tonic_side::serve().await,
        tarpc: tarpc_side::serve().await,
    };
    let tests: Vec<Test> = TESTS
        .into_iter()
        .filter(|t| only.as_deref().is_none_or(|o| format!("{t:?}") == o))
        .collect();
    // figures[test][system] = one figure per repetition
    let mut figures = vec![[Vec::new(), Vec::new(), Vec::new()]; tests.len()];
    let started = Instant::now();
    for rep in 0..reps {
        for (ti, &test) in tests.iter().enumerate() {
            // interleaved, the order rotated per repetition
            for k in 0..SYSTEMS.len() {
                let si = (k + rep) % SYSTEMS.len();
                let system = SYSTEMS[si];
                let chosen = only_system
                    .as_deref()
                    .is_none_or(|o| format!("{system:?}") == o);
                if !system.has(test) || !chosen {
                    continue;
                }
                let sample = run_one(&servers, system, test, smoke, count).await;
                figures[ti][si].push(sample.figure(test));
            }
        }
    }
    if smoke {
        println!(
            "smoke: {} tests x {} systems, counts checked, in {:.1} s",
            tests.len(),
            SYSTEMS.len(),
            started.elapsed().as_secs_f64()
        );
        return;
    }
    println!(
        "peers over loopback TCP, one connection, a 2-worker Tokio runtime, {reps} repetitions; nproc = {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("rates: items/s (streams; MB/s beside the byte payloads) or calls/s; ping-pong: p50 µs (lower is better)");
    println!("ratios: scipp ÷ tonic and scipp ÷ tarpc per repetition, median [min–max]; for the ping-pong, of latencies\n");
    println!(
        "{:<34} {:>20} {:>20} {:>10} {:>20} {:>20}",
        "test", "scipp", "tonic", "tarpc", "scipp÷tonic", "scipp÷tarpc"
    );
    for (ti, &test) in tests.iter().enumerate() {
        let [s, t, r] = &figures[ti];
        let fmt = |v: &Vec<f64>| -> String {
            if v.is_empty() {
                return "-".into();
            }
            let m = median(v.clone());
            if test.payload_len() > 0 {
                format!("{:.0} ({:.0} MB/s)", m, m * test.payload_len() as f64 / 1e6)
            } else if test.is_latency() {
                format!("{m:.1}")
            } else {
                format!("{m:.0}")
            }
        };
        let ratio = |other: &Vec<f64>| -> String {
            if other.is_empty() {
                return "-".into();
            }
            let ratios: Vec<f64> = s.iter().zip(other).map(|(a, b)| a / b).collect();
            if ratios.is_empty() {
                return "-".into();
            }
            let (lo, hi) = range(&ratios);
            format!("{:.2}× [{lo:.2}–{hi:.2}]", median(ratios.clone()))
        };
        println!(
            "{:<34} {:>20} {:>20} {:>10} {:>20} {:>20}",
            test.name(),
            fmt(s),
            fmt(t),
            fmt(r),
            ratio(t),
            ratio(r)
        );
    }
}
