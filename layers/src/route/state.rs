//! The state one channel shares between its router, its contexts and its
//! endpoint tasks.

use super::queue;
use super::Endpoints;
use crate::cid_map::CidMap;
use crate::context::ContextError;
use crate::payload::PayloadSpecs;
use crate::policy::{Link, ReceivePolicy};
use crate::relay::RemoteError;
use crate::stack::{OutboundMessages, StackDescription};
use crate::{BoxError, Inbound, MsgTypeError};
use futures_util::future::Either;
use scipp_codecs::msg::{self, Cid, Msg, Uid};
use scipp_codecs::Codec;
use scipp_codecs::WireProfile;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceExt};

/// What happens when a context's queue is full and its peer keeps sending.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Overrun {
    /// The channel's read loop waits until the context reads: the peer's
    /// writes back up through TCP. Nothing is dropped. The default for
    /// scipp ↔ scipp (tractor has no flow control, and a slow context then
    /// stalls the other contexts of the channel).
    #[default]
    Backpressure,
    /// tractor's semantics (`allow_overruns=False`): the message is dropped
    /// and the sender gets one `StreamOverrun` `Error` per dropped message.
    Report,
}

/// An error that belongs to no open context, handed to the channel owner.
#[derive(Debug)]
pub enum Orphan {
    /// A remote `Error` without a (known) `cid`.
    Remote(RemoteError),
    /// A bad frame or message without a `cid`.
    MsgType(MsgTypeError),
}

impl From<RemoteError> for Orphan {
    fn from(e: RemoteError) -> Self {
        Orphan::Remote(e)
    }
}

impl From<MsgTypeError> for Orphan {
    fn from(e: MsgTypeError) -> Self {
        Orphan::MsgType(e)
    }
}

/// A channel's built-in send stack, by its concrete type: a boxed service
/// would box every message's future (one allocation per send).
pub(crate) type SendStack<C> = crate::payload::ValidatePayload<
    crate::msg_type::EnforceMsgType<
        crate::codec::CodecService<crate::channel::VectoredWriter, C, crate::framing::Frame>,
    >,
    C,
>;

/// A channel's send stack: the built-in one by its concrete type when the
/// peer has no outbound layer of the user's (nothing boxed per message),
/// else the user's layers around it, boxed.
#[derive(Clone)]
// `Plain` is the common case and is kept inline (no pointer to chase per
// send); it is the big one since the payload layer caches its last spec.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Sender<C> {
    Plain(SendStack<C>),
    Layered(OutboundMessages),
}

impl<C: Codec> Sender<C> {
    /// This stack boxed, for the rare paths that need a type-erased one
    /// (a relaying policy).
    pub(crate) fn erased(&self) -> OutboundMessages {
        match self {
            Sender::Plain(stack) => OutboundMessages::new(stack.clone()),
            Sender::Layered(stack) => stack.clone(),
        }
    }
}

impl<C: Codec> Service<Msg> for Sender<C> {
    type Response = ();
    type Error = BoxError;
    type Future =
        Either<<SendStack<C> as Service<Msg>>::Future, <OutboundMessages as Service<Msg>>::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Sender::Plain(s) => s.poll_ready(cx),
            Sender::Layered(s) => s.poll_ready(cx),
        }
    }

    fn call(&mut self, msg: Msg) -> Self::Future {
        match self {
            Sender::Plain(s) => Either::Left(s.call(msg)),
            Sender::Layered(s) => Either::Right(s.call(msg)),
        }
    }
}

/// How to cancel a running endpoint task and know it has finished.
///
/// Shared (`Arc`) by the context, its runner and its slot: one reference
/// count per clone, where cloning the tokens took a lock each (callgrind,
/// 64 concurrent unary callers).
#[derive(Debug, Default)]
pub(crate) struct ChildCancel {
    pub(crate) token: CancellationToken,
    pub(crate) canceller: Mutex<Option<Uid>>,
    pub(crate) finished: CancellationToken,
}

struct Slot {
    tx: queue::Sender,
    child: Option<Arc<ChildCancel>>,
}

/// A clone of a context's queue sender, taken under the lock.
pub(crate) struct Delivery {
    pub(crate) tx: queue::Sender,
}

/// The outcome of [`Shared::try_deliver`].
pub(crate) enum TryDeliver {
    /// Queued (or the context is gone and the item was dropped).
    Done,
    /// The queue is full: wait on `Delivery` or report an overrun.
    Full(Delivery, Cid, Inbound),
    /// No such context.
    NoContext(Inbound),
}

pub(crate) struct Shared<C> {
    pub(crate) codec: C,
    pub(crate) me: Uid,
    pub(crate) peer: Uid,
    pub(crate) profile: WireProfile,
    pub(crate) sender: Sender<C>,
    /// The peer's receive policy: contexts without their own use it.
    pub(crate) policy: ReceivePolicy,
    pub(crate) stack: StackDescription,
    pub(crate) specs: PayloadSpecs<C>,
    pub(crate) endpoints: Arc<Endpoints<C>>,
    pub(crate) overrun: Overrun,
    pub(crate) queue: usize,
    pub(crate) max_contexts: usize,
    pub(crate) closed: CancellationToken,
    close_reason: std::sync::OnceLock<String>,
    pub(crate) actor_cancel: CancellationToken,
    slots: Mutex<CidMap<Slot>>,
    /// Bumped under the `slots` lock by every insert and removal: a
    /// [`RouteCache`] entry of an older generation is stale.
    slots_generation: AtomicU64,
    orphans: mpsc::Sender<Orphan>,
}

/// The router's last delivery: the cid, the slot table's generation then,
/// and its queue. A stream's messages all name one cid; a hit skips the
/// table's lock and hash.
pub(crate) type RouteCache = Option<(Cid, u64, queue::Pusher)>;

impl<C> Shared<C> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        codec: C,
        me: Uid,
        peer: Uid,
        profile: WireProfile,
        sender: Sender<C>,
        policy: ReceivePolicy,
        stack: StackDescription,
        specs: PayloadSpecs<C>,
        endpoints: Arc<Endpoints<C>>,
        overrun: Overrun,
        queue: usize,
        max_contexts: usize,
        closed: CancellationToken,
        orphans: mpsc::Sender<Orphan>,
    ) -> Self {
        Shared {
            codec,
            me,
            peer,
            profile,
            sender,
            policy,
            stack,
            specs,
            endpoints,
            overrun,
            queue: queue.max(1),
            max_contexts,
            closed,
            close_reason: std::sync::OnceLock::new(),
            actor_cancel: CancellationToken::new(),
            slots: Mutex::new(CidMap::default()),
            slots_generation: AtomicU64::new(0),
            orphans,
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, CidMap<Slot>> {
        // Each critical section is one map operation.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens the queue of context `cid`.
    ///
    /// # Errors
    /// `TransportClosed` when the channel is already closed,
    /// `TooManyContexts` at the channel's limit.
    pub(crate) fn open_slot(
        &self,
        cid: &Cid,
        child: Option<Arc<ChildCancel>>,
    ) -> Result<queue::Receiver, ContextError> {
        if self.closed.is_cancelled() {
            return Err(self.transport_closed());
        }
        let mut slots = self.slots();
        if slots.len() >= self.max_contexts {
            return Err(ContextError::TooManyContexts {
                limit: self.max_contexts,
            });
        }
        let (tx, rx) = queue::channel(self.queue);
        slots.insert(cid.clone(), Slot { tx, child });
        self.slots_generation.fetch_add(1, Ordering::Release);
        Ok(rx)
    }

    pub(crate) fn close_slot(&self, cid: &Cid) {
        let removed = {
            let mut slots = self.slots();
            let removed = slots.remove(cid);
            self.slots_generation.fetch_add(1, Ordering::Release);
            removed
        };
        drop(removed);
        self.specs.remove(cid);
    }

    /// Hands `item` to its context's queue without waiting (and without
    /// cloning the queue's sender). A full queue gives the item back with a
    /// sender to wait on.
    ///
    /// Through `cache`: while the slot table has not changed since the
    /// cached lookup, a message for the cached cid goes straight to its
    /// queue (no lock of the table, no hash). Anything else (another cid,
    /// a full or closed queue) takes the table's path and refreshes the
    /// cache.
    pub(crate) fn try_deliver(&self, item: Inbound, cache: &mut RouteCache) -> TryDeliver {
        use tokio::sync::mpsc::error::TrySendError;
        // read before the push: a change racing with it bumps the
        // generation past the one cached, and the next call looks again
        let generation = self.slots_generation.load(Ordering::Acquire);
        let item = match (&*cache, item.cid()) {
            (Some((cached, g, queue)), Some(cid)) if *g == generation && cached == cid => {
                match queue.try_send(item) {
                    Ok(()) => return TryDeliver::Done,
                    Err(TrySendError::Full(item) | TrySendError::Closed(item)) => item,
                }
            }
            _ => item,
        };
        let slots = self.slots();
        let Some((cid, slot)) = item.cid().and_then(|cid| slots.get_key_value(cid)) else {
            return TryDeliver::NoContext(item);
        };
        // exact: bumps happen under this lock
        let generation = self.slots_generation.load(Ordering::Acquire);
        let fresh = !matches!(&*cache, Some((c, g, _)) if *g == generation && c == cid);
        if fresh {
            *cache = Some((cid.clone(), generation, slot.tx.pusher()));
        }
        Self::try_send_slot(slot, item)
    }

    fn try_send_slot(slot: &Slot, item: Inbound) -> TryDeliver {
        use tokio::sync::mpsc::error::TrySendError;
        match slot.tx.try_send(item) {
            Ok(()) | Err(TrySendError::Closed(_)) => TryDeliver::Done,
            Err(TrySendError::Full(item)) => {
                let cid = item.cid().cloned().expect("looked up by its cid");
                let delivery = Delivery {
                    tx: slot.tx.clone(),
                };
                TryDeliver::Full(delivery, cid, item)
            }
        }
    }

    pub(crate) fn open_contexts(&self) -> usize {
        self.slots().len()
    }

    /// Cancels the endpoint task of `cid` on behalf of `requester`; the
    /// returned future completes when the task has finished.
    pub(crate) fn cancel_child(
        &self,
        cid: &Cid,
        requester: &Uid,
    ) -> Option<tokio_util::sync::WaitForCancellationFutureOwned> {
        let child = self.slots().get(cid).and_then(|s| s.child.clone())?;
        Some(Self::trigger(&child, requester))
    }

    pub(crate) fn cancel_all_children(
        &self,
        requester: &Uid,
    ) -> Vec<tokio_util::sync::WaitForCancellationFutureOwned> {
        let children: Vec<Arc<ChildCancel>> = self
            .slots()
            .values()
            .filter_map(|s| s.child.clone())
            .collect();
        children
            .into_iter()
            .map(|c| Self::trigger(&c, requester))
            .collect()
    }

    fn trigger(
        child: &ChildCancel,
        requester: &Uid,
    ) -> tokio_util::sync::WaitForCancellationFutureOwned {
        let mut who = child
            .canceller
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if who.is_none() {
            *who = Some(requester.clone());
        }
        drop(who);
        child.token.cancel();
        child.finished.clone().cancelled_owned()
    }

    /// The transport is gone: every queue is closed (its context sees
    /// `TransportClosed`) and every endpoint task is cancelled.
    /// Closes every context: queued messages stay readable, then each
    /// sees `TransportClosed` with `reason` (the first reason given wins).
    pub(crate) fn on_transport_closed(&self, reason: impl Into<String>) {
        let _ = self.close_reason.set(reason.into());
        self.closed.cancel();
        let slots: Vec<Slot> = {
            let mut slots = self.slots();
            self.slots_generation.fetch_add(1, Ordering::Release);
            slots.drain().map(|(_, s)| s).collect()
        };
        for slot in slots {
            if let Some(child) = slot.child {
                child.token.cancel();
            }
        }
    }

    pub(crate) fn transport_closed(&self) -> ContextError {
        ContextError::TransportClosed {
            peer: self.peer.name.clone(),
            reason: self
                .close_reason
                .get()
                .cloned()
                .unwrap_or_else(|| "closed".to_owned()),
        }
    }

    pub(crate) fn orphan(&self, orphan: Orphan) {
        tracing::warn!(peer = %self.peer.name, "an error for no open context: {orphan:?}");
        if self.orphans.try_send(orphan).is_err() {
            tracing::debug!("orphan error queue full or unread; kept only in the log");
        }
    }

    /// tractor's `StreamOverrun` report for a dropped message (spec §9).
    pub(crate) fn overrun_report(&self, cid: &Cid, dropped: &Inbound) -> msg::Error {
        let mut err = msg::Error::new(self.me.clone(), "StreamOverrun");
        err.sender = Some(self.peer.clone());
        err.cid = Some(cid.clone());
        err.message = Some(format!(
            "on IPC context:\n<= sender: {}\n\n=> overrun: {}\n  |_cid: {cid}\n",
            self.peer, self.me
        ));
        err.tb_str = format!(
            "StreamOverrun: context queue full ({} messages); dropped {dropped:?}\n",
            self.queue
        );
        err
    }
}

impl<C: Codec> Shared<C> {
    /// What a policy running on this channel may use.
    pub(crate) fn link(&self) -> Link {
        Link {
            outbound: self.sender.erased(),
            me: self.me.clone(),
        }
    }

    /// Sends one message through the channel's send stack.
    pub(crate) async fn send(&self, msg: Msg) -> Result<(), BoxError> {
        self.sender.clone().oneshot(msg).await
    }
}
