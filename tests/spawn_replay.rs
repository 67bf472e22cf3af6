//! The spawn transcripts (`vectors/tractor-spawn/`), replayed in both
//! roles, and every frame of them re-encoded byte for byte.
//!
//! - **Parent role**: our [`Nursery`] spawns a stand-in for
//!   `python -m tractor._child` (a shell script that records its argv and
//!   sleeps); a scripted child connects back with the uid from that argv
//!   and sends the recorded child frames, on the parent link and on its
//!   registrar connections (the nursery is the registrar, as the recorded
//!   parent was). Every frame our parent sends — `Aid`, `SpawnSpec`,
//!   `Start`s, the registrar's replies — must match the recorded one field
//!   by field after mapping uuids and cids, ignoring ports and comparing
//!   file paths by file name. The command line must be tractor's.
//! - **Child role**: our [`ChildRuntime`] against a scripted parent (and a
//!   scripted registrar) sending the recorded parent frames; every frame
//!   our child sends must match (tracebacks excepted: ours is Rust's).

#![cfg(target_os = "linux")]

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rmpv::Value;
use scipp::framing::FramingLayer;
use scipp::msg::Msg;
use scipp::relay::Raise;
use scipp::route::Endpoints;
use scipp::spawn::{ChildArgs, ChildExit, ChildRuntime, ChildSpec, Nursery, NurseryConfig};
use scipp::{examples, BoxError, Codec, MsgpackCodec};
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;
use tower::Layer;
#[path = "support/transcripts.rs"]
mod support;
use support::unhex;

const BOUND: Duration = Duration::from_secs(20);

fn vectors() -> PathBuf {
    support::vectors_dir().join("tractor-spawn")
}

fn load(name: &str) -> Json {
    serde_json::from_slice(&std::fs::read(vectors().join(name)).unwrap()).unwrap()
}

// ---- every frame re-encodes --------------------------------------------------

#[test]
fn every_spawn_frame_reencodes_byte_identical() {
    let codec = MsgpackCodec::new();
    let mut paths: Vec<_> = std::fs::read_dir(vectors())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    let (mut files, mut frames, mut spawn_specs) = (0, 0, 0);
    for path in &paths {
        let file: Json = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        for f in file["frames"].as_array().unwrap() {
            let at = format!("{} seq {}", path.display(), f["seq"]);
            let wire = unhex(f["hex"].as_str().unwrap());
            let len = u32::from_le_bytes(wire[..4].try_into().unwrap()) as usize;
            assert_eq!(len, wire.len() - 4, "{at}: length prefix");
            let body = Bytes::from(wire).slice(4..);
            let msg = codec
                .decode(body.clone())
                .unwrap_or_else(|e| panic!("{at}: {e}"));
            assert_eq!(msg.kind().as_str(), f["msg_type"].as_str().unwrap(), "{at}");
            if let Msg::SpawnSpec(spec) = &msg {
                let modules: Vec<&str> = spec
                    .enable_modules
                    .iter()
                    .map(|(m, _)| m.as_str())
                    .collect();
                assert_eq!(modules.last(), Some(&"tractor.devx._debug"), "{at}");
                spawn_specs += 1;
            }
            assert_eq!(
                codec.encode_to_bytes(&msg).unwrap(),
                body,
                "{at}: re-encoded"
            );
            frames += 1;
        }
        files += 1;
    }
    assert_eq!(files, 12);
    assert_eq!(spawn_specs, 7);
    eprintln!("tractor-spawn/: {files} files, {frames} frames byte-identical");
}

// ---- the comparison ------------------------------------------------------------

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && (0..36).all(|k| match k {
            8 | 13 | 18 | 23 => b[k] == b'-',
            _ => b[k].is_ascii_hexdigit(),
        })
}

/// Recorded uuids/cids → the live ones, learned as they appear.
#[derive(Default, Debug)]
struct Subst(HashMap<String, String>);

impl Subst {
    /// `v` with every recorded id replaced by its live counterpart.
    fn apply(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => match s.as_str().and_then(|s| self.0.get(s)) {
                Some(live) => Value::from(live.as_str()),
                None => v.clone(),
            },
            Value::Array(a) => Value::Array(a.iter().map(|x| self.apply(x)).collect()),
            Value::Map(m) => {
                Value::Map(m.iter().map(|(k, x)| (k.clone(), self.apply(x))).collect())
            }
            other => other.clone(),
        }
    }

    /// Compares a live message with the recorded one, learning ids.
    fn matches(&mut self, rec: &Value, got: &Value, key: Option<&str>) -> Result<(), String> {
        let differ = || Err(format!("{key:?}: recorded {rec} but got {got}"));
        match (rec, got) {
            (Value::String(_), Value::String(_)) if key == Some("tb_str") => Ok(()),
            (Value::String(r), Value::String(g)) => {
                let (r, g) = (r.as_str().unwrap_or(""), g.as_str().unwrap_or(""));
                if is_uuid(r) {
                    match self.0.get(r) {
                        Some(live) if live == g => Ok(()),
                        Some(_) => differ(),
                        None if is_uuid(g) => {
                            self.0.insert(r.to_owned(), g.to_owned());
                            Ok(())
                        }
                        None => differ(),
                    }
                } else if r.contains('/') {
                    // a file path of the recording machine: the file name counts
                    let name = |p: &str| p.rsplit('/').next().unwrap_or("").to_owned();
                    if name(r) == name(g) {
                        Ok(())
                    } else {
                        differ()
                    }
                } else if r == g {
                    Ok(())
                } else {
                    differ()
                }
            }
            // [host, port]: the port is the machine's
            (Value::Array(r), Value::Array(g))
                if r.len() == 2
                    && g.len() == 2
                    && r[0] == g[0]
                    && r[0].as_str().is_some_and(|h| h.contains('.'))
                    && r[1].as_u64().is_some_and(|p| p != 0)
                    && g[1].as_u64().is_some_and(|p| p != 0) =>
            {
                Ok(())
            }
            (Value::Array(r), Value::Array(g)) if r.len() == g.len() => {
                for (r, g) in r.iter().zip(g) {
                    self.matches(r, g, key)?;
                }
                Ok(())
            }
            (Value::Map(r), Value::Map(g)) if r.len() == g.len() => {
                for ((rk, rv), (gk, gv)) in r.iter().zip(g) {
                    if rk != gk {
                        return Err(format!("keys differ: recorded {rk}, got {gk}"));
                    }
                    self.matches(rv, gv, rk.as_str())?;
                }
                Ok(())
            }
            _ if rec == got => Ok(()),
            _ => differ(),
        }
    }
}

/// One recorded frame.
#[derive(Debug, Clone)]
struct Frame {
    seq: u64,
    conn: u64,
    c2s: bool,
    msg: Value,
}

fn frames(file: &Json) -> Vec<Frame> {
    file["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let body = unhex(f["hex"].as_str().unwrap());
            Frame {
                seq: f["seq"].as_u64().unwrap(),
                conn: f["conn"].as_u64().unwrap(),
                c2s: f["dir"] == "c2s",
                msg: rmpv::decode::read_value(&mut &body[4..]).unwrap(),
            }
        })
        .collect()
}

fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

fn kind(v: &Value) -> &str {
    field(v, "msg_type").and_then(Value::as_str).unwrap_or("?")
}

/// The connections of a file, each with the name of the child in it.
fn connections(all: &[Frame]) -> Vec<(String, Vec<Frame>)> {
    let mut order: Vec<u64> = Vec::new();
    for f in all {
        if !order.contains(&f.conn) {
            order.push(f.conn);
        }
    }
    order
        .into_iter()
        .map(|conn| {
            let mut frames: Vec<Frame> = all.iter().filter(|f| f.conn == conn).cloned().collect();
            // both sides send their Aid at once: ours goes first in the replay
            if frames.len() >= 2 && !frames[0].c2s && kind(&frames[1].msg) == "Aid" {
                frames.swap(0, 1);
            }
            let name = frames
                .iter()
                .find(|f| f.c2s && kind(&f.msg) == "Aid")
                .and_then(|f| field(&f.msg, "name"))
                .and_then(Value::as_str)
                .unwrap()
                .to_owned();
            (name, frames)
        })
        .collect()
}

type Wire = Framed<TcpStream, scipp::framing::FrameCodec>;

fn encode(v: &Value) -> Bytes {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, v).unwrap();
    Bytes::from(out)
}

/// Plays `frames` on `wire`: sends ours (ids substituted, then `edit`ed),
/// compares theirs. The number of frames compared.
async fn play(
    wire: &mut Wire,
    frames: &[Frame],
    we_are_client: bool,
    subst: &mut Subst,
    at: &str,
    edit: &(dyn Fn(&mut Value) + Sync),
) -> usize {
    let mut compared = 0;
    for f in frames {
        let at = format!("{at} seq {} ({})", f.seq, kind(&f.msg));
        if f.c2s == we_are_client {
            let mut v = subst.apply(&f.msg);
            edit(&mut v);
            wire.send(encode(&v))
                .await
                .unwrap_or_else(|e| panic!("{at}: send: {e}"));
            continue;
        }
        let got = tokio::time::timeout(BOUND, wire.next())
            .await
            .unwrap_or_else(|_| panic!("{at}: nothing came"))
            .unwrap_or_else(|| panic!("{at}: the connection closed"))
            .unwrap();
        let got = rmpv::decode::read_value(&mut &got[..]).unwrap();
        if let Err(why) = subst.matches(&f.msg, &got, None) {
            panic!("{at}: {why}\n recorded: {}\n      got: {got}", f.msg);
        }
        compared += 1;
    }
    compared
}

async fn dial(addr: &scipp::msg::Addr) -> Wire {
    let scipp::msg::Addr::Tcp { host, port } = addr else {
        panic!("a TCP address expected: {addr}")
    };
    let tcp = TcpStream::connect((host.as_str(), *port)).await.unwrap();
    FramingLayer::new().layer(tcp)
}

// ---- parent role -----------------------------------------------------------------

/// A stand-in `python`: answers the module lookup, else records its argv in
/// `DIR/PID.argv` and sleeps (it is the child process the nursery reaps).
fn fake_python(dir: &Path) -> PathBuf {
    let script = dir.join("python");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             if [ \"$1\" = \"-c\" ]; then echo /fake/site-packages/tractor/devx/_debug.py; exit 0; fi\n\
             printf '%s\\n' \"$@\" > {d}/$$.tmp && mv {d}/$$.tmp {d}/$$.argv\n\
             exec sleep 3600\n",
            d = dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script
}

fn scratch_dir(scenario: &str, role: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "scipp-spawn-replay-{}-{scenario}-{role}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The argv of the next fake child to start (bounded wait), by pid.
async fn next_argv(dir: &Path, seen: &mut Vec<PathBuf>) -> Vec<String> {
    tokio::time::timeout(BOUND, async {
        loop {
            let found = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.extension().is_some_and(|e| e == "argv") && !seen.contains(p));
            if let Some(path) = found {
                seen.push(path.clone());
                return std::fs::read_to_string(path)
                    .unwrap()
                    .lines()
                    .map(str::to_owned)
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("a child was spawned")
}

/// The scripted child of one connection: checks its command line against
/// `spawn_cmd`, connects back, plays the parent link around its registrar
/// connections. `kill_after` leaves the process to the test (SIGKILL).
async fn scripted_child(
    argv: Vec<String>,
    spawn_cmd: &Json,
    link: Vec<Frame>,
    registrar: Vec<Vec<Frame>>,
    at: String,
) -> usize {
    // tractor's exact command line, after the interpreter
    let recorded: Vec<String> = spawn_cmd
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(argv[..2], recorded[1..3], "{at}: -m tractor._child");
    let ours = ChildArgs::parse(argv[2..].to_vec()).unwrap();
    let theirs = ChildArgs::parse(recorded[3..].to_vec()).unwrap();
    assert_eq!(ours.to_argv(), argv[2..], "{at}: our flags re-parse");
    assert_eq!(
        theirs.to_argv(),
        recorded[3..],
        "{at}: the recorded flags re-parse"
    );
    assert_eq!(ours.uid.name, theirs.uid.name);
    assert_eq!(ours.loglevel, theirs.loglevel);

    let mut subst = Subst::default();
    subst
        .0
        .insert(theirs.uid.uuid.clone(), ours.uid.uuid.clone());
    let mut wire = dial(&ours.parent_addr).await;
    let split = link
        .iter()
        .position(|f| kind(&f.msg) == "SpawnSpec")
        .unwrap()
        + 1;
    let mut compared = play(&mut wire, &link[..split], true, &mut subst, &at, &|_| {}).await;
    // the nursery is the registrar, at its listen address (the SpawnSpec
    // just compared says so)
    let reg_addr = ours.parent_addr.clone();
    let mut registrar = registrar.into_iter();
    if let Some(register) = registrar.next() {
        let mut reg = dial(&reg_addr).await;
        compared += play(
            &mut reg,
            &register,
            true,
            &mut subst,
            &format!("{at} register"),
            &|_| {},
        )
        .await;
    }
    compared += play(&mut wire, &link[split..], true, &mut subst, &at, &|_| {}).await;
    for later in registrar {
        let mut reg = dial(&reg_addr).await;
        compared += play(
            &mut reg,
            &later,
            true,
            &mut subst,
            &format!("{at} unregister"),
            &|_| {},
        )
        .await;
    }
    compared
}

/// What the recorded parent's owner did in each scenario.
async fn owner(scenario: &str, nursery: &Nursery<MsgpackCodec>, python: &Path) {
    let child = |name: &str, module: &str| {
        ChildSpec::tractor(name, python).module(module, format!("interop/{module}.py"))
    };
    let add = |a: i64, b: i64| -> BTreeMap<&'static str, i64> { [("a", a), ("b", b)].into() };
    match scenario {
        "start_and_cancel" => {
            let portal = nursery
                .start_actor(child("spawn_child", "scipp_peer"))
                .await
                .unwrap();
            let sum: i64 = portal.rpc("scipp_peer", "add", &add(2, 3)).await.unwrap();
            assert_eq!(sum, 5);
            portal.cancel_actor().await;
        }
        "run_in_actor" => {
            let sum: i64 = nursery
                .run_in_actor(
                    child("spawn_child", "scipp_peer"),
                    "scipp_peer",
                    "add",
                    &add(40, 2),
                )
                .await
                .unwrap();
            assert_eq!(sum, 42);
        }
        "child_raises" => {
            let err = nursery
                .run_in_actor::<_, ()>(
                    child("spawn_child", "spawn_fns"),
                    "spawn_fns",
                    "fails",
                    &BTreeMap::<String, ()>::new(),
                )
                .await
                .unwrap_err();
            let [failure] = err.failures() else {
                panic!("{err}")
            };
            let remote = failure.remote().unwrap();
            assert_eq!(remote.boxed_type(), "ValueError");
            assert_eq!(remote.src_uid(), &failure.uid);
            assert_eq!(remote.relay_path(), std::slice::from_ref(&failure.uid));
            assert!(remote.traceback().ends_with("ValueError: boom\n"));
        }
        "context_in_child" => {
            let portal = nursery
                .start_actor(child("spawn_child", "scipp_peer"))
                .await
                .unwrap();
            let kwargs: BTreeMap<&str, &str> = [("first", "hi")].into();
            let (mut ctx, first) = portal
                .open_context("scipp_peer", "echo")
                .kwargs(&kwargs)
                .start::<String>()
                .await
                .unwrap();
            assert_eq!(first, "hi");
            ctx.send(&1).await.unwrap();
            assert_eq!(ctx.recv::<i64>().await.unwrap(), Some(1));
            ctx.send("two").await.unwrap();
            assert_eq!(ctx.recv::<String>().await.unwrap().as_deref(), Some("two"));
            ctx.close().await.unwrap();
            assert_eq!(ctx.result::<i64>().await.unwrap(), 2);
            portal.cancel_actor().await;
        }
        "nursery_cancel" => {
            nursery
                .start_actor(child("spawn_child_a", "scipp_peer"))
                .await
                .unwrap();
            nursery
                .start_actor(child("spawn_child_b", "scipp_peer"))
                .await
                .unwrap();
            nursery.cancel().await;
        }
        "child_killed" => {
            let portal = nursery
                .start_actor(child("spawn_child", "scipp_peer"))
                .await
                .unwrap();
            let sum: i64 = portal.rpc("scipp_peer", "add", &add(1, 2)).await.unwrap();
            assert_eq!(sum, 3);
            let killed = std::process::Command::new("kill")
                .args(["-KILL", &portal.pid().to_string()])
                .status()
                .unwrap();
            assert!(killed.success());
            let err = nursery.wait().await.unwrap_err();
            let [failure] = err.failures() else {
                panic!("{err}")
            };
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(failure.exit_status().and_then(|s| s.signal()), Some(9));
        }
        other => panic!("no owner script for {other}"),
    }
}

async fn replay_parent_role(scenario: &str) -> usize {
    let file = load(&format!("{scenario}.json"));
    let reg_file = load(&format!("{scenario}.registrar.json"));
    let spawn_cmds = file["meta"]["spawn_cmd"].as_array().unwrap().clone();
    let links = connections(&frames(&file));
    let regs = connections(&frames(&reg_file));
    let dir = scratch_dir(scenario, "parent");
    let python = fake_python(&dir);
    let nursery = Nursery::builder("spawn_parent", MsgpackCodec::new())
        .config(NurseryConfig {
            main_path: Some("interop/capture_spawn.py".into()),
            exit_timeout: Duration::from_millis(200),
            ..NurseryConfig::default()
        })
        .open()
        .await
        .unwrap();

    // the scripted children, one per recorded connection, in spawn order
    let scripted = {
        let dir = dir.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut children = Vec::new();
            for (i, (name, link)) in links.into_iter().enumerate() {
                let argv = next_argv(&dir, &mut seen).await;
                let registrar: Vec<Vec<Frame>> = regs
                    .iter()
                    .filter(|(n, _)| *n == name)
                    .map(|(_, f)| f.clone())
                    .collect();
                let cmd = spawn_cmds[i].clone();
                children.push(tokio::spawn(async move {
                    scripted_child(argv, &cmd, link, registrar, name).await
                }));
            }
            let mut compared = 0;
            for c in children {
                compared += c.await.unwrap();
            }
            compared
        })
    };
    tokio::time::timeout(BOUND, owner(scenario, &nursery, &python))
        .await
        .unwrap_or_else(|_| panic!("{scenario}: the owner hung"));
    let compared = tokio::time::timeout(BOUND, scripted)
        .await
        .unwrap_or_else(|_| panic!("{scenario}: the scripted children hung"))
        .unwrap();
    let pids = nursery.all_pids();
    let _ = tokio::time::timeout(BOUND, nursery.close()).await.unwrap();
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "{scenario}: child {pid} left"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    compared
}

#[tokio::test]
async fn our_parent_plays_the_parent_side_of_every_spawn_transcript() {
    let mut total = 0;
    for scenario in [
        "start_and_cancel",
        "run_in_actor",
        "child_raises",
        "context_in_child",
        "nursery_cancel",
        "child_killed",
    ] {
        let n = replay_parent_role(scenario).await;
        eprintln!("parent role, {scenario}: {n} frames of our parent matched");
        total += n;
    }
    assert!(total >= 50, "{total}");
}

// ---- child role --------------------------------------------------------------------

/// The child's endpoints: the examples, and `spawn_fns.fails` raising
/// `ValueError("boom")` as the recorded one did.
fn child_endpoints() -> Endpoints<MsgpackCodec> {
    #[derive(serde::Deserialize)]
    struct Nothing {}
    let mut e = examples::scipp_peer::<MsgpackCodec>();
    e.rpc("spawn_fns", "fails", |_: Nothing| async move {
        Err::<(), BoxError>(Box::new(Raise::new("ValueError", "boom")))
    });
    e
}

async fn replay_child_role(scenario: &str) -> usize {
    let file = load(&format!("{scenario}.json"));
    let reg_file = load(&format!("{scenario}.registrar.json"));
    let links = connections(&frames(&file));
    let regs = connections(&frames(&reg_file));
    let mut compared = 0;
    for (name, link) in links {
        // the scripted registrar: plays this child's registrar connections
        let registrar = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let reg_port = registrar.local_addr().unwrap().port();
        let reg_conns: Vec<Vec<Frame>> = regs
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, f)| f.clone())
            .collect();
        let expected_regs = reg_conns.len();
        let at = format!("{scenario} {name}");
        let reg_at = at.clone();
        let (child_done, child_returned) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(async move {
            let (mut n, mut played) = (0, 0);
            let mut subst = Subst::default();
            for conn in reg_conns {
                let (tcp, _) = registrar.accept().await.unwrap();
                let mut wire = FramingLayer::new().layer(tcp);
                n += play(
                    &mut wire,
                    &conn,
                    false,
                    &mut subst,
                    &format!("{reg_at} registrar"),
                    &|_| {},
                )
                .await;
                played += 1;
            }
            // nothing more may come (child_killed: no unregister). Checked
            // once our child has returned, i.e. after every connection it
            // makes: one would already be waiting in the backlog.
            let _ = child_returned.await;
            let more = tokio::time::timeout(Duration::from_millis(50), registrar.accept()).await;
            (n, played, more.is_ok())
        });

        // the scripted parent, on the child's parent link
        let parent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = parent.local_addr().unwrap();
        let uid = link
            .iter()
            .find(|f| f.c2s && kind(&f.msg) == "Aid")
            .map(|f| {
                let s = |k| field(&f.msg, k).unwrap().as_str().unwrap().to_owned();
                scipp::msg::Uid::new(s("name"), s("uuid"))
            })
            .unwrap();
        let args = ChildArgs {
            uid,
            parent_addr: format!("127.0.0.1:{}", addr.port()).parse().unwrap(),
            loglevel: Some("ERROR".into()),
            asyncio: false,
        };
        let child = tokio::spawn(
            ChildRuntime::new(args, MsgpackCodec::new())
                .endpoints(child_endpoints())
                .run(),
        );
        let (tcp, _) = tokio::time::timeout(BOUND, parent.accept())
            .await
            .unwrap()
            .unwrap();
        let mut wire = FramingLayer::new().layer(tcp);
        let mut subst = Subst::default();
        let to_registrar = move |v: &mut Value| {
            if kind(v) != "SpawnSpec" {
                return;
            }
            if let Value::Map(entries) = v {
                for (k, x) in entries.iter_mut() {
                    if k.as_str() == Some("reg_addrs") {
                        *x = Value::Array(vec![Value::Array(vec![
                            Value::from("127.0.0.1"),
                            Value::from(reg_port),
                        ])]);
                    }
                }
            }
        };
        compared += play(&mut wire, &link, false, &mut subst, &at, &to_registrar).await;
        let killed = scenario == "child_killed";
        if killed {
            drop(wire); // the child's parent died
        }
        let exit = tokio::time::timeout(BOUND, child)
            .await
            .unwrap_or_else(|_| panic!("{at}: our child did not exit"))
            .unwrap()
            .unwrap();
        let _ = child_done.send(());
        assert_eq!(
            exit,
            if killed {
                ChildExit::ParentGone
            } else {
                ChildExit::Cancelled
            },
            "{at}"
        );
        let (n, played, more) = tokio::time::timeout(BOUND, serving).await.unwrap().unwrap();
        assert_eq!(played, expected_regs, "{at}: registrar connections");
        assert!(!more, "{at}: an unexpected registrar connection");
        compared += n;
    }
    compared
}

#[tokio::test]
async fn our_child_plays_the_child_side_of_every_spawn_transcript() {
    let mut total = 0;
    for scenario in [
        "start_and_cancel",
        "run_in_actor",
        "child_raises",
        "context_in_child",
        "nursery_cancel",
        "child_killed",
    ] {
        let n = replay_child_role(scenario).await;
        eprintln!("child role, {scenario}: {n} frames of our child matched");
        total += n;
    }
    assert!(total >= 50, "{total}");
}
