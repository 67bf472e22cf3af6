//! Runs the examples of `examples/` (server_client, codec_compare,
//! tractor_client, tractor_service) and checks what they print.
//!
//! `cargo test` builds every example next to the test binaries
//! (`target/<profile>/examples/NAME`); a binary that is missing, or older
//! than its source (e.g. under `cargo test --test examples_run`), is built
//! first with `cargo build --example NAME`.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long one example may run before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// The built example `name`, built now if missing or stale.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/examples_run-HASH -> target/<profile>/examples/NAME
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary sits in target/<profile>/deps");
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{name}.rs"));
    let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let stale = match (modified(&bin), modified(&source)) {
        (Some(built), Some(written)) => built < written,
        _ => true,
    };
    if stale {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut build = Command::new(cargo);
        build
            .args(["build", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "cargo build --example {name} failed");
    }
    assert!(bin.exists(), "{} was not built", bin.display());
    bin
}

/// Runs example `name` with `args`, bounded by [`RUN_LIMIT`]; returns its
/// stdout after checking that it exited 0.
fn run(name: &str, args: &[&str]) -> String {
    let mut child = Command::new(example(name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting example {name}: {e}"));
    let started = Instant::now();
    while child.try_wait().expect("polling the example").is_none() {
        if started.elapsed() > RUN_LIMIT {
            child.kill().ok();
            let out = child
                .wait_with_output()
                .expect("the killed example's output");
            panic!(
                "example {name} still ran after {RUN_LIMIT:?}; stdout:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().expect("the example's output");
    let stdout = String::from_utf8(stdout).expect("the example prints UTF-8");
    assert!(
        status.success(),
        "example {name} failed ({status}); stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&stderr)
    );
    stdout
}

/// Asserts that `out` has these lines, in this order (other lines may
/// come between them).
fn assert_lines_in_order(out: &str, expected: &[&str]) {
    let mut lines = out.lines();
    for want in expected {
        assert!(
            lines.any(|line| line == *want),
            "missing (or out of order): {want:?}\nin:\n{out}"
        );
    }
}

#[test]
fn server_client_serves_calls_and_shuts_down() {
    let out = run("server_client", &[]);
    assert!(
        out.lines()
            .next()
            .is_some_and(|l| l.starts_with("server: listening on 127.0.0.1:")),
        "{out}"
    );
    assert_lines_in_order(
        &out,
        &[
            "client: add(a=2, b=3) = 5",
            "client: add(a=2) failed: TypeError: add() missing 1 required positional argument: 'b'",
            "client: shout started: \"shouting back\"",
            "client: shout yielded \"HELLO\"",
            "client: shout yielded \"SCIPP\"",
            "client: shout returned 2",
            "server: 1 live channel(s)",
            "server: shut down gracefully",
            "client: the server closed the channel",
        ],
    );
}

#[cfg(all(feature = "cbor", feature = "protobuf"))]
#[test]
fn codec_compare_round_trips_with_every_codec() {
    let out = run("codec_compare", &["50"]);
    assert!(
        out.starts_with(
            "payload: Reading { sensor: \"boiler-7\", .. } (8 samples, 2 tags), 50 rounds each\n"
        ),
        "{out}"
    );
    let mut seen = Vec::new();
    for line in out.lines().skip(2) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cols.len(),
            6,
            "a row: codec, frame, payload, encode, decode, ok: {line:?}"
        );
        let frame: usize = cols[1].parse().expect("frame bytes");
        let payload: usize = cols[2].parse().expect("payload bytes");
        assert!(payload > 0 && frame > payload, "{line:?}");
        assert_eq!(cols[5], "ok", "{line:?}");
        seen.push(cols[0].to_owned());
    }
    assert_eq!(seen, ["msgpack", "cbor", "protobuf"]);
}

#[test]
fn tractor_client_calls_the_stand_in_actor() {
    let out = run("tractor_client", &[]);
    assert!(
        out.lines()
            .next()
            .is_some_and(|l| l.starts_with("connected to scipp_peer at 127.0.0.1:")),
        "{out}"
    );
    assert_lines_in_order(
        &out,
        &[
            "add(a=2, b=3) = 5",
            "echo_int started: 7",
            "echo_int yielded 1",
            "echo_int yielded 2",
            "echo_int yielded 3",
            "echo_int returned 3",
            "raises: ValueError from scipp_peer",
        ],
    );
}

#[test]
fn tractor_service_is_called_by_address_and_by_name() {
    let out = run("tractor_service", &[]);
    let registrar = out
        .lines()
        .find_map(|l| l.strip_prefix("registrar: started on "))
        .expect("the registrar's address");
    let service = out
        .lines()
        .find_map(|l| l.strip_prefix("service: scipp_svc listening on "))
        .expect("the service's address");
    let (listening, registered) = service
        .split_once(", registered as ")
        .expect("both addresses");
    assert_eq!(listening, registered, "a loopback listener registers as is");
    assert_ne!(listening, registrar);
    let found = format!("by name: scipp_svc is at [{listening}]");
    assert_lines_in_order(
        &out,
        &[
            "by address: add(a=2, b=3) = 5",
            "by address: total started: \"send me ints\"",
            "by address: running totals [1, 3, 6], total returned 6",
            &found,
            "by name: add(a=2, b=3) = 5",
            "by name: total started: \"send me ints\"",
            "by name: running totals [1, 3, 6], total returned 6",
            "service: unregistered and shut down",
        ],
    );
}
