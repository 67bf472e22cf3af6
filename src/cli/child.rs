//! `scipp child`: be a child actor spawned by a tractor or scipp parent
//! (tractor's `_child` command line), serving the example endpoints.

use super::CliError;
use scipp::examples;
use scipp::relay::Raise;
use scipp::route::Endpoints;
use scipp::spawn::{ChildArgs, ChildRuntime};
use scipp::{BoxError, MsgpackCodec};
use std::time::Duration;

/// The namespace of the extra endpoints only a `scipp child` serves.
pub(crate) const NS: &str = "scipp_child";

#[derive(Debug, clap::Args)]
pub(crate) struct ChildCliArgs {
    /// Our identity, as tractor writes it: `"('name', 'uuid')"`.
    #[arg(long, value_name = "TUPLE")]
    uid: String,
    /// Where the parent listens: `"('host', port)"`.
    #[arg(long = "parent_addr", value_name = "TUPLE")]
    parent_addr: String,
    /// tractor's log level name (accepted; scipp logs per `SCIPP_LOG`).
    #[arg(long)]
    loglevel: Option<String>,
    /// tractor's asyncio guest mode (accepted, meaningless here).
    #[arg(long)]
    asyncio: bool,
}

#[derive(serde::Deserialize)]
struct Sleep {
    secs: f64,
}

#[derive(serde::Deserialize)]
struct Nothing {}

/// The example endpoints, plus ns `scipp_child`: `fails` (raises
/// `ValueError("boom")`), `sleep(secs)` (returns `secs` after sleeping),
/// `pid` (this process's id).
fn endpoints() -> Endpoints<MsgpackCodec> {
    let mut e = examples::scipp_peer::<MsgpackCodec>();
    e.rpc(NS, "fails", |_: Nothing| async move {
        Err::<(), BoxError>(Box::new(Raise::new("ValueError", "boom")))
    });
    e.rpc(NS, "sleep", |kw: Sleep| async move {
        tokio::time::sleep(Duration::from_secs_f64(kw.secs.clamp(0.0, 86_400.0))).await;
        Ok(kw.secs)
    });
    e.rpc(
        NS,
        "pid",
        |_: Nothing| async move { Ok(std::process::id()) },
    );
    e
}

pub(crate) fn run(args: ChildCliArgs) -> Result<(), CliError> {
    let mut argv = vec![
        "--uid".to_owned(),
        args.uid,
        "--parent_addr".to_owned(),
        args.parent_addr,
    ];
    if let Some(level) = args.loglevel {
        argv.extend(["--loglevel".to_owned(), level]);
    }
    if args.asyncio {
        argv.push("--asyncio".to_owned());
    }
    let args = ChildArgs::parse(argv)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let exit = rt.block_on(
        ChildRuntime::new(args, MsgpackCodec::new())
            .endpoints(endpoints())
            .run(),
    )?;
    tracing::debug!("child done: {exit:?}");
    Ok(())
}

/// A `scipp child` of this very binary, named `name`, with its namespaces
/// enabled (the file of each is the binary).
pub(crate) fn spec(name: &str) -> Result<scipp::spawn::ChildSpec, CliError> {
    let exe = std::env::current_exe()?;
    let path = exe.display().to_string();
    Ok(scipp::spawn::ChildSpec::program(name, exe, ["child"])
        .module(examples::NS, path.clone())
        .module(NS, path))
}
