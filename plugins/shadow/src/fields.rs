//! A reading's top-level fields, parsed without building a map: keys are
//! borrowed from the payload (unless they contain escapes) and the fields
//! come back in payload order. The shadow merges them one by one into maps
//! it already holds, so a reading of known fields allocates no keys.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// A field name, borrowed from the payload when it has no escapes.
pub struct Name<'a>(pub Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(s.to_string())))
            }
            fn visit_string<E>(self, s: String) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(s)))
            }
        }
        d.deserialize_str(NameVisitor)
    }
}

/// The fields of a JSON object, in order (a repeated name appears twice;
/// applied in order, the last one wins, as in a map).
pub struct Fields<'a>(pub Vec<(Name<'a>, Value)>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((name, value)) = map.next_entry::<Name<'de>, Value>()? {
                    fields.push((name, value));
                }
                Ok(Fields(fields))
            }
        }
        d.deserialize_map(FieldsVisitor)
    }
}

/// Parse `payload` as a JSON object. The error says whether it is not JSON
/// at all or JSON of another type.
pub fn parse(payload: &str) -> Result<Fields<'_>, String> {
    serde_json::from_str::<Fields>(payload).map_err(|e| {
        if e.is_data() {
            "payload is not a JSON object".to_string()
        } else {
            format!("payload is not JSON: {e}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(payload: &str) -> Vec<(String, bool)> {
        parse(payload)
            .unwrap()
            .0
            .into_iter()
            .map(|(n, _)| {
                let borrowed = matches!(n.0, Cow::Borrowed(_));
                (n.0.into_owned(), borrowed)
            })
            .collect()
    }

    #[test]
    fn fields_in_order_with_borrowed_names() {
        assert_eq!(
            names(r#"{"b":1,"a":{"x":[1,2]},"b":null,"t\u0065mp":2}"#),
            vec![
                ("b".to_string(), true),
                ("a".to_string(), true),
                ("b".to_string(), true),
                ("temp".to_string(), false),
            ]
        );
        let f = parse(r#"{"a":{"x":[1,2]}}"#).unwrap();
        assert_eq!(f.0[0].1, serde_json::json!({"x": [1, 2]}));
    }

    #[test]
    fn errors_tell_not_json_from_not_an_object() {
        assert_eq!(
            parse("[1,2]").err().unwrap(),
            "payload is not a JSON object"
        );
        assert_eq!(parse("42").err().unwrap(), "payload is not a JSON object");
        assert!(parse("{\"a\":")
            .err()
            .unwrap()
            .starts_with("payload is not JSON"));
        assert!(parse("nope")
            .err()
            .unwrap()
            .starts_with("payload is not JSON"));
        assert!(parse("{\"a\":1} x")
            .err()
            .unwrap()
            .starts_with("payload is not JSON"));
    }
}
