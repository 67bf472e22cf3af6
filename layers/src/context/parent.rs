use super::{ContextError, Core};
use crate::payload::PldSpec;
use crate::policy::ReceivePolicy;
use crate::relay::RemoteError;
use crate::route::state::Shared;
use scipp_codecs::msg::{self, Cid, FuncType, Msg, RawPayload, Uid};
use scipp_codecs::Codec;
use serde::{de::DeserializeOwned, Serialize};
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

/// How long a cancel request waits for the peer's `CancelAck` (tractor
/// waits 0.616 s; a loaded machine deserves more).
const CANCEL_TIMEOUT: Duration = Duration::from_secs(3);

/// Opens a context: set the kwargs and payload spec, then
/// [`start`](OpenContext::start).
///
/// ```
/// use scipp_layers::{context::ChildContext, payload::PldSpec, peer::Peer, route::Endpoints, BoxError};
/// use scipp_codecs::msgpack::MsgpackCodec;
/// use std::collections::BTreeMap;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // a child that doubles every int it is sent
/// let mut endpoints = Endpoints::new();
/// endpoints.context("demo", "double", PldSpec::of::<i64>(), |mut ctx: ChildContext<MsgpackCodec>, _: BTreeMap<String, i64>| async move {
///     ctx.started(&0).await?;
///     while let Some(v) = ctx.recv::<i64>().await? {
///         ctx.send(&(2 * v)).await?;
///     }
///     Ok::<_, BoxError>(-1)
/// });
/// let (a, b) = tokio::io::duplex(4096);
/// let server = Peer::new("server", MsgpackCodec::new()).endpoints(endpoints);
/// let client = Peer::new("client", MsgpackCodec::new());
/// let (_served, chan) = tokio::join!(server.channel(a), client.channel(b));
/// let chan = chan?;
///
/// let (mut ctx, first): (_, i64) = chan
///     .open_context("demo", "double")
///     .kwargs(&BTreeMap::from([("unused", 1)]))
///     .spec(PldSpec::of::<i64>())
///     .start()
///     .await?;
/// assert_eq!(first, 0);
/// ctx.send(&21).await?;
/// assert_eq!(ctx.recv::<i64>().await?, Some(42));
/// ctx.close().await?;
/// assert_eq!(ctx.result::<i64>().await?, -1);
/// # Ok(()) }
/// ```
#[must_use = "a context opens only on `.start().await`"]
pub struct OpenContext<C = crate::DefaultCodec> {
    shared: Arc<Shared<C>>,
    ns: String,
    func: String,
    kwargs: Result<Option<RawPayload>, ContextError>,
    spec: PldSpec<C>,
    policy: Option<ReceivePolicy>,
    caller: &'static Location<'static>,
}

impl<C> std::fmt::Debug for OpenContext<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "OpenContext({}:{} from {})",
            self.ns, self.func, self.caller
        )
    }
}

impl<C: Codec> OpenContext<C> {
    pub(crate) fn new(
        shared: Arc<Shared<C>>,
        ns: &str,
        func: &str,
        caller: &'static Location<'static>,
    ) -> Self {
        OpenContext {
            shared,
            ns: ns.into(),
            func: func.into(),
            kwargs: Ok(None),
            spec: PldSpec::any(),
            policy: None,
            caller,
        }
    }

    /// The keyword arguments (a struct or map; none by default). A value
    /// that does not encode fails [`start`](Self::start).
    pub fn kwargs<K: Serialize + ?Sized>(mut self, kwargs: &K) -> Self {
        self.kwargs = self
            .shared
            .codec
            .encode_payload(kwargs)
            .map(Some)
            .map_err(ContextError::from);
        self
    }

    /// The payload spec of this context (`Any` by default). Like tractor,
    /// nothing of it travels: both ends must agree.
    pub fn spec(mut self, spec: PldSpec<C>) -> Self {
        self.spec = spec;
        self
    }

    /// This context's receive policy: what it does with an invalid
    /// message from the child, instead of the peer's policy
    /// ([`Peer::policy`](crate::peer::Peer::policy)). Any policy layer
    /// ([`policy::ignore_and_warn`](crate::policy::ignore_and_warn),
    /// [`policy::from_fn`](crate::policy::from_fn), ...), a
    /// [`ReceivePolicy`] or an [`OnInvalid`](super::OnInvalid).
    pub fn policy(mut self, policy: impl Into<ReceivePolicy>) -> Self {
        self.policy = Some(policy.into());
        self
    }

    /// Shorthand for [`policy`](Self::policy) with an
    /// [`OnInvalid`](super::OnInvalid).
    pub fn on_invalid(self, policy: super::OnInvalid) -> Self {
        self.policy(policy)
    }

    /// Sends `Start`, waits for `StartAck(context)` and `Started`, and
    /// returns the open context with the child's first value.
    ///
    /// # Errors
    /// The peer's `Error` (e.g. no such endpoint), a first value outside
    /// the spec or not a `T`, or a closed channel. The remote task, if it
    /// started, is cancelled.
    pub async fn start<T: DeserializeOwned + 'static>(
        self,
    ) -> Result<(Context<C>, T), ContextError> {
        let span = tracing::debug_span!("context", side = "parent", func = %format!("{}:{}", self.ns, self.func), caller = %self.caller);
        let _enter = span.enter();
        let mut ctx = Context::open(
            &self.shared,
            &self.ns,
            &self.func,
            self.kwargs?,
            self.spec,
            FuncType::Context,
        )
        .await?;
        if let Some(policy) = self.policy {
            ctx.core.set_policy(policy);
        }
        let first = match ctx.core.next().await {
            Ok(Msg::Started(s)) => ctx.core.decode(s.pld),
            Ok(Msg::Error(e)) => {
                ctx.cancel_in_background(); // raised in the block: tractor cancels
                Err(RemoteError::from(*e).into())
            }
            Ok(Msg::Return(_)) => {
                ctx.finished = true;
                Err(ContextError::Protocol(
                    "the endpoint returned without calling started()".into(),
                ))
            }
            Ok(other) => Err(ContextError::Protocol(format!(
                "expected Started, got {}",
                other.kind()
            ))),
            Err(e) => Err(e),
        }?;
        tracing::debug!(cid = ctx.core.cid.as_str(), "context open");
        Ok((ctx, first))
    }
}

/// The parent (caller) side of an open context.
///
/// Dropping it before its final message cancels the remote task in the
/// background (see the [module docs](super)).
pub struct Context<C: Codec = crate::DefaultCodec> {
    core: Core<C>,
    stop_sent: bool,
    stop_received: bool,
    finished: bool,
    result: Option<RawPayload>,
}

impl<C: Codec> std::fmt::Debug for Context<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("cid", &self.core.cid)
            .field("finished", &self.finished)
            .finish()
    }
}

impl<C: Codec> Context<C> {
    async fn open(
        shared: &Arc<Shared<C>>,
        ns: &str,
        func: &str,
        kwargs: Option<RawPayload>,
        spec: PldSpec<C>,
        expect: FuncType,
    ) -> Result<Self, ContextError> {
        let cid = crate::uuid::new_cid();
        shared.specs.set_new(&cid, &spec);
        let rx = shared.open_slot(&cid, None)?;
        let mut ctx = Context {
            core: Core::new(shared.clone(), cid.clone(), rx),
            stop_sent: false,
            stop_received: false,
            finished: false,
            result: None,
        };
        let kwargs = match kwargs {
            Some(k) => k,
            None => ctx
                .core
                .encode(&std::collections::BTreeMap::<String, ()>::new())?,
        };
        let start = msg::Start {
            cid,
            ns: ns.into(),
            func: func.into(),
            kwargs,
            uid: shared.me.clone(),
            pld_spec: msg::Start::DEFAULT_PLD_SPEC.into(),
        };
        if let Err(e) = ctx.core.send(Msg::from(start)).await {
            ctx.finished = true; // nothing was started
            return Err(e);
        }
        match ctx.core.next().await? {
            Msg::StartAck(ack) if ack.functype == expect => Ok(ctx),
            Msg::StartAck(ack) => Err(ContextError::Protocol(format!(
                "{ns}:{func} is an `{}` endpoint, not `{}`",
                ack.functype.as_str(),
                expect.as_str()
            ))),
            Msg::Error(e) => {
                ctx.finished = true;
                Err(RemoteError::from(*e).into())
            }
            other => Err(ContextError::Protocol(format!(
                "expected StartAck, got {}",
                other.kind()
            ))),
        }
    }

    /// A plain RPC: `Start → StartAck(asyncfunc) → Return`.
    pub(crate) async fn rpc<R: DeserializeOwned + 'static>(
        shared: &Arc<Shared<C>>,
        ns: &str,
        func: &str,
        kwargs: RawPayload,
    ) -> Result<R, ContextError> {
        let ctx = Context::open(
            shared,
            ns,
            func,
            Some(kwargs),
            PldSpec::any(),
            FuncType::AsyncFunc,
        )
        .await?;
        ctx.result().await
    }

    /// `self.cancel`: StartAck, then CancelAck once the peer cancelled its
    /// tasks.
    pub(crate) async fn actor_cancel(
        shared: &Arc<Shared<C>>,
        kwargs: RawPayload,
    ) -> Result<(), ContextError> {
        cancel_rpc(shared, "cancel", kwargs, CANCEL_TIMEOUT * 2).await
    }

    /// A remote error raised inside the caller's block ends the context;
    /// like tractor, we still tell the peer to cancel the task, without
    /// waiting for the answer.
    fn cancel_in_background(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let (shared, cid) = (self.core.shared.clone(), self.core.cid.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = cancel_remote(&shared, &cid).await {
                    tracing::debug!(cid = cid.as_str(), "cancel after a remote error: {e}");
                }
            });
        }
    }

    /// The context id.
    pub fn cid(&self) -> &Cid {
        &self.core.cid
    }

    /// The child's uid.
    pub fn peer(&self) -> &Uid {
        &self.core.shared.peer
    }

    /// Sends one stream item (`Yield`).
    ///
    /// # Errors
    /// After `close`, when the peer ended the context, or when the channel
    /// is gone.
    pub async fn send<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ContextError> {
        let pld = self.core.encode(value)?;
        self.core
            .send(Msg::Yield(msg::Yield {
                cid: self.core.cid.clone(),
                pld,
            }))
            .await
    }

    /// The child's next stream item; `None` once the child closed its
    /// stream (or returned).
    ///
    /// # Errors
    /// The child's error, an invalid message, or a closed channel.
    pub async fn recv<T: DeserializeOwned + 'static>(&mut self) -> Result<Option<T>, ContextError> {
        if self.stop_received || self.finished {
            return Ok(None);
        }
        match self.core.next().await? {
            Msg::Yield(y) => self.core.decode(y.pld).map(Some),
            Msg::Stop(_) => {
                self.stop_received = true;
                Ok(None)
            }
            Msg::Return(r) => {
                self.finished = true;
                self.result = Some(r.pld);
                Ok(None)
            }
            Msg::Error(e) => {
                self.cancel_in_background(); // raised in the block: tractor cancels
                Err(RemoteError::from(*e).into())
            }
            other => Err(ContextError::Protocol(format!(
                "unexpected {} in a stream",
                other.kind()
            ))),
        }
    }

    /// Closes our side of the stream (sends `Stop`, once; not after the
    /// child's `Stop`).
    ///
    /// # Errors
    /// When the channel is gone.
    pub async fn close(&mut self) -> Result<(), ContextError> {
        if self.stop_sent || self.stop_received || self.finished {
            return Ok(());
        }
        self.stop_sent = true;
        self.core
            .send(Msg::Stop(msg::Stop {
                cid: self.core.cid.clone(),
            }))
            .await
    }

    /// Waits for the final `Return` and decodes it. Stream items still
    /// queued are dropped (with a warning naming how many): read the
    /// stream first if they matter.
    ///
    /// # Errors
    /// The child's error (`ContextCancelled` included), an invalid
    /// `Return`, or a closed channel.
    pub async fn result<R: DeserializeOwned + 'static>(mut self) -> Result<R, ContextError> {
        let mut unread = 0_usize;
        loop {
            if let Some(pld) = self.result.take() {
                if unread > 0 {
                    // tractor crashes here when the parent never opened a
                    // stream (spec §5.4); we drop them, and say so
                    tracing::warn!(
                        cid = self.core.cid.as_str(),
                        unread,
                        "the context ended with stream items nobody read; dropped"
                    );
                }
                return self.core.decode(pld);
            }
            if self.finished {
                return Err(ContextError::Protocol("the context already ended".into()));
            }
            match self.core.next().await? {
                Msg::Return(r) => {
                    self.finished = true;
                    self.result = Some(r.pld);
                }
                Msg::Error(e) => {
                    self.finished = true;
                    return Err(RemoteError::from(*e).into());
                }
                Msg::Yield(_) => unread += 1,
                Msg::Stop(_) => {}
                other => {
                    return Err(ContextError::Protocol(format!(
                        "unexpected {} while waiting for Return",
                        other.kind()
                    )))
                }
            }
        }
    }

    /// Cancels the remote task and waits, bounded, for its end. Its own
    /// `ContextCancelled` (the ack of this request) is absorbed, and so are
    /// `StreamOverrun` reports of our own sends that the child made before
    /// it saw the cancel.
    ///
    /// # Errors
    /// Any other error the child sent, or a timeout.
    pub async fn cancel(mut self) -> Result<(), ContextError> {
        if self.finished {
            return Ok(());
        }
        self.finished = true; // no second cancel from Drop
        cancel_remote(&self.core.shared, &self.core.cid).await?;
        // The child's final message: our own ctxc is the ack.
        loop {
            match tokio::time::timeout(CANCEL_TIMEOUT, self.core.next()).await {
                Err(_) => return Err(ContextError::Timeout("the cancelled task's final message")),
                // what the child sent before it saw the cancel is moot,
                // bad payloads included
                Ok(Err(ContextError::MsgType(e))) => {
                    tracing::debug!(
                        cid = self.core.cid.as_str(),
                        "dropped an invalid message while cancelling: {}",
                        e.summary()
                    );
                }
                Ok(Err(e)) => return Err(e),
                Ok(Ok(Msg::Error(e))) => {
                    let err = RemoteError::from(*e);
                    let me = &self.core.shared.me;
                    if err.is_overrun() && err.wire().sender.as_ref() == Some(me) {
                        // We overran the child before cancelling: its
                        // reports are moot now. tractor means to absorb
                        // these too, but its check compares `sender` with
                        // the peer and never matches (spec §9).
                        tracing::debug!(
                            cid = self.core.cid.as_str(),
                            "absorbed an overrun report after cancel"
                        );
                        continue;
                    }
                    let ours = err.is_cancelled() && err.canceller() == Some(me);
                    return if ours { Ok(()) } else { Err(err.into()) };
                }
                Ok(Ok(Msg::Return(_))) => return Ok(()), // it finished first
                Ok(Ok(_)) => {}
            }
        }
    }
}

/// Sends `self._cancel_task(cid)` on a fresh cid and waits for its
/// `StartAck` and `CancelAck`.
async fn cancel_remote<C: Codec>(
    shared: &Arc<Shared<C>>,
    target: &Cid,
) -> Result<(), ContextError> {
    #[derive(Serialize)]
    struct Kwargs<'a> {
        cid: &'a str,
    }
    let kwargs = shared.codec.encode_payload(&Kwargs {
        cid: target.as_str(),
    })?;
    cancel_rpc(shared, "_cancel_task", kwargs, CANCEL_TIMEOUT).await
}

/// A runtime cancel RPC (`self.<func>`) on a fresh cid: waits, bounded,
/// for its `StartAck` and `CancelAck`.
async fn cancel_rpc<C: Codec>(
    shared: &Arc<Shared<C>>,
    func: &str,
    kwargs: RawPayload,
    limit: Duration,
) -> Result<(), ContextError> {
    let mut req = Context::open(
        shared,
        "self",
        func,
        Some(kwargs),
        PldSpec::any(),
        FuncType::AsyncFunc,
    )
    .await?;
    let wait = async {
        loop {
            match req.core.next().await? {
                Msg::CancelAck(_) => return Ok(()),
                Msg::Error(e) => return Err(ContextError::Remote(RemoteError::from(*e))),
                _ => {}
            }
        }
    };
    let out = tokio::time::timeout(limit, wait)
        .await
        .unwrap_or(Err(ContextError::Timeout("CancelAck")));
    req.finished = true;
    out
}

impl<C: Codec> Drop for Context<C> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                cid = self.core.cid.as_str(),
                "context dropped outside a runtime: remote task not cancelled"
            );
            return;
        };
        // Keep the queue open until the child's final message arrives, so
        // its `Stop`/`ContextCancelled` are not logged as strays.
        let (tx, rx) = crate::route::queue::channel(1);
        drop(tx);
        let rx = std::mem::replace(&mut self.core.rx, rx);
        self.core.owns_slot = false;
        let shared = self.core.shared.clone();
        let cid = self.core.cid.clone();
        rt.spawn(async move {
            tracing::debug!(
                cid = cid.as_str(),
                "context dropped early: cancelling the remote task"
            );
            let mut core = Core::new(shared.clone(), cid.clone(), rx);
            core.set_policy(crate::policy::ignore_and_warn().into());
            if let Err(e) = cancel_remote(&shared, &cid).await {
                tracing::debug!(cid = cid.as_str(), "background cancel: {e}");
            }
            let drain = async {
                while let Ok(m) = core.next().await {
                    if matches!(m, Msg::Error(_) | Msg::Return(_)) {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(CANCEL_TIMEOUT, drain).await;
        });
    }
}
