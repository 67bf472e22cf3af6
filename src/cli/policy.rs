//! `--policy` and `--allow`/`--trust`: the receive policy and the
//! authorization layer of the peers the CLI runs.

use super::CliError;
use scipp::authorize::AuthorizeLayer;
use scipp::policy::{self, ReceivePolicy};

/// `--policy`: what a peer does with an invalid message (a payload outside
/// its spec, a message out of order).
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub(crate) enum PolicyName {
    /// the context's next receive fails with it; it goes on after (tractor's default)
    #[default]
    Deliver,
    /// the context fails, later messages of it are dropped; an invalid frame of no context ends the connection
    FailFast,
    /// log a warning and drop it
    Ignore,
    /// send the sender an Error naming it, and drop it
    Relay,
}

impl From<PolicyName> for ReceivePolicy {
    fn from(name: PolicyName) -> Self {
        match name {
            PolicyName::Deliver => policy::deliver().into(),
            PolicyName::FailFast => policy::fail_fast().into(),
            PolicyName::Ignore => policy::ignore_and_warn().into(),
            PolicyName::Relay => ReceivePolicy::relay_to_sender(),
        }
    }
}

/// The authorization layer for `--allow NS:FUNC ...` and `--trust NAME
/// ...`; `None` when neither is given (every endpoint is callable, any
/// peer may cancel the actor, as in tractor).
pub(crate) fn authorization(
    allow: &[String],
    trust: &[String],
) -> Result<Option<AuthorizeLayer>, CliError> {
    if allow.is_empty() && trust.is_empty() {
        return Ok(None);
    }
    let mut layer = AuthorizeLayer::new();
    for spec in allow {
        layer = layer
            .allow_spec(spec)
            .map_err(|e| format!("--allow: {e}"))?;
    }
    for name in trust {
        layer = layer.trust(name);
    }
    Ok(Some(layer))
}
