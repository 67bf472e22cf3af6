//! What a [`Nursery`](super::Nursery) reports: which child failed, and how.

use super::handoff::GreetError;
use crate::context::ContextError;
use crate::peer::PeerError;
use crate::relay::RemoteError;
use scipp_codecs::msg::Uid;
use std::fmt;
use std::process::ExitStatus;
use std::time::Duration;

/// How one child failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum FailureKind {
    /// Its task raised: the remote error with its type, message,
    /// traceback and `relay_path`.
    Remote(RemoteError),
    /// Its process ended without being asked to (killed by a signal,
    /// crashed, or exited on its own), with the exit status. tractor
    /// 978691c6 reports nothing in this case.
    Exited(ExitStatus),
    /// It did not connect back in time, or exited first; its process was
    /// killed.
    NeverConnected {
        /// The bound waited.
        after: Duration,
        /// The exit status, if it exited by itself before connecting.
        status: Option<ExitStatus>,
    },
    /// Its channel closed while its process lived on; it was killed (the
    /// status of that).
    LinkLost(ExitStatus),
    /// It connected back, but the spawn handshake failed.
    Handshake(String),
    /// Its process could not be started.
    Spawn(std::io::Error),
}

impl Clone for FailureKind {
    fn clone(&self) -> Self {
        match self {
            FailureKind::Remote(r) => FailureKind::Remote(r.clone()),
            FailureKind::Exited(s) => FailureKind::Exited(*s),
            FailureKind::LinkLost(s) => FailureKind::LinkLost(*s),
            FailureKind::NeverConnected { after, status } => FailureKind::NeverConnected {
                after: *after,
                status: *status,
            },
            FailureKind::Handshake(s) => FailureKind::Handshake(s.clone()),
            // io::Error is not Clone: its kind and text are
            FailureKind::Spawn(e) => {
                FailureKind::Spawn(std::io::Error::new(e.kind(), e.to_string()))
            }
        }
    }
}

/// One failed child of a nursery, named.
#[derive(Debug, Clone)]
pub struct ChildFailure {
    /// The child's name.
    pub name: String,
    /// The uid the parent assigned it.
    pub uid: Uid,
    /// Its process id (none when it could not be started).
    pub pid: Option<u32>,
    /// What happened.
    pub kind: FailureKind,
}

impl ChildFailure {
    /// The remote error, when the child's task raised.
    pub fn remote(&self) -> Option<&RemoteError> {
        match &self.kind {
            FailureKind::Remote(r) => Some(r),
            _ => None,
        }
    }

    /// The exit status, when the child's process died unasked.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        match &self.kind {
            FailureKind::Exited(s) => Some(*s),
            FailureKind::NeverConnected { status, .. } => *status,
            _ => None,
        }
    }
}

impl fmt::Display for ChildFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "child {:?}", self.name)?;
        if let Some(pid) = self.pid {
            write!(f, " (pid {pid})")?;
        }
        match &self.kind {
            FailureKind::Remote(r) => {
                let why = [r.message(), r.traceback()]
                    .iter()
                    .flat_map(|t| t.lines().rev())
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .unwrap_or("")
                    .to_owned();
                // a Python traceback ends with "Type: text": not twice
                let prefix = format!("{}: ", r.boxed_type());
                let why = why.strip_prefix(&prefix).unwrap_or(&why);
                write!(f, " raised {prefix}{why}")
            }
            FailureKind::Exited(status) => write!(f, " exited unexpectedly ({status})"),
            FailureKind::LinkLost(status) => {
                write!(f, " lost its link to us while running; killed ({status})")
            }
            FailureKind::NeverConnected { after, status } => match status {
                Some(s) => write!(f, " exited before connecting back ({s})"),
                None => write!(f, " did not connect back within {after:?}; killed"),
            },
            FailureKind::Handshake(why) => write!(f, " failed its spawn handshake: {why}"),
            FailureKind::Spawn(e) => write!(f, " could not be started: {e}"),
        }
    }
}

/// Every child that failed, in the order they failed.
#[derive(Debug, Default, Clone)]
pub struct Failures(pub Vec<ChildFailure>);

impl fmt::Display for Failures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [] => f.write_str("no child failed"),
            [one] => one.fmt(f),
            many => {
                write!(f, "{} children failed:", many.len())?;
                for one in many {
                    write!(f, "\n  - {one}")?;
                }
                Ok(())
            }
        }
    }
}

/// Why a nursery operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NurseryError {
    /// One child (or a group of them) failed; its siblings were cancelled.
    #[error("{0}")]
    Failed(Failures),
    /// This child was cancelled because a sibling failed (one cancels
    /// all); `cause` holds the failures known at that point.
    #[error("child {name:?} was cancelled: {cause}")]
    Cancelled {
        /// The cancelled child.
        name: String,
        /// Why the nursery cancelled its children.
        cause: Failures,
    },
    /// The nursery is tearing down (closed, cancelled, or a child failed):
    /// no new child is started.
    #[error("the nursery is tearing down; {0} was not started")]
    Closing(String),
    /// A call on a child failed without the child failing (e.g. its result
    /// is not of the requested type).
    #[error("call on child {name:?}: {source}")]
    Call {
        /// The child.
        name: String,
        /// Why.
        source: ContextError,
    },
    /// Listening for children failed.
    #[error("listening for children: {0}")]
    Listen(std::io::Error),
    /// A module's file could not be found.
    #[error("finding module {module:?} with {python}: {why}")]
    Module {
        /// The module.
        module: String,
        /// The interpreter asked.
        python: String,
        /// Why.
        why: String,
    },
}

impl NurseryError {
    /// The failed children, if this is [`Failed`](Self::Failed).
    pub fn failures(&self) -> &[ChildFailure] {
        match self {
            NurseryError::Failed(f) => &f.0,
            _ => &[],
        }
    }
}

impl From<GreetError> for FailureKind {
    fn from(e: GreetError) -> Self {
        FailureKind::Handshake(e.to_string())
    }
}

impl From<PeerError> for FailureKind {
    fn from(e: PeerError) -> Self {
        FailureKind::Handshake(e.to_string())
    }
}
