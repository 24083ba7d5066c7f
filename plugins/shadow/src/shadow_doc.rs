//! Shadow documents and the merge of a reading into one. Pure: no host calls.
//!
//! The document follows AWS IoT's classic shadow:
//!
//! ```json
//! {"state":{"reported":{"temperature":21.5,"humidity":40.1}},
//!  "metadata":{"reported":{"temperature":{"timestamp":1764300000},
//!                          "humidity":{"timestamp":1764300000}}},
//!  "version":7,"timestamp":1764300000,"device_type":"thermostat"}
//! ```
//!
//! Each reading's top-level fields replace the reported fields of the same
//! name (a nested object replaces the whole field); a `null` field deletes
//! it, as in AWS. Every merged reading increments `version` by one.
//! Timestamps are the server receive time in whole seconds. Fields this
//! plugin does not know (for example `state.desired`, written by someone
//! else) are kept as they are.

pub use crate::doc::{Field, FieldMeta, Name, NameRef, ShadowDoc};
use crate::service::{self, Request, Served};
use weir_plugin::devices::Devices;

impl ShadowDoc {
    /// Merge one reading (a JSON object) received at `received_at` (ms).
    /// A payload that is not a JSON object changes nothing and is an error.
    /// (The plugin parses or takes the host's fields first, then calls
    /// [`ShadowDoc::merge_fields`]; this is the tests' shorthand.)
    #[cfg(test)]
    pub fn merge(
        &mut self,
        payload: &str,
        received_at: i64,
        device_type: &str,
    ) -> Result<(), String> {
        // Parsed completely before anything changes: a broken payload
        // leaves the shadow as it was.
        let fields = crate::fields::parse(payload)?;
        self.merge_fields(fields.iter(), received_at, device_type);
        Ok(())
    }

    /// Merge one reading's fields (parsed, or as the host read them: taken
    /// from the batch as they are merged, not collected first).
    pub fn merge_fields<'f>(
        &mut self,
        fields: impl IntoIterator<Item = (&'f str, &'f str)>,
        received_at: i64,
        device_type: &str,
    ) {
        let secs = received_at.div_euclid(1000);
        for (i, (name, text)) in fields.into_iter().enumerate() {
            let name = NameRef(name);
            if weir_plugin::bytes::same(text, "null") {
                self.reported.shift_remove(&name);
                self.orphan_meta.shift_remove(&name);
                continue;
            }
            let meta = Some(FieldMeta::Stamp(secs));
            // A device reports its fields in the same order every time, so
            // the `i`th field is usually held at position `i`: a comparison
            // instead of a hash lookup.
            let in_place = self
                .reported
                .get_index(i)
                .is_some_and(|(held, _)| weir_plugin::bytes::same(&held.0, name.0));
            let held = if in_place {
                self.reported.get_index_mut(i).map(|(_, field)| field)
            } else {
                self.reported.get_mut(&name)
            };
            match held {
                Some(field) => {
                    // Overwritten in place: no allocation once seen.
                    weir_plugin::bytes::assign(&mut field.value, text);
                    field.meta = meta;
                }
                None => {
                    if !self.orphan_meta.is_empty() {
                        self.orphan_meta.shift_remove(&name);
                    }
                    let value = text.to_string();
                    self.reported
                        .insert(Name(name.0.to_string()), Field { value, meta });
                }
            }
        }
        self.version += 1;
        self.timestamp = secs;
        self.deleted = false;
        if !device_type.is_empty() && !weir_plugin::bytes::same(&self.device_type, device_type) {
            self.device_type = device_type.to_string();
        }
    }
}

/// The shadows an instance holds, and which changed since they were last
/// stored.
#[derive(Debug, Default)]
pub struct Shadows {
    docs: Devices<ShadowDoc>,
}

impl Shadows {
    /// Devices in `devices` that are not in memory yet, each once.
    pub fn unknown<'a>(&self, devices: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        self.docs.unknown(devices)
    }

    /// Load the devices not in memory yet from `bucket`.
    pub fn load_missing<'a>(
        &mut self,
        bucket: &weir_plugin::kv::Bucket,
        devices: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), String> {
        self.docs
            .load_missing(bucket, devices, "shadow", ShadowDoc::from_json)
    }

    /// Install a stored shadow. An unreadable one is an error, and the
    /// device starts from an empty shadow (version 0).
    pub fn load(&mut self, device: &str, stored: &[u8]) -> Result<(), String> {
        self.docs.load(device, stored, ShadowDoc::from_json)
    }

    /// Remember that `device` has no stored shadow.
    pub fn load_empty(&mut self, device: &str) {
        self.docs.insert_default(device);
    }

    /// Merge one reading's fields into a device's shadow.
    pub fn merge<'f>(
        &mut self,
        device: &str,
        fields: impl IntoIterator<Item = (&'f str, &'f str)>,
        received_at: i64,
        device_type: &str,
    ) {
        let (doc, changed) = self.docs.track(device);
        doc.merge_fields(fields, received_at, device_type);
        *changed = true;
    }

    /// As [`Shadows::merge`], for a device already in memory: `None`
    /// (nothing done) when it is not, so the caller loads it first. One
    /// device lookup per reading.
    pub fn merge_held<'f>(
        &mut self,
        device: &str,
        fields: impl IntoIterator<Item = (&'f str, &'f str)>,
        received_at: i64,
        device_type: &str,
    ) -> Option<()> {
        let (doc, changed) = self.docs.track_held(device)?;
        doc.merge_fields(fields, received_at, device_type);
        *changed = true;
        Some(())
    }

    /// Serve a Device Shadow service request on the shadow `key` (loaded
    /// first: see [`Shadows::load_missing`]); `now` in seconds.
    pub fn serve(&mut self, key: &str, request: &Request<'_>, body: &[u8], now: i64) -> Served {
        let (doc, changed) = self.docs.track(key);
        let served = service::serve(doc, request, body, now);
        *changed |= served.changed;
        served
    }

    /// Changed shadows as bucket entries (device, JSON), one per device.
    pub fn dirty_entries(&self) -> Vec<(String, Vec<u8>)> {
        self.docs.dirty_entries(ShadowDoc::to_json)
    }

    /// The entries from [`Shadows::dirty_entries`] were stored.
    pub fn saved(&mut self, entries: &[(String, Vec<u8>)]) {
        self.docs.saved(entries);
    }

    pub fn get(&self, device: &str) -> Option<&ShadowDoc> {
        self.docs.get(device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// Parse `payload` and merge it, as the plugin does with a payload the
    /// host did not read.
    fn merged(
        s: &mut Shadows,
        device: &str,
        payload: &str,
        received_at: i64,
        device_type: &str,
    ) -> Result<(), String> {
        let fields = crate::fields::parse(payload)?;
        s.merge(device, fields.iter(), received_at, device_type);
        Ok(())
    }

    fn value(doc: &ShadowDoc) -> Value {
        serde_json::from_slice(&doc.to_json()).unwrap()
    }

    #[test]
    fn fields_in_another_order_update_the_right_fields() {
        let mut doc = ShadowDoc::default();
        for payload in [
            r#"{"a":1,"b":2}"#,
            r#"{"b":3,"a":4}"#,
            r#"{"c":5,"a":6}"#,
            r#"{"a":null,"c":7,"b":8}"#,
        ] {
            doc.merge(payload, 1_000, "t").unwrap();
        }
        assert_eq!(value(&doc)["state"]["reported"], json!({"b": 8, "c": 7}));
        assert_eq!(doc.version, 4);
    }

    #[test]
    fn first_reading_makes_version_1() {
        let mut doc = ShadowDoc::default();
        doc.merge(
            r#"{"ts":1764300000000,"temperature":21.5,"humidity":40.1}"#,
            1_764_300_000_999,
            "thermostat",
        )
        .unwrap();
        assert_eq!(
            value(&doc),
            json!({
                "state": {"reported": {"ts": 1764300000000u64, "temperature": 21.5, "humidity": 40.1}},
                "metadata": {"reported": {
                    "ts": {"timestamp": 1764300000},
                    "temperature": {"timestamp": 1764300000},
                    "humidity": {"timestamp": 1764300000}
                }},
                "version": 1,
                "timestamp": 1764300000,
                "device_type": "thermostat"
            })
        );
    }

    #[test]
    fn later_readings_merge_field_by_field() {
        let mut doc = ShadowDoc::default();
        doc.merge(
            r#"{"temperature":21.5,"humidity":40.1,"mode":"heat"}"#,
            10_000,
            "thermostat",
        )
        .unwrap();
        doc.merge(r#"{"temperature":22.0,"fan":{"speed":2}}"#, 20_500, "")
            .unwrap();
        doc.merge(r#"{"mode":null}"#, 30_000, "").unwrap();
        let v = value(&doc);
        assert_eq!(
            v["state"]["reported"],
            json!({"temperature": 22.0, "humidity": 40.1, "fan": {"speed": 2}})
        );
        assert_eq!(
            v["metadata"]["reported"]["temperature"],
            json!({"timestamp": 20})
        );
        assert_eq!(
            v["metadata"]["reported"]["humidity"],
            json!({"timestamp": 10})
        );
        assert_eq!(v["metadata"]["reported"]["fan"], json!({"timestamp": 20}));
        assert!(v["metadata"]["reported"].get("mode").is_none());
        assert_eq!(v["version"], 3);
        assert_eq!(v["timestamp"], 30);
        // an empty device type keeps the known one
        assert_eq!(v["device_type"], "thermostat");
    }

    #[test]
    fn bad_payloads_change_nothing() {
        let mut doc = ShadowDoc::default();
        doc.merge(r#"{"a":1}"#, 1000, "t").unwrap();
        let before = doc.clone();
        assert!(doc
            .merge("not json", 2000, "t")
            .unwrap_err()
            .contains("not JSON"));
        assert!(doc
            .merge("[1,2]", 2000, "t")
            .unwrap_err()
            .contains("not a JSON object"));
        assert!(doc.merge("", 2000, "t").is_err());
        assert_eq!(doc, before);
    }

    #[test]
    fn unknown_fields_survive() {
        let stored = br#"{"state":{"reported":{"a":1},"desired":{"a":2}},"metadata":{"reported":{"a":{"timestamp":1}},"desired":{"a":{"timestamp":1}}},"version":4,"timestamp":1,"device_type":"x","clientToken":"t"}"#;
        let mut doc = ShadowDoc::from_json(stored).unwrap();
        doc.merge(r#"{"a":3}"#, 5000, "").unwrap();
        let v = value(&doc);
        assert_eq!(v["state"]["desired"], json!({"a": 2}));
        assert_eq!(v["metadata"]["desired"], json!({"a": {"timestamp": 1}}));
        assert_eq!(v["clientToken"], "t");
        assert_eq!(v["state"]["reported"]["a"], 3);
        assert_eq!(v["version"], 5);
    }

    #[test]
    fn foreign_metadata_is_kept_until_the_field_is_reported() {
        let stored = br#"{"state":{"reported":{"a":1,"b":2}},"metadata":{"reported":{"a":{"timestamp":1,"by":"x"},"b":{"timestamp":1,"by":"x"}}},"version":1,"timestamp":1}"#;
        let mut doc = ShadowDoc::from_json(stored).unwrap();
        doc.merge(r#"{"a":3}"#, 7000, "").unwrap();
        let v = value(&doc);
        assert_eq!(v["metadata"]["reported"]["a"], json!({"timestamp": 7}));
        assert_eq!(
            v["metadata"]["reported"]["b"],
            json!({"timestamp": 1, "by": "x"})
        );
        // Field order is kept: first arrival, not the order of updates.
        let names: Vec<_> = doc.reported.keys().map(|k| k.0.clone()).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn batch_coalesces_per_device_and_versions_continue_after_reload() {
        let mut s = Shadows::default();
        assert_eq!(s.unknown(["d1", "d2", "d1"]), vec!["d1", "d2"]);
        s.load_empty("d1");
        s.load_empty("d2");
        for i in 0..3 {
            merged(&mut s, "d1", &format!(r#"{{"n":{i}}}"#), 1000 * i, "t").unwrap();
        }
        merged(&mut s, "d2", r#"{"n":9}"#, 0, "t").unwrap();
        assert!(merged(&mut s, "d2", "garbage", 0, "t").is_err());
        let entries = s.dirty_entries();
        assert_eq!(entries.len(), 2, "one write per device");
        assert_eq!(entries[0].0, "d1");
        let d1 = ShadowDoc::from_json(&entries[0].1).unwrap();
        assert_eq!(d1.version, 3);
        assert_eq!(d1.reported("n"), Some(json!(2)));
        s.saved(&entries);
        assert!(s.dirty_entries().is_empty());

        // A new instance loads the stored document and continues the version.
        let mut fresh = Shadows::default();
        fresh.load("d1", &entries[0].1).unwrap();
        assert!(fresh.unknown(["d1"]).is_empty());
        merged(&mut fresh, "d1", r#"{"n":3}"#, 5000, "").unwrap();
        assert_eq!(fresh.get("d1").unwrap().version, 4);
        assert_eq!(fresh.get("d1").unwrap().device_type, "t");
    }

    #[test]
    fn a_deleted_shadow_is_stored_as_a_mark_and_numbering_continues() {
        use crate::service::Request;
        let update = Request::parse("$aws/things/d1/shadow/update").unwrap();
        let delete = Request::parse("$aws/things/d1/shadow/delete").unwrap();
        let mut s = Shadows::default();
        s.load_empty("d1");
        merged(&mut s, "d1", r#"{"n":1}"#, 0, "t").unwrap();
        s.serve("d1", &delete, b"", 1);
        let entries = s.dirty_entries();
        let mark = ShadowDoc::from_json(&entries[0].1).unwrap();
        assert!(mark.deleted && !mark.exists());
        assert_eq!(mark.version, 1);
        assert!(mark.reported.is_empty());
        s.saved(&entries);
        // A new instance reads the mark back; the next shadow is version 2.
        let mut fresh = Shadows::default();
        fresh.load("d1", &entries[0].1).unwrap();
        fresh.serve("d1", &update, br#"{"state":{"reported":{"n":2}}}"#, 2);
        let doc = fresh.get("d1").unwrap();
        assert!(doc.exists());
        assert_eq!(doc.version, 2);
        let stored: serde_json::Value = serde_json::from_slice(&doc.to_json()).unwrap();
        assert!(stored.get("deleted").is_none(), "{stored}");
        // Telemetry after a delete makes the shadow again, too.
        fresh.serve("d1", &delete, b"", 3);
        merged(&mut fresh, "d1", r#"{"n":3}"#, 4000, "").unwrap();
        assert!(fresh.get("d1").unwrap().exists());
        assert_eq!(fresh.get("d1").unwrap().version, 3);
    }

    #[test]
    fn unreadable_stored_shadow_starts_empty() {
        let mut s = Shadows::default();
        assert!(s.load("d", b"{oops").is_err());
        assert_eq!(s.get("d"), Some(&ShadowDoc::default()));
    }

    #[test]
    fn negative_times_round_down() {
        let mut doc = ShadowDoc::default();
        doc.merge(r#"{"a":1}"#, -1, "").unwrap();
        assert_eq!(doc.timestamp, -1);
    }
}
