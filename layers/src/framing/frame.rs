use bytes::{Bytes, BytesMut};

/// One outgoing frame body, in one piece or two: a head and a tail that
/// follows it on the wire. The channel's writer sends a big tail (a
/// [`Blob`](scipp_codecs::Blob) payload) from its own buffer, in one
/// vectored write with the length prefix and the head, instead of copying
/// it into the frame.
///
/// ```
/// use bytes::Bytes;
/// use scipp_layers::framing::Frame;
/// let frame = Frame::with_tail(Bytes::from_static(b"head "), Bytes::from_static(b"tail"));
/// assert_eq!(frame.len(), 9);
/// assert_eq!(frame.into_bytes(), "head tail");
/// assert_eq!(Frame::from(Bytes::from_static(b"one")).tail(), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    head: Bytes,
    tail: Option<Bytes>,
}

impl Frame {
    /// A frame body in one piece.
    pub fn new(body: Bytes) -> Self {
        Frame {
            head: body,
            tail: None,
        }
    }

    /// A frame body that is `head` followed by `tail`.
    pub fn with_tail(head: Bytes, tail: Bytes) -> Self {
        Frame {
            head,
            tail: Some(tail),
        }
    }

    /// The first piece (the whole body, without a tail).
    pub fn head(&self) -> &Bytes {
        &self.head
    }

    /// The second piece, if any.
    pub fn tail(&self) -> Option<&Bytes> {
        self.tail.as_ref()
    }

    /// The body's length in bytes.
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.as_ref().map_or(0, Bytes::len)
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Both pieces.
    pub fn into_parts(self) -> (Bytes, Option<Bytes>) {
        (self.head, self.tail)
    }

    /// The body in one buffer: copies a frame in two pieces (what a frame
    /// layer of yours, a `Service<Bytes>`, gets).
    pub fn into_bytes(self) -> Bytes {
        match self.tail {
            None => self.head,
            Some(tail) => {
                let mut all = BytesMut::with_capacity(self.head.len() + tail.len());
                all.extend_from_slice(&self.head);
                all.extend_from_slice(&tail);
                all.freeze()
            }
        }
    }
}

impl From<Bytes> for Frame {
    fn from(body: Bytes) -> Self {
        Frame::new(body)
    }
}

impl From<Frame> for Bytes {
    fn from(frame: Frame) -> Self {
        frame.into_bytes()
    }
}
