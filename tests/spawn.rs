//! Actor trees with real processes: a scipp parent ([`Nursery`]) spawning
//! `scipp child` processes. Start, call, cancel; `run_in_actor`; a child
//! that raises (its sibling is cancelled); a child killed with SIGKILL; a
//! nursery dropped mid-flight; a child that never connects back. After
//! every test, no child process is left (checked by pid in `/proc`).

#![cfg(target_os = "linux")]

use scipp::registry::RegistryClient;
use scipp::spawn::{ChildSpec, FailureKind, Nursery, NurseryConfig, NurseryError};
use scipp::MsgpackCodec;
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

/// The bound on anything a test waits for.
const BOUND: Duration = Duration::from_secs(20);

fn scipp_child(name: &str) -> ChildSpec {
    ChildSpec::program(name, env!("CARGO_BIN_EXE_scipp"), ["child"])
        .module("scipp_peer", "")
        .module("scipp_child", "")
}

async fn nursery() -> Nursery<MsgpackCodec> {
    nursery_with(NurseryConfig::default()).await
}

async fn nursery_with(config: NurseryConfig) -> Nursery<MsgpackCodec> {
    Nursery::builder("scipp_parent", MsgpackCodec::new())
        .config(config)
        .open()
        .await
        .unwrap()
}

async fn bounded<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

/// Whether process `pid` still exists (a zombie counts: it was not reaped).
fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Every pid is gone (reaped), at once.
fn assert_gone(pids: &[u32]) {
    assert!(!pids.is_empty(), "the test started no child");
    for &pid in pids {
        assert!(!exists(pid), "child process {pid} is still there");
    }
}

/// Waits, bounded, until every pid is gone.
async fn wait_gone(pids: &[u32]) {
    bounded("children to disappear", async {
        while pids.iter().any(|&p| exists(p)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

fn add(a: i64, b: i64) -> BTreeMap<&'static str, i64> {
    [("a", a), ("b", b)].into()
}

#[tokio::test]
async fn start_call_cancel() {
    let nursery = nursery().await;
    let portal = bounded("start_actor", nursery.start_actor(scipp_child("worker")))
        .await
        .unwrap();
    assert_eq!(portal.uid().name, "worker");
    assert_eq!(portal.peer(), portal.uid());
    let sum: i64 = bounded("rpc", portal.rpc("scipp_peer", "add", &add(2, 3)))
        .await
        .unwrap();
    assert_eq!(sum, 5);
    let pid: u32 = bounded(
        "rpc",
        portal.rpc("scipp_child", "pid", &BTreeMap::<String, ()>::new()),
    )
    .await
    .unwrap();
    assert_eq!(pid, portal.pid());

    // a context with a stream, as context_in_child.json
    let kwargs: BTreeMap<&str, &str> = [("first", "hi")].into();
    let (mut ctx, first) = bounded(
        "open_context",
        portal
            .open_context("scipp_peer", "echo")
            .kwargs(&kwargs)
            .start::<String>(),
    )
    .await
    .unwrap();
    assert_eq!(first, "hi");
    ctx.send(&1).await.unwrap();
    assert_eq!(ctx.recv::<i64>().await.unwrap(), Some(1));
    ctx.close().await.unwrap();
    assert_eq!(ctx.recv::<i64>().await.unwrap(), None);
    assert_eq!(bounded("result", ctx.result::<u64>()).await.unwrap(), 1);

    // the child registered with its registrar, the nursery
    let client = scipp::peer::Peer::new("scipp_client", MsgpackCodec::new());
    let registry = RegistryClient::connect(&client, nursery.listen_addr())
        .await
        .unwrap();
    let found = bounded("find_actor", registry.find("worker"))
        .await
        .unwrap();
    assert!(!found.is_empty());
    drop(registry);

    let status = bounded("cancel_actor", portal.cancel_actor()).await;
    assert!(
        status.success(),
        "a cancelled child exits cleanly: {status}"
    );
    assert_gone(&[portal.pid()]);
    let pids = nursery.all_pids();
    bounded("close", nursery.close()).await.unwrap();
    assert_gone(&pids);
}

#[tokio::test]
async fn run_in_actor_returns_then_cancels_the_child() {
    let nursery = nursery().await;
    let sum: i64 = bounded(
        "run_in_actor",
        nursery.run_in_actor(scipp_child("adder"), "scipp_peer", "add", &add(40, 2)),
    )
    .await
    .unwrap();
    assert_eq!(sum, 42);
    let pids = nursery.all_pids();
    assert_eq!(pids.len(), 1);
    assert_gone(&pids);
    assert!(nursery.live_pids().is_empty());
    bounded("close", nursery.close()).await.unwrap();
}

#[tokio::test]
async fn a_child_raising_cancels_its_sibling() {
    let nursery = nursery().await;
    let sibling = bounded("start_actor", nursery.start_actor(scipp_child("sibling")))
        .await
        .unwrap();
    let busy = {
        let sibling = sibling.clone();
        tokio::spawn(async move {
            let kwargs: BTreeMap<&str, f64> = [("secs", 3600.0)].into();
            sibling.rpc::<_, f64>("scipp_child", "sleep", &kwargs).await
        })
    };
    let err = bounded(
        "run_in_actor",
        nursery.run_in_actor::<_, ()>(
            scipp_child("failer"),
            "scipp_child",
            "fails",
            &BTreeMap::<String, ()>::new(),
        ),
    )
    .await
    .unwrap_err();
    let [failure] = err.failures() else {
        panic!("one failure expected: {err}")
    };
    assert_eq!(failure.name, "failer");
    let remote = failure.remote().expect("a remote error");
    assert_eq!(remote.boxed_type(), "ValueError");
    assert_eq!(remote.src_uid(), &failure.uid);
    assert_eq!(remote.relay_path(), std::slice::from_ref(&failure.uid));
    assert!(
        remote.traceback().contains("boom"),
        "{}",
        remote.traceback()
    );
    assert!(err.to_string().contains("failer"), "{err}");

    // one cancels all: the sibling's call ends, its process exits
    let sleeping = bounded("the sibling's call", busy).await.unwrap();
    assert!(sleeping.is_err(), "the sibling's call was cancelled");
    let status = bounded("the sibling's exit", sibling.exited()).await;
    assert!(
        status.success(),
        "the sibling was cancelled, not killed: {status}"
    );

    let pids = nursery.all_pids();
    let group = bounded("close", nursery.close()).await.unwrap_err();
    assert_eq!(group.failures().len(), 1, "{group}");
    assert_eq!(group.failures()[0].name, "failer");
    assert_gone(&pids);
}

#[tokio::test]
async fn a_killed_child_is_an_error_and_cancels_its_siblings() {
    let nursery = nursery().await;
    let victim = bounded("start_actor", nursery.start_actor(scipp_child("victim")))
        .await
        .unwrap();
    let sibling = bounded("start_actor", nursery.start_actor(scipp_child("sibling")))
        .await
        .unwrap();
    let sum: i64 = victim.rpc("scipp_peer", "add", &add(1, 2)).await.unwrap();
    assert_eq!(sum, 3);
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &victim.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    let err = bounded("the nursery's error", nursery.wait())
        .await
        .unwrap_err();
    let [failure] = err.failures() else {
        panic!("one failure expected: {err}")
    };
    assert_eq!(failure.name, "victim");
    assert!(matches!(failure.kind, FailureKind::Exited(_)), "{failure}");
    assert_eq!(failure.exit_status().and_then(|s| s.signal()), Some(9));
    assert!(err.to_string().contains("victim"), "{err}");
    // the sibling was cancelled (it exited cleanly), and the portal is dead
    let status = bounded("the sibling's exit", sibling.exited()).await;
    assert!(status.success(), "{status}");
    assert!(victim
        .rpc::<_, i64>("scipp_peer", "add", &add(1, 2))
        .await
        .is_err());
    // its stale registry entry is gone (tractor keeps it)
    let client = scipp::peer::Peer::new("scipp_client", MsgpackCodec::new());
    let registry = RegistryClient::connect(&client, nursery.listen_addr())
        .await
        .unwrap();
    assert!(registry.find("victim").await.unwrap().is_empty());
    drop(registry);

    let pids = nursery.all_pids();
    assert_eq!(pids.len(), 2);
    assert_gone(&pids);
    bounded("close", nursery.close()).await.unwrap();
}

#[tokio::test]
async fn dropping_the_nursery_mid_flight_leaves_no_child() {
    let nursery = nursery().await;
    let mut calls = Vec::new();
    for name in ["a", "b"] {
        let portal = bounded("start_actor", nursery.start_actor(scipp_child(name)))
            .await
            .unwrap();
        calls.push(tokio::spawn(async move {
            let kwargs: BTreeMap<&str, f64> = [("secs", 3600.0)].into();
            portal.rpc::<_, f64>("scipp_child", "sleep", &kwargs).await
        }));
    }
    let pids = nursery.all_pids();
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|&p| exists(p)));
    drop(nursery);
    wait_gone(&pids).await;
    for call in calls {
        assert!(bounded("a call", call).await.unwrap().is_err());
    }
}

#[tokio::test]
async fn the_owner_task_cancelled_mid_flight_leaves_no_child() {
    let (pids_tx, pids_rx) = tokio::sync::oneshot::channel();
    let owner = tokio::spawn(async move {
        let nursery = nursery().await;
        nursery.start_actor(scipp_child("a")).await.unwrap();
        let _ = pids_tx.send(nursery.all_pids());
        std::future::pending::<()>().await;
    });
    let pids = bounded("the owner's child", pids_rx).await.unwrap();
    owner.abort();
    assert!(owner.await.unwrap_err().is_cancelled());
    wait_gone(&pids).await;
}

#[tokio::test]
async fn a_child_that_never_connects_back_is_killed() {
    let nursery = nursery_with(NurseryConfig {
        connect_timeout: Duration::from_millis(500),
        ..NurseryConfig::default()
    })
    .await;
    // a program that ignores tractor's flags and never connects
    let stall = ChildSpec::program("stall", "sh", ["-c", "exec sleep 3600", "sh"]);
    let err = bounded("start_actor", nursery.start_actor(stall))
        .await
        .unwrap_err();
    let [failure] = err.failures() else {
        panic!("one failure expected: {err}")
    };
    assert!(
        matches!(
            failure.kind,
            FailureKind::NeverConnected { status: None, .. }
        ),
        "{failure}"
    );
    assert_gone(&nursery.all_pids());
    // the nursery is failed: it starts nothing more
    assert!(matches!(
        nursery.start_actor(scipp_child("late")).await,
        Err(NurseryError::Closing(_))
    ));
    let pids = nursery.all_pids();
    assert!(bounded("close", nursery.close()).await.is_err());
    assert_gone(&pids);
}

#[tokio::test]
async fn a_child_that_exits_before_connecting_is_an_error() {
    let nursery = nursery().await;
    let err = bounded(
        "start_actor",
        nursery.start_actor(ChildSpec::program("false", "false", Vec::<String>::new())),
    )
    .await
    .unwrap_err();
    let [failure] = err.failures() else {
        panic!("one failure expected: {err}")
    };
    let status = failure.exit_status().expect("its exit status");
    assert_eq!(status.code(), Some(1));
    let pids = nursery.all_pids();
    assert!(bounded("close", nursery.close()).await.is_err());
    assert_gone(&pids);
}

// ---- `scipp tree` ------------------------------------------------------------

/// Runs `scipp tree ARGS` with stdout piped.
fn tree(args: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_scipp"))
        .arg("tree")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawns scipp tree")
}

/// The pids in the `started NAME (pid N)` lines.
fn started_pids(out: &str) -> Vec<u32> {
    out.lines()
        .filter_map(|l| l.strip_prefix("started ")?.split("(pid ").nth(1))
        .map(|p| p.trim_end_matches(')').parse().unwrap())
        .collect()
}

/// Waits (bounded) for a process we started; its output and status.
fn finish(mut child: std::process::Child) -> (std::process::ExitStatus, String, String) {
    let t0 = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > BOUND {
            let _ = child.kill();
            panic!("scipp tree hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn tree_calls_children_and_exits_0() {
    let (status, out, err) = finish(tree(&[
        "--scipp",
        "a",
        "--scipp",
        "b",
        "--rpc",
        r#"a scipp_peer:add {"a": 2, "b": 3}"#,
        "--ctx",
        r#"b scipp_peer:echo {"first": "hi"}"#,
    ]));
    assert!(status.success(), "{out}\n{err}");
    assert!(out.contains("a scipp_peer:add -> 5"), "{out}");
    assert!(out.contains("b scipp_peer:echo started: \"hi\""), "{out}");
    let pids = started_pids(&out);
    assert_eq!(pids.len(), 2, "{out}");
    assert_gone(&pids);
}

#[test]
fn tree_exits_1_with_the_childs_error() {
    let (status, out, err) = finish(tree(&[
        "--scipp",
        "a",
        "--scipp",
        "b",
        "--rpc",
        "a scipp_child:fails",
    ]));
    assert_eq!(status.code(), Some(1), "{out}\n{err}");
    assert!(err.contains("ValueError"), "{err}");
    assert!(err.contains("boom"), "{err}");
    let pids = started_pids(&out);
    assert_eq!(pids.len(), 2, "{out}");
    assert_gone(&pids);
}

#[test]
fn tree_on_sigint_tears_down_and_exits_1() {
    use std::io::{BufRead, BufReader};
    let mut child = tree(&[
        "--scipp",
        "a",
        "--rpc",
        r#"a scipp_child:sleep {"secs": 3600}"#,
    ]);
    let mut lines = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    lines.read_line(&mut first).unwrap();
    let pids = started_pids(&first);
    assert_eq!(pids.len(), 1, "{first:?}");
    assert!(exists(pids[0]));
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let (status, _, err) = finish(child);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert_gone(&pids);
}

/// Whether `pid` is dead: gone, or a zombie not reaped yet.
fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "pid (comm) S ...": the state follows the last ')'
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn a_runtime_shut_down_under_a_live_nursery_kills_its_children() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let nursery = rt.block_on(async {
        let nursery = nursery().await;
        bounded("start_actor", nursery.start_actor(scipp_child("a")))
            .await
            .unwrap();
        nursery
    });
    let pids = nursery.all_pids();
    assert!(pids.iter().all(|&p| !dead(p)));
    // the runtime goes first: its tasks, and the process handles in them,
    // are dropped; each handle kills its process (kill_on_drop)
    drop(rt);
    let t0 = std::time::Instant::now();
    while !pids.iter().all(|&p| dead(p)) {
        assert!(t0.elapsed() < BOUND, "children still alive");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(nursery);
}

#[test]
fn a_child_whose_parent_is_killed_exits_by_itself() {
    use std::io::{BufRead, BufReader};
    let mut parent = tree(&[
        "--scipp",
        "orphan",
        "--rpc",
        r#"orphan scipp_child:sleep {"secs": 3600}"#,
    ]);
    let mut first = String::new();
    BufReader::new(parent.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let pids = started_pids(&first);
    assert_eq!(pids.len(), 1, "{first:?}");
    // the parent dies without a word: no self.cancel, no teardown
    parent.kill().unwrap();
    parent.wait().unwrap();
    // the child sees its parent link close and exits (its new parent reaps it)
    let t0 = std::time::Instant::now();
    while !dead(pids[0]) {
        assert!(t0.elapsed() < BOUND, "the orphan is still running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_child_serves_only_the_modules_its_parent_enabled() {
    let nursery = nursery().await;
    let only_peer = ChildSpec::program("narrow", env!("CARGO_BIN_EXE_scipp"), ["child"])
        .module("scipp_peer", "");
    let portal = bounded("start_actor", nursery.start_actor(only_peer))
        .await
        .unwrap();
    let sum: i64 = portal.rpc("scipp_peer", "add", &add(1, 1)).await.unwrap();
    assert_eq!(sum, 2);
    let refused = portal
        .rpc::<_, u32>("scipp_child", "pid", &BTreeMap::<String, ()>::new())
        .await
        .unwrap_err();
    let remote = refused.remote().expect("a remote error");
    assert_eq!(remote.boxed_type(), "AttributeError", "{remote}");
    let pids = nursery.all_pids();
    bounded("close", nursery.close()).await.unwrap();
    assert_gone(&pids);
}

#[tokio::test]
async fn children_failing_together_are_reported_as_a_group() {
    let nursery = nursery().await;
    let mut portals = Vec::new();
    for name in ["first", "second", "bystander"] {
        portals.push(
            bounded("start_actor", nursery.start_actor(scipp_child(name)))
                .await
                .unwrap(),
        );
    }
    let killed = std::process::Command::new("kill")
        .args([
            "-KILL",
            &portals[0].pid().to_string(),
            &portals[1].pid().to_string(),
        ])
        .status()
        .unwrap();
    assert!(killed.success());
    let err = bounded("the nursery's error", nursery.wait())
        .await
        .unwrap_err();
    let mut names: Vec<&str> = err.failures().iter().map(|f| f.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["first", "second"], "{err}");
    assert!(err.to_string().starts_with("2 children failed:"), "{err}");
    for failure in err.failures() {
        assert_eq!(failure.exit_status().and_then(|s| s.signal()), Some(9));
    }
    let status = bounded("the bystander's exit", portals[2].exited()).await;
    assert!(status.success(), "the bystander was cancelled: {status}");
    let pids = nursery.all_pids();
    assert_gone(&pids);
    bounded("close", nursery.close()).await.unwrap();
}

#[tokio::test]
async fn an_owner_giving_up_on_start_actor_leaves_no_child() {
    let nursery = nursery().await;
    let stall = ChildSpec::program("stall", "sh", ["-c", "exec sleep 3600", "sh"]);
    {
        let start = nursery.start_actor(stall);
        tokio::pin!(start);
        // drive start_actor until its process exists, then give up on it
        bounded("the spawn", async {
            while nursery.all_pids().is_empty() {
                tokio::select! {
                    out = &mut start => panic!("start_actor ended: {out:?}"),
                    () = tokio::time::sleep(Duration::from_millis(10)) => {}
                }
            }
        })
        .await;
    }
    let pids = nursery.all_pids();
    assert!(exists(pids[0]));
    // not a failure: the owner dropped the call; close still reaps it
    bounded("close", nursery.close()).await.unwrap();
    assert_gone(&pids);
}

#[tokio::test]
async fn a_child_cancelled_by_another_peer_is_an_exit_nobody_asked_for() {
    let nursery = nursery().await;
    let target = bounded("start_actor", nursery.start_actor(scipp_child("target")))
        .await
        .unwrap();
    // a stranger finds the child through the registrar and cancels it
    let stranger = scipp::peer::Peer::new("stranger", MsgpackCodec::new());
    let registry = RegistryClient::connect(&stranger, nursery.listen_addr())
        .await
        .unwrap();
    let addrs = bounded("wait_for_actor", registry.wait_for("target"))
        .await
        .unwrap();
    let chan = stranger.connect_addr(&addrs[0]).await.unwrap();
    bounded("cancel_actor", chan.cancel_actor()).await.unwrap();

    let err = bounded("the nursery's error", nursery.wait())
        .await
        .unwrap_err();
    let [failure] = err.failures() else {
        panic!("one failure expected: {err}")
    };
    assert_eq!(failure.name, "target");
    assert_eq!(failure.exit_status().and_then(|s| s.code()), Some(0));
    assert!(err.to_string().contains("exited unexpectedly"), "{err}");
    let pids = nursery.all_pids();
    assert_gone(&pids);
    assert_eq!(pids, [target.pid()]);
    bounded("close", nursery.close()).await.unwrap();
}

#[tokio::test]
async fn a_scope_reaps_its_children_and_raises_their_failures() {
    let builder = || Nursery::builder("scipp_parent", MsgpackCodec::new());
    // normal exit: the child started in the scope is cancelled and reaped
    let (sum, pids) = builder()
        .scope(|nursery| async move {
            let portal = nursery.start_actor(scipp_child("scoped")).await?;
            let sum: i64 = portal.rpc("scipp_peer", "add", &add(2, 3)).await.unwrap();
            Ok::<_, NurseryError>((sum, nursery.all_pids()))
        })
        .await
        .unwrap();
    assert_eq!(sum, 5);
    assert_gone(&pids);

    // a child that dies makes the scope fail, naming it, even though the
    // body returned Ok
    let (pids_tx, pids_rx) = std::sync::mpsc::channel();
    let err = bounded(
        "the scope",
        builder().scope(|nursery| async move {
            let portal = nursery.start_actor(scipp_child("doomed")).await?;
            pids_tx.send(nursery.all_pids()).unwrap();
            std::process::Command::new("kill")
                .args(["-KILL", &portal.pid().to_string()])
                .status()
                .unwrap();
            nursery.failed().await;
            Ok::<_, NurseryError>(())
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(err.failures().len(), 1, "{err}");
    assert_eq!(err.failures()[0].name, "doomed");
    assert_gone(&pids_rx.recv().unwrap());
}

#[tokio::test]
async fn run_in_actor_on_a_child_killed_mid_call_names_its_exit_status() {
    let nursery = nursery().await;
    let kwargs: BTreeMap<&str, f64> = [("secs", 3600.0)].into();
    let (err, pids) = {
        let call =
            nursery.run_in_actor::<_, f64>(scipp_child("sleeper"), "scipp_child", "sleep", &kwargs);
        tokio::pin!(call);
        // once the call is under way (the child registered: it serves), kill it
        let client = scipp::peer::Peer::new("scipp_client", MsgpackCodec::new());
        let registry = RegistryClient::connect(&client, nursery.listen_addr())
            .await
            .unwrap();
        bounded("the child to serve", async {
            tokio::select! {
                out = &mut call => panic!("run_in_actor ended early: {out:?}"),
                found = registry.wait_for("sleeper") => { found.unwrap(); }
            }
        })
        .await;
        let pids = nursery.all_pids();
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pids[0].to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let err = bounded("run_in_actor", call).await.unwrap_err();
        drop(registry);
        (err, pids)
    };
    let [failure] = err.failures() else {
        panic!("one failure expected: {err}")
    };
    assert_eq!(failure.name, "sleeper");
    assert_eq!(
        failure.exit_status().and_then(|s| s.signal()),
        Some(9),
        "{err}"
    );
    assert!(bounded("close", nursery.close()).await.is_err());
    assert_gone(&pids);
}

#[tokio::test]
async fn a_child_gets_the_environment_it_was_given() {
    let nursery = nursery_with(NurseryConfig {
        connect_timeout: Duration::from_millis(300),
        ..NurseryConfig::default()
    })
    .await;
    // exits 3 at once without SCIPP_TEST_ENV=yes, else stalls (and is
    // killed at the connect timeout)
    let script = r#"[ "$SCIPP_TEST_ENV" = yes ] || exit 3; exec sleep 3600"#;
    let probe = |name: &str| ChildSpec::program(name, "sh", ["-c", script, "sh"]);
    let without = bounded("start_actor", nursery.start_actor(probe("without")))
        .await
        .unwrap_err();
    assert_eq!(
        without.failures()[0].exit_status().and_then(|s| s.code()),
        Some(3),
        "{without}"
    );
    let nursery = {
        let pids = nursery.all_pids();
        let _ = nursery.close().await;
        assert_gone(&pids);
        nursery_with(NurseryConfig {
            connect_timeout: Duration::from_millis(300),
            ..NurseryConfig::default()
        })
        .await
    };
    let with = bounded(
        "start_actor",
        nursery.start_actor(probe("with").env("SCIPP_TEST_ENV", "yes")),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            with.failures()[0].kind,
            FailureKind::NeverConnected { status: None, .. }
        ),
        "{with}"
    );
    let pids = nursery.all_pids();
    let _ = nursery.close().await;
    assert_gone(&pids);
}

#[tokio::test]
async fn a_wildcard_nursery_and_its_children_register_reachable_addresses() {
    let nursery = nursery_with(NurseryConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        ..NurseryConfig::default()
    })
    .await;
    let scipp::msg::Addr::Tcp { host, .. } = nursery.listen_addr() else {
        panic!("TCP expected")
    };
    assert_eq!(host, "127.0.0.1", "children connect back over loopback");
    let portal = bounded("start_actor", nursery.start_actor(scipp_child("wide")))
        .await
        .unwrap();
    let sum: i64 = portal.rpc("scipp_peer", "add", &add(1, 2)).await.unwrap();
    assert_eq!(sum, 3);
    // the child listens on all interfaces (as its parent) but registers an
    // address others can reach, and answers there
    let client = scipp::peer::Peer::new("scipp_client", MsgpackCodec::new());
    let registry = RegistryClient::connect(&client, nursery.listen_addr())
        .await
        .unwrap();
    let found = bounded("find_actor", registry.find("wide")).await.unwrap();
    let scipp::msg::Addr::Tcp { host, port } = &found[0] else {
        panic!("TCP expected")
    };
    assert_eq!(host, "127.0.0.1");
    assert_ne!(*port, 0);
    let direct = client.connect_addr(&found[0]).await.unwrap();
    let sum: i64 = direct.rpc("scipp_peer", "add", &add(2, 2)).await.unwrap();
    assert_eq!(sum, 4);
    drop((direct, registry));
    let pids = nursery.all_pids();
    bounded("close", nursery.close()).await.unwrap();
    assert_gone(&pids);
}
