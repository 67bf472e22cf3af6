//! Joining a tractor tree: the registrar (tractor's name service) from
//! both sides.
//!
//! tractor actors find each other by name through a *registrar*: an actor
//! that serves the `self:*` registry RPCs (`register_actor`,
//! `unregister_actor`, `find_actor`, `wait_for_actor`, `get_registry`,
//! and at HEAD `delete_addr`). This module speaks that protocol as it is
//! on the wire (`vectors/tractor-more/registrar.json`):
//!
//! - [`Registrar`]: be the registrar, for scipp peers and Python tractor
//!   actors alike. Install its endpoints into a [`Peer`](crate::peer::Peer)
//!   marked [`is_registrar`](crate::peer::Peer::is_registrar).
//! - [`RegistryClient`]: use one: register this peer (and unregister on
//!   shutdown, see [`Registration`]), find or wait for an actor by name,
//!   and [connect to it by name](RegistryClient::connect).
//!
//! The argument and result shapes follow the channel's
//! [`WireProfile`](scipp_codecs::WireProfile): tractor 978691c6 registers
//! one `sockaddr` per actor and answers `[host, port]`; HEAD registers
//! `addr`s, may hold several per actor and answers lists of them. Both
//! sides accept either shape.
//!
//! **Across hosts.** A peer listening on a wildcard address (`0.0.0.0`,
//! `[::]`) cannot register it: no other host can connect there.
//! [`RegistryClient::register_peer`] registers the IP of its own end of
//! the connection to the registrar instead (see
//! [`RegistryClient::routable`]), unless given another address to
//! advertise. The [`Registrar`] *refuses* a wildcard registration with a
//! `ValueError` (and logs a warning), whoever sends it, tractor actors
//! included: an entry nobody can reach would only fail later, far from its
//! cause.
//!
//! ```
//! use scipp_layers::{peer::Peer, registry::{Registrar, RegistryClient}, route::Endpoints};
//! use scipp_codecs::{msg::Addr, msgpack::MsgpackCodec};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // the registrar, reachable at 127.0.0.1:1616 (say)
//! let registrar = Registrar::new();
//! let mut endpoints = Endpoints::new();
//! registrar.install(&mut endpoints);
//! let server = Peer::new("registrar", MsgpackCodec::new()).endpoints(endpoints).is_registrar(true);
//!
//! // a client registers a service, then finds it by name
//! let client = Peer::new("scipp_client", MsgpackCodec::new());
//! let (a, b) = tokio::io::duplex(1 << 16);
//! let (served, chan) = tokio::join!(server.accept(a), client.channel(b));
//! let registry = RegistryClient::new(chan.unwrap());
//! let addr: Addr = "127.0.0.1:4242".parse().unwrap();
//! registry.register(&client.uid(), &addr).await.unwrap();
//! assert_eq!(registry.find("scipp_client").await.unwrap(), vec![addr.clone()]);
//! assert_eq!(registrar.find("scipp_client"), Some(vec![addr]));
//! # drop(served);
//! # }
//! ```

mod client;
mod registrar;

pub use self::client::{is_wildcard, Registration, RegistryClient, RegistryError};
pub use self::registrar::Registrar;
