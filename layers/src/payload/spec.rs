//! Payload specs: what type a context's `Started`/`Yield`/`Return`
//! payloads must decode as.

use super::{render::python_repr, render::python_type, MsgTypeError};
use crate::cid_map::CidMap;
use scipp_codecs::msg::{Cid, Msg, RawPayload, Uid};
use scipp_codecs::{Codec, PayloadError};
use serde::de::DeserializeOwned;
use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

/// Decodes a payload as the spec's type, boxed for the consumer.
type Check<C> = fn(&C, &RawPayload) -> Result<Box<dyn Any + Send + Sync>, PayloadError>;

/// The payload spec of a context: a Rust type its payloads must decode as
/// (a union is an enum), or [`Any`](PldSpec::any).
///
/// Its [`name`](PldSpec::name) is the human-readable spec string used in
/// errors; primitive types print with their Python names, as tractor shows
/// them (`int`, `str`, `float`, `bool`, `None`, `bytes`).
///
/// ```
/// use scipp_layers::payload::PldSpec;
/// use scipp_codecs::{Codec, msgpack::MsgpackCodec};
///
/// #[derive(serde::Deserialize)]
/// #[allow(dead_code)]
/// struct Point { x: i64, y: i64 }
///
/// let codec = MsgpackCodec::new();
/// let spec = PldSpec::<MsgpackCodec>::of::<Option<Point>>();
/// assert_eq!(spec.name(), "Point|None");
/// assert!(spec.check(&codec, &codec.encode_payload(&()).unwrap()).is_ok());
/// assert!(spec.check(&codec, &codec.encode_payload(&5).unwrap()).is_err());
/// ```
pub struct PldSpec<C> {
    name: Arc<str>,
    check: Option<Check<C>>,
}

impl<C> Clone for PldSpec<C> {
    fn clone(&self) -> Self {
        PldSpec {
            name: self.name.clone(),
            check: self.check,
        }
    }
}

impl<C> fmt::Debug for PldSpec<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PldSpec").field(&self.name).finish()
    }
}

fn check_as<T: DeserializeOwned + Send + Sync + 'static, C: Codec>(
    codec: &C,
    raw: &RawPayload,
) -> Result<Box<dyn Any + Send + Sync>, PayloadError> {
    Ok(Box::new(codec.decode_payload::<T>(raw)?))
}

impl<C: Codec> PldSpec<C> {
    /// Accepts every payload (tractor's default, `typing.Any`). The codec
    /// has already checked that the payload is one well-formed value.
    pub fn any() -> Self {
        PldSpec {
            name: Arc::from("Any"),
            check: None,
        }
    }

    /// Payloads must decode as `T`. The receive-side check keeps the
    /// decoded value with the message, so a context reading `T` gets it
    /// without decoding again.
    pub fn of<T: DeserializeOwned + Send + Sync + 'static>() -> Self {
        PldSpec {
            name: Arc::from(spec_name(std::any::type_name::<T>()).as_str()),
            check: Some(check_as::<T, C>),
        }
    }

    /// Replaces the spec string, e.g. `"Point|int|None"` for an enum.
    pub fn named(mut self, name: &str) -> Self {
        self.name = Arc::from(name);
        self
    }

    /// The spec string.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether every payload passes.
    pub fn is_any(&self) -> bool {
        self.check.is_none()
    }

    /// Checks one raw payload.
    ///
    /// # Errors
    /// The codec's complaint when the payload does not decode as the spec.
    pub fn check(&self, codec: &C, raw: &RawPayload) -> Result<(), PayloadError> {
        self.decode(codec, raw).map(drop)
    }

    /// The check, keeping what it decoded (`None` for `Any`).
    fn decode(
        &self,
        codec: &C,
        raw: &RawPayload,
    ) -> Result<Option<Box<dyn Any + Send + Sync>>, PayloadError> {
        self.check.map(|check| check(codec, raw)).transpose()
    }

    /// Checks the payload of a `Started`, `Yield` or `Return` (other
    /// messages, `CancelAck` included, always pass).
    ///
    /// # Errors
    /// A payload [`MsgTypeError`] naming the spec, the field and the
    /// offending value, attributed to `peer`.
    pub fn validate(&self, codec: &C, msg: &Msg, peer: Option<&Uid>) -> Result<(), MsgTypeError> {
        let Some(pld) = msg.pld() else { return Ok(()) };
        self.decode(codec, pld)
            .map(drop)
            .map_err(|e| self.error(codec, msg, e, peer))
    }

    /// [`validate`](Self::validate), attaching the decoded value to the
    /// message's payload (see `RawPayload::set_decoded`): the receive
    /// path decodes a payload once.
    pub(crate) fn validate_keeping(
        &self,
        codec: &C,
        msg: &mut Msg,
        peer: Option<&Uid>,
    ) -> Result<(), MsgTypeError> {
        let Some(pld) = msg.pld() else { return Ok(()) };
        match self.decode(codec, pld) {
            Ok(Some(value)) => {
                if let Some(pld) = msg.pld_mut() {
                    pld.set_decoded(value);
                }
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(self.error(codec, msg, e, peer)),
        }
    }

    fn error(&self, codec: &C, msg: &Msg, e: PayloadError, peer: Option<&Uid>) -> MsgTypeError {
        let value = msg
            .pld()
            .and_then(|pld| codec.decode_payload::<rmpv::Value>(pld).ok());
        let repr = value.as_ref().map(python_repr);
        let err = MsgTypeError::payload(msg, &self.name, repr, e, peer);
        match value {
            Some(v) => err.with_value_type(python_type(&v)),
            None => err,
        }
    }
}

/// A Rust type name as a spec string: paths dropped, Python names for
/// primitives, `Option<T>` as `T|None`.
pub(crate) fn spec_name(type_name: &str) -> String {
    let (head, args) = match type_name.find('<') {
        Some(i) if type_name.ends_with('>') => (
            &type_name[..i],
            split_args(&type_name[i + 1..type_name.len() - 1]),
        ),
        _ => (type_name, Vec::new()),
    };
    let base = head.rsplit("::").next().unwrap_or(head).trim();
    let arg = |i: usize| args.get(i).map(|a| spec_name(a)).unwrap_or_default();
    match base {
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "u8" | "u16" | "u32" | "u64" | "u128"
        | "usize" => "int".into(),
        "f32" | "f64" => "float".into(),
        "bool" => "bool".into(),
        "String" | "str" | "&str" | "char" => "str".into(),
        "()" => "None".into(),
        "ByteBuf" | "Bytes" => "bytes".into(),
        "Vec" if args.first().map(|a| a.trim()) == Some("u8") => "bytes".into(),
        "Option" => format!("{}|None", arg(0)),
        "Vec" | "VecDeque" => format!("list[{}]", arg(0)),
        "HashMap" | "BTreeMap" => format!("dict[{}, {}]", arg(0), arg(1)),
        "Value" => "Any".into(),
        _ if base.starts_with('(') => format!(
            "tuple[{}]",
            split_args(&base[1..base.len() - 1])
                .iter()
                .map(|a| spec_name(a))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => base.to_owned(),
    }
}

fn split_args(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if !s[start..].trim().is_empty() {
        out.push(s[start..].trim());
    }
    out
}

/// The payload specs of one channel: a default, and one per context.
///
/// Cloning shares the table, so the receive and send stacks (and the code
/// that opens contexts) see the same specs.
///
/// ```
/// use scipp_layers::payload::{PayloadSpecs, PldSpec};
/// use scipp_codecs::{msg::Cid, msgpack::MsgpackCodec};
/// let specs = PayloadSpecs::<MsgpackCodec>::new(PldSpec::any());
/// specs.set(Cid::from("c1"), PldSpec::of::<i64>());
/// assert_eq!(specs.get(&Cid::from("c1")).name(), "int");
/// assert_eq!(specs.get(&Cid::from("c2")).name(), "Any");
/// ```
pub struct PayloadSpecs<C> {
    inner: Arc<Shared<C>>,
}

struct Shared<C> {
    default: PldSpec<C>,
    per_cid: Mutex<CidMap<PldSpec<C>>>,
}

impl<C> Clone for PayloadSpecs<C> {
    fn clone(&self) -> Self {
        PayloadSpecs {
            inner: self.inner.clone(),
        }
    }
}

impl<C> fmt::Debug for PayloadSpecs<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayloadSpecs")
            .field("default", &self.inner.default)
            .finish_non_exhaustive()
    }
}

impl<C> PayloadSpecs<C> {
    /// A table whose contexts use `default` unless given their own spec.
    pub fn new(default: PldSpec<C>) -> Self {
        PayloadSpecs {
            inner: Arc::new(Shared {
                default,
                per_cid: Mutex::new(CidMap::default()),
            }),
        }
    }

    /// Sets the spec of one context.
    pub fn set(&self, cid: Cid, spec: PldSpec<C>) {
        self.lock().insert(cid, spec);
    }

    /// Forgets a finished context's spec.
    pub fn remove(&self, cid: &Cid) {
        self.lock().remove(cid);
    }

    /// The spec in force for `cid`.
    pub fn get(&self, cid: &Cid) -> PldSpec<C> {
        self.lock()
            .get(cid)
            .cloned()
            .unwrap_or_else(|| self.inner.default.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CidMap<PldSpec<C>>> {
        // The map holds no invariant a panicking holder could break.
        self.inner
            .per_cid
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
