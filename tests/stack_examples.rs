//! Runs the examples of the open stack (`examples/{metrics, authorize,
//! compress_frames, closure_policy}.rs`) and checks what they print.
//! `cargo test` builds every example before it runs the tests; the
//! binaries sit in `target/<profile>/examples/`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The built example `name`, next to this test's own binary.
fn example(name: &str) -> PathBuf {
    let me = std::env::current_exe().expect("the test binary's path");
    let profile_dir = me
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo test` (it builds the examples) or `cargo build --examples`",
        path.display()
    );
    path
}

/// Runs an example to completion (bounded) and returns its stdout.
fn run(name: &str) -> String {
    let mut child = Command::new(example(name))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the example");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("example {name} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The count printed for `dir kind` by the metrics example.
fn count(out: &str, dir: &str, kind: &str) -> u64 {
    out.lines()
        .find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some(dir) && words.next() == Some(kind))
                .then(|| words.next().and_then(|n| n.parse().ok()))
                .flatten()
        })
        .unwrap_or_else(|| panic!("no count for {dir} {kind} in:\n{out}"))
}

#[test]
fn metrics_counts_every_message_by_kind_and_direction() {
    let out = run("metrics");
    assert!(out.contains("[yours] CountLayer"), "{out}");
    // one context (5 items each way) and one RPC
    assert_eq!(count(&out, "out", "Start"), 2);
    assert_eq!(count(&out, "out", "Yield"), 5);
    assert_eq!(count(&out, "out", "Stop"), 1);
    assert_eq!(count(&out, "in", "StartAck"), 2);
    assert_eq!(count(&out, "in", "Started"), 1);
    assert_eq!(count(&out, "in", "Yield"), 5);
    assert_eq!(count(&out, "in", "Return"), 2);
}

#[test]
fn authorize_refuses_and_keeps_serving() {
    let out = run("authorize");
    for line in [
        "guest calls math:add: ok, 5",
        "guest calls math:shutdown_db: refused, PermissionError",
        "guest cancels the actor: refused, PermissionError",
        "guest calls math:add again: ok, 5",
        "guest calls admin:stats (filter): refused, PermissionError",
        "operator cancels the actor: ok",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
}

#[test]
fn compress_frames_shrinks_big_frames_and_delivers_every_line() {
    let out = run("compress_frames");
    assert!(out.contains("lines received: 50"), "{out}");
    let sent = out
        .lines()
        .find(|l| l.starts_with("server sent"))
        .unwrap_or_else(|| panic!("no stats in:\n{out}"));
    // "server sent N frames, M compressed: RAW bytes -> WIRE bytes ..."
    let numbers: Vec<u64> = sent
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    let (compressed, raw, wire) = (numbers[1], numbers[2], numbers[3]);
    assert_eq!(compressed, 50, "{sent}");
    assert!(wire < raw / 4, "{sent}");
    // the frame layer sits under the codec
    let framing = out.find("[yours] CompressLayer").unwrap();
    assert!(framing < out.find("3. codec").unwrap(), "{out}");
}

#[test]
fn closure_policy_drops_for_one_context_and_fails_another() {
    let out = run("closure_policy");
    assert!(
        out.contains("telemetry: 7 readings kept, 3 bad payloads dropped"),
        "{out}"
    );
    assert!(out.contains("control: failed after 2 readings"), "{out}");
}
