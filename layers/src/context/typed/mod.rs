//! Typed dialogs: a context whose kwargs, `Started`, stream item and
//! `Return` types are declared once, in a [`Dialog`], and checked by the
//! compiler on both sides.
//!
//! The caller opens it with [`Channel::dialog`](crate::peer::Channel::dialog)
//! and holds a [`TypedContext`]; the endpoint, registered with
//! [`Endpoints::dialog`](crate::route::Endpoints::dialog), gets a
//! [`TypedChildContext`]. Each phase has its own payload spec
//! ([`PldSpec::dialog`](crate::payload::PldSpec::dialog)), enforced by the
//! payload layer: a peer that sends the wrong type in any phase (a
//! Python actor, or the untyped API) gets a `MsgTypeError` naming it, e.g.
//! `Return.pld: int`. These are thin wrappers over [`Context`](super::Context)
//! and [`ChildContext`](super::ChildContext): the untyped form stays for
//! `Any` payloads.
//!
//! # Example
//!
//! ```
//! use scipp_layers::{context::Dialog, peer::Peer, route::Endpoints};
//! use scipp_codecs::msgpack::MsgpackCodec;
//!
//! /// Doubles every int it is sent; returns how many it doubled.
//! struct Double;
//!
//! impl Dialog for Double {
//!     const NS: &'static str = "demo";
//!     const FUNC: &'static str = "double";
//!     type Kwargs = ();        // none: sent as `{}`, as tractor does
//!     type Started = String;   // the first value
//!     type Item = i64;         // streamed both ways
//!     type Return = u64;       // the final value
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut endpoints = Endpoints::new();
//! endpoints.dialog(Double, |mut ctx, ()| async move {
//!     ctx.started("ready".to_owned()).await?;
//!     let mut n = 0;
//!     while let Some(v) = ctx.recv().await? {
//!         ctx.send(2 * v).await?;
//!         n += 1;
//!     }
//!     Ok(n)
//! });
//! let server = Peer::new("server", MsgpackCodec::new()).endpoints(endpoints);
//! let client = Peer::new("client", MsgpackCodec::new());
//! let (a, b) = tokio::io::duplex(4096);
//! let (_served, chan) = tokio::join!(server.channel(a), client.channel(b));
//! let chan = chan?;
//!
//! let (mut ctx, ready) = chan.dialog(Double, ()).await?;
//! assert_eq!(ready, "ready");
//! ctx.send(21).await?;
//! assert_eq!(ctx.recv().await?, Some(42));
//! ctx.close().await?;
//! assert_eq!(ctx.result().await?, 1);
//! # Ok(()) }
//! ```
//!
//! A use that does not match the declaration does not compile; sending a
//! string where the items are ints, say:
//!
//! ```compile_fail,E0277
//! # #![allow(unused)]
//! # use scipp_layers::context::Dialog;
//! # use scipp_codecs::msgpack::MsgpackCodec;
//! # struct Double;
//! # impl Dialog for Double {
//! #     const NS: &'static str = "demo";
//! #     const FUNC: &'static str = "double";
//! #     type Kwargs = ();
//! #     type Started = String;
//! #     type Item = i64;
//! #     type Return = u64;
//! # }
//! # async fn call(chan: scipp_layers::peer::Channel<MsgpackCodec>) -> Result<(), Box<dyn std::error::Error>> {
//! let (mut ctx, _ready) = chan.dialog(Double, ()).await?;
//! ctx.send("twenty-one").await?; // Item is i64
//! # Ok(()) }
//! ```
//!
//! or an endpoint that returns something else than `Return`:
//!
//! ```compile_fail,E0271
//! # #![allow(unused)]
//! # use scipp_layers::{context::Dialog, route::Endpoints};
//! # use scipp_codecs::msgpack::MsgpackCodec;
//! # struct Double;
//! # impl Dialog for Double {
//! #     const NS: &'static str = "demo";
//! #     const FUNC: &'static str = "double";
//! #     type Kwargs = ();
//! #     type Started = String;
//! #     type Item = i64;
//! #     type Return = u64;
//! # }
//! let mut endpoints = Endpoints::<MsgpackCodec>::new();
//! endpoints.dialog(Double, |mut ctx, ()| async move {
//!     ctx.started("ready".to_owned()).await?;
//!     Ok("done".to_owned()) // Return is u64
//! });
//! ```

mod child;
mod kwargs;
mod parent;

pub use self::child::TypedChildContext;
pub use self::kwargs::NoKwargs;
pub use self::parent::{OpenDialog, TypedContext};

use crate::payload::PldSpec;
use scipp_codecs::Codec;
use serde::{de::DeserializeOwned, Serialize};

/// The declaration of a context endpoint: its name and the types of its
/// kwargs and of each phase, written once and used by both sides
/// ([`Channel::dialog`](crate::peer::Channel::dialog),
/// [`Endpoints::dialog`](crate::route::Endpoints::dialog)). See the
/// [module docs](crate::context::typed) for an example.
pub trait Dialog: 'static {
    /// The namespace of the endpoint (tractor: the module path).
    const NS: &'static str;
    /// The endpoint's function name.
    const FUNC: &'static str;
    /// The keyword arguments: a struct (or map), or `()` /
    /// [`NoKwargs`] for none (sent as an empty map).
    type Kwargs: Serialize + DeserializeOwned + Send + 'static;
    /// The child's first value (`Started`).
    type Started: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// The stream items, both ways (`Yield`).
    type Item: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// The child's final value (`Return`).
    type Return: Serialize + DeserializeOwned + Send + Sync + 'static;
}

/// The per-phase payload spec of dialog `D`.
fn spec_of<D: Dialog, C: Codec>() -> PldSpec<C> {
    PldSpec::dialog::<D::Started, D::Item, D::Return>()
}
