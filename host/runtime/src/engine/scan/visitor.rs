//! The scan driven by serde_json's parser: every payload, with the
//! parser's own error message for one that is not JSON.

use super::{same, Scan};
use crate::plugin::batch::MetricRef;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// Scan `payload`. `Err`: not valid JSON (the parser's own message).
/// `Ok(None)`: valid, but an object repeats a key.
pub fn scan(payload: &str) -> Result<Option<Scan<'_>>, serde_json::Error> {
    let mut scan = Scan::default();
    let mut repeated = false;
    let mut de = serde_json::Deserializer::from_str(payload);
    Node {
        prefix: &mut String::new(),
        whole: None,
        scan: &mut scan,
        repeated: &mut repeated,
        top: true,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((!repeated).then_some(scan))
}

/// One value of the payload, at `prefix`.
struct Node<'s, 'de> {
    prefix: &'s mut String,
    /// `prefix` as a slice of the payload, when it is one (a top-level key
    /// without escapes), so a metric's name can borrow it.
    whole: Option<&'de str>,
    scan: &'s mut Scan<'de>,
    repeated: &'s mut bool,
    /// The payload itself (not a field of it).
    top: bool,
}

impl<'de> Node<'_, 'de> {
    fn number(self, value: f64) {
        if self.prefix.is_empty() {
            return;
        }
        let name = match self.whole {
            Some(key) => Cow::Borrowed(key),
            None => Cow::Owned(self.prefix.clone()),
        };
        self.scan.metrics.push(MetricRef { name, value });
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_, 'de> {
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
                    self.scan.metrics.push(MetricRef {
                        name: key.clone(),
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
                let whole = match (&key, self.top) {
                    (Cow::Borrowed(k), true) => Some(*k),
                    _ => None,
                };
                map.next_value_seed(Node {
                    prefix: &mut *self.prefix,
                    whole,
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
