//! `weir replay <csv> --device <id>`: publish a recorded series over MQTT
//! with its own timestamps as the device clock.
//!
//! The CSV has a header line; the first column is the timestamp (NAB's
//! `2013-12-02 21:15:00`, read as UTC; RFC 3339; or epoch milliseconds —
//! plain numbers below 1e11 are epoch seconds), and `--column` names the
//! value column (default `value` when there is one, else the second
//! column). Each row becomes `{"ts": <ms>, "<column>": <value>}` on
//! `dt/<type>/<device>/telemetry`, QoS 1, sent when `(ts − first ts) /
//! speed` has passed since the start (`--speed max`: as fast as the broker
//! acknowledges). Rows that cannot be read are skipped and counted by
//! reason; the summary at the end lists them.

use anyhow::{bail, Context, Result};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
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
    #[arg(long)]
    pub device: String,
    /// Device type (the topic's second level).
    #[arg(long = "type", default_value = "replay")]
    pub device_type: String,
    /// Replay speed: `1x` is the series' own pace, `1000x` a thousand times faster, `max` no pacing.
    #[arg(long, default_value = "1x", value_parser = parse_speed)]
    pub speed: Speed,
    /// MQTT broker address.
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub host: String,
    /// Value column (default: `value`, else the second column).
    #[arg(long)]
    pub column: Option<String>,
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
    pub value: f64,
}

/// A parsed CSV series.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// The value column's name (the JSON field).
    pub column: String,
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
    if let Some(ms) = weir_runtime::clock::parse_rfc3339_ms(s) {
        return Some(ms);
    }
    // No offset (NAB's `2013-12-02 21:15:00[.000000]`): UTC.
    weir_runtime::clock::parse_rfc3339_ms(&format!("{s}Z"))
}

/// Parse CSV text (see the module docs).
pub fn parse_csv(text: &str, column: Option<&str>) -> Result<Series> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .context("the CSV is empty (it needs a header line)")?
        .split(',')
        .map(|c| c.trim().trim_matches('"').to_string())
        .collect();
    let index = match column {
        Some(name) => header
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("no column {name:?} in the header {header:?}"))?,
        None => match header.iter().position(|h| h == "value") {
            Some(i) if i > 0 => i,
            _ if header.len() >= 2 => 1,
            _ => bail!("the header {header:?} has no value column"),
        },
    };
    if index == 0 {
        bail!("the first column is the timestamp; pick another --column");
    }
    let mut series = Series {
        column: header[index].clone(),
        ..Series::default()
    };
    for line in lines {
        series.total += 1;
        let cells: Vec<&str> = line.split(',').collect();
        let skip = |s: &mut Series, why: &str| *s.skipped.entry(why.to_string()).or_default() += 1;
        let Some(ts) = cells.first().and_then(|c| parse_timestamp(c)) else {
            skip(&mut series, "unreadable timestamp");
            continue;
        };
        let Some(cell) = cells.get(index) else {
            skip(&mut series, "missing value column");
            continue;
        };
        match cell.trim().trim_matches('"').parse::<f64>() {
            Ok(v) if v.is_finite() => series.rows.push(Row { ts, value: v }),
            _ => skip(&mut series, "value is not a finite number"),
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
pub fn payload(column: &str, row: &Row) -> String {
    let mut doc = serde_json::Map::new();
    doc.insert("ts".into(), row.ts.into());
    doc.insert(column.into(), serde_json::json!(row.value));
    serde_json::Value::Object(doc).to_string()
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

/// Publish `series` on `topic`, paced by `speed`, and wait until the broker
/// has acknowledged every message.
pub async fn send(
    series: &Series,
    host: &str,
    client_id: &str,
    topic: &str,
    speed: Speed,
) -> Result<Summary> {
    let conn = Conn::connect(host, client_id).await?;
    let started = Instant::now();
    let first = series.rows.first().map_or(0, |r| r.ts);
    for row in &series.rows {
        let at = started + due(first, row.ts, speed);
        let now = Instant::now();
        if at > now {
            tokio::time::sleep(at - now).await;
        }
        conn.publish(topic, payload(&series.column, row)).await?;
    }
    let published = series.rows.len() as u64;
    let acknowledged = conn.finish(published).await;
    Ok(Summary {
        published,
        acknowledged,
        elapsed: started.elapsed(),
    })
}

/// `weir replay`.
pub async fn run(args: ReplayArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.csv)
        .with_context(|| format!("cannot read {}", args.csv.display()))?;
    let series = parse_csv(&text, args.column.as_deref())?;
    if series.rows.is_empty() {
        bail!(
            "{}: no readable rows ({} rows, skipped {:?})",
            args.csv.display(),
            series.total,
            series.skipped
        );
    }
    let topic = format!("dt/{}/{}/telemetry", args.device_type, args.device);
    let client_id = args
        .client_id
        .clone()
        .unwrap_or_else(|| format!("replay-{}", args.device));
    let summary = send(&series, &args.host, &client_id, &topic, args.speed).await?;
    print_summary(&args, &series, &topic, &summary);
    if summary.acknowledged < summary.published {
        bail!(
            "{} of {} messages were not acknowledged",
            summary.published - summary.acknowledged,
            summary.published
        );
    }
    Ok(())
}

fn print_summary(args: &ReplayArgs, series: &Series, topic: &str, s: &Summary) {
    let rfc = |ms: Option<i64>| ms.map(rfc3339).unwrap_or_else(|| "-".into());
    let secs = s.elapsed.as_secs_f64();
    println!(
        "replayed {} → {topic} (column {:?}, speed {:?})",
        args.csv.display(),
        series.column,
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
    }

    #[test]
    fn csv_rows_and_skips() {
        let text = "timestamp,value\n2013-12-02 21:15:00,73.5\n\nbad,1\n2013-12-02 21:20:00,\n2013-12-02 21:25:00,NaN\n2013-12-02 21:30:00,74\n2013-12-02 21:35:00\n";
        let s = parse_csv(text, None).unwrap();
        assert_eq!(s.column, "value");
        assert_eq!(s.total, 6);
        assert_eq!(
            s.rows,
            vec![
                Row {
                    ts: 1_386_018_900_000,
                    value: 73.5
                },
                Row {
                    ts: 1_386_019_800_000,
                    value: 74.0
                }
            ]
        );
        assert_eq!(s.skipped["unreadable timestamp"], 1);
        assert_eq!(s.skipped["value is not a finite number"], 2);
        assert_eq!(s.skipped["missing value column"], 1);
        assert_eq!(
            payload(&s.column, &s.rows[1]),
            r#"{"ts":1386019800000,"value":74.0}"#
        );
    }

    #[test]
    fn columns() {
        let text = "time,temp,hum\n1386018900000,1,2\n";
        assert_eq!(parse_csv(text, None).unwrap().column, "temp");
        let s = parse_csv(text, Some("hum")).unwrap();
        assert_eq!((s.column.as_str(), s.rows[0].value), ("hum", 2.0));
        assert!(parse_csv(text, Some("nope")).is_err());
        assert!(parse_csv(text, Some("time")).is_err());
        assert!(parse_csv("", None).is_err());
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
