//! The SCIPP message set: tractor's `msg/types.py`, one Rust type per
//! message, plus the typed ids they carry.
//!
//! Payload-carrying fields ([`Started::pld`], [`Start::kwargs`], ...) are
//! [`RawPayload`]s: they are decoded against a type only when delivered.

mod ids;
mod raw;
mod serde_impls;
mod types;

pub use self::ids::{Cid, Uid};
pub use self::raw::RawPayload;
pub use self::serde_impls::AddrParseError;
pub use self::types::{
    Addr, Aid, CancelAck, Error, FuncType, Return, SpawnSpec, Start, StartAck, Started, Stop, Yield,
};

use std::fmt;

/// Any SCIPP message.
///
/// ```
/// use scipp_codecs::msg::{Cid, Msg, MsgKind, Stop};
/// let msg = Msg::Stop(Stop { cid: Cid::from("c1") });
/// assert_eq!(msg.kind(), MsgKind::Stop);
/// assert_eq!(msg.cid().map(Cid::as_str), Some("c1"));
/// assert_eq!(std::mem::size_of::<Msg>(), 72);
/// ```
///
/// The big, rarer messages (`Aid`, `SpawnSpec`, `Start`, `Error`) are boxed so a
/// `Msg` stays small (72 bytes: a payload's decoded value rides in one box,
/// not two, see [`RawPayload`]) on the hot path of `Yield`s; build them with
/// `.into()`.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    /// Actor identity (handshake).
    Aid(Box<Aid>),
    /// Spawn-time runtime setup.
    SpawnSpec(Box<SpawnSpec>),
    /// Schedule a remote task.
    Start(Box<Start>),
    /// The endpoint kind, in reply to `Start`.
    StartAck(StartAck),
    /// The first value of a context.
    Started(Started),
    /// A stream item.
    Yield(Yield),
    /// End of stream.
    Stop(Stop),
    /// The final value.
    Return(Return),
    /// Result of a runtime cancel RPC.
    CancelAck(CancelAck),
    /// A boxed error.
    Error(Box<Error>),
}

impl Msg {
    /// Which message this is.
    pub fn kind(&self) -> MsgKind {
        match self {
            Msg::Aid(_) => MsgKind::Aid,
            Msg::SpawnSpec(_) => MsgKind::SpawnSpec,
            Msg::Start(_) => MsgKind::Start,
            Msg::StartAck(_) => MsgKind::StartAck,
            Msg::Started(_) => MsgKind::Started,
            Msg::Yield(_) => MsgKind::Yield,
            Msg::Stop(_) => MsgKind::Stop,
            Msg::Return(_) => MsgKind::Return,
            Msg::CancelAck(_) => MsgKind::CancelAck,
            Msg::Error(_) => MsgKind::Error,
        }
    }

    /// The context id, for every message that has one.
    pub fn cid(&self) -> Option<&Cid> {
        match self {
            Msg::Aid(_) | Msg::SpawnSpec(_) => None,
            Msg::Start(m) => Some(&m.cid),
            Msg::StartAck(m) => Some(&m.cid),
            Msg::Started(m) => Some(&m.cid),
            Msg::Yield(m) => Some(&m.cid),
            Msg::Stop(m) => Some(&m.cid),
            Msg::Return(m) => Some(&m.cid),
            Msg::CancelAck(m) => Some(&m.cid),
            Msg::Error(m) => m.cid.as_ref(),
        }
    }

    /// The raw payload of `Started`, `Yield` and `Return` (the messages a
    /// payload spec applies to).
    pub fn pld(&self) -> Option<&RawPayload> {
        match self {
            Msg::Started(m) => Some(&m.pld),
            Msg::Yield(m) => Some(&m.pld),
            Msg::Return(m) => Some(&m.pld),
            _ => None,
        }
    }

    /// The payload of a `Started`, `Yield` or `Return`, to attach a
    /// decoded value to (see [`RawPayload::set_decoded`]).
    pub fn pld_mut(&mut self) -> Option<&mut RawPayload> {
        match self {
            Msg::Started(m) => Some(&mut m.pld),
            Msg::Yield(m) => Some(&mut m.pld),
            Msg::Return(m) => Some(&mut m.pld),
            _ => None,
        }
    }
}

macro_rules! impl_from_msg {
    ($($ty:ident),*) => {$(
        impl From<$ty> for Msg {
            fn from(m: $ty) -> Msg { Msg::$ty(m) }
        }
    )*};
}
impl_from_msg!(StartAck, Started, Yield, Stop, Return, CancelAck);

macro_rules! impl_from_boxed_msg {
    ($($ty:ident),*) => {$(
        impl From<$ty> for Msg {
            fn from(m: $ty) -> Msg { Msg::$ty(Box::new(m)) }
        }
        impl From<Box<$ty>> for Msg {
            fn from(m: Box<$ty>) -> Msg { Msg::$ty(m) }
        }
    )*};
}
impl_from_boxed_msg!(Aid, SpawnSpec, Start, Error);

/// The name of a message type: the `msg_type` tag on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MsgKind {
    /// `Aid`
    Aid,
    /// `SpawnSpec`
    SpawnSpec,
    /// `Start`
    Start,
    /// `StartAck`
    StartAck,
    /// `Started`
    Started,
    /// `Yield`
    Yield,
    /// `Stop`
    Stop,
    /// `Return`
    Return,
    /// `CancelAck`
    CancelAck,
    /// `Error`
    Error,
}

impl MsgKind {
    /// Every kind, in tractor's `__msg_types__` order.
    pub const ALL: [MsgKind; 10] = [
        MsgKind::Aid,
        MsgKind::SpawnSpec,
        MsgKind::Start,
        MsgKind::StartAck,
        MsgKind::Stop,
        MsgKind::CancelAck,
        MsgKind::Error,
        MsgKind::Started,
        MsgKind::Yield,
        MsgKind::Return,
    ];

    /// The wire tag (the Python class name).
    pub fn as_str(self) -> &'static str {
        match self {
            MsgKind::Aid => "Aid",
            MsgKind::SpawnSpec => "SpawnSpec",
            MsgKind::Start => "Start",
            MsgKind::StartAck => "StartAck",
            MsgKind::Started => "Started",
            MsgKind::Yield => "Yield",
            MsgKind::Stop => "Stop",
            MsgKind::Return => "Return",
            MsgKind::CancelAck => "CancelAck",
            MsgKind::Error => "Error",
        }
    }

    /// Parses a wire tag; `None` for a name outside the message set.
    ///
    /// ```
    /// use scipp_codecs::msg::MsgKind;
    /// assert_eq!(MsgKind::from_wire("Yield"), Some(MsgKind::Yield));
    /// assert_eq!(MsgKind::from_wire("Yeld"), None);
    /// ```
    pub fn from_wire(tag: &str) -> Option<Self> {
        Self::from_wire_bytes(tag.as_bytes())
    }

    /// [`from_wire`](Self::from_wire) on the raw bytes of the tag.
    pub fn from_wire_bytes(tag: &[u8]) -> Option<Self> {
        Some(match tag {
            b"Aid" => MsgKind::Aid,
            b"SpawnSpec" => MsgKind::SpawnSpec,
            b"Start" => MsgKind::Start,
            b"StartAck" => MsgKind::StartAck,
            b"Started" => MsgKind::Started,
            b"Yield" => MsgKind::Yield,
            b"Stop" => MsgKind::Stop,
            b"Return" => MsgKind::Return,
            b"CancelAck" => MsgKind::CancelAck,
            b"Error" => MsgKind::Error,
            _ => return None,
        })
    }
}

impl fmt::Display for MsgKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
