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
    table: Arc<Mutex<DialogTable>>,
    /// Shared: the send stack is cloned per context, and a `Uid` is two
    /// strings.
    peer: Option<Arc<Uid>>,
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
            table: Arc::new(Mutex::new(table)),
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
        lock(&self.table).live()
    }

    /// Which side of dialog `cid` we are on, while it is live.
    pub fn side(&self, cid: &Cid) -> Option<Side> {
        lock(&self.table).side(cid)
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
        }
    }
}

/// The service of [`EnforceMsgTypeLayer`].
#[derive(Debug, Clone)]
pub struct EnforceMsgType<S> {
    inner: S,
    table: Arc<Mutex<DialogTable>>,
    /// Shared: the send stack is cloned per context, and a `Uid` is two
    /// strings.
    peer: Option<Arc<Uid>>,
}

impl<S> EnforceMsgType<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
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
            Inbound::Msg(msg) => match lock(&self.table).on_rx(&msg) {
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
        if let Err(why) = lock(&self.table).on_tx(&msg) {
            let err = MsgTypeError::out_of_state(&msg, why.state, why.expected, None).on_send();
            return ResponseFuture::ready(Err(Box::new(err)));
        }
        ResponseFuture::inner(self.inner.call(msg))
    }
}
