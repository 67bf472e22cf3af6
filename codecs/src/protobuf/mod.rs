//! Protobuf via `prost`: an envelope schema ([`scipp.proto`]) with one
//! `oneof` case per message kind, payloads carried as `bytes`.
//!
//! # How payloads are typed
//!
//! Protobuf has no dynamic value type, so the payload bytes inside the
//! envelope are **msgpack**: [`Codec::encode_payload`] and
//! [`Codec::decode_payload`] take any serde type, exactly as with the other
//! codecs, and the `Any` payload spec keeps working. A payload that is
//! itself a protobuf message goes through
//! [`ProtobufCodec::encode_prost`] / [`ProtobufCodec::decode_prost`], which
//! carry its protobuf encoding as one msgpack `bin` value.
//!
//! Decoding is zero-copy for payloads: they are [`Bytes`] slices of the
//! frame.
//!
//! [`scipp.proto`]: https://docs.rs/crate/scipp-codecs/latest/source/src/protobuf/scipp.proto

pub mod schema;

use crate::codec::{Codec, DecodeError, DecodeErrorKind, EncodeError, PayloadError};
use crate::msg::{self, Cid, Msg, MsgKind, RawPayload, Uid};
use crate::msgpack::MsgpackCodec;
use bytes::{Bytes, BytesMut};
use prost::Message as _;
use serde::{de::DeserializeOwned, Serialize};

/// The text of the envelope schema, `scipp.proto`.
pub const PROTO: &str = include_str!("scipp.proto");

/// The protobuf codec.
///
/// # Example
///
/// ```
/// use scipp_codecs::{Codec, protobuf::ProtobufCodec};
/// use scipp_codecs::msg::{Cid, Msg, Return};
///
/// let codec = ProtobufCodec::new();
/// let msg = Msg::Return(Return { cid: Cid::from("c1"), pld: codec.encode_payload(&5).unwrap() });
/// let frame = codec.encode_to_bytes(&msg).unwrap();
/// assert_eq!(codec.decode(frame).unwrap(), msg);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProtobufCodec {
    payloads: MsgpackCodec,
}

impl ProtobufCodec {
    /// The protobuf codec, with msgpack payloads.
    pub fn new() -> Self {
        ProtobufCodec::default()
    }

    /// The format of the payload bytes inside the envelope.
    pub const PAYLOAD_FORMAT: &'static str = "msgpack";

    /// Encodes a protobuf message as a payload (its protobuf bytes, as one
    /// msgpack `bin`).
    ///
    /// ```
    /// use scipp_codecs::protobuf::{schema::Uid, ProtobufCodec};
    /// let codec = ProtobufCodec::new();
    /// let uid = Uid { name: "scipp_peer".into(), uuid: "u1".into() };
    /// let raw = codec.encode_prost(&uid).unwrap();
    /// assert_eq!(codec.decode_prost::<Uid>(&raw).unwrap(), uid);
    /// ```
    ///
    /// # Errors
    /// Never in practice; the signature matches the serde path.
    pub fn encode_prost<M: prost::Message>(&self, message: &M) -> Result<RawPayload, PayloadError> {
        self.payloads
            .encode_payload(serde_bytes::Bytes::new(&message.encode_to_vec()))
    }

    /// Decodes a payload written by [`encode_prost`](Self::encode_prost).
    ///
    /// # Errors
    /// When the payload is not a `bin`, or its bytes are not an `M`.
    pub fn decode_prost<M: prost::Message + Default>(
        &self,
        raw: &RawPayload,
    ) -> Result<M, PayloadError> {
        let bytes: serde_bytes::ByteBuf = self.payloads.decode_payload(raw)?;
        M::decode(bytes.as_slice()).map_err(|e| PayloadError::decode("protobuf", e))
    }
}

impl Codec for ProtobufCodec {
    fn name(&self) -> &'static str {
        "protobuf"
    }

    fn encode(&self, msg: &Msg, dst: &mut BytesMut) -> Result<(), EncodeError> {
        let envelope = to_schema(msg);
        dst.reserve(envelope.encoded_len());
        envelope
            .encode(dst)
            .map_err(|e| EncodeError::Io(std::io::Error::other(e)))
    }

    fn decode(&self, frame: Bytes) -> Result<Msg, DecodeError> {
        if frame.is_empty() {
            return Err(DecodeError::new(DecodeErrorKind::Empty));
        }
        let envelope = schema::Envelope::decode(frame)
            .map_err(|e| DecodeError::new(DecodeErrorKind::Malformed(e.to_string())))?;
        from_schema(envelope)
    }

    fn encode_payload<T: Serialize + ?Sized>(&self, value: &T) -> Result<RawPayload, PayloadError> {
        self.payloads.encode_payload(value)
    }

    fn decode_payload<T: DeserializeOwned>(&self, raw: &RawPayload) -> Result<T, PayloadError> {
        self.payloads.decode_payload(raw)
    }
}

fn uid_to(u: &Uid) -> schema::Uid {
    schema::Uid {
        name: u.name.clone(),
        uuid: u.uuid.clone(),
    }
}

fn addr_to(a: &msg::Addr) -> schema::Addr {
    match a {
        msg::Addr::Tcp { host, port } => schema::Addr {
            host: host.clone(),
            port: Some(u32::from(*port)),
            file: None,
        },
        msg::Addr::Uds { dir, file } => schema::Addr {
            host: dir.clone(),
            port: None,
            file: Some(file.clone()),
        },
    }
}

fn payload_to(cid: &Cid, pld: &RawPayload) -> schema::Payload {
    schema::Payload {
        cid: cid.as_str().to_owned(),
        pld: pld.bytes().clone(),
    }
}

fn to_schema(msg: &Msg) -> schema::Envelope {
    use schema::Body;
    let body = match msg {
        Msg::Aid(m) => Body::Aid(schema::Aid {
            name: m.name.clone(),
            uuid: m.uuid.clone(),
            pid: m.pid,
            is_registrar: m.is_registrar,
            is_probe: m.is_probe,
        }),
        Msg::SpawnSpec(m) => Body::SpawnSpec(schema::SpawnSpec {
            parent_main_data: m.parent_main_data.bytes().clone(),
            runtime_vars: m.runtime_vars.bytes().clone(),
            enable_modules: m
                .enable_modules
                .iter()
                .map(|(module, path)| schema::ModulePath {
                    module: module.clone(),
                    path: path.clone(),
                })
                .collect(),
            reg_addrs: m.reg_addrs.iter().map(addr_to).collect(),
            bind_addrs: m.bind_addrs.as_ref().map(|a| schema::AddrList {
                addrs: a.iter().map(addr_to).collect(),
            }),
        }),
        Msg::Start(m) => Body::Start(schema::Start {
            cid: m.cid.as_str().to_owned(),
            ns: m.ns.clone(),
            func: m.func.clone(),
            kwargs: m.kwargs.bytes().clone(),
            uid: Some(uid_to(&m.uid)),
            pld_spec: m.pld_spec.clone(),
        }),
        Msg::StartAck(m) => Body::StartAck(schema::StartAck {
            cid: m.cid.as_str().to_owned(),
            functype: match m.functype {
                msg::FuncType::AsyncFunc => schema::FuncType::Asyncfunc,
                msg::FuncType::AsyncGen => schema::FuncType::Asyncgen,
                msg::FuncType::Context => schema::FuncType::Context,
            } as i32,
        }),
        Msg::Started(m) => Body::Started(payload_to(&m.cid, &m.pld)),
        Msg::Yield(m) => Body::Yield(payload_to(&m.cid, &m.pld)),
        Msg::Return(m) => Body::Return(payload_to(&m.cid, &m.pld)),
        Msg::Stop(m) => Body::Stop(schema::Stop {
            cid: m.cid.as_str().to_owned(),
        }),
        Msg::CancelAck(m) => Body::CancelAck(schema::CancelAck {
            cid: m.cid.as_str().to_owned(),
            pld: m.pld,
        }),
        Msg::Error(m) => Body::Error(schema::Error {
            src_uid: Some(uid_to(&m.src_uid)),
            src_type_str: m.src_type_str.clone(),
            boxed_type_str: m.boxed_type_str.clone(),
            relay_path: m.relay_path.iter().map(uid_to).collect(),
            message: m.message.clone(),
            tb_str: m.tb_str.clone(),
            canceller: m.canceller.as_ref().map(uid_to),
            sender: m.sender.as_ref().map(uid_to),
            cid: m.cid.as_ref().map(|c| c.as_str().to_owned()),
            bad_msg: m.bad_msg.as_deref().map(|b| Box::new(to_schema(b))),
            bad_msg_as_dict: m.bad_msg_as_dict.as_ref().map(|r| r.bytes().clone()),
        }),
    };
    schema::Envelope { msg: Some(body) }
}

fn missing(field: &str) -> DecodeError {
    DecodeError::new(DecodeErrorKind::MissingField).with_field(field)
}

fn uid_from(u: Option<schema::Uid>, field: &str) -> Result<Uid, DecodeError> {
    u.map(|u| Uid::new(u.name, u.uuid))
        .ok_or_else(|| missing(field))
}

/// A payload field: one well-formed msgpack value (checked as the msgpack
/// envelope checks inline payloads: claimed counts must fit the bytes).
fn raw_from(b: Bytes, field: &str) -> Result<RawPayload, DecodeError> {
    if b.is_empty() {
        return Err(missing(field));
    }
    crate::msgpack::check_one_value(&b).map_err(|e| e.within(field))?;
    Ok(RawPayload::new(b))
}

fn addr_from(a: schema::Addr) -> Result<msg::Addr, DecodeError> {
    match (a.port, a.file) {
        (Some(port), None) => Ok(msg::Addr::Tcp {
            host: a.host,
            port: u16::try_from(port).map_err(|_| {
                DecodeError::new(DecodeErrorKind::WrongType {
                    expected: "port in 0..=65535",
                    found: port.to_string(),
                })
            })?,
        }),
        (None, Some(file)) => Ok(msg::Addr::Uds { dir: a.host, file }),
        _ => Err(DecodeError::new(DecodeErrorKind::WrongType {
            expected: "exactly one of port and file",
            found: "both or neither".into(),
        })),
    }
}

fn from_schema(envelope: schema::Envelope) -> Result<Msg, DecodeError> {
    use schema::Body;
    let body = envelope
        .msg
        .ok_or_else(|| DecodeError::new(DecodeErrorKind::MissingTag))?;
    let kind = match &body {
        Body::Aid(_) => MsgKind::Aid,
        Body::SpawnSpec(_) => MsgKind::SpawnSpec,
        Body::Start(_) => MsgKind::Start,
        Body::StartAck(_) => MsgKind::StartAck,
        Body::Started(_) => MsgKind::Started,
        Body::Yield(_) => MsgKind::Yield,
        Body::Stop(_) => MsgKind::Stop,
        Body::Return(_) => MsgKind::Return,
        Body::CancelAck(_) => MsgKind::CancelAck,
        Body::Error(_) => MsgKind::Error,
    };
    let msg = match body {
        Body::Aid(m) => Ok(Msg::from(msg::Aid {
            name: m.name,
            uuid: m.uuid,
            pid: m.pid,
            is_registrar: m.is_registrar,
            is_probe: m.is_probe,
        })),
        Body::SpawnSpec(m) => (|| {
            Ok(Msg::from(msg::SpawnSpec {
                parent_main_data: raw_from(m.parent_main_data, "parent_main_data")?,
                runtime_vars: raw_from(m.runtime_vars, "runtime_vars")?,
                enable_modules: m
                    .enable_modules
                    .into_iter()
                    .map(|p| (p.module, p.path))
                    .collect(),
                reg_addrs: m
                    .reg_addrs
                    .into_iter()
                    .map(addr_from)
                    .collect::<Result<_, _>>()?,
                bind_addrs: m
                    .bind_addrs
                    .map(|l| l.addrs.into_iter().map(addr_from).collect::<Result<_, _>>())
                    .transpose()?,
            }))
        })(),
        Body::Start(m) => (|| {
            Ok(Msg::from(msg::Start {
                cid: Cid::from(m.cid),
                ns: m.ns,
                func: m.func,
                kwargs: raw_from(m.kwargs, "kwargs")?,
                uid: uid_from(m.uid, "uid")?,
                pld_spec: m.pld_spec,
            }))
        })(),
        Body::StartAck(m) => {
            let functype = match schema::FuncType::try_from(m.functype) {
                Ok(schema::FuncType::Asyncfunc) => Ok(msg::FuncType::AsyncFunc),
                Ok(schema::FuncType::Asyncgen) => Ok(msg::FuncType::AsyncGen),
                Ok(schema::FuncType::Context) => Ok(msg::FuncType::Context),
                Err(_) => Err(DecodeError::new(DecodeErrorKind::WrongType {
                    expected: "'asyncfunc'|'asyncgen'|'context'",
                    found: m.functype.to_string(),
                })
                .with_field("functype")),
            };
            functype.map(|functype| {
                Msg::StartAck(msg::StartAck {
                    cid: Cid::from(m.cid),
                    functype,
                })
            })
        }
        Body::Started(p) => raw_from(p.pld, "pld").map(|pld| {
            Msg::Started(msg::Started {
                cid: Cid::from(p.cid),
                pld,
            })
        }),
        Body::Yield(p) => raw_from(p.pld, "pld").map(|pld| {
            Msg::Yield(msg::Yield {
                cid: Cid::from(p.cid),
                pld,
            })
        }),
        Body::Return(p) => raw_from(p.pld, "pld").map(|pld| {
            Msg::Return(msg::Return {
                cid: Cid::from(p.cid),
                pld,
            })
        }),
        Body::Stop(m) => Ok(Msg::Stop(msg::Stop {
            cid: Cid::from(m.cid),
        })),
        Body::CancelAck(m) => Ok(Msg::CancelAck(msg::CancelAck {
            cid: Cid::from(m.cid),
            pld: m.pld,
        })),
        Body::Error(m) => error_from(m),
    };
    msg.map_err(|e| e.with_msg_type(kind.as_str()))
}

fn error_from(m: schema::Error) -> Result<Msg, DecodeError> {
    let bad_msg = match m.bad_msg {
        None => None,
        Some(inner) => {
            let inner = from_schema(*inner).map_err(|e| e.within("_bad_msg"))?;
            if !matches!(
                inner.kind(),
                MsgKind::Started | MsgKind::Yield | MsgKind::Return
            ) {
                return Err(DecodeError::new(DecodeErrorKind::WrongType {
                    expected: "Started|Yield|Return|None",
                    found: inner.kind().as_str().to_owned(),
                })
                .with_field("_bad_msg"));
            }
            Some(Box::new(inner))
        }
    };
    Ok(Msg::from(msg::Error {
        src_uid: uid_from(m.src_uid, "src_uid")?,
        src_type_str: m.src_type_str,
        boxed_type_str: m.boxed_type_str,
        relay_path: m
            .relay_path
            .into_iter()
            .map(|u| Uid::new(u.name, u.uuid))
            .collect(),
        message: m.message,
        tb_str: m.tb_str,
        canceller: m.canceller.map(|u| Uid::new(u.name, u.uuid)),
        sender: m.sender.map(|u| Uid::new(u.name, u.uuid)),
        cid: m.cid.map(Cid::from),
        bad_msg,
        bad_msg_as_dict: m.bad_msg_as_dict.map(RawPayload::new),
    }))
}
