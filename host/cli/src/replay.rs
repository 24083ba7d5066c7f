//! `weir replay <csv>`: publish recorded sensor data over MQTT with its own
//! timestamps as the device clock.
//!
//! The CSV has a header line; the first column is the timestamp (NAB's
//! `2013-12-02 21:15:00`, read as UTC; RFC 3339; epoch milliseconds; or
//! epoch seconds, with a fraction or without: plain numbers below 1e11).
//! Fields may be quoted (RFC 4180). Which columns become the reading:
//!
//! - by default the `value` column when there is one, else the second;
//! - `--column NAME`, once or more: those columns;
//! - `--all-columns`: every column but the timestamp and the device's.
//!
//! A cell is a number or a boolean (`true`/`false`); an empty cell, and
//! text that is neither, is left out of the reading (a row left with no
//! value is skipped and counted).
//! Each row becomes `{"ts": <ms>, "<column>": <value>, …}` on
//! `dt/<type>/<device>/telemetry`, QoS 1, sent when `(ts − first ts) /
//! speed` has passed since the start (`--speed max`: as fast as the broker
//! acknowledges). The device is `--device`, or with `--device-column` the
//! row's cell: then each device publishes on a connection of its own, as
//! itself (client id = device id), as a fleet does. Rows that cannot be
//! read are skipped and counted by reason; the summary at the end lists
//! them.

use anyhow::{bail, Context, Result};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone, Debug)]
pub struct ReplayArgs {
    /// CSV file: a header line, the timestamp first, then value column(s).
    pub csv: PathBuf,
    /// Device id (the topic's third level).
    #[arg(long, required_unless_present = "device_column")]
    pub device: Option<String>,
    /// Column holding each row's device id (several devices, one connection each).
    #[arg(long, conflicts_with_all = ["device", "client_id"])]
    pub device_column: Option<String>,
    /// Device type (the topic's second level).
    #[arg(long = "type", default_value = "replay")]
    pub device_type: String,
    /// Replay speed: `1x` is the series' own pace, `1000x` a thousand times faster, `max` no pacing.
    #[arg(long, default_value = "1x", value_parser = parse_speed)]
    pub speed: Speed,
    /// MQTT broker address.
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub host: String,
    /// Value column; give it again for more (default: `value`, else the second column).
    #[arg(long = "column")]
    pub columns: Vec<String>,
    /// Every column but the timestamp and the device column.
    #[arg(long, conflicts_with = "columns")]
    pub all_columns: bool,
    /// MQTT client id (default `replay-<device>`).
    #[arg(long)]
    pub client_id: Option<String>,
}

/// How fast to replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// Series time divided by this factor.
    Factor(f64),
    /// No pacing.
    Max,
}

/// `1000x`, `1000`, `0.5x` or `max`.
pub fn parse_speed(s: &str) -> Result<Speed, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("max") {
        return Ok(Speed::Max);
    }
    let n: f64 = s
        .strip_suffix(['x', 'X'])
        .unwrap_or(s)
        .parse()
        .map_err(|_| format!("invalid speed {s:?} (e.g. 1x, 1000x, max)"))?;
    if !(n.is_finite() && n > 0.0) {
        return Err(format!("speed must be positive, not {s:?}"));
    }
    Ok(Speed::Factor(n))
}

/// One row to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub ts: i64,
    /// Index into [`Series::devices`].
    pub device: usize,
    /// Values by index into [`Series::columns`].
    pub fields: Vec<(usize, Value)>,
}

/// Which columns make the reading.
#[derive(Debug, Clone, Default)]
pub enum Columns {
    /// `value` when there is one, else the second column.
    #[default]
    Default,
    Named(Vec<String>),
    /// All but the timestamp and the device column.
    All,
}

/// How to read a CSV file.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub columns: Columns,
    /// The column naming each row's device; `None`: every row is `device`.
    pub device_column: Option<String>,
    pub device: String,
}

/// A parsed CSV series.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// The value columns' names (the JSON fields).
    pub columns: Vec<String>,
    /// The devices, in order of first appearance.
    pub devices: Vec<String>,
    pub rows: Vec<Row>,
    /// Data rows seen (header excluded, blank lines ignored).
    pub total: u64,
    /// Skipped rows by reason.
    pub skipped: BTreeMap<String, u64>,
}

/// A timestamp cell as ms since the epoch.
pub fn parse_timestamp(cell: &str) -> Option<i64> {
    let s = cell.trim().trim_matches('"');
    if let Ok(n) = s.parse::<i64>() {
        return Some(if n.abs() < 100_000_000_000 {
            n * 1000
        } else {
            n
        });
    }
    // Epoch seconds with a fraction (`1594512094.3859746`).
    if let Ok(secs) = s.parse::<f64>() {
        return (secs.is_finite() && secs.abs() < 1e11).then(|| (secs * 1000.0).round() as i64);
    }
    if let Some(ms) = weir_runtime::clock::parse_rfc3339_ms(s) {
        return Some(ms);
    }
    // No offset (NAB's `2013-12-02 21:15:00[.000000]`): UTC.
    weir_runtime::clock::parse_rfc3339_ms(&format!("{s}Z"))
}

/// The fields of one CSV line: split on commas outside double quotes, a
/// quoted field's `""` read as `"`.
pub fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// A cell as a reading value, or why it is not one (`None`: empty).
fn cell_value(cell: &str) -> Result<Option<Value>, &'static str> {
    let s = cell.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") {
        return Ok(Some(Value::Bool(s.eq_ignore_ascii_case("true"))));
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Some(serde_json::json!(v))),
        _ => Err("value is not a finite number or a boolean"),
    }
}

/// Is `id` usable as a topic level and client id?
fn valid_device(id: &str) -> bool {
    !id.is_empty() && !id.contains(['/', '+', '#', '\0'])
}

/// Parse CSV text (see the module docs).
pub fn parse_csv(text: &str, layout: &Layout) -> Result<Series> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = split_csv(
        lines
            .next()
            .context("the CSV is empty (it needs a header line)")?,
    )
    .into_iter()
    .map(|c| c.trim().to_string())
    .collect();
    let find = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("no column {name:?} in the header {header:?}"))
    };
    let device_index = layout.device_column.as_deref().map(find).transpose()?;
    let indexes: Vec<usize> = match &layout.columns {
        Columns::Named(names) => names.iter().map(|n| find(n)).collect::<Result<_>>()?,
        Columns::All => (1..header.len())
            .filter(|i| Some(*i) != device_index)
            .collect(),
        Columns::Default => match header.iter().position(|h| h == "value") {
            Some(i) if i > 0 => vec![i],
            _ if header.len() >= 2 => vec![1],
            _ => bail!("the header {header:?} has no value column"),
        },
    };
    if indexes.is_empty() {
        bail!("the header {header:?} has no value column");
    }
    if indexes.contains(&0) {
        bail!("the first column is the timestamp; pick another --column");
    }
    if device_index.is_some_and(|d| indexes.contains(&d)) {
        bail!("the device column cannot also be a value column");
    }
    let mut series = Series {
        columns: indexes.iter().map(|&i| header[i].clone()).collect(),
        ..Series::default()
    };
    if device_index.is_none() {
        series.devices.push(layout.device.clone());
    }
    let mut device_ids: std::collections::HashMap<String, usize> = Default::default();
    for line in lines {
        series.total += 1;
        let cells = split_csv(line);
        let skip = |s: &mut Series, why: &str| *s.skipped.entry(why.to_string()).or_default() += 1;
        let Some(ts) = cells.first().and_then(|c| parse_timestamp(c)) else {
            skip(&mut series, "unreadable timestamp");
            continue;
        };
        let device = match device_index {
            None => 0,
            Some(d) => {
                let id = cells.get(d).map(|c| c.trim()).unwrap_or_default();
                if !valid_device(id) {
                    skip(&mut series, "unusable device id (empty, or with / + #)");
                    continue;
                }
                *device_ids.entry(id.to_string()).or_insert_with(|| {
                    series.devices.push(id.to_string());
                    series.devices.len() - 1
                })
            }
        };
        let mut fields = Vec::with_capacity(indexes.len());
        let mut first_problem = None;
        for (field, &i) in indexes.iter().enumerate() {
            match cells.get(i).map(|c| cell_value(c)) {
                Some(Ok(Some(v))) => fields.push((field, v)),
                Some(Ok(None)) => {
                    first_problem.get_or_insert("empty value");
                }
                Some(Err(why)) => {
                    first_problem.get_or_insert(why);
                }
                None => {
                    first_problem.get_or_insert("missing value column");
                }
            }
        }
        match (fields.is_empty(), first_problem) {
            (true, why) => skip(&mut series, why.unwrap_or("no value")),
            (false, _) => series.rows.push(Row { ts, device, fields }),
        }
    }
    Ok(series)
}

/// `ms` since the epoch as RFC 3339 UTC (`2013-12-02T21:15:00Z`).
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// The JSON document of one row.
pub fn payload(columns: &[String], row: &Row) -> String {
    let mut doc = serde_json::Map::new();
    doc.insert("ts".into(), row.ts.into());
    for (i, v) in &row.fields {
        doc.insert(columns[*i].clone(), v.clone());
    }
    Value::Object(doc).to_string()
}

/// When row `ts` is due, relative to the start of the replay.
pub fn due(first_ts: i64, ts: i64, speed: Speed) -> Duration {
    match speed {
        Speed::Max => Duration::ZERO,
        Speed::Factor(f) => Duration::from_secs_f64(((ts - first_ts).max(0) as f64 / 1000.0) / f),
    }
}

/// What a replay did.
#[derive(Debug, Clone)]
pub struct Summary {
    pub published: u64,
    pub acknowledged: u64,
    pub elapsed: Duration,
}

/// One MQTT connection that publishes at QoS 1 and counts PUBACKs.
pub struct Conn {
    pub client: AsyncClient,
    acks: Arc<AtomicU64>,
    driver: tokio::task::JoinHandle<()>,
}

impl Conn {
    /// Connect to `host` (`ip:port`) and wait for the CONNACK.
    pub async fn connect(host: &str, client_id: &str) -> Result<Conn> {
        let (ip, port) = host
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
            .with_context(|| format!("--host {host:?} is not host:port"))?;
        let mut opts = MqttOptions::new(client_id, ip, port);
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_inflight(100);
        let (client, mut eventloop) = AsyncClient::new(opts, 1000);
        let acks = Arc::new(AtomicU64::new(0));
        let (up_tx, up_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
        let counter = acks.clone();
        let driver = tokio::spawn(async move {
            let mut up = Some(up_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(tx) = up.take() {
                            let _ = tx.send(Ok(()));
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        counter.fetch_add(1, Relaxed);
                    }
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
                    Ok(_) => {}
                    Err(e) => match up.take() {
                        Some(tx) => {
                            let _ = tx.send(Err(e.to_string()));
                            return;
                        }
                        None => tokio::time::sleep(Duration::from_millis(200)).await,
                    },
                }
            }
        });
        match tokio::time::timeout(Duration::from_secs(10), up_rx).await {
            Ok(Ok(Ok(()))) => Ok(Conn {
                client,
                acks,
                driver,
            }),
            Ok(Ok(Err(e))) => bail!("cannot connect to {host}: {e}"),
            _ => bail!("no MQTT connection to {host} within 10 s"),
        }
    }

    /// Publish at QoS 1.
    pub async fn publish(&self, topic: &str, payload: String) -> Result<()> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .context("publish")
    }

    /// Wait until `published` PUBACKs are in (or 30 s pass without one),
    /// disconnect, and return how many arrived.
    pub async fn finish(self, published: u64) -> u64 {
        let mut last = (self.acks.load(Relaxed), Instant::now());
        while self.acks.load(Relaxed) < published {
            let now = self.acks.load(Relaxed);
            if now != last.0 {
                last = (now, Instant::now());
            } else if last.1.elapsed() > Duration::from_secs(30) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.driver).await;
        self.acks.load(Relaxed)
    }
}

/// Where each device's rows go: its connection and topic.
pub struct Target {
    pub client_id: String,
    pub topic: String,
}

/// Publish `series`, each device's rows on its target, paced by `speed`,
/// and wait until the broker has acknowledged every message.
pub async fn send(
    series: &Series,
    host: &str,
    targets: &[Target],
    speed: Speed,
) -> Result<Summary> {
    let mut conns = Vec::with_capacity(targets.len());
    for t in targets {
        conns.push(Conn::connect(host, &t.client_id).await?);
    }
    let started = Instant::now();
    let first = series.rows.first().map_or(0, |r| r.ts);
    let mut published = vec![0u64; conns.len()];
    for row in &series.rows {
        let at = started + due(first, row.ts, speed);
        let now = Instant::now();
        if at > now {
            tokio::time::sleep(at - now).await;
        }
        let (conn, target) = (&conns[row.device], &targets[row.device]);
        conn.publish(&target.topic, payload(&series.columns, row))
            .await?;
        published[row.device] += 1;
    }
    let mut acknowledged = 0;
    for (conn, n) in conns.into_iter().zip(&published) {
        acknowledged += conn.finish(*n).await;
    }
    Ok(Summary {
        published: published.iter().sum(),
        acknowledged,
        elapsed: started.elapsed(),
    })
}

/// `weir replay`.
pub async fn run(args: ReplayArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.csv)
        .with_context(|| format!("cannot read {}", args.csv.display()))?;
    let layout = Layout {
        columns: match (args.all_columns, args.columns.is_empty()) {
            (true, _) => Columns::All,
            (false, true) => Columns::Default,
            (false, false) => Columns::Named(args.columns.clone()),
        },
        device_column: args.device_column.clone(),
        device: args.device.clone().unwrap_or_default(),
    };
    if layout.device_column.is_none() && !valid_device(&layout.device) {
        bail!("--device {:?} cannot be a topic level", layout.device);
    }
    let series = parse_csv(&text, &layout)?;
    if series.rows.is_empty() {
        bail!(
            "{}: no readable rows ({} rows, skipped {:?})",
            args.csv.display(),
            series.total,
            series.skipped
        );
    }
    let targets: Vec<Target> = series
        .devices
        .iter()
        .map(|device| Target {
            // With a device column each device publishes as itself.
            client_id: match (&args.client_id, &layout.device_column) {
                (Some(id), None) => id.clone(),
                (None, None) => format!("replay-{device}"),
                (_, Some(_)) => device.clone(),
            },
            topic: format!("dt/{}/{device}/telemetry", args.device_type),
        })
        .collect();
    let summary = send(&series, &args.host, &targets, args.speed).await?;
    print_summary(&args, &series, &targets, &summary);
    if summary.acknowledged < summary.published {
        bail!(
            "{} of {} messages were not acknowledged",
            summary.published - summary.acknowledged,
            summary.published
        );
    }
    Ok(())
}

fn print_summary(args: &ReplayArgs, series: &Series, targets: &[Target], s: &Summary) {
    let rfc = |ms: Option<i64>| ms.map(rfc3339).unwrap_or_else(|| "-".into());
    let secs = s.elapsed.as_secs_f64();
    let to = match targets {
        [one] => one.topic.clone(),
        many => format!(
            "{} devices on dt/{}/<device>/telemetry",
            many.len(),
            args.device_type
        ),
    };
    println!(
        "replayed {} → {to} (columns {:?}, speed {:?})",
        args.csv.display(),
        series.columns,
        args.speed
    );
    println!(
        "  rows:      {} read, {} published, {} acknowledged",
        series.total, s.published, s.acknowledged
    );
    let skipped: u64 = series.skipped.values().sum();
    println!("  skipped:   {skipped}");
    for (why, n) in &series.skipped {
        println!("    {n} × {why}");
    }
    println!("  first ts:  {}", rfc(series.rows.first().map(|r| r.ts)));
    println!("  last ts:   {}", rfc(series.rows.last().map(|r| r.ts)));
    println!(
        "  elapsed:   {secs:.3} s, {:.0} msgs/s",
        if secs > 0.0 {
            s.published as f64 / secs
        } else {
            0.0
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(
            parse_timestamp("2013-12-02 21:15:00"),
            Some(1_386_018_900_000)
        );
        assert_eq!(
            parse_timestamp("2013-12-02T21:15:00Z"),
            Some(1_386_018_900_000)
        );
        assert_eq!(
            parse_timestamp("2013-12-02T23:15:00+02:00"),
            Some(1_386_018_900_000)
        );
        assert_eq!(
            parse_timestamp("2013-12-10 06:25:00.000000"),
            Some(1_386_656_700_000)
        );
        assert_eq!(parse_timestamp("1386018900000"), Some(1_386_018_900_000));
        assert_eq!(parse_timestamp("1386018900"), Some(1_386_018_900_000));
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(
            parse_timestamp("1594512094.3859746"),
            Some(1_594_512_094_386)
        );
    }

    fn layout(columns: Columns) -> Layout {
        Layout {
            columns,
            device_column: None,
            device: "d".into(),
        }
    }

    #[test]
    fn csv_rows_and_skips() {
        let text = "timestamp,value\n2013-12-02 21:15:00,73.5\n\nbad,1\n2013-12-02 21:20:00,\n2013-12-02 21:25:00,NaN\n2013-12-02 21:30:00,74\n2013-12-02 21:35:00\n";
        let s = parse_csv(text, &layout(Columns::Default)).unwrap();
        assert_eq!(s.columns, ["value"]);
        assert_eq!(s.total, 6);
        let value = |v: f64| vec![(0, serde_json::json!(v))];
        assert_eq!(
            s.rows,
            vec![
                Row {
                    ts: 1_386_018_900_000,
                    device: 0,
                    fields: value(73.5)
                },
                Row {
                    ts: 1_386_019_800_000,
                    device: 0,
                    fields: value(74.0)
                }
            ]
        );
        assert_eq!(s.skipped["unreadable timestamp"], 1);
        assert_eq!(s.skipped["value is not a finite number or a boolean"], 1);
        assert_eq!(s.skipped["empty value"], 1);
        assert_eq!(s.skipped["missing value column"], 1);
        assert_eq!(
            payload(&s.columns, &s.rows[1]),
            r#"{"ts":1386019800000,"value":74.0}"#
        );
    }

    #[test]
    fn columns() {
        let text = "time,temp,hum\n1386018900000,1,2\n";
        let parse = |c| parse_csv(text, &layout(c));
        assert_eq!(parse(Columns::Default).unwrap().columns, ["temp"]);
        let s = parse(Columns::Named(vec!["hum".into()])).unwrap();
        assert_eq!(s.columns, ["hum"]);
        assert_eq!(s.rows[0].fields, vec![(0, serde_json::json!(2.0))]);
        assert!(parse(Columns::Named(vec!["nope".into()])).is_err());
        assert!(parse(Columns::Named(vec!["time".into()])).is_err());
        assert!(parse_csv("", &layout(Columns::Default)).is_err());
    }

    /// A multi-sensor file as public IoT datasets ship them: a device
    /// column, epoch seconds with a fraction, booleans, quoted cells.
    #[test]
    fn devices_and_all_columns() {
        let text = concat!(
            "\"ts\",\"device\",\"co\",\"humidity\",\"light\",\"motion\",\"note\"\n",
            "1594512094.3859746,b8:27:eb:bf:9d:51,0.0049,51.0,false,false,\"ok, fine\"\n",
            "1594512094.7355676,00:0f:00:70:91:0a,0.0028,76.0,true,false,\n",
            "1594512098.0,b8:27:eb:bf:9d:51,,50.9,FALSE,true,x\n",
            "1594512099.0,,0.1,1,true,true,\n",
            "1594512100.0,a/b,0.1,1,true,true,\n",
        );
        let s = parse_csv(
            text,
            &Layout {
                columns: Columns::All,
                device_column: Some("device".into()),
                device: String::new(),
            },
        )
        .unwrap();
        assert_eq!(s.columns, ["co", "humidity", "light", "motion", "note"]);
        assert_eq!(s.devices, ["b8:27:eb:bf:9d:51", "00:0f:00:70:91:0a"]);
        assert_eq!(s.rows.len(), 3);
        assert_eq!(s.rows[0].ts, 1_594_512_094_386);
        assert_eq!(
            payload(&s.columns, &s.rows[0]),
            r#"{"ts":1594512094386,"co":0.0049,"humidity":51.0,"light":false,"motion":false}"#
        );
        assert_eq!(s.rows[1].device, 1);
        // An empty cell is left out; text is left out (and the row kept).
        assert_eq!(
            payload(&s.columns, &s.rows[2]),
            r#"{"ts":1594512098000,"humidity":50.9,"light":false,"motion":true}"#
        );
        assert_eq!(s.skipped["unusable device id (empty, or with / + #)"], 2);
        assert_eq!(split_csv(r#"a,"b ""q"", c",d"#), ["a", r#"b "q", c"#, "d"]);
    }

    #[test]
    fn rfc3339_text() {
        assert_eq!(rfc3339(1_386_018_900_000), "2013-12-02T21:15:00Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn speeds_and_pacing() {
        assert_eq!(parse_speed("1000x"), Ok(Speed::Factor(1000.0)));
        assert_eq!(parse_speed("2"), Ok(Speed::Factor(2.0)));
        assert_eq!(parse_speed("max"), Ok(Speed::Max));
        assert!(parse_speed("0x").is_err() && parse_speed("fast").is_err());
        // 5 minutes of series time at 1000x = 300 ms.
        assert_eq!(
            due(0, 300_000, Speed::Factor(1000.0)),
            Duration::from_millis(300)
        );
        assert_eq!(due(0, 300_000, Speed::Max), Duration::ZERO);
        assert_eq!(
            due(10, 0, Speed::Factor(1.0)),
            Duration::ZERO,
            "out of order: at once"
        );
    }
}
