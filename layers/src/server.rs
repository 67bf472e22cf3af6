//! Serving: an accept loop that turns every connection of a listener into
//! a [`Channel`] of a [`Peer`], keeps it alive while the peer talks, and
//! shuts down gracefully.
//!
//! [`Peer::serve_tcp`], [`Peer::serve_unix`] and [`Peer::serve`] start one
//! and return its [`Server`] handle: the bound address, the live channels,
//! a peer's `self.cancel` request, and [`Server::shutdown`].
//!
//! The loop is built to outlive hostile or unlucky conditions:
//!
//! - each connection's handshake runs in its own task, so a peer that
//!   connects and says nothing (until
//!   [`Config::handshake_timeout`](crate::peer::Config::handshake_timeout)) does
//!   not hold up the next one;
//! - accepted TCP sockets get `TCP_NODELAY` (small request/reply messages
//!   would otherwise wait for delayed ACKs);
//! - a connection beyond [`ServeConfig::max_connections`] is accepted and
//!   closed at once, before the process runs out of file descriptors;
//! - an accept error (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`, ...) is
//!   logged and retried after [`ServeConfig::accept_backoff`]; a connection
//!   that died before it was accepted (`ECONNABORTED`) is skipped. No
//!   accept error ends the server, and live channels keep being served.
//!
//! # Example
//!
//! ```
//! use scipp_layers::{peer::Peer, route::Endpoints};
//! use scipp_codecs::msgpack::MsgpackCodec;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! #[derive(serde::Deserialize)]
//! struct Add { a: i64, b: i64 }
//! let mut endpoints = Endpoints::new();
//! endpoints.rpc("calc", "add", |kw: Add| async move { Ok(kw.a + kw.b) });
//! let server = Peer::new("calc", MsgpackCodec::new())
//!     .endpoints(endpoints)
//!     .serve_tcp("127.0.0.1:0")
//!     .await?;
//!
//! let client = Peer::new("client", MsgpackCodec::new());
//! let chan = client.connect_tcp(server.local_addr().to_string()).await?;
//! let sum: i64 = chan.rpc("calc", "add", &std::collections::BTreeMap::from([("a", 2), ("b", 3)])).await?;
//! assert_eq!(sum, 5);
//!
//! server.shutdown().await?; // stop accepting, close every channel
//! chan.closed().await;
//! # Ok(()) }
//! ```

use crate::channel::SHUTDOWN_GRACE;
use crate::peer::{Channel, ConnectInfo, Peer, PeerError};
use scipp_codecs::msg::{Addr, Uid};
use scipp_codecs::Codec;
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Descriptors [`ServeConfig::default`] leaves to the rest of the process
/// (standard streams, the listener, the runtime's own, log files, outgoing
/// connections such as a registry's, and the one a refused connection
/// holds for a moment) when it derives the connection limit from the
/// process's file limit.
pub const FD_HEADROOM: usize = 64;

/// The connection limit used when the process's file limit is unknown
/// (not Linux): 1024.
pub const FALLBACK_MAX_CONNECTIONS: usize = 1024;

/// Settings of a [`Server`], with documented defaults.
///
/// ```
/// use std::time::Duration;
/// use scipp_layers::{peer::Peer, server::ServeConfig};
/// use scipp_codecs::msgpack::MsgpackCodec;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let config = ServeConfig {
///     max_connections: 100,
///     shutdown_timeout: Duration::from_secs(10),
///     ..ServeConfig::default()
/// };
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let server = Peer::new("server", MsgpackCodec::new()).serve_with(listener, config);
/// assert_eq!(server.connections(), 0);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Connections held at once (handshaking or live); one more is
    /// accepted and closed at once. Default: the process's soft file limit
    /// (`RLIMIT_NOFILE`, read from `/proc/self/limits`) minus
    /// [`FD_HEADROOM`], at least 1; [`FALLBACK_MAX_CONNECTIONS`] where that
    /// limit cannot be read. Each connection costs one descriptor, so the
    /// server refuses connections before `accept` fails with `EMFILE`, and
    /// the process keeps descriptors for everything else it does.
    pub max_connections: usize,
    /// How long to wait before accepting again after an accept error such
    /// as `EMFILE` or `ENOBUFS`: 50 ms. Short, so the server serves again
    /// soon after descriptors free up; long enough that a persistent error
    /// does not spin a core.
    pub accept_backoff: Duration,
    /// How long [`Server::shutdown`] waits for every channel to write what
    /// it has queued and hang up before it drops the rest: 3 s (each
    /// channel's own flush is bounded by
    /// [`SHUTDOWN_GRACE`], 1 s).
    pub shutdown_timeout: Duration,
    /// Serve over TLS: every accepted connection does the TLS handshake
    /// (bounded by the acceptor's timeout) before the SCIPP one; a client
    /// refused there never reaches the stack. Default: plain.
    #[cfg(feature = "tls")]
    pub tls: Option<std::sync::Arc<crate::tls::TlsAcceptor>>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_connections: default_max_connections(),
            accept_backoff: Duration::from_millis(50),
            shutdown_timeout: 3 * SHUTDOWN_GRACE,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// The default of [`ServeConfig::max_connections`]: the soft file limit
/// minus [`FD_HEADROOM`] (at least 1), or [`FALLBACK_MAX_CONNECTIONS`].
///
/// ```
/// let n = scipp_layers::server::default_max_connections();
/// assert!(n >= 1);
/// ```
pub fn default_max_connections() -> usize {
    match open_files_limit() {
        Some(limit) => limit.saturating_sub(FD_HEADROOM).max(1),
        None => FALLBACK_MAX_CONNECTIONS,
    }
}

/// The soft `RLIMIT_NOFILE` of this process, from `/proc/self/limits`
/// (`None` when unreadable; `usize::MAX` when unlimited).
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    if soft == "unlimited" {
        return Some(usize::MAX);
    }
    soft.parse().ok()
}

/// Why [`Server::shutdown`] did not end cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShutdownError {
    /// Some connections had not closed when the timeout ran out; they were
    /// dropped.
    #[error("{open} connection(s) did not close within {after:?}; dropped")]
    Timeout {
        /// Connections still open at the deadline.
        open: usize,
        /// The configured [`ServeConfig::shutdown_timeout`].
        after: Duration,
    },
}

/// A listening socket a [`Server`] accepts from: TCP or a Unix socket.
///
/// ```
/// use scipp_layers::server::Listener;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let listener = Listener::from(tokio::net::TcpListener::bind("127.0.0.1:0").await?);
/// assert!(matches!(listener, Listener::Tcp(_)));
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Listener {
    /// A TCP listener; accepted sockets get `TCP_NODELAY`.
    Tcp(tokio::net::TcpListener),
    /// A Unix socket listener; the server removes its socket file when it
    /// shuts down.
    #[cfg(unix)]
    Unix(tokio::net::UnixListener),
}

impl From<tokio::net::TcpListener> for Listener {
    fn from(l: tokio::net::TcpListener) -> Self {
        Listener::Tcp(l)
    }
}

#[cfg(unix)]
impl From<tokio::net::UnixListener> for Listener {
    fn from(l: tokio::net::UnixListener) -> Self {
        Listener::Unix(l)
    }
}

/// The listen backlog of [`Listener::bind_tcp`]: 1024 connections the
/// kernel completes before they are accepted (std and tokio use 128). A
/// burst of connections beyond the backlog waits for SYN retransmits
/// (1 s, 3 s, ...) while the server is busy or out of descriptors.
pub const LISTEN_BACKLOG: u32 = 1024;

impl Listener {
    /// Binds a TCP listener on `addr` (the first address it resolves to
    /// that binds), with `SO_REUSEADDR` and a backlog of
    /// [`LISTEN_BACKLOG`].
    ///
    /// ```
    /// use scipp_layers::server::Listener;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let listener = Listener::bind_tcp("127.0.0.1:0").await?;
    /// assert!(listener.local_addr()?.to_string().starts_with("127.0.0.1:"));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `addr` does not resolve, or no address it names can be bound.
    pub async fn bind_tcp(addr: impl tokio::net::ToSocketAddrs) -> io::Result<Listener> {
        let mut last = None;
        for addr in tokio::net::lookup_host(addr).await? {
            let socket = match addr {
                std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
            };
            #[cfg(unix)]
            socket.set_reuseaddr(true)?;
            match socket
                .bind(addr)
                .and_then(|()| socket.listen(LISTEN_BACKLOG))
            {
                Ok(listener) => return Ok(Listener::Tcp(listener)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the address resolved to nothing",
            )
        }))
    }

    /// Where peers reach this listener, as registry entries name it. A
    /// relative Unix socket path is made absolute.
    ///
    /// # Errors
    /// The socket's address cannot be read, or a Unix listener has no
    /// path.
    pub fn local_addr(&self) -> io::Result<Addr> {
        match self {
            Listener::Tcp(l) => {
                let a = l.local_addr()?;
                Ok(Addr::Tcp {
                    host: a.ip().to_string(),
                    port: a.port(),
                })
            }
            #[cfg(unix)]
            Listener::Unix(l) => {
                let path = l.local_addr()?;
                let path = path.as_pathname().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "an unnamed Unix socket")
                })?;
                let path = std::path::absolute(path)?;
                Ok(Addr::Uds {
                    dir: path
                        .parent()
                        .map(|d| d.display().to_string())
                        .unwrap_or_default(),
                    file: path
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                })
            }
        }
    }

    #[cfg(unix)]
    fn unix_path(&self) -> Option<std::path::PathBuf> {
        match self {
            Listener::Unix(l) => l.local_addr().ok()?.as_pathname().map(Into::into),
            Listener::Tcp(_) => None,
        }
    }
}

/// The live connections of a server.
#[derive(Debug, Default)]
struct Live {
    next_id: u64,
    /// Channels past their handshake, by connection id.
    channels: HashMap<u64, Uid>,
}

#[derive(Debug)]
struct State {
    /// Cancelled by [`Server::shutdown`] (or dropping the handle).
    stop: CancellationToken,
    /// Cancelled when any peer asks this actor to cancel (`self.cancel`).
    cancel_requested: CancellationToken,
    live: Mutex<Live>,
    /// How many connections are held, and how many of them are channels.
    counts: watch::Sender<Counts>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    /// Accepted connections held (handshaking or live).
    held: usize,
    /// Of those, channels past their handshake.
    channels: usize,
}

impl State {
    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        // each critical section is one map operation
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn admit(self: &Arc<Self>) -> Admitted {
        self.counts.send_modify(|c| c.held += 1);
        let mut live = self.live();
        live.next_id += 1;
        Admitted {
            state: self.clone(),
            id: live.next_id,
        }
    }
}

/// One accepted connection's place in the count; dropping it frees it.
struct Admitted {
    state: Arc<State>,
    id: u64,
}

impl Admitted {
    fn serving(&self, peer: Uid) {
        self.state.live().channels.insert(self.id, peer);
        self.state.counts.send_modify(|c| c.channels += 1);
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let was_channel = self.state.live().channels.remove(&self.id).is_some();
        self.state.counts.send_modify(|c| {
            c.held -= 1;
            c.channels -= usize::from(was_channel);
        });
    }
}

/// A running server: the handle [`Peer::serve`] returns.
///
/// Dropping it stops the server as [`shutdown`](Server::shutdown) does,
/// in the background, without waiting.
#[derive(Debug)]
pub struct Server {
    local_addr: Addr,
    state: Arc<State>,
    accept: Option<tokio::task::JoinHandle<()>>,
    shutdown_timeout: Duration,
}

impl<C: Codec> Peer<C> {
    /// Serves this peer's endpoints on `listener` with the default
    /// [`ServeConfig`]. Must be called inside a tokio runtime.
    ///
    /// ```
    /// use scipp_layers::peer::Peer;
    /// use scipp_codecs::msgpack::MsgpackCodec;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let server = Peer::new("server", MsgpackCodec::new()).serve(listener);
    /// println!("listening on {}", server.local_addr());
    /// # Ok(()) }
    /// ```
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn serve(&self, listener: impl Into<Listener>) -> Server {
        self.serve_with(listener, ServeConfig::default())
    }

    /// [`serve`](Self::serve) with these settings.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn serve_with(&self, listener: impl Into<Listener>, config: ServeConfig) -> Server {
        let listener = listener.into();
        let local_addr = listener.local_addr().unwrap_or_else(|e| {
            // an unnamed Unix socket, say: peers cannot dial it by address
            tracing::warn!("serving on a listener without an address: {e}");
            Addr::Tcp {
                host: String::new(),
                port: 0,
            }
        });
        let state = Arc::new(State {
            stop: CancellationToken::new(),
            cancel_requested: CancellationToken::new(),
            live: Mutex::new(Live::default()),
            counts: watch::Sender::new(Counts::default()),
        });
        let shutdown_timeout = config.shutdown_timeout;
        let accept = tokio::spawn(accept_loop(
            Arc::new(self.clone()),
            listener,
            state.clone(),
            config,
        ));
        Server {
            local_addr,
            state,
            accept: Some(accept),
            shutdown_timeout,
        }
    }

    /// Binds a TCP listener on `addr` ([`Listener::bind_tcp`]; port 0
    /// picks one, see [`Server::local_addr`]) and serves on it.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn serve_tcp(&self, addr: impl tokio::net::ToSocketAddrs) -> io::Result<Server> {
        Ok(self.serve(Listener::bind_tcp(addr).await?))
    }

    /// Binds a Unix socket at `path` and serves on it; the socket file is
    /// removed when the server shuts down. An existing file at `path` is an
    /// error (`AddrInUse`): remove a stale one first.
    ///
    /// ```
    /// use scipp_layers::peer::Peer;
    /// use scipp_codecs::msgpack::MsgpackCodec;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let path = std::env::temp_dir().join(format!("scipp-doc-{}.sock", std::process::id()));
    /// let server = Peer::new("server", MsgpackCodec::new()).serve_unix(&path)?;
    /// let chan = Peer::new("client", MsgpackCodec::new()).connect_unix(&path).await?;
    /// server.shutdown().await?;
    /// chan.closed().await;
    /// assert!(!path.exists());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The path cannot be bound.
    #[cfg(unix)]
    pub fn serve_unix(&self, path: impl AsRef<std::path::Path>) -> io::Result<Server> {
        Ok(self.serve(tokio::net::UnixListener::bind(path)?))
    }
}

impl Server {
    /// Where peers reach this server (TCP `host:port` or a Unix socket
    /// path; `Display` prints it so). Empty (`:0`) for a listener whose
    /// address cannot be read, such as an unnamed Unix socket.
    pub fn local_addr(&self) -> &Addr {
        &self.local_addr
    }

    /// Connections held now, those still in their handshake included.
    pub fn connections(&self) -> usize {
        self.state.counts.borrow().held
    }

    /// The peers with a live channel (past the handshake), in no order.
    pub fn channels(&self) -> Vec<Uid> {
        self.state.live().channels.values().cloned().collect()
    }

    /// Resolves once the number of held connections (handshakes
    /// included) satisfies `pred`, e.g. `|n| n == 0`.
    pub async fn wait_connections(&self, mut pred: impl FnMut(usize) -> bool) {
        let mut rx = self.state.counts.subscribe();
        // the sender lives as long as `self`
        let _ = rx.wait_for(|c| pred(c.held)).await;
    }

    /// Resolves once the number of live channels (past the handshake)
    /// satisfies `pred`, e.g. `|n| n == 2`.
    ///
    /// ```
    /// use scipp_layers::peer::Peer;
    /// use scipp_codecs::msgpack::MsgpackCodec;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = Peer::new("server", MsgpackCodec::new()).serve_tcp("127.0.0.1:0").await?;
    /// let client = Peer::new("client", MsgpackCodec::new());
    /// let chan = client.connect_tcp(server.local_addr().to_string()).await?;
    /// server.wait_channels(|n| n == 1).await;
    /// assert_eq!(server.channels(), [client.uid()]);
    /// drop(chan);
    /// server.wait_connections(|n| n == 0).await;
    /// # Ok(()) }
    /// ```
    pub async fn wait_channels(&self, mut pred: impl FnMut(usize) -> bool) {
        let mut rx = self.state.counts.subscribe();
        let _ = rx.wait_for(|c| pred(c.channels)).await;
    }

    /// Resolves when a peer has asked this actor to cancel itself
    /// (`self.cancel`): its ack is queued, and the channel stays open until
    /// the server shuts down. What to do (tractor's actor exits) is up to
    /// the caller, e.g. `server.cancel_requested().await;
    /// server.shutdown().await`.
    pub async fn cancel_requested(&self) {
        self.state.cancel_requested.cancelled().await;
    }

    /// Shuts down gracefully: stops accepting (a Unix socket file is
    /// removed), abandons handshakes in progress, and closes every channel
    /// so what it has queued (replies, acks) is written before it hangs
    /// up; running endpoint tasks are cancelled. Bounded by
    /// [`ServeConfig::shutdown_timeout`].
    ///
    /// # Errors
    /// [`ShutdownError::Timeout`] when some connections were still open at
    /// the deadline; they are dropped.
    pub async fn shutdown(mut self) -> Result<(), ShutdownError> {
        self.state.stop.cancel();
        let Some(accept) = self.accept.take() else {
            return Ok(());
        };
        let abort = accept.abort_handle();
        match tokio::time::timeout(self.shutdown_timeout, accept).await {
            Ok(_) => Ok(()),
            Err(_) => {
                abort.abort();
                Err(ShutdownError::Timeout {
                    open: self.connections(),
                    after: self.shutdown_timeout,
                })
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.state.stop.cancel();
    }
}

/// Whether an accept error concerns only the connection being accepted
/// (it died before we took it): skip it and accept the next one.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

async fn accept_loop<C: Codec>(
    peer: Arc<Peer<C>>,
    listener: Listener,
    state: Arc<State>,
    config: ServeConfig,
) {
    let mut connections = JoinSet::new();
    // log the first of a run of accept errors or refusals, not each
    let (mut failing, mut refusing) = (false, false);
    loop {
        let accepted = tokio::select! {
            biased;
            () = state.stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = accept(&listener) => accepted,
        };
        let (io, connect, from) = match accepted {
            Ok(accepted) => {
                failing = false;
                accepted
            }
            Err(e) if is_connection_error(&e) => {
                tracing::debug!("accept: {e}; skipping that connection");
                continue;
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(
                        "accept: {e}; retrying every {:?} (live connections go on)",
                        config.accept_backoff
                    );
                    failing = true;
                } else {
                    tracing::debug!("accept: {e}");
                }
                tokio::select! {
                    () = state.stop.cancelled() => break,
                    () = tokio::time::sleep(config.accept_backoff) => continue,
                }
            }
        };
        if state.counts.borrow().held >= config.max_connections {
            if !refusing {
                tracing::warn!(
                    limit = config.max_connections,
                    "connection limit reached: refusing new connections"
                );
                refusing = true;
            }
            tracing::debug!("refused a connection from {from}");
            drop(io);
            continue;
        }
        refusing = false;
        let admitted = state.admit();
        connections.spawn(serve_connection(
            peer.clone(),
            io,
            connect,
            from,
            state.clone(),
            admitted,
            #[cfg(feature = "tls")]
            config.tls.clone(),
        ));
    }
    #[cfg(unix)]
    if let Some(path) = listener.unix_path() {
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::debug!("removing {}: {e}", path.display());
        }
    }
    drop(listener);
    // every connection task sees `stop` and hangs up; `Server::shutdown`
    // bounds this wait (and aborting this task aborts what is left)
    while connections.join_next().await.is_some() {}
}

/// An accepted connection, boxed over the transport.
enum Accepted {
    Tcp(tokio::net::TcpStream),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

/// Accepts the next connection: the stream, what is known about its
/// other side, and how to name it in logs.
async fn accept(listener: &Listener) -> io::Result<(Accepted, ConnectInfo, String)> {
    match listener {
        Listener::Tcp(l) => {
            let (tcp, from) = l.accept().await?;
            // the socket may already be reset; then the handshake fails
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!("{from}: TCP_NODELAY: {e}");
            }
            let connect = ConnectInfo::new().remote_addr(from);
            Ok((Accepted::Tcp(tcp), connect, from.to_string()))
        }
        #[cfg(unix)]
        Listener::Unix(l) => {
            let (uds, _) = l.accept().await?;
            let from = "a Unix socket".to_owned();
            Ok((Accepted::Unix(uds), ConnectInfo::new(), from))
        }
    }
}

async fn serve_connection<C: Codec>(
    peer: Arc<Peer<C>>,
    io: Accepted,
    connect: ConnectInfo,
    from: String,
    state: Arc<State>,
    admitted: Admitted,
    #[cfg(feature = "tls")] tls: Option<Arc<crate::tls::TlsAcceptor>>,
) {
    let handshake = async {
        #[cfg(feature = "tls")]
        if let Some(tls) = tls {
            let accepted = match io {
                Accepted::Tcp(tcp) => tls.accept_with(&peer, tcp, connect).await,
                #[cfg(unix)]
                Accepted::Unix(uds) => tls.accept_with(&peer, uds, connect).await,
            };
            return match accepted {
                Ok((chan, identity)) => {
                    if let Some(identity) = identity {
                        tracing::info!(names = ?identity.dns_names(), "{from}: TLS client certificate");
                    }
                    Ok(chan)
                }
                Err(crate::tls::TlsError::Peer(e)) => Err(e),
                Err(e) => Err(PeerError::Io(io::Error::other(e))),
            };
        }
        // split without a lock (see `Peer::handshake_halves`)
        match io {
            Accepted::Tcp(tcp) => {
                let (read, write) = tcp.into_split();
                peer.handshake_halves(read, write, true, connect).await
            }
            #[cfg(unix)]
            Accepted::Unix(uds) => {
                let (read, write) = uds.into_split();
                peer.handshake_halves(read, write, true, connect).await
            }
        }
    };
    let chan = tokio::select! {
        chan = handshake => chan,
        () = state.stop.cancelled() => return,
    };
    match chan {
        Ok(chan) => serve_channel(chan, &from, &state, &admitted).await,
        Err(PeerError::Probed(uid)) => tracing::info!("{from}: registry probe from {uid} answered"),
        Err(e) => tracing::info!("{from}: {e}"),
    }
}

async fn serve_channel<C: Codec>(chan: Channel<C>, from: &str, state: &State, admitted: &Admitted) {
    let who = chan.peer().clone();
    admitted.serving(who.clone());
    tracing::info!("serving {who} ({from})");
    let mut cancel_seen = false;
    loop {
        tokio::select! {
            // first: a peer that cancels us and hangs up at once (it has its
            // CancelAck) closes the channel too, and the cancel must count
            biased;
            () = chan.cancel_requested(), if !cancel_seen => {
                tracing::info!("{who} asked us to cancel (self.cancel)");
                state.cancel_requested.cancel();
                cancel_seen = true;
            }
            () = chan.closed() => {
                tracing::info!("{who} disconnected");
                return;
            }
            () = state.stop.cancelled() => break,
        }
    }
    if let Err(e) = chan.close().await {
        tracing::debug!("closing the channel to {who}: {e}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_limit_leaves_headroom_below_the_file_limit() {
        if let Some(limit) = super::open_files_limit() {
            let n = super::default_max_connections();
            assert_eq!(n, limit.saturating_sub(super::FD_HEADROOM).max(1));
        }
    }
}
