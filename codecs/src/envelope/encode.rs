//! [`Msg`] → envelope, exactly as tractor's msgspec writes it: a map with
//! str keys, `msg_type` first, every field in definition order, defaults
//! present, `None` as nil, raw payloads spliced in unchanged.

use super::Write;
use crate::codec::EncodeError;
use crate::msg::*;

type Result = std::result::Result<(), EncodeError>;

/// Which optional `Aid` fields to write: the 978691c6 wire has none of the
/// three fields HEAD added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AidFields {
    // only the msgpack codec writes the older profile
    #[cfg_attr(not(feature = "msgpack"), allow(dead_code))]
    NameAndUuid,
    All,
}

fn header(w: &mut impl Write, entries: usize, kind: MsgKind) -> Result {
    w.map(entries)?;
    field_str(w, "msg_type", kind.as_str())
}

fn field_str(w: &mut impl Write, key: &str, value: &str) -> Result {
    w.str(key)?;
    w.str(value)
}

fn uid(w: &mut impl Write, uid: &Uid) -> Result {
    w.array(2)?;
    w.str(&uid.name)?;
    w.str(&uid.uuid)
}

fn opt<W: Write, T>(w: &mut W, value: Option<T>, f: impl FnOnce(&mut W, T) -> Result) -> Result {
    match value {
        Some(v) => f(w, v),
        None => w.nil(),
    }
}

fn addrs(w: &mut impl Write, addrs: &[Addr]) -> Result {
    w.array(addrs.len())?;
    for addr in addrs {
        w.array(2)?;
        match addr {
            Addr::Tcp { host, port } => {
                w.str(host)?;
                w.uint(u64::from(*port))?;
            }
            Addr::Uds { dir, file } => {
                w.str(dir)?;
                w.str(file)?;
            }
        }
    }
    Ok(())
}

pub(crate) fn encode_msg(msg: &Msg, aid_fields: AidFields, w: &mut impl Write) -> Result {
    match msg {
        Msg::Aid(m) => {
            let all = aid_fields == AidFields::All;
            header(w, if all { 6 } else { 3 }, MsgKind::Aid)?;
            field_str(w, "name", &m.name)?;
            field_str(w, "uuid", &m.uuid)?;
            if all {
                w.str("pid")?;
                opt(w, m.pid, |w, pid| w.uint(pid))?;
                w.str("is_registrar")?;
                opt(w, m.is_registrar, |w, b| w.bool(b))?;
                w.str("is_probe")?;
                w.bool(m.is_probe)?;
            }
        }
        Msg::SpawnSpec(m) => {
            header(w, 6, MsgKind::SpawnSpec)?;
            w.str("_parent_main_data")?;
            w.payload(&m.parent_main_data)?;
            w.str("_runtime_vars")?;
            w.payload(&m.runtime_vars)?;
            w.str("enable_modules")?;
            w.map(m.enable_modules.len())?;
            for (module, path) in &m.enable_modules {
                field_str(w, module, path)?;
            }
            w.str("reg_addrs")?;
            addrs(w, &m.reg_addrs)?;
            w.str("bind_addrs")?;
            opt(w, m.bind_addrs.as_deref(), addrs)?;
        }
        Msg::Start(m) => {
            header(w, 7, MsgKind::Start)?;
            field_str(w, "cid", m.cid.as_str())?;
            field_str(w, "ns", &m.ns)?;
            field_str(w, "func", &m.func)?;
            w.str("kwargs")?;
            w.payload(&m.kwargs)?;
            w.str("uid")?;
            uid(w, &m.uid)?;
            field_str(w, "pld_spec", &m.pld_spec)?;
        }
        Msg::StartAck(m) => {
            header(w, 3, MsgKind::StartAck)?;
            field_str(w, "cid", m.cid.as_str())?;
            field_str(w, "functype", m.functype.as_str())?;
        }
        Msg::Started(Started { cid, pld })
        | Msg::Yield(Yield { cid, pld })
        | Msg::Return(Return { cid, pld }) => {
            header(w, 3, msg.kind())?;
            field_str(w, "cid", cid.as_str())?;
            w.str("pld")?;
            w.payload(pld)?;
        }
        Msg::Stop(m) => {
            header(w, 2, MsgKind::Stop)?;
            field_str(w, "cid", m.cid.as_str())?;
        }
        Msg::CancelAck(m) => {
            header(w, 3, MsgKind::CancelAck)?;
            field_str(w, "cid", m.cid.as_str())?;
            w.str("pld")?;
            w.bool(m.pld)?;
        }
        Msg::Error(m) => {
            header(w, 12, MsgKind::Error)?;
            w.str("src_uid")?;
            uid(w, &m.src_uid)?;
            field_str(w, "src_type_str", &m.src_type_str)?;
            field_str(w, "boxed_type_str", &m.boxed_type_str)?;
            w.str("relay_path")?;
            w.array(m.relay_path.len())?;
            for hop in &m.relay_path {
                uid(w, hop)?;
            }
            w.str("message")?;
            opt(w, m.message.as_deref(), |w, s| w.str(s))?;
            field_str(w, "tb_str", &m.tb_str)?;
            w.str("canceller")?;
            opt(w, m.canceller.as_ref(), uid)?;
            w.str("sender")?;
            opt(w, m.sender.as_ref(), uid)?;
            w.str("cid")?;
            opt(w, m.cid.as_ref(), |w, cid| w.str(cid.as_str()))?;
            w.str("_bad_msg")?;
            opt(w, m.bad_msg.as_deref(), |w, bad| {
                encode_msg(bad, aid_fields, w)
            })?;
            w.str("_bad_msg_as_dict")?;
            opt(w, m.bad_msg_as_dict.as_ref(), |w, raw| w.payload(raw))?;
        }
    }
    Ok(())
}
