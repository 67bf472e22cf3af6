//! Frame body → [`Msg`], accepting what msgspec accepts: the tag at any
//! position, unknown keys ignored, missing defaults filled in.

use super::{wrong_type, Read, Result, ValueKind};
use crate::codec::{DecodeError, DecodeErrorKind};
use crate::msg::*;

/// Decodes a whole frame with the cursor `new` makes for it.
pub(crate) fn decode_frame<'a, R: Read<'a>>(frame: &'a [u8], new: impl Fn() -> R) -> Result<Msg> {
    if frame.is_empty() {
        return Err(DecodeError::new(DecodeErrorKind::Empty));
    }
    let mut r = new();
    if r.map_len()?.is_none() {
        return Err(DecodeError::new(DecodeErrorKind::NotAMap));
    }
    r.set_pos(0);
    let decoded =
        decode_map(&mut r, false).and_then(|msg| match r.remaining() {
            0 => Ok(msg),
            n => Err(DecodeError::new(DecodeErrorKind::TrailingBytes(n))
                .with_msg_type(msg.kind().as_str())),
        });
    decoded.map_err(|e| match e.cid() {
        Some(_) => e,
        None => {
            let cid = scan_cid(new());
            e.with_cid(cid)
        }
    })
}

/// Best effort: the `cid` of a frame that failed to decode, so the error
/// can be routed to its dialog.
fn scan_cid<'a, R: Read<'a>>(mut r: R) -> Option<Cid> {
    let n = r.map_len().ok()??;
    for _ in 0..n {
        let key = r.str_bytes("str").ok()?;
        if key == b"cid" {
            return r.str("str").ok().map(Cid::from);
        }
        r.raw_value().ok()?;
    }
    None
}

/// Decodes one tagged map. `payload_only` restricts it to the messages a
/// `_bad_msg` may hold, checked before any field is read.
fn decode_map<'a, R: Read<'a>>(r: &mut R, payload_only: bool) -> Result<Msg> {
    let at = r.peek_kind()?;
    let n = r.map_len()?.ok_or_else(|| wrong_type("map", at))?;
    let body = r.pos();
    let (tag, tag_first) = find_tag(r, n)?;
    let kind = MsgKind::from_wire_bytes(tag).ok_or_else(|| {
        let tag = std::str::from_utf8(tag).map(str::to_owned);
        match tag {
            Ok(tag) => DecodeError::new(DecodeErrorKind::UnknownTag).with_msg_type(tag),
            Err(e) => DecodeError::new(DecodeErrorKind::Malformed(format!(
                "invalid UTF-8 in str: {e}"
            )))
            .with_field("msg_type"),
        }
    })?;
    let tag = kind.as_str();
    if payload_only && !matches!(kind, MsgKind::Started | MsgKind::Yield | MsgKind::Return) {
        return Err(DecodeError::new(DecodeErrorKind::WrongType {
            expected: "Started|Yield|Return|None",
            found: tag.to_owned(),
        }));
    }
    // Usual case: the tag came first, so the fields are the entries after
    // it; otherwise walk the whole map again (the tag is then skipped).
    let fields = if tag_first {
        Fields { n: n - 1 }
    } else {
        r.set_pos(body);
        Fields { n }
    };
    let msg = match kind {
        MsgKind::Aid => fields.aid(r).map(Msg::from),
        MsgKind::SpawnSpec => fields.spawn_spec(r).map(Msg::from),
        MsgKind::Start => fields.start(r).map(Msg::from),
        MsgKind::StartAck => fields.start_ack(r).map(Msg::StartAck),
        MsgKind::Started => fields
            .payload(r)
            .map(|(cid, pld)| Msg::Started(Started { cid, pld })),
        MsgKind::Yield => fields
            .payload(r)
            .map(|(cid, pld)| Msg::Yield(Yield { cid, pld })),
        MsgKind::Return => fields
            .payload(r)
            .map(|(cid, pld)| Msg::Return(Return { cid, pld })),
        MsgKind::Stop => fields.stop(r).map(Msg::Stop),
        MsgKind::CancelAck => fields.cancel_ack(r).map(Msg::CancelAck),
        MsgKind::Error => fields.error(r).map(Msg::from),
    };
    msg.map_err(|e| e.with_msg_type(tag))
}

/// Finds the `msg_type` value among `n` entries (usually the first).
/// Also says whether it was the first entry.
fn find_tag<'a, R: Read<'a>>(r: &mut R, n: usize) -> Result<(&'a [u8], bool)> {
    for i in 0..n {
        let key = r.str_bytes("str key")?;
        if key == b"msg_type" {
            let tag = r.str_bytes("str").map_err(|e| e.with_field("msg_type"))?;
            return Ok((tag, i == 0));
        }
        check_utf8(key)?;
        r.raw_value()?;
    }
    Err(DecodeError::new(DecodeErrorKind::MissingTag))
}

/// Keys are compared as bytes; one that matched no field still has to be
/// valid UTF-8 to be a msgpack/CBOR str.
fn check_utf8(key: &[u8]) -> Result<()> {
    std::str::from_utf8(key).map(drop).map_err(|e| {
        DecodeError::new(DecodeErrorKind::Malformed(format!(
            "invalid UTF-8 in str: {e}"
        )))
    })
}

fn required<T>(value: Option<T>, field: &'static str) -> Result<T> {
    value.ok_or_else(|| DecodeError::new(DecodeErrorKind::MissingField).with_field(field))
}

/// The entries of one message map.
struct Fields {
    n: usize,
}

impl Fields {
    /// Calls `f` for every key; `f` returns `false` for keys it does not
    /// know, which are skipped. Errors get the key as their field.
    fn each<'a, R: Read<'a>>(
        &self,
        r: &mut R,
        mut f: impl FnMut(&mut R, &'a [u8]) -> Result<bool>,
    ) -> Result<()> {
        for _ in 0..self.n {
            let key = r.str_bytes("str key")?;
            let known = f(r, key).map_err(|e| e.within(&String::from_utf8_lossy(key)))?;
            if !known {
                check_utf8(key)?;
                r.raw_value()?;
            }
        }
        Ok(())
    }

    fn aid<'a, R: Read<'a>>(&self, r: &mut R) -> Result<Aid> {
        let (mut name, mut uuid, mut pid, mut is_registrar, mut is_probe) =
            (None, None, None, None, false);
        self.each(r, |r, key| {
            match key {
                b"name" => name = Some(r.str("str")?.to_owned()),
                b"uuid" => uuid = Some(r.str("str")?.to_owned()),
                b"pid" => pid = opt_u64(r)?,
                b"is_registrar" => is_registrar = if r.nil()? { None } else { Some(r.bool()?) },
                b"is_probe" => is_probe = r.bool()?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(Aid {
            name: required(name, "name")?,
            uuid: required(uuid, "uuid")?,
            pid,
            is_registrar,
            is_probe,
        })
    }

    fn spawn_spec<'a, R: Read<'a>>(&self, r: &mut R) -> Result<SpawnSpec> {
        let (mut main_data, mut runtime_vars, mut modules, mut reg, mut bind) =
            (None, None, None, None, None);
        self.each(r, |r, key| {
            match key {
                b"_parent_main_data" => main_data = Some(raw_map(r)?),
                b"_runtime_vars" => runtime_vars = Some(raw_map(r)?),
                b"enable_modules" => modules = Some(str_pairs(r)?),
                b"reg_addrs" => reg = Some(addrs(r)?),
                b"bind_addrs" => bind = if r.nil()? { None } else { Some(addrs(r)?) },
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(SpawnSpec {
            parent_main_data: required(main_data, "_parent_main_data")?,
            runtime_vars: required(runtime_vars, "_runtime_vars")?,
            enable_modules: required(modules, "enable_modules")?,
            reg_addrs: required(reg, "reg_addrs")?,
            bind_addrs: bind,
        })
    }

    fn start<'a, R: Read<'a>>(&self, r: &mut R) -> Result<Start> {
        let (mut cid, mut ns, mut func, mut kwargs, mut uid, mut pld_spec) =
            (None, None, None, None, None, None);
        self.each(r, |r, key| {
            match key {
                b"cid" => cid = Some(read_cid(r)?),
                b"ns" => ns = Some(r.str("str")?.to_owned()),
                b"func" => func = Some(r.str("str")?.to_owned()),
                b"kwargs" => kwargs = Some(raw_map(r)?),
                b"uid" => uid = Some(read_uid(r)?),
                b"pld_spec" => pld_spec = Some(r.str("str")?.to_owned()),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(Start {
            cid: required(cid, "cid")?,
            ns: required(ns, "ns")?,
            func: required(func, "func")?,
            kwargs: required(kwargs, "kwargs")?,
            uid: required(uid, "uid")?,
            pld_spec: pld_spec.unwrap_or_else(|| Start::DEFAULT_PLD_SPEC.to_owned()),
        })
    }

    fn start_ack<'a, R: Read<'a>>(&self, r: &mut R) -> Result<StartAck> {
        let (mut cid, mut functype) = (None, None);
        self.each(r, |r, key| {
            match key {
                b"cid" => cid = Some(read_cid(r)?),
                b"functype" => {
                    const EXPECTED: &str = "'asyncfunc'|'asyncgen'|'context'";
                    let s = r.str(EXPECTED)?;
                    functype = Some(FuncType::from_wire(s).ok_or_else(|| {
                        DecodeError::new(DecodeErrorKind::WrongType {
                            expected: EXPECTED,
                            found: format!("{s:?}"),
                        })
                    })?);
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(StartAck {
            cid: required(cid, "cid")?,
            functype: required(functype, "functype")?,
        })
    }

    fn payload<'a, R: Read<'a>>(&self, r: &mut R) -> Result<(Cid, RawPayload)> {
        let (mut cid, mut pld) = (None, None);
        self.each(r, |r, key| {
            match key {
                b"cid" => cid = Some(read_cid(r)?),
                b"pld" => pld = Some(RawPayload::new(r.raw_value()?)),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok((required(cid, "cid")?, required(pld, "pld")?))
    }

    fn stop<'a, R: Read<'a>>(&self, r: &mut R) -> Result<Stop> {
        let mut cid = None;
        self.each(r, |r, key| match key {
            b"cid" => {
                cid = Some(read_cid(r)?);
                Ok(true)
            }
            _ => Ok(false),
        })?;
        Ok(Stop {
            cid: required(cid, "cid")?,
        })
    }

    fn cancel_ack<'a, R: Read<'a>>(&self, r: &mut R) -> Result<CancelAck> {
        let (mut cid, mut pld) = (None, None);
        self.each(r, |r, key| {
            match key {
                b"cid" => cid = Some(read_cid(r)?),
                b"pld" => pld = Some(r.bool()?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(CancelAck {
            cid: required(cid, "cid")?,
            pld: required(pld, "pld")?,
        })
    }

    fn error<'a, R: Read<'a>>(&self, r: &mut R) -> Result<Error> {
        let (mut src_uid, mut src_type_str, mut boxed_type_str, mut relay_path) =
            (None, None, None, None);
        let (mut message, mut tb_str, mut canceller, mut sender, mut cid) =
            (None, String::new(), None, None, None);
        let (mut bad_msg, mut bad_msg_as_dict) = (None, None);
        self.each(r, |r, key| {
            match key {
                b"src_uid" => src_uid = Some(read_uid(r)?),
                b"src_type_str" => src_type_str = Some(r.str("str")?.to_owned()),
                b"boxed_type_str" => boxed_type_str = Some(r.str("str")?.to_owned()),
                b"relay_path" => relay_path = Some(uid_list(r)?),
                b"message" => message = opt(r, |r| Ok(r.str("str|None")?.to_owned()))?,
                b"tb_str" => tb_str = r.str("str")?.to_owned(),
                b"canceller" => canceller = opt(r, read_uid)?,
                b"sender" => sender = opt(r, read_uid)?,
                b"cid" => cid = opt(r, read_cid)?,
                b"_bad_msg" => bad_msg = opt(r, |r| decode_map(r, true).map(Box::new))?,
                b"_bad_msg_as_dict" => bad_msg_as_dict = opt(r, raw_map)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(Error {
            src_uid: required(src_uid, "src_uid")?,
            src_type_str: required(src_type_str, "src_type_str")?,
            boxed_type_str: required(boxed_type_str, "boxed_type_str")?,
            relay_path: required(relay_path, "relay_path")?,
            message,
            tb_str,
            canceller,
            sender,
            cid,
            bad_msg,
            bad_msg_as_dict,
        })
    }
}

/// `T | None`.
fn opt<'a, R: Read<'a>, T>(r: &mut R, f: impl FnOnce(&mut R) -> Result<T>) -> Result<Option<T>> {
    if r.nil()? {
        Ok(None)
    } else {
        f(r).map(Some)
    }
}

fn opt_u64<'a, R: Read<'a>>(r: &mut R) -> Result<Option<u64>> {
    if r.nil()? {
        return Ok(None);
    }
    let at = r.peek_kind()?;
    let v = r.int().map_err(|_| wrong_type("int|None", at))?;
    u64::try_from(v).map(Some).map_err(|_| {
        DecodeError::new(DecodeErrorKind::WrongType {
            expected: "non-negative int|None",
            found: v.to_string(),
        })
    })
}

/// A cid, compared as bytes with the last one decoded before any UTF-8
/// check: a stream's messages repeat it (see [`Cid::reuse_bytes`]).
fn read_cid<'a, R: Read<'a>>(r: &mut R) -> Result<Cid> {
    let bytes = r.str_bytes("str")?;
    Cid::reuse_bytes(bytes).map_err(|e| {
        DecodeError::new(DecodeErrorKind::Malformed(format!(
            "invalid UTF-8 in str: {e}"
        )))
    })
}

const UID: &str = "array of 2 str";

fn read_uid<'a, R: Read<'a>>(r: &mut R) -> Result<Uid> {
    let at = r.peek_kind()?;
    match r.array_len()? {
        Some(2) => {
            let name = r.str(UID)?.to_owned();
            let uuid = r.str(UID)?.to_owned();
            Ok(Uid { name, uuid })
        }
        Some(n) => Err(DecodeError::new(DecodeErrorKind::WrongType {
            expected: UID,
            found: format!("array of length {n}"),
        })),
        None => Err(wrong_type(UID, at)),
    }
}

fn uid_list<'a, R: Read<'a>>(r: &mut R) -> Result<Vec<Uid>> {
    let at = r.peek_kind()?;
    let n = r
        .array_len()?
        .ok_or_else(|| wrong_type("array of uids", at))?;
    // No preallocation: `n` is only a claim; the Vec grows with real uids.
    let mut out = Vec::new();
    for i in 0..n {
        out.push(read_uid(r).map_err(|e| e.within(&i.to_string()))?);
    }
    Ok(out)
}

/// A map value, kept raw; its keys must be str (`dict[str, Any]`).
fn raw_map<'a, R: Read<'a>>(r: &mut R) -> Result<RawPayload> {
    let start = r.pos();
    let at = r.peek_kind()?;
    let n = r.map_len()?.ok_or_else(|| wrong_type("dict", at))?;
    for _ in 0..n {
        r.str("str key")?;
        r.raw_value()?;
    }
    let end = r.pos();
    r.set_pos(start);
    let raw = r.raw_value()?;
    if r.pos() != end {
        return Err(DecodeError::new(DecodeErrorKind::Malformed(
            "map extent mismatch".into(),
        )));
    }
    Ok(RawPayload::new(raw))
}

fn str_pairs<'a, R: Read<'a>>(r: &mut R) -> Result<Vec<(String, String)>> {
    let at = r.peek_kind()?;
    let n = r
        .map_len()?
        .ok_or_else(|| wrong_type("dict[str, str]", at))?;
    let mut out = Vec::new();
    for _ in 0..n {
        let k = r.str("str key")?.to_owned();
        let v = r.str("str")?.to_owned();
        out.push((k, v));
    }
    Ok(out)
}

fn addrs<'a, R: Read<'a>>(r: &mut R) -> Result<Vec<Addr>> {
    const ADDR: &str = "[str, int|str]";
    let at = r.peek_kind()?;
    let n = r
        .array_len()?
        .ok_or_else(|| wrong_type("array of addresses", at))?;
    let mut out = Vec::new();
    for _ in 0..n {
        let at = r.peek_kind()?;
        if r.array_len()? != Some(2) {
            return Err(wrong_type(ADDR, at));
        }
        let host = r.str(ADDR)?.to_owned();
        let addr = if r.peek_kind()? == ValueKind::Str {
            Addr::Uds {
                dir: host,
                file: r.str(ADDR)?.to_owned(),
            }
        } else {
            let at = r.peek_kind()?;
            let port = r.int().map_err(|_| wrong_type(ADDR, at))?;
            let port = u16::try_from(port).map_err(|_| {
                DecodeError::new(DecodeErrorKind::WrongType {
                    expected: "port in 0..=65535",
                    found: port.to_string(),
                })
            })?;
            Addr::Tcp { host, port }
        };
        out.push(addr);
    }
    Ok(out)
}
