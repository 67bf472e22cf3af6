//! Frame bodies ⇄ messages, with any [`Codec`].
//!
//! [`CodecLayer`] works in both directions: wrapping a `Service<Inbound>`
//! it decodes frames on the way up (`Service<Bytes>`), and wrapping a
//! `Service<Bytes>` it encodes messages on the way down (`Service<Msg>`).
//! An undecodable frame does not end the channel: it goes up as an
//! [`Inbound::Invalid`] carrying a [`MsgTypeError`].

use crate::framing::Frame;
use crate::future::ResponseFuture;
use crate::payload::MsgTypeError;
use crate::{BoxError, Inbound};
use bytes::Bytes;
use scipp_codecs::msg::{Msg, RawPayload, Uid};
use scipp_codecs::{Codec, DecodeErrorKind, EncodeError};
use std::marker::PhantomData;
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
///
/// Encoding, it hands the service below a frame body as [`Bytes`], in one
/// piece; [`vectored`](CodecLayer::vectored) makes it hand a [`Frame`]
/// instead, whose big payload stays in the sender's buffer (see
/// [`Blob`](scipp_codecs::Blob)).
#[derive(Debug)]
pub struct CodecLayer<C, F = Bytes> {
    codec: C,
    peer: Option<Uid>,
    frames: PhantomData<fn() -> F>,
}

impl<C: Clone, F> Clone for CodecLayer<C, F> {
    fn clone(&self) -> Self {
        CodecLayer {
            codec: self.codec.clone(),
            peer: self.peer.clone(),
            frames: PhantomData,
        }
    }
}

impl<C: Codec> CodecLayer<C> {
    /// A codec layer for `codec`.
    pub fn new(codec: C) -> Self {
        CodecLayer {
            codec,
            peer: None,
            frames: PhantomData,
        }
    }

    /// Encodes into [`Frame`]s: a payload held in two pieces (a big
    /// [`Blob`](scipp_codecs::Blob)) keeps its tail out of the frame's
    /// buffer, for the [`Writer`](crate::channel::Writer) to send from the
    /// sender's own buffer. The bytes on the wire are the same.
    ///
    /// ```
    /// use scipp_layers::{codec::CodecLayer, framing::Frame, BoxError};
    /// use scipp_codecs::{Blob, Codec, msgpack::MsgpackCodec, msg::*};
    /// use tower::{Layer, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let codec = MsgpackCodec::new();
    /// let data = bytes::Bytes::from(vec![9u8; 65536]);
    /// let pld = codec.encode_payload(&Blob::new(data.clone())).unwrap();
    /// let wire = tower::service_fn(move |frame: Frame| {
    ///     let data = data.clone();
    ///     async move {
    ///         assert_eq!(frame.tail().unwrap().as_ptr(), data.as_ptr()); // not copied
    ///         Ok::<_, BoxError>(())
    ///     }
    /// });
    /// let send = CodecLayer::new(codec).vectored().layer(wire);
    /// send.oneshot(Msg::Yield(Yield { cid: Cid::from("c1"), pld })).await.unwrap();
    /// # }
    /// ```
    pub fn vectored(self) -> CodecLayer<C, Frame> {
        CodecLayer {
            codec: self.codec,
            peer: self.peer,
            frames: PhantomData,
        }
    }
}

impl<C: Codec, F> CodecLayer<C, F> {
    /// Attributes undecodable frames to this peer.
    pub fn peer(mut self, peer: Uid) -> Self {
        self.peer = Some(peer);
        self
    }
}

impl<S, C: Clone, F> Layer<S> for CodecLayer<C, F> {
    type Service = CodecService<S, C, F>;

    fn layer(&self, inner: S) -> Self::Service {
        CodecService {
            inner,
            codec: self.codec.clone(),
            peer: self.peer.clone(),
            frames: PhantomData,
        }
    }
}

/// What [`CodecService`] hands the service below when it encodes: a frame
/// body as [`Bytes`] (one piece) or as a [`Frame`] (maybe two). Sealed.
pub trait EncodedFrame: sealed::Sealed + Sized {
    /// `msg`, encoded by `codec`.
    ///
    /// # Errors
    /// The codec's.
    fn encode<C: Codec>(codec: &C, msg: &Msg) -> Result<Self, EncodeError>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for bytes::Bytes {}
    impl Sealed for crate::framing::Frame {}
}

impl EncodedFrame for Bytes {
    fn encode<C: Codec>(codec: &C, msg: &Msg) -> Result<Self, EncodeError> {
        codec.encode_to_bytes(msg)
    }
}

impl EncodedFrame for Frame {
    fn encode<C: Codec>(codec: &C, msg: &Msg) -> Result<Self, EncodeError> {
        Ok(match codec.encode_to_parts(msg)? {
            (head, None) => Frame::new(head),
            (head, Some(tail)) => Frame::with_tail(head, tail),
        })
    }
}

/// The service of [`CodecLayer`].
#[derive(Debug)]
pub struct CodecService<S, C, F = Bytes> {
    inner: S,
    codec: C,
    peer: Option<Uid>,
    frames: PhantomData<fn() -> F>,
}

impl<S: Clone, C: Clone, F> Clone for CodecService<S, C, F> {
    fn clone(&self) -> Self {
        CodecService {
            inner: self.inner.clone(),
            codec: self.codec.clone(),
            peer: self.peer.clone(),
            frames: PhantomData,
        }
    }
}

impl<S, C, F> CodecService<S, C, F> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, C, F> Service<Bytes> for CodecService<S, C, F>
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

impl<S, C, F> Service<Msg> for CodecService<S, C, F>
where
    F: EncodedFrame,
    S: Service<F, Response = ()>,
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
        match F::encode(&self.codec, &msg) {
            Ok(frame) => ResponseFuture::inner(self.inner.call(frame)),
            Err(e) => ResponseFuture::ready(Err(e.into())),
        }
    }
}
