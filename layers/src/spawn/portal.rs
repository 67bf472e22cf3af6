//! A handle on one running child.

use super::config::NurseryConfig;
use super::supervise::ChildState;
use crate::peer::Channel;
use scipp_codecs::msg::Uid;
use scipp_codecs::Codec;
use std::process::ExitStatus;
use std::sync::Arc;

/// A running child: its channel (every [`Channel`] method works through
/// `Deref`: `rpc`, `open_context`, …), its identity and its process.
pub struct Portal<C: Codec> {
    pub(crate) chan: Arc<Channel<C>>,
    pub(crate) state: Arc<ChildState<C>>,
    pub(crate) config: NurseryConfig,
}

impl<C: Codec> std::fmt::Debug for Portal<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Portal")
            .field("child", &self.state.uid)
            .field("pid", &self.state.pid)
            .finish_non_exhaustive()
    }
}

impl<C: Codec> Clone for Portal<C> {
    fn clone(&self) -> Self {
        Portal {
            chan: self.chan.clone(),
            state: self.state.clone(),
            config: self.config.clone(),
        }
    }
}

impl<C: Codec> std::ops::Deref for Portal<C> {
    type Target = Channel<C>;
    fn deref(&self) -> &Channel<C> {
        &self.chan
    }
}

impl<C: Codec> Portal<C> {
    /// The child's uid.
    pub fn uid(&self) -> &Uid {
        &self.state.uid
    }

    /// The child's name.
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.state.pid
    }

    /// The channel to the child.
    pub fn channel(&self) -> &Arc<Channel<C>> {
        &self.chan
    }

    /// Stops this child: `self.cancel`, a bounded wait for its exit, then
    /// SIGKILL if needed; its process is reaped. Its exit status. (This
    /// shadows [`Channel::cancel_actor`], which only sends the request.)
    pub async fn cancel_actor(&self) -> ExitStatus {
        self.state.stop(&self.config).await
    }

    /// Waits for the child's process to end; its exit status.
    pub async fn exited(&self) -> ExitStatus {
        self.state.exited().await
    }
}
