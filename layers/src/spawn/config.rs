//! The settings of a [`Nursery`](super::Nursery).

use crate::peer::Config;
use scipp_codecs::msg::Addr;
use std::time::Duration;

/// Settings of a [`Nursery`](super::Nursery), with documented defaults.
///
/// ```
/// use scipp_layers::spawn::NurseryConfig;
/// use std::time::Duration;
///
/// let config = NurseryConfig {
///     connect_timeout: Duration::from_secs(5), // a Rust child starts fast
///     ..NurseryConfig::default()
/// };
/// assert!(config.registrar.is_none()); // the nursery is the registrar
/// ```
#[derive(Debug, Clone)]
pub struct NurseryConfig {
    /// Where to listen for children connecting back (and, when the nursery
    /// is their registrar, registering): `127.0.0.1:0`.
    pub listen: std::net::SocketAddr,
    /// The children's registrar: `None` (the default) makes the nursery
    /// itself the registrar, at its listen address, as a tractor root
    /// actor is.
    pub registrar: Option<Addr>,
    /// How long a child may take to connect back: 30 s (a Python child
    /// imports tractor first). After it, the child is killed.
    pub connect_timeout: Duration,
    /// How long a child may take to ack `self.cancel`: 2 s.
    pub cancel_timeout: Duration,
    /// How long a child may take to exit once cancelled: 2 s. After it, the
    /// child is killed (SIGKILL) and reaped.
    pub exit_timeout: Duration,
    /// `_parent_main_data.init_main_from_path` for the children: `None`
    /// (what a parent without a Python main sends).
    pub main_path: Option<String>,
    /// `_runtime_vars._debug_mode`: false. (tractor's debugger TTY lock
    /// is not served by a scipp parent.)
    pub debug_mode: bool,
    /// Start each child in a process group of its own (unix): true. A
    /// Ctrl-C at the terminal then reaches only the parent, which cancels
    /// its children in order, instead of killing them all at once under
    /// it (they would die mid-dialog, and each would count as a failure).
    pub own_process_group: bool,
    /// The children's channels.
    pub peer: Config,
}

impl Default for NurseryConfig {
    fn default() -> Self {
        NurseryConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            registrar: None,
            connect_timeout: Duration::from_secs(30),
            cancel_timeout: Duration::from_secs(2),
            exit_timeout: Duration::from_secs(2),
            main_path: None,
            debug_mode: false,
            own_process_group: true,
            peer: Config::default(),
        }
    }
}
