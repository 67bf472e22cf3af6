//! Payload specs: what type a context's `Started`/`Yield`/`Return`
//! payloads must decode as.

use super::{render::python_repr, render::python_type, MsgTypeError};
use crate::cid_map::CidMap;
use scipp_codecs::msg::{Cid, Msg, MsgKind, RawPayload, Uid};
use scipp_codecs::{Codec, PayloadError};
use serde::de::DeserializeOwned;
use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Decodes a payload as the spec's type, boxed for the consumer.
type Check<C> = fn(&C, &RawPayload) -> Result<Option<Box<dyn Any + Send + Sync>>, PayloadError>;

/// The payload spec of a context: a Rust type its payloads must decode as
/// (a union is an enum), or [`Any`](PldSpec::any); one for all of
/// `Started`, `Yield` and `Return`, or one per phase
/// ([`per_phase`](PldSpec::per_phase), [`dialog`](PldSpec::dialog)), as
/// tractor lets a dialog narrow its spec per phase.
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
pub struct PldSpec<C = crate::DefaultCodec> {
    /// The spec string (of every phase, or of the whole per-phase spec).
    name: Arc<str>,
    /// The check of every phase, unless `phases` says otherwise.
    check: Option<Check<C>>,
    /// `Started`, `Yield`, `Return`, when they differ.
    phases: Option<Arc<[Phase<C>; 3]>>,
}

/// The spec of one phase of a per-phase [`PldSpec`].
struct Phase<C> {
    name: Arc<str>,
    check: Option<Check<C>>,
}

impl<C> Clone for PldSpec<C> {
    fn clone(&self) -> Self {
        PldSpec {
            name: self.name.clone(),
            check: self.check,
            phases: self.phases.clone(),
        }
    }
}

impl<C> fmt::Debug for PldSpec<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PldSpec").field(&self.name).finish()
    }
}

/// Decodes `raw` as a `T`, keeping the value for the context unless it is
/// a small plain value.
///
/// Keeping a value boxes it: for an `i64` the allocation and the free
/// (~280 instructions per message, callgrind) cost far more than the
/// context's second decode of the same few bytes (~50), so those values
/// are dropped here and decoded again where they are delivered.
fn check_as<T: DeserializeOwned + Send + Sync + 'static, C: Codec>(
    codec: &C,
    raw: &RawPayload,
) -> Result<Option<Box<dyn Any + Send + Sync>>, PayloadError> {
    let value = codec.decode_payload::<T>(raw)?;
    Ok((!cheaper_to_decode_again::<T>()).then(|| Box::new(value) as Box<dyn Any + Send + Sync>))
}

/// The types [`check_as`] does not keep: numbers and `bool`s, whose
/// decode is a few instructions and whose box would be an allocation.
fn cheaper_to_decode_again<T: 'static>() -> bool {
    use std::any::TypeId;
    let t = TypeId::of::<T>();
    [
        TypeId::of::<i64>(),
        TypeId::of::<u64>(),
        TypeId::of::<i32>(),
        TypeId::of::<u32>(),
        TypeId::of::<i16>(),
        TypeId::of::<u16>(),
        TypeId::of::<i8>(),
        TypeId::of::<u8>(),
        TypeId::of::<f64>(),
        TypeId::of::<f32>(),
        TypeId::of::<bool>(),
        TypeId::of::<()>(),
    ]
    .contains(&t)
}

/// The index of a payload message's phase in [`PldSpec::phases`].
fn phase_index(kind: MsgKind) -> Option<usize> {
    match kind {
        MsgKind::Started => Some(0),
        MsgKind::Yield => Some(1),
        MsgKind::Return => Some(2),
        _ => None,
    }
}

impl<C: Codec> PldSpec<C> {
    /// Accepts every payload (tractor's default, `typing.Any`). The codec
    /// has already checked that the payload is one well-formed value.
    pub fn any() -> Self {
        // one shared name: every `rpc` makes an `Any` spec
        static ANY: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
        PldSpec {
            name: ANY.get_or_init(|| Arc::from("Any")).clone(),
            check: None,
            phases: None,
        }
    }

    /// Payloads must decode as `T`. The receive-side check keeps the
    /// decoded value with the message, so a context reading `T` gets it
    /// without decoding again.
    pub fn of<T: DeserializeOwned + Send + Sync + 'static>() -> Self {
        PldSpec {
            name: Arc::from(spec_name(std::any::type_name::<T>()).as_str()),
            check: Some(check_as::<T, C>),
            phases: None,
        }
    }

    /// One spec per phase: `Started` payloads follow `started`, `Yield`
    /// payloads (both directions) `item`, `Return` payloads `returned`
    /// (each argument's own spec for that phase). A `Started` of a streamed
    /// byte context can be `None` and its `Return` a count, say:
    ///
    /// ```
    /// use scipp_layers::payload::PldSpec;
    /// use scipp_codecs::{Codec, msgpack::MsgpackCodec, msg::*};
    ///
    /// let codec = MsgpackCodec::new();
    /// let spec = PldSpec::<MsgpackCodec>::per_phase(
    ///     PldSpec::of::<()>(),
    ///     PldSpec::of::<serde_bytes::ByteBuf>(),
    ///     PldSpec::of::<u64>(),
    /// );
    /// assert_eq!(spec.name(), "{Started: None, Yield: bytes, Return: int}");
    /// assert_eq!(spec.phase(MsgKind::Return).name(), "int");
    /// let ret = Msg::Return(Return { cid: Cid::from("c1"), pld: codec.encode_payload("12").unwrap() });
    /// let err = spec.validate(&codec, &ret, None).unwrap_err();
    /// assert!(err.to_string().contains("`Return.pld: int`"), "{err}");
    /// ```
    pub fn per_phase(started: Self, item: Self, returned: Self) -> Self {
        let phase = |spec: &Self, i: usize| {
            let (name, check) = spec.at(i);
            Phase {
                name: Arc::from(name),
                check,
            }
        };
        let phases = [phase(&started, 0), phase(&item, 1), phase(&returned, 2)];
        let name = format!(
            "{{Started: {}, Yield: {}, Return: {}}}",
            phases[0].name, phases[1].name, phases[2].name
        );
        PldSpec {
            name: Arc::from(name.as_str()),
            check: phases[1].check,
            phases: Some(Arc::new(phases)),
        }
    }

    /// [`per_phase`](Self::per_phase) of three types: `Started` payloads
    /// must decode as `S`, `Yield` payloads as `Y`, `Return` payloads as
    /// `R`.
    ///
    /// ```
    /// use scipp_layers::payload::PldSpec;
    /// use scipp_codecs::msgpack::MsgpackCodec;
    /// let spec = PldSpec::<MsgpackCodec>::dialog::<String, i64, Vec<i64>>();
    /// assert_eq!(spec.name(), "{Started: str, Yield: int, Return: list[int]}");
    /// ```
    pub fn dialog<S, Y, R>() -> Self
    where
        S: DeserializeOwned + Send + Sync + 'static,
        Y: DeserializeOwned + Send + Sync + 'static,
        R: DeserializeOwned + Send + Sync + 'static,
    {
        Self::per_phase(Self::of::<S>(), Self::of::<Y>(), Self::of::<R>())
    }

    /// The spec of one phase (`Started`, `Yield` or `Return`) as a spec of
    /// its own; other kinds carry no payload and get [`any`](Self::any).
    pub fn phase(&self, kind: MsgKind) -> Self {
        let Some(i) = phase_index(kind) else {
            return Self::any();
        };
        let (name, check) = self.at(i);
        PldSpec {
            name: Arc::from(name),
            check,
            phases: None,
        }
    }

    /// Phase `i`'s spec string and check.
    fn at(&self, i: usize) -> (&str, Option<Check<C>>) {
        match &self.phases {
            Some(phases) => (&phases[i].name, phases[i].check),
            None => (&self.name, self.check),
        }
    }

    /// Replaces the spec string, e.g. `"Point|int|None"` for an enum. Of
    /// a per-phase spec, only the name of the whole changes: name each
    /// phase's spec before [`per_phase`](Self::per_phase) to change what
    /// errors show.
    pub fn named(mut self, name: &str) -> Self {
        self.name = Arc::from(name);
        self
    }

    /// The spec string.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether every payload passes, in every phase.
    pub fn is_any(&self) -> bool {
        match &self.phases {
            Some(phases) => phases.iter().all(|p| p.check.is_none()),
            None => self.check.is_none(),
        }
    }

    /// Checks one raw payload (of a per-phase spec: as a stream item,
    /// the `Yield` phase).
    ///
    /// # Errors
    /// The codec's complaint when the payload does not decode as the spec.
    pub fn check(&self, codec: &C, raw: &RawPayload) -> Result<(), PayloadError> {
        decode(self.at(1).1, codec, raw).map(drop)
    }

    /// Checks the payload of a `Started`, `Yield` or `Return` against its
    /// phase's spec (other messages, `CancelAck` included, always pass).
    ///
    /// # Errors
    /// A payload [`MsgTypeError`] naming the phase's spec, the field and
    /// the offending value, attributed to `peer`.
    pub fn validate(&self, codec: &C, msg: &Msg, peer: Option<&Uid>) -> Result<(), MsgTypeError> {
        let (Some(pld), Some(i)) = (msg.pld(), phase_index(msg.kind())) else {
            return Ok(());
        };
        let (name, check) = self.at(i);
        decode(check, codec, pld)
            .map(drop)
            .map_err(|e| error(name, codec, msg, e, peer))
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
        let (Some(pld), Some(i)) = (msg.pld(), phase_index(msg.kind())) else {
            return Ok(());
        };
        let (name, check) = self.at(i);
        match decode(check, codec, pld) {
            Ok(Some(value)) => {
                if let Some(pld) = msg.pld_mut() {
                    pld.set_decoded(value);
                }
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(error(name, codec, msg, e, peer)),
        }
    }
}

/// Runs `check` (none: `Any`), keeping what it decoded.
fn decode<C>(
    check: Option<Check<C>>,
    codec: &C,
    raw: &RawPayload,
) -> Result<Option<Box<dyn Any + Send + Sync>>, PayloadError> {
    check.map_or(Ok(None), |check| check(codec, raw))
}

fn error<C: Codec>(
    spec: &str,
    codec: &C,
    msg: &Msg,
    e: PayloadError,
    peer: Option<&Uid>,
) -> MsgTypeError {
    let value = msg
        .pld()
        .and_then(|pld| codec.decode_payload::<rmpv::Value>(pld).ok());
    let repr = value.as_ref().map(python_repr);
    let err = MsgTypeError::payload(msg, spec, repr, e, peer);
    match value {
        Some(v) => err.with_value_type(python_type(&v)),
        None => err,
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
        "ByteBuf" | "Bytes" | "Blob" => "bytes".into(),
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
pub struct PayloadSpecs<C = crate::DefaultCodec> {
    inner: Arc<Shared<C>>,
}

struct Shared<C> {
    default: PldSpec<C>,
    per_cid: Mutex<CidMap<PldSpec<C>>>,
    /// Bumped by every `set` and `remove`: a [`SpecCache`] entry of an
    /// older generation is stale.
    generation: AtomicU64,
    /// How many contexts have their own spec (written under the lock).
    entries: std::sync::atomic::AtomicUsize,
}

/// The last spec one service looked up, with the table's generation at
/// the time: a stream's messages all name the same cid, and a hit skips
/// the table's lock, hash and clone.
pub(crate) type SpecCache<C> = Option<(Cid, u64, PldSpec<C>)>;

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
                generation: AtomicU64::new(0),
                entries: std::sync::atomic::AtomicUsize::new(0),
            }),
        }
    }

    /// Sets the spec of one context.
    pub fn set(&self, cid: Cid, spec: PldSpec<C>) {
        let mut table = self.lock();
        table.insert(cid, spec);
        self.inner.entries.store(table.len(), Ordering::Release);
        self.inner.generation.fetch_add(1, Ordering::Release);
    }

    /// Forgets a finished context's spec.
    pub fn remove(&self, cid: &Cid) {
        if self.inner.entries.load(Ordering::Acquire) == 0 {
            // nothing to forget (every plain RPC's case): no lock, no hash
            return;
        }
        let mut table = self.lock();
        if table.remove(cid).is_some() {
            self.inner.entries.store(table.len(), Ordering::Release);
            self.inner.generation.fetch_add(1, Ordering::Release);
        }
    }

    /// The spec in force for `cid`.
    pub fn get(&self, cid: &Cid) -> PldSpec<C> {
        self.lock()
            .get(cid)
            .cloned()
            .unwrap_or_else(|| self.inner.default.clone())
    }

    /// [`get`](Self::get) through `cache`: the cached spec while the
    /// table has not changed since it was looked up.
    pub(crate) fn get_cached<'a>(&self, cid: &Cid, cache: &'a mut SpecCache<C>) -> &'a PldSpec<C> {
        // read before the lookup: a change racing with it bumps the
        // generation past the one cached, and the next call looks again
        let generation = self.inner.generation.load(Ordering::Acquire);
        let hit = matches!(cache, Some((c, g, _)) if *g == generation && c == cid);
        if !hit {
            *cache = Some((cid.clone(), generation, self.get(cid)));
        }
        match cache {
            Some((_, _, spec)) => spec,
            None => unreachable!("filled above"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CidMap<PldSpec<C>>> {
        // The map holds no invariant a panicking holder could break.
        self.inner
            .per_cid
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl<C: Codec> PayloadSpecs<C> {
    /// Sets the spec of one new context, unless it and the table's
    /// default both check nothing: then the lookup answers the same
    /// without an entry (a plain RPC's case), and the table is left as it
    /// is (the specs cached for streams stay valid).
    pub(crate) fn set_new(&self, cid: &Cid, spec: &PldSpec<C>) {
        if spec.is_any() && self.inner.default.is_any() {
            return;
        }
        self.set(cid.clone(), spec.clone());
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;
    use scipp_codecs::msgpack::MsgpackCodec;

    #[test]
    fn an_any_spec_in_an_any_table_takes_no_entry() {
        let specs = PayloadSpecs::<MsgpackCodec>::new(PldSpec::any());
        let (c1, c2) = (Cid::from("c1"), Cid::from("c2"));
        specs.set_new(&c1, &PldSpec::any());
        assert_eq!(specs.lock().len(), 0, "nothing stored");
        assert_eq!(specs.get(&c1).name(), "Any");
        specs.set_new(&c2, &PldSpec::of::<i64>());
        assert_eq!(specs.get(&c2).name(), "int");
        specs.remove(&c1); // not there: nothing changes
        assert_eq!(specs.get(&c2).name(), "int");
        specs.remove(&c2);
        assert_eq!(specs.lock().len(), 0, "forgotten");
        assert_eq!(specs.get(&c2).name(), "Any");
    }

    #[test]
    fn a_typed_spec_in_a_typed_table_is_kept() {
        // the default checks: an explicit `Any` must override it
        let specs = PayloadSpecs::<MsgpackCodec>::new(PldSpec::of::<i64>());
        let c1 = Cid::from("c1");
        specs.set_new(&c1, &PldSpec::any());
        assert_eq!(specs.get(&c1).name(), "Any");
        specs.remove(&c1);
        assert_eq!(specs.get(&c1).name(), "int");
    }

    #[test]
    fn small_plain_values_are_not_boxed_for_the_context_and_others_are() {
        let codec = MsgpackCodec::new();
        let int = codec.encode_payload(&42i64).unwrap();
        assert!(check_as::<i64, _>(&codec, &int).unwrap().is_none());
        let text = codec.encode_payload(&"x").unwrap();
        let kept = check_as::<String, _>(&codec, &text).unwrap().unwrap();
        assert_eq!(kept.downcast_ref::<String>().map(String::as_str), Some("x"));
        assert!(check_as::<i64, _>(&codec, &text).is_err(), "still checked");
    }

    #[test]
    fn a_cached_spec_follows_every_change_of_the_table() {
        let specs = PayloadSpecs::<MsgpackCodec>::new(PldSpec::any());
        let (c1, c2) = (Cid::from("c1"), Cid::from("c2"));
        let mut cache = None;
        assert_eq!(specs.get_cached(&c1, &mut cache).name(), "Any");
        specs.set(c1.clone(), PldSpec::of::<i64>());
        assert_eq!(specs.get_cached(&c1, &mut cache).name(), "int");
        assert_eq!(
            specs.get_cached(&c2, &mut cache).name(),
            "Any",
            "another cid"
        );
        assert_eq!(specs.get_cached(&c1, &mut cache).name(), "int");
        specs.set(c1.clone(), PldSpec::of::<String>());
        assert_eq!(specs.get_cached(&c1, &mut cache).name(), "str");
        specs.remove(&c1);
        assert_eq!(specs.get_cached(&c1, &mut cache).name(), "Any");
    }
}
