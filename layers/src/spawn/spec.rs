//! Building the `SpawnSpec` a parent sends a freshly spawned child, byte
//! for byte as tractor 978691c6 does.

use scipp_codecs::msg::{Addr, SpawnSpec};
use scipp_codecs::{Codec, PayloadError};
use serde::Serialize;
use std::collections::BTreeMap;

/// The contents of a `SpawnSpec`, in typed form.
///
/// ```
/// use scipp_layers::spawn::SpawnPlan;
/// use scipp_codecs::{msgpack::MsgpackCodec, msg::{Addr, Msg}, Codec};
///
/// let parent: Addr = "127.0.0.1:56533".parse().unwrap();
/// let plan = SpawnPlan {
///     main_path: Some("interop/capture_spawn.py".into()),
///     debug_mode: false,
///     root_mailbox: parent.clone(),
///     registry_addrs: vec![parent.clone()],
///     enable_modules: vec![("scipp_peer".into(), "interop/scipp_peer.py".into())],
///     reg_addrs: vec![parent],
///     bind_addrs: vec!["127.0.0.1:0".parse().unwrap()],
/// };
/// let codec = MsgpackCodec::new();
/// let spec = plan.to_spawn_spec(&codec).unwrap();
/// let frame = codec.encode_to_bytes(&Msg::from(spec)).unwrap();
/// assert_eq!(&frame[..20], b"\x86\xa8msg_type\xa9SpawnSpec");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnPlan {
    /// `_parent_main_data.init_main_from_path`: the parent's main script.
    /// A tractor child runs it as its `__main__`; `None` sends `{}` (what
    /// tractor sends when its main has no file), right for a Rust parent.
    pub main_path: Option<String>,
    /// `_runtime_vars._debug_mode`.
    pub debug_mode: bool,
    /// `_runtime_vars._root_mailbox`: the root actor's address.
    pub root_mailbox: Addr,
    /// `_runtime_vars._registry_addrs`.
    pub registry_addrs: Vec<Addr>,
    /// `enable_modules`: module path → file path, in order.
    pub enable_modules: Vec<(String, String)>,
    /// `reg_addrs`: where the child registers.
    pub reg_addrs: Vec<Addr>,
    /// `bind_addrs`: where the child listens (port 0: any).
    pub bind_addrs: Vec<Addr>,
}

/// `_runtime_vars` at 978691c6, keys in tractor's order.
#[derive(Serialize)]
struct RuntimeVars<'a> {
    _debug_mode: bool,
    _is_root: bool,
    _root_mailbox: &'a Addr,
    _registry_addrs: &'a [Addr],
    use_greenback: bool,
}

impl SpawnPlan {
    /// The wire message, its dicts encoded with `codec`.
    ///
    /// # Errors
    /// The codec could not encode a dict.
    pub fn to_spawn_spec<C: Codec>(&self, codec: &C) -> Result<SpawnSpec, PayloadError> {
        let main: BTreeMap<&str, &str> = self
            .main_path
            .as_deref()
            .map(|p| ("init_main_from_path", p))
            .into_iter()
            .collect();
        Ok(SpawnSpec {
            parent_main_data: codec.encode_payload(&main)?,
            runtime_vars: codec.encode_payload(&RuntimeVars {
                _debug_mode: self.debug_mode,
                _is_root: false,
                _root_mailbox: &self.root_mailbox,
                _registry_addrs: &self.registry_addrs,
                use_greenback: false,
            })?,
            enable_modules: self.enable_modules.clone(),
            reg_addrs: self.reg_addrs.clone(),
            bind_addrs: Some(self.bind_addrs.clone()),
        })
    }
}
