//! The `scipp` command line: see `scipp --help`.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cli;

/// scipp: tractor's typed IPC protocol (SCIPP), from Rust.
#[derive(Debug, Parser)]
#[command(name = "scipp", version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A guided tour: a real dialog over loopback TCP, frame by frame.
    Demo,
    /// Decode SCIPP frames: transcript JSON files, or hex frames.
    Decode(cli::decode::DecodeArgs),
    /// Compare the codecs' size and speed on a sample or your own payloads.
    Codecs(cli::codecs::CodecsArgs),
    /// Serve the example endpoints (ns `scipp_peer`) on TCP or a Unix socket.
    Serve(cli::serve::ServeArgs),
    /// Open a context (or an RPC) on any SCIPP peer and print what comes back.
    Call(cli::call::CallArgs),
    /// A transparent proxy that prints every frame between two peers.
    Tap(cli::tap::TapArgs),
    /// Be a child actor spawned by a tractor or scipp parent (tractor's
    /// `_child` flags), serving the example endpoints.
    Child(cli::child::ChildCliArgs),
    /// Spawn and supervise a tree of tractor and scipp children, call
    /// them, print each outcome, tear the tree down (exit 1 if any failed).
    Tree(cli::tree::TreeArgs),
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging();
    let result = match args.command {
        Command::Demo => cli::demo::run(),
        Command::Decode(a) => cli::decode::run(a),
        Command::Codecs(a) => cli::codecs::run(a),
        Command::Serve(a) => cli::serve::run(a),
        Command::Call(a) => cli::call::run(a),
        Command::Tap(a) => cli::tap::run(a),
        Command::Child(a) => cli::child::run(a),
        Command::Tree(a) => return report(cli::tree::run(a)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A subcommand that picks its own exit code.
fn report(result: Result<ExitCode, cli::CliError>) -> ExitCode {
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })
}

/// Logs to stderr; `SCIPP_LOG` picks the level (default `warn`).
fn init_logging() {
    let level = std::env::var("SCIPP_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::WARN);
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .with_target(false)
        .init();
}
