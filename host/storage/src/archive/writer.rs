//! `ArchiveWriter`: routes rows to one open file per partition, logs them
//! for crash safety, rolls files by size and age, and on open finishes the
//! files a previous process left open.
//!
//! Life of a file: a row log `.part-<ms>-<id>.rowlog` is created in the
//! staging directory; each append writes the rows to the log (one `write`),
//! then to a columnar buffer that is streamed into a hidden temp Parquet file
//! every few thousand rows. The schema is fixed when that temp file starts;
//! a later row with a metric the schema lacks rolls the file. Closing writes
//! the footer, fsyncs, renames to `root/key`, then deletes the log. A crash
//! at any point leaves the log, and `open` rebuilds `root/key` from it: the
//! same key, so even a crash after the rename yields no second copy.

use crate::FastMap;
use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use parquet::file::properties::WriterProperties;

use super::columns::{metric_column, ColumnBuffer};
use super::error::{io_err, ArchiveError};
use super::part_file::{fsync_dir, writer_properties, PartFile};
use super::partition::{part_name, partitions_of};
use super::rowlog::{encode_row, read_log, LogHeader, RowLog, LOG_EXTENSION, LOG_VERSION};
use super::types::{
    ArchiveCompression, ArchiveOutput, ArchiveRow, ArchiveStats, ClosedFile, RollPolicy,
};

/// Rows buffered before they are encoded into the temp Parquet file.
const BATCH_ROWS: usize = 8192;
/// Most metric columns a file takes before a row with more rolls it.
pub const MAX_METRIC_COLUMNS: usize = 1000;
/// Guess of Parquet bytes per row-log byte until a file has been finished
/// (telemetry rows measure 0.05–0.12; starting high makes the first file
/// smaller rather than larger than `max_bytes`).
const INITIAL_RATIO: f64 = 0.15;
const LOCK_FILE: &str = ".lock";

/// One open file of a partition.
struct OpenFile {
    key: String,
    created: SystemTime,
    log: RowLog,
    columns: ColumnBuffer,
    /// Started once the first batch is encoded (fixes the schema).
    part: Option<PartFile>,
    rows: u64,
}

impl OpenFile {
    /// Expected Parquet size: the row log's size scaled by the observed
    /// Parquet/log ratio, but never less than what is already on disk. (The
    /// encoder's own in-progress estimate counts uncompressed pages and runs
    /// several times high, so it is not used.)
    fn size_estimate(&self, ratio: f64) -> u64 {
        let flushed = self.part.as_ref().map_or(0, PartFile::bytes_written);
        flushed.max((self.log.bytes() as f64 * ratio) as u64)
    }

    /// Whether `row` cannot join this file without changing a fixed schema
    /// (or exceeding the column cap).
    fn must_roll_for(&self, row: &ArchiveRow, staged: usize) -> bool {
        if self.part.is_some() {
            return self.columns.has_new_metric(row);
        }
        let new = self.columns.new_metric_count(row);
        (self.rows > 0 || staged > 0)
            && new > 0
            && self.columns.metrics().len() + new > MAX_METRIC_COLUMNS
    }

    /// Encodes the buffered rows into the temp Parquet file.
    fn encode(&mut self, root: &Path, props: &WriterProperties) -> Result<(), ArchiveError> {
        if self.part.is_none() {
            self.part = Some(PartFile::create(
                root,
                &self.key,
                self.columns.metrics(),
                props.clone(),
            )?);
        }
        if !self.columns.is_empty() {
            let batch = self.columns.take_batch()?;
            if let Some(part) = &mut self.part {
                part.write(&batch)?;
            }
        }
        Ok(())
    }
}

/// Writes archive rows into partitioned Parquet files. Not thread-safe:
/// own it from one thread (or behind a mutex).
pub struct ArchiveWriter {
    staging: PathBuf,
    output: ArchiveOutput,
    policy: RollPolicy,
    props: WriterProperties,
    open: FastMap<String, OpenFile>,
    /// Parquet bytes per row-log byte over the files finished so far: the
    /// size estimate of an open file is its log size times this.
    ratio: f64,
    ratio_bytes: u64,
    log_bytes_closed: u64,
    stats: ArchiveStats,
    recovered: Vec<ClosedFile>,
    /// Finished since the last `roll_due`/`close_all`.
    closed: Vec<ClosedFile>,
    _lock: File,
}

fn ms_since_epoch(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl ArchiveWriter {
    /// Opens with the default compression (zstd level 3).
    pub fn open(
        staging_dir: &Path,
        output: ArchiveOutput,
        policy: RollPolicy,
    ) -> Result<ArchiveWriter, ArchiveError> {
        Self::open_with(staging_dir, output, policy, ArchiveCompression::default())
    }

    /// Opens the writer, first turning every row log left in `staging_dir`
    /// by an earlier process into its finished Parquet file (see
    /// [`take_recovered`](Self::take_recovered)).
    pub fn open_with(
        staging_dir: &Path,
        output: ArchiveOutput,
        policy: RollPolicy,
        compression: ArchiveCompression,
    ) -> Result<ArchiveWriter, ArchiveError> {
        fs::create_dir_all(staging_dir).map_err(io_err("create", staging_dir))?;
        fs::create_dir_all(output.root()).map_err(io_err("create", output.root()))?;
        let lock_path = staging_dir.join(LOCK_FILE);
        let lock = File::create(&lock_path).map_err(io_err("create", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(ArchiveError::Locked(staging_dir.to_path_buf()))
            }
            Err(TryLockError::Error(e)) => return Err(io_err("lock", &lock_path)(e)),
        }
        let mut w = ArchiveWriter {
            staging: staging_dir.to_path_buf(),
            output,
            policy,
            props: writer_properties(compression)?,
            open: FastMap::default(),
            ratio: INITIAL_RATIO,
            ratio_bytes: 0,
            log_bytes_closed: 0,
            stats: ArchiveStats::default(),
            recovered: Vec::new(),
            closed: Vec::new(),
            _lock: lock,
        };
        w.recover()?;
        Ok(w)
    }

    /// Files finished at `open` from an earlier process's row logs (drained).
    pub fn take_recovered(&mut self) -> Vec<ClosedFile> {
        std::mem::take(&mut self.recovered)
    }

    /// Appends rows. When this returns they are in the staging row logs,
    /// handed to the OS (they survive a crash of this process; call
    /// [`sync`](Self::sync) to also survive power loss). Files that reach
    /// `max_bytes` are finished before this returns and reported by the next
    /// [`roll_due`](Self::roll_due) or [`close_all`](Self::close_all).
    ///
    /// Rows are validated first: a row whose `received_at_ms` cannot name a
    /// date fails the whole call before anything is written. An I/O error
    /// later in the call may leave some partitions' rows logged (and so
    /// archived) and others not: retrying the call is at-least-once. A file
    /// whose finishing fails keeps its row log and is finished by the next
    /// `open`.
    pub fn append(&mut self, rows: &[ArchiveRow]) -> Result<(), ArchiveError> {
        let (names, of_row) = partitions_of(rows)?;
        // Rows waiting to be committed, per partition (index into `names`).
        let mut staged: Vec<Vec<&ArchiveRow>> = vec![Vec::new(); names.len()];
        for (row, &p) in rows.iter().zip(&of_row) {
            let partition = &names[p];
            let waiting = staged[p].len();
            let roll = match self.open.get(partition) {
                Some(file) => file.must_roll_for(row, waiting),
                None => {
                    let file = self.new_file(partition)?;
                    self.open.insert(partition.clone(), file);
                    false
                }
            };
            if roll {
                let batch = std::mem::take(&mut staged[p]);
                if !batch.is_empty() {
                    self.commit(partition, &batch)?;
                }
                self.close_partition(partition)?;
                let file = self.new_file(partition)?;
                self.open.insert(partition.clone(), file);
            }
            staged[p].push(row);
        }
        for (partition, batch) in names.iter().zip(&staged) {
            if !batch.is_empty() {
                self.commit(partition, batch)?;
            }
        }
        for partition in &names {
            let due = self
                .open
                .get(partition)
                .is_some_and(|f| f.size_estimate(self.ratio) >= self.policy.max_bytes);
            if due {
                self.close_partition(partition)?;
            }
        }
        Ok(())
    }

    /// fsyncs every open row log.
    pub fn sync(&mut self) -> Result<(), ArchiveError> {
        self.open.values().try_for_each(|f| f.log.sync())
    }

    /// Finishes files open for `max_age` or longer at `now`, and returns them
    /// with any finished by size since the last call.
    pub fn roll_due(&mut self, now: SystemTime) -> Result<Vec<ClosedFile>, ArchiveError> {
        let mut due: Vec<String> = self
            .open
            .iter()
            .filter(|(_, f)| {
                now.duration_since(f.created)
                    .is_ok_and(|age| age >= self.policy.max_age)
            })
            .map(|(p, _)| p.clone())
            .collect();
        due.sort();
        for partition in due {
            self.close_partition(&partition)?;
        }
        Ok(std::mem::take(&mut self.closed))
    }

    /// Finishes every open file; returns them with any finished by size
    /// since the last call.
    pub fn close_all(&mut self) -> Result<Vec<ClosedFile>, ArchiveError> {
        let mut all: Vec<String> = self.open.keys().cloned().collect();
        all.sort();
        for partition in all {
            self.close_partition(&partition)?;
        }
        Ok(std::mem::take(&mut self.closed))
    }

    pub fn stats(&self) -> ArchiveStats {
        ArchiveStats {
            open_partitions: self.open.len(),
            buffered_rows: self.open.values().map(|f| f.rows).sum(),
            buffered_bytes: self.open.values().map(|f| f.log.bytes()).sum(),
            ..self.stats
        }
    }

    /// The directory finished files are renamed into.
    pub fn output(&self) -> &ArchiveOutput {
        &self.output
    }

    fn new_file(&self, partition: &str) -> Result<OpenFile, ArchiveError> {
        let created = SystemTime::now();
        let name = part_name(ms_since_epoch(created), &uuid::Uuid::new_v4());
        let stem = name.trim_end_matches(".parquet");
        let log_path = self.staging.join(format!(".{stem}.{LOG_EXTENSION}"));
        let header = LogHeader {
            version: LOG_VERSION,
            key: format!("{partition}/{name}"),
        };
        let log = RowLog::create(log_path, &header)?;
        Ok(OpenFile {
            key: header.key,
            created,
            log,
            columns: ColumnBuffer::new(),
            part: None,
            rows: 0,
        })
    }

    /// Logs `rows` to the partition's file, then buffers them.
    fn commit(&mut self, partition: &str, rows: &[&ArchiveRow]) -> Result<(), ArchiveError> {
        let Some(file) = self.open.get_mut(partition) else {
            return Ok(());
        };
        let mut lines = Vec::with_capacity(rows.len() * 256);
        for row in rows {
            encode_row(&mut lines, row)?;
        }
        file.log.append(&lines)?;
        for row in rows {
            file.columns.push(row);
        }
        file.rows += rows.len() as u64;
        if file.columns.len() >= BATCH_ROWS {
            file.encode(self.output.root(), &self.props)?;
        }
        Ok(())
    }

    /// Finishes the partition's open file (if it has rows) and drops its log.
    fn close_partition(&mut self, partition: &str) -> Result<(), ArchiveError> {
        let Some(mut file) = self.open.remove(partition) else {
            return Ok(());
        };
        if file.rows > 0 {
            file.encode(self.output.root(), &self.props)?;
        }
        let finished = match file.part.take() {
            Some(part) => Some(part.finish()?),
            None => None,
        };
        let log_path = file.log.path().to_path_buf();
        let log_bytes = file.log.bytes();
        drop(file.log);
        fs::remove_file(&log_path).map_err(io_err("remove", &log_path))?;
        fsync_dir(&self.staging)?;
        if let Some((path, bytes)) = finished {
            self.note_written(bytes);
            self.ratio_bytes += bytes;
            self.log_bytes_closed += log_bytes;
            self.ratio = self.ratio_bytes as f64 / self.log_bytes_closed.max(1) as f64;
            self.stats.rows_written += file.rows;
            self.closed.push(ClosedFile {
                path,
                key: file.key,
                rows: file.rows,
                bytes,
            });
        }
        Ok(())
    }

    fn note_written(&mut self, bytes: u64) {
        self.stats.files_written += 1;
        self.stats.bytes_written += bytes;
    }

    /// Finishes every row log an earlier process left in the staging dir.
    fn recover(&mut self) -> Result<(), ArchiveError> {
        let entries = fs::read_dir(&self.staging).map_err(io_err("list", &self.staging))?;
        let mut logs = Vec::new();
        for entry in entries {
            let path = entry.map_err(io_err("list", &self.staging))?.path();
            if path.extension().is_some_and(|e| e == LOG_EXTENSION) {
                logs.push(path);
            }
        }
        logs.sort();
        for log in &logs {
            if let Some(done) = self.recover_log(log)? {
                self.stats.rows_written += done.rows;
                self.recovered.push(done);
            }
            fs::remove_file(log).map_err(io_err("remove", log))?;
        }
        if !logs.is_empty() {
            fsync_dir(&self.staging)?;
        }
        Ok(())
    }

    /// Rebuilds one log's Parquet file: a pass to learn the metric columns,
    /// a pass to stream the rows.
    fn recover_log(&mut self, log: &Path) -> Result<Option<ClosedFile>, ArchiveError> {
        let mut metrics: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let summary = read_log(log, |row| {
            for (m, _) in &row.metrics {
                let col = metric_column(m);
                if seen.insert(col.clone()) {
                    metrics.push(col);
                }
            }
            Ok(())
        })?;
        let Some(header) = summary.header else {
            return Ok(None);
        };
        if summary.bad_lines > 0 {
            tracing::warn!(
                log = %log.display(),
                bad_lines = summary.bad_lines,
                "row log has unreadable lines; recovering the rest"
            );
        }
        if summary.rows == 0 {
            return Ok(None);
        }
        let key_is_safe = Path::new(&header.key)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !key_is_safe || !header.key.ends_with(".parquet") {
            return Err(ArchiveError::RowLog {
                path: log.to_path_buf(),
                reason: format!("unsafe file key {:?}", header.key),
            });
        }
        let root = self.output.root().to_path_buf();
        let mut part = PartFile::create(&root, &header.key, &metrics, self.props.clone())?;
        let mut columns = ColumnBuffer::with_metrics(metrics);
        read_log(log, |row| {
            columns.push(&row);
            if columns.len() >= BATCH_ROWS {
                part.write(&columns.take_batch()?)?;
            }
            Ok(())
        })?;
        if !columns.is_empty() {
            part.write(&columns.take_batch()?)?;
        }
        let (path, bytes) = part.finish()?;
        self.note_written(bytes);
        tracing::info!(key = %header.key, rows = summary.rows, "recovered archive file from row log");
        Ok(Some(ClosedFile {
            path,
            key: header.key,
            rows: summary.rows,
            bytes,
        }))
    }
}
