//! The SCIPP middleware stack: each IPC concern of tractor's protocol as a
//! composable [`tower::Layer`].
//!
//! - [`framing`]: tractor's length-prefixed frames over any byte transport.
//!
//! The message set and codecs live in [`scipp_codecs`], re-exported here
//! as [`codecs`].
#![doc(test(attr(deny(warnings))))]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use scipp_codecs as codecs;

pub mod framing;
