//! The child side of tractor's spawn path: what a process started by a
//! parent (tractor's or a scipp [`Nursery`](super::Nursery)) does.

use super::args::ChildArgs;
use super::handoff::{GreetError, Greeting};
use crate::peer::{Channel, Config, Peer, PeerError};
use crate::registry::RegistryClient;
use crate::route::Endpoints;
use scipp_codecs::msg::{Addr, Aid, Msg, SpawnSpec};
use scipp_codecs::Codec;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

/// How long registering or unregistering with a registrar may take: 5 s.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a child could not start or serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChildError {
    /// Connecting back to the parent failed.
    #[error("connecting back to the parent at {addr}: {source}")]
    Connect {
        /// The parent's address.
        addr: Addr,
        /// Why.
        source: std::io::Error,
    },
    /// The `Aid` / `SpawnSpec` exchange with the parent failed.
    #[error("spawn handshake with the parent: {0}")]
    Greet(#[from] GreetError),
    /// The parent's `Aid` was not followed by a `SpawnSpec`.
    #[error("spawn handshake: expected a SpawnSpec, got a `{0}` message")]
    NoSpawnSpec(String),
    /// Listening on a `bind_addrs` address failed.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// The address from the `SpawnSpec`.
        addr: Addr,
        /// Why.
        source: std::io::Error,
    },
    /// The channel on the parent link could not start.
    #[error(transparent)]
    Peer(#[from] PeerError),
}

/// How a child's life ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChildExit {
    /// The parent (or another peer) asked it to stop (`self.cancel`), as
    /// tractor's nurseries do; it acked and unregistered.
    Cancelled,
    /// The parent link closed: the parent is gone, and so is its child.
    ParentGone,
}

/// A spawned child actor: connects back, reads its `SpawnSpec`, listens,
/// registers, serves its endpoints on the parent link and every accepted
/// connection, and returns when the parent cancels it or disappears.
///
/// This is the whole of a child binary's `main`, next to its endpoints:
///
/// ```no_run
/// use scipp_layers::{examples, spawn::{ChildArgs, ChildRuntime}};
/// use scipp_codecs::msgpack::MsgpackCodec;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // e.g. `my_child --uid "('worker', '…')" --parent_addr "('127.0.0.1', 4242)" --loglevel ERROR`
/// let args = ChildArgs::parse(std::env::args().skip(1))?;
/// let exit = ChildRuntime::new(args, MsgpackCodec::new())
///     .endpoints(examples::scipp_peer())
///     .run()
///     .await?;
/// eprintln!("child done: {exit:?}");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ChildRuntime<C> {
    args: ChildArgs,
    codec: C,
    endpoints: Endpoints<C>,
    config: Config,
    enabled_only: bool,
    /// The host to register when bound to a wildcard address: ours on the
    /// connection to the parent (known for TCP).
    advertise: Option<std::net::IpAddr>,
}

impl<C: Codec> ChildRuntime<C> {
    /// The child named by `args`, speaking `codec`, with no endpoints yet.
    pub fn new(args: ChildArgs, codec: C) -> Self {
        ChildRuntime {
            args,
            codec,
            endpoints: Endpoints::new(),
            config: Config::default(),
            enabled_only: true,
            advertise: None,
        }
    }

    /// Whether only the namespaces the parent enabled (`SpawnSpec.
    /// enable_modules`) are served: true, tractor's capability rule. The
    /// runtime namespace `self` is always served.
    pub fn enabled_modules_only(mut self, yes: bool) -> Self {
        self.enabled_only = yes;
        self
    }

    /// Serves these endpoints (to the parent and to every other peer).
    pub fn endpoints(mut self, endpoints: Endpoints<C>) -> Self {
        self.endpoints = endpoints;
        self
    }

    /// Channel settings; `handshake_timeout` also bounds the wait for the
    /// `SpawnSpec`.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The identity the parent assigned.
    pub fn aid(&self) -> Aid {
        Aid {
            pid: Some(u64::from(std::process::id())),
            is_registrar: Some(false),
            ..Aid::new(self.args.uid.name.clone(), self.args.uid.uuid.clone())
        }
    }

    /// Runs the child until the parent cancels it or goes away.
    ///
    /// # Errors
    /// The parent could not be reached, the spawn handshake failed, or a
    /// `bind_addrs` address could not be listened on. Failing to register
    /// with a registrar is only logged: the parent can still use us.
    pub async fn run(self) -> Result<ChildExit, ChildError> {
        let addr = self.args.parent_addr.clone();
        let connect_err = |source| ChildError::Connect {
            addr: addr.clone(),
            source,
        };
        match &addr {
            Addr::Tcp { host, port } => {
                let tcp = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(connect_err)?;
                tcp.set_nodelay(true).map_err(connect_err)?;
                let advertise = tcp.local_addr().ok().map(|a| a.ip());
                ChildRuntime { advertise, ..self }.run_on(tcp).await
            }
            #[cfg(unix)]
            Addr::Uds { dir, file } => {
                let uds = tokio::net::UnixStream::connect(std::path::Path::new(dir).join(file))
                    .await
                    .map_err(connect_err)?;
                self.run_on(uds).await
            }
            #[cfg(not(unix))]
            Addr::Uds { .. } => Err(connect_err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "Unix sockets are not supported here",
            ))),
        }
    }

    /// [`run`](Self::run) on a connection to the parent that is already
    /// open (tests use an in-memory one).
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub async fn run_on<IO>(self, io: IO) -> Result<ChildExit, ChildError>
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let me = self.aid();
        let uid = me.uid();
        let wait = self.config.handshake_timeout;

        // 1. our Aid, the parent's, then the SpawnSpec (read directly, as
        //    tractor's `_from_parent` does)
        let mut greeting = Greeting::new(io, self.config.max_frame_len);
        let profile = self
            .config
            .profile
            .unwrap_or_else(|| self.codec.wire_profile());
        greeting
            .write(&self.codec.for_profile(profile), &Msg::from(me.clone()))
            .await?;
        let parent = greeting.read_aid(&self.codec, wait).await?;
        let spec = match greeting.read(&self.codec, "SpawnSpec", wait, false).await? {
            Msg::SpawnSpec(spec) => *spec,
            other => return Err(ChildError::NoSpawnSpec(other.kind().to_string())),
        };
        tracing::debug!(parent = %parent.uid(), me = %uid, modules = ?spec.enable_modules, "got the SpawnSpec");
        let mut endpoints = self.endpoints;
        if self.enabled_only {
            endpoints.retain_namespaces(|ns| {
                ns == "self" || spec.enable_modules.iter().any(|(module, _)| module == ns)
            });
        }
        let peer = Peer::new(&uid.name, self.codec.clone())
            .aid(me)
            .endpoints(endpoints)
            .config(self.config);

        // 2. listen where told, and register that address
        let (listener, bound) = listen(&spec, self.advertise).await?;
        let served = peer.clone();
        // `self.cancel` from any peer stops the actor, as in tractor
        let cancelled = tokio_util::sync::CancellationToken::new();
        let cancel_from_peer = cancelled.clone();
        let acceptor = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let (tcp, from) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(conn) => conn,
                        Err(e) => {
                            tracing::warn!("accept: {e}");
                            tokio::time::sleep(super::nursery::ACCEPT_BACKOFF).await;
                            continue;
                        }
                    },
                    // reap finished connections as they end
                    Some(_) = conns.join_next(), if !conns.is_empty() => continue,
                };
                let _ = tcp.set_nodelay(true);
                let (peer, cancelled) = (served.clone(), cancel_from_peer.clone());
                conns.spawn(async move {
                    match peer.accept(tcp).await {
                        Ok(chan) => tokio::select! {
                            // a canceller that hangs up at once closes the
                            // channel too: the cancel must win
                            biased;
                            () = chan.cancel_requested() => {
                                tracing::debug!(peer = %chan.peer(), "cancelled by a peer");
                                cancelled.cancel();
                                let _ = chan.close().await;
                            }
                            () = chan.closed() => {}
                        },
                        Err(e) => tracing::debug!(%from, "refused a connection: {e}"),
                    }
                });
            }
        });
        for reg in &spec.reg_addrs {
            registry_call(&peer, reg, "register", |r| {
                let (uid, bound) = (uid.clone(), bound.clone());
                async move { r.register(&uid, &bound).await }
            })
            .await;
        }

        // 3. serve the parent link until cancelled or orphaned
        let chan: Channel<C> = peer.channel(greeting.into_transport(true)).await?;
        let exit = tokio::select! {
            biased;
            () = chan.cancel_requested() => ChildExit::Cancelled,
            () = cancelled.cancelled() => ChildExit::Cancelled,
            () = chan.closed() => ChildExit::ParentGone,
        };
        tracing::debug!(me = %uid, ?exit, "child stopping");

        // 4. unregister on a fresh connection (as tractor), stop listening,
        //    flush the parent link (our CancelAck) and hang up
        if exit == ChildExit::Cancelled {
            for reg in &spec.reg_addrs {
                registry_call(&peer, reg, "unregister", |r| {
                    let uid = uid.clone();
                    async move { r.unregister(&uid).await }
                })
                .await;
            }
        }
        acceptor.abort();
        if let Err(e) = chan.close().await {
            tracing::debug!("closing the parent link: {e}");
        }
        Ok(exit)
    }
}

/// Binds the first `bind_addrs` address (default `127.0.0.1:0`); the
/// listener and the address to register: the port it really has, and for
/// a wildcard host (`0.0.0.0`, `::`) one that others can reach, `advertise`
/// (else loopback).
async fn listen(
    spec: &SpawnSpec,
    advertise: Option<std::net::IpAddr>,
) -> Result<(TcpListener, Addr), ChildError> {
    let want = spec
        .bind_addrs
        .as_ref()
        .and_then(|a| a.first().cloned())
        .unwrap_or(Addr::Tcp {
            host: "127.0.0.1".into(),
            port: 0,
        });
    let bind_err = |source| ChildError::Bind {
        addr: want.clone(),
        source,
    };
    let Addr::Tcp { host, port } = &want else {
        return Err(bind_err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "only TCP bind addresses are supported",
        )));
    };
    let listener = TcpListener::bind((host.as_str(), *port))
        .await
        .map_err(bind_err)?;
    let local = listener.local_addr().map_err(bind_err)?;
    let host = if local.ip().is_unspecified() {
        let loopback = match local.ip() {
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        };
        advertise
            .filter(|ip| !ip.is_unspecified())
            .unwrap_or(loopback)
            .to_string()
    } else {
        host.clone()
    };
    Ok((
        listener,
        Addr::Tcp {
            host,
            port: local.port(),
        },
    ))
}

/// One registry RPC on its own connection, bounded; failures are logged.
async fn registry_call<C, F, Fut>(peer: &Peer<C>, registrar: &Addr, what: &str, call: F)
where
    C: Codec,
    F: FnOnce(RegistryClient<C>) -> Fut,
    Fut: std::future::Future<Output = Result<(), crate::registry::RegistryError>>,
{
    let job = async {
        let client = RegistryClient::connect(peer, registrar).await?;
        call(client).await
    };
    match tokio::time::timeout(REGISTRY_TIMEOUT, job).await {
        Ok(Ok(())) => tracing::debug!(%registrar, "{what}ed"),
        Ok(Err(e)) => tracing::warn!(%registrar, "could not {what}: {e}"),
        Err(_) => {
            tracing::warn!(%registrar, "could not {what}: no answer within {REGISTRY_TIMEOUT:?}")
        }
    }
}
