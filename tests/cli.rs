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
    for codec in ["msgpack", "cbor", "protobuf"] {
        let row = text
            .lines()
            .find(|l| l.trim_start().starts_with(codec) && l.contains("Point(0, 0)"));
        assert!(
            row.is_some_and(|r| r.contains("2 points → 2 echoed")),
            "no typed dialog on {codec}:\n{text}"
        );
    }
    for policy in [
        "ignore-and-warn  endpoint got: 1, 2, Stop",
        "fail-fast        endpoint got: 1, MsgTypeError('not-an-int')",
    ] {
        assert!(text.contains(policy), "{policy}:\n{text}");
    }
    assert!(text.contains("ContextCancelled acked"), "{text}");
    assert!(text.contains("remote task raised a 'ValueError'"), "{text}");
    assert!(text.contains("vs fastest"), "the codec table:\n{text}");
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
        "/vectors/tractor/echo_stream.json"
    );
    let out = scipp(&["decode", file]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let frames: Vec<&str> = text.lines().filter(|l| l.contains(" B ")).collect();
    assert_eq!(frames.len(), 23, "{text}");
    assert!(frames.iter().all(|l| l.contains(" B = ")), "{text}");
}

// ---- serve, call, tap ------------------------------------------------------

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Stdio};

/// A background `scipp` process that prints `listening on ADDR` first;
/// the rest of its stdout arrives line by line from a reader thread.
struct Running(Option<Child>, String, std::sync::mpsc::Receiver<String>);

impl Running {
    /// Waits (bounded) for a line containing `needle`; returns every line
    /// read so far.
    fn wait_for(&self, needle: &str) -> String {
        let mut seen = String::new();
        while let Ok(line) = self.2.recv_timeout(std::time::Duration::from_secs(10)) {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains(needle) {
                return seen;
            }
        }
        panic!("no line with {needle:?} in:\n{seen}");
    }

    /// Stops it and returns everything it printed that was not read yet.
    fn finish(mut self) -> String {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.2.try_iter().map(|l| l + "\n").collect()
    }
}

/// Kills the process however the test ends.
impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn_listening(args: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_scipp"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .split(',')
        .next()
        .unwrap()
        .to_owned();
    // keep draining stdout so the child never blocks on a full pipe
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Running(Some(child), addr, rx)
}

fn call(addr: &str, args: &[&str]) -> Output {
    let mut all = vec!["call", addr];
    all.extend_from_slice(args);
    scipp(&all)
}

#[test]
fn serve_and_call_every_example_endpoint() {
    let server = spawn_listening(&["serve", "--listen", "127.0.0.1:0"]);
    let addr = server.1.clone();
    let ok = |args: &[&str], expect: &[&str]| {
        let out = call(&addr, args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let text = stdout(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines, expect, "{args:?}");
    };
    ok(
        &[
            "scipp_peer:echo",
            "--kwargs",
            r#"{"first":"hello"}"#,
            "--send",
            "1",
            "--send",
            r#""two""#,
        ],
        &[
            r#"started: "hello""#,
            "received: 1",
            r#"received: "two""#,
            "return: 2",
        ],
    );
    ok(
        &["scipp_peer:echo_int", "--send", "5"],
        &["started: 0", "received: 5", "return: 1"],
    );
    ok(
        &["scipp_peer:echo_point", "--send", r#"{"x":1,"y":-1}"#],
        &[
            r#"started: {"x": 0, "y": 0}"#,
            r#"received: {"x": 1, "y": -1}"#,
            "return: 1",
        ],
    );
    ok(
        &["scipp_peer:add", "--rpc", "--kwargs", r#"{"a":2,"b":3}"#],
        &["return: 5"],
    );
    ok(
        &[
            "scipp_peer:add",
            "--rpc",
            "--json",
            "--kwargs",
            r#"{"a":2,"b":3}"#,
        ],
        &[r#"{"return":5}"#],
    );

    let fails = |args: &[&str], first_line_has: &str| {
        let out = call(&addr, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout(&out));
        let err = stderr(&out);
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: ") && first.contains(first_line_has),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    };
    fails(&["scipp_peer:raises"], "ValueError from scipp_peer");
    fails(
        &["scipp_peer:bad_started"],
        "does not match type-spec: `Started.pld: int`",
    );
    fails(
        &["scipp_peer:sleep_forever", "--timeout", "0.5"],
        "timed out after 0.5 s",
    );
    fails(&["scipp_peer:bad_yield", "--timeout", "0.5"], "timed out");
    fails(&["scipp_peer:no_such_func"], "AttributeError");
    fails(
        &["scipp_peer:echo", "--kwargs", "{bad"],
        "--kwargs is not valid JSON",
    );
    fails(
        &["scipp_peer:echo", "--kwargs", "[1]"],
        "--kwargs must be a JSON object",
    );
    fails(&["not-a-target"], "is not NS:FUNC");
}

#[test]
fn call_to_an_unreachable_address_is_one_clear_line() {
    let out = call("127.0.0.1:1", &["scipp_peer:echo"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: cannot reach 127.0.0.1:1"), "{err}");
}

/// A scripted server: replays the recorded server frames of a transcript
/// (its cids swapped for the caller's), reading one caller frame wherever
/// the recording has one. `close_after` cuts the connection early.
fn scripted_server(
    file: &str,
    close_after: Option<usize>,
) -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    use scipp::{msg::Msg, Codec, MsgpackCodec};
    let path = format!("{}/vectors/tractor/{file}", env!("CARGO_MANIFEST_DIR"));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        let codec = MsgpackCodec::new();
        let mut our_cid = None;
        for (i, f) in json["frames"].as_array().unwrap().iter().enumerate() {
            if close_after == Some(i) {
                return; // drops the socket mid-dialog
            }
            let hex = f["hex"].as_str().unwrap();
            let wire: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            if f["dir"] == "c2s" {
                let mut len = [0u8; 4];
                if tcp.read_exact(&mut len).is_err() {
                    return;
                }
                let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
                tcp.read_exact(&mut body).unwrap();
                if let Ok(Msg::Start(s)) = codec.decode(body.into()) {
                    our_cid.get_or_insert(s.cid);
                }
                continue;
            }
            let mut msg = codec.decode(bytes::Bytes::from(wire).slice(4..)).unwrap();
            if let (
                Some(cid),
                Msg::StartAck(_) | Msg::Started(_) | Msg::Yield(_) | Msg::Return(_) | Msg::Stop(_),
            ) = (&our_cid, &msg)
            {
                msg = match msg {
                    Msg::StartAck(mut m) => {
                        m.cid = cid.clone();
                        Msg::StartAck(m)
                    }
                    Msg::Started(mut m) => {
                        m.cid = cid.clone();
                        Msg::Started(m)
                    }
                    Msg::Yield(mut m) => {
                        m.cid = cid.clone();
                        Msg::Yield(m)
                    }
                    Msg::Return(mut m) => {
                        m.cid = cid.clone();
                        Msg::Return(m)
                    }
                    Msg::Stop(mut m) => {
                        m.cid = cid.clone();
                        Msg::Stop(m)
                    }
                    other => other,
                };
            }
            let body = codec.encode_to_bytes(&msg).unwrap();
            tcp.write_all(&(body.len() as u32).to_le_bytes()).unwrap();
            tcp.write_all(&body).unwrap();
        }
    });
    (addr, handle)
}

#[test]
fn call_against_a_replay_of_a_recorded_tractor_server_prints_its_values() {
    let (addr, server) = scripted_server("echo_stream.json", None);
    let sends: Vec<String> = (0..8).map(|i| i.to_string()).collect();
    let mut args = vec!["scipp_peer:echo", "--kwargs", r#"{"first":"hello"}"#];
    for s in &sends {
        args.extend(["--send", s.as_str()]);
    }
    let out = call(&addr.to_string(), &args);
    server.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&r#"started: "hello""#));
    assert_eq!(lines.last(), Some(&"return: 8"));
    let received: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("received: "))
        .collect();
    // what the real tractor server echoed, as recorded (bin shows its length)
    assert_eq!(
        received,
        [
            "1",
            r#""two""#,
            "[3, 3.5]",
            r#"{"four": 4}"#,
            "<4 bytes>",
            "None",
            "True",
            "-1099511627776"
        ]
    );
}

#[test]
fn call_to_a_peer_that_closes_mid_stream_fails_cleanly() {
    // the recorded server stops after its Started (frame 4 is the first Yield exchange)
    let (addr, server) = scripted_server("echo_stream.json", Some(5));
    let out = call(
        &addr.to_string(),
        &["scipp_peer:echo", "--send", "1", "--timeout", "10"],
    );
    server.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: the channel to scipp_peer closed"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
}

#[test]
fn tap_prints_every_frame_and_forwards_bytes_unchanged() {
    // upstream: records what it gets and echoes it back
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let up_addr = upstream.local_addr().unwrap().to_string();
    let echo = std::thread::spawn(move || {
        let (mut tcp, _) = upstream.accept().unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = tcp.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            tcp.write_all(&buf[..n]).unwrap();
        }
        got
    });
    let tap = spawn_listening(&["tap", "--listen", "127.0.0.1:0", "--upstream", &up_addr]);
    let codec = scipp::MsgpackCodec::new();
    let mut sent = Vec::new();
    for msg in scipp::sample::messages(&codec).unwrap() {
        let body = scipp::Codec::encode_to_bytes(&codec, &msg.msg).unwrap();
        sent.extend_from_slice(&(body.len() as u32).to_le_bytes());
        sent.extend_from_slice(&body);
    }
    sent.extend_from_slice(b"\x05\x00\x00\x00\xc1oops"); // a frame that does not decode
    let mut client = std::net::TcpStream::connect(&tap.1).unwrap();
    client.write_all(&sent).unwrap();
    let mut back = vec![0u8; sent.len()];
    client.read_exact(&mut back).unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let upstream_got = echo.join().unwrap();
    assert!(
        upstream_got == sent,
        "the upstream got other bytes than were sent"
    );
    assert!(back == sent, "the client got other bytes back");
    drop(client);
    // the tap prints each frame as it passes: wait for the connection's
    // last line before stopping it
    let log = tap.wait_for("] closed") + &tap.finish();
    for kind in [
        "Aid",
        "Start",
        "StartAck",
        "Started",
        "Yield",
        "Stop",
        "Return",
        "CancelAck",
        "Error",
    ] {
        assert!(
            log.contains(&format!(" {kind} ")),
            "no {kind} in tap output:\n{log}"
        );
    }
    assert!(
        log.contains("! invalid IPC msg"),
        "the bad frame is shown with its reason:\n{log}"
    );
}

#[test]
fn tap_between_call_and_serve_shows_the_dialog() {
    let server = spawn_listening(&["serve", "--listen", "127.0.0.1:0"]);
    let tap = spawn_listening(&["tap", "--listen", "127.0.0.1:0", "--upstream", &server.1]);
    let out = call(
        &tap.1,
        &[
            "scipp_peer:echo",
            "--kwargs",
            r#"{"first":"hi"}"#,
            "--send",
            "1",
            "--send",
            r#""x""#,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().last(), Some("return: 2"));
    let log = tap.wait_for("[1] closed");
    tap.finish();
    let frames: Vec<&str> = log.lines().filter(|l| l.contains(" B  ")).collect();
    let kinds: Vec<&str> = frames
        .iter()
        .map(|l| {
            l.split(" B  ")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "Yield").count(), 4, "{log}");
    for kind in ["Aid", "Start", "StartAck", "Started", "Stop", "Return"] {
        assert!(kinds.contains(&kind), "no {kind}:\n{log}");
    }
    assert!(
        log.contains("scipp_peer:echo({\"first\": \"hi\"})"),
        "{log}"
    );
}

#[test]
fn tap_json_prints_one_object_per_frame() {
    let server = spawn_listening(&["serve", "--listen", "127.0.0.1:0"]);
    let tap = spawn_listening(&[
        "tap",
        "--json",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &server.1,
    ]);
    let out = call(
        &tap.1,
        &["scipp_peer:add", "--rpc", "--kwargs", r#"{"a":1,"b":2}"#],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let log = tap.wait_for("[1] closed");
    tap.finish();
    let kinds: Vec<String> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["msg_type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        kinds,
        ["Aid", "Aid", "Start", "StartAck", "Return"]
            .map(String::from)
            .to_vec(),
        "{log}"
    );
}

// ---- joining a tractor tree ------------------------------------------------

#[test]
fn serve_registers_with_a_registrar_and_call_finds_it_by_name() {
    let registrar = spawn_listening(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--registrar",
        "--name",
        "scipp_registrar",
    ]);
    registrar.wait_for("registrar: serving the registry RPCs");
    let registry = registrar.1.clone();
    let mut service = spawn_listening(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--name",
        "scipp_svc",
        "--registry",
        &registry,
    ]);
    service.wait_for("registered as scipp_svc");
    let by_name = |name: &str| {
        scipp(&[
            "call",
            "--registry",
            &registry,
            name,
            "scipp_peer:add",
            "--rpc",
            "--kwargs",
            r#"{"a":2,"b":3}"#,
        ])
    };
    let out = by_name("scipp_svc");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "return: 5");

    // a clean exit unregisters
    let mut child = service.0.take().unwrap();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(child.wait().unwrap().success());
    let out = by_name("scipp_svc");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: ") && err.contains("no actor named \"scipp_svc\""),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn serve_with_an_unreachable_registry_fails_with_a_clear_error() {
    let out = scipp(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--registry",
        "127.0.0.1:1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("registry 127.0.0.1:1"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn serve_allow_refuses_other_endpoints_and_untrusted_cancels() {
    let server = spawn_listening(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--allow",
        "scipp_peer:add",
        "--trust",
        "operator",
    ]);
    let addr = server.1.clone();
    let add = call(
        &addr,
        &["scipp_peer:add", "--rpc", "--kwargs", r#"{"a":2,"b":3}"#],
    );
    assert!(add.status.success(), "{}", stderr(&add));
    assert_eq!(stdout(&add).trim(), "return: 5");

    let echo = call(&addr, &["scipp_peer:echo", "--kwargs", r#"{"first":1}"#]);
    assert_eq!(echo.status.code(), Some(1));
    let err = stderr(&echo);
    assert!(err.contains("PermissionError"), "{err}");
    assert!(err.contains("may not call `scipp_peer:echo`"), "{err}");

    // the server still serves after the refusal
    let again = call(
        &addr,
        &["scipp_peer:add", "--rpc", "--kwargs", r#"{"a":1,"b":1}"#],
    );
    assert_eq!(stdout(&again).trim(), "return: 2");

    // an actor cancel: refused from `scipp_call`, taken from `operator`
    let refused = call(&addr, &["self:cancel", "--rpc"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("may not cancel this actor"),
        "{}",
        stderr(&refused)
    );
    // (`call --rpc` expects a Return and says so on the CancelAck: what
    // matters is that the server took the cancel and exits)
    let taken = call(&addr, &["self:cancel", "--rpc", "--name", "operator"]);
    assert!(
        !stderr(&taken).contains("PermissionError"),
        "{}",
        stderr(&taken)
    );
    loop {
        match server.2.recv_timeout(std::time::Duration::from_secs(10)) {
            Ok(_) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break, // exited
            Err(e) => panic!(
                "the server did not exit after a trusted cancel: {e}; status {:?}; call said {}",
                server.0.as_ref().map(|c| c.id()),
                stderr(&taken)
            ),
        }
    }
    server.finish();
}

#[test]
fn serve_policy_decides_what_a_bad_item_from_the_caller_does() {
    // `echo_int` takes ints: the caller streams a string first, then 7
    let args = [
        "scipp_peer:echo_int",
        "--send",
        r#""not-an-int""#,
        "--send",
        "7",
    ];

    // ignore: the server drops the bad item and echoes the rest
    let lenient = spawn_listening(&["serve", "--listen", "127.0.0.1:0", "--policy", "ignore"]);
    let out = call(&lenient.1, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "started: 0\nreceived: 7\nreturn: 1\n");
    lenient.finish();

    // deliver (the default): the endpoint's receive fails, the caller gets
    // the boxed MsgTypeError
    let strict = spawn_listening(&["serve", "--listen", "127.0.0.1:0"]);
    let out = call(&strict.1, &args);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("MsgTypeError"), "{}", stderr(&out));
    strict.finish();

    let bad = scipp(&["serve", "--listen", "127.0.0.1:0", "--policy", "lenient"]);
    assert_eq!(bad.status.code(), Some(2), "clap rejects an unknown policy");
}
