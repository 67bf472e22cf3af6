//! Keyword arguments checked as Python checks them: an unexpected keyword
//! or a missing required one is a `TypeError` worded like CPython's.
//!
//! Which keywords a kwargs type `K` takes is read from its `Deserialize`
//! impl once, at registration: a probe deserializer records the field list
//! serde's derive hands to `deserialize_struct` (after `rename`/`rename_all`).
//! A type that deserializes as a map (`BTreeMap<String, V>`, `HashMap`, a
//! struct with a `#[serde(flatten)]` field) or as anything else
//! (`IgnoredAny`, `rmpv::Value`, untagged enums) takes any keyword.

use crate::relay::Raise;
use crate::BoxError;
use scipp_codecs::msg::RawPayload;
use scipp_codecs::Codec;
use serde::de::{self, DeserializeOwned, IgnoredAny, MapAccess, Visitor};
use std::fmt;

/// The keywords a kwargs type takes.
#[derive(Debug, Clone)]
pub(super) enum Accepted {
    /// Exactly these (a plain struct).
    Fields(&'static [&'static str]),
    /// Any keyword (a map, a flattened struct, anything not a struct).
    Any,
}

impl Accepted {
    /// Reads the field list of `K`'s `Deserialize` impl.
    pub(super) fn of<K: DeserializeOwned>() -> Self {
        let mut probe = Probe { seen: None };
        let _ = K::deserialize(&mut probe); // always fails: the probe has no data
        probe.seen.unwrap_or(Accepted::Any)
    }
}

/// Decodes `raw` as the kwargs of `func` into `K`, refusing what Python
/// would refuse.
///
/// How close to Python the texts are: an unexpected keyword reads exactly
/// like CPython's (`add() got an unexpected keyword argument 'c'`, the
/// first one in the call's order). A missing one reads like CPython's for
/// a plain `def` (`add() missing 1 required positional argument: 'b'`),
/// except that serde reports only the first missing field, so two missing
/// ones still say `1` and name one. Anything else that does not fit `K`
/// (a wrong type, which Python would not check) is a `TypeError` naming
/// the function and serde's reason.
pub(super) fn decode<C: Codec, K: DeserializeOwned>(
    codec: &C,
    raw: &RawPayload,
    func: &str,
    accepted: &Accepted,
) -> Result<K, BoxError> {
    if let Accepted::Fields(fields) = accepted {
        // Not a map (or undecodable): left to the decode below.
        if let Ok(Keys(keys)) = codec.decode_payload::<Keys>(raw) {
            if let Some(extra) = keys.iter().find(|k| !fields.contains(&k.as_str())) {
                return Err(type_error(format!(
                    "{func}() got an unexpected keyword argument '{extra}'"
                )));
            }
        }
    }
    codec.decode_payload(raw).map_err(|e| {
        let why = e.to_string();
        match missing_field(&why) {
            Some(name) => type_error(format!(
                "{func}() missing 1 required positional argument: '{name}'"
            )),
            None => type_error(format!("{func}() bad keyword arguments: {why}")),
        }
    })
}

fn type_error(message: String) -> BoxError {
    Box::new(Raise::new("TypeError", message))
}

/// The field name in serde's ``missing field `name` `` text.
fn missing_field(why: &str) -> Option<&str> {
    let rest = why.split("missing field `").nth(1)?;
    rest.split('`').next()
}

/// The keys of a kwargs map, in the call's order (values skipped).
struct Keys(Vec<String>);

impl<'de> de::Deserialize<'de> for Keys {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeysVisitor;
        impl<'de> Visitor<'de> for KeysVisitor {
            type Value = Keys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of keyword arguments")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some((k, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                    keys.push(k);
                }
                Ok(Keys(keys))
            }
        }
        d.deserialize_map(KeysVisitor)
    }
}

/// A deserializer with no data that records what it was asked for.
struct Probe {
    seen: Option<Accepted>,
}

#[derive(Debug)]
struct Probed;

impl fmt::Display for Probed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("probed")
    }
}

impl std::error::Error for Probed {}

impl de::Error for Probed {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Probed
    }
}

impl<'de> de::Deserializer<'de> for &mut Probe {
    type Error = Probed;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Probed> {
        self.seen = Some(Accepted::Any);
        Err(Probed)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Probed> {
        self.seen = Some(Accepted::Fields(fields));
        Err(Probed)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Add {
        a: i64,
        #[serde(rename = "bee")]
        b: i64,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct WithExtras {
        a: i64,
        #[serde(flatten)]
        extra: BTreeMap<String, i64>,
    }

    #[test]
    fn a_struct_takes_its_serde_field_names() {
        assert!(matches!(
            Accepted::of::<Add>(),
            Accepted::Fields(["a", "bee"])
        ));
    }

    #[test]
    fn maps_flattened_structs_and_values_take_any_keyword() {
        assert!(matches!(
            Accepted::of::<BTreeMap<String, i64>>(),
            Accepted::Any
        ));
        assert!(matches!(Accepted::of::<WithExtras>(), Accepted::Any));
        assert!(matches!(Accepted::of::<IgnoredAny>(), Accepted::Any));
    }

    #[test]
    fn the_missing_field_is_read_from_serdes_text() {
        assert_eq!(missing_field("missing field `b`"), Some("b"));
        assert_eq!(missing_field("invalid type: string"), None);
    }
}
