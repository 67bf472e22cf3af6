//! What everyday code needs, in one import: `use scipp::prelude::*;`.
//!
//! Peers and their channels, endpoints, contexts (typed and untyped), the
//! errors they return, payload specs and receive policies, [`Blob`] (byte
//! payloads without copies), the registry,
//! and the [`DefaultCodec`] every generic type uses when none is named
//! (tractor's msgpack), so a closure or a function signature needs no
//! codec type.
//!
//! ```
//! use scipp::prelude::*;
//!
//! #[derive(serde::Deserialize)]
//! struct Add { a: i64, b: i64 }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let mut endpoints = Endpoints::new();
//! endpoints.rpc("calc", "add", |kw: Add| async move { Ok(kw.a + kw.b) });
//! let server = Peer::named("calc").endpoints(endpoints).serve_tcp("127.0.0.1:0").await?;
//!
//! let chan: Channel = Peer::named("client").connect_tcp(server.local_addr().to_string()).await?;
//! let sum: i64 = chan.rpc("calc", "add", &std::collections::BTreeMap::from([("a", 2), ("b", 3)])).await?;
//! assert_eq!(sum, 5);
//! server.shutdown().await?;
//! # Ok(()) }
//! ```

pub use scipp_codecs::msg::{Addr, Aid, Uid};
pub use scipp_codecs::{Blob, Codec};
pub use scipp_layers::context::{
    ChildContext, Context, ContextError, Dialog, NoKwargs, OnInvalid, TypedChildContext,
    TypedContext,
};
pub use scipp_layers::payload::PldSpec;
pub use scipp_layers::peer::{Channel, Config, Peer, PeerError};
pub use scipp_layers::policy::{self, ReceivePolicy};
pub use scipp_layers::registry::{Registrar, RegistryClient};
pub use scipp_layers::relay::{Raise, RemoteError};
pub use scipp_layers::route::{Call, Endpoints};
pub use scipp_layers::server::{ServeConfig, Server};
pub use scipp_layers::{BoxError, DefaultCodec};
