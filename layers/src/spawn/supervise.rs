//! What a nursery knows of each child process, the task that watches it,
//! and the one-cancels-all bookkeeping.

use super::config::NurseryConfig;
use super::error::{ChildFailure, FailureKind, Failures};
use crate::peer::Channel;
use crate::registry::Registrar;
use scipp_codecs::msg::Uid;
use scipp_codecs::Codec;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The failures of a nursery and its one-cancels-all trigger, shared with
/// every child's monitor.
#[derive(Default)]
pub(crate) struct Supervision {
    pub(crate) failures: Mutex<Vec<ChildFailure>>,
    /// Cancelled at the first failure: every child gets cancelled.
    pub(crate) failed: CancellationToken,
    /// Cancelled when the nursery tears down for any reason.
    pub(crate) closing: CancellationToken,
    /// The nursery's own registrar, if it is one: a dead child's entry
    /// is removed (tractor leaves it behind).
    pub(crate) registrar: Option<Registrar>,
}

impl Supervision {
    pub(crate) fn fail(&self, failure: ChildFailure) {
        tracing::info!("{failure}; cancelling its siblings");
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(failure);
        self.failed.cancel();
        self.closing.cancel();
    }

    pub(crate) fn take(&self) -> Vec<ChildFailure> {
        std::mem::take(&mut *self.failures.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The failure recorded for child `uid`, if any.
    pub(crate) fn failure_of(&self, uid: &Uid) -> Option<ChildFailure> {
        let list = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        list.iter().find(|f| f.uid == *uid).cloned()
    }

    /// A description of the failures so far (for errors of other children).
    pub(crate) fn summary(&self) -> Failures {
        let list = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        Failures(list.clone())
    }
}

/// One child process and what the nursery knows of it.
pub(crate) struct ChildState<C> {
    pub(crate) name: String,
    pub(crate) uid: Uid,
    pub(crate) pid: u32,
    /// Set before the nursery stops it: a clean exit is then no failure.
    pub(crate) stopping: AtomicBool,
    /// Set by the first [`stop`](Self::stop): later ones only wait.
    pub(crate) stop_started: AtomicBool,
    pub(crate) channel: OnceLock<Arc<Channel<C>>>,
    pub(crate) exit: watch::Receiver<Option<ExitStatus>>,
    /// Cancelling it makes the monitor kill the process.
    pub(crate) kill: CancellationToken,
}

impl<C: Codec> ChildState<C> {
    pub(crate) async fn exited(&self) -> ExitStatus {
        let mut exit = self.exit.clone();
        loop {
            if let Some(status) = *exit.borrow_and_update() {
                return status;
            }
            if exit.changed().await.is_err() {
                // the monitor is gone: it always publishes first, so this
                // only happens while the runtime shuts down
                return std::future::pending().await;
            }
        }
    }

    pub(crate) fn has_exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    /// Cancels the child (`self.cancel`), waits for its exit, kills it
    /// after the bounds. Its exit status.
    pub(crate) async fn stop(&self, config: &NurseryConfig) -> ExitStatus {
        self.stopping.store(true, Ordering::SeqCst);
        if self.stop_started.swap(true, Ordering::SeqCst) {
            // another stop is under way (the owner's and the supervisor's):
            // one `self.cancel` on the wire, and it ends in a kill if need be
            return self.exited().await;
        }
        if !self.has_exited() {
            if let Some(chan) = self.channel.get() {
                match tokio::time::timeout(config.cancel_timeout, chan.cancel_actor()).await {
                    Ok(Ok(())) => tracing::debug!(child = %self.name, "cancel acked"),
                    Ok(Err(e)) => tracing::debug!(child = %self.name, "cancel: {e}"),
                    Err(_) => tracing::debug!(child = %self.name, "cancel: no ack in time"),
                }
                if let Ok(status) = tokio::time::timeout(config.exit_timeout, self.exited()).await {
                    return status;
                }
                tracing::warn!(child = %self.name, pid = self.pid, "did not exit in time: killing it");
            }
        }
        self.kill.cancel();
        self.exited().await
    }
}

/// Waits for the process, kills it on request, reports an exit nobody
/// asked for, and publishes the exit.
pub(crate) async fn monitor<C: Codec>(
    mut process: tokio::process::Child,
    state: Arc<ChildState<C>>,
    exit_tx: watch::Sender<Option<ExitStatus>>,
    supervision: Arc<Supervision>,
) {
    let waited = tokio::select! {
        status = process.wait() => status,
        () = state.kill.cancelled() => {
            if let Err(e) = process.start_kill() {
                tracing::debug!(pid = state.pid, "kill: {e}");
            }
            process.wait().await
        }
    };
    let status = match waited {
        Ok(status) => status,
        Err(e) => {
            // waitpid failed: the process is not ours to reap any more
            tracing::warn!(pid = state.pid, "waiting for the child: {e}");
            unknown_status()
        }
    };
    tracing::debug!(child = %state.name, pid = state.pid, %status, "child process ended");
    // Before it connected back, `start_actor` reports its failure. After:
    // any exit nobody asked for is a failure, and so is a death by signal
    // or a non-zero status even while being stopped, unless we killed it
    // (a sibling killed at the same moment is a failure too, not a
    // cancelled child). Recorded before the exit is published, so whoever
    // waits for the exit finds the failure.
    let connected = state.channel.get().is_some();
    let asked = state.stopping.load(Ordering::SeqCst);
    let killed_by_us = state.kill.is_cancelled();
    if connected && !killed_by_us && (!asked || !status.success()) {
        supervision.fail(ChildFailure {
            name: state.name.clone(),
            uid: state.uid.clone(),
            pid: Some(state.pid),
            kind: FailureKind::Exited(status),
        });
    }
    if let Some(registrar) = &supervision.registrar {
        if registrar.unregister(&state.uid) {
            tracing::debug!(child = %state.uid, "removed the dead child's registry entry");
        }
    }
    let _ = exit_tx.send(Some(status));
}

/// The status of a process whose exit could not be learned.
#[cfg(unix)]
fn unknown_status() -> ExitStatus {
    std::os::unix::process::ExitStatusExt::from_raw(-1)
}

/// The status of a process whose exit could not be learned.
#[cfg(windows)]
fn unknown_status() -> ExitStatus {
    std::os::windows::process::ExitStatusExt::from_raw(u32::MAX)
}
