//! Error boxing and unboxing: a remote failure as a typed Rust error, and a
//! local failure as the wire `Error` tractor expects.
//!
//! [`RemoteError`] wraps a received `Error` message (`ContextCancelled`,
//! `StreamOverrun`, `MsgTypeError` and any remote exception all travel the
//! same way). [`pack`] turns a local error into an `Error` for the peer,
//! and [`RemoteError::relay`] re-boxes a remote error one hop further
//! *without* losing its origin (tractor loses `src_uid` and
//! `src_type_str` from the third hop on; we keep them and append to
//! `relay_path`).
//!
//! In a channel's receive stack, [`ErrorRelayLayer`] is this concern as a
//! layer: a failure of the services above it (your message layers, the
//! router) for a message of some dialog goes back to the peer as that
//! dialog's `Error`, and the channel goes on.

mod layer;
pub use self::layer::{ErrorRelay, ErrorRelayLayer, RelayFuture};

use crate::context::ContextError;
use scipp_codecs::msg::{self, Cid, Uid};
use scipp_codecs::WireProfile;
use std::error::Error as StdError;
use std::fmt;

/// A failure that happened in a peer, as it reached us.
///
/// ```
/// use scipp_layers::relay::RemoteError;
/// use scipp_codecs::msg::{Error, Uid};
/// let peer = Uid::new("scipp_peer", "659aea7d-8870-4c70-8c64-345c54084a49");
/// let mut wire = Error::new(peer, "ValueError");
/// wire.tb_str = "Traceback (most recent call last):\n  ...\nValueError\n".into();
/// let err = RemoteError::from(wire);
/// assert_eq!(err.boxed_type(), "ValueError");
/// assert!(err.to_string().starts_with("remote task raised a 'ValueError'"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteError {
    wire: Box<msg::Error>,
}

impl From<msg::Error> for RemoteError {
    fn from(wire: msg::Error) -> Self {
        RemoteError {
            wire: Box::new(wire),
        }
    }
}

impl RemoteError {
    /// The wire message, as received.
    pub fn wire(&self) -> &msg::Error {
        &self.wire
    }

    /// The type name boxed by the last hop (`boxed_type_str`).
    pub fn boxed_type(&self) -> &str {
        &self.wire.boxed_type_str
    }

    /// The type name of the original error (`src_type_str`).
    pub fn src_type(&self) -> &str {
        &self.wire.src_type_str
    }

    /// The actor where the error originated.
    pub fn src_uid(&self) -> &Uid {
        &self.wire.src_uid
    }

    /// Every actor that packed it, origin first.
    pub fn relay_path(&self) -> &[Uid] {
        &self.wire.relay_path
    }

    /// The remote message (empty for plain Python exceptions).
    pub fn message(&self) -> &str {
        self.wire.message.as_deref().unwrap_or("")
    }

    /// The remote traceback / trace text.
    pub fn traceback(&self) -> &str {
        &self.wire.tb_str
    }

    /// The dialog it ended.
    pub fn cid(&self) -> Option<&Cid> {
        self.wire.cid.as_ref()
    }

    /// Whether this is a `ContextCancelled`.
    pub fn is_cancelled(&self) -> bool {
        self.wire.boxed_type_str == "ContextCancelled"
    }

    /// Who requested the cancel, for a `ContextCancelled`.
    pub fn canceller(&self) -> Option<&Uid> {
        self.wire.canceller.as_ref()
    }

    /// Whether this is a `StreamOverrun` report (or an inception of one).
    pub fn is_overrun(&self) -> bool {
        self.wire.src_type_str == "StreamOverrun"
    }

    /// Re-boxes this error to send one hop further, from `me`: keeps the
    /// origin (`src_uid`, `src_type_str`, message, `_bad_msg*`), appends
    /// `me` to `relay_path`, marks the box `RemoteActorError` (an
    /// "inception", as tractor does for the second hop), and keeps the
    /// earlier traces inside ours.
    ///
    /// ```
    /// use scipp_layers::relay::RemoteError;
    /// use scipp_codecs::msg::{Error, Uid};
    /// let (leaf, mid, top) = (Uid::new("leaf", "1"), Uid::new("mid", "2"), Uid::new("top", "3"));
    /// let hop1 = RemoteError::from(Error::new(leaf.clone(), "ValueError"));
    /// let hop2 = RemoteError::from(hop1.relay(&mid, None));
    /// let hop3 = RemoteError::from(hop2.relay(&top, None));
    /// assert_eq!(hop3.src_uid(), &leaf);           // tractor would say `mid`
    /// assert_eq!(hop3.src_type(), "ValueError");   // tractor: "RemoteActorError"
    /// assert_eq!(hop3.relay_path(), &[leaf, mid, top]);
    /// ```
    pub fn relay(&self, me: &Uid, cid: Option<Cid>) -> msg::Error {
        let mut out = (*self.wire).clone();
        let keeps_own_class = matches!(
            self.wire.boxed_type_str.as_str(),
            "ContextCancelled" | "MsgTypeError" | "StreamOverrun"
        );
        if !keeps_own_class {
            out.boxed_type_str = "RemoteActorError".into();
        }
        out.relay_path.push(me.clone());
        out.message = Some(match &self.wire.message {
            Some(m) if !m.is_empty() => m.clone(),
            _ => format!("remote task raised a '{}'\n", self.wire.src_type_str),
        });
        out.tb_str = format!("{}\n( relayed by {me} )\n", self.wire.tb_str.trim_end());
        out.cid = cid;
        out
    }
}

impl fmt::Display for RemoteError {
    /// Like tractor's boxed error: a header naming the type, then the
    /// source and relay uids, the message, and the indented remote trace.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = &self.wire;
        writeln!(f, "remote task raised a '{}'", w.boxed_type_str)?;
        if w.src_type_str != w.boxed_type_str {
            writeln!(f, "  |_src_type: '{}'", w.src_type_str)?;
        }
        writeln!(f, "  |_src_uid: {}", w.src_uid)?;
        let path: Vec<String> = w.relay_path.iter().map(|u| u.name.clone()).collect();
        writeln!(f, "  |_relay_path: {}", path.join(" -> "))?;
        if let Some(c) = &w.canceller {
            writeln!(f, "  |_canceller: {c}")?;
        }
        if let Some(s) = &w.sender {
            writeln!(f, "  |_sender: {s}")?;
        }
        if let Some(m) = w.message.as_deref().filter(|m| !m.trim().is_empty()) {
            writeln!(f, "  |_message:")?;
            for line in m.trim_end().lines() {
                writeln!(f, "      {line}")?;
            }
        }
        if !w.tb_str.trim().is_empty() {
            writeln!(f, "  |_traceback:")?;
            for line in w.tb_str.trim_end().lines() {
                writeln!(f, "      {line}")?;
            }
        }
        Ok(())
    }
}

impl StdError for RemoteError {}

/// A local error with the Python type name it should have on the wire.
///
/// Endpoints return it (or any error whose chain contains one) to choose
/// the `src_type_str`/`boxed_type_str` a tractor peer will see; any other
/// error goes out as a `RuntimeError`, a Python builtin that resolves on
/// the Python side.
///
/// ```
/// use scipp_layers::relay::Raise;
/// let err = Raise::new("ValueError", "x must be positive");
/// assert_eq!(err.to_string(), "ValueError: x must be positive");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raise {
    type_name: String,
    message: String,
}

impl Raise {
    /// An error of Python type `type_name` with `message`.
    pub fn new(type_name: impl Into<String>, message: impl Into<String>) -> Self {
        Raise {
            type_name: type_name.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Raise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.type_name, self.message)
    }
}

impl StdError for Raise {}

/// Packs a local failure as the `Error` that `me` sends for dialog `cid`:
/// a [`RemoteError`] in the chain is relayed (see [`RemoteError::relay`]),
/// a [`MsgTypeError`](crate::MsgTypeError) keeps its class, a [`Raise`]
/// names the type, anything else is a `RuntimeError`. `tb_str` holds the
/// whole error chain and where it was raised (`ns:func`).
pub fn pack(err: &(dyn StdError + 'static), me: &Uid, cid: Option<Cid>, place: &str) -> msg::Error {
    pack_as(err, me, cid, place, WireProfile::V978691c6)
}

/// [`pack`], with texts worded as the given tractor version words them
/// (HEAD rewords payload errors, see
/// [`MsgTypeError::tractor_message_as`](crate::MsgTypeError::tractor_message_as)).
pub fn pack_as(
    err: &(dyn StdError + 'static),
    me: &Uid,
    cid: Option<Cid>,
    place: &str,
    profile: WireProfile,
) -> msg::Error {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        let remote =
            e.downcast_ref::<RemoteError>()
                .or_else(|| match e.downcast_ref::<ContextError>() {
                    Some(ContextError::Remote(r)) => Some(r),
                    _ => None,
                });
        if let Some(remote) = remote {
            return remote.relay(me, cid);
        }
        let mte = e.downcast_ref::<crate::MsgTypeError>().or_else(|| {
            match e.downcast_ref::<ContextError>() {
                Some(ContextError::MsgType(m)) => Some(m),
                _ => None,
            }
        });
        if let Some(mte) = mte {
            let mut out = mte.to_wire_as(me, profile);
            if !mte.is_send_side() {
                // Received, raised in the task, packed again on the way out:
                // tractor's relay_path then names us twice (mte_c2s.json).
                out.relay_path.push(me.clone());
                out.message = Some("remote task raised a 'MsgTypeError'\n".into());
                // and its traceback is the re-raise's, the received one indented
                let inner: String = out.tb_str.lines().map(|l| format!("  {l}\n")).collect();
                out.tb_str = format!(
                    "Traceback (scipp, Rust):\n  in endpoint {place}\nMsgTypeError: remote task raised a 'MsgTypeError'\n{inner}"
                );
            }
            out.cid = cid;
            return out;
        }
        cur = e.source();
    }
    let type_name = chain_raise(err).map_or("RuntimeError".to_owned(), |r| r.type_name.clone());
    let mut out = msg::Error::new(me.clone(), type_name);
    out.message = Some(String::new());
    out.tb_str = trace(err, place);
    out.cid = cid;
    out
}

fn chain_raise<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a Raise> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<Raise>() {
            return Some(r);
        }
        cur = e.source();
    }
    None
}

/// The Rust form of a traceback: where, and the error chain.
fn trace(err: &(dyn StdError + 'static), place: &str) -> String {
    let mut out = format!("Traceback (scipp, Rust):\n  in endpoint {place}\n{err}\n");
    let mut cur = err.source();
    let mut n = 0;
    while let Some(e) = cur {
        if n == 0 {
            out.push_str("\nCaused by:\n");
        }
        out.push_str(&format!("  {n}: {e}\n"));
        n += 1;
        cur = e.source();
    }
    out
}
