//! Actor trees: spawning and supervising child actors, and being one.
//!
//! tractor's `trio` spawn path, both sides:
//!
//! ```text
//!  parent (Nursery)                                  child (ChildRuntime)
//!  listen; spawn `prog … --uid "('name', 'uuid')" --parent_addr "('host', port)" --loglevel ERROR`
//!                      <── connect back ──  Aid(name, uuid)
//!  Aid(parent)         ──>
//!  SpawnSpec           ──>                   (read once, never acked)
//!                                            listen on bind_addrs, register at reg_addrs
//!  Start … (portal)    ──>                   serve endpoints on the parent link
//!  Start(self:cancel)  ──>  <── StartAck, CancelAck; unregister; exit
//!  reap the process
//! ```
//!
//! - [`Nursery`] is the parent: [`start_actor`](Nursery::start_actor)
//!   returns a [`Portal`] (a [`Channel`](crate::peer::Channel) to the
//!   child), [`run_in_actor`](Nursery::run_in_actor) returns a call's
//!   result, [`close`](Nursery::close) tears everything down
//!   ([`NurseryBuilder::scope`] does it when a body ends). One child
//!   failing cancels its siblings; no child process outlives the nursery.
//! - [`ChildRuntime`] is the child, as a library: any Rust binary can be
//!   spawned by a tractor or scipp parent (`scipp child` is one).
//! - [`ChildArgs`] is the command-line contract, [`SpawnPlan`] the
//!   `SpawnSpec` a parent sends.
//!
//! The `Aid` / `SpawnSpec` exchange is done on the raw transport before the
//! connection becomes a channel (see the private `handoff` module), so the
//! frame sequence is exactly tractor's.

mod args;
mod child;
mod command;
mod config;
mod error;
mod handoff;
mod nursery;
mod portal;
mod spec;
mod supervise;

pub use self::args::{ArgsError, ChildArgs};
pub use self::child::{ChildError, ChildExit, ChildRuntime};
pub use self::command::{find_module_file, ChildSpec, TRACTOR_DEBUG_MODULE};
pub use self::config::NurseryConfig;
pub use self::error::{ChildFailure, FailureKind, Failures, NurseryError};
pub use self::handoff::GreetError;
pub use self::nursery::{Nursery, NurseryBuilder};
pub use self::portal::Portal;
pub use self::spec::SpawnPlan;
