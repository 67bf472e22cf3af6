//! Length-prefixed frames: tractor's `u32` little-endian length, then the
//! body.
//!
//! [`FrameCodec`] is a tokio-util [`Decoder`](tokio_util::codec::Decoder) /
//! [`Encoder`](tokio_util::codec::Encoder) built on tokio-util's
//! [`LengthDelimitedCodec`](tokio_util::codec::LengthDelimitedCodec), with
//! tractor's header layout and one guarantee on top: the read buffer never
//! grows because of what a header *claims*, only because of bytes that
//! actually arrived. [`FramingLayer`] wraps any `AsyncRead + AsyncWrite`
//! (TCP, Unix socket, `tokio::io::duplex`) into a framed `Stream + Sink`.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use futures_util::{SinkExt, StreamExt};
//! use scipp_layers::framing::FramingLayer;
//! use tower::Layer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (a, b) = tokio::io::duplex(1024);
//! let framing = FramingLayer::builder().max_frame_len(1 << 20).new_layer();
//! let (mut tx, mut rx) = (framing.layer(a), framing.layer(b));
//!
//! tx.send(Bytes::from_static(b"hello")).await.unwrap();
//! assert_eq!(rx.next().await.unwrap().unwrap(), "hello");
//! # }
//! ```

mod codec;
mod error;
mod frame;
mod layer;

pub use self::codec::FrameCodec;
pub use self::error::FrameError;
pub use self::frame::Frame;
pub use self::layer::{Builder, FramingLayer};

/// The default maximum frame body length: 16 MiB.
///
/// tractor itself checks nothing below the `u32` limit (4 GiB − 1), and
/// single frames of 1 MiB are normal there; raise this with
/// [`Builder::max_frame_len`] if your payloads are bigger.
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 4;

/// The most the read buffer grows ahead of the bytes that have arrived,
/// whatever a header claims: 128 KiB. A frame up to this size is read
/// into one allocation (at 64 KiB, a frame of a 64 KiB payload overran it
/// by its envelope, and the last few bytes cost a reallocation copying the
/// whole frame); bigger ones grow with what arrives. A peer that claims a
/// big frame and goes silent costs this much, not the claim.
pub const READ_AHEAD: usize = 128 * 1024;
