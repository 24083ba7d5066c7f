//! `weir ts`: read the embedded time-series store, from the running
//! instance (admin socket) or, when none runs, from its data directory.

use crate::DataDirArg;
use anyhow::{anyhow, bail, Result};
use clap::Subcommand;
use std::process::ExitCode;
use weir_runtime::admin::{query, query_offline, AdminError, Request};
use weir_storage::timeseries::{TsQuery, TsRows};

#[derive(Subcommand)]
pub enum TsCommand {
    /// Readings of one device's metric between two times, raw or bucketed.
    ///
    /// Times are RFC 3339 (`2026-11-29T10:00:00Z`), epoch milliseconds,
    /// `now`, or `now-<duration>` (`now-1h`). `--to` is exclusive.
    Query {
        #[arg(long)]
        device: String,
        #[arg(long)]
        metric: String,
        #[arg(long, default_value = "now-1h")]
        from: String,
        #[arg(long, default_value = "now")]
        to: String,
        /// Bucket width (`10s`, `1m`, `1h`, `1d`): count, min, max, mean, first, last per bucket.
        #[arg(long)]
        every: Option<String>,
        /// Most rows to print.
        #[arg(long)]
        limit: Option<usize>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// The series (device, metric) the store holds.
    Series {
        #[arg(long)]
        device: Option<String>,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

/// `10s`, `5m`, `1h`, `2d`, `250ms` in milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<i64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| anyhow!("duration {text:?} needs a unit (ms, s, m, h, d)"))?;
    let (n, unit) = t.split_at(split);
    let n: i64 = n
        .parse()
        .map_err(|_| anyhow!("duration {text:?}: expected a number before the unit"))?;
    let per = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => bail!("duration {text:?}: unit must be ms, s, m, h or d"),
    };
    if n <= 0 {
        bail!("duration {text:?} must be positive");
    }
    Ok(n * per)
}

/// RFC 3339, epoch milliseconds, `now` or `now-<duration>`, relative to `now_ms`.
pub fn parse_time_ms(text: &str, now_ms: i64) -> Result<i64> {
    let t = text.trim();
    if t == "now" {
        return Ok(now_ms);
    }
    if let Some(ago) = t.strip_prefix("now-") {
        return Ok(now_ms - parse_duration_ms(ago)?);
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse()
            .map_err(|_| anyhow!("time {text:?} is out of range"));
    }
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.timestamp_millis())
        .map_err(|e| {
            anyhow!(
                "time {text:?}: expected RFC 3339, epoch milliseconds, now or now-<duration> ({e})"
            )
        })
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

async fn ask(dir: &DataDirArg, request: Request) -> Result<serde_json::Value> {
    let data_dir = dir.resolve()?;
    match query(&data_dir, &request).await {
        Err(AdminError::NotRunning(_)) => Ok(query_offline(&data_dir, &request)?),
        other => Ok(other?),
    }
}

pub async fn run(command: TsCommand) -> Result<ExitCode> {
    match command {
        TsCommand::Query {
            device,
            metric,
            from,
            to,
            every,
            limit,
            json,
            dir,
        } => {
            let now = chrono::Utc::now().timestamp_millis();
            let q = TsQuery {
                device,
                metric,
                from_ms: parse_time_ms(&from, now)?,
                to_ms: parse_time_ms(&to, now)?,
                every_ms: every.as_deref().map(parse_duration_ms).transpose()?,
                limit,
            };
            if q.to_ms <= q.from_ms {
                bail!("--to must be after --from");
            }
            let answer = ask(&dir, Request::TsQuery { query: q }).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
                return Ok(ExitCode::SUCCESS);
            }
            let rows: TsRows = serde_json::from_value(answer)?;
            match rows {
                TsRows::Raw(samples) => {
                    println!("{:<26} {:>14}", "time", "value");
                    for s in samples {
                        println!("{:<26} {:>14}", rfc3339(s.time_ms), s.value);
                    }
                }
                TsRows::Buckets(buckets) => {
                    println!(
                        "{:<26} {:>7} {:>12} {:>12} {:>12} {:>12} {:>12}",
                        "start", "count", "min", "max", "mean", "first", "last"
                    );
                    for b in buckets {
                        println!(
                            "{:<26} {:>7} {:>12.4} {:>12.4} {:>12.4} {:>12.4} {:>12.4}",
                            rfc3339(b.start_ms),
                            b.count,
                            b.min,
                            b.max,
                            b.mean,
                            b.first,
                            b.last
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        TsCommand::Series { device, dir } => {
            let answer = ask(&dir, Request::TsSeries { device }).await?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations() {
        let now = 1_764_400_000_000;
        assert_eq!(parse_time_ms("now", now).unwrap(), now);
        assert_eq!(parse_time_ms("now-1h", now).unwrap(), now - 3_600_000);
        assert_eq!(
            parse_time_ms("1764300000000", now).unwrap(),
            1_764_300_000_000
        );
        assert_eq!(
            parse_time_ms("2025-11-28T03:20:00Z", now).unwrap(),
            1_764_300_000_000
        );
        assert_eq!(
            parse_time_ms("2025-11-28T04:20:00+01:00", now).unwrap(),
            1_764_300_000_000
        );
        assert!(parse_time_ms("yesterday", now).is_err());
        assert_eq!(parse_duration_ms("1m").unwrap(), 60_000);
        assert_eq!(parse_duration_ms("250ms").unwrap(), 250);
        assert!(parse_duration_ms("10").is_err());
        assert!(parse_duration_ms("0s").is_err());
        assert!(parse_duration_ms("3w").is_err());
    }
}
