//! Criterion benchmarks: (1) one parsed rule evaluated against a ~150-byte
//! reading; (2) topic-trie dispatch over 10,000 rules on distinct filters,
//! where the message matches one of them, plus its evaluation; (3) a rule
//! formatting the reading's time with `parse_time` in UTC and in a named zone
//! (the cost of a zone from the bundled IANA database).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use weir_sql::{Message, Statement, TopicTrie};

const SQL: &str = "SELECT temperature, humidity, topic(3) AS device FROM 'dt/+/+/telemetry' \
                   WHERE temperature > 20 AND humidity < 80 AND topic(2) = 'thermostat'";

fn reading() -> serde_json::Value {
    serde_json::json!({
        "temperature": 23.4,
        "humidity": 51,
        "pressure": 1012.6,
        "battery": 87,
        "firmware": "1.4.2",
        "ts": 1_700_000_000_000i64,
        "status": "ok",
        "device_id": "thermostat-0042",
        "rssi": -67
    })
}

fn bench(c: &mut Criterion) {
    let payload = reading();
    assert!(
        (130..=170).contains(&payload.to_string().len()),
        "payload is {} bytes",
        payload.to_string().len()
    );
    let st = Statement::parse(SQL).expect("parse");
    let msg = Message::new("dt/thermostat/dev42/telemetry", &payload);
    assert!(st.eval(&msg).expect("eval").is_some());

    c.bench_function("eval_1_rule", |b| {
        b.iter(|| black_box(st.eval(black_box(&msg)).ok()))
    });

    let mut trie: TopicTrie<Statement> = TopicTrie::new();
    for i in 0..10_000 {
        let sql = format!(
            "SELECT temperature, humidity, topic(3) AS device FROM 'dt/thermostat{i}/+/telemetry' \
             WHERE temperature > 20 AND humidity < 80 AND topic(2) = 'thermostat{i}'"
        );
        let st = Statement::parse(&sql).expect("parse");
        let filter = st.topic_filter().to_string();
        trie.insert(&filter, st).expect("insert");
    }
    let msg = Message::new("dt/thermostat4321/dev42/telemetry", &payload);
    let mut hits = 0;
    trie.for_each_match(msg.topic, |st| {
        assert!(st.eval(&msg).expect("eval").is_some());
        hits += 1;
    });
    assert_eq!(hits, 1);

    c.bench_function("dispatch_10000_rules_eval", |b| {
        b.iter(|| {
            let mut n = 0usize;
            trie.for_each_match(black_box(msg.topic), |st| {
                if let Ok(Some(v)) = st.eval(&msg) {
                    n += black_box(v).as_object().map_or(0, |o| o.len());
                }
            });
            n
        })
    });

    c.bench_function("parse_statement", |b| {
        b.iter(|| Statement::parse(black_box(SQL)).ok())
    });

    let msg = Message::new("dt/thermostat/dev42/telemetry", &payload);
    for (name, zone) in [
        ("parse_time_utc", "UTC"),
        ("parse_time_los_angeles", "America/Los_Angeles"),
    ] {
        let sql =
            format!("SELECT parse_time('yyyy-MM-dd HH:mm:ss z', ts, '{zone}') AS t FROM 'dt/#'");
        let st = Statement::parse(&sql).expect("parse");
        assert!(st.eval(&msg).expect("eval").is_some());
        c.bench_function(name, |b| {
            b.iter(|| black_box(st.eval(black_box(&msg)).ok()))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
