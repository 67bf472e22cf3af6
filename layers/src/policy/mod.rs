//! What to do with a [`MsgTypeError`](crate::MsgTypeError) on the receive side: the policy
//! layers a user stacks on top of the checks.
//!
//! | layer | on an invalid item | valid items |
//! |---|---|---|
//! | [`ignore_and_warn`] | logs a `tracing` warning, drops it | delivered |
//! | [`fail_fast`] | delivers the error; its context is failed | delivered, except later ones of a failed context |
//! | [`relay_to_sender`] | sends the peer an `Error` naming the bad message, drops it | delivered |
//! | [`from_fn`] | whatever your closure's [`Action`] says | delivered |
//! | [`deliver`] (a peer's default) | passed on: a context's next receive fails with it | delivered |
//!
//! A policy is a layer like any other, so it works on a hand-built
//! receive stack as below. On a [`Peer`](crate::peer::Peer) the same
//! layers become a [`ReceivePolicy`]: the peer's for all its channels
//! ([`Peer::policy`](crate::peer::Peer::policy)), and one context's own
//! ([`OpenContext::policy`](crate::context::OpenContext::policy),
//! [`ChildContext::set_policy`](crate::context::ChildContext::set_policy)).
//!
//! ```
//! use scipp_layers::{policy, Inbound, BoxError};
//! use tower::ServiceBuilder;
//!
//! let app = tower::service_fn(|_: Inbound| async { Ok::<_, BoxError>(()) });
//! let svc = ServiceBuilder::new()
//!     .layer(policy::from_fn(|err: &scipp_layers::MsgTypeError| {
//!         if err.cid().is_some() { policy::Action::Drop } else { policy::Action::Fail }
//!     }))
//!     .service(app);
//! # drop(svc);
//! ```

mod fail_fast;
mod from_fn;
mod ignore;
mod receive;
mod relay;

pub use self::fail_fast::{fail_fast, FailFast, FailFastLayer};
pub use self::from_fn::{from_fn, Action, Policy, PolicyFn, PolicyFnLayer};
pub use self::ignore::{ignore_and_warn, IgnoreAndWarn, IgnoreAndWarnLayer};
pub use self::receive::{deliver, ReceivePolicy};
pub(crate) use self::receive::{Link, Verdicts};
pub use self::relay::{relay_to_sender, RelayToSender, RelayToSenderLayer};

#[cfg(test)]
fn _policy_is_object_safe(_: &mut dyn Policy) {}
