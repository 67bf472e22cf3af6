use super::spec::SpecCache;
use super::PayloadSpecs;
use crate::future::ResponseFuture;
use crate::{BoxError, Inbound};
use scipp_codecs::msg::{Msg, MsgKind, Uid};
use scipp_codecs::Codec;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Validates payloads against each context's [`PldSpec`](super::PldSpec),
/// in both directions.
///
/// - **Receive** (`Service<Inbound>`): a `Started`, `Yield` or `Return`
///   whose payload breaks its context's spec goes up as
///   [`Inbound::Invalid`] instead; `CancelAck` always passes.
/// - **Send** (`Service<Msg>`): a `Started` is round-tripped (encoded,
///   decoded, checked) before it leaves, as tractor does; with
///   [`strict`](Self::strict), every `Yield` and `Return` too. A failure is
///   returned as a [`MsgTypeError`](super::MsgTypeError) and nothing reaches the inner service.
///
/// # Example
///
/// ```
/// use scipp_layers::{codec::CodecLayer, msg_type::EnforceMsgTypeLayer, Inbound, BoxError};
/// use scipp_layers::payload::{PayloadSpecs, PldSpec, ValidatePayloadLayer};
/// use scipp_layers::policy;
/// use scipp_codecs::msgpack::MsgpackCodec;
/// use tower::ServiceBuilder;
///
/// let codec = MsgpackCodec::new();
/// let specs = PayloadSpecs::new(PldSpec::<MsgpackCodec>::of::<i64>());
/// let app = tower::service_fn(|_: Inbound| async { Ok::<_, BoxError>(()) });
/// // frames in at the top, typed-checked items out at the bottom
/// let receive = ServiceBuilder::new()
///     .layer(CodecLayer::new(codec))
///     .layer(EnforceMsgTypeLayer::new())
///     .layer(ValidatePayloadLayer::new(codec, specs))
///     .layer(policy::ignore_and_warn())
///     .service(app);
/// # drop(receive);
/// ```
#[derive(Debug, Clone)]
pub struct ValidatePayloadLayer<C> {
    codec: C,
    specs: PayloadSpecs<C>,
    /// Shared with the services this layer makes.
    peer: Option<Arc<Uid>>,
    strict: bool,
}

impl<C: Codec> ValidatePayloadLayer<C> {
    /// Validates with `codec` against the specs in `specs`.
    pub fn new(codec: C, specs: PayloadSpecs<C>) -> Self {
        ValidatePayloadLayer {
            codec,
            specs,
            peer: None,
            strict: false,
        }
    }

    /// Attributes receive-side errors to this peer.
    pub fn peer(mut self, peer: Uid) -> Self {
        self.peer = Some(Arc::new(peer));
        self
    }

    /// Also validates every outgoing `Yield` and `Return` (tractor checks
    /// only `Started`).
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }
}

impl<S, C: Clone> Layer<S> for ValidatePayloadLayer<C> {
    type Service = ValidatePayload<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        ValidatePayload {
            inner,
            codec: self.codec.clone(),
            specs: self.specs.clone(),
            last_spec: None,
            peer: self.peer.clone(),
            strict: self.strict,
        }
    }
}

/// The service of [`ValidatePayloadLayer`].
#[derive(Debug, Clone)]
pub struct ValidatePayload<S, C> {
    inner: S,
    codec: C,
    specs: PayloadSpecs<C>,
    /// The receive side's last lookup (a stream names one cid over and over).
    last_spec: SpecCache<C>,
    /// Shared: every context holds a clone of the send stack, this
    /// service included (8 bytes here, not a `Uid`'s 48).
    peer: Option<Arc<Uid>>,
    strict: bool,
}

impl<S, C> ValidatePayload<S, C> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, C> Service<Inbound> for ValidatePayload<S, C>
where
    S: Service<Inbound, Response = ()>,
    S::Error: Into<BoxError>,
    C: Codec,
{
    type Response = ();
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, item: Inbound) -> Self::Future {
        let item = match item {
            Inbound::Msg(mut msg) if msg.pld().is_some() => {
                let cid = msg.cid().expect("payload messages have a cid");
                let spec = self.specs.get_cached(cid, &mut self.last_spec);
                // the decoded value rides along: the context takes it
                // instead of decoding the payload a second time
                match spec.validate_keeping(&self.codec, &mut msg, self.peer.as_deref()) {
                    Ok(()) => Inbound::Msg(msg),
                    Err(e) => Inbound::Invalid(e),
                }
            }
            other => other,
        };
        ResponseFuture::inner(self.inner.call(item))
    }
}

impl<S, C> Service<Msg> for ValidatePayload<S, C>
where
    S: Service<Msg, Response = ()>,
    S::Error: Into<BoxError>,
    C: Codec,
{
    type Response = ();
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, msg: Msg) -> Self::Future {
        let check = match msg.kind() {
            MsgKind::Started => true,
            MsgKind::Yield | MsgKind::Return => self.strict,
            _ => false,
        };
        if check {
            if let Err(e) = self.round_trip(&msg) {
                return ResponseFuture::ready(Err(e));
            }
        }
        ResponseFuture::inner(self.inner.call(msg))
    }
}

impl<S, C: Codec> ValidatePayload<S, C> {
    /// Encodes `msg`, decodes it back and checks the decoded payload, so
    /// what is checked is exactly what the peer will read.
    fn round_trip(&self, msg: &Msg) -> Result<(), BoxError> {
        let frame = self.codec.encode_to_bytes(msg)?;
        let back = self.codec.decode(frame)?;
        let cid = back.cid().ok_or("payload message without cid")?;
        let spec = self.specs.get(cid);
        spec.validate(&self.codec, &back, None)
            .map_err(|e| Box::new(e.on_send()) as BoxError)
    }
}
