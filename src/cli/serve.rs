//! `scipp serve`: serve the example endpoints (ns `scipp_peer`) on TCP or a
//! Unix socket, as tractor's `scipp_peer` actor of the transcripts does.

use super::CliError;
use scipp::peer::Peer;
use scipp::{examples, CborCodec, Codec, MsgpackCodec, ProtobufCodec};
use std::io::Write;
use std::sync::Arc;
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
    let peer = Arc::new(Peer::new(&args.name, codec).endpoints(examples::scipp_peer()));
    let stop = CancellationToken::new();
    let listener = Listener::bind(&args.listen).await?;
    // Handlers first: a signal right after the line below must not kill us.
    let shutdown = shutdown_signal()?;
    tokio::pin!(shutdown);
    out!("listening on {}", listener.local_addr());
    std::io::stdout().flush()?;
    loop {
        tokio::select! {
            accepted = listener.accept(&peer, &stop) => accepted?,
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
    Ok(())
}

/// Installs the SIGINT/SIGTERM handlers now; the future resolves on either.
#[cfg(unix)]
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, CliError> {
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
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, CliError> {
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

    fn local_addr(&self) -> String {
        match self {
            Listener::Tcp(l) => l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            #[cfg(unix)]
            Listener::Unix(_, path) => path.display().to_string(),
        }
    }

    /// Accepts one connection and serves it in its own task.
    async fn accept<C: Codec>(
        &self,
        peer: &Arc<Peer<C>>,
        stop: &CancellationToken,
    ) -> Result<(), CliError> {
        let peer = peer.clone();
        let stop = stop.clone();
        match self {
            Listener::Tcp(l) => {
                let (tcp, from) = l.accept().await?;
                tcp.set_nodelay(true)?;
                tokio::spawn(async move { serve_one(peer, tcp, from.to_string(), stop).await });
            }
            #[cfg(unix)]
            Listener::Unix(l, _) => {
                let (uds, _) = l.accept().await?;
                tokio::spawn(async move { serve_one(peer, uds, "unix socket".into(), stop).await });
            }
        }
        Ok(())
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
    match peer.channel(io).await {
        Ok(chan) => {
            tracing::info!("serving {} ({from})", chan.peer());
            tokio::select! {
                () = chan.closed() => tracing::info!("{} disconnected", chan.peer()),
                () = chan.cancel_requested() => stop.cancel(),
            }
        }
        Err(scipp::peer::PeerError::Probed(uid)) => {
            tracing::info!("{from}: registry probe from {uid} answered")
        }
        Err(e) => tracing::warn!("{from}: {e}"),
    }
}
