//! `scipp serve`: serve the example endpoints (ns `scipp_peer`) on TCP or a
//! Unix socket, as tractor's `scipp_peer` actor of the transcripts does.

use super::CliError;
use scipp::msg::Addr;
use scipp::peer::{Config, Peer};
use scipp::registry::Registrar;
use scipp::route::Overrun;
use scipp::server::{Listener, ServeConfig};
use scipp::{examples, CborCodec, Codec, MsgpackCodec, ProtobufCodec};
use std::io::Write;
use std::time::Duration;

/// Which codec a channel speaks.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum CodecName {
    /// tractor's wire
    Msgpack,
    /// CBOR
    Cbor,
    /// protobuf envelope, msgpack payloads
    Protobuf,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// `HOST:PORT` for TCP (port 0 picks one), or a Unix socket path.
    #[arg(long, value_name = "ADDR")]
    listen: String,
    /// The actor name in our `Aid`.
    #[arg(long, default_value = "scipp_peer")]
    name: String,
    /// The codec to speak.
    #[arg(long, value_enum, default_value = "msgpack")]
    codec: CodecName,
    /// Register with the tractor registrar at `ADDR` on start (as
    /// `self:register_actor`), unregister on exit.
    #[arg(long, value_name = "ADDR", conflicts_with = "registrar")]
    registry: Option<String>,
    /// The address other hosts reach us at, as registered (`HOST:PORT`).
    /// Default: the listening address, or, listening on a wildcard
    /// (`0.0.0.0`, `[::]`), the local address of our connection to the
    /// registrar.
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Option<String>,
    #[command(flatten)]
    tls: super::tls::TlsArgs,
    /// Be a registrar: serve the `self:*` registry RPCs to scipp peers and
    /// tractor actors, and say `is_registrar` in our `Aid`.
    #[arg(long)]
    registrar: bool,
    /// Seconds a new connection has to send its `Aid`.
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    handshake_timeout: f64,
    /// Close a connection that sends nothing for this many seconds (off by
    /// default, as in tractor).
    #[arg(long, value_name = "S")]
    idle_timeout: Option<f64>,
    /// Messages queued per context before the overrun mode applies.
    #[arg(long, value_name = "N", default_value_t = 64)]
    queue: usize,
    /// What a full context queue does: wait (backpressure) or drop and
    /// report each message to the sender (tractor's default).
    #[arg(long, value_enum, default_value = "backpressure")]
    overrun: OverrunMode,
    /// Open contexts allowed per connection.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    max_contexts: usize,
    /// Connections held at once; more are accepted and closed at once.
    /// Default: the file limit (`ulimit -n`) minus 64.
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// What to do with an invalid message from a peer.
    #[arg(long, value_enum, default_value = "deliver")]
    policy: super::policy::PolicyName,
    /// Let peers call only this endpoint, `NS:FUNC` (or `NS:*`); repeat
    /// for more. Refused calls get a `PermissionError`. Default: all. A
    /// registrar needs `--allow 'self:*'` for the registry RPCs.
    #[arg(long = "allow", value_name = "NS:FUNC")]
    allow: Vec<String>,
    /// With `--allow`: the peer named NAME may cancel this actor
    /// (`self.cancel`); repeat for more. Others are refused.
    #[arg(long = "trust", value_name = "NAME")]
    trust: Vec<String>,
}

/// `--overrun`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum OverrunMode {
    /// the sender waits
    Backpressure,
    /// drop and send a StreamOverrun error per message, as tractor does
    Report,
}

impl ServeArgs {
    fn config(&self) -> Result<Config, CliError> {
        let secs = |name: &str, s: f64| {
            Duration::try_from_secs_f64(s).map_err(|_| format!("{name}: {s} is not a duration"))
        };
        Ok(Config {
            handshake_timeout: secs("--handshake-timeout", self.handshake_timeout)?,
            idle_timeout: self
                .idle_timeout
                .map(|s| secs("--idle-timeout", s))
                .transpose()?,
            queue: self.queue.max(1),
            overrun: match self.overrun {
                OverrunMode::Backpressure => Overrun::Backpressure,
                OverrunMode::Report => Overrun::Report,
            },
            max_contexts: self.max_contexts,
            ..Config::default()
        })
    }
}

pub(crate) fn run(args: ServeArgs) -> Result<(), CliError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match args.codec {
            CodecName::Msgpack => serve(MsgpackCodec::new(), &args).await,
            CodecName::Cbor => serve(CborCodec::new(), &args).await,
            CodecName::Protobuf => serve(ProtobufCodec::new(), &args).await,
        }
    })
}

/// Whether `addr` names a Unix socket rather than `HOST:PORT`.
pub(crate) fn is_unix_path(addr: &str) -> bool {
    addr.contains('/') || !addr.contains(':')
}

async fn serve<C: Codec>(codec: C, args: &ServeArgs) -> Result<(), CliError> {
    let mut endpoints = examples::scipp_peer();
    let registrar = args.registrar.then(Registrar::new);
    if let Some(registrar) = &registrar {
        registrar.install(&mut endpoints);
    }
    let mut peer = Peer::new(&args.name, codec)
        .endpoints(endpoints)
        .config(args.config()?)
        .is_registrar(args.registrar)
        .policy(args.policy);
    if let Some(rules) = super::policy::authorization(&args.allow, &args.trust)? {
        peer = peer.inbound_message_layer(rules);
    }
    let mut config = ServeConfig::default();
    if let Some(n) = args.max_connections {
        config.max_connections = n.max(1);
    }
    let tls = args.tls.acceptor()?;
    #[cfg(feature = "tls")]
    {
        config.tls = tls.map(std::sync::Arc::new);
    }
    #[cfg(not(feature = "tls"))]
    if let Some(never) = tls {
        match never {}
    }
    let server = peer.serve_with(bind(&args.listen).await?, config);
    // Handlers first: a signal right after the line below must not kill us.
    let shutdown = shutdown_signal()?;
    tokio::pin!(shutdown);
    let bound = server.local_addr().clone();
    if is_unix_path(&args.listen) {
        out!("listening on {}", args.listen);
    } else {
        out!("listening on {bound}");
    }
    let here = match &args.advertise {
        Some(a) => a.parse().map_err(|e| format!("--advertise: {e}"))?,
        None => bound,
    };
    if let Some(registrar) = &registrar {
        // tractor's registrar lists itself, where others can reach it
        if scipp::registry::is_wildcard(&here) {
            tracing::warn!("not listing ourselves at {here}: pass --advertise");
        } else {
            registrar.register(peer.uid(), here.clone());
        }
        out!("registrar: serving the registry RPCs");
    }
    let registration = match &args.registry {
        Some(registry) => {
            let addr: Addr = registry.parse().map_err(|e| format!("--registry: {e}"))?;
            let client = super::tls::registry(&peer, &addr, args.tls.connector()?.as_ref())
                .await
                .map_err(|e| format!("registry {registry}: {e}"))?;
            let registration = client
                .register_peer(&peer, &here)
                .await
                .map_err(|e| format!("registry {registry}: {e}"))?;
            out!(
                "registered as {} with {registry} at {}",
                args.name,
                registration.addr()
            );
            Some(registration)
        }
        None => None,
    };
    std::io::stdout().flush()?;
    tokio::select! {
        () = server.cancel_requested() => {
            eprintln!("a peer asked us to cancel (self.cancel): exiting");
        }
        () = &mut shutdown => eprintln!("signal received: exiting"),
    }
    // every channel hangs up gracefully: what it queued (the CancelAck to
    // the peer that asked us to stop, say) goes out before we exit
    if let Err(e) = server.shutdown().await {
        eprintln!("some connections did not close in time: {e}");
    }
    if let Some(registration) = registration {
        match tokio::time::timeout(Duration::from_secs(5), registration.unregister()).await {
            Ok(Ok(())) => eprintln!("unregistered"),
            Ok(Err(e)) => eprintln!("unregister: {e}"),
            Err(_) => eprintln!("unregister: no answer within 5 s"),
        }
    }
    Ok(())
}

/// Binds `addr`: a Unix socket path (a stale socket file there is
/// replaced) or TCP `HOST:PORT`.
async fn bind(addr: &str) -> Result<Listener, CliError> {
    if is_unix_path(addr) {
        #[cfg(unix)]
        {
            let _ = std::fs::remove_file(addr);
            let l = tokio::net::UnixListener::bind(addr)
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            return Ok(l.into());
        }
        #[cfg(not(unix))]
        return Err(format!("{addr}: Unix sockets are not supported here").into());
    }
    Listener::bind_tcp(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}").into())
}

/// Installs the SIGINT/SIGTERM handlers now; the future resolves on either.
#[cfg(unix)]
pub(crate) fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, CliError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

/// Installs the Ctrl-C handler; the future resolves on it.
#[cfg(not(unix))]
pub(crate) fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, CliError> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
