//! scipp: the typed structured-concurrency IPC protocol of the Python actor
//! runtime [tractor] ("SCIPP") as a tower-style middleware stack.
//!
//! This facade re-exports the two crates that do the work:
//!
//! - [`codecs`] (`scipp-codecs`): the message set ([`msg`]), the [`Codec`]
//!   trait and the codecs: [`MsgpackCodec`] (byte for byte as tractor
//!   writes it), `CborCodec` and `ProtobufCodec`.
//! - [`layers`] (`scipp-layers`): the stack, one `tower::Layer` per
//!   concern: [`framing`], [`codec`], [`msg_type`], [`payload`],
//!   [`policy`], and [`channel`] to run it on a transport.
//!
//! Everyday code needs one import, [`prelude`]: peers, channels,
//! endpoints, contexts and their errors, with the [`DefaultCodec`]
//! (tractor's msgpack) filled in wherever a codec type would go.
//!
//! # Example: a real tractor frame off a real socket
//!
//! ```
//! use futures_util::{SinkExt, StreamExt};
//! use scipp::{framing::FramingLayer, msg::*, Codec, MsgpackCodec};
//! use tower::Layer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (a, b) = tokio::io::duplex(4096);
//! let (mut tx, mut rx) = (FramingLayer::new().layer(a), FramingLayer::new().layer(b));
//! let codec = MsgpackCodec::new();
//!
//! let pld = codec.encode_payload(&42).unwrap();
//! let sent = Msg::Yield(Yield { cid: Cid::from("c1"), pld });
//! tx.send(codec.encode_to_bytes(&sent).unwrap()).await.unwrap();
//!
//! let frame = rx.next().await.unwrap().unwrap();
//! let Msg::Yield(got) = codec.decode(frame).unwrap() else { unreachable!() };
//! assert_eq!(codec.decode_payload::<i64>(&got.pld).unwrap(), 42);
//! # }
//! ```
//!
//! [tractor]: https://github.com/goodboy/tractor
//!
//! # Feature flags
//!
//! `msgpack`, `cbor` and `protobuf` (all on by default) enable the codecs
//! of the same names in `scipp-codecs`. `tls` (on by default) enables
//! [`tls`]: TLS between scipp peers, with certificate identities, and the
//! `--tls-*` flags of the CLI.
#![doc(test(attr(deny(warnings))))]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use scipp_codecs as codecs;
pub use scipp_layers as layers;
pub use scipp_layers::server;

#[cfg(feature = "cbor")]
pub use scipp_codecs::cbor::{self, CborCodec};
#[cfg(feature = "msgpack")]
pub use scipp_codecs::msgpack::{self, MsgpackCodec};
#[cfg(feature = "protobuf")]
pub use scipp_codecs::protobuf::{self, ProtobufCodec};
pub use scipp_codecs::{
    msg, Blob, Codec, DecodeError, DecodeErrorKind, EncodeError, PayloadError, WireProfile,
};
#[cfg(feature = "tls")]
pub use scipp_layers::tls;
pub use scipp_layers::{
    authorize, channel, codec, context, examples, framing, msg_type, new_uuid, payload, peer,
    policy, registry, relay, route, spawn, stack, BoxError, DefaultCodec, Inbound, MsgTypeError,
};

pub mod prelude;
pub mod sample;

/// The README's code, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
