//! `ticker`: a minimal aggregator (`weir:plugin/aggregator-plugin`) for host
//! tests of the aggregator world. `process` counts messages per device and
//! returns nothing; each `tick(now)` returns one message per device counted
//! since the previous tick, on `<prefix>/<device>` (setting `prefix`,
//! default `ticker`) with payload `{"device":…,"count":…,"now":…}`, and
//! starts counting afresh.
//!
//! Grants: `publish` to `ticker/+`.

use std::collections::BTreeMap;
use weir_plugin::{config, export_aggregator, Aggregator, Message, Outbound, Processor};

pub struct Ticker {
    prefix: String,
    counts: BTreeMap<String, u64>,
}

impl Ticker {
    fn with_prefix(prefix: &str) -> Ticker {
        Ticker {
            prefix: prefix.trim_end_matches('/').to_string(),
            counts: BTreeMap::new(),
        }
    }
}

impl Processor for Ticker {
    fn new() -> Result<Self, String> {
        Ok(Ticker::with_prefix(
            &config::get("prefix").unwrap_or_else(|| "ticker".into()),
        ))
    }

    fn process(&mut self, batch: Vec<Message>) -> Result<Vec<Outbound>, String> {
        for m in batch {
            *self.counts.entry(m.device).or_default() += 1;
        }
        Ok(Vec::new())
    }
}

impl Aggregator for Ticker {
    fn tick(&mut self, now: i64) -> Result<Vec<Outbound>, String> {
        let counts = std::mem::take(&mut self.counts);
        Ok(counts
            .into_iter()
            .map(|(device, count)| {
                let payload = format!(
                    "{{\"device\":{},\"count\":{count},\"now\":{now}}}",
                    json_string(&device)
                );
                Outbound::new(format!("{}/{device}", self.prefix), payload)
            })
            .collect())
    }
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

export_aggregator!(Ticker);

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(device: &str) -> Message {
        Message {
            device: device.into(),
            ..Default::default()
        }
    }

    #[test]
    fn counts_per_device_between_ticks() {
        let mut t = Ticker::with_prefix("ticker/");
        assert!(t.tick(1).unwrap().is_empty());
        t.process(vec![msg("b"), msg("a"), msg("b")]).unwrap();
        assert_eq!(
            t.tick(1000).unwrap(),
            vec![
                Outbound::new("ticker/a", r#"{"device":"a","count":1,"now":1000}"#),
                Outbound::new("ticker/b", r#"{"device":"b","count":2,"now":1000}"#),
            ]
        );
        assert!(t.tick(2000).unwrap().is_empty());
        assert_eq!(json_string("q\"\n"), r#""q\"\u000a""#);
    }
}
