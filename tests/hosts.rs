//! Many hosts: a registrar, a service bound to a wildcard address and a
//! caller, each in its own Linux network namespace on a private subnet
//! (10.231.0.0/24) that the test creates and removes; then real-network
//! faults between them (a partition, a slow link).
//!
//! Needs root and `ip` (CI runs as root); elsewhere each test prints why
//! it skips. Every namespace is named after the test's pid and scenario, so
//! parallel tests never share one, and a guard removes them however the
//! test ends. Only addresses inside those namespaces are used.
//!
//! The caller and the library service run as this very test binary,
//! re-executed inside a namespace (`ip netns exec NS <test exe> role`,
//! see [`role`]), so they can report typed outcomes as JSON lines.
#![cfg(all(target_os = "linux", feature = "tls"))]

#[path = "../layers/tests/pki/mod.rs"]
mod pki;

use scipp::context::{ChildContext, ContextError};
use scipp::msg::Addr;
use scipp::payload::PldSpec;
use scipp::peer::{Channel, Config, Peer};
use scipp::registry::RegistryClient;
use scipp::route::Endpoints;
use scipp::tls::TlsConnector;
use scipp::MsgpackCodec;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Bounds every wait for a process's line: a hang fails the test.
const LIMIT: Duration = Duration::from_secs(20);
/// Where the registrar listens, in its namespace.
const REGISTRAR: &str = "10.231.0.1:7000";
/// The service's port (it listens on 0.0.0.0).
const SERVICE_PORT: u16 = 7100;
/// Marks the JSON lines of a role among the test harness's output.
const REPORT: &str = "@hosts ";

// ---------------------------------------------------------------- network

/// Namespaces `<prefix>-hub` (a bridge) and one per node, each node linked
/// to the hub by a veth pair, node `i` at 10.231.0.i/24 on its `eth0`.
/// Dropping it deletes them all (and with them every veth).
struct Net {
    hub: String,
    nodes: Vec<String>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Net {
    /// The namespaces for `scenario`, or why they cannot be made (then
    /// the caller skips). With `ipv6`, node `i` is also at fd31:231::{i+1}/64
    /// (a unique local address).
    fn new(scenario: &str, nodes: &[&str], ipv6: bool) -> Result<Net, String> {
        let prefix = format!("scipp-{}-{scenario}", std::process::id());
        let hub = format!("{prefix}-hub");
        // the only failure that means "unavailable here": past it, a
        // failure is a bug and fails the test (the guard still cleans up)
        ip(&["netns", "add", &hub])?;
        let must = |r: Result<(), String>| r.unwrap_or_else(|e| panic!("{e}"));
        let mut net = Net {
            hub,
            nodes: Vec::new(),
        };
        must(ip(&[
            "-n", &net.hub, "link", "add", "br0", "type", "bridge",
        ]));
        must(ip(&["-n", &net.hub, "link", "set", "br0", "up"]));
        for (i, node) in nodes.iter().enumerate() {
            let ns = format!("{prefix}-{node}");
            must(ip(&["netns", "add", &ns]));
            net.nodes.push(ns.clone());
            let port = format!("h{}", i + 1);
            let addr = format!("10.231.0.{}/24", i + 1);
            must(ip(&[
                "-n", &net.hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ]));
            must(ip(&["-n", &net.hub, "link", "set", &port, "master", "br0"]));
            must(ip(&["-n", &net.hub, "link", "set", &port, "up"]));
            must(ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"]));
            if ipv6 {
                let addr6 = format!("fd31:231::{}/64", i + 1);
                must(ip(&[
                    "-n", &ns, "addr", "add", &addr6, "dev", "eth0", "nodad",
                ]));
            }
            must(ip(&["-n", &ns, "link", "set", "eth0", "up"]));
            must(ip(&["-n", &ns, "link", "set", "lo", "up"]));
        }
        Ok(net)
    }

    /// The namespace of node `i` (0-based, at 10.231.0.{i+1}).
    fn ns(&self, i: usize) -> &str {
        &self.nodes[i]
    }

    /// Sets the hub side of node `i`'s link up or down (a partition).
    fn link(&self, i: usize, up: bool) {
        let port = format!("h{}", i + 1);
        ip(&[
            "-n",
            &self.hub,
            "link",
            "set",
            &port,
            if up { "up" } else { "down" },
        ])
        .unwrap();
    }

    /// How often node `i`'s link shaper (hub side, toward the node) held a
    /// packet back for lack of tokens, and the bytes it sent.
    fn shaped(&self, i: usize) -> (u64, u64) {
        let port = format!("h{}", i + 1);
        let out = Command::new("ip")
            .args([
                "netns", "exec", &self.hub, "tc", "-s", "qdisc", "show", "dev", &port,
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let number_after = |word: &str| -> u64 {
            let rest = text.split(word).nth(1).unwrap_or_else(|| panic!("{text}"));
            let digits: String = rest
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().unwrap_or_else(|_| panic!("{text}"))
        };
        (number_after("overlimits"), number_after("Sent"))
    }

    /// Limits node `i`'s link to 1 Mbit/s both ways (token bucket filter).
    fn slow(&self, i: usize) {
        let port = format!("h{}", i + 1);
        for (ns, dev) in [(self.hub.as_str(), port.as_str()), (self.ns(i), "eth0")] {
            let out = Command::new("ip")
                .args([
                    "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root",
                ])
                .args([
                    "tbf", "rate", "1mbit", "burst", "32kbit", "latency", "400ms",
                ])
                .output()
                .unwrap();
            assert!(out.status.success(), "tc: {out:?}");
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.nodes.iter().chain([&self.hub]) {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// The namespaces, or `None` after printing why the test skips.
fn net_or_skip(scenario: &str, nodes: &[&str]) -> Option<Net> {
    net_or_skip_with(scenario, nodes, false)
}

fn net_or_skip_with(scenario: &str, nodes: &[&str], ipv6: bool) -> Option<Net> {
    match Net::new(scenario, nodes, ipv6) {
        Ok(net) => Some(net),
        Err(why) => {
            eprintln!("SKIPPED: network namespaces unavailable (needs root and `ip`): {why}");
            None
        }
    }
}

// -------------------------------------------------------------- processes

/// A process in a namespace; killed and reaped on drop. Its stdout lines
/// arrive on a channel, so it never blocks on a full pipe.
struct Proc {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// Lines read while waiting for another one.
    backlog: std::cell::RefCell<Vec<String>>,
}

impl Proc {
    /// Runs `cmd` inside the namespace `ns`.
    fn spawn(what: &str, ns: &str, cmd: &mut Command) -> Proc {
        let mut inside = Command::new("ip");
        inside
            .args(["netns", "exec", ns])
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .envs(
                cmd.get_envs()
                    .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))),
            );
        Self::spawn_here(what, &mut inside)
    }

    /// Runs `cmd` here.
    fn spawn_here(what: &str, cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            what: what.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
            backlog: Default::default(),
        }
    }

    /// The first line (from now) containing `needle`.
    fn wait_for(&self, needle: &str) -> String {
        self.wait_for_within(needle, LIMIT)
    }

    fn wait_for_within(&self, needle: &str, limit: Duration) -> String {
        let mut backlog = self.backlog.borrow_mut();
        if let Some(i) = backlog.iter().position(|l| l.contains(needle)) {
            return backlog.remove(i);
        }
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => backlog.push(line),
                Err(e) => panic!(
                    "{}: no line with {needle:?} within {limit:?} ({e})",
                    self.what
                ),
            }
        }
    }

    /// The role's next report with `"event": event`.
    fn report(&self, event: &str) -> Value {
        self.report_within(event, LIMIT)
    }

    fn report_within(&self, event: &str, limit: Duration) -> Value {
        let needle = format!("\"event\":\"{event}\"");
        let line = self.wait_for_within(&needle, limit);
        let json = line.split_once(REPORT).expect("a report").1;
        serde_json::from_str(json).unwrap()
    }

    /// Tells a paused caller to go on.
    fn go(&mut self) {
        self.tell("go");
    }

    /// Writes `line` to the process's stdin (a role reads its commands
    /// there).
    fn tell(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// The process's open descriptors and resident memory, read from
    /// outside (`ip netns exec` runs the command in its own place, so the
    /// child's pid is the command's).
    fn usage(&self) -> Usage {
        let exe = std::fs::read_link(format!("/proc/{}/exe", self.child.id())).unwrap();
        assert!(
            !exe.ends_with("ip"),
            "{}: `ip netns exec` forked ({exe:?})",
            self.what
        );
        Usage::of(&format!("/proc/{}", self.child.id()))
    }

    /// Waits (within `LIMIT`) until the process holds at most `fds`
    /// descriptors; its usage then.
    fn usage_back_to(&self, fds: usize) -> Usage {
        let deadline = std::time::Instant::now() + LIMIT;
        loop {
            let now = self.usage();
            if now.fds <= fds || std::time::Instant::now() >= deadline {
                return now;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to exit; whether it succeeded.
    fn exit_ok(mut self) -> bool {
        let deadline = std::time::Instant::now() + LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} did not exit",
                self.what
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------ leaks

/// What a process holds: open descriptors (sockets among them) and
/// resident memory.
#[derive(Debug, Clone, Copy)]
struct Usage {
    fds: usize,
    rss_kib: u64,
}

impl Usage {
    /// Of the process whose `/proc` directory is `proc_dir`.
    fn of(proc_dir: &str) -> Usage {
        let fds = std::fs::read_dir(format!("{proc_dir}/fd")).unwrap().count();
        let status = std::fs::read_to_string(format!("{proc_dir}/status")).unwrap();
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in {proc_dir}/status"));
        Usage { fds, rss_kib }
    }
}

/// How much resident memory a service may gain over a scenario: the
/// allocator keeps freed pages, so "bounded", not "equal".
const RSS_GROWTH_KIB: u64 = 16 * 1024;

/// Checks that `after` (the scenario done, its connections closed) holds
/// no more descriptors than `before`, and bounded memory; prints both.
fn no_leak(scenario: &str, who: &str, before: Usage, after: Usage) {
    println!(
        "{scenario}: {who} held {} fds / {} KiB RSS before, {} fds / {} KiB after",
        before.fds, before.rss_kib, after.fds, after.rss_kib
    );
    assert_eq!(
        after.fds, before.fds,
        "{scenario}: {who}: descriptors {before:?} -> {after:?}"
    );
    assert!(
        after.rss_kib <= before.rss_kib + RSS_GROWTH_KIB,
        "{scenario}: {who}'s memory grew: {before:?} -> {after:?}"
    );
}

/// The tasks alive in this runtime.
fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Waits (within `LIMIT`) until at most `baseline` tasks are alive in this
/// runtime (an aborted task ends when its worker next polls it); how many
/// are alive then.
async fn tasks_back_to(baseline: usize) -> usize {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let now = alive_tasks();
        if now <= baseline || tokio::time::Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn scipp() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scipp"))
}

/// This test binary, to run as `role` inside a namespace.
fn role_cmd(role: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "role",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("SCIPP_HOSTS_ROLE", role);
    cmd
}

/// `scipp serve --registrar`, on 0.0.0.0 in node 0, advertising its
/// address.
fn registrar(net: &Net, tls: &[String]) -> Proc {
    let reg = Proc::spawn(
        "registrar",
        net.ns(0),
        scipp()
            .args(["serve", "--listen", "0.0.0.0:7000", "--registrar"])
            .args(["--name", "scipp_registrar", "--advertise", REGISTRAR])
            .args(tls),
    );
    reg.wait_for("registrar: serving the registry RPCs");
    reg
}

// ------------------------------------------------------------ certificates

/// PEM files in a temporary directory, removed on drop.
struct Certs {
    dir: PathBuf,
}

impl Certs {
    /// A CA, a certificate per node (its IP and `<name>.test`), an
    /// expired one for the caller, and a caller certificate from another
    /// CA.
    fn new(scenario: &str) -> Certs {
        let dir =
            std::env::temp_dir().join(format!("scipp-hosts-{}-{scenario}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = pki::Ca::new("scipp hosts test CA");
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        let write = |name: &str, pem: pki::Pem| {
            std::fs::write(dir.join(format!("{name}.pem")), pem.cert).unwrap();
            std::fs::write(dir.join(format!("{name}.key")), pem.key).unwrap();
        };
        write("registrar", ca.leaf(&["registrar.test", "10.231.0.1"]));
        write("service", ca.leaf(&["service.test", "10.231.0.2"]));
        write("caller", ca.leaf(&["caller.test", "10.231.0.3"]));
        write("expired", ca.expired_leaf(&["caller.test"]));
        write(
            "stranger",
            pki::Ca::new("another CA").leaf(&["caller.test"]),
        );
        Certs { dir }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    /// `--tls-*` flags for `serve` with `name`'s certificate, requiring
    /// client certificates from the CA.
    fn serve_flags(&self, name: &str) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.path(&format!("{name}.pem")),
            "--tls-key".into(),
            self.path(&format!("{name}.key")),
            "--tls-ca".into(),
            self.path("ca.pem"),
        ]
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ------------------------------------------------------------------ roles

/// Not a test: the caller and service roles, run by the tests above inside
/// a namespace (`SCIPP_HOSTS_ROLE` says which). Run directly, it does
/// nothing.
#[test]
#[ignore = "a role the namespace tests run inside a namespace"]
fn role() {
    let Ok(role) = std::env::var("SCIPP_HOSTS_ROLE") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match role.as_str() {
        "caller" => rt.block_on(caller()),
        "service" => rt.block_on(service()),
        other => panic!("no role {other}"),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(format!("SCIPP_HOSTS_{name}")).ok()
}

fn report(event: &str, mut fields: Value) {
    fields["event"] = json!(event);
    println!("{REPORT}{fields}");
}

fn config() -> Config {
    Config {
        idle_timeout: env("IDLE").map(|s| Duration::from_secs_f64(s.parse().unwrap())),
        ..Config::default()
    }
}

fn outcome(result: &Result<(), ContextError>) -> String {
    match result {
        Ok(()) => "completed".into(),
        Err(ContextError::TransportClosed { .. }) => "transport closed".into(),
        Err(e) => format!("error: {e}"),
    }
}

/// TLS toward peers, from `SCIPP_HOSTS_TLS_DIR` and the certificate named
/// by `SCIPP_HOSTS_TLS_CERT` (none: no client certificate).
fn connector() -> Option<TlsConnector> {
    let dir = PathBuf::from(env("TLS_DIR")?);
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let ours = env("TLS_CERT").map(|n| (read(&format!("{n}.pem")), read(&format!("{n}.key"))));
    Some(
        TlsConnector::from_pem(
            &read("ca.pem"),
            ours.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
        )
        .unwrap(),
    )
}

/// Finds the service by name through the registrar, holds an echo context
/// with it for `ITEMS` items of `SIZE` bytes, and reports the counts. With
/// `PAUSE_AT`, waits for a line on stdin after that many items.
async fn caller() {
    let items: u64 = env("ITEMS").map_or(100, |s| s.parse().unwrap());
    let size: usize = env("SIZE").map_or(8, |s| s.parse().unwrap());
    let pause_at: Option<u64> = env("PAUSE_AT").map(|s| s.parse().unwrap());
    let target = env("TARGET").unwrap_or_else(|| "scipp_peer:echo".into());
    let (ns, func) = target.split_once(':').unwrap();
    let me = Peer::new("scipp_caller", MsgpackCodec::new()).config(config());
    let registry_addr: Addr = env("REGISTRAR")
        .as_deref()
        .unwrap_or(REGISTRAR)
        .parse()
        .unwrap();
    let tls = connector();
    // the registry's channel has no idle timeout: it outlives a partition
    // and stays part of the baseline of the leak checks
    let for_registry = me.clone().config(Config::default());
    let registry = match &tls {
        None => RegistryClient::connect(&for_registry, &registry_addr)
            .await
            .map_err(|e| e.to_string()),
        Some(tls) => tls
            .connect(&for_registry, &registry_addr, None)
            .await
            .map(|(chan, _)| RegistryClient::new(chan))
            .map_err(|e| e.to_string()),
    };
    let registry = match registry {
        Ok(r) => r,
        Err(e) => return report("refused", json!({ "by": "registrar", "error": e })),
    };
    let found = registry.find("scipp_svc").await.unwrap();
    let addr = found.first().expect("scipp_svc is registered").clone();
    report("found", json!({ "addr": addr.to_string() }));
    // the registry's channel is part of the baseline
    let tasks_before = alive_tasks();
    let (chan, identity) = match &tls {
        None => (me.connect_addr(&addr).await.unwrap(), None),
        Some(tls) => match tls.connect(&me, &addr, None).await {
            Ok((chan, id)) => (chan, Some(id.dns_names().to_vec())),
            Err(e) => {
                return report(
                    "refused",
                    json!({ "by": "service", "error": e.to_string() }),
                )
            }
        },
    };
    report("open", json!({ "server_names": identity }));
    let done = exchange(&chan, ns, func, items, size, pause_at).await;
    report("done", done);
    // hang up; then every task of the channel (and its contexts) is gone
    let watch = chan.clone();
    let closing = chan.close().await;
    watch.closed().await;
    drop(watch);
    let tasks = tasks_back_to(tasks_before).await;
    report(
        "released",
        json!({
            "tasks_before": tasks_before, "tasks": tasks,
            "close": closing.map_or_else(|e| e.to_string(), |()| "ok".into()),
        }),
    );
}

/// Holds an echo context on `chan` for `items` items of `size` bytes and
/// counts what comes back: sent, delivered (in order, once), duplicated,
/// out of order, and the outcome. With `pause_at`, reports `paused` and
/// waits for a line on stdin after that many items.
async fn exchange(
    chan: &Channel<MsgpackCodec>,
    ns: &str,
    func: &str,
    items: u64,
    size: usize,
    pause_at: Option<u64>,
) -> Value {
    let (mut sent, mut delivered, mut duplicated, mut out_of_order) = (0u64, 0u64, 0u64, 0u64);
    let pad = "x".repeat(size);
    let run = async {
        let (mut ctx, _first) = chan.open_context(ns, func).start::<rmpv::Value>().await?;
        for i in 0..items {
            if pause_at == Some(i) {
                report("paused", json!({ "delivered": delivered }));
                let mut line = String::new();
                // the test says when to go on (after cutting the link, say)
                tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line))
                    .await
                    .unwrap()
                    .unwrap();
            }
            ctx.send(&(i, &pad)).await?;
            sent += 1;
            let Some((got, _)) = ctx.recv::<(u64, String)>().await? else {
                return Err(ContextError::Protocol("the stream ended early".into()));
            };
            match got.cmp(&delivered) {
                std::cmp::Ordering::Equal => delivered += 1,
                std::cmp::Ordering::Less => duplicated += 1,
                std::cmp::Ordering::Greater => out_of_order += 1,
            }
        }
        ctx.close().await?;
        let echoed: u64 = ctx.result().await?;
        assert_eq!(echoed, items, "the service counted every item once");
        Ok(())
    };
    let result = run.await;
    json!({
        "sent": sent, "delivered": delivered, "duplicated": duplicated,
        "out_of_order": out_of_order, "outcome": outcome(&result),
    })
}

/// A served context's report, made when it ends (or is dropped).
#[derive(Default)]
struct Served {
    received: u64,
    outcome: Option<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let outcome = self
            .outcome
            .take()
            .unwrap_or_else(|| "cancelled: its channel closed".into());
        report(
            "served",
            json!({ "received": self.received, "outcome": outcome }),
        );
    }
}

/// A library service: listens on 0.0.0.0, registers through the
/// registrar (a routable address, as the library picks it), and serves
/// `hosts:echo`, reporting each context's outcome.
async fn service() {
    let me = Peer::new("scipp_svc", MsgpackCodec::new())
        .endpoints(hosts_endpoints())
        .config(config());
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", SERVICE_PORT))
        .await
        .unwrap();
    // the registry's channel has no idle timeout: it outlives a partition
    // and stays part of the baseline of the leak checks
    let for_registry = me.clone().config(Config::default());
    let registry = RegistryClient::connect(&for_registry, &REGISTRAR.parse().unwrap())
        .await
        .unwrap();
    let listening: Addr = format!("0.0.0.0:{SERVICE_PORT}").parse().unwrap();
    let registration = registry.register_peer(&me, &listening).await.unwrap();
    // the registry's channel is part of the baseline
    let tasks_before = alive_tasks();
    report(
        "registered",
        json!({ "addr": registration.addr().to_string(), "tasks": tasks_before }),
    );
    // `stats` on stdin: report the tasks alive once the channels are gone
    let (stats_tx, mut stats) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if stats_tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, _) = accepted.unwrap();
                tcp.set_nodelay(true).unwrap();
                let me = me.clone();
                tokio::spawn(async move {
                    if let Ok(chan) = me.accept(tcp).await {
                        chan.closed().await;
                        report("channel closed", json!({ "peer": chan.peer().name }));
                    }
                });
            }
            Some(_) = stats.recv() => {
                let tasks = tasks_back_to(tasks_before).await;
                report("stats", json!({ "tasks_before": tasks_before, "tasks": tasks }));
            }
        }
    }
}

/// `hosts:echo`: echoes every item, returns how many, and reports its
/// outcome (`served`) however it ends.
fn hosts_endpoints() -> Endpoints<MsgpackCodec> {
    let mut endpoints = Endpoints::new();
    endpoints.context(
        "hosts",
        "echo",
        PldSpec::any(),
        |mut ctx: ChildContext<MsgpackCodec>, _: BTreeMap<String, rmpv::Value>| async move {
            ctx.started(&()).await?;
            // reports however the task ends: a closed channel cancels it
            // (as tractor does), dropping this future mid-await
            let mut served = Served::default();
            let result = async {
                while let Some(v) = ctx.recv::<rmpv::Value>().await? {
                    served.received += 1;
                    ctx.send(&v).await?;
                }
                Ok(())
            }
            .await;
            served.outcome = Some(outcome(&result));
            result?;
            Ok(served.received)
        },
    );
    endpoints
}

/// Checks a role's task counts (`released` of a caller, `stats` of a
/// service): every task its channels ran is gone; prints them.
fn no_task_left(scenario: &str, who: &str, report: &Value) {
    println!(
        "{scenario}: {who} tasks alive {} before, {} after",
        report["tasks_before"], report["tasks"]
    );
    assert_eq!(
        report["tasks"], report["tasks_before"],
        "{scenario}: {who}: tasks {report}"
    );
}

/// Runs the caller role in node 2 with `vars`.
fn caller_in(net: &Net, vars: &[(&str, String)]) -> Proc {
    let mut cmd = role_cmd("caller");
    for (k, v) in vars {
        cmd.env(format!("SCIPP_HOSTS_{k}"), v);
    }
    Proc::spawn("caller", net.ns(2), &mut cmd)
}

/// Prints a scenario's counts and checks that a completed context lost and
/// duplicated nothing.
fn counts(scenario: &str, done: &Value) {
    println!(
        "{scenario}: sent {} delivered {} duplicated {} out of order {} -> {}",
        done["sent"], done["delivered"], done["duplicated"], done["out_of_order"], done["outcome"]
    );
    assert_eq!(done["duplicated"], 0, "{scenario}: {done}");
    assert_eq!(done["out_of_order"], 0, "{scenario}: {done}");
    if done["outcome"] == "completed" {
        assert_eq!(done["sent"], done["delivered"], "{scenario}: {done}");
    }
}

// ------------------------------------------------------------------ tests

#[test]
fn a_wildcard_service_is_found_by_name_and_called_from_another_namespace() {
    let Some(net) = net_or_skip("plain", &["reg", "svc", "call"]) else {
        return;
    };
    let _registrar = registrar(&net, &[]);
    let service = Proc::spawn(
        "service",
        net.ns(1),
        scipp()
            .args(["serve", "--listen", &format!("0.0.0.0:{SERVICE_PORT}")])
            .args(["--name", "scipp_svc", "--registry", REGISTRAR]),
    );
    // registered at the address of the interface that reaches the registrar
    service.wait_for(&format!("at 10.231.0.2:{SERVICE_PORT}"));

    let caller = caller_in(&net, &[("ITEMS", "200".into())]);
    let found = caller.report("found");
    assert_eq!(found["addr"], format!("10.231.0.2:{SERVICE_PORT}"));
    let done = caller.report("done");
    counts("plain", &done);
    assert_eq!(done["outcome"], "completed", "{done}");
    assert_eq!(done["delivered"], 200);

    // the CLI finds it by name too
    let out = Command::new("ip")
        .args(["netns", "exec", net.ns(2)])
        .arg(env!("CARGO_BIN_EXE_scipp"))
        .args([
            "call",
            "--registry",
            REGISTRAR,
            "scipp_svc",
            "scipp_peer:add",
        ])
        .args(["--rpc", "--kwargs", r#"{"a":2,"b":3}"#, "--timeout", "10"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains('5'),
        "{out:?}"
    );
}

#[test]
fn over_mutual_tls_only_callers_with_a_valid_certificate_get_in() {
    let Some(net) = net_or_skip("tls", &["reg", "svc", "call"]) else {
        return;
    };
    let certs = Certs::new("tls");
    let registrar = registrar(&net, &certs.serve_flags("registrar"));
    let service = Proc::spawn(
        "service",
        net.ns(1),
        scipp()
            .args(["serve", "--listen", &format!("0.0.0.0:{SERVICE_PORT}")])
            .args(["--name", "scipp_svc", "--registry", REGISTRAR])
            .args(certs.serve_flags("service"))
            .env("SCIPP_LOG", "info"),
    );
    service.wait_for(&format!("at 10.231.0.2:{SERVICE_PORT}"));
    let (registrar_before, service_before) = (registrar.usage(), service.usage());

    let tls = |cert: Option<&str>| {
        let mut vars = vec![
            ("TLS_DIR", certs.dir.display().to_string()),
            ("ITEMS", "50".into()),
        ];
        if let Some(cert) = cert {
            vars.push(("TLS_CERT", cert.into()));
        }
        vars
    };
    let caller = caller_in(&net, &tls(Some("caller")));
    caller.report("found");
    let open = caller.report("open");
    assert_eq!(open["server_names"], json!(["service.test"]));
    let done = caller.report("done");
    counts("mutual TLS", &done);
    assert_eq!(done["outcome"], "completed", "{done}");
    no_task_left("mutual TLS", "caller", &caller.report("released"));

    // no valid client certificate: refused during the TLS handshake, so
    // not even the registrar reads an Aid, let alone a Start
    for (why, cert) in [
        ("missing", None),
        ("expired", Some("expired")),
        ("other CA", Some("stranger")),
    ] {
        let refused = caller_in(&net, &tls(cert)).report("refused");
        println!("mutual TLS, {why} client certificate: refused: {refused}");
        assert_eq!(refused["by"], "registrar", "{why}: {refused}");
    }
    // a caller that skips the registrar and dials the service directly
    // is refused by the service the same way
    let out = Command::new("ip")
        .args(["netns", "exec", net.ns(2)])
        .arg(env!("CARGO_BIN_EXE_scipp"))
        .args([
            "call",
            &format!("10.231.0.2:{SERVICE_PORT}"),
            "scipp_peer:echo",
        ])
        .args(["--tls-ca", &certs.path("ca.pem"), "--timeout", "10"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot reach"), "{stderr}");
    // neither the served caller nor the refused ones left a connection
    let scenario = "mutual TLS, 1 served + 4 refused";
    let after = registrar.usage_back_to(registrar_before.fds);
    no_leak(scenario, "registrar", registrar_before, after);
    let after = service.usage_back_to(service_before.fds);
    no_leak(scenario, "service", service_before, after);
}

/// A partition shorter than the idle timeout is survived: every item is
/// delivered once, in order.
#[test]
fn a_partition_shorter_than_the_idle_timeout_is_survived() {
    let Some(net) = net_or_skip("short", &["reg", "svc", "call"]) else {
        return;
    };
    let _registrar = registrar(&net, &[]);
    let mut service = Proc::spawn(
        "service",
        net.ns(1),
        role_cmd("service").env("SCIPP_HOSTS_IDLE", "6"),
    );
    service.report("registered");
    let before = service.usage();
    let mut caller = caller_in(
        &net,
        &[
            ("TARGET", "hosts:echo".into()),
            ("ITEMS", "100".into()),
            ("PAUSE_AT", "50".into()),
            ("IDLE", "6".into()),
        ],
    );
    caller.report("paused");
    net.link(1, false);
    caller.go(); // the rest is sent into the partition
    std::thread::sleep(Duration::from_secs(1)); // the partition's length
    net.link(1, true);
    let done = caller.report("done");
    counts("partition 1 s < idle 6 s", &done);
    assert_eq!(done["outcome"], "completed", "{done}");
    assert_eq!(done["delivered"], 100);
    let served = service.report("served");
    assert_eq!(served["outcome"], "completed", "{served}");
    assert_eq!(served["received"], 100);
    // nothing left behind on either side
    let scenario = "partition 1 s < idle 6 s";
    no_task_left(scenario, "caller", &caller.report("released"));
    service.report("channel closed");
    service.tell("stats");
    no_task_left(scenario, "service", &service.report("stats"));
    no_leak(
        scenario,
        "service",
        before,
        service.usage_back_to(before.fds),
    );
}

/// A partition longer than the idle timeout ends the channel on both
/// sides with `TransportClosed`, within the idle timeout (+ margin).
#[test]
fn a_partition_longer_than_the_idle_timeout_ends_both_sides_with_transport_closed() {
    let Some(net) = net_or_skip("long", &["reg", "svc", "call"]) else {
        return;
    };
    let idle = 2;
    let _registrar = registrar(&net, &[]);
    let mut service = Proc::spawn(
        "service",
        net.ns(1),
        role_cmd("service").env("SCIPP_HOSTS_IDLE", idle.to_string()),
    );
    service.report("registered");
    let before = service.usage();
    let mut caller = caller_in(
        &net,
        &[
            ("TARGET", "hosts:echo".into()),
            ("ITEMS", "100".into()),
            ("PAUSE_AT", "50".into()),
            ("IDLE", idle.to_string()),
        ],
    );
    caller.report("paused");
    net.link(1, false);
    caller.go();
    // the documented bound: the idle timeout, plus a margin for scheduling
    let bound = Duration::from_secs(idle + 3);
    let done = caller.report_within("done", bound);
    let closed = service.report_within("channel closed", bound);
    let served = service.report_within("served", bound);
    net.link(1, true);
    counts("partition > idle 2 s", &done);
    println!(
        "partition > idle 2 s: service received {} -> {}",
        served["received"], served["outcome"]
    );
    assert_eq!(done["outcome"], "transport closed", "{done}");
    // the service's channel closed by its own idle timeout (the caller's
    // FIN cannot cross the partition), cancelling the context on it
    assert_eq!(closed["peer"], "scipp_caller");
    assert_eq!(
        served["outcome"], "cancelled: its channel closed",
        "{served}"
    );
    assert_eq!(served["received"], 50);
    assert_eq!(done["delivered"], 50, "nothing after the cut came back");
    // nothing left behind on either side
    let scenario = "partition > idle 2 s";
    no_task_left(scenario, "caller", &caller.report("released"));
    service.tell("stats");
    no_task_left(scenario, "service", &service.report("stats"));
    no_leak(
        scenario,
        "service",
        before,
        service.usage_back_to(before.fds),
    );
    assert!(caller.exit_ok(), "the caller exits cleanly after the error");
}

/// A 1 Mbit/s link (token bucket) slows the context but loses nothing.
#[test]
fn a_slow_link_delivers_every_item_once_in_order() {
    let Some(net) = net_or_skip("slow", &["reg", "svc", "call"]) else {
        return;
    };
    let _registrar = registrar(&net, &[]);
    let service = Proc::spawn(
        "service",
        net.ns(1),
        scipp()
            .args(["serve", "--listen", &format!("0.0.0.0:{SERVICE_PORT}")])
            .args(["--name", "scipp_svc", "--registry", REGISTRAR]),
    );
    service.wait_for("registered as scipp_svc");
    let before = service.usage();
    net.slow(2);
    // 40 items of 4 KiB each way: ~1.3 s at 1 Mbit/s
    let caller = caller_in(&net, &[("ITEMS", "40".into()), ("SIZE", "4096".into())]);
    let done = caller.report("done");
    counts("1 Mbit/s link", &done);
    assert_eq!(done["outcome"], "completed", "{done}");
    assert_eq!(done["delivered"], 40);
    let (held_back, bytes) = net.shaped(2);
    println!("1 Mbit/s link: the shaper sent {bytes} bytes, held packets back {held_back} times");
    assert!(held_back > 0, "the link was really rate limited");
    // nothing left behind: the caller's tasks, the service's connection
    let scenario = "1 Mbit/s link";
    no_task_left(scenario, "caller", &caller.report("released"));
    no_leak(
        scenario,
        "service",
        before,
        service.usage_back_to(before.fds),
    );
}

// ------------------------------------------------------------ fault proxy

/// What the fault proxy does to the bytes between caller and service.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Delays every chunk, both ways, by 1 to 4 ms (a fixed pattern).
    Jitter,
    /// Forwards nothing toward the caller for `stall` once `after` bytes
    /// went that way.
    Stall { after: usize, stall: Duration },
    /// Closes both connections once `after` bytes went toward the caller.
    Cut { after: usize },
}

/// Copies `from` to `to`, applying `fault`; returns when either side ends
/// or the fault cuts.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    fault: Option<Fault>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    let (mut passed, mut chunks, mut stalled) = (0usize, 0u64, false);
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        chunks += 1;
        match fault {
            Some(Fault::Jitter) => {
                tokio::time::sleep(Duration::from_millis(1 + chunks % 4)).await;
            }
            Some(Fault::Stall { after, stall }) if !stalled && passed + n >= after => {
                stalled = true;
                tokio::time::sleep(stall).await;
            }
            Some(Fault::Cut { after }) if passed + n >= after => return,
            _ => {}
        }
        passed += n;
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A userspace forwarder on loopback to `upstream` that applies `fault`.
/// When either direction ends, both connections are dropped.
async fn fault_proxy(upstream: std::net::SocketAddr, fault: Fault) -> Addr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                continue;
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            let both_ways = matches!(fault, Fault::Jitter).then_some(fault);
            let mut up = tokio::spawn(pump(client_read, server_write, both_ways));
            let mut down = tokio::spawn(pump(server_read, client_write, Some(fault)));
            tokio::spawn(async move {
                tokio::select! {
                    _ = &mut up => down.abort(),
                    _ = &mut down => up.abort(),
                }
            });
        }
    });
    format!("127.0.0.1:{port}").parse().unwrap()
}

/// Holds a 100-item echo context with an in-process service (a
/// [`Server`](scipp::server::Server) on loopback) through a fault proxy;
/// the counts, and whether the service's connection closed within `LIMIT`
/// after the caller hung up. Then checks that nothing leaked: the service
/// holds no connection, and every task the channels, contexts and proxy
/// ran is gone (this runtime's alive tasks back to the baseline taken
/// before connecting).
async fn through_proxy(scenario: &str, fault: Fault, idle: Option<Duration>) -> (Value, bool) {
    let service = Peer::new("scipp_svc", MsgpackCodec::new())
        .endpoints(hosts_endpoints())
        .serve_tcp("127.0.0.1:0")
        .await
        .unwrap();
    let upstream = service.local_addr().to_string().parse().unwrap();
    let proxy = fault_proxy(upstream, fault).await;
    let tasks_before = alive_tasks();
    let me = Peer::new("scipp_caller", MsgpackCodec::new()).config(Config {
        idle_timeout: idle,
        ..Config::default()
    });
    let chan = tokio::time::timeout(LIMIT, me.connect_addr(&proxy))
        .await
        .unwrap()
        .unwrap();
    let done = tokio::time::timeout(LIMIT, exchange(&chan, "hosts", "echo", 100, 64, None))
        .await
        .expect("the context ends within the bound");
    let watch = chan.clone();
    // a transport that already failed has nothing to flush
    let _ = tokio::time::timeout(LIMIT, chan.close()).await.unwrap();
    tokio::time::timeout(LIMIT, watch.closed()).await.unwrap();
    drop(watch);
    let service_closed = tokio::time::timeout(LIMIT, service.wait_connections(|n| n == 0))
        .await
        .is_ok();
    let tasks = tasks_back_to(tasks_before).await;
    println!(
        "{scenario}: service connections {} after; tasks alive {tasks_before} before, {tasks} after",
        service.connections()
    );
    assert_eq!(tasks, tasks_before, "{scenario}: tasks alive");
    assert_eq!(service.connections(), 0, "{scenario}: service connections");
    tokio::time::timeout(LIMIT, service.shutdown())
        .await
        .unwrap()
        .unwrap();
    (done, service_closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jitter_through_a_fault_proxy_delivers_every_item_once_in_order() {
    let scenario = "proxy: jitter 1-4 ms per chunk";
    let (done, closed) = through_proxy(scenario, Fault::Jitter, None).await;
    counts(scenario, &done);
    assert!(closed, "the service's connection closed");
    assert_eq!(done["outcome"], "completed", "{done}");
    assert_eq!(done["delivered"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_shorter_than_the_idle_timeout_is_survived() {
    let stall = Fault::Stall {
        after: 3000,
        stall: Duration::from_secs(1),
    };
    let scenario = "proxy: stall 1 s < idle 3 s";
    let (done, closed) = through_proxy(scenario, stall, Some(Duration::from_secs(3))).await;
    counts(scenario, &done);
    assert!(closed, "the service's connection closed");
    assert_eq!(done["outcome"], "completed", "{done}");
    assert_eq!(done["delivered"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_longer_than_the_idle_timeout_ends_both_sides_with_transport_closed() {
    let stall = Fault::Stall {
        after: 3000,
        stall: Duration::from_secs(30),
    };
    // bound: the caller's idle timeout (1 s); the service sees the
    // caller's close through the proxy at once
    let scenario = "proxy: stall 30 s > idle 1 s";
    let (done, service_closed) = through_proxy(scenario, stall, Some(Duration::from_secs(1))).await;
    counts(scenario, &done);
    assert_eq!(done["outcome"], "transport closed", "{done}");
    assert!(done["delivered"].as_u64().unwrap() < 100, "{done}");
    assert!(service_closed, "the service's channel closed too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_ends_both_sides_with_transport_closed() {
    let scenario = "proxy: cut after 3000 bytes";
    let (done, service_closed) = through_proxy(scenario, Fault::Cut { after: 3000 }, None).await;
    counts(scenario, &done);
    assert_eq!(done["outcome"], "transport closed", "{done}");
    assert!(done["delivered"].as_u64().unwrap() < 100, "{done}");
    assert!(service_closed, "the service's channel closed too");
}

#[test]
fn over_ipv6_a_wildcard_service_registers_its_interface_address() {
    let Some(net) = net_or_skip_with("ipv6", &["reg", "svc", "call"], true) else {
        return;
    };
    let registrar6 = "[fd31:231::1]:7000";
    let reg = Proc::spawn(
        "registrar",
        net.ns(0),
        scipp()
            .args(["serve", "--listen", "[::]:7000", "--registrar"])
            .args(["--name", "scipp_registrar", "--advertise", registrar6]),
    );
    reg.wait_for("registrar: serving the registry RPCs");
    let service = Proc::spawn(
        "service",
        net.ns(1),
        scipp()
            .args(["serve", "--listen", &format!("[::]:{SERVICE_PORT}")])
            .args(["--name", "scipp_svc", "--registry", registrar6]),
    );
    service.wait_for(&format!("at [fd31:231::2]:{SERVICE_PORT}"));
    let caller = caller_in(&net, &[("REGISTRAR", registrar6.into())]);
    let found = caller.report("found");
    assert_eq!(found["addr"], format!("[fd31:231::2]:{SERVICE_PORT}"));
    let done = caller.report("done");
    counts("IPv6", &done);
    assert_eq!(done["outcome"], "completed", "{done}");
}

/// Without namespaces: `--advertise` wins over the listening address.
#[test]
fn serve_registers_the_advertised_address() {
    let registrar = Proc::spawn_here(
        "registrar",
        scipp().args(["serve", "--listen", "127.0.0.1:0", "--registrar"]),
    );
    let line = registrar.wait_for("listening on ");
    let registry = line.trim().strip_prefix("listening on ").unwrap();
    let service = Proc::spawn_here(
        "service",
        scipp()
            .args(["serve", "--listen", "0.0.0.0:0", "--registry", registry])
            .args(["--name", "scipp_svc", "--advertise", "192.0.2.7:4242"]),
    );
    let line = service.wait_for("registered as scipp_svc");
    assert!(line.ends_with("at 192.0.2.7:4242"), "{line}");
}
