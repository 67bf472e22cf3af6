//! Only the SCIPP message set, in the order of each dialog (spec §5.7).
//!
//! [`EnforceMsgTypeLayer`] keeps the state of every live dialog of a
//! channel (who opened it, what has been exchanged) and checks each
//! message against it, in both directions:
//!
//! - **Receive** (`Service<Inbound>`): a message illegal in its dialog's
//!   state (`Yield` before `Started`, `Started` twice, `Return` while the
//!   child's stream is still open, a second `Aid`, ...) goes up as an
//!   [`Inbound::Invalid`] [`MsgTypeError`], attributed to the peer. The
//!   channel keeps serving: tractor kills the connection on some of these;
//!   we do better.
//! - **Send** (`Service<Msg>`): we never put an illegal message on the
//!   wire; trying returns a send-side [`MsgTypeError`].
//!
//! Messages for unknown or finished dialogs pass: dropping late ones is
//! the router's business, as in tractor.
//!
//! One layer value shares its table between the services it builds, so
//! the same layer goes in both the receive and the send stack.

mod state;

pub use self::state::Side;

use crate::future::ResponseFuture;
use crate::payload::MsgTypeError;
use crate::{BoxError, Inbound};
use scipp_codecs::msg::{Cid, Msg, Uid};
use state::DialogTable;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Checks every message against its dialog's state.
///
/// ```
/// use scipp_layers::{codec::CodecLayer, msg_type::EnforceMsgTypeLayer, policy, Inbound, BoxError};
/// use scipp_codecs::msgpack::MsgpackCodec;
/// use tower::ServiceBuilder;
///
/// let enforce = EnforceMsgTypeLayer::new();
/// let app = tower::service_fn(|_: Inbound| async { Ok::<_, BoxError>(()) });
/// let receive = ServiceBuilder::new()
///     .layer(CodecLayer::new(MsgpackCodec::new()))
///     .layer(enforce.clone()) // the same value goes in the send stack
///     .layer(policy::fail_fast())
///     .service(app);
/// # drop(receive);
/// ```
#[derive(Debug, Clone)]
pub struct EnforceMsgTypeLayer {
    table: Arc<Dialogs>,
    /// Shared with the services this layer makes.
    peer: Option<Arc<Uid>>,
}

/// A channel's dialog table, and its generation published for readers
/// that skip the lock (see [`EnforceMsgType`]'s receive side).
#[derive(Debug)]
struct Dialogs {
    table: Mutex<DialogTable>,
    /// The table's generation after its last change.
    generation: AtomicU64,
}

impl Dialogs {
    /// Runs `f` on the locked table and publishes its generation.
    fn update<R>(&self, f: impl FnOnce(&mut DialogTable) -> R) -> R {
        let mut table = lock(&self.table);
        let before = table.generation();
        let out = f(&mut table);
        if table.generation() != before {
            self.generation.store(table.generation(), Ordering::Release);
        }
        out
    }
}

impl Default for EnforceMsgTypeLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl EnforceMsgTypeLayer {
    /// For a channel whose handshake is done: any `Aid` is illegal.
    pub fn new() -> Self {
        Self::with_table(DialogTable::new(false))
    }

    /// For a channel that starts with the handshake: the first message
    /// must be the peer's `Aid` (optionally followed by one `SpawnSpec`).
    pub fn expecting_handshake() -> Self {
        Self::with_table(DialogTable::new(true))
    }

    fn with_table(table: DialogTable) -> Self {
        EnforceMsgTypeLayer {
            table: Arc::new(Dialogs {
                table: Mutex::new(table),
                generation: AtomicU64::new(0),
            }),
            peer: None,
        }
    }

    /// Attributes receive-side errors to this peer.
    pub fn peer(mut self, peer: Uid) -> Self {
        self.peer = Some(Arc::new(peer));
        self
    }

    /// How many dialogs are live.
    pub fn live_dialogs(&self) -> usize {
        lock(&self.table.table).live()
    }

    /// Which side of dialog `cid` we are on, while it is live.
    pub fn side(&self, cid: &Cid) -> Option<Side> {
        lock(&self.table.table).side(cid)
    }
}

fn lock(table: &Mutex<DialogTable>) -> MutexGuard<'_, DialogTable> {
    // Each update is a single map operation: a panic cannot leave it half done.
    table.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S> Layer<S> for EnforceMsgTypeLayer {
    type Service = EnforceMsgType<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EnforceMsgType {
            inner,
            table: self.table.clone(),
            peer: self.peer.clone(),
            last_yield: None,
        }
    }
}

/// The service of [`EnforceMsgTypeLayer`].
#[derive(Debug, Clone)]
pub struct EnforceMsgType<S> {
    inner: S,
    table: Arc<Dialogs>,
    /// Shared: every context holds a clone of the send stack, this
    /// service included (8 bytes here, not a `Uid`'s 48).
    peer: Option<Arc<Uid>>,
    /// The receive side's last `Yield` that was legal and changed nothing,
    /// with the table's generation: while that generation holds, the
    /// next `Yield` of that cid is the same no-op, checked without the
    /// table's lock and hash (a stream is a run of these).
    last_yield: Option<(Cid, u64)>,
}

impl<S> EnforceMsgType<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S> EnforceMsgType<S> {
    /// [`DialogTable::on_rx`], through the `last_yield` cache.
    fn check_rx(&mut self, msg: &Msg) -> Result<(), state::Illegal> {
        let Msg::Yield(y) = msg else {
            return self.table.update(|t| t.on_rx(msg));
        };
        // read before deciding: a change racing with this check bumps the
        // generation, and the next Yield looks again
        let now = self.table.generation.load(Ordering::Acquire);
        if matches!(&self.last_yield, Some((cid, g)) if *g == now && *cid == y.cid) {
            return Ok(());
        }
        let (outcome, unchanged) = self.table.update(|t| {
            let before = t.generation();
            let outcome = t.on_rx(msg);
            (outcome, (t.generation() == before).then_some(before))
        });
        if let (Ok(()), Some(generation)) = (&outcome, unchanged) {
            self.last_yield = Some((y.cid.clone(), generation));
        }
        outcome
    }
}

impl<S> Service<Inbound> for EnforceMsgType<S>
where
    S: Service<Inbound, Response = ()>,
    S::Error: Into<BoxError>,
{
    type Response = ();
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, item: Inbound) -> Self::Future {
        let item = match item {
            Inbound::Msg(msg) => match self.check_rx(&msg) {
                Ok(()) => Inbound::Msg(msg),
                Err(why) => Inbound::Invalid(MsgTypeError::out_of_state(
                    &msg,
                    why.state,
                    why.expected,
                    self.peer.as_deref(),
                )),
            },
            invalid => invalid,
        };
        ResponseFuture::inner(self.inner.call(item))
    }
}

impl<S> Service<Msg> for EnforceMsgType<S>
where
    S: Service<Msg, Response = ()>,
    S::Error: Into<BoxError>,
{
    type Response = ();
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, msg: Msg) -> Self::Future {
        if let Err(why) = self.table.update(|t| t.on_tx(&msg)) {
            let err = MsgTypeError::out_of_state(&msg, why.state, why.expected, None).on_send();
            return ResponseFuture::ready(Err(Box::new(err)));
        }
        ResponseFuture::inner(self.inner.call(msg))
    }
}
