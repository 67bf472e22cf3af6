//! Human-readable one-line renderings of messages.

use scipp::msg::{Msg, RawPayload};
use scipp::Codec;
use std::fmt::Write;

/// A payload as a short dynamic value, or why it does not decode.
pub(crate) fn payload<C: Codec>(codec: &C, raw: &RawPayload) -> String {
    match codec.decode_payload::<rmpv::Value>(raw) {
        Ok(v) => clip(&value(&v), 60),
        Err(e) => format!("<{e}>"),
    }
}

/// A dynamic value in Python-ish notation; bytes show as their length.
pub(crate) fn value(v: &rmpv::Value) -> String {
    use rmpv::Value as V;
    match v {
        V::Binary(b) => format!("<{} bytes>", b.len()),
        V::Array(items) => {
            let inner: Vec<String> = items.iter().map(value).collect();
            format!("[{}]", inner.join(", "))
        }
        V::Map(entries) => {
            let inner: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}: {}", value(k), value(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
        V::Nil => "None".to_owned(),
        V::Boolean(true) => "True".to_owned(),
        V::Boolean(false) => "False".to_owned(),
        other => other.to_string(),
    }
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

/// `Kind  cid…  detail` for one message.
pub(crate) fn msg<C: Codec>(codec: &C, msg: &Msg) -> String {
    let mut out = String::new();
    let cid = msg.cid().map(|c| clip(c.as_str(), 8)).unwrap_or_default();
    let _ = write!(out, "{:<9} {:<9} ", msg.kind().as_str(), cid);
    let _ = match msg {
        Msg::Aid(m) => write!(out, "{} {}", m.name, clip(&m.uuid, 8)),
        Msg::SpawnSpec(m) => write!(out, "{} modules", m.enable_modules.len()),
        Msg::Start(m) => write!(out, "{}:{}({})", m.ns, m.func, payload(codec, &m.kwargs)),
        Msg::StartAck(m) => write!(out, "functype={}", m.functype.as_str()),
        Msg::Started(m) => write!(out, "{}", payload(codec, &m.pld)),
        Msg::Yield(m) => write!(out, "{}", payload(codec, &m.pld)),
        Msg::Return(m) => write!(out, "{}", payload(codec, &m.pld)),
        Msg::Stop(_) => Ok(()),
        Msg::CancelAck(m) => write!(out, "{}", m.pld),
        Msg::Error(m) => write!(
            out,
            "{} (src {}, via {} hop(s)) {}",
            m.boxed_type_str,
            m.src_type_str,
            m.relay_path.len(),
            clip(
                m.message
                    .as_deref()
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or(""),
                40
            )
        ),
    };
    out
}
