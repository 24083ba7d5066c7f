//! The staging row log: every row of an open file, so rows survive a crash
//! until they are in a finished Parquet file.
//!
//! Line 1 is a [`LogHeader`] (JSON) naming the file the rows belong to.
//! The rows follow, in the header's `version` of the format:
//! - 2 (written now): one binary frame per row, `[len u32][crc32 u32][row]`
//!   (little-endian; strings as a u32 length and their bytes, times as
//!   i64, metrics as a count and (name, f64) pairs). Writing a row costs a
//!   few copies, where JSON cost escaping every quote of the payload and
//!   formatting every float.
//! - 1 (still read): one JSON `ArchiveRow` per line.
//!
//! Appends go to the OS in one `write` per call (surviving a process
//! crash); `sync` adds the fsync for power loss. A torn last row (the
//! process died mid-append, so that append never returned) is ignored on
//! recovery; a complete row that does not check out is counted as bad.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{io_err, ArchiveError};
use super::types::ArchiveRow;

/// The format version new logs are written in.
pub const LOG_VERSION: u32 = 2;

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

/// Appends one row to `out` as a frame of the current format.
pub fn encode_row(out: &mut Vec<u8>, row: &ArchiveRow) -> Result<(), ArchiveError> {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    put_str(out, &row.device)?;
    put_str(out, &row.device_type)?;
    put_str(out, &row.topic)?;
    out.extend_from_slice(&row.received_at_ms.to_le_bytes());
    match row.device_time_ms {
        Some(t) => {
            out.push(1);
            out.extend_from_slice(&t.to_le_bytes());
        }
        None => out.push(0),
    }
    put_len(out, row.metrics.len())?;
    for (name, value) in &row.metrics {
        put_str(out, name)?;
        out.extend_from_slice(&value.to_le_bytes());
    }
    put_str(out, &row.payload)?;
    let body = &out[start + 8..];
    let len = u32::try_from(body.len())
        .map_err(|_| ArchiveError::InvalidRow("row larger than 4 GiB".into()))?;
    let crc = crc32fast::hash(body);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

fn put_len(out: &mut Vec<u8>, n: usize) -> Result<(), ArchiveError> {
    let n =
        u32::try_from(n).map_err(|_| ArchiveError::InvalidRow("field longer than 4 GiB".into()))?;
    out.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), ArchiveError> {
    put_len(out, s.len())?;
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Reads a row frame's body; `None` if it does not hold exactly one row.
fn decode_row(body: &[u8]) -> Option<ArchiveRow> {
    let mut r = Reader(body);
    let device = r.str()?;
    let device_type = r.str()?;
    let topic = r.str()?;
    let received_at_ms = r.i64()?;
    let device_time_ms = match r.take(1)?[0] {
        0 => None,
        1 => Some(r.i64()?),
        _ => return None,
    };
    let n = r.len()?;
    let mut metrics = Vec::with_capacity(n.min(body.len() / 12));
    for _ in 0..n {
        let name = r.str()?;
        let value = f64::from_le_bytes(r.take(8)?.try_into().ok()?);
        metrics.push((name, value));
    }
    let payload = r.str()?;
    r.0.is_empty().then_some(ArchiveRow {
        device,
        device_type,
        topic,
        received_at_ms,
        device_time_ms,
        metrics,
        payload,
    })
}

/// A cursor over a frame body.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn len(&mut self) -> Option<usize> {
        let b = self.take(4)?;
        usize::try_from(u32::from_le_bytes(b.try_into().ok()?)).ok()
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn str(&mut self) -> Option<String> {
        let n = self.len()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
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

/// Streams a row log's rows to `on_row`, ignoring a torn last row.
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
    let n = reader
        .read_until(b'\n', &mut line)
        .map_err(io_err("read row log", path))?;
    if n == 0 || line.last() != Some(&b'\n') {
        return Ok(out); // the header never fully reached the file
    }
    let Ok(header) = serde_json::from_slice::<LogHeader>(&line) else {
        return Ok(out);
    };
    let version = header.version;
    out.header = Some(header);
    match version {
        1 => read_json_lines(path, reader, &mut out, &mut on_row)?,
        2 => read_frames(path, reader, &mut out, &mut on_row)?,
        v => {
            return Err(ArchiveError::RowLog {
                path: path.to_path_buf(),
                reason: format!("unknown row log version {v} (this build reads 1 and 2)"),
            })
        }
    }
    Ok(out)
}

/// Version 1: a JSON row per line.
fn read_json_lines(
    path: &Path,
    mut reader: BufReader<File>,
    out: &mut LogSummary,
    on_row: &mut impl FnMut(ArchiveRow) -> Result<(), ArchiveError>,
) -> Result<(), ArchiveError> {
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(io_err("read row log", path))?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok(()); // end, or a torn final append
        }
        match serde_json::from_slice::<ArchiveRow>(&line) {
            Ok(row) => {
                out.rows += 1;
                on_row(row)?;
            }
            Err(_) => out.bad_lines += 1,
        }
    }
}

/// Version 2: binary frames.
fn read_frames(
    path: &Path,
    mut reader: BufReader<File>,
    out: &mut LogSummary,
    on_row: &mut impl FnMut(ArchiveRow) -> Result<(), ArchiveError>,
) -> Result<(), ArchiveError> {
    let mut head = [0u8; 8];
    let mut body = Vec::new();
    loop {
        if !read_full(&mut reader, &mut head).map_err(io_err("read row log", path))? {
            return Ok(()); // end, or a torn final append
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        body.resize(len, 0);
        if !read_full(&mut reader, &mut body).map_err(io_err("read row log", path))? {
            return Ok(());
        }
        match decode_row(&body).filter(|_| crc32fast::hash(&body) == crc) {
            Some(row) => {
                out.rows += 1;
                on_row(row)?;
            }
            None => out.bad_lines += 1,
        }
    }
}

/// Fills `buf`; `false` if the file ends first (nothing or part of it read).
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
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

    /// A new log at `path` in the current format.
    fn new_log(path: &Path) -> (RowLog, LogHeader) {
        let header = LogHeader {
            version: LOG_VERSION,
            key: "k".into(),
        };
        (RowLog::create(path.to_path_buf(), &header).unwrap(), header)
    }

    /// Everything `read_log` finds at `path`.
    fn read_all(path: &Path) -> (LogSummary, Vec<ArchiveRow>) {
        let mut rows = Vec::new();
        let got = read_log(path, |r| {
            rows.push(r);
            Ok(())
        })
        .unwrap();
        (got, rows)
    }

    #[test]
    fn round_trip_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.rowlog");
        let (mut log, header) = new_log(&path);
        let mut buf = Vec::new();
        encode_row(&mut buf, &row(1)).unwrap();
        encode_row(&mut buf, &row(2)).unwrap();
        log.append(&buf).unwrap();
        assert_eq!(log.bytes(), buf.len() as u64);
        // A torn append: half a frame.
        let mut torn = Vec::new();
        encode_row(&mut torn, &row(3)).unwrap();
        log.append(&torn[..torn.len() / 2]).unwrap();
        drop(log);
        let (got, rows) = read_all(&path);
        assert_eq!(got.header, Some(header));
        assert_eq!((got.rows, got.bad_lines), (2, 0));
        assert_eq!(rows, vec![row(1), row(2)]);
    }

    #[test]
    fn a_corrupt_row_is_counted_and_the_rest_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.rowlog");
        let (mut log, _) = new_log(&path);
        let mut buf = Vec::new();
        for i in 1..=3 {
            encode_row(&mut buf, &row(i)).unwrap();
        }
        // Flip a byte inside the second row's body (its device type's length).
        let first = 8 + u32::from_le_bytes(buf[0..4].try_into().unwrap()) as usize;
        let at = first + 8 + 12;
        buf[at] ^= 0x55;
        log.append(&buf).unwrap();
        drop(log);
        let (got, rows) = read_all(&path);
        assert_eq!((got.rows, got.bad_lines), (2, 1));
        assert_eq!(rows, vec![row(1), row(3)]);
    }

    #[test]
    fn version_1_json_lines_are_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.rowlog");
        let mut text = String::from("{\"version\":1,\"key\":\"k\"}\n");
        for i in 1..=2 {
            text.push_str(&serde_json::to_string(&row(i)).unwrap());
            text.push('\n');
        }
        text.push_str("{\"device\":\"torn");
        std::fs::write(&path, text).unwrap();
        let (got, rows) = read_all(&path);
        assert_eq!(got.header.map(|h| h.version), Some(1));
        assert_eq!((got.rows, got.bad_lines), (2, 0));
        assert_eq!(rows, vec![row(1), row(2)]);
    }

    #[test]
    fn an_unknown_version_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v9.rowlog");
        std::fs::write(&path, "{\"version\":9,\"key\":\"k\"}\n").unwrap();
        let err = read_log(&path, |_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("version 9"), "{err}");
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
