//! `scipp tree`: spawn a tree of tractor and scipp children from the
//! shell, call them, print each outcome, tear the tree down.

use super::{render, CliError};
use scipp::context::ContextError;
use scipp::spawn::{find_module_file, ChildSpec, Nursery, NurseryConfig, Portal};
use scipp::MsgpackCodec;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub(crate) struct TreeArgs {
    /// A scipp child (`scipp child`, this binary) named NAME; repeat for
    /// more. It serves ns `scipp_peer` (the examples) and `scipp_child`
    /// (`fails`, `sleep(secs)`, `pid`).
    #[arg(long = "scipp", value_name = "NAME")]
    scipps: Vec<String>,
    /// A tractor child `NAME=MODULE[,MODULE...]`, enabling those Python
    /// modules (their files are found by asking the interpreter, from the
    /// current directory); repeat for more.
    #[arg(long = "tractor", value_name = "NAME=MODULES")]
    tractors: Vec<String>,
    /// The Python interpreter for tractor children (tractor must be
    /// importable there).
    #[arg(long, value_name = "PATH", default_value = "python3")]
    python: PathBuf,
    /// A plain RPC: `'CHILD NS:FUNC [JSON kwargs]'`; repeat for more, run
    /// in order.
    #[arg(long = "rpc", value_name = "CALL")]
    rpcs: Vec<String>,
    /// A context: `'CHILD NS:FUNC [JSON kwargs]'`: prints its first value
    /// and its result (the stream is closed at once); repeat for more.
    /// Contexts run after the RPCs.
    #[arg(long = "ctx", value_name = "CALL")]
    contexts: Vec<String>,
    /// Give up on the calls after this many seconds.
    #[arg(long, value_name = "S", default_value_t = 30.0)]
    timeout: f64,
    /// Seconds a child has to connect back.
    #[arg(long, value_name = "S", default_value_t = 30.0)]
    connect_timeout: f64,
}

/// One call to make.
#[derive(Debug)]
struct Call {
    child: String,
    ns: String,
    func: String,
    kwargs: serde_json::Map<String, serde_json::Value>,
    context: bool,
}

impl Call {
    fn parse(text: &str, context: bool) -> Result<Self, CliError> {
        let mut parts = text.trim().splitn(3, char::is_whitespace);
        let (Some(child), Some(target)) = (parts.next(), parts.next()) else {
            return Err(format!("{text:?} is not 'CHILD NS:FUNC [JSON]'").into());
        };
        let (ns, func) = target
            .split_once(':')
            .filter(|(ns, func)| !ns.is_empty() && !func.is_empty())
            .ok_or_else(|| format!("{target:?} is not NS:FUNC"))?;
        let kwargs = match parts.next().map(str::trim).filter(|t| !t.is_empty()) {
            None => serde_json::Map::new(),
            Some(json) => match serde_json::from_str(json) {
                Ok(serde_json::Value::Object(map)) => map,
                Ok(_) => return Err(format!("kwargs of {text:?} must be a JSON object").into()),
                Err(e) => return Err(format!("kwargs of {text:?}: {e}").into()),
            },
        };
        Ok(Call {
            child: child.to_owned(),
            ns: ns.to_owned(),
            func: func.to_owned(),
            kwargs,
            context,
        })
    }

    fn label(&self) -> String {
        format!("{} {}:{}", self.child, self.ns, self.func)
    }
}

pub(crate) fn run(args: TreeArgs) -> Result<ExitCode, CliError> {
    let mut calls = Vec::new();
    for c in &args.rpcs {
        calls.push(Call::parse(c, false)?);
    }
    for c in &args.contexts {
        calls.push(Call::parse(c, true)?);
    }
    let mut children = Vec::new();
    for name in &args.scipps {
        children.push(Child::Scipp(name.clone()));
    }
    for t in &args.tractors {
        let (name, modules) = t
            .split_once('=')
            .ok_or_else(|| format!("--tractor {t:?} is not NAME=MODULE[,MODULE...]"))?;
        let modules = modules
            .split(',')
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .collect();
        children.push(Child::Tractor(name.to_owned(), modules));
    }
    if children.is_empty() {
        return Err("no child: give --scipp NAME or --tractor NAME=MODULES".into());
    }
    for call in &calls {
        if !children.iter().any(|c| c.name() == call.child) {
            return Err(format!("{}: no child named {:?}", call.label(), call.child).into());
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(tree(args, children, calls))
}

#[derive(Debug)]
enum Child {
    Scipp(String),
    Tractor(String, Vec<String>),
}

impl Child {
    fn name(&self) -> &str {
        match self {
            Child::Scipp(n) | Child::Tractor(n, _) => n,
        }
    }

    async fn spec(&self, python: &std::path::Path) -> Result<ChildSpec, CliError> {
        match self {
            Child::Scipp(name) => super::child::spec(name),
            Child::Tractor(name, modules) => {
                let mut spec = ChildSpec::tractor(name, python);
                for m in modules {
                    let file = find_module_file(python, m)
                        .await
                        .map_err(|why| format!("module {m:?} with {}: {why}", python.display()))?;
                    spec = spec.module(m, file);
                }
                Ok(spec)
            }
        }
    }
}

async fn tree(
    args: TreeArgs,
    children: Vec<Child>,
    calls: Vec<Call>,
) -> Result<ExitCode, CliError> {
    // SIGINT/SIGTERM handlers first: no child is spawned that a signal
    // would not tear down
    let signalled = super::serve::shutdown_signal()?;
    let config = NurseryConfig {
        connect_timeout: Duration::from_secs_f64(args.connect_timeout.max(0.001)),
        ..NurseryConfig::default()
    };
    let nursery = Nursery::builder("scipp_tree", MsgpackCodec::new())
        .config(config)
        .open()
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(args.timeout.max(0.001));
    let job = async {
        let mut portals = HashMap::new();
        for child in &children {
            let spec = child.spec(&args.python).await?;
            let portal = nursery.start_actor(spec).await?;
            out!("started {} (pid {})", portal.name(), portal.pid());
            portals.insert(child.name().to_owned(), portal);
        }
        for call in &calls {
            let portal = &portals[&call.child];
            match tokio::time::timeout_at(deadline, one_call(portal, call)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!("{} failed: {e}", call.label()).into()),
                Err(_) => return Err(format!("{}: timed out", call.label()).into()),
            }
        }
        Ok::<_, CliError>(())
    };
    let outcome = tokio::select! {
        done = job => done,
        () = nursery.failed() => Err("a child failed".into()),
        () = signalled => Err("interrupted".into()),
    };
    let t0 = std::time::Instant::now();
    let closed = nursery.close().await;
    let teardown = t0.elapsed();
    match (outcome, closed) {
        (Ok(()), Ok(())) => {
            out!(
                "tree torn down in {:.1} ms: every child cancelled and reaped",
                teardown.as_secs_f64() * 1e3
            );
            Ok(ExitCode::SUCCESS)
        }
        (outcome, closed) => {
            if let Err(e) = outcome {
                eprintln!("error: {e}");
            }
            if let Err(e) = closed {
                eprintln!("error: {e}");
            }
            eprintln!("tree torn down: every child cancelled and reaped");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn one_call(portal: &Portal<MsgpackCodec>, call: &Call) -> Result<(), ContextError> {
    let label = call.label();
    if !call.context {
        let value: rmpv::Value = portal.rpc(&call.ns, &call.func, &call.kwargs).await?;
        out!("{label} -> {}", render::value(&value));
        return Ok(());
    }
    let (mut ctx, first) = portal
        .open_context(&call.ns, &call.func)
        .kwargs(&call.kwargs)
        .start::<rmpv::Value>()
        .await?;
    out!("{label} started: {}", render::value(&first));
    ctx.close().await?;
    while let Some(v) = ctx.recv::<rmpv::Value>().await? {
        out!("{label} received: {}", render::value(&v));
    }
    let ret: rmpv::Value = ctx.result().await?;
    out!("{label} -> {}", render::value(&ret));
    Ok(())
}
