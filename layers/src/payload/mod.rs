//! Payload specs and their validation: what a context's `Started`, `Yield`
//! and `Return` payloads must be, and [`MsgTypeError`], what breaking that
//! (or the protocol itself) looks like.
//!
//! Payloads arrive raw (the codec keeps them undecoded); this layer checks
//! them against the spec of their context ([`PayloadSpecs`]) and turns
//! violations into [`Inbound::Invalid`](crate::Inbound::Invalid) items that
//! a policy layer above handles. On the send side it round-trips `Started`
//! before anything is written.

mod error;
pub(crate) mod render;
mod service;
mod spec;

pub use self::error::{MsgTypeError, Problem};
pub use self::service::{ValidatePayload, ValidatePayloadLayer};
pub use self::spec::{PayloadSpecs, PldSpec};
