//! Reading the archive's shape back: the metric columns present under a
//! local archive root, and the Athena DDL for a table over the archive.

use std::collections::HashSet;
use std::fs::{self, File};
use std::path::Path;

use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ArrowReaderMetadata;

use super::columns::FIXED_COLUMNS;
use super::error::{io_err, ArchiveError};

/// `CREATE EXTERNAL TABLE` for the archive at `location` (`s3://bucket/prefix/`),
/// partitioned by `device_type` and `date` with partition projection, dates
/// from `start_date` (`YYYY-MM-DD`) to now. `metrics` become `double` columns.
pub fn athena_ddl(table: &str, location: &str, metrics: &[String], start_date: &str) -> String {
    let location = if location.ends_with('/') {
        location.to_string()
    } else {
        format!("{location}/")
    };
    let mut cols = vec![
        "  `received_at` timestamp".to_string(),
        "  `device_time` timestamp".to_string(),
        "  `device_id` string".to_string(),
        "  `topic` string".to_string(),
    ];
    cols.extend(metrics.iter().map(|m| format!("  {} double", backtick(m))));
    cols.push("  `payload` string".to_string());
    let quote = |s: &str| s.replace('\'', "''");
    format!(
        "CREATE EXTERNAL TABLE IF NOT EXISTS {table} (\n{cols}\n)\n\
         PARTITIONED BY (`device_type` string, `date` string)\n\
         STORED AS PARQUET\n\
         LOCATION '{loc}'\n\
         TBLPROPERTIES (\n\
         \x20 'projection.enabled'='true',\n\
         \x20 'projection.device_type.type'='injected',\n\
         \x20 'projection.date.type'='date',\n\
         \x20 'projection.date.range'='{start},NOW',\n\
         \x20 'projection.date.format'='yyyy-MM-dd',\n\
         \x20 'storage.location.template'='{loc}device_type=${{device_type}}/date=${{date}}/'\n\
         );\n",
        table = backtick(table),
        cols = cols.join(",\n"),
        loc = quote(&location),
        start = quote(start_date),
    )
}

fn backtick(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Union of the metric columns (float64 columns other than the fixed ones)
/// of every `*.parquet` file under `root`, in first-seen order walking the
/// tree in name order. Hidden files and directories are skipped.
pub fn metrics_in(root: &Path) -> Result<Vec<String>, ArchiveError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    walk(root, &mut |path| {
        let file = File::open(path).map_err(io_err("open", path))?;
        let meta = ArrowReaderMetadata::load(&file, Default::default())?;
        for field in meta.schema().fields() {
            let name = field.name();
            if field.data_type() == &DataType::Float64
                && !FIXED_COLUMNS.contains(&name.as_str())
                && seen.insert(name.clone())
            {
                out.push(name.clone());
            }
        }
        Ok(())
    })?;
    Ok(out)
}

fn walk(
    dir: &Path,
    on_file: &mut dyn FnMut(&Path) -> Result<(), ArchiveError>,
) -> Result<(), ArchiveError> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let is_dir = entry
            .file_type()
            .map_err(io_err("stat", &entry.path()))?
            .is_dir();
        entries.push((entry.path(), is_dir));
    }
    entries.sort();
    for (path, is_dir) in entries {
        if is_dir {
            walk(&path, on_file)?;
        } else if path.extension().is_some_and(|e| e == "parquet") {
            on_file(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddl_has_projection_and_partition_keys_outside_columns() {
        let ddl = athena_ddl(
            "weir_archive",
            "s3://bucket/weir",
            &["temperature".into(), "we`ird".into()],
            "2025-01-01",
        );
        let expect = "CREATE EXTERNAL TABLE IF NOT EXISTS `weir_archive` (
  `received_at` timestamp,
  `device_time` timestamp,
  `device_id` string,
  `topic` string,
  `temperature` double,
  `we``ird` double,
  `payload` string
)
PARTITIONED BY (`device_type` string, `date` string)
STORED AS PARQUET
LOCATION 's3://bucket/weir/'
TBLPROPERTIES (
  'projection.enabled'='true',
  'projection.device_type.type'='injected',
  'projection.date.type'='date',
  'projection.date.range'='2025-01-01,NOW',
  'projection.date.format'='yyyy-MM-dd',
  'storage.location.template'='s3://bucket/weir/device_type=${device_type}/date=${date}/'
);
";
        assert_eq!(ddl, expect);
    }
}
