use super::{FrameCodec, DEFAULT_MAX_FRAME_LEN};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;
use tower::Layer;

/// Wraps a byte transport into a framed `Stream` of bodies and `Sink` of
/// bodies, with tractor's length prefix.
///
/// ```
/// use scipp_layers::framing::FramingLayer;
/// use tower::Layer;
/// let (io, _peer) = tokio::io::duplex(64);
/// let framed = FramingLayer::new().layer(io);
/// assert_eq!(framed.codec().max_frame_len(), scipp_layers::framing::DEFAULT_MAX_FRAME_LEN);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct FramingLayer {
    config: Builder,
}

impl FramingLayer {
    /// The layer with default settings.
    pub fn new() -> Self {
        FramingLayer::default()
    }

    /// A builder to configure the layer.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The codec this layer frames with.
    pub fn codec(&self) -> FrameCodec {
        FrameCodec::new(self.config.max_frame_len)
    }
}

impl<T: AsyncRead + AsyncWrite> Layer<T> for FramingLayer {
    type Service = Framed<T, FrameCodec>;

    fn layer(&self, io: T) -> Self::Service {
        Framed::new(io, self.codec())
    }
}

/// Configures a [`FramingLayer`].
#[derive(Debug, Clone, Copy)]
pub struct Builder {
    max_frame_len: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
        }
    }
}

impl Builder {
    /// The largest frame body accepted or sent, in bytes; at most
    /// `u32::MAX`. Defaults to [`DEFAULT_MAX_FRAME_LEN`].
    ///
    /// ```
    /// use scipp_layers::framing::FramingLayer;
    /// let layer = FramingLayer::builder().max_frame_len(1 << 20).new_layer();
    /// assert_eq!(layer.codec().max_frame_len(), 1 << 20);
    /// ```
    pub fn max_frame_len(&mut self, n: usize) -> &mut Self {
        self.max_frame_len = n.min(u32::MAX as usize);
        self
    }

    /// Builds the layer.
    pub fn new_layer(&self) -> FramingLayer {
        FramingLayer { config: *self }
    }
}
