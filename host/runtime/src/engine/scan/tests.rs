use super::*;
use crate::engine::message::metrics;
use std::borrow::Cow;

fn pairs(m: &[MetricRef<'_>]) -> Vec<(String, u64)> {
    // Bits, so -0.0 and 0.0 differ.
    m.iter()
        .map(|m| (m.name.to_string(), m.value.to_bits()))
        .collect()
}

/// The scan agrees with parsing into a value and flattening that.
fn agrees(payload: &str) {
    let scanned = scan(payload).unwrap().unwrap();
    let value: Value = serde_json::from_str(payload).unwrap();
    assert_eq!(
        pairs(&scanned.metrics),
        pairs(&metrics(&value)),
        "{payload}"
    );
    let expected = ["ts", "timestamp"].iter().find_map(|k| value.get(*k));
    assert_eq!(scanned.device_time(), expected, "{payload}");
}

/// The quick scan's fields are the payload's top-level keys, in order,
/// each with its value's text exactly as written (it parses to the value);
/// only an object has fields.
fn fields_agree(payload: &str, scan: &Scan<'_>) {
    let value: Value = serde_json::from_str(payload).unwrap();
    let Value::Object(map) = &value else {
        assert!(scan.fields.is_none(), "{payload}");
        return;
    };
    let text = |(start, len): (u32, u32)| &payload[start as usize..(start + len) as usize];
    let fields = scan.fields.as_ref().expect("an object has fields");
    let read: Vec<(&str, Value)> = fields
        .iter()
        .map(|f| {
            let value_text = text(f.value);
            assert_eq!(value_text.trim(), value_text, "{payload}");
            (text(f.name), serde_json::from_str(value_text).unwrap())
        })
        .collect();
    let expected: Vec<(&str, Value)> = map.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    assert_eq!(read, expected, "{payload}");
}

/// Both scanners give the same answer, when the quick one gives one.
fn scanners_agree(payload: &str) -> bool {
    let Some(quick) = quick::scan(payload) else {
        return false;
    };
    let full = visitor::scan(payload).unwrap().unwrap();
    fields_agree(payload, &quick);
    assert_eq!(pairs(&quick.metrics), pairs(&full.metrics), "{payload}");
    assert_eq!(quick.ts, full.ts, "{payload}");
    assert_eq!(quick.timestamp, full.timestamp, "{payload}");
    // And a value's `Number` is the same kind (u64, i64 or f64).
    for (a, b) in [(&quick.ts, &full.ts), (&quick.timestamp, &full.timestamp)] {
        if let (Some(Value::Number(a)), Some(Value::Number(b))) = (a, b) {
            assert_eq!(
                (a.is_u64(), a.is_i64(), a.is_f64()),
                (b.is_u64(), b.is_i64(), b.is_f64()),
                "{payload}"
            );
        }
    }
    true
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
        r#"{"":1,"e":{"":2,"x":{"":3}}}"#,
        r#"{"":{"y":4}}"#,
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
fn the_quick_scanner_takes_what_devices_send() {
    for payload in [
        r#"{"ts":1764300000000,"temperature":21.5,"humidity":40.1,"fw":"1.4.2","status":"ok"}"#,
        r#"{"env":{"t":-3.25e2,"deep":{"x":1}},"list":[1,{"y":2},[],{}],"n":null,"b":false}"#,
        r#"{"timestamp":"2025-11-28T10:00:00Z","ts":12}"#,
        r#"{"ts":-0,"a":-0.0,"b":0,"c":-5}"#,
        r#"{"ts":-9223372036854775808,"x":18446744073709551616}"#,
        r#"{"timestamp":18446744073709551615,"y":-9223372036854775809}"#,
        r#"{"ts":1.5e3}"#,
        // Integers short enough to take their value as computed.
        r#"{"ts":-42}"#,
        r#"{"ts":-99999999999999}"#,
        r#"{"timestamp":999999999999999}"#,
        r#"{"ts":9999999999999999}"#,
        r#"{"ünï":2.5,"a.b":3,"":7,"o":{"":8}}"#,
        " \t\n{ \"spaced\" :\r1 , \"o\" : { } , \"l\" : [ ] } \n",
        "[1,2,{\"a\":[true,false,null]}]",
        "-12.5e-3",
        "\"just text\"",
    ] {
        assert!(scanners_agree(payload), "gave up on {payload}");
    }
}

#[test]
fn numbers_parse_as_serde_json_parses_them() {
    for token in [
        "0",
        "-0",
        "0.0",
        "-0.0",
        "1",
        "0.1",
        "0.30000000000000004",
        "21.5",
        "1e-400",
        "4.9e-324",
        "2.2250738585072011e-308",
        "1.7976931348623157e308",
        "9007199254740993",
        "123456789012345678901234567890",
        "-123456789012345678901234567890.5e-10",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "-1.5E+3",
        "5e-1",
        "1E2",
        "0.000000000000000000000000000001",
    ] {
        let payload = format!(r#"{{"ts":{token},"v":{token},"o":{{"v":{token}}}}}"#);
        assert!(scanners_agree(&payload), "gave up on {payload}");
    }
}

/// A small deterministic generator of payloads, numbers in every form.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn number(&mut self) -> String {
        match self.below(6) {
            0 => (self.next() >> self.below(64)).to_string(),
            1 => format!("-{}", self.next() >> self.below(64)),
            2 => format!("{}", f64::from_bits(self.next() >> 2)),
            3 => format!("{:e}", f64::from_bits(self.next() >> 1)),
            4 => format!("{}.{}", self.below(1000), self.next()),
            _ => format!(
                "{}{}e{}{}",
                ["", "-"][self.below(2) as usize],
                self.below(100_000),
                ["", "+", "-"][self.below(3) as usize],
                self.below(330)
            ),
        }
    }

    fn value(&mut self, depth: u32) -> String {
        match self.below(if depth > 3 { 4 } else { 6 }) {
            0 | 1 => self.number(),
            2 => format!("\"s{}\"", self.below(10)),
            3 => ["true", "false", "null"][self.below(3) as usize].to_string(),
            4 => {
                let n = self.below(4);
                let items: Vec<String> = (0..n).map(|_| self.value(depth + 1)).collect();
                format!("[{}]", items.join(","))
            }
            _ => self.object(depth + 1),
        }
    }

    fn object(&mut self, depth: u32) -> String {
        let n = self.below(6);
        let fields: Vec<String> = (0..n)
            .map(|i| {
                let key = match self.below(8) {
                    0 => "ts".to_string(),
                    1 => "timestamp".to_string(),
                    2 => String::new(),
                    _ => format!("k{i}"),
                };
                format!("\"{key}\":{}", self.value(depth))
            })
            .collect();
        format!("{{{}}}", fields.join(","))
    }
}

#[test]
fn the_scanners_agree_on_generated_payloads() {
    let mut gen = Gen(0x5eed_1234_abcd_0001);
    let mut taken = 0;
    for _ in 0..5_000 {
        let payload = gen.object(0);
        match visitor::scan(&payload) {
            // Out-of-range numbers: the quick scanner must give up too.
            Err(_) => assert!(quick::scan(&payload).is_none(), "{payload}"),
            // A repeated key.
            Ok(None) => assert!(quick::scan(&payload).is_none(), "{payload}"),
            Ok(Some(_)) => {
                if scanners_agree(&payload) {
                    taken += 1;
                }
            }
        }
    }
    // Besides `ts` of other kinds, it takes them all.
    assert!(taken > 3_000, "the quick scanner took only {taken}");
}

#[test]
fn the_quick_scanner_gives_up_on_what_it_does_not_decide() {
    for payload in [
        r#"{"we\"ird":1}"#,
        r#"{"a":"line\nbreak"}"#,
        r#"{"ts":true}"#,
        r#"{"ts":{"s":1}}"#,
        r#"{"a":1,"a":2}"#,
    ] {
        assert!(quick::scan(payload).is_none(), "{payload}");
        // The serde scanner still decides it.
        assert!(scan(payload).is_ok(), "{payload}");
    }
    let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    assert!(quick::scan(&deep).is_none());
    assert!(scan(&deep).unwrap().is_some());
}

#[test]
fn a_nested_ts_is_only_a_metric() {
    let s = scan(r#"{"meta":{"ts":5}}"#).unwrap().unwrap();
    assert_eq!(s.device_time(), None);
    assert_eq!(s.metrics[0].name, "meta.ts");
}

#[test]
fn top_level_names_borrow_the_payload() {
    let payload = r#"{"temperature":21.5,"env":{"h":40}}"#;
    let s = scan(payload).unwrap().unwrap();
    assert!(matches!(s.metrics[0].name, Cow::Borrowed("temperature")));
    assert_eq!(s.metrics[1].name, "env.h");
}

#[test]
fn repeated_keys_ask_for_a_parse() {
    assert!(scan(r#"{"a":1,"b":2,"a":"x"}"#).unwrap().is_none());
    assert!(scan(r#"{"o":{"k":1,"k":2}}"#).unwrap().is_none());
    // The same name in different objects is not a repeat.
    assert!(scan(r#"{"k":1,"o":{"k":2}}"#).unwrap().is_some());
    assert!(scan(r#"{"o":{"k":1},"p":{"k":2}}"#).unwrap().is_some());
}

#[test]
fn invalid_json_fails_as_a_parse_does() {
    for bad in [
        "{\"a\":1",
        "{\"a\":1} trailing",
        "not json",
        "",
        "{\"a\":01}",
        "{\"a\":[1,01]}",
        "{\"a\":[1,tru]}",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{\"a\":-}",
        "{\"a\":1.}",
        "{\"a\":1e}",
        "{\"a\":.5}",
        "{\"a\":\"unterminated}",
        "{\"a\":\"ctl\u{1}\"}",
        "[1,]",
        "{\"a\":1e400}",
    ] {
        assert!(quick::scan(bad).is_none(), "{bad}");
        let parse = serde_json::from_str::<Value>(bad).unwrap_err();
        let scanned = scan(bad).unwrap_err();
        assert_eq!(scanned.to_string(), parse.to_string());
    }
}
