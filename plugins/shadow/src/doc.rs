//! The shadow document as the plugin holds it, and its JSON form.
//!
//! In JSON a reported field lives in two places, `state.reported.<name>`
//! and `metadata.reported.<name>`. In memory it is one entry of one map,
//! so merging a reading costs one lookup per field. Field names hash their
//! bytes once with foldhash ([`Name`]); serde_json's own maps hash with
//! SipHash, which made those lookups most of a merge's cost in Wasm.

use indexmap::{Equivalent, IndexMap};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::hash::{Hash, Hasher};

/// A map keyed by field name, in first-arrival order.
pub type Fields<V> = IndexMap<Name, V, foldhash::fast::RandomState>;

/// A field name as a map key: hashes its bytes with one `write` (`str`'s
/// own `Hash` adds a terminator byte, a second round through the hasher).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(pub String);

/// A borrowed [`Name`], for lookups without allocating.
pub struct NameRef<'a>(pub &'a str);

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        NameRef(&self.0).hash(state)
    }
}

impl Hash for NameRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.0.as_bytes())
    }
}

impl Equivalent<Name> for NameRef<'_> {
    fn equivalent(&self, key: &Name) -> bool {
        weir_plugin::bytes::same(self.0, &key.0)
    }
}

/// When a reported field was last written.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldMeta {
    /// `{"timestamp": <secs>}`, as this plugin writes it.
    Stamp(i64),
    /// Whatever another writer stored there, kept until the field is next
    /// reported.
    Other(Value),
}

impl FieldMeta {
    fn from_json(v: Value) -> FieldMeta {
        match &v {
            Value::Object(m) if m.len() == 1 => match m.get("timestamp").and_then(Value::as_i64) {
                Some(t) => FieldMeta::Stamp(t),
                None => FieldMeta::Other(v),
            },
            _ => FieldMeta::Other(v),
        }
    }
}

impl Serialize for FieldMeta {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FieldMeta::Stamp(t) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("timestamp", t)?;
                m.end()
            }
            FieldMeta::Other(v) => v.serialize(s),
        }
    }
}

/// One reported field: `state.reported.<name>` and, when there is one,
/// `metadata.reported.<name>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub value: Value,
    pub meta: Option<FieldMeta>,
}

/// The shadow of one device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShadowDoc {
    /// The reported fields with their metadata.
    pub reported: Fields<Field>,
    /// `metadata.reported` entries of fields not reported (as stored).
    pub orphan_meta: Fields<FieldMeta>,
    /// Other keys of `state` and of `metadata` (`desired`, for example),
    /// and of the document itself, kept as they are.
    pub state_other: Map<String, Value>,
    pub metadata_other: Map<String, Value>,
    pub other: Map<String, Value>,
    pub version: u64,
    pub timestamp: i64,
    pub device_type: String,
}

impl ShadowDoc {
    /// The reported value of `name`.
    pub fn reported(&self, name: &str) -> Option<&Value> {
        self.reported.get(&NameRef(name)).map(|f| &f.value)
    }

    /// Parse a stored document.
    pub fn from_json(bytes: &[u8]) -> Result<ShadowDoc, String> {
        let stored: Stored = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let mut meta: Fields<FieldMeta> = stored
            .metadata
            .reported
            .into_iter()
            .map(|(k, v)| (Name(k), FieldMeta::from_json(v)))
            .collect();
        let reported = stored
            .state
            .reported
            .into_iter()
            .map(|(k, value)| {
                let meta = meta.shift_remove(&NameRef(&k));
                (Name(k), Field { value, meta })
            })
            .collect();
        Ok(ShadowDoc {
            reported,
            orphan_meta: meta,
            state_other: stored.state.other,
            metadata_other: stored.metadata.other,
            other: stored.other,
            version: stored.version,
            timestamp: stored.timestamp,
            device_type: stored.device_type,
        })
    }

    /// The document as JSON (the bucket value).
    pub fn to_json(&self) -> Vec<u8> {
        // JSON values and plain numbers always serialize.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The JSON form, as stored.
#[derive(Deserialize)]
struct Stored {
    #[serde(default)]
    state: Section,
    #[serde(default)]
    metadata: Section,
    #[serde(default)]
    version: u64,
    #[serde(default)]
    timestamp: i64,
    #[serde(default)]
    device_type: String,
    #[serde(flatten)]
    other: Map<String, Value>,
}

/// `state` or `metadata`: `reported` and whatever else.
#[derive(Deserialize, Default)]
struct Section {
    #[serde(default)]
    reported: Map<String, Value>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

impl Serialize for ShadowDoc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        let state = SectionJson {
            reported: ReportedJson(self),
            other: &self.state_other,
        };
        let metadata = SectionJson {
            reported: ReportedMetaJson(self),
            other: &self.metadata_other,
        };
        m.serialize_entry("state", &state)?;
        m.serialize_entry("metadata", &metadata)?;
        m.serialize_entry("version", &self.version)?;
        m.serialize_entry("timestamp", &self.timestamp)?;
        m.serialize_entry("device_type", &self.device_type)?;
        for (k, v) in &self.other {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// `state` or `metadata` as JSON: `reported`, then the section's other keys.
struct SectionJson<'a, R> {
    reported: R,
    other: &'a Map<String, Value>,
}
struct ReportedJson<'a>(&'a ShadowDoc);
struct ReportedMetaJson<'a>(&'a ShadowDoc);

impl<R: Serialize> Serialize for SectionJson<'_, R> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("reported", &self.reported)?;
        for (k, v) in self.other {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl Serialize for ReportedJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.reported.len()))?;
        for (k, f) in &self.0.reported {
            m.serialize_entry(&k.0, &f.value)?;
        }
        m.end()
    }
}

impl Serialize for ReportedMetaJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (k, f) in &self.0.reported {
            if let Some(meta) = &f.meta {
                m.serialize_entry(&k.0, meta)?;
            }
        }
        for (k, meta) in &self.0.orphan_meta {
            m.serialize_entry(&k.0, meta)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_documents_round_trip() {
        let stored = json!({
            "state": {"reported": {"a": 1, "b": {"x": [1, 2]}, "c": "s"}, "desired": {"a": 2}},
            "metadata": {
                "reported": {"a": {"timestamp": 5}, "b": {"timestamp": 6, "by": "x"}, "gone": {"timestamp": 1}},
                "desired": {"a": {"timestamp": 1}}
            },
            "version": 9, "timestamp": 6, "device_type": "t", "clientToken": "k"
        });
        let doc = ShadowDoc::from_json(stored.to_string().as_bytes()).unwrap();
        let meta = |n: &str| doc.reported[&NameRef(n)].meta.clone();
        assert_eq!(meta("a"), Some(FieldMeta::Stamp(5)));
        assert!(matches!(meta("b"), Some(FieldMeta::Other(_))));
        assert_eq!(meta("c"), None);
        assert_eq!(doc.orphan_meta.len(), 1);
        let back: Value = serde_json::from_slice(&doc.to_json()).unwrap();
        assert_eq!(back, stored);
    }

    #[test]
    fn names_hash_alike_owned_and_borrowed() {
        let mut f: Fields<u8> = Fields::default();
        f.insert(Name("temperature".into()), 1);
        assert_eq!(f.get(&NameRef("temperature")), Some(&1));
        assert_eq!(f.get(&NameRef("temperaturf")), None);
        assert_eq!(f.get(&NameRef("")), None);
    }
}
