//! One pass over a JSON payload for what a pass-through rule's output needs
//! (`SELECT *` with no WHERE, whose templates do not read the payload): its
//! numeric fields flattened as [`metrics`](super::message::metrics) does,
//! and its top-level `ts` and `timestamp`. The payload is checked as fully
//! as a parse would check it, but no map or value tree is built: keys are
//! borrowed from the payload and other values are skipped.
//!
//! A payload with a repeated key gives `None`: a parsed map keeps one of
//! the values (the last, at the first key's place), which a single pass
//! cannot know early enough, so the engine parses such a payload instead.

use crate::plugin::bindings::Metric;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// What a pass-through output needs from its payload.
#[derive(Debug, Default)]
pub struct Scan {
    /// Numeric fields, nested objects flattened with `.`, in payload order.
    pub metrics: Vec<Metric>,
    /// The top-level `ts` and `timestamp` fields, when present.
    pub ts: Option<Value>,
    pub timestamp: Option<Value>,
}

impl Scan {
    /// The field the device time is read from: `ts`, else `timestamp`.
    pub fn device_time(&self) -> Option<&Value> {
        self.ts.as_ref().or(self.timestamp.as_ref())
    }
}

/// Scan `payload`. `Err`: not valid JSON (the parser's own message).
/// `Ok(None)`: valid, but an object repeats a key.
pub fn scan(payload: &[u8]) -> Result<Option<Scan>, serde_json::Error> {
    let mut scan = Scan::default();
    let mut repeated = false;
    let mut de = serde_json::Deserializer::from_slice(payload);
    Node {
        prefix: &mut String::new(),
        scan: &mut scan,
        repeated: &mut repeated,
        top: true,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((!repeated).then_some(scan))
}

/// One value of the payload, at `prefix`.
struct Node<'s> {
    prefix: &'s mut String,
    scan: &'s mut Scan,
    repeated: &'s mut bool,
    /// The payload itself (not a field of it).
    top: bool,
}

impl Node<'_> {
    fn number(self, value: f64) {
        if !self.prefix.is_empty() {
            self.scan.metrics.push(Metric {
                name: self.prefix.clone(),
                value,
            });
        }
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.number(v as f64);
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.number(v as f64);
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.number(v);
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys: Vec<Key<'de>> = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            if keys.iter().any(|k| same(&k.0, &key)) {
                *self.repeated = true;
            }
            if self.top && (key == "ts" || key == "timestamp") {
                let value: Value = map.next_value()?;
                if let Some(n) = value.as_f64() {
                    self.scan.metrics.push(Metric {
                        name: key.to_string(),
                        value: n,
                    });
                }
                match &*key {
                    "ts" => self.scan.ts = Some(value),
                    _ => self.scan.timestamp = Some(value),
                }
            } else {
                let len = self.prefix.len();
                if !self.prefix.is_empty() {
                    self.prefix.push('.');
                }
                self.prefix.push_str(&key);
                map.next_value_seed(Node {
                    prefix: &mut *self.prefix,
                    scan: &mut *self.scan,
                    repeated: &mut *self.repeated,
                    top: false,
                })?;
                self.prefix.truncate(len);
            }
            keys.push(Key(key));
        }
        Ok(())
    }
}

/// Equal keys, without a `memcmp` call for keys that differ in length or
/// first byte (most of an object's keys).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.as_bytes().first() == b.as_bytes().first() && a == b
}

/// An object key, borrowed from the payload unless it has escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_string())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::message::metrics;

    /// The scan agrees with parsing into a value and flattening that.
    fn agrees(payload: &str) {
        let scanned = scan(payload.as_bytes()).unwrap().unwrap();
        let value: Value = serde_json::from_str(payload).unwrap();
        let names = |m: &[Metric]| -> Vec<(String, f64)> {
            m.iter().map(|m| (m.name.clone(), m.value)).collect()
        };
        assert_eq!(
            names(&scanned.metrics),
            names(&metrics(&value)),
            "{payload}"
        );
        let expected = ["ts", "timestamp"].iter().find_map(|k| value.get(*k));
        assert_eq!(scanned.device_time(), expected, "{payload}");
    }

    #[test]
    fn agrees_with_parsing() {
        for payload in [
            r#"{"ts":1764300000000,"temperature":21.5,"humidity":40,"fw":"1.4.2","ok":true}"#,
            r#"{"env":{"t":-3.25e2,"deep":{"x":1}},"list":[1,{"y":2}],"n":null}"#,
            r#"{"timestamp":"2025-11-28T10:00:00Z","ts":12}"#,
            r#"{"timestamp":1764300000}"#,
            r#"{"we\"ird":1,"ünï":2.5,"a.b":3}"#,
            r#"{"big":18446744073709551615,"neg":-9223372036854775808,"f":1e308}"#,
            r#"{}"#,
            r#"42"#,
            r#""text""#,
            r#"[{"a":1}]"#,
            " { \"spaced\" : 1 } ",
        ] {
            agrees(payload);
        }
    }

    #[test]
    fn a_nested_ts_is_only_a_metric() {
        let s = scan(br#"{"meta":{"ts":5}}"#).unwrap().unwrap();
        assert_eq!(s.device_time(), None);
        assert_eq!(s.metrics[0].name, "meta.ts");
    }

    #[test]
    fn repeated_keys_ask_for_a_parse() {
        assert!(scan(br#"{"a":1,"b":2,"a":"x"}"#).unwrap().is_none());
        assert!(scan(br#"{"o":{"k":1,"k":2}}"#).unwrap().is_none());
        // The same name in different objects is not a repeat.
        assert!(scan(br#"{"k":1,"o":{"k":2}}"#).unwrap().is_some());
    }

    #[test]
    fn invalid_json_fails_as_a_parse_does() {
        for bad in [
            &b"{\"a\":1"[..],
            b"{\"a\":1} trailing",
            b"not json",
            b"",
            b"{\"a\":\"\xff\"}",
            b"{\"a\":01}",
            b"{\"a\":[1,01]}",
            b"{\"a\":[1,tru]}",
        ] {
            let parse = serde_json::from_slice::<Value>(bad).unwrap_err();
            let scanned = scan(bad).unwrap_err();
            assert_eq!(scanned.to_string(), parse.to_string());
        }
    }
}
