//! The shadow document as the plugin holds it, and its JSON form.
//!
//! In JSON a reported field lives in two places, `state.reported.<name>`
//! and `metadata.reported.<name>`. In memory it is one entry of one map,
//! so merging a reading costs one lookup per field. Field names hash their
//! bytes once with foldhash ([`Name`]); serde_json's own maps hash with
//! SipHash, which made those lookups most of a merge's cost in Wasm.
//!
//! A reported value is held as its JSON text, as the device sent it: a
//! reading overwrites the text in place (no parse into a value tree, no
//! allocation once a field has been seen), and the document is written out
//! by hand around those texts.

use indexmap::{Equivalent, IndexMap};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::hash::{Hash, Hasher};
use std::io::Write;

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
    /// reported. Boxed: it is rare, and a field entry stays small (a
    /// reading's merge walks every entry of its shadow).
    Other(Box<Value>),
}

impl FieldMeta {
    fn from_json(v: Value) -> FieldMeta {
        match &v {
            Value::Object(m) if m.len() == 1 => match m.get("timestamp").and_then(Value::as_i64) {
                Some(t) => FieldMeta::Stamp(t),
                None => FieldMeta::Other(Box::new(v)),
            },
            _ => FieldMeta::Other(Box::new(v)),
        }
    }
}

impl FieldMeta {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            FieldMeta::Stamp(t) => {
                let _ = write!(out, "{{\"timestamp\":{t}}}");
            }
            FieldMeta::Other(v) => json(out, v),
        }
    }
}

/// One reported field: `state.reported.<name>` and, when there is one,
/// `metadata.reported.<name>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The value's JSON text.
    pub value: String,
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
    /// Deleted through the shadow service: stored as a mark with its last
    /// version (`"deleted": true`), so a shadow made again continues the
    /// numbering, and read as no shadow.
    pub deleted: bool,
}

impl ShadowDoc {
    /// Is there a shadow (made and not deleted)?
    pub fn exists(&self) -> bool {
        self.version > 0 && !self.deleted
    }

    /// The reported value of `name`.
    pub fn reported(&self, name: &str) -> Option<Value> {
        let field = self.reported.get(&NameRef(name))?;
        serde_json::from_str(&field.value).ok()
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
                let value = value.to_string();
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
            deleted: stored.deleted,
        })
    }

    /// The document as JSON (the bucket value): `state` and `metadata`
    /// (each `reported`, then the section's other keys), `version`,
    /// `timestamp`, `device_type`, then the document's other keys.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 48 * self.reported.len());
        out.extend_from_slice(b"{\"state\":{\"reported\":{");
        let mut first = true;
        for (k, f) in &self.reported {
            key(&mut out, &mut first, &k.0);
            out.extend_from_slice(f.value.as_bytes());
        }
        out.push(b'}');
        others(&mut out, &self.state_other);
        out.extend_from_slice(b"},\"metadata\":{\"reported\":{");
        let mut first = true;
        let stamped = self
            .reported
            .iter()
            .filter_map(|(k, f)| Some((k, f.meta.as_ref()?)));
        for (k, meta) in stamped.chain(&self.orphan_meta) {
            key(&mut out, &mut first, &k.0);
            meta.write(&mut out);
        }
        out.push(b'}');
        others(&mut out, &self.metadata_other);
        let _ = write!(
            out,
            "}},\"version\":{},\"timestamp\":{},\"device_type\":",
            self.version, self.timestamp
        );
        json(&mut out, &self.device_type);
        if self.deleted {
            out.extend_from_slice(b",\"deleted\":true");
        }
        others(&mut out, &self.other);
        out.push(b'}');
        out
    }
}

/// `value` as JSON (strings and JSON values always serialize).
fn json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let _ = serde_json::to_writer(out, value);
}

/// An object key and its colon, after a comma unless it is the `first`.
fn key(out: &mut Vec<u8>, first: &mut bool, name: &str) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    json(out, name);
    out.push(b':');
}

/// `,"k":v` for each entry of `map`.
fn others(out: &mut Vec<u8>, map: &Map<String, Value>) {
    for (k, v) in map {
        key(out, &mut false, k);
        json(out, v);
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
    #[serde(default)]
    deleted: bool,
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
    fn the_document_is_written_around_the_texts_as_reported() {
        let mut doc = ShadowDoc::default();
        doc.merge(
            r#"{"ts":1764300000000,"t":21.50,"env":{ "h": [1, 2] },"s":"x"}"#,
            1_764_300_000_999,
            "thermostat",
        )
        .unwrap();
        // A payload with an escape is parsed, and its texts written anew.
        doc.merge(r#"{"s":"\u00e9"}"#, 1_764_300_000_999, "thermostat")
            .unwrap();
        doc.other.insert("clientToken".into(), json!("k"));
        doc.state_other.insert("desired".into(), json!({"t": 20}));
        assert_eq!(
            String::from_utf8(doc.to_json()).unwrap(),
            concat!(
                r#"{"state":{"reported":{"ts":1764300000000,"t":21.50,"env":{ "h": [1, 2] },"s":"é"},"#,
                r#""desired":{"t":20}},"metadata":{"reported":{"ts":{"timestamp":1764300000},"#,
                r#""t":{"timestamp":1764300000},"env":{"timestamp":1764300000},"s":{"timestamp":1764300000}}},"#,
                r#""version":2,"timestamp":1764300000,"device_type":"thermostat","clientToken":"k"}"#
            )
        );
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
