//! Naming: which partition a row belongs to, and the keys of the files in it.

use super::error::ArchiveError;
use super::types::ArchiveRow;
use crate::date::Day;

/// A device type made safe for one path component: `[A-Za-z0-9_.-]` kept,
/// anything else `_`, empty → `unknown`.
pub fn sanitize_device_type(t: &str) -> String {
    if t.is_empty() {
        return "unknown".to_string();
    }
    t.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `device_type=<sanitized>/date=<YYYY-MM-DD of received_at, UTC>`.
pub fn partition_of(row: &ArchiveRow) -> Result<String, ArchiveError> {
    let day = Day::of_ms(row.received_at_ms).ok_or_else(|| {
        ArchiveError::InvalidRow(format!(
            "received_at_ms {} is outside the years 0000..=9999",
            row.received_at_ms
        ))
    })?;
    Ok(format!(
        "device_type={}/date={}",
        sanitize_device_type(&row.device_type),
        day.iso()
    ))
}

/// The file name (no directory) of a new part: `part-<created ms>-<id>.parquet`.
pub fn part_name(created_ms: i64, id: &uuid::Uuid) -> String {
    format!("part-{created_ms}-{}.parquet", id.simple())
}

/// Name of the in-progress file beside `file_name`: hidden, and not ending
/// in `.parquet`, so `**/*.parquet` never matches it.
pub fn temp_name(file_name: &str) -> String {
    format!(".{file_name}.tmp")
}

/// The partitions of `rows`, each once in order of first appearance, and
/// the partition (index) of each row. Readings of a batch mostly share a
/// device type and a day, so the name is built only when either changes.
/// Any row outside the representable dates fails the whole batch, before
/// anything is written.
pub fn partitions_of(rows: &[ArchiveRow]) -> Result<(Vec<String>, Vec<usize>), ArchiveError> {
    const DAY_MS: i64 = 86_400_000;
    let mut names: Vec<String> = Vec::new();
    let mut of_row = Vec::with_capacity(rows.len());
    let mut last: Option<(&str, i64, usize)> = None;
    for row in rows {
        let day = row.received_at_ms.div_euclid(DAY_MS);
        let index = match last {
            Some((device_type, d, i)) if d == day && device_type == row.device_type => i,
            _ => {
                let name = partition_of(row)?;
                let i = match names.iter().position(|n| *n == name) {
                    Some(i) => i,
                    None => {
                        names.push(name);
                        names.len() - 1
                    }
                };
                last = Some((&row.device_type, day, i));
                i
            }
        };
        of_row.push(index);
    }
    Ok((names, of_row))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(device_type: &str, received_at_ms: i64) -> ArchiveRow {
        ArchiveRow {
            device: "d".into(),
            device_type: device_type.into(),
            topic: "t".into(),
            received_at_ms,
            device_time_ms: None,
            metrics: vec![],
            payload: "{}".into(),
        }
    }

    #[test]
    fn sanitizes() {
        assert_eq!(sanitize_device_type("thermo-stat_v1.2"), "thermo-stat_v1.2");
        assert_eq!(sanitize_device_type("a/b c=d"), "a_b_c_d");
        assert_eq!(sanitize_device_type("héat"), "h_at");
        assert_eq!(sanitize_device_type(""), "unknown");
    }

    #[test]
    fn partitions_by_utc_date() {
        assert_eq!(
            partition_of(&row("thermostat", 1_700_000_000_000)).unwrap(),
            "device_type=thermostat/date=2023-11-14"
        );
        assert_eq!(
            partition_of(&row("", 1_699_919_999_999)).unwrap(),
            "device_type=unknown/date=2023-11-13"
        );
        assert!(partition_of(&row("x", i64::MAX)).is_err());
        let name = part_name(5, &uuid::Uuid::nil());
        assert_eq!(name, "part-5-00000000000000000000000000000000.parquet");
        assert_eq!(temp_name(&name), format!(".{name}.tmp"));
    }

    /// Each row gets the partition `partition_of` names, whether the name
    /// was built for it or reused from the row before.
    #[test]
    fn partitions_match_partition_of_row_by_row() {
        let day = 86_400_000;
        let rows = [
            row("pump", 0),
            row("pump", 5),
            row("valve", 6),
            row("pump", day - 1),
            row("pump", day),
            row("pump", -1),
            row("bad type/x", day + 7),
        ];
        let (names, of_row) = partitions_of(&rows).expect("partitions");
        assert_eq!(of_row, vec![0, 0, 1, 0, 2, 3, 4]);
        for (r, &p) in rows.iter().zip(&of_row) {
            assert_eq!(names[p], partition_of(r).expect("valid"));
        }
        let bad = [row("pump", 0), row("pump", i64::MAX)];
        assert!(partitions_of(&bad).is_err());
    }
}
