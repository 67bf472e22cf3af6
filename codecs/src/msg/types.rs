//! One struct per SCIPP message, fields in tractor's wire order.

use super::{Cid, RawPayload, Uid};

/// Actor identity, the first message each way on every channel.
///
/// tractor's newest commit (3690e43a) added `pid`, `is_registrar` and
/// `is_probe`; older peers ignore them. Which of them go on the wire is a
/// property of the codec's [`WireProfile`](crate::WireProfile).
///
/// ```
/// use scipp_codecs::msg::Aid;
/// let aid = Aid::new("scipp_client", "e6c23380-01c1-472d-a24d-7e06a1f1cbe5");
/// assert_eq!(aid.uid().name, "scipp_client");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aid {
    /// Actor name.
    pub name: String,
    /// Actor uuid.
    pub uuid: String,
    /// OS process id (HEAD only; nil by default).
    pub pid: Option<u64>,
    /// Whether the sender is a registrar (HEAD only; nil by default).
    pub is_registrar: Option<bool>,
    /// Whether this is a registry probe (HEAD only; false by default).
    pub is_probe: bool,
}

impl Aid {
    /// An identity with the HEAD-only fields at their defaults.
    pub fn new(name: impl Into<String>, uuid: impl Into<String>) -> Self {
        Aid {
            name: name.into(),
            uuid: uuid.into(),
            pid: None,
            is_registrar: None,
            is_probe: false,
        }
    }

    /// The `(name, uuid)` pair that names this actor in other messages.
    pub fn uid(&self) -> Uid {
        Uid::new(self.name.clone(), self.uuid.clone())
    }
}

/// A transport address inside [`SpawnSpec`]: `[host, port]` for TCP or
/// `[dir, filename]` for a Unix socket (HEAD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    /// `[host, port]`.
    Tcp {
        /// Host name or IP.
        host: String,
        /// Port number.
        port: u16,
    },
    /// `[dir, filename]` of a Unix socket.
    Uds {
        /// Directory.
        dir: String,
        /// File name.
        file: String,
    },
}

/// Parent to freshly spawned child: how to set up its runtime.
///
/// Only sent on the `trio` spawn backend's connect-back; never captured.
/// The dict fields stay raw.
#[derive(Debug, Clone, PartialEq)]
pub struct SpawnSpec {
    /// `_parent_main_data`: a dict, raw.
    pub parent_main_data: RawPayload,
    /// `_runtime_vars`: a `dict[str, Any]`, raw.
    pub runtime_vars: RawPayload,
    /// `enable_modules`: module path to file path, in wire order.
    pub enable_modules: Vec<(String, String)>,
    /// `reg_addrs`: registrar addresses.
    pub reg_addrs: Vec<Addr>,
    /// `bind_addrs`: where the child should listen (nil allowed at HEAD).
    pub bind_addrs: Option<Vec<Addr>>,
}

/// Schedule a remote task: the first message of every dialog.
#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    /// The new dialog's context id, chosen by the sender.
    pub cid: Cid,
    /// Namespace: a dotted module path, or `"self"` for runtime RPCs.
    pub ns: String,
    /// Function name inside `ns`.
    pub func: String,
    /// Keyword arguments: a `dict[str, Any]`, raw.
    pub kwargs: RawPayload,
    /// The requesting actor.
    pub uid: Uid,
    /// Always `"typing.Any"` in tractor; never read by the receiver.
    pub pld_spec: String,
}

impl Start {
    /// The `pld_spec` value tractor always sends.
    pub const DEFAULT_PLD_SPEC: &'static str = "typing.Any";
}

/// The kind of endpoint a `Start` reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FuncType {
    /// Plain RPC: `Start → StartAck → Return`.
    AsyncFunc,
    /// Legacy one-way stream: `Start → StartAck → Yield* → Stop`.
    AsyncGen,
    /// A context endpoint: `Started`, optional stream, `Return`.
    Context,
}

impl FuncType {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            FuncType::AsyncFunc => "asyncfunc",
            FuncType::AsyncGen => "asyncgen",
            FuncType::Context => "context",
        }
    }

    /// Parses the wire string; `None` for anything outside the enum.
    pub fn from_wire(s: &str) -> Option<Self> {
        match s {
            "asyncfunc" => Some(FuncType::AsyncFunc),
            "asyncgen" => Some(FuncType::AsyncGen),
            "context" => Some(FuncType::Context),
            _ => None,
        }
    }
}

/// The child's immediate reply to a `Start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartAck {
    /// The dialog.
    pub cid: Cid,
    /// What kind of endpoint was started.
    pub functype: FuncType,
}

/// The child's first value (`Context.started(v)`).
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    /// The dialog.
    pub cid: Cid,
    /// The value, raw.
    pub pld: RawPayload,
}

/// One stream item.
#[derive(Debug, Clone, PartialEq)]
pub struct Yield {
    /// The dialog.
    pub cid: Cid,
    /// The item, raw.
    pub pld: RawPayload,
}

/// End of stream. Carries no payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    /// The dialog.
    pub cid: Cid,
}

/// The final value of the remote task.
#[derive(Debug, Clone, PartialEq)]
pub struct Return {
    /// The dialog.
    pub cid: Cid,
    /// The value, raw.
    pub pld: RawPayload,
}

/// The result of a runtime cancel RPC (`self.cancel`, `self._cancel_task`).
/// Its payload is a plain bool that bypasses every payload spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelAck {
    /// The dialog of the cancel request (not the cancelled one).
    pub cid: Cid,
    /// Always `true` in the captures.
    pub pld: bool,
}

/// A boxed exception: remote errors, `ContextCancelled`, `StreamOverrun`
/// and `MsgTypeError` all travel as this message. Always 12 keys on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    /// The actor where the error originated (kept across inceptions).
    pub src_uid: Uid,
    /// The original exception type name.
    pub src_type_str: String,
    /// The type name boxed by the last hop.
    pub boxed_type_str: String,
    /// Every actor that packed this error, origin first.
    pub relay_path: Vec<Uid>,
    /// The error's message (empty for plain Python exceptions).
    pub message: Option<String>,
    /// Traceback text; free-form, nothing parses it.
    pub tb_str: String,
    /// Who requested a cancel (`ContextCancelled` only).
    pub canceller: Option<Uid>,
    /// Who overran (`StreamOverrun` only).
    pub sender: Option<Uid>,
    /// The dialog this error belongs to (nil for runtime-level errors).
    pub cid: Option<Cid>,
    /// `_bad_msg`: the offending `Started`, `Yield` or `Return` of a
    /// `MsgTypeError`, re-emitted with its payload.
    pub bad_msg: Option<Box<super::Msg>>,
    /// `_bad_msg_as_dict`: a message that failed the schema, as a raw map.
    pub bad_msg_as_dict: Option<RawPayload>,
}

impl Error {
    /// An error with the optional fields at their defaults (`message` nil,
    /// empty `tb_str`, no canceller, sender, cid or bad message).
    ///
    /// ```
    /// use scipp_codecs::msg::{Error, Uid};
    /// let me = Uid::new("scipp_peer", "659aea7d-8870-4c70-8c64-345c54084a49");
    /// let err = Error::new(me.clone(), "ValueError");
    /// assert_eq!(err.boxed_type_str, "ValueError");
    /// assert_eq!(err.relay_path, vec![me]);
    /// ```
    pub fn new(src_uid: Uid, type_str: impl Into<String>) -> Self {
        let type_str = type_str.into();
        Error {
            relay_path: vec![src_uid.clone()],
            src_uid,
            src_type_str: type_str.clone(),
            boxed_type_str: type_str,
            message: None,
            tb_str: String::new(),
            canceller: None,
            sender: None,
            cid: None,
            bad_msg: None,
            bad_msg_as_dict: None,
        }
    }
}
