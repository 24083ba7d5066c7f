//! A reading's top-level fields, each as its name and the JSON text of its
//! value, in payload order (a repeated name appears twice; applied in
//! order, the last one wins, as in a map). The shadow stores a field's
//! text as it came, so a reading of known fields allocates nothing: each
//! stored text is overwritten in place.
//!
//! A quick scan ([`weir_json_scan`]) takes what devices send: names and
//! strings without escapes, numbers, literals, nesting. It borrows both
//! name and text from the payload. Anything else (an escape, deep nesting,
//! and anything invalid) goes to serde_json, whose errors say what is wrong.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;
use weir_json_scan::Cursor;

/// The fields of a JSON object, in order: name, and the value as JSON.
pub struct Fields<'a>(pub Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl Fields<'_> {
    /// Each field's name and value text, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        self.0.iter().map(|(name, text)| (&**name, &**text))
    }
}

/// Parse `payload` as a JSON object. The error says whether it is not JSON
/// at all or JSON of another type.
pub fn parse(payload: &str) -> Result<Fields<'_>, String> {
    if let Some(fields) = object_fields(payload) {
        return Ok(fields);
    }
    let parsed = serde_json::from_str::<Parsed>(payload).map_err(|e| {
        if e.is_data() {
            "payload is not a JSON object".to_string()
        } else {
            format!("payload is not JSON: {e}")
        }
    })?;
    Ok(Fields(
        parsed
            .0
            .into_iter()
            .map(|(name, value)| (name.0, Cow::Owned(value.to_string())))
            .collect(),
    ))
}

/// The payload as an object's fields (the quick scan), or `None` to leave
/// it to serde_json.
fn object_fields(payload: &str) -> Option<Fields<'_>> {
    let mut fields = Vec::with_capacity(8);
    let mut c = Cursor::new(payload);
    c.ws();
    if c.open(b'{', b'}')? {
        loop {
            let name = c.key()?;
            let start = c.position();
            c.skip_value(1)?;
            fields.push((Cow::Borrowed(name), Cow::Borrowed(c.since(start)?)));
            if !c.next_member(b'}')? {
                break;
            }
        }
    }
    c.ws();
    c.at_end().then_some(Fields(fields))
}

/// A field name, borrowed from the payload when it has no escapes.
struct Name<'a>(Cow<'a, str>);

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

/// An object's fields as serde_json parses them, in order.
struct Parsed<'a>(Vec<(Name<'a>, Value)>);

impl<'de> Deserialize<'de> for Parsed<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Parsed<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed<'de>, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((name, value)) = map.next_entry::<Name<'de>, Value>()? {
                    fields.push((name, value));
                }
                Ok(Parsed(fields))
            }
        }
        d.deserialize_map(FieldsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(payload: &str) -> Vec<(String, String, bool)> {
        parse(payload)
            .unwrap()
            .0
            .into_iter()
            .map(|(n, v)| {
                let borrowed = matches!(n, Cow::Borrowed(_)) && matches!(v, Cow::Borrowed(_));
                (n.into_owned(), v.into_owned(), borrowed)
            })
            .collect()
    }

    #[test]
    fn fields_in_order_with_borrowed_names_and_text() {
        assert_eq!(
            fields(r#" {"b":1, "a" : {"x":[1, 2.5e-3]},"b":null,"s":"é","t":true} "#),
            vec![
                ("b".into(), "1".into(), true),
                ("a".into(), r#"{"x":[1, 2.5e-3]}"#.into(), true),
                ("b".into(), "null".into(), true),
                ("s".into(), r#""é""#.into(), true),
                ("t".into(), "true".into(), true),
            ]
        );
        assert!(fields("{}").is_empty());
    }

    #[test]
    fn escapes_go_through_serde_json() {
        assert_eq!(
            fields(r#"{"t\u0065mp":2,"s":"a\"b"}"#),
            vec![
                ("temp".into(), "2".into(), false),
                ("s".into(), r#""a\"b""#.into(), false),
            ]
        );
    }

    /// Every value's text parses to what serde_json parses the payload to.
    #[test]
    fn texts_agree_with_serde_json() {
        for payload in [
            r#"{"ts":1764300000000,"temperature":21.50,"humidity":40.1,"fw":"1.4.2"}"#,
            r#"{"n":-0,"big":18446744073709551616,"e":1E+2,"o":{"a":{"b":[{},[],null]}}}"#,
            r#"{"deep":[[[[[[[[[[1]]]]]]]]]],"f":false}"#,
        ] {
            let parsed: serde_json::Map<String, Value> = serde_json::from_str(payload).unwrap();
            for (name, text) in parse(payload).unwrap().0 {
                let value: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(Some(&value), parsed.get(&*name), "{payload}: {name}");
            }
        }
    }

    #[test]
    fn errors_tell_not_json_from_not_an_object() {
        assert_eq!(
            parse("[1,2]").err().unwrap(),
            "payload is not a JSON object"
        );
        assert_eq!(parse("42").err().unwrap(), "payload is not a JSON object");
        for bad in [
            "{\"a\":",
            "nope",
            "{\"a\":1} x",
            "{\"a\":01}",
            "{\"a\":1,}",
            "{\"a\":[1,]}",
            "{\"a\":1e400}",
            "{\"a\":\"ctl\u{1}\"}",
            "{\"a\":tru}",
            "{\"a\":-}",
            "{\"a\":1.}",
        ] {
            let e = parse(bad).err().unwrap_or_else(|| panic!("{bad} parsed"));
            assert!(e.starts_with("payload is not JSON"), "{bad}: {e}");
        }
    }
}
