//! Context routing: messages demultiplexed by `cid` to per-context queues,
//! and `Start`s dispatched to registered [`Endpoints`].
//!
//! The [`Router`] is the top of a channel's receive stack (a
//! `Service<Inbound>`). Per message it:
//!
//! - delivers it to the queue of its context (waiting when the queue is
//!   full: that wait is the channel's backpressure, see [`Overrun`]);
//! - on a `Start`, answers `StartAck` and spawns the endpoint; an unknown
//!   endpoint gets an `Error` (as tractor's `unknown_func.json`) and the
//!   channel goes on;
//! - answers the runtime RPCs `self._cancel_task` and `self.cancel` with
//!   tractor's replies, whatever payload spec is in force;
//! - drops late messages of finished contexts (quietly, as tractor does),
//!   and surfaces errors that belong to no context to the channel owner.

mod endpoint;
pub(crate) mod queue;
pub(crate) mod state;

pub use self::endpoint::{Call, Endpoints};
pub use self::state::{Orphan, Overrun};

use crate::context::{ChildContext, ChildRunner, ContextError, SendNow};
use crate::policy::Verdicts;
use crate::relay::RemoteError;
use crate::{BoxError, Inbound};
use scipp_codecs::msg::{self, Cid, FuncType, Msg, StartAck};
use scipp_codecs::Codec;
use state::{Delivery, RouteCache, Shared, TryDeliver};
use std::future::Future;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;
use tower::{Service, ServiceExt};

/// How long a `_cancel_task` waits for the cancelled task to finish
/// before acking anyway.
const CANCEL_WAIT: Duration = Duration::from_secs(5);

/// The top of a channel's receive stack: routes each item to its context.
/// Built by [`Channel`](crate::peer::Channel); not constructed directly.
pub struct Router<C> {
    shared: Arc<Shared<C>>,
    /// The peer's policy, for invalid items that belong to no context;
    /// made when the first one arrives (most channels never see one).
    orphans: Arc<tokio::sync::Mutex<Option<Verdicts>>>,
    /// The last context delivered to (see [`Shared::try_deliver`]).
    route_cache: RouteCache,
}

impl<C> Clone for Router<C> {
    fn clone(&self) -> Self {
        Router {
            shared: self.shared.clone(),
            orphans: self.orphans.clone(),
            route_cache: None,
        }
    }
}

impl<C> std::fmt::Debug for Router<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("peer", &self.shared.peer)
            .finish_non_exhaustive()
    }
}

impl<C: Codec> Router<C> {
    pub(crate) fn new(shared: Arc<Shared<C>>) -> Self {
        Router {
            shared,
            orphans: Arc::default(),
            route_cache: None,
        }
    }
}

/// Most deliveries complete at once; only a full queue or a `Start` needs
/// a future of its own.
type RouterFuture = crate::future::ResponseFuture<std::future::Ready<Result<(), BoxError>>>;

impl<C: Codec> Service<Inbound> for Router<C> {
    type Response = ();
    type Error = BoxError;
    type Future = RouterFuture;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, item: Inbound) -> Self::Future {
        let done = || RouterFuture::ready(Ok(()));
        match item {
            Inbound::Msg(Msg::Start(start)) if is_plain_start(&self.shared, &start) => {
                match open_endpoint(&self.shared, start) {
                    Ok(opened) => opened.start(self.shared.clone()),
                    Err(NotOpened { start, why }) => {
                        RouterFuture::boxed(not_opened(self.shared.clone(), *start, why))
                    }
                }
            }
            Inbound::Msg(Msg::Start(start)) => {
                RouterFuture::boxed(on_start(self.shared.clone(), *start))
            }
            item if item.cid().is_none() => match item {
                Inbound::Invalid(_) => RouterFuture::boxed(judge_orphan(
                    self.shared.clone(),
                    self.orphans.clone(),
                    item,
                )),
                item => {
                    on_orphan(&self.shared, item);
                    done()
                }
            },
            // The usual case: room in the queue, nothing cloned, no future
            // to allocate.
            item => match self.shared.try_deliver(item, &mut self.route_cache) {
                TryDeliver::Done => done(),
                TryDeliver::Full(delivery, cid, item) => {
                    RouterFuture::boxed(deliver(self.shared.clone(), delivery, cid, item))
                }
                TryDeliver::NoContext(item) => {
                    if let Some(cid) = item.cid() {
                        on_unknown_cid(&self.shared, cid, &item);
                    }
                    done()
                }
            },
        }
    }
}

/// `ns:func`, the name of an endpoint in logs and errors.
///
/// Pushed rather than `format!`ted: it is made for every `Start`, and
/// `format!` cost ~780 instructions of it (callgrind), this ~100.
pub(crate) fn place(ns: &str, func: &str) -> String {
    let mut place = String::with_capacity(ns.len() + 1 + func.len());
    place.push_str(ns);
    place.push(':');
    place.push_str(func);
    place
}

/// A message for a context that is not (or no longer) open.
fn on_unknown_cid<C>(shared: &Shared<C>, cid: &Cid, item: &Inbound) {
    match item {
        Inbound::Msg(Msg::Stop(_)) => {}
        Inbound::Msg(Msg::Error(e)) => {
            tracing::warn!(cid = cid.as_str(), peer = %shared.peer, "error for an unknown context: {}", RemoteError::from((**e).clone()));
        }
        other => tracing::debug!(
            cid = cid.as_str(),
            "dropping a message for an unknown context: {other:?}"
        ),
    }
}

/// An invalid item of no context: the peer's policy decides; what it
/// delivers goes to the channel owner, a failure ends the channel.
async fn judge_orphan<C: Codec>(
    shared: Arc<Shared<C>>,
    policy: Arc<tokio::sync::Mutex<Option<Verdicts>>>,
    item: Inbound,
) -> Result<(), BoxError> {
    let mut policy = policy.lock().await;
    let verdicts = policy.get_or_insert_with(|| Verdicts::new(&shared.policy, &shared.link()));
    let delivered = verdicts.judge(item).await?;
    drop(policy);
    if let Some(item) = delivered {
        on_orphan(&shared, item);
    }
    Ok(())
}

/// An error that belongs to no context: surfaced to the channel owner.
fn on_orphan<C>(shared: &Shared<C>, item: Inbound) {
    match item {
        Inbound::Msg(Msg::Error(e)) => shared.orphan(RemoteError::from(*e).into()),
        Inbound::Invalid(e) => shared.orphan(e.into()),
        other => tracing::debug!("dropping a message without a cid: {other:?}"),
    }
}

async fn deliver<C: Codec>(
    shared: Arc<Shared<C>>,
    delivery: Delivery,
    cid: Cid,
    item: Inbound,
) -> Result<(), BoxError> {
    match shared.overrun {
        Overrun::Backpressure => {
            // Waiting here stops the read loop: the peer's writes back up.
            if delivery.tx.send(item).await.is_err() {
                tracing::debug!(cid = cid.as_str(), "context gone; dropped a late message");
            }
        }
        Overrun::Report => match delivery.tx.try_send(item) {
            Ok(()) => {}
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {}
            Err(tokio::sync::mpsc::error::TrySendError::Full(item)) => {
                let report = shared.overrun_report(&cid, &item);
                tracing::warn!(
                    cid = cid.as_str(),
                    "context queue full: dropped a message, reporting StreamOverrun"
                );
                shared.send(Msg::from(report)).await?;
            }
        },
    }
    Ok(())
}

/// A `Start` of a registered endpoint, its context open, before its
/// `StartAck` goes out.
struct Opened<C> {
    ctx: ChildContext<C>,
    runner: ChildRunner,
    functype: FuncType,
    service: endpoint::EndpointService<C>,
    kwargs: msg::RawPayload,
    place: Arc<str>,
}

/// Whether a `Start` goes straight to [`open_endpoint`]: it comes from
/// the channel's peer and is not one of the runtime's own requests
/// (`self.cancel`, `self._cancel_task`), which [`on_start`] answers.
fn is_plain_start<C>(shared: &Shared<C>, start: &msg::Start) -> bool {
    start.uid == shared.peer
        && !(start.ns == "self" && matches!(start.func.as_str(), "_cancel_task" | "cancel"))
}

/// A `Start` whose endpoint could not be opened, and why: `None` when no
/// endpoint of that name is registered.
struct NotOpened {
    start: Box<msg::Start>,
    why: Option<ContextError>,
}

/// Opens the context of a `Start` for a registered endpoint, without an
/// `.await`: the router's future is then [`Opened::start`].
///
/// No `async fn` with every path's awaits: boxing that future cost
/// ~1 000 instructions a call, and the `StartAck` went through a clone of
/// the send stack (callgrind, 64 concurrent unary callers,
/// `benches/peers`).
fn open_endpoint<C: Codec>(
    shared: &Arc<Shared<C>>,
    start: Box<msg::Start>,
) -> Result<Opened<C>, NotOpened> {
    let Some(endpoint) = shared.endpoints.get(&start.ns, &start.func) else {
        return Err(NotOpened { start, why: None });
    };
    let place: Arc<str> = Arc::from(place(&start.ns, &start.func));
    shared.specs.set_new(&start.cid, &endpoint.spec);
    let (ctx, runner) = match ChildContext::open(
        shared.clone(),
        start.cid.clone(),
        endpoint.functype,
        place.clone(),
    ) {
        Ok(opened) => opened,
        Err(e) => {
            shared.specs.remove(&start.cid);
            return Err(NotOpened {
                start,
                why: Some(e),
            });
        }
    };
    Ok(Opened {
        ctx,
        runner,
        functype: endpoint.functype,
        service: endpoint.service.clone(),
        kwargs: start.kwargs,
        place,
    })
}

/// Answers a `Start` that [`open_endpoint`] could not open: an unknown
/// endpoint, or too many open contexts, is refused with an `Error` and
/// the channel goes on; anything else fails the router.
async fn not_opened<C: Codec>(
    shared: Arc<Shared<C>>,
    start: msg::Start,
    why: Option<ContextError>,
) -> Result<(), BoxError> {
    let place = place(&start.ns, &start.func);
    match why {
        None => refuse(&shared, &start, &place).await,
        Some(ContextError::TooManyContexts { limit }) => {
            tracing::warn!(peer = %shared.peer.name, limit, "refusing a Start: too many open contexts");
            let why = format!(
                "too many open contexts on this channel (limit {limit}); `{place}` was not started"
            );
            refuse_with(&shared, &start, "RuntimeError", &why).await
        }
        Some(e) => Err(e.into()),
    }
}

impl<C: Codec> Opened<C> {
    /// Sends the `StartAck` and runs the endpoint (see [`on_start`]): the
    /// router's future for this `Start`. Usually the writer has room and
    /// the `StartAck` is queued here and now; then that future only holds
    /// the endpoint task (callgrind: the one that also held the context
    /// across the send was 3.4 KiB, an allocation and copies of ~1 000
    /// instructions a call).
    fn start(mut self, shared: Arc<Shared<C>>) -> RouterFuture {
        match self.ctx.ack_start_now(self.functype) {
            Ok(SendNow::Sent) => RouterFuture::boxed(run_first_poll(self.task(shared))),
            Ok(SendNow::Wait) => RouterFuture::boxed(self.run(shared)),
            Ok(SendNow::Sending(sending)) => RouterFuture::boxed(async move {
                sending.await?;
                run_first_poll(self.task(shared)).await
            }),
            // as `on_start`: the router fails (the context closes)
            Err(e) => RouterFuture::ready(Err(e.into())),
        }
    }

    /// Waits for room, sends the `StartAck`, runs the endpoint.
    async fn run(mut self, shared: Arc<Shared<C>>) -> Result<(), BoxError> {
        self.ctx.ack_start(self.functype).await?;
        run_first_poll(self.task(shared)).await
    }

    /// The endpoint's task, boxed (it is big: boxed here, not moved into
    /// another future first).
    fn task(self, shared: Arc<Shared<C>>) -> std::pin::Pin<Box<impl Future<Output = ()> + Send>> {
        let Opened {
            ctx,
            runner,
            functype,
            service,
            kwargs,
            place,
        } = self;
        let span = tracing::debug_span!("endpoint", cid = ctx.cid().as_str(), func = &*place, side = "child", peer = %shared.peer.name);
        let call = Call { ctx, kwargs };
        let task = runner.run(shared, functype, service.oneshot(call));
        Box::pin(tracing::Instrument::instrument(task, span))
    }
}

/// Polls an endpoint task once here first: an endpoint that answers at
/// once (an RPC, a context that returns) is done without a task hop.
/// Measured with the harness: open->Return p50 2.3-2.9x -> 1.5-1.9x raw
/// ping-pong. What is still pending runs in its own task; a panic is
/// caught inside `run`.
async fn run_first_poll(
    mut task: std::pin::Pin<Box<impl Future<Output = ()> + Send + 'static>>,
) -> Result<(), BoxError> {
    let first = std::future::poll_fn(|cx| Poll::Ready(task.as_mut().poll(cx))).await;
    if first.is_pending() {
        tokio::spawn(task);
    }
    Ok(())
}

/// A `Start` that [`is_plain_start`] leaves to the runtime: one that
/// names another peer, or the runtime's own cancel requests.
async fn on_start<C: Codec>(shared: Arc<Shared<C>>, start: msg::Start) -> Result<(), BoxError> {
    if start.uid != shared.peer {
        // tractor HEAD takes its whole runtime down on this; we refuse the
        // one Start and keep serving.
        return refuse_with(&shared, &start, "RuntimeError", &format!(
            "IPC <Start> msg <-> chan.aid mismatch: the Start names {} but the channel's peer is {}",
            start.uid, shared.peer
        ))
        .await;
    }
    // `self._cancel_task` or `self.cancel` (is_plain_start)
    if start.func == "_cancel_task" {
        cancel_task(shared, start).await
    } else {
        cancel_actor(shared, start).await
    }
}

/// An unknown endpoint: an `Error` instead of a `StartAck`, as tractor does.
async fn refuse<C: Codec>(
    shared: &Shared<C>,
    start: &msg::Start,
    place: &str,
) -> Result<(), BoxError> {
    tracing::warn!(func = place, peer = %shared.peer.name, "no such endpoint (only registered endpoints are callable)");
    // Python's wording, as tractor's getattr on the module raises it
    let why = format!("module '{}' has no attribute '{}'", start.ns, start.func);
    refuse_with(shared, start, "AttributeError", &why).await
}

/// Answers a `Start` with an `Error` of Python type `type_name`.
async fn refuse_with<C: Codec>(
    shared: &Shared<C>,
    start: &msg::Start,
    type_name: &str,
    why: &str,
) -> Result<(), BoxError> {
    let mut err = msg::Error::new(shared.me.clone(), type_name);
    err.message = Some(String::new());
    err.tb_str = format!(
        "Traceback (scipp, Rust):\n  in the router of {}\n{type_name}: {why}\n",
        shared.me.name
    );
    err.cid = Some(start.cid.clone());
    shared.send(Msg::from(err)).await
}

/// `self._cancel_task(cid)`: StartAck, cancel the target (its `Stop` and
/// `ContextCancelled` go out first), then `CancelAck(true)`.
async fn cancel_task<C: Codec>(shared: Arc<Shared<C>>, start: msg::Start) -> Result<(), BoxError> {
    #[derive(serde::Deserialize)]
    struct Kwargs {
        cid: String,
    }
    shared
        .send(Msg::StartAck(StartAck {
            cid: start.cid.clone(),
            functype: FuncType::AsyncFunc,
        }))
        .await?;
    let target = shared
        .codec
        .decode_payload::<Kwargs>(&start.kwargs)
        .ok()
        .map(|k| Cid::from(k.cid));
    let done = target.and_then(|t| shared.cancel_child(&t, &start.uid));
    tokio::spawn(async move {
        if let Some(done) = done {
            let _ = tokio::time::timeout(CANCEL_WAIT, done).await;
        }
        let ack = Msg::CancelAck(msg::CancelAck {
            cid: start.cid,
            pld: true,
        });
        if let Err(e) = shared.send(ack).await {
            tracing::debug!("could not ack a cancel: {e}");
        }
    });
    Ok(())
}

/// `self.cancel()`: cancel every task of this channel, ack, and tell the
/// owner the peer asked us to stop.
async fn cancel_actor<C: Codec>(shared: Arc<Shared<C>>, start: msg::Start) -> Result<(), BoxError> {
    shared
        .send(Msg::StartAck(StartAck {
            cid: start.cid.clone(),
            functype: FuncType::AsyncFunc,
        }))
        .await?;
    let waits = shared.cancel_all_children(&start.uid);
    for done in waits {
        let _ = tokio::time::timeout(CANCEL_WAIT, done).await;
    }
    shared
        .send(Msg::CancelAck(msg::CancelAck {
            cid: start.cid,
            pld: true,
        }))
        .await?;
    shared.actor_cancel.cancel();
    Ok(())
}
