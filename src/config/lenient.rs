//! The whole document as a YAML [`Value`], with integers too large for one kept as text.
//!
//! `Value` holds 64-bit integers only, and its own `Deserialize` rejects a larger one
//! (`failure-threshold: 99999999999999999999`) as if the document were not YAML, with a message
//! about `u128`. Here such an integer becomes the string it was written as, so that the key's
//! own check can say which integers are valid (and a host-owned key with a huge number does
//! not stop the load at all). Everything else is built exactly as `Value` builds it.

use std::fmt;

use serde::{
    Deserialize, Deserializer,
    de::{self, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor},
};
use yaml_serde::{
    Mapping, Value,
    value::{Tag, TaggedValue},
};

/// A [`Value`] deserialized leniently; see the module docs.
pub(super) struct Lenient(pub(super) Value);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LenientVisitor).map(Lenient)
    }
}

struct LenientVisitor;

impl<'de> Visitor<'de> for LenientVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Number(i.into()))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Value, E> {
        Ok(Value::Number(u.into()))
    }

    fn visit_i128<E: de::Error>(self, i: i128) -> Result<Value, E> {
        Ok(Value::String(i.to_string()))
    }

    fn visit_u128<E: de::Error>(self, u: u128) -> Result<Value, E> {
        Ok(Value::String(u.to_string()))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Number(f.into()))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Lenient::deserialize(deserializer).map(|l| l.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Lenient(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Sequence(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut mapping = Mapping::new();
        while let Some(Lenient(key)) = map.next_key()? {
            if mapping.contains_key(&key) {
                // The message `Value` gives.
                return Err(de::Error::custom(match &key {
                    Value::Null => "duplicate entry with null key".to_owned(),
                    Value::Bool(b) => format!("duplicate entry with key `{b}`"),
                    Value::Number(n) => format!("duplicate entry with key {n}"),
                    Value::String(s) => format!("duplicate entry with key {s:?}"),
                    _ => "duplicate entry in YAML map".to_owned(),
                }));
            }
            let Lenient(value) = map.next_value()?;
            mapping.insert(key, value);
        }
        Ok(Value::Mapping(mapping))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (tag, contents) = data.variant::<String>()?;
        if tag.is_empty() {
            return Err(de::Error::custom("empty YAML tag is not allowed"));
        }
        let Lenient(value) = contents.newtype_variant()?;
        Ok(Value::Tagged(Box::new(TaggedValue {
            tag: Tag::new(tag),
            value,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Value, yaml_serde::Error> {
        yaml_serde::from_str::<Lenient>(yaml).map(|l| l.0)
    }

    #[test]
    fn builds_what_value_builds() {
        let yaml = "a: [1, -2, 1.5, true, ~, x, '7']\nb: { c: !Tag d }\n<<: { e: 1 }\n";
        assert_eq!(
            parse(yaml).expect("valid"),
            yaml_serde::from_str::<Value>(yaml).expect("valid")
        );
    }

    #[test]
    fn keeps_huge_integers_as_text() {
        let value = parse("n: 99999999999999999999\nm: -99999999999999999999\n").expect("valid");
        assert_eq!(value["n"], Value::String("99999999999999999999".into()));
        assert_eq!(value["m"], Value::String("-99999999999999999999".into()));
    }

    #[test]
    fn rejects_duplicate_keys_as_value_does() {
        let yaml = "a: 1\na: 2\n";
        assert_eq!(
            parse(yaml).expect_err("duplicate").to_string(),
            yaml_serde::from_str::<Value>(yaml)
                .expect_err("duplicate")
                .to_string()
        );
    }
}
