//! The `scipp` binary, run as a user runs it.

use std::path::PathBuf;
use std::process::{Command, Output};

fn scipp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scipp"))
        .args(args)
        .output()
        .expect("runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("scipp-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn demo_runs_a_dialog_over_tcp_and_exits_zero() {
    let out = scipp(&["demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for kind in [
        "Aid", "Start", "StartAck", "Started", "Yield", "Stop", "Return",
    ] {
        assert!(text.contains(&format!(" {kind} ")), "no {kind} in:\n{text}");
    }
    assert!(text.contains("returned 2"), "{text}");
    assert!(text.contains("required field is missing"), "{text}");
}

#[test]
fn codecs_prints_a_row_per_codec_for_the_builtin_sample() {
    let out = scipp(&["codecs", "--millis", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for needle in ["msgpack", "cbor", "protobuf", "bytes 64 KiB", "vs fastest"] {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
    assert_eq!(
        text.matches('×').count(),
        15,
        "3 codecs × 5 payload sets:\n{text}"
    );
}

#[test]
fn codecs_measures_user_payloads_from_json_lines() {
    let path = temp_file("ok.jsonl", "1\n\"two\"\n{\"x\": [1, 2.5, null]}\n");
    let out = scipp(&[
        "codecs",
        "--millis",
        "2",
        "--json",
        "--payloads",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    assert!(rows
        .iter()
        .all(|r| r["set"].as_str().unwrap().contains("(3 payloads)")));
    assert!(rows
        .iter()
        .all(|r| r["bytes_per_msg"].as_f64().unwrap() > 40.0));
}

#[test]
fn codecs_with_a_malformed_payload_file_names_the_line() {
    let path = temp_file("bad.jsonl", "1\n{\"x\": }\n3\n");
    let out = scipp(&["codecs", "--payloads", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("line 2"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let path = temp_file("bad.json", "[1,\n 2,\n oops]\n");
    let out = scipp(&["codecs", "--payloads", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("line 3"), "{}", stderr(&out));
}

#[test]
fn decode_marks_every_transcript_frame_byte_identical() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/vectors/tractor/echo_stream.json"
    );
    let out = scipp(&["decode", file]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let frames: Vec<&str> = text.lines().filter(|l| l.contains(" B ")).collect();
    assert_eq!(frames.len(), 23, "{text}");
    assert!(frames.iter().all(|l| l.contains(" B = ")), "{text}");
}
