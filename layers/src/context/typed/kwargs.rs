//! Keyword arguments of typed dialogs: no kwargs as `()` or [`NoKwargs`],
//! sent as tractor sends them, an empty map.

use crate::relay::Raise;
use crate::BoxError;
use scipp_codecs::msg::RawPayload;
use scipp_codecs::Codec;
use serde::de::{self, DeserializeOwned, IgnoredAny};
use serde::ser::{self, Impossible, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// No keyword arguments: encodes as an empty map (`{}`, what tractor sends
/// for a call without kwargs) and decodes from an empty map (or nil). A
/// call that passes kwargs to an endpoint taking `NoKwargs` fails, as
/// Python's does, with a `TypeError` naming the unexpected argument.
///
/// Typed dialogs also take `()` for this; `NoKwargs` is for the untyped
/// API, where `()` would encode as nil:
///
/// ```
/// use scipp_layers::{context::NoKwargs, peer::Peer, route::Endpoints};
/// use scipp_codecs::{Codec, msgpack::MsgpackCodec};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let codec = MsgpackCodec::new();
/// assert_eq!(codec.encode_payload(&NoKwargs)?.as_bytes(), b"\x80"); // {}
///
/// let mut endpoints = Endpoints::new();
/// endpoints.rpc("clock", "ticks", |NoKwargs| async move { Ok(42_u64) });
/// let server = Peer::new("clock", MsgpackCodec::new()).endpoints(endpoints);
/// let (a, b) = tokio::io::duplex(4096);
/// let client = Peer::new("client", MsgpackCodec::new());
/// let (_served, chan) = tokio::join!(server.channel(a), client.channel(b));
/// let ticks: u64 = chan?.rpc("clock", "ticks", &NoKwargs).await?;
/// assert_eq!(ticks, 42);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NoKwargs;

impl Serialize for NoKwargs {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use ser::SerializeMap;
        s.serialize_map(Some(0))?.end()
    }
}

impl<'de> de::Deserialize<'de> for NoKwargs {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> de::Visitor<'de> for Visit {
            type Value = NoKwargs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("no keyword arguments (an empty map)")
            }
            fn visit_unit<E: de::Error>(self) -> Result<NoKwargs, E> {
                Ok(NoKwargs)
            }
            fn visit_none<E: de::Error>(self) -> Result<NoKwargs, E> {
                Ok(NoKwargs)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<NoKwargs, A::Error> {
                match map.next_key::<String>()? {
                    None => Ok(NoKwargs),
                    Some(key) => Err(de::Error::custom(format_args!(
                        "got an unexpected keyword argument '{key}'"
                    ))),
                }
            }
        }
        d.deserialize_any(Visit)
    }
}

/// Whether `value` serializes as nothing (`()`, a unit struct, `None`):
/// kwargs of that kind go out as an empty map.
pub(super) fn is_nothing<T: Serialize + ?Sized>(value: &T) -> bool {
    value.serialize(Nothing).is_ok()
}

/// A serializer that accepts only "nothing".
struct Nothing;

#[derive(Debug)]
struct Something;

impl fmt::Display for Something {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value")
    }
}

impl std::error::Error for Something {}

impl ser::Error for Something {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Something
    }
}

macro_rules! something {
    ($($name:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $name(self, $(_: $arg),*) -> Result<(), Something> { Err(Something) })*
    };
}

impl ser::Serializer for Nothing {
    type Ok = ();
    type Error = Something;
    type SerializeSeq = Impossible<(), Something>;
    type SerializeTuple = Impossible<(), Something>;
    type SerializeTupleStruct = Impossible<(), Something>;
    type SerializeTupleVariant = Impossible<(), Something>;
    type SerializeMap = Impossible<(), Something>;
    type SerializeStruct = Impossible<(), Something>;
    type SerializeStructVariant = Impossible<(), Something>;

    fn serialize_unit(self) -> Result<(), Something> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Something> {
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Something> {
        Ok(())
    }
    something!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_variant(&'static str, u32, &'static str),
    );
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), Something> {
        Err(Something)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Something> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Something> {
        Err(Something)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Something> {
        Err(Something)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Something> {
        Err(Something)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Something> {
        Err(Something)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Something> {
        Err(Something)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Something> {
        Err(Something)
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, Something> {
        Err(Something)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Something> {
        Err(Something)
    }
}

/// Decodes the kwargs of a call of `func` as `K`, by `decode` (the
/// endpoints' rule). When that fails and `K` takes nothing (`()`, a unit
/// struct), the empty map tractor sends is accepted, and a non-empty one
/// is Python's `TypeError` naming the first unexpected argument.
pub(super) fn decode<K, C>(
    codec: &C,
    func: &str,
    raw: &RawPayload,
    decode: impl FnOnce() -> Result<K, BoxError>,
) -> Result<K, BoxError>
where
    K: DeserializeOwned,
    C: Codec,
{
    let err = match decode() {
        Ok(kwargs) => return Ok(kwargs),
        Err(e) => e,
    };
    let nothing = codec
        .encode_payload(&())
        .ok()
        .and_then(|nil| codec.decode_payload::<K>(&nil).ok());
    let (Some(nothing), Ok(map)) = (
        nothing,
        codec.decode_payload::<BTreeMap<String, IgnoredAny>>(raw),
    ) else {
        return Err(err);
    };
    match map.keys().next() {
        None => Ok(nothing),
        Some(key) => Err(Box::new(Raise::new(
            "TypeError",
            format!("{func}() got an unexpected keyword argument '{key}'"),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::is_nothing;

    #[derive(serde::Serialize)]
    struct Unit;
    #[derive(serde::Serialize)]
    struct Add {
        a: i64,
    }

    #[test]
    fn nothing_is_unit_unit_structs_and_none() {
        assert!(is_nothing(&()));
        assert!(is_nothing(&Unit));
        assert!(is_nothing(&None::<i64>));
        assert!(!is_nothing(&Add { a: 1 }));
        assert!(!is_nothing(
            &std::collections::BTreeMap::<String, i64>::new()
        ));
        assert!(!is_nothing(&0));
    }
}
