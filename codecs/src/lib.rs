//! The wire of SCIPP, the typed structured-concurrency IPC protocol of the
//! Python actor runtime [tractor]: its message set and codecs.
//!
//! - [`msg`]: one Rust type per message (`Aid`, `Start`, `StartAck`,
//!   `Started`, `Yield`, `Stop`, `Return`, `CancelAck`, `Error`,
//!   `SpawnSpec`) with typed ids ([`msg::Cid`], [`msg::Uid`]).
//! - [`Codec`]: frame body ⇄ [`msg::Msg`], and payload ⇄ typed value.
//!   Decoding is two-phase: payloads stay [`msg::RawPayload`] slices of the
//!   frame until a context decodes them against its payload spec.
//! - [`msgpack::MsgpackCodec`]: tractor's own wire, byte for byte;
//!   `CborCodec` and `ProtobufCodec` carry the same messages in other
//!   formats, for comparing and swapping codecs.
//!
//! This crate does no I/O; framing and the rest of the stack live in
//! `scipp-layers`.
//!
//! # Decoding a real tractor frame
//!
//! A `Started("hello")` captured from a tractor actor (4-byte little-endian
//! length, then a msgpack map):
//!
//! ```
//! use scipp_codecs::{Codec, msgpack::MsgpackCodec, msg::Msg};
//!
//! let frame = hex(
//!     "4600000083a86d73675f74797065a753746172746564a3636964d924633439633438\
//!      64342d376161332d346435322d393330332d323831613361316665313064a3706c64a568656c6c6f",
//! );
//! let len = u32::from_le_bytes(frame[..4].try_into().unwrap()) as usize;
//! let body = bytes::Bytes::from(frame).slice(4..4 + len);
//!
//! let codec = MsgpackCodec::new();
//! let msg = codec.decode(body.clone()).unwrap();
//! let Msg::Started(started) = &msg else { panic!("not a Started") };
//! assert_eq!(started.cid.as_str(), "c49c48d4-7aa3-4d52-9303-281a3a1fe10d");
//!
//! // Phase two: the payload, decoded against a type.
//! let first: String = codec.decode_payload(&started.pld).unwrap();
//! assert_eq!(first, "hello");
//!
//! // And back to the same bytes.
//! assert_eq!(codec.encode_to_bytes(&msg).unwrap(), body);
//! # fn hex(s: &str) -> Vec<u8> {
//! #     (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
//! # }
//! ```
//!
//! # Feature flags
//!
//! - `msgpack` (default): [`msgpack::MsgpackCodec`].
//! - `cbor`: `cbor::CborCodec` (ciborium).
//! - `protobuf`: `protobuf::ProtobufCodec` (prost derives, no `protoc`;
//!   implies `msgpack`, the format of its payloads).
//!
//! [tractor]: https://github.com/goodboy/tractor
#![doc(test(attr(deny(warnings))))]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod blob;
#[cfg(feature = "cbor")]
pub mod cbor;
mod codec;
#[cfg(any(feature = "msgpack", feature = "cbor"))]
mod envelope;
pub mod msg;
#[cfg(feature = "msgpack")]
pub mod msgpack;
#[cfg(feature = "protobuf")]
pub mod protobuf;
mod scratch;

/// How deeply arrays and maps may nest inside a payload before decoding it
/// fails: 256 levels. Real payloads nest a handful of levels; the bound
/// keeps a hostile payload (a few bytes per level) from overflowing the
/// decoding thread's stack, which with serde's recursive decoders happens
/// near 500 levels on a 2 MiB Tokio worker stack in a debug build. The
/// CBOR codec uses ciborium's bound, also 256.
pub const DEFAULT_MAX_DEPTH: u16 = 256;

pub use blob::{Blob, BLOB_SHARE_MIN};
pub use codec::{Codec, DecodeError, DecodeErrorKind, EncodeError, PayloadError};

/// Which tractor version's wire a codec writes.
///
/// The versions differ only in the `Aid` message: tractor's newest commit
/// (3690e43a, [`Head`](WireProfile::Head)) adds `pid`, `is_registrar` and
/// `is_probe`. Decoding accepts either; this picks what encoding emits, so
/// a frame re-encodes byte for byte under the profile it was written with.
///
/// ```
/// use scipp_codecs::WireProfile;
/// assert_eq!(WireProfile::default(), WireProfile::V978691c6);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum WireProfile {
    /// tractor 978691c6: `Aid` is `{msg_type, name, uuid}`.
    #[default]
    V978691c6,
    /// tractor 3690e43a (HEAD): `Aid` adds `pid`, `is_registrar`, `is_probe`.
    Head,
}

impl WireProfile {
    /// The profile for a tractor commit id (any unambiguous prefix of
    /// 978691c6 or 3690e43a), e.g. from a transcript's `meta`.
    ///
    /// ```
    /// use scipp_codecs::WireProfile;
    /// assert_eq!(WireProfile::from_commit("3690e43a"), Some(WireProfile::Head));
    /// ```
    pub fn from_commit(commit: &str) -> Option<Self> {
        Self::from_commit_id(commit)
    }

    /// The profile a peer's `Aid` was written with: [`Head`](Self::Head)
    /// when it carries any of HEAD's fields (HEAD always sends `pid` and
    /// `is_registrar`), else [`V978691c6`](Self::V978691c6).
    ///
    /// ```
    /// use scipp_codecs::{msg::Aid, WireProfile};
    /// let mut aid = Aid::new("scipp_peer", "b6d32d8d-e027-4e91-964e-2e20c457001b");
    /// assert_eq!(WireProfile::of_aid(&aid), WireProfile::V978691c6);
    /// aid.pid = Some(4242);
    /// assert_eq!(WireProfile::of_aid(&aid), WireProfile::Head);
    /// ```
    pub fn of_aid(aid: &msg::Aid) -> Self {
        if aid.pid.is_some() || aid.is_registrar.is_some() || aid.is_probe {
            WireProfile::Head
        } else {
            WireProfile::V978691c6
        }
    }

    fn from_commit_id(commit: &str) -> Option<Self> {
        let commit = commit.to_ascii_lowercase();
        if commit.len() >= 4 && "978691c6".starts_with(&commit[..commit.len().min(8)]) {
            Some(WireProfile::V978691c6)
        } else if commit.len() >= 4 && "3690e43a".starts_with(&commit[..commit.len().min(8)]) {
            Some(WireProfile::Head)
        } else {
            None
        }
    }
}

/// The crate README's example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
