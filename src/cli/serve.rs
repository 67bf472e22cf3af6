//! `scipp serve`: serve the example endpoints (ns `scipp_peer`) on TCP or a
//! Unix socket, as tractor's `scipp_peer` actor of the transcripts does.

use super::CliError;
use futures_util::future::BoxFuture;
use scipp::channel::SHUTDOWN_GRACE;
use scipp::msg::Addr;
use scipp::peer::{Config, Peer};
use scipp::registry::{Registrar, RegistryClient};
use scipp::route::Overrun;
use scipp::{examples, CborCodec, Codec, MsgpackCodec, ProtobufCodec};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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
    let peer = Peer::new(&args.name, codec)
        .endpoints(endpoints)
        .config(args.config()?)
        .is_registrar(args.registrar);
    let stop = CancellationToken::new();
    let listener = Listener::bind(&args.listen).await?;
    // Handlers first: a signal right after the line below must not kill us.
    let shutdown = shutdown_signal()?;
    tokio::pin!(shutdown);
    let here = listener.addr()?;
    out!("listening on {}", listener.local_addr());
    if let Some(registrar) = &registrar {
        // tractor's registrar lists itself
        registrar.register(peer.uid(), here.clone());
        out!("registrar: serving the registry RPCs");
    }
    let registration = match &args.registry {
        Some(registry) => {
            let addr: Addr = registry.parse().map_err(|e| format!("--registry: {e}"))?;
            let client = RegistryClient::connect(&peer, &addr)
                .await
                .map_err(|e| format!("registry {registry}: {e}"))?;
            let registration = client
                .register_peer(&peer, &here)
                .await
                .map_err(|e| format!("registry {registry}: {e}"))?;
            out!("registered as {} with {registry}", args.name);
            Some(registration)
        }
        None => None,
    };
    std::io::stdout().flush()?;
    let peer = Arc::new(peer);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept(&peer, &stop) => {
                connections.spawn(accepted?);
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = stop.cancelled() => {
                eprintln!("a peer asked us to cancel (self.cancel): exiting");
                break;
            }
            () = &mut shutdown => {
                eprintln!("signal received: exiting");
                break;
            }
        }
    }
    listener.cleanup();
    // every channel hangs up gracefully: what it queued (the CancelAck to
    // the peer that asked us to stop, say) goes out before we exit
    stop.cancel();
    let hung_up = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(2 * SHUTDOWN_GRACE, hung_up)
        .await
        .is_err()
    {
        eprintln!("some connections did not close in time");
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

enum Listener {
    Tcp(tokio::net::TcpListener),
    #[cfg(unix)]
    Unix(tokio::net::UnixListener, std::path::PathBuf),
}

impl Listener {
    async fn bind(addr: &str) -> Result<Self, CliError> {
        if is_unix_path(addr) {
            #[cfg(unix)]
            {
                let path = std::path::PathBuf::from(addr);
                let _ = std::fs::remove_file(&path);
                let l = tokio::net::UnixListener::bind(&path)
                    .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
                return Ok(Listener::Unix(l, path));
            }
            #[cfg(not(unix))]
            return Err(format!("{addr}: Unix sockets are not supported here").into());
        }
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        Ok(Listener::Tcp(l))
    }

    /// Where peers reach us, as registry entries name it.
    fn addr(&self) -> Result<Addr, CliError> {
        Ok(match self {
            Listener::Tcp(l) => {
                let a = l.local_addr()?;
                Addr::Tcp {
                    host: a.ip().to_string(),
                    port: a.port(),
                }
            }
            #[cfg(unix)]
            Listener::Unix(_, path) => {
                let path = std::path::absolute(path)?;
                Addr::Uds {
                    dir: path
                        .parent()
                        .map(|d| d.display().to_string())
                        .unwrap_or_default(),
                    file: path
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                }
            }
        })
    }

    fn local_addr(&self) -> String {
        match self {
            Listener::Tcp(l) => l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            #[cfg(unix)]
            Listener::Unix(_, path) => path.display().to_string(),
        }
    }

    /// Accepts one connection; the future it returns serves it.
    async fn accept<C: Codec>(
        &self,
        peer: &Arc<Peer<C>>,
        stop: &CancellationToken,
    ) -> Result<BoxFuture<'static, ()>, CliError> {
        let peer = peer.clone();
        let stop = stop.clone();
        Ok(match self {
            Listener::Tcp(l) => {
                let (tcp, from) = l.accept().await?;
                tcp.set_nodelay(true)?;
                Box::pin(serve_one(peer, tcp, from.to_string(), stop))
            }
            #[cfg(unix)]
            Listener::Unix(l, _) => {
                let (uds, _) = l.accept().await?;
                Box::pin(serve_one(peer, uds, "unix socket".into(), stop))
            }
        })
    }

    fn cleanup(&self) {
        #[cfg(unix)]
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

async fn serve_one<C, IO>(peer: Arc<Peer<C>>, io: IO, from: String, stop: CancellationToken)
where
    C: Codec,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    match peer.accept(io).await {
        Ok(chan) => {
            let who = chan.peer().clone();
            tracing::info!("serving {who} ({from})");
            tokio::select! {
                () = chan.closed() => {
                    tracing::info!("{who} disconnected");
                    return;
                }
                () = chan.cancel_requested() => stop.cancel(),
                () = stop.cancelled() => {}
            }
            if let Err(e) = chan.close().await {
                tracing::debug!("closing the channel to {who}: {e}");
            }
        }
        Err(scipp::peer::PeerError::Probed(uid)) => {
            tracing::info!("{from}: registry probe from {uid} answered")
        }
        Err(e) => tracing::warn!("{from}: {e}"),
    }
}
