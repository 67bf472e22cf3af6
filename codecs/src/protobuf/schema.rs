//! prost derives of `scipp.proto`, written by hand (no `protoc` at build
//! time). Field order follows tag order; `tests/protobuf_schema.rs` checks
//! every message, field name, tag and wire type against the `.proto` text.

#![allow(missing_docs)]

use bytes::Bytes;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Envelope {
    #[prost(oneof = "Body", tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10")]
    pub msg: Option<Body>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Body {
    #[prost(message, tag = "1")]
    Aid(Aid),
    #[prost(message, tag = "2")]
    SpawnSpec(SpawnSpec),
    #[prost(message, tag = "3")]
    Start(Start),
    #[prost(message, tag = "4")]
    StartAck(StartAck),
    #[prost(message, tag = "5")]
    Started(Payload),
    #[prost(message, tag = "6")]
    Yield(Payload),
    #[prost(message, tag = "7")]
    Stop(Stop),
    #[prost(message, tag = "8")]
    Return(Payload),
    #[prost(message, tag = "9")]
    CancelAck(CancelAck),
    #[prost(message, tag = "10")]
    Error(Error),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Uid {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub uuid: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Aid {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub uuid: String,
    #[prost(uint64, optional, tag = "3")]
    pub pid: Option<u64>,
    #[prost(bool, optional, tag = "4")]
    pub is_registrar: Option<bool>,
    #[prost(bool, tag = "5")]
    pub is_probe: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Addr {
    #[prost(string, tag = "1")]
    pub host: String,
    #[prost(uint32, optional, tag = "2")]
    pub port: Option<u32>,
    #[prost(string, optional, tag = "3")]
    pub file: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModulePath {
    #[prost(string, tag = "1")]
    pub module: String,
    #[prost(string, tag = "2")]
    pub path: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AddrList {
    #[prost(message, repeated, tag = "1")]
    pub addrs: Vec<Addr>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SpawnSpec {
    #[prost(bytes = "bytes", tag = "1")]
    pub parent_main_data: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub runtime_vars: Bytes,
    #[prost(message, repeated, tag = "3")]
    pub enable_modules: Vec<ModulePath>,
    #[prost(message, repeated, tag = "4")]
    pub reg_addrs: Vec<Addr>,
    #[prost(message, optional, tag = "5")]
    pub bind_addrs: Option<AddrList>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Start {
    #[prost(string, tag = "1")]
    pub cid: String,
    #[prost(string, tag = "2")]
    pub ns: String,
    #[prost(string, tag = "3")]
    pub func: String,
    #[prost(bytes = "bytes", tag = "4")]
    pub kwargs: Bytes,
    #[prost(message, optional, tag = "5")]
    pub uid: Option<Uid>,
    #[prost(string, tag = "6")]
    pub pld_spec: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum FuncType {
    Asyncfunc = 0,
    Asyncgen = 1,
    Context = 2,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StartAck {
    #[prost(string, tag = "1")]
    pub cid: String,
    #[prost(enumeration = "FuncType", tag = "2")]
    pub functype: i32,
}

/// `Started`, `Yield` and `Return` share one shape.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Payload {
    #[prost(string, tag = "1")]
    pub cid: String,
    #[prost(bytes = "bytes", tag = "2")]
    pub pld: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Stop {
    #[prost(string, tag = "1")]
    pub cid: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CancelAck {
    #[prost(string, tag = "1")]
    pub cid: String,
    #[prost(bool, tag = "2")]
    pub pld: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Error {
    #[prost(message, optional, tag = "1")]
    pub src_uid: Option<Uid>,
    #[prost(string, tag = "2")]
    pub src_type_str: String,
    #[prost(string, tag = "3")]
    pub boxed_type_str: String,
    #[prost(message, repeated, tag = "4")]
    pub relay_path: Vec<Uid>,
    #[prost(string, optional, tag = "5")]
    pub message: Option<String>,
    #[prost(string, tag = "6")]
    pub tb_str: String,
    #[prost(message, optional, tag = "7")]
    pub canceller: Option<Uid>,
    #[prost(message, optional, tag = "8")]
    pub sender: Option<Uid>,
    #[prost(string, optional, tag = "9")]
    pub cid: Option<String>,
    #[prost(message, optional, boxed, tag = "10")]
    pub bad_msg: Option<Box<Envelope>>,
    #[prost(bytes = "bytes", optional, tag = "11")]
    pub bad_msg_as_dict: Option<Bytes>,
}
