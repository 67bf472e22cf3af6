//! [`MsgTypeError`]: a message that breaks the protocol or its payload spec.

use scipp_codecs::msg::{self, Cid, Msg, MsgKind, RawPayload, Uid};
use scipp_codecs::{DecodeError, WireProfile};
use std::fmt;

/// A message the peer sent (or we were about to send) that is not valid:
/// an undecodable frame, a message illegal in its dialog's state, or a
/// payload outside the context's payload spec.
///
/// It carries what a human needs to fix it: the message kind, the spec,
/// the field, the offending value, the bad message itself and the peer.
/// It converts to and from the wire [`Error`](msg::Error) with
/// `boxed_type_str = "MsgTypeError"`, as tractor does.
///
/// # Example: a bad `Yield`
///
/// ```
/// use scipp_layers::payload::PldSpec;
/// use scipp_codecs::{Codec, msgpack::MsgpackCodec, msg::*};
///
/// let codec = MsgpackCodec::new();
/// let spec = PldSpec::<MsgpackCodec>::of::<i64>();
/// let bad = Yield { cid: Cid::from("c1"), pld: codec.encode_payload("not-an-int").unwrap() };
/// let peer = Uid::new("scipp_client", "e6c23380-01c1-472d-a24d-7e06a1f1cbe5");
/// let err = spec.validate(&codec, &Msg::Yield(bad), Some(&peer)).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "invalid `Yield` msg payload\n\
///      \n\
///      value: `'not-an-int'` does not match type-spec: `Yield.pld: int`\n\
///      \n\
///      from peer ('scipp_client', 'e6c23380-01c1-472d-a24d-7e06a1f1cbe5') on cid c1; \
///      send an `int` as `Yield.pld`, or widen this context's payload spec"
/// );
/// ```
#[derive(Debug, Clone)]
pub struct MsgTypeError(Box<Inner>);

#[derive(Debug, Clone)]
struct Inner {
    problem: Problem,
    kind: Option<MsgKind>,
    tag: Option<String>,
    spec: Option<String>,
    field: Option<String>,
    value: Option<String>,
    value_type: Option<&'static str>,
    detail: String,
    bad_msg: Option<Msg>,
    bad_msg_as_dict: Option<RawPayload>,
    src_uid: Option<Uid>,
    cid: Option<Cid>,
    sending: bool,
}

/// Which check a message failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The frame is not a valid SCIPP message (codec layer).
    Undecodable,
    /// A valid message, illegal in its dialog's state (msg-type layer).
    OutOfState,
    /// The payload does not match the context's payload spec.
    Payload,
    /// Received as an `Error` from the peer; the details are in its text.
    Remote,
}

impl MsgTypeError {
    fn new(problem: Problem) -> Self {
        MsgTypeError(Box::new(Inner {
            problem,
            kind: None,
            tag: None,
            spec: None,
            field: None,
            value: None,
            value_type: None,
            detail: String::new(),
            bad_msg: None,
            bad_msg_as_dict: None,
            src_uid: None,
            cid: None,
            sending: false,
        }))
    }

    /// A frame the codec could not decode. `frame` is kept as the bad
    /// message's dict when it is one.
    pub fn undecodable(err: &DecodeError, frame: Option<RawPayload>, peer: Option<&Uid>) -> Self {
        let mut e = Self::new(Problem::Undecodable);
        e.0.kind = err.msg_type().and_then(MsgKind::from_wire);
        e.0.tag = err.msg_type().map(str::to_owned);
        e.0.field = err.field().map(str::to_owned);
        e.0.detail = err.to_string();
        e.0.bad_msg_as_dict = frame;
        e.0.src_uid = peer.cloned();
        e.0.cid = err.cid().cloned();
        e
    }

    /// A valid message that is illegal in the dialog state `state`, where
    /// `expected` lists what may come.
    pub fn out_of_state(msg: &Msg, state: &str, expected: &str, peer: Option<&Uid>) -> Self {
        let mut e = Self::new(Problem::OutOfState);
        e.0.kind = Some(msg.kind());
        e.0.detail = format!("dialog state `{state}` expects {expected}");
        e.0.bad_msg = Some(msg.clone());
        e.0.src_uid = peer.cloned();
        e.0.cid = msg.cid().cloned();
        e
    }

    /// A payload of `msg` that does not match `spec`; `value` is the
    /// payload rendered for humans, `detail` the decoder's complaint.
    pub fn payload(
        msg: &Msg,
        spec: &str,
        value: Option<String>,
        detail: impl fmt::Display,
        peer: Option<&Uid>,
    ) -> Self {
        let mut e = Self::new(Problem::Payload);
        e.0.kind = Some(msg.kind());
        e.0.spec = Some(spec.to_owned());
        e.0.field = Some("pld".to_owned());
        e.0.value = value;
        e.0.detail = detail.to_string();
        e.0.bad_msg = Some(msg.clone());
        e.0.src_uid = peer.cloned();
        e.0.cid = msg.cid().cloned();
        e
    }

    /// Records the Python type name of the offending value (`str`, `int`,
    /// ...), which tractor HEAD's wording shows.
    pub(crate) fn with_value_type(mut self, name: &'static str) -> Self {
        self.0.value_type = Some(name);
        self
    }

    /// Marks this as found on the send side, before anything was written.
    pub fn on_send(mut self) -> Self {
        self.0.sending = true;
        self
    }

    /// Which check failed.
    pub fn problem(&self) -> Problem {
        self.0.problem
    }

    /// The bad message's kind, when known.
    pub fn kind(&self) -> Option<MsgKind> {
        self.0.kind
    }

    /// The payload spec it was checked against (payload errors).
    pub fn spec(&self) -> Option<&str> {
        self.0.spec.as_deref()
    }

    /// The offending field, e.g. `pld`.
    pub fn field(&self) -> Option<&str> {
        self.0.field.as_deref()
    }

    /// The offending value, rendered like a Python repr.
    pub fn value(&self) -> Option<&str> {
        self.0.value.as_deref()
    }

    /// The underlying decoder or state-machine complaint.
    pub fn detail(&self) -> &str {
        &self.0.detail
    }

    /// The bad message (`_bad_msg`), when it decoded.
    pub fn bad_msg(&self) -> Option<&Msg> {
        self.0.bad_msg.as_ref()
    }

    /// The bad message as a raw dict (`_bad_msg_as_dict`), when it did not.
    pub fn bad_msg_as_dict(&self) -> Option<&RawPayload> {
        self.0.bad_msg_as_dict.as_ref()
    }

    /// The peer that sent it.
    pub fn src_uid(&self) -> Option<&Uid> {
        self.0.src_uid.as_ref()
    }

    /// The dialog it belongs to, when known.
    pub fn cid(&self) -> Option<&Cid> {
        self.0.cid.as_ref()
    }

    /// Whether it was caught on the send side.
    pub fn is_send_side(&self) -> bool {
        self.0.sending
    }

    fn kind_str(&self) -> &str {
        match (self.0.kind, &self.0.tag) {
            (Some(k), _) => k.as_str(),
            (None, Some(tag)) => tag,
            (None, None) => "<unknown>",
        }
    }

    /// The message text exactly as tractor 978691c6 words it (what goes in
    /// the wire `Error.message`).
    pub fn tractor_message(&self) -> String {
        self.tractor_message_as(WireProfile::V978691c6)
    }

    /// The message text as the given tractor version words it: HEAD
    /// rewords payload errors
    /// (``invalid `Started` msg payload\n\n'x'\n\nhas type <class 'str'>\n\nand does not match type-spec `Started.pld: int` ``).
    pub fn tractor_message_as(&self, profile: WireProfile) -> String {
        let kind = self.kind_str();
        match self.0.problem {
            Problem::Payload if profile == WireProfile::Head => format!(
                "invalid `{kind}` msg payload\n\n{}\n\nhas type <class '{}'>\n\nand does not match type-spec `{kind}.pld: {}`",
                self.0.value.as_deref().unwrap_or("<undecodable>"),
                self.0.value_type.unwrap_or("object"),
                self.0.spec.as_deref().unwrap_or("Any"),
            ),
            Problem::Payload => format!(
                "invalid `{kind}` msg payload\n\nvalue: `{}` does not match type-spec: `{kind}.pld: {}`",
                self.0.value.as_deref().unwrap_or("<undecodable>"),
                self.0.spec.as_deref().unwrap_or("Any"),
            ),
            Problem::Undecodable => self.0.detail.clone(),
            Problem::OutOfState => format!("unexpected `{kind}` msg\n\n{}", self.0.detail),
            Problem::Remote => self.0.detail.clone(),
        }
    }

    /// The message on one line, for logs:
    /// ``invalid `Yield` msg payload: value: `'x'` does not match type-spec: `Yield.pld: int` ``.
    pub fn summary(&self) -> String {
        let text = self.tractor_message();
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        lines.join(": ")
    }

    /// Packs this error as the wire `Error` that `me` sends to the peer:
    /// `src_type_str = boxed_type_str = "MsgTypeError"`, `relay_path =
    /// [me]`, the tractor-worded `message`, and the bad message in
    /// `_bad_msg` (or `_bad_msg_as_dict` if it did not decode), like
    /// tractor's `bad_started.json` capture.
    pub fn to_wire(&self, me: &Uid) -> msg::Error {
        self.to_wire_as(me, WireProfile::V978691c6)
    }

    /// [`to_wire`](Self::to_wire), worded for the given tractor version.
    pub fn to_wire_as(&self, me: &Uid, profile: WireProfile) -> msg::Error {
        let mut err = msg::Error::new(me.clone(), "MsgTypeError");
        let message = self.tractor_message_as(profile);
        let indented = message.replace('\n', "\n  ");
        err.tb_str = format!("scipp_layers::payload::MsgTypeError: {indented}\n");
        err.message = Some(message);
        err.cid = self.0.cid.clone();
        err.bad_msg = self.0.bad_msg.clone().map(Box::new);
        err.bad_msg_as_dict = self.0.bad_msg_as_dict.clone();
        err
    }

    /// Unpacks a wire `Error` whose `boxed_type_str` is `"MsgTypeError"`;
    /// `None` for any other error. The spec and value are read back from
    /// the message text when it has tractor's wording (either version).
    pub fn from_wire(err: &msg::Error) -> Option<Self> {
        if err.boxed_type_str != "MsgTypeError" {
            return None;
        }
        let mut e = Self::new(Problem::Remote);
        let text = err.message.clone().unwrap_or_default();
        e.0.kind = err.bad_msg.as_deref().map(Msg::kind);
        e.0.spec = between(&text, ".pld: ", "`").map(str::to_owned);
        e.0.value = between(&text, "value: `", "` does not match")
            .or_else(|| between(&text, "payload\n\n", "\n\nhas type"))
            .map(str::to_owned);
        if e.0.spec.is_some() {
            e.0.field = Some("pld".to_owned());
        }
        e.0.detail = text;
        e.0.bad_msg = err.bad_msg.as_deref().cloned();
        e.0.bad_msg_as_dict = err.bad_msg_as_dict.clone();
        e.0.src_uid = Some(err.src_uid.clone());
        e.0.cid = err.cid.clone();
        Some(e)
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}

impl fmt::Display for MsgTypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.sending {
            f.write_str("Trying to send ")?;
        }
        f.write_str(&self.tractor_message())?;
        let kind = self.kind_str();
        let peer = match (&self.0.src_uid, &self.0.cid) {
            (Some(uid), Some(cid)) => format!("from peer {uid} on cid {cid}"),
            (Some(uid), None) => format!("from peer {uid}"),
            (None, Some(cid)) => format!("on cid {cid}"),
            (None, None) => String::new(),
        };
        let hint = match self.0.problem {
            Problem::Payload if self.0.sending => format!(
                "the value was not sent; make it a `{}` or widen this context's payload spec",
                self.0.spec.as_deref().unwrap_or("Any")
            ),
            Problem::Payload => format!(
                "send {} `{}` as `{kind}.pld`, or widen this context's payload spec",
                article(self.0.spec.as_deref().unwrap_or("Any")),
                self.0.spec.as_deref().unwrap_or("Any")
            ),
            Problem::Undecodable => "the sender must emit a SCIPP message map".to_owned(),
            Problem::OutOfState => "the sender broke the dialog order (spec §5.7)".to_owned(),
            Problem::Remote => String::new(),
        };
        let tail: Vec<&str> = [peer.as_str(), hint.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        if !tail.is_empty() {
            write!(f, "\n\n{}", tail.join("; "))?;
        }
        Ok(())
    }
}

fn article(word: &str) -> &'static str {
    match word.chars().next() {
        Some(c) if "aeiouAEIOU".contains(c) => "an",
        _ => "a",
    }
}

impl std::error::Error for MsgTypeError {}
