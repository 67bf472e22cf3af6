//! What to do with a [`MsgTypeError`](crate::MsgTypeError) on the receive side: the policy
//! layers a user stacks on top of the checks.
//!
//! | layer | on an invalid item | valid items |
//! |---|---|---|
//! | [`ignore_and_warn`] | logs a `tracing` warning, drops it | delivered |
//! | [`fail_fast`] | delivers the error; its context is failed | delivered, except later ones of a failed context |
//! | [`relay_to_sender`] | sends the peer an `Error` naming the bad message, drops it | delivered |
//! | [`from_fn`] | whatever your closure's [`Action`] says | delivered |
//!
//! A policy is a layer like any other, so it works on a whole channel's
//! receive stack or on one context's delivery path.
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
mod relay;

pub use self::fail_fast::{fail_fast, FailFast, FailFastLayer};
pub use self::from_fn::{from_fn, Action, Policy, PolicyFn, PolicyFnLayer};
pub use self::ignore::{ignore_and_warn, IgnoreAndWarn, IgnoreAndWarnLayer};
pub use self::relay::{relay_to_sender, RelayToSender, RelayToSenderLayer};

#[cfg(test)]
fn _policy_is_object_safe(_: &mut dyn Policy) {}
