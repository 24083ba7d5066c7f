//! The staging row log: every row of an open file, in JSON lines, so rows
//! survive a crash until they are in a finished Parquet file.
//!
//! Line 1 is a [`LogHeader`] naming the file the rows belong to; each later
//! line is one `ArchiveRow`. Appends go to the OS in one `write` per call
//! (surviving a process crash); `sync` adds the fsync for power loss. A torn
//! last line (the process died mid-append, so that append never returned)
//! is ignored on recovery.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{io_err, ArchiveError};
use super::types::ArchiveRow;

/// Extension of row log files in the staging directory.
pub const LOG_EXTENSION: &str = "rowlog";

/// Identifies the Parquet file a log's rows belong to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LogHeader {
    pub version: u32,
    /// Key of the Parquet file relative to the output root.
    pub key: String,
}

/// An open row log.
pub struct RowLog {
    path: PathBuf,
    file: File,
    bytes: u64,
}

impl RowLog {
    /// Creates the log with its header line (flushed to the OS).
    pub fn create(path: PathBuf, header: &LogHeader) -> Result<RowLog, ArchiveError> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err("create row log", &path))?;
        let mut line = serde_json::to_vec(header).map_err(|e| ArchiveError::RowLog {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        line.push(b'\n');
        file.write_all(&line)
            .map_err(io_err("write row log", &path))?;
        Ok(RowLog {
            path,
            file,
            bytes: 0,
        })
    }

    /// Appends already-encoded lines (see [`encode_row`]) in one write.
    pub fn append(&mut self, lines: &[u8]) -> Result<(), ArchiveError> {
        self.file
            .write_all(lines)
            .map_err(io_err("append row log", &self.path))?;
        self.bytes += lines.len() as u64;
        Ok(())
    }

    /// fsyncs the log.
    pub fn sync(&self) -> Result<(), ArchiveError> {
        self.file
            .sync_data()
            .map_err(io_err("sync row log", &self.path))
    }

    /// Bytes of rows appended (header excluded).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Appends one row as a JSON line to `out`.
pub fn encode_row(out: &mut Vec<u8>, row: &ArchiveRow) -> Result<(), ArchiveError> {
    serde_json::to_writer(&mut *out, row)
        .map_err(|e| ArchiveError::InvalidRow(format!("cannot encode row: {e}")))?;
    out.push(b'\n');
    Ok(())
}

/// What reading a log found.
#[derive(Debug, PartialEq, Eq)]
pub struct LogSummary {
    /// `None` if even the header never reached the file (so no rows did).
    pub header: Option<LogHeader>,
    pub rows: u64,
    /// Complete lines that did not parse (corruption, not a torn append).
    pub bad_lines: u64,
}

/// Streams a row log's rows to `on_row`, ignoring a torn last line.
pub fn read_log(
    path: &Path,
    mut on_row: impl FnMut(ArchiveRow) -> Result<(), ArchiveError>,
) -> Result<LogSummary, ArchiveError> {
    let file = File::open(path).map_err(io_err("open row log", path))?;
    let mut reader = BufReader::new(file);
    let mut out = LogSummary {
        header: None,
        rows: 0,
        bad_lines: 0,
    };
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(io_err("read row log", path))?;
        if n == 0 || line.last() != Some(&b'\n') {
            break; // end, or a torn final append
        }
        if out.header.is_none() {
            match serde_json::from_slice::<LogHeader>(&line) {
                Ok(h) => out.header = Some(h),
                Err(_) => return Ok(out),
            }
            continue;
        }
        match serde_json::from_slice::<ArchiveRow>(&line) {
            Ok(row) => {
                out.rows += 1;
                on_row(row)?;
            }
            Err(_) => out.bad_lines += 1,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: i64) -> ArchiveRow {
        ArchiveRow {
            device: format!("dev-{i}"),
            device_type: "t".into(),
            topic: "a/b".into(),
            received_at_ms: i,
            device_time_ms: Some(i - 1),
            metrics: vec![("x".into(), i as f64)],
            payload: format!("{{\"x\":{i}}}\n"),
        }
    }

    #[test]
    fn round_trip_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.rowlog");
        let header = LogHeader {
            version: 1,
            key: "k".into(),
        };
        let mut log = RowLog::create(path.clone(), &header).unwrap();
        let mut buf = Vec::new();
        encode_row(&mut buf, &row(1)).unwrap();
        encode_row(&mut buf, &row(2)).unwrap();
        log.append(&buf).unwrap();
        assert_eq!(log.bytes(), buf.len() as u64);
        // A torn append: half a line, no newline.
        let mut torn = Vec::new();
        encode_row(&mut torn, &row(3)).unwrap();
        log.append(&torn[..torn.len() / 2]).unwrap();
        drop(log);
        let mut rows = Vec::new();
        let got = read_log(&path, |r| {
            rows.push(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(got.header, Some(header));
        assert_eq!((got.rows, got.bad_lines), (2, 0));
        assert_eq!(rows, vec![row(1), row(2)]);
    }

    #[test]
    fn torn_header_means_no_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.rowlog");
        std::fs::write(&path, b"{\"version\":1,\"ke").unwrap();
        let got = read_log(&path, |_| panic!("no rows expected")).unwrap();
        assert_eq!(got.header, None);
        assert_eq!(got.rows, 0);
    }
}
