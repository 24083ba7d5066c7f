//! Golden tests: each `tests/golden/<case>.toml` holds `sql`, `topic`,
//! optional `client_id`, `timestamp_ms`, `principal`, `source_ip`, `trace_id`, `shadow`
//! (JSON text the `Lookup` returns for any thing) and `payload` (JSON text, or
//! `payload_base64` for a binary payload), and optional `[mqtt5]` properties
//! (`content_type`, `format_indicator`, `response_topic`,
//! `correlation_data_base64`, `user_properties = [["key", "value"], …]`).
//! The expected result is in
//! `<case>.json` (pretty JSON, or `no match`) or `<case>.err` (the error text).
//! Run with `BLESS=1` to rewrite the expectation files; `GOLDEN=<text>`
//! keeps only the cases whose name contains `<text>` (to run or bless a few).

use std::fs;
use std::path::{Path, PathBuf};
use weir_sql::{Lookup, Message, MqttProperties, Payload, Statement};

struct FixedShadow(Option<serde_json::Value>);

impl Lookup for FixedShadow {
    fn thing_shadow(&self, thing: &str, shadow_name: Option<&str>) -> Option<serde_json::Value> {
        let mut v = self.0.clone()?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert("thing".into(), thing.into());
            if let Some(n) = shadow_name {
                obj.insert("shadow_name".into(), n.into());
            }
        }
        Some(v)
    }
}

fn run_case(path: &Path) -> (String, &'static str) {
    let text = fs::read_to_string(path).expect("read case");
    let case: toml::Table =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let s = |k: &str| case.get(k).and_then(|v| v.as_str());
    let sql = s("sql").unwrap_or_else(|| panic!("{}: missing sql", path.display()));
    let topic = s("topic").unwrap_or("a/b");
    let st = match Statement::parse(sql) {
        Ok(st) => st,
        Err(e) => return (e.render("sql", sql), "err"),
    };
    let payload: serde_json::Value = match s("payload") {
        Some(p) => {
            serde_json::from_str(p).unwrap_or_else(|e| panic!("{}: payload: {e}", path.display()))
        }
        None => serde_json::json!({}),
    };
    let binary = s("payload_base64").map(|b| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(b)
            .expect("payload_base64")
    });
    let mqtt = case.get("mqtt5").and_then(|t| t.as_table()).map(|t| {
        use base64::Engine;
        let text = |k: &str| t.get(k).and_then(|v| v.as_str()).map(String::from);
        MqttProperties {
            content_type: text("content_type"),
            payload_format_indicator: t
                .get("format_indicator")
                .and_then(|v| v.as_integer())
                .and_then(|i| u8::try_from(i).ok()),
            response_topic: text("response_topic"),
            correlation_data: text("correlation_data_base64").map(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .expect("correlation_data_base64")
            }),
            user_properties: t
                .get("user_properties")
                .and_then(|v| v.as_array())
                .map(|pairs| {
                    pairs
                        .iter()
                        .filter_map(|p| {
                            let p = p.as_array()?;
                            Some((p.first()?.as_str()?.into(), p.get(1)?.as_str()?.into()))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    });
    let shadow = FixedShadow(s("shadow").map(|t| serde_json::from_str(t).expect("shadow json")));
    let msg = Message {
        topic,
        client_id: s("client_id").unwrap_or("client-1"),
        payload: match &binary {
            Some(b) => Payload::Binary(b),
            None => Payload::Json(&payload),
        },
        timestamp_ms: case
            .get("timestamp_ms")
            .and_then(|v| v.as_integer())
            .unwrap_or(1_481_825_251_155),
        principal: s("principal"),
        source_ip: s("source_ip"),
        mqtt: mqtt.as_ref(),
        trace_id: s("trace_id"),
        lookup: Some(&shadow),
    };
    match st.eval(&msg) {
        Ok(Some(v)) => (serde_json::to_string_pretty(&v).expect("json"), "json"),
        Ok(None) => ("no match".to_string(), "json"),
        Err(e) => (format!("eval error: {e}"), "err"),
    }
}

#[test]
fn golden() {
    // This package's directory as cargo names it at run time (a test
    // binary reused from another checkout's build still reads this one's
    // cases), else where the test was compiled.
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("tests/golden");
    let bless = std::env::var("BLESS").is_ok_and(|v| v == "1");
    let only = std::env::var("GOLDEN").ok();
    let mut cases: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("golden dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter(|p| {
            only.as_deref().is_none_or(|only| {
                p.file_stem()
                    .is_some_and(|stem| stem.to_string_lossy().contains(only))
            })
        })
        .collect();
    cases.sort();
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    for case in &cases {
        let (actual, ext) = run_case(case);
        let json = case.with_extension("json");
        let err = case.with_extension("err");
        if bless {
            let (keep, drop) = if ext == "json" {
                (&json, &err)
            } else {
                (&err, &json)
            };
            let _ = fs::remove_file(drop);
            fs::write(keep, format!("{actual}\n")).expect("write expectation");
            continue;
        }
        let expected = fs::read_to_string(&json)
            .map(|t| (t, "json"))
            .or_else(|_| fs::read_to_string(&err).map(|t| (t, "err")));
        match expected {
            Ok((text, kind)) if kind == ext && text.trim_end() == actual.trim_end() => {}
            Ok((text, kind)) => failures.push(format!(
                "{}: expected ({kind}):\n{}\n--- got ({ext}):\n{actual}",
                case.display(),
                text.trim_end()
            )),
            Err(_) => failures.push(format!(
                "{}: no .json or .err expectation (run with BLESS=1)",
                case.display()
            )),
        }
    }
    println!("{} golden cases", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} golden cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
