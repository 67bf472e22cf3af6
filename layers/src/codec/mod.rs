//! Frame bodies ⇄ messages, with any [`Codec`].
//!
//! [`CodecLayer`] works in both directions: wrapping a `Service<Inbound>`
//! it decodes frames on the way up (`Service<Bytes>`), and wrapping a
//! `Service<Bytes>` it encodes messages on the way down (`Service<Msg>`).
//! An undecodable frame does not end the channel: it goes up as an
//! [`Inbound::Invalid`] carrying a [`MsgTypeError`].

use crate::future::ResponseFuture;
use crate::payload::MsgTypeError;
use crate::{BoxError, Inbound};
use bytes::Bytes;
use scipp_codecs::msg::{Msg, RawPayload, Uid};
use scipp_codecs::{Codec, DecodeErrorKind};
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Decodes frames going up and encodes messages going down.
///
/// ```
/// use bytes::Bytes;
/// use scipp_layers::{codec::CodecLayer, Inbound, BoxError};
/// use scipp_codecs::msgpack::MsgpackCodec;
/// use tower::{Service, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let app = tower::service_fn(|item: Inbound| async move {
///     assert!(item.as_msg().is_some());
///     Ok::<_, BoxError>(())
/// });
/// let mut receive = ServiceBuilder::new().layer(CodecLayer::new(MsgpackCodec::new())).service(app);
/// let stop = Bytes::from_static(b"\x82\xa8msg_type\xa4Stop\xa3cid\xa2c1");
/// receive.ready().await.unwrap().call(stop).await.unwrap();
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CodecLayer<C> {
    codec: C,
    peer: Option<Uid>,
}

impl<C: Codec> CodecLayer<C> {
    /// A codec layer for `codec`.
    pub fn new(codec: C) -> Self {
        CodecLayer { codec, peer: None }
    }

    /// Attributes undecodable frames to this peer.
    pub fn peer(mut self, peer: Uid) -> Self {
        self.peer = Some(peer);
        self
    }
}

impl<S, C: Clone> Layer<S> for CodecLayer<C> {
    type Service = CodecService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CodecService {
            inner,
            codec: self.codec.clone(),
            peer: self.peer.clone(),
        }
    }
}

/// The service of [`CodecLayer`].
#[derive(Debug, Clone)]
pub struct CodecService<S, C> {
    inner: S,
    codec: C,
    peer: Option<Uid>,
}

impl<S, C> CodecService<S, C> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, C> Service<Bytes> for CodecService<S, C>
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

    fn call(&mut self, frame: Bytes) -> Self::Future {
        let item = match self.codec.decode(frame.clone()) {
            Ok(msg) => Inbound::Msg(msg),
            Err(e) => {
                // The frame is the bad message's dict only if it was a map.
                let dict = match e.kind() {
                    DecodeErrorKind::Malformed(_)
                    | DecodeErrorKind::Empty
                    | DecodeErrorKind::NotAMap => None,
                    _ => Some(RawPayload::new(frame)),
                };
                Inbound::Invalid(MsgTypeError::undecodable(&e, dict, self.peer.as_ref()))
            }
        };
        ResponseFuture::inner(self.inner.call(item))
    }
}

impl<S, C> Service<Msg> for CodecService<S, C>
where
    S: Service<Bytes, Response = ()>,
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
        match self.codec.encode_to_bytes(&msg) {
            Ok(frame) => ResponseFuture::inner(self.inner.call(frame)),
            Err(e) => ResponseFuture::ready(Err(e.into())),
        }
    }
}
