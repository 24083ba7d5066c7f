//! One Parquet file being written: streamed into a hidden temp file beside
//! its final name, then fsynced and atomically renamed into place, so a
//! reader or uploader never sees it half-written.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use super::columns::schema;
use super::error::{io_err, ArchiveError};
use super::partition::temp_name;
use super::types::ArchiveCompression;

/// Rows per row group (bounds the writer's memory per open file).
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Writer settings of every archive file: the compression, dictionary
/// encoding for the low-cardinality string columns (not the raw payload).
pub fn writer_properties(c: ArchiveCompression) -> Result<WriterProperties, ArchiveError> {
    let compression = match c {
        ArchiveCompression::Snappy => Compression::SNAPPY,
        ArchiveCompression::Zstd(level) => Compression::ZSTD(
            ZstdLevel::try_new(level)
                .map_err(|e| ArchiveError::InvalidCompression(e.to_string()))?,
        ),
    };
    Ok(WriterProperties::builder()
        .set_compression(compression)
        .set_dictionary_enabled(true)
        .set_column_dictionary_enabled(ColumnPath::from("payload"), false)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(format!("weir-storage {}", env!("CARGO_PKG_VERSION")))
        .build())
}

/// fsyncs a directory, making renames and removals in it durable.
pub fn fsync_dir(dir: &Path) -> Result<(), ArchiveError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", dir))
}

/// A Parquet file in progress under its temp name.
pub struct PartFile {
    temp: PathBuf,
    target: PathBuf,
    writer: ArrowWriter<File>,
}

impl PartFile {
    /// Starts `root/key` (as `root/<dir of key>/.<name>.tmp`) with the schema
    /// for `metrics`. An existing temp file of the same name is replaced.
    pub fn create(
        root: &Path,
        key: &str,
        metrics: &[String],
        props: WriterProperties,
    ) -> Result<PartFile, ArchiveError> {
        let target = root.join(key);
        let (dir, name) = match (target.parent(), target.file_name()) {
            (Some(d), Some(n)) => (d.to_path_buf(), n.to_string_lossy().into_owned()),
            _ => {
                return Err(ArchiveError::InvalidRow(format!("bad archive key {key}")));
            }
        };
        let temp = dir.join(temp_name(&name));
        // An uploader may remove an empty partition directory between our
        // create_dir_all and create: try once more.
        let file = match fs::create_dir_all(&dir).and_then(|()| File::create(&temp)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::create_dir_all(&dir)
                .and_then(|()| File::create(&temp))
                .map_err(io_err("create", &temp))?,
            Err(e) => return Err(io_err("create", &temp)(e)),
        };
        let writer = ArrowWriter::try_new(file, schema(metrics), Some(props))?;
        Ok(PartFile {
            temp,
            target,
            writer,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ArchiveError> {
        self.writer.write(batch)?;
        Ok(())
    }

    /// Bytes already in the file (finished row groups).
    pub fn bytes_written(&self) -> u64 {
        self.writer.bytes_written() as u64
    }

    /// Writes the footer, fsyncs, renames into place and fsyncs the
    /// directory. Returns (final path, size in bytes).
    pub fn finish(mut self) -> Result<(PathBuf, u64), ArchiveError> {
        self.writer.finish()?;
        let bytes = self.writer.bytes_written() as u64;
        self.writer
            .inner()
            .sync_all()
            .map_err(io_err("sync", &self.temp))?;
        drop(self.writer);
        fs::rename(&self.temp, &self.target).map_err(io_err("rename", &self.temp))?;
        if let Some(dir) = self.target.parent() {
            fsync_dir(dir)?;
        }
        Ok((self.target, bytes))
    }
}
