//! The [`Codec`] trait: frame bytes ⇄ [`Msg`], and payloads ⇄ typed values.

use crate::msg::{Cid, Msg, RawPayload};
use crate::WireProfile;
use bytes::{Bytes, BytesMut};
use serde::{de::DeserializeOwned, Serialize};
use std::fmt;

/// Turns messages into frame bodies and back, and payloads into typed
/// values and back.
///
/// Decoding is two-phase: [`decode`](Codec::decode) parses the envelope and
/// leaves every payload as a [`RawPayload`] slice of the frame;
/// [`decode_payload`](Codec::decode_payload) turns one of those into a
/// typed value later, once the receiving context knows its payload spec.
/// Codecs are stateless and cheap to clone; methods take `&self` so one
/// codec serves both directions of a channel.
///
/// A third-party codec implements this trait and nothing else:
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use scipp_codecs::{Codec, DecodeError, DecodeErrorKind, EncodeError, PayloadError};
/// use scipp_codecs::msg::{Cid, Msg, RawPayload, Stop};
///
/// /// A toy codec that only knows `Stop`, as the cid's bytes.
/// #[derive(Debug, Clone)]
/// struct StopOnly;
///
/// impl Codec for StopOnly {
///     fn name(&self) -> &'static str { "stop-only" }
///     fn encode(&self, msg: &Msg, dst: &mut BytesMut) -> Result<(), EncodeError> {
///         match msg {
///             Msg::Stop(stop) => Ok(dst.extend_from_slice(stop.cid.as_str().as_bytes())),
///             other => Err(EncodeError::unsupported(other.kind(), "stop-only")),
///         }
///     }
///     fn decode(&self, frame: Bytes) -> Result<Msg, DecodeError> {
///         let cid = std::str::from_utf8(&frame)
///             .map_err(|e| DecodeError::new(DecodeErrorKind::Malformed(e.to_string())))?;
///         Ok(Msg::Stop(Stop { cid: Cid::from(cid) }))
///     }
///     fn encode_payload<T: serde::Serialize + ?Sized>(&self, _: &T) -> Result<RawPayload, PayloadError> {
///         Err(PayloadError::encode("stop-only", "no payloads"))
///     }
///     fn decode_payload<T: serde::de::DeserializeOwned>(&self, _: &RawPayload) -> Result<T, PayloadError> {
///         Err(PayloadError::decode("stop-only", "no payloads"))
///     }
/// }
///
/// let mut buf = BytesMut::new();
/// StopOnly.encode(&Msg::Stop(Stop { cid: Cid::from("c1") }), &mut buf).unwrap();
/// assert_eq!(StopOnly.decode(buf.freeze()).unwrap().cid().unwrap().as_str(), "c1");
/// ```
pub trait Codec: Clone + Send + Sync + fmt::Debug + 'static {
    /// A short name for tables and logs, e.g. `"msgpack"`.
    fn name(&self) -> &'static str;

    /// Appends the encoded body of `msg` to `dst`, never touching bytes
    /// already there. Raw payloads are spliced in unchanged.
    ///
    /// # Errors
    /// When the message cannot be expressed in this format.
    fn encode(&self, msg: &Msg, dst: &mut BytesMut) -> Result<(), EncodeError>;

    /// Decodes exactly one frame body (length prefix already removed).
    /// Payload fields come back as zero-copy slices of `frame`.
    ///
    /// # Errors
    /// A [`DecodeError`] saying what is wrong, and where; never a panic.
    fn decode(&self, frame: Bytes) -> Result<Msg, DecodeError>;

    /// Encodes a typed value as a payload in this codec's format.
    ///
    /// # Errors
    /// When serde refuses the value (e.g. a map with non-string keys where
    /// the format needs them).
    fn encode_payload<T: Serialize + ?Sized>(&self, value: &T) -> Result<RawPayload, PayloadError>;

    /// Decodes a payload into a typed value: the second phase of decoding.
    ///
    /// # Errors
    /// When the payload does not match `T`.
    fn decode_payload<T: DeserializeOwned>(&self, raw: &RawPayload) -> Result<T, PayloadError>;

    /// Encodes `msg` into a fresh buffer.
    ///
    /// # Errors
    /// As [`encode`](Codec::encode).
    fn encode_to_bytes(&self, msg: &Msg) -> Result<Bytes, EncodeError> {
        // room for the envelope and the payload up front: no regrowth
        let hint = 96 + msg.pld().map_or(0, RawPayload::len);
        crate::scratch::encode_bytes(hint, |dst| self.encode(msg, dst))
    }

    /// Like [`encode`](Codec::encode), but may leave the tail of a payload
    /// held in two pieces ([`RawPayload::with_tail`], how a big
    /// [`Blob`](crate::Blob) is sent) out of `dst`: the frame body is then
    /// `dst`'s new bytes followed by the returned tail, for the transport
    /// to write from its own buffer (a vectored write). The bytes are the
    /// same as [`encode`](Codec::encode)'s. The default encodes it all
    /// into `dst`.
    ///
    /// ```
    /// use bytes::{Bytes, BytesMut};
    /// use scipp_codecs::{Blob, Codec, msgpack::MsgpackCodec};
    /// use scipp_codecs::msg::{Cid, Msg, Yield};
    ///
    /// let codec = MsgpackCodec::new();
    /// let data = Bytes::from(vec![1u8; 65536]);
    /// let pld = codec.encode_payload(&Blob::new(data.clone())).unwrap();
    /// let msg = Msg::Yield(Yield { cid: Cid::from("c1"), pld });
    /// let mut head = BytesMut::new();
    /// let tail = codec.encode_vectored(&msg, &mut head).unwrap().unwrap();
    /// assert_eq!(tail.as_ptr(), data.as_ptr()); // the caller's buffer, not a copy
    /// assert_eq!([&head[..], &tail[..]].concat(), codec.encode_to_bytes(&msg).unwrap());
    /// ```
    ///
    /// # Errors
    /// As [`encode`](Codec::encode).
    fn encode_vectored(&self, msg: &Msg, dst: &mut BytesMut) -> Result<Option<Bytes>, EncodeError> {
        self.encode(msg, dst).map(|()| None)
    }

    /// [`encode_vectored`](Codec::encode_vectored) into a fresh buffer:
    /// the frame body's head, and the tail that follows it, if any.
    ///
    /// # Errors
    /// As [`encode`](Codec::encode).
    fn encode_to_parts(&self, msg: &Msg) -> Result<(Bytes, Option<Bytes>), EncodeError> {
        let pld = msg.pld();
        let Some(tail_len) = pld.and_then(RawPayload::tail).map(Bytes::len) else {
            return self.encode_to_bytes(msg).map(|b| (b, None));
        };
        let hint = 96 + pld.map_or(0, RawPayload::len) - tail_len;
        let mut tail = None;
        let head = crate::scratch::encode_bytes(hint, |dst| {
            tail = self.encode_vectored(msg, dst)?;
            Ok::<_, EncodeError>(())
        })?;
        Ok((head, tail))
    }

    /// The tractor version whose wire this codec writes. Only msgpack,
    /// tractor's own codec, has more than one; the others always write
    /// every field and answer the default.
    fn wire_profile(&self) -> WireProfile {
        WireProfile::default()
    }

    /// This codec, writing `profile`'s wire (codecs with one encoding
    /// return themselves). A channel calls it once it knows its peer's
    /// version.
    ///
    /// ```
    /// use scipp_codecs::{msgpack::MsgpackCodec, Codec, WireProfile};
    /// let head = MsgpackCodec::new().for_profile(WireProfile::Head);
    /// assert_eq!(head.wire_profile(), WireProfile::Head);
    /// ```
    fn for_profile(&self, profile: WireProfile) -> Self {
        let _ = profile;
        self.clone()
    }
}

/// A frame that is not a valid message: what is wrong and, as far as it
/// could be read, which message and field it concerns.
///
/// ```
/// use scipp_codecs::{Codec, DecodeErrorKind, msgpack::MsgpackCodec};
/// // {"msg_type": "Stop"}: the cid is missing
/// let frame = bytes::Bytes::from_static(b"\x81\xa8msg_type\xa4Stop");
/// let err = MsgpackCodec::new().decode(frame).unwrap_err();
/// assert_eq!(err.kind(), &DecodeErrorKind::MissingField);
/// assert_eq!(err.to_string(), "invalid `Stop` IPC msg: field `cid`: required field is missing");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(Box<Inner>);

/// Boxed so that `Result<Msg, DecodeError>` stays as small as a `Msg`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Inner {
    kind: DecodeErrorKind,
    msg_type: Option<String>,
    field: Option<String>,
    cid: Option<Cid>,
}

/// What is wrong with a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// Not valid in the codec's format at all (truncated, bad marker, ...).
    Malformed(String),
    /// The frame has no bytes.
    Empty,
    /// The top-level value is not a map (or message, for protobuf).
    NotAMap,
    /// No `msg_type` key.
    MissingTag,
    /// A `msg_type` outside the SCIPP message set.
    UnknownTag,
    /// A required field is absent.
    MissingField,
    /// A field holds a value of the wrong type.
    WrongType {
        /// What the schema wants.
        expected: &'static str,
        /// What the frame holds.
        found: String,
    },
    /// Nesting deeper than the codec's limit.
    TooDeep,
    /// Bytes left over after the message.
    TrailingBytes(usize),
}

impl DecodeError {
    /// A decode error of this kind, with nothing known about where.
    pub fn new(kind: DecodeErrorKind) -> Self {
        DecodeError(Box::new(Inner {
            kind,
            msg_type: None,
            field: None,
            cid: None,
        }))
    }

    /// Sets the message type (tag) the error was found in.
    pub fn with_msg_type(mut self, tag: impl Into<String>) -> Self {
        self.0.msg_type = Some(tag.into());
        self
    }

    /// Sets the field path (e.g. `uid` or `_bad_msg.pld`) of the error.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.0.field = Some(field.into());
        self
    }

    /// Sets the context id read from the bad frame, if any.
    pub fn with_cid(mut self, cid: Option<Cid>) -> Self {
        self.0.cid = cid;
        self
    }

    /// What is wrong.
    pub fn kind(&self) -> &DecodeErrorKind {
        &self.0.kind
    }

    /// The `msg_type` of the bad frame, when it could be read (even one
    /// outside the message set).
    pub fn msg_type(&self) -> Option<&str> {
        self.0.msg_type.as_deref()
    }

    /// The offending field, when known.
    pub fn field(&self) -> Option<&str> {
        self.0.field.as_deref()
    }

    /// The context id of the bad frame, when it had a readable one: lets
    /// the error be routed to the dialog it belongs to.
    pub fn cid(&self) -> Option<&Cid> {
        self.0.cid.as_ref()
    }

    /// Nests the field path under `outer`: an error in field `pld` of a
    /// nested message becomes one in `_bad_msg.pld`.
    ///
    /// ```
    /// use scipp_codecs::{DecodeError, DecodeErrorKind};
    /// let err = DecodeError::new(DecodeErrorKind::MissingField).with_field("pld");
    /// assert_eq!(err.within("_bad_msg").field(), Some("_bad_msg.pld"));
    /// ```
    pub fn within(mut self, outer: &str) -> Self {
        self.0.field = Some(match self.0.field.take() {
            Some(inner) => format!("{outer}.{inner}"),
            None => outer.to_owned(),
        });
        self
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.msg_type {
            Some(tag) => write!(f, "invalid `{tag}` IPC msg")?,
            None => f.write_str("invalid IPC msg")?,
        }
        if let Some(field) = &self.0.field {
            write!(f, ": field `{field}`")?;
        }
        match &self.0.kind {
            DecodeErrorKind::Malformed(why) => write!(f, ": malformed frame: {why}"),
            DecodeErrorKind::Empty => f.write_str(": empty frame"),
            DecodeErrorKind::NotAMap => f.write_str(": top-level value is not a map"),
            DecodeErrorKind::MissingTag => f.write_str(": no `msg_type` key"),
            DecodeErrorKind::UnknownTag => f.write_str(": not a SCIPP message type"),
            DecodeErrorKind::MissingField => f.write_str(": required field is missing"),
            DecodeErrorKind::WrongType { expected, found } => {
                write!(f, ": expected {expected}, got {found}")
            }
            DecodeErrorKind::TooDeep => f.write_str(": nested too deeply"),
            DecodeErrorKind::TrailingBytes(n) => {
                write!(f, ": {n} trailing bytes after the message")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// A message that cannot be encoded by a codec.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The codec cannot express this message.
    #[error("the {codec} codec cannot encode a `{kind}` message")]
    Unsupported {
        /// The message kind.
        kind: crate::msg::MsgKind,
        /// The codec's name.
        codec: &'static str,
    },
    /// A raw payload is not a single value in this codec's format.
    #[error("invalid raw payload for field `{field}`: {reason}")]
    BadRawPayload {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Writing the encoded bytes failed.
    #[error("write failed: {0}")]
    Io(std::io::Error),
}

impl EncodeError {
    /// The codec cannot express this message kind.
    pub fn unsupported(kind: crate::msg::MsgKind, codec: &'static str) -> Self {
        EncodeError::Unsupported { kind, codec }
    }
}

/// A payload that could not be encoded from, or decoded into, a type.
///
/// ```
/// use scipp_codecs::{Codec, msgpack::MsgpackCodec};
/// let codec = MsgpackCodec::new();
/// let raw = codec.encode_payload("not-an-int").unwrap();
/// let err = codec.decode_payload::<i64>(&raw).unwrap_err();
/// assert!(err.is_decode());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadError {
    decode: bool,
    format: &'static str,
    message: String,
}

impl PayloadError {
    /// A value that could not be encoded as `format`.
    pub fn encode(format: &'static str, message: impl fmt::Display) -> Self {
        PayloadError {
            decode: false,
            format,
            message: message.to_string(),
        }
    }

    /// A `format` payload that did not decode into the requested type.
    pub fn decode(format: &'static str, message: impl fmt::Display) -> Self {
        PayloadError {
            decode: true,
            format,
            message: message.to_string(),
        }
    }

    /// Whether this came from decoding (rather than encoding).
    pub fn is_decode(&self) -> bool {
        self.decode
    }

    /// The payload format, e.g. `"msgpack"`.
    pub fn format(&self) -> &'static str {
        self.format
    }

    /// The underlying serde message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = if self.decode { "decode" } else { "encode" };
        write!(f, "cannot {dir} {} payload: {}", self.format, self.message)
    }
}

impl std::error::Error for PayloadError {}
