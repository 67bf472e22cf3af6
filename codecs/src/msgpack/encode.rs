//! [`Msg`] → frame body, exactly as tractor's msgspec writes it: a map with
//! str keys, `msg_type` first, every field in definition order, defaults
//! present, `None` as nil, raw payloads spliced in unchanged.

use crate::codec::EncodeError;
use crate::msg::*;
use crate::WireProfile;
use bytes::{BufMut, BytesMut};
use rmp::encode as enc;

type Result = std::result::Result<(), EncodeError>;

/// `rmp` writes through `io::Write`; into a `BytesMut` that cannot fail.
struct Out<'a>(bytes::buf::Writer<&'a mut BytesMut>);

impl Out<'_> {
    fn map(&mut self, entries: u32, tag: MsgKind) -> Result {
        enc::write_map_len(&mut self.0, entries)?;
        self.str("msg_type")?;
        self.str(tag.as_str())
    }

    fn str(&mut self, s: &str) -> Result {
        Ok(enc::write_str(&mut self.0, s)?)
    }

    fn field_str(&mut self, key: &str, s: &str) -> Result {
        self.str(key)?;
        self.str(s)
    }

    fn nil(&mut self) -> Result {
        Ok(enc::write_nil(&mut self.0)?)
    }

    fn bool(&mut self, b: bool) -> Result {
        Ok(enc::write_bool(&mut self.0, b)?)
    }

    fn raw(&mut self, raw: &RawPayload) -> Result {
        self.0.get_mut().put_slice(raw.as_bytes());
        Ok(())
    }

    fn uid(&mut self, uid: &Uid) -> Result {
        enc::write_array_len(&mut self.0, 2)?;
        self.str(&uid.name)?;
        self.str(&uid.uuid)
    }

    fn opt_uid(&mut self, uid: Option<&Uid>) -> Result {
        match uid {
            Some(uid) => self.uid(uid),
            None => self.nil(),
        }
    }

    fn len(n: usize) -> std::result::Result<u32, EncodeError> {
        u32::try_from(n).map_err(|_| EncodeError::BadRawPayload {
            field: "collection",
            reason: format!("{n} elements exceed msgpack's u32 length"),
        })
    }

    fn addrs(&mut self, addrs: &[Addr]) -> Result {
        enc::write_array_len(&mut self.0, Self::len(addrs.len())?)?;
        for addr in addrs {
            enc::write_array_len(&mut self.0, 2)?;
            match addr {
                Addr::Tcp { host, port } => {
                    self.str(host)?;
                    enc::write_uint(&mut self.0, u64::from(*port))?;
                }
                Addr::Uds { dir, file } => {
                    self.str(dir)?;
                    self.str(file)?;
                }
            }
        }
        Ok(())
    }
}

pub(super) fn encode_msg(msg: &Msg, profile: WireProfile, dst: &mut BytesMut) -> Result {
    let mut out = Out(dst.writer());
    let o = &mut out;
    match msg {
        Msg::Aid(m) => {
            let head = profile == WireProfile::Head;
            o.map(if head { 6 } else { 3 }, MsgKind::Aid)?;
            o.field_str("name", &m.name)?;
            o.field_str("uuid", &m.uuid)?;
            if head {
                o.str("pid")?;
                match m.pid {
                    Some(pid) => {
                        enc::write_uint(&mut o.0, pid)?;
                    }
                    None => o.nil()?,
                }
                o.str("is_registrar")?;
                match m.is_registrar {
                    Some(b) => o.bool(b)?,
                    None => o.nil()?,
                }
                o.str("is_probe")?;
                o.bool(m.is_probe)?;
            }
        }
        Msg::SpawnSpec(m) => {
            o.map(6, MsgKind::SpawnSpec)?;
            o.str("_parent_main_data")?;
            o.raw(&m.parent_main_data)?;
            o.str("_runtime_vars")?;
            o.raw(&m.runtime_vars)?;
            o.str("enable_modules")?;
            enc::write_map_len(&mut o.0, Out::len(m.enable_modules.len())?)?;
            for (module, path) in &m.enable_modules {
                o.field_str(module, path)?;
            }
            o.str("reg_addrs")?;
            o.addrs(&m.reg_addrs)?;
            o.str("bind_addrs")?;
            match &m.bind_addrs {
                Some(addrs) => o.addrs(addrs)?,
                None => o.nil()?,
            }
        }
        Msg::Start(m) => {
            o.map(7, MsgKind::Start)?;
            o.field_str("cid", m.cid.as_str())?;
            o.field_str("ns", &m.ns)?;
            o.field_str("func", &m.func)?;
            o.str("kwargs")?;
            o.raw(&m.kwargs)?;
            o.str("uid")?;
            o.uid(&m.uid)?;
            o.field_str("pld_spec", &m.pld_spec)?;
        }
        Msg::StartAck(m) => {
            o.map(3, MsgKind::StartAck)?;
            o.field_str("cid", m.cid.as_str())?;
            o.field_str("functype", m.functype.as_str())?;
        }
        Msg::Started(Started { cid, pld })
        | Msg::Yield(Yield { cid, pld })
        | Msg::Return(Return { cid, pld }) => {
            o.map(3, msg.kind())?;
            o.field_str("cid", cid.as_str())?;
            o.str("pld")?;
            o.raw(pld)?;
        }
        Msg::Stop(m) => {
            o.map(2, MsgKind::Stop)?;
            o.field_str("cid", m.cid.as_str())?;
        }
        Msg::CancelAck(m) => {
            o.map(3, MsgKind::CancelAck)?;
            o.field_str("cid", m.cid.as_str())?;
            o.str("pld")?;
            o.bool(m.pld)?;
        }
        Msg::Error(m) => {
            o.map(12, MsgKind::Error)?;
            o.str("src_uid")?;
            o.uid(&m.src_uid)?;
            o.field_str("src_type_str", &m.src_type_str)?;
            o.field_str("boxed_type_str", &m.boxed_type_str)?;
            o.str("relay_path")?;
            enc::write_array_len(&mut o.0, Out::len(m.relay_path.len())?)?;
            for uid in &m.relay_path {
                o.uid(uid)?;
            }
            o.str("message")?;
            match &m.message {
                Some(s) => o.str(s)?,
                None => o.nil()?,
            }
            o.field_str("tb_str", &m.tb_str)?;
            o.str("canceller")?;
            o.opt_uid(m.canceller.as_ref())?;
            o.str("sender")?;
            o.opt_uid(m.sender.as_ref())?;
            o.str("cid")?;
            match &m.cid {
                Some(cid) => o.str(cid.as_str())?,
                None => o.nil()?,
            }
            o.str("_bad_msg")?;
            match &m.bad_msg {
                Some(bad) => encode_msg(bad, profile, o.0.get_mut())?,
                None => o.nil()?,
            }
            o.str("_bad_msg_as_dict")?;
            match &m.bad_msg_as_dict {
                Some(raw) => o.raw(raw)?,
                None => o.nil()?,
            }
        }
    }
    Ok(())
}
