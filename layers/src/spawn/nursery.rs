//! The parent side: a nursery that spawns child processes, hands out
//! portals to them, supervises them, and never lets one outlive it.

use super::args::ChildArgs;
use super::command::{find_module_file, ChildSpec, TRACTOR_DEBUG_MODULE};
use super::config::NurseryConfig;
use super::error::{ChildFailure, FailureKind, Failures, NurseryError};
use super::handoff::{profile_for, Greeting};
use super::portal::Portal;
use super::spec::SpawnPlan;
use super::supervise::{monitor, ChildState, Supervision};
use crate::context::ContextError;
use crate::peer::Peer;
use crate::registry::Registrar;
use crate::route::Endpoints;
use scipp_codecs::msg::{Addr, Aid, Msg, Uid};
use scipp_codecs::Codec;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

/// How long the acceptor pauses after a failed `accept` (e.g. no file
/// descriptor left), instead of spinning.
pub(crate) const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A connect-back waiting for its `start_actor`.
struct Arrival {
    greeting: Greeting<TcpStream>,
    aid: Aid,
}

struct Inner<C: Codec> {
    peer: Peer<C>,
    codec: C,
    config: NurseryConfig,
    listen: Addr,
    /// The host children bind to (`bind_addrs`), port 0.
    bind_host: String,
    reg_addr: Addr,
    pending: Mutex<HashMap<String, oneshot::Sender<Arrival>>>,
    children: Mutex<Vec<Arc<ChildState<C>>>>,
    supervision: Arc<Supervision>,
    debug_module: tokio::sync::Mutex<HashMap<std::path::PathBuf, String>>,
}

impl<C: Codec> Inner<C> {
    fn children(&self) -> Vec<Arc<ChildState<C>>> {
        self.children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops every child still running, concurrently.
    async fn stop_all(&self) {
        let stops: Vec<_> = self
            .children()
            .into_iter()
            .map(|child| {
                let config = self.config.clone();
                async move {
                    child.stop(&config).await;
                }
            })
            .collect();
        futures_util::future::join_all(stops).await;
    }
}

/// A nursery of child actors: tractor's `open_nursery`, from Rust.
///
/// It listens for its children's connect-backs, spawns each child with
/// tractor's `_child` command line, sends it its `SpawnSpec` and hands out
/// a [`Portal`]. It is also the children's registrar unless configured
/// otherwise.
///
/// **Supervision**: an error in any child — a [`run_in_actor`] call that
/// raises, a process that dies without being asked to, a child that never
/// connects back — cancels all its siblings (one cancels all) and is
/// reported, naming the child, by [`close`], [`wait`] and the failing
/// call.
///
/// **No child outlives it**: [`close`] cancels every child
/// (`self.cancel`), waits for its exit (bounded), kills it (SIGKILL) if it
/// lingers, and reaps it. Dropping the nursery does the same in a
/// background task; if the runtime itself goes away, the processes are
/// killed when their handles drop (`kill_on_drop`).
///
/// [`run_in_actor`]: Nursery::run_in_actor
/// [`close`]: Nursery::close
/// [`wait`]: Nursery::wait
///
/// ```no_run
/// use scipp_layers::spawn::{ChildSpec, Nursery};
/// use scipp_codecs::msgpack::MsgpackCodec;
/// use std::collections::BTreeMap;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let nursery = Nursery::builder("parent", MsgpackCodec::new()).open().await?;
/// let child = ChildSpec::program("worker", "scipp", ["child"]);
/// let portal = nursery.start_actor(child).await?;
/// let kwargs: BTreeMap<&str, i64> = [("a", 2), ("b", 3)].into();
/// let sum: i64 = portal.rpc("scipp_peer", "add", &kwargs).await?;
/// assert_eq!(sum, 5);
/// nursery.close().await?; // cancels, waits for and reaps every child
/// # Ok(())
/// # }
/// ```
pub struct Nursery<C: Codec> {
    inner: Arc<Inner<C>>,
    acceptor: Option<tokio::task::JoinHandle<()>>,
    supervisor: Option<tokio::task::JoinHandle<()>>,
}

impl<C: Codec> std::fmt::Debug for Nursery<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nursery")
            .field("me", &self.inner.peer.uid())
            .field("listen", &self.inner.listen)
            .field("children", &self.inner.children().len())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Nursery`].
#[derive(Debug)]
pub struct NurseryBuilder<C> {
    name: String,
    codec: C,
    endpoints: Endpoints<C>,
    config: NurseryConfig,
}

impl<C: Codec> NurseryBuilder<C> {
    /// The parent's own endpoints, callable by its children.
    pub fn endpoints(mut self, endpoints: Endpoints<C>) -> Self {
        self.endpoints = endpoints;
        self
    }

    /// Uses these settings.
    pub fn config(mut self, config: NurseryConfig) -> Self {
        self.config = config;
        self
    }

    /// Runs `body` with a nursery, tractor's `async with open_nursery()`:
    /// when `body` ends (or fails), every child still running is
    /// cancelled, waited for and reaped before this returns. `body`'s
    /// error (any type a [`NurseryError`] converts into) wins; else the
    /// failures of the children, if any.
    ///
    /// ```no_run
    /// use scipp_layers::spawn::{ChildSpec, Nursery};
    /// use scipp_codecs::msgpack::MsgpackCodec;
    /// use std::collections::BTreeMap;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sum: i64 = Nursery::builder("parent", MsgpackCodec::new())
    ///     .scope(|nursery| async move {
    ///         let worker = nursery.start_actor(ChildSpec::program("w", "scipp", ["child"])).await?;
    ///         let kwargs = BTreeMap::from([("a", 2), ("b", 3)]);
    ///         Ok::<i64, Box<dyn std::error::Error>>(worker.rpc("scipp_peer", "add", &kwargs).await?)
    ///     })
    ///     .await?; // `w` is cancelled and reaped by now
    /// assert_eq!(sum, 5);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`NurseryError::Listen`], `body`'s error, or the children's
    /// failures ([`NurseryError::Failed`]), converted into `E`.
    pub async fn scope<F, Fut, T, E>(self, body: F) -> Result<T, E>
    where
        F: FnOnce(Arc<Nursery<C>>) -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
        E: From<NurseryError>,
    {
        let nursery = Arc::new(self.open().await?);
        // dropped early (the owner cancelled): the last Arc's Drop tears down
        let out = body(nursery.clone()).await;
        nursery.cancel().await;
        let waited = nursery.wait().await;
        let value = out?;
        waited?;
        Ok(value)
    }

    /// Starts listening; the nursery is ready to spawn.
    ///
    /// # Errors
    /// [`NurseryError::Listen`] if the listen address cannot be bound.
    pub async fn open(self) -> Result<Nursery<C>, NurseryError> {
        let NurseryBuilder {
            name,
            codec,
            mut endpoints,
            config,
        } = self;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(NurseryError::Listen)?;
        let local = listener.local_addr().map_err(NurseryError::Listen)?;
        // children are local: a wildcard listener is reached over loopback
        let reachable = match local.ip() {
            ip if !ip.is_unspecified() => ip,
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        };
        let listen = Addr::Tcp {
            host: reachable.to_string(),
            port: local.port(),
        };
        // children listen where their parent does (all interfaces, say)
        let bind_host = local.ip().to_string();
        let own_registrar = config.registrar.is_none();
        let registrar = own_registrar.then(Registrar::new);
        if let Some(registrar) = &registrar {
            registrar.install(&mut endpoints);
        }
        let peer = Peer::new(&name, codec.clone())
            .endpoints(endpoints)
            .config(config.peer)
            .is_registrar(own_registrar);
        let reg_addr = config.registrar.clone().unwrap_or_else(|| listen.clone());
        let inner = Arc::new(Inner {
            peer,
            codec,
            listen,
            bind_host,
            reg_addr,
            config,
            pending: Mutex::new(HashMap::new()),
            children: Mutex::new(Vec::new()),
            supervision: Arc::new(Supervision {
                registrar,
                ..Supervision::default()
            }),
            debug_module: tokio::sync::Mutex::new(HashMap::new()),
        });
        let acceptor = tokio::spawn(accept_loop(listener, inner.clone()));
        let watcher = inner.clone();
        let supervisor = tokio::spawn(async move {
            watcher.supervision.failed.cancelled().await;
            watcher.stop_all().await;
        });
        tracing::debug!(me = %inner.peer.uid(), listen = %inner.listen, "nursery open");
        Ok(Nursery {
            inner,
            acceptor: Some(acceptor),
            supervisor: Some(supervisor),
        })
    }
}

/// Accepts connections: a child's connect-back goes to its `start_actor`,
/// anything else (a registration, another peer) is served.
async fn accept_loop<C: Codec>(listener: TcpListener, inner: Arc<Inner<C>>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (tcp, from) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // e.g. out of file descriptors: let some close first
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let _ = tcp.set_nodelay(true);
        let inner = inner.clone();
        conns.spawn(async move {
            let config = &inner.config.peer;
            let mut greeting = Greeting::new(tcp, config.max_frame_len);
            let aid = match greeting
                .read_aid(&inner.codec, config.handshake_timeout)
                .await
            {
                Ok(aid) => aid,
                Err(e) => return tracing::debug!(%from, "dropped a connection: {e}"),
            };
            let waiting = inner
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&aid.uuid);
            match waiting {
                Some(tx) if tx.is_closed() => {}
                Some(tx) => {
                    let _ = tx.send(Arrival { greeting, aid });
                }
                None => match inner.peer.accept(greeting.into_transport(false)).await {
                    Ok(chan) => chan.closed().await,
                    Err(e) => tracing::debug!(%from, "refused a connection: {e}"),
                },
            }
        });
    }
}

impl<C: Codec> Nursery<C> {
    /// A nursery builder: the parent named `name`, speaking `codec`.
    pub fn builder(name: &str, codec: C) -> NurseryBuilder<C> {
        NurseryBuilder {
            name: name.to_owned(),
            codec,
            endpoints: Endpoints::new(),
            config: NurseryConfig::default(),
        }
    }

    /// The parent's uid (the `uid` of every `Start` it sends).
    pub fn uid(&self) -> Uid {
        self.inner.peer.uid()
    }

    /// Where children connect back (`--parent_addr`): the listen address,
    /// with a wildcard host replaced by loopback.
    pub fn listen_addr(&self) -> &Addr {
        &self.inner.listen
    }

    /// The pids of the children whose processes have not been reaped yet.
    pub fn live_pids(&self) -> Vec<u32> {
        self.inner
            .children()
            .iter()
            .filter(|c| !c.has_exited())
            .map(|c| c.pid)
            .collect()
    }

    /// The pids of every child ever started (exited ones included).
    pub fn all_pids(&self) -> Vec<u32> {
        self.inner.children().iter().map(|c| c.pid).collect()
    }

    /// Resolves once a child has failed (the one-cancels-all trigger).
    pub async fn failed(&self) {
        self.inner.supervision.failed.cancelled().await;
    }

    /// Spawns a child and waits (bounded) for it to connect back; returns
    /// a [`Portal`] to it once its `SpawnSpec` is sent. tractor's
    /// `start_actor`.
    ///
    /// # Errors
    /// [`NurseryError::Closing`] when the nursery is tearing down, else
    /// [`NurseryError::Failed`]: the process could not start, exited or
    /// did not connect back within
    /// [`connect_timeout`](NurseryConfig::connect_timeout) (it is then
    /// killed), or the handshake failed. Each is a failure of the nursery:
    /// its siblings are cancelled.
    pub async fn start_actor(&self, spec: ChildSpec) -> Result<Portal<C>, NurseryError> {
        let inner = &self.inner;
        if inner.supervision.closing.is_cancelled() {
            return Err(NurseryError::Closing(spec.name));
        }
        let mut modules = spec.modules.clone();
        if let Some(python) = spec.python() {
            modules.push((
                TRACTOR_DEBUG_MODULE.to_owned(),
                self.debug_module_file(python).await?,
            ));
        }
        let uid = Uid::new(spec.name.clone(), crate::new_uuid());
        let fail = |pid, kind| {
            let failure = ChildFailure {
                name: spec.name.clone(),
                uid: uid.clone(),
                pid,
                kind,
            };
            let err = NurseryError::Failed(Failures(vec![failure.clone()]));
            inner.supervision.fail(failure);
            err
        };

        let (tx, rx) = oneshot::channel();
        inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(uid.uuid.clone(), tx);
        let _slot = PendingSlot {
            pending: &inner.pending,
            uuid: &uid.uuid,
        };
        let argv = ChildArgs {
            uid: uid.clone(),
            parent_addr: inner.listen.clone(),
            loglevel: spec.loglevel.clone(),
            asyncio: spec.asyncio,
        }
        .to_argv();
        let (program, mut args) = spec.program_and_args();
        args.extend(argv.into_iter().map(Into::into));
        let mut command = tokio::process::Command::new(&program);
        command
            .args(&args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        #[cfg(unix)]
        if inner.config.own_process_group {
            command.process_group(0);
        }
        let spawned = command.spawn();
        let process = match spawned {
            Ok(p) => p,
            Err(e) => return Err(fail(None, FailureKind::Spawn(e))),
        };
        let pid = process.id().unwrap_or(0);
        tracing::debug!(child = %uid, pid, program = %program.display(), "spawned");
        let (exit_tx, exit_rx) = watch::channel(None);
        let state = Arc::new(ChildState {
            name: spec.name.clone(),
            uid: uid.clone(),
            pid,
            stopping: AtomicBool::new(false),
            stop_started: AtomicBool::new(false),
            channel: OnceLock::new(),
            exit: exit_rx,
            kill: CancellationToken::new(),
        });
        inner
            .children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(state.clone());
        tokio::spawn(monitor(
            process,
            state.clone(),
            exit_tx,
            inner.supervision.clone(),
        ));

        // the connect-back, bounded; a child that exits first is no wait
        let after = inner.config.connect_timeout;
        let arrival = tokio::select! {
            biased;
            arrival = rx => arrival.ok(),
            status = state.exited() => {
                state.stopping.store(true, Ordering::SeqCst);
                return Err(fail(Some(pid), FailureKind::NeverConnected { after, status: Some(status) }));
            }
            () = tokio::time::sleep(after) => None,
            () = inner.supervision.closing.cancelled() => {
                state.stopping.store(true, Ordering::SeqCst);
                state.kill.cancel();
                state.exited().await;
                return Err(NurseryError::Closing(spec.name));
            }
        };
        let Some(Arrival { mut greeting, aid }) = arrival else {
            state.stopping.store(true, Ordering::SeqCst);
            state.kill.cancel();
            state.exited().await;
            return Err(fail(
                Some(pid),
                FailureKind::NeverConnected {
                    after,
                    status: None,
                },
            ));
        };

        // our Aid (in the child's profile), the SpawnSpec, then the channel
        let profile = profile_for(inner.config.peer.profile, &aid);
        let codec = inner.codec.for_profile(profile);
        let plan = SpawnPlan {
            main_path: inner.config.main_path.clone(),
            debug_mode: inner.config.debug_mode,
            root_mailbox: inner.listen.clone(),
            registry_addrs: vec![inner.reg_addr.clone()],
            enable_modules: modules,
            reg_addrs: vec![inner.reg_addr.clone()],
            bind_addrs: vec![Addr::Tcp {
                host: inner.bind_host.clone(),
                port: 0,
            }],
        };
        let handshake = async {
            greeting
                .write(&codec, &Msg::from(inner.peer.aid_ref().clone()))
                .await
                .map_err(FailureKind::from)?;
            let spawn_spec = plan
                .to_spawn_spec(&codec)
                .map_err(|e| FailureKind::Handshake(e.to_string()))?;
            greeting
                .write(&codec, &Msg::from(spawn_spec))
                .await
                .map_err(FailureKind::from)?;
            inner
                .peer
                .accept(greeting.into_transport(true))
                .await
                .map_err(FailureKind::from)
        };
        let chan = match handshake.await {
            Ok(chan) => Arc::new(chan),
            Err(kind) => {
                state.stopping.store(true, Ordering::SeqCst);
                state.kill.cancel();
                state.exited().await;
                return Err(fail(Some(pid), kind));
            }
        };
        let _ = state.channel.set(chan.clone());
        tracing::debug!(child = %uid, pid, "child connected back");
        Ok(Portal {
            chan,
            state,
            config: inner.config.clone(),
        })
    }

    /// Spawns a child, calls the RPC `ns:func(**kwargs)` on it, cancels
    /// the child and returns the result: tractor's `run_in_actor` +
    /// `portal.result()`.
    ///
    /// # Errors
    /// As [`start_actor`](Self::start_actor); if the call raises or the
    /// child dies, [`NurseryError::Failed`] with that child's failure (its
    /// siblings are cancelled); if the child was cancelled because a
    /// sibling failed, [`NurseryError::Cancelled`].
    pub async fn run_in_actor<K, R>(
        &self,
        spec: ChildSpec,
        ns: &str,
        func: &str,
        kwargs: &K,
    ) -> Result<R, NurseryError>
    where
        K: Serialize + ?Sized,
        R: DeserializeOwned + 'static,
    {
        let portal = self.start_actor(spec).await?;
        let out = portal.rpc::<K, R>(ns, func, kwargs).await;
        let sup = &self.inner.supervision;
        let state = &portal.state;
        let named = |kind| ChildFailure {
            name: state.name.clone(),
            uid: state.uid.clone(),
            pid: Some(state.pid),
            kind,
        };
        match out {
            Ok(value) => {
                portal.cancel_actor().await;
                Ok(value)
            }
            // its own error, even if a sibling failed at the same moment
            Err(ContextError::Remote(remote)) if !remote.is_cancelled() => {
                let failure = named(FailureKind::Remote(remote));
                let err = NurseryError::Failed(Failures(vec![failure.clone()]));
                state.stopping.store(true, Ordering::SeqCst);
                sup.fail(failure);
                portal.cancel_actor().await;
                Err(err)
            }
            Err(e) if state.stopping.load(Ordering::SeqCst) || sup.failed.is_cancelled() => {
                // stopped by the nursery: a sibling failed, or we close;
                // or this child's own death (its monitor was first)
                tracing::debug!(child = %state.name, "run_in_actor ended by a cancel: {e}");
                state.exited().await;
                if let Some(own) = sup.failure_of(&state.uid) {
                    return Err(NurseryError::Failed(Failures(vec![own])));
                }
                Err(NurseryError::Cancelled {
                    name: state.name.clone(),
                    cause: sup.summary(),
                })
            }
            Err(ContextError::TransportClosed { .. }) => {
                let bound = self.inner.config.exit_timeout;
                match tokio::time::timeout(bound, state.exited()).await {
                    // the process died under the call: its monitor has
                    // reported it and cancelled the siblings
                    Ok(status) => Err(NurseryError::Failed(Failures(vec![named(
                        FailureKind::Exited(status),
                    )]))),
                    Err(_) => {
                        // the link is gone but the process lives on
                        let status = portal.cancel_actor().await;
                        let failure = named(FailureKind::LinkLost(status));
                        sup.fail(failure.clone());
                        Err(NurseryError::Failed(Failures(vec![failure])))
                    }
                }
            }
            Err(source) => {
                portal.cancel_actor().await;
                Err(NurseryError::Call {
                    name: state.name.clone(),
                    source,
                })
            }
        }
    }

    /// Cancels every child (`self.cancel`), waits for each to exit
    /// (bounded), kills and reaps the ones that linger. No new child is
    /// started afterwards. tractor's `ActorNursery.cancel()`.
    pub async fn cancel(&self) {
        self.inner.supervision.closing.cancel();
        self.inner.stop_all().await;
    }

    /// Waits until every child has exited on its own or been stopped; the
    /// failures, if any child failed (all its siblings are then cancelled
    /// first). A child started with [`start_actor`](Self::start_actor)
    /// runs until cancelled, as in tractor: without a failure, this waits
    /// for it. Failures reported here are not reported again by
    /// [`close`](Self::close).
    ///
    /// # Errors
    /// [`NurseryError::Failed`] naming each failed child.
    pub async fn wait(&self) -> Result<(), NurseryError> {
        loop {
            let children = self.inner.children();
            let running: Vec<_> = children.iter().filter(|c| !c.has_exited()).collect();
            if running.is_empty() {
                break;
            }
            futures_util::future::join_all(running.iter().map(|c| c.exited())).await;
        }
        match self.inner.supervision.take() {
            failures if failures.is_empty() => Ok(()),
            failures => Err(NurseryError::Failed(Failures(failures))),
        }
    }

    /// Leaves the nursery: cancels every child still running, waits for
    /// all (bounded), kills and reaps the rest, stops listening.
    ///
    /// # Errors
    /// [`NurseryError::Failed`] naming every child that failed during the
    /// nursery's life (a group when several did).
    pub async fn close(mut self) -> Result<(), NurseryError> {
        self.cancel().await;
        let out = self.wait().await;
        if let Some(a) = self.acceptor.take() {
            a.abort();
        }
        if let Some(s) = self.supervisor.take() {
            s.abort();
        }
        out
    }

    async fn debug_module_file(&self, python: &std::path::Path) -> Result<String, NurseryError> {
        let mut cache = self.inner.debug_module.lock().await;
        if let Some(path) = cache.get(python) {
            return Ok(path.clone());
        }
        let path = find_module_file(python, TRACTOR_DEBUG_MODULE)
            .await
            .map_err(|why| NurseryError::Module {
                module: TRACTOR_DEBUG_MODULE.to_owned(),
                python: python.display().to_string(),
                why,
            })?;
        cache.insert(python.to_owned(), path.clone());
        Ok(path)
    }
}

impl<C: Codec> Drop for Nursery<C> {
    /// Left without [`close`](Nursery::close) (an early return, a panic, a
    /// dropped task): every child is cancelled and reaped in the
    /// background, bounded as in `close`. Without a runtime, the processes
    /// are killed as their handles drop.
    fn drop(&mut self) {
        let (Some(acceptor), supervisor) = (self.acceptor.take(), self.supervisor.take()) else {
            return;
        };
        let inner = self.inner.clone();
        inner.supervision.closing.cancel();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    inner.stop_all().await;
                    acceptor.abort();
                    if let Some(s) = supervisor {
                        s.abort();
                    }
                });
            }
            Err(_) => {
                for child in inner.children() {
                    child.kill.cancel();
                }
            }
        }
    }
}

/// A child's connect-back slot, removed however `start_actor` ends
/// (returns, fails, or is dropped by an owner that gave up).
struct PendingSlot<'a> {
    pending: &'a Mutex<HashMap<String, oneshot::Sender<Arrival>>>,
    uuid: &'a str,
}

impl Drop for PendingSlot<'_> {
    fn drop(&mut self) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(self.uuid);
    }
}
