//! The disk spool: an append-only log of records in segment files, read in
//! order, with a cursor recording how far delivery has been acknowledged.
//!
//! Files in the outbox directory:
//!
//! - `seg-<20-digit id>.spool`: segments, read in id order. A segment is
//!   written until it holds [`SEGMENT_BYTES`], then the next id is started.
//!   Records are framed as described in [`crate::record`]; writes go
//!   through a buffer and are flushed to the OS once per push call (no
//!   `fsync`: a process crash loses nothing flushed, a power loss may).
//! - `cursor.json`: `{"segment":…,"offset":…}`, the first unacknowledged
//!   record, replaced atomically (write `cursor.json.tmp`, rename) after
//!   every acknowledged batch that came from the spool. Segments wholly
//!   before the cursor are deleted.
//!
//! On open, every segment from the cursor on is scanned: records are
//! counted and checked, and a torn or corrupt record (a crash mid-write)
//! truncates its file at that point, with a warning and the discarded bytes
//! counted in [`Spool::corrupt_bytes`].
//!
//! Putting items back *in front* of the spool (what was in memory or in
//! flight at shutdown, which is older than everything spooled) writes a
//! new segment with an id below every existing one holding those items
//! followed by the unread rest of the segment being read, moves the cursor
//! to it, and deletes the segments it supersedes.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::record::{self, EncodeError, Read1, Record, MAGIC, MAGIC_LEN, MAX_PAYLOAD};
use crate::OutboxError;

/// Size at which a segment is closed and the next one started.
pub(crate) const SEGMENT_BYTES: u64 = 8 << 20;
/// Id of the first segment of a fresh spool; ids below it are for segments
/// put in front (see [`Spool::persist_front`]).
const FIRST_SEGMENT: u64 = 1_000_000_000;
const CURSOR: &str = "cursor.json";
const CURSOR_TMP: &str = "cursor.json.tmp";

/// A record boundary in the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// What the spool knows about one segment file.
#[derive(Debug, Clone, Copy)]
struct Segment {
    /// First offset not yet consumed when the spool was opened (or the magic length).
    start: u64,
    /// Bytes of valid, flushed records (plus the magic).
    len: u64,
    /// Records in `start..len`.
    items: u64,
}

#[derive(Debug)]
struct Writer {
    id: u64,
    file: BufWriter<File>,
    /// Length including bytes not yet published.
    len: u64,
    unflushed_items: u64,
    unflushed_bytes: u64,
    unflushed_ts: Option<u64>,
}

/// Records taken from the spool for one batch.
#[derive(Debug, Default)]
pub(crate) struct ReadBatch {
    pub records: Vec<Record>,
    /// Bytes of `records` on disk.
    pub bytes: u64,
    /// The position after the last record taken: commit it once the batch is acknowledged.
    pub end: Option<Position>,
    /// Records skipped as corrupt while reading (already removed from the counts).
    pub lost: u64,
    /// What went wrong, if anything did.
    pub problem: Option<String>,
}

/// The spool of one outbox. Not thread-safe; the outbox keeps it under its lock.
#[derive(Debug)]
pub(crate) struct Spool {
    name: String,
    dir: PathBuf,
    segment_bytes: u64,
    segments: BTreeMap<u64, Segment>,
    writer: Option<Writer>,
    /// Never append to this segment again (a write to it failed).
    sealed: Option<u64>,
    /// First unacknowledged record (what `cursor.json` says).
    committed: Position,
    read: Position,
    read_in_segment: u64,
    reader: Option<BufReader<File>>,
    unread_items: u64,
    unread_bytes: u64,
    unacked_items: u64,
    unacked_bytes: u64,
    head_ts: Option<u64>,
    corrupt_bytes: u64,
    scratch: Vec<u8>,
    ends: Vec<usize>,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, recovering from a crash.
    /// Returns the spool and a description of any damage found.
    pub(crate) fn open(
        name: &str,
        dir: &Path,
        segment_bytes: u64,
    ) -> Result<(Spool, Option<String>), OutboxError> {
        let mut spool = Spool {
            name: name.to_owned(),
            dir: dir.to_owned(),
            segment_bytes: segment_bytes.max(MAGIC_LEN + 1),
            segments: BTreeMap::new(),
            writer: None,
            sealed: None,
            committed: Position {
                segment: FIRST_SEGMENT,
                offset: MAGIC_LEN,
            },
            read: Position {
                segment: FIRST_SEGMENT,
                offset: MAGIC_LEN,
            },
            read_in_segment: 0,
            reader: None,
            unread_items: 0,
            unread_bytes: 0,
            unacked_items: 0,
            unacked_bytes: 0,
            head_ts: None,
            corrupt_bytes: 0,
            scratch: Vec::new(),
            ends: Vec::new(),
        };
        fs::create_dir_all(dir).map_err(|e| spool.io("create directory", dir, e))?;
        let mut damage = Vec::new();

        let mut ids = Vec::new();
        let entries = fs::read_dir(dir).map_err(|e| spool.io("list directory", dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| spool.io("list directory", dir, e))?;
            if let Some(id) = entry.file_name().to_str().and_then(parse_segment_name) {
                ids.push(id);
            }
        }
        ids.sort_unstable();

        let cursor = spool.read_cursor(&mut damage);
        if let Some(c) = cursor {
            for &id in ids.iter().filter(|&&id| id < c.segment) {
                spool.remove_segment_file(id);
            }
            ids.retain(|&id| id >= c.segment);
        }
        for id in ids {
            let start = match cursor {
                Some(c) if c.segment == id => c.offset.max(MAGIC_LEN),
                _ => MAGIC_LEN,
            };
            if let Some((segment, first_ts)) = spool.scan(id, start, &mut damage)? {
                if spool.head_ts.is_none() && segment.items > 0 {
                    spool.head_ts = first_ts;
                }
                spool.segments.insert(id, segment);
            }
        }
        if let Some((&id, seg)) = spool.segments.first_key_value() {
            spool.read = Position {
                segment: id,
                offset: seg.start,
            };
            spool.committed = spool.read;
        }
        spool.recount();
        let damage = (!damage.is_empty()).then(|| damage.join("; "));
        Ok((spool, damage))
    }

    /// Records written and not yet taken by the reader.
    pub(crate) fn unread_items(&self) -> u64 {
        self.unread_items
    }

    /// Records not yet acknowledged (unread or in flight).
    pub(crate) fn unacked_items(&self) -> u64 {
        self.unacked_items
    }

    /// Bytes of records not yet acknowledged.
    pub(crate) fn unacked_bytes(&self) -> u64 {
        self.unacked_bytes
    }

    /// Push time of the oldest unread record (approximate: the last record
    /// read before it, when reading is under way).
    pub(crate) fn head_ts(&self) -> Option<u64> {
        self.head_ts
    }

    /// Bytes discarded as corrupt since the spool was opened.
    pub(crate) fn corrupt_bytes(&self) -> u64 {
        self.corrupt_bytes
    }

    /// Appends `items` behind everything spooled and flushes them to the OS.
    /// All-or-nothing for serialization; on an I/O error the records
    /// published before it stay (the error's `accepted` counts them).
    pub(crate) fn append<T: Serialize>(
        &mut self,
        items: &[T],
        ts_ms: u64,
    ) -> Result<(), OutboxError> {
        let mut frames = std::mem::take(&mut self.scratch);
        let mut ends = std::mem::take(&mut self.ends);
        frames.clear();
        ends.clear();
        let mut result = Ok(());
        for item in items {
            if let Err(e) = record::encode_item(&mut frames, ts_ms, item) {
                result = Err(match e {
                    EncodeError::Serialize(source) => OutboxError::Serialize {
                        name: self.name.clone(),
                        accepted: 0,
                        source,
                    },
                    EncodeError::TooLarge(size) => OutboxError::TooLarge {
                        name: self.name.clone(),
                        size,
                        limit: MAX_PAYLOAD,
                        accepted: 0,
                    },
                });
                break;
            }
            ends.push(frames.len());
        }
        if result.is_ok() {
            result = self.write_frames(&frames, &ends, ts_ms);
        }
        self.scratch = frames;
        self.ends = ends;
        result
    }

    /// Writes framed records (`ends` marks where each ends) and publishes them.
    fn write_frames(
        &mut self,
        frames: &[u8],
        ends: &[usize],
        ts_ms: u64,
    ) -> Result<(), OutboxError> {
        let unread_before = self.unread_items;
        let mut start = 0;
        for &end in ends {
            let rec = &frames[start..end];
            start = end;
            let written = self
                .ensure_writer()
                .and_then(|()| match self.writer.as_mut() {
                    Some(w) => w.file.write_all(rec).map(|()| w),
                    None => Err(io::Error::other("no spool writer")),
                });
            match written {
                Ok(w) => {
                    w.len += rec.len() as u64;
                    w.unflushed_bytes += rec.len() as u64;
                    w.unflushed_items += 1;
                    w.unflushed_ts.get_or_insert(ts_ms);
                }
                Err(e) => return Err(self.writer_failed(e, unread_before)),
            }
        }
        if let Err(e) = self.flush_writer() {
            return Err(self.writer_failed(e, unread_before));
        }
        Ok(())
    }

    /// Drops the writer after a failed write without writing its buffer,
    /// cuts the file back to what was published, and never appends to it again.
    fn writer_failed(&mut self, e: io::Error, unread_before: u64) -> OutboxError {
        let accepted =
            usize::try_from(self.unread_items.saturating_sub(unread_before)).unwrap_or(usize::MAX);
        let mut path = self.dir.clone();
        if let Some(w) = self.writer.take() {
            path = self.segment_path(w.id);
            let (file, _unwritten) = w.file.into_parts();
            if let Some(seg) = self.segments.get(&w.id) {
                if let Err(e) = file.set_len(seg.len) {
                    tracing::warn!(outbox = %self.name, path = %path.display(), error = %e,
                        "could not cut a failed spool segment back; it will be truncated on the next start");
                }
            }
            self.sealed = Some(w.id);
        }
        self.io("append to spool", &path, e).with_accepted(accepted)
    }

    /// Makes sure there is a writer with room, rolling to a new segment if needed.
    fn ensure_writer(&mut self) -> io::Result<()> {
        if let Some(w) = &self.writer {
            if w.len < self.segment_bytes {
                return Ok(());
            }
            self.flush_writer()?;
            self.writer = None;
        }
        if let Some((&id, seg)) = self.segments.last_key_value() {
            if seg.len < self.segment_bytes && self.sealed != Some(id) {
                let file = OpenOptions::new()
                    .append(true)
                    .open(self.segment_path(id))?;
                self.writer = Some(Writer {
                    id,
                    file: BufWriter::with_capacity(64 << 10, file),
                    len: seg.len,
                    unflushed_items: 0,
                    unflushed_bytes: 0,
                    unflushed_ts: None,
                });
                return Ok(());
            }
        }
        let id = self
            .segments
            .last_key_value()
            .map_or(FIRST_SEGMENT, |(&id, _)| id + 1);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.segment_path(id))?;
        file.write_all(MAGIC)?;
        self.segments.insert(
            id,
            Segment {
                start: MAGIC_LEN,
                len: MAGIC_LEN,
                items: 0,
            },
        );
        self.writer = Some(Writer {
            id,
            file: BufWriter::with_capacity(64 << 10, file),
            len: MAGIC_LEN,
            unflushed_items: 0,
            unflushed_bytes: 0,
            unflushed_ts: None,
        });
        Ok(())
    }

    /// Flushes the writer's buffer to the OS and makes its records readable.
    fn flush_writer(&mut self) -> io::Result<()> {
        let Some(w) = self.writer.as_mut() else {
            return Ok(());
        };
        w.file.flush()?;
        if let Some(seg) = self.segments.get_mut(&w.id) {
            seg.len += w.unflushed_bytes;
            seg.items += w.unflushed_items;
        }
        if self.unread_items == 0 {
            self.head_ts = w.unflushed_ts;
        }
        self.unread_items += w.unflushed_items;
        self.unread_bytes += w.unflushed_bytes;
        self.unacked_items += w.unflushed_items;
        self.unacked_bytes += w.unflushed_bytes;
        w.unflushed_items = 0;
        w.unflushed_bytes = 0;
        w.unflushed_ts = None;
        Ok(())
    }

    /// Flushes pending writes and closes the writer (at shutdown).
    pub(crate) fn close_writer(&mut self) -> Result<(), OutboxError> {
        let result = self.flush_writer();
        let id = self.writer.as_ref().map(|w| w.id);
        if let Err(e) = result {
            let path = id.map_or_else(|| self.dir.clone(), |id| self.segment_path(id));
            return Err(self.io("flush spool", &path, e));
        }
        self.writer = None;
        Ok(())
    }

    /// Takes up to `max` records in order.
    pub(crate) fn read_batch(&mut self, max: usize) -> Result<ReadBatch, OutboxError> {
        let mut out = ReadBatch::default();
        out.records
            .reserve(max.min(usize::try_from(self.unread_items).unwrap_or(usize::MAX)));
        while out.records.len() < max && self.unread_items > 0 {
            let Some((&id, &seg)) = self.segments.range(self.read.segment..).next() else {
                break;
            };
            if id != self.read.segment {
                self.move_to(id, seg.start);
            }
            if self.read.offset >= seg.len {
                match self.segments.range(id + 1..).next() {
                    Some((&next, s)) => {
                        let start = s.start;
                        self.move_to(next, start);
                        continue;
                    }
                    None => break,
                }
            }
            if self.reader.is_none() {
                let path = self.segment_path(id);
                let opened = File::open(&path).and_then(|mut f| {
                    f.seek(SeekFrom::Start(self.read.offset))?;
                    Ok(BufReader::with_capacity(64 << 10, f))
                });
                match opened {
                    Ok(r) => self.reader = Some(r),
                    Err(e) => return self.read_failed(out, &path, e),
                }
            }
            let remaining = seg.len - self.read.offset;
            let got = match self.reader.as_mut() {
                Some(r) => record::read_record(r, remaining),
                None => continue,
            };
            match got {
                Ok(Read1::Record(rec)) => {
                    let frame = rec.frame_len();
                    self.read.offset += frame;
                    self.read_in_segment += 1;
                    self.unread_items = self.unread_items.saturating_sub(1);
                    self.unread_bytes = self.unread_bytes.saturating_sub(frame);
                    out.bytes += frame;
                    out.records.push(rec);
                }
                Ok(Read1::End) => break,
                Ok(Read1::Torn(why)) => {
                    // Written by us and checked on open, so this is damage
                    // on disk since: skip the rest of the segment.
                    let path = self.segment_path(id);
                    let lost = seg.items.saturating_sub(self.read_in_segment);
                    let lost_bytes = seg.len - self.read.offset;
                    tracing::error!(outbox = %self.name, path = %path.display(), offset = self.read.offset,
                        lost, lost_bytes, reason = %why, "corrupt spool record; skipping the rest of the segment");
                    out.problem = Some(format!(
                        "corrupt spool record in {} at offset {}: {why}; {lost} records ({lost_bytes} bytes) skipped",
                        path.display(),
                        self.read.offset
                    ));
                    self.corrupt_bytes += lost_bytes;
                    self.unread_items = self.unread_items.saturating_sub(lost);
                    self.unread_bytes = self.unread_bytes.saturating_sub(lost_bytes);
                    self.unacked_items = self.unacked_items.saturating_sub(lost);
                    self.unacked_bytes = self.unacked_bytes.saturating_sub(lost_bytes);
                    self.read.offset = seg.len;
                    self.read_in_segment = seg.items;
                    self.reader = None;
                    out.lost += lost;
                }
                Err(e) => {
                    let path = self.segment_path(id);
                    return self.read_failed(out, &path, e);
                }
            }
        }
        // Step onto the next segment right away so the committed cursor
        // lets the finished one be deleted.
        if let Some(seg) = self.segments.get(&self.read.segment) {
            if self.read.offset >= seg.len {
                if let Some((&next, s)) = self.segments.range(self.read.segment + 1..).next() {
                    let start = s.start;
                    self.move_to(next, start);
                }
            }
        }
        if !out.records.is_empty() || out.lost > 0 {
            out.end = Some(self.read);
        }
        self.head_ts = match out.records.last() {
            _ if self.unread_items == 0 => None,
            Some(last) => Some(last.ts_ms),
            None => self.head_ts,
        };
        Ok(out)
    }

    fn read_failed(
        &mut self,
        out: ReadBatch,
        path: &Path,
        e: io::Error,
    ) -> Result<ReadBatch, OutboxError> {
        // Reopen and re-read from the last good position next time.
        self.reader = None;
        if out.records.is_empty() {
            Err(self.io("read spool", path, e))
        } else {
            let mut out = out;
            out.end = Some(self.read);
            out.problem = Some(format!("read spool {}: {e}", path.display()));
            Ok(out)
        }
    }

    fn move_to(&mut self, segment: u64, offset: u64) {
        self.read = Position { segment, offset };
        self.read_in_segment = 0;
        self.reader = None;
    }

    /// Acknowledges everything before `end` (`items` records, `bytes`
    /// bytes taken since the last commit): writes the cursor and deletes
    /// segments wholly before it.
    pub(crate) fn commit(
        &mut self,
        end: Position,
        items: u64,
        bytes: u64,
    ) -> Result<(), OutboxError> {
        self.unacked_items = self.unacked_items.saturating_sub(items);
        self.unacked_bytes = self.unacked_bytes.saturating_sub(bytes);
        self.write_cursor(end)?;
        self.committed = end;
        let done: Vec<u64> = self
            .segments
            .range(..end.segment)
            .map(|(&id, _)| id)
            .collect();
        for id in done {
            self.segments.remove(&id);
            self.remove_segment_file(id);
        }
        Ok(())
    }

    /// Puts `frames` (`items` records, the first pushed at `first_ts`) in
    /// front of everything unread, so they are read first next time (after
    /// a restart). Records in flight (read but not committed) are dropped
    /// from the spool: the caller includes whatever of them is still pending
    /// in `frames`.
    pub(crate) fn persist_front(
        &mut self,
        frames: &[u8],
        items: u64,
        first_ts: u64,
    ) -> Result<(), OutboxError> {
        self.close_writer()?;
        let r = self.read;
        let mut buf = Vec::with_capacity(MAGIC.len() + frames.len());
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(frames);
        let mut total = items;
        if let Some(seg) = self.segments.get(&r.segment).copied() {
            if r.offset < seg.len {
                let path = self.segment_path(r.segment);
                let mut file = File::open(&path)
                    .and_then(|mut f| f.seek(SeekFrom::Start(r.offset)).map(|_| BufReader::new(f)))
                    .map_err(|e| self.io("read spool", &path, e))?;
                let mut pos = r.offset;
                loop {
                    match record::read_record(&mut file, seg.len - pos) {
                        Ok(Read1::Record(rec)) => {
                            pos += rec.frame_len();
                            record::encode_raw(&mut buf, rec.ts_ms, &rec.payload);
                            total += 1;
                        }
                        Ok(Read1::End) => break,
                        Ok(Read1::Torn(why)) => {
                            tracing::error!(outbox = %self.name, path = %path.display(), offset = pos, reason = %why,
                                "corrupt spool record while rewriting; dropping the rest of the segment");
                            self.corrupt_bytes += seg.len - pos;
                            break;
                        }
                        Err(e) => return Err(self.io("read spool", &path, e)),
                    }
                }
            }
        }
        if total == 0 {
            return Ok(());
        }
        let first = self
            .segments
            .first_key_value()
            .map_or(FIRST_SEGMENT + 1, |(&id, _)| id);
        let Some(id) = first.checked_sub(1) else {
            return Err(self.io(
                "put items in front of spool",
                &self.dir,
                io::Error::other("no segment id left below the first"),
            ));
        };
        let path = self.segment_path(id);
        fs::write(&path, &buf).map_err(|e| self.io("write spool", &path, e))?;
        let front = Position {
            segment: id,
            offset: MAGIC_LEN,
        };
        self.write_cursor(front)?;
        let superseded: Vec<u64> = self
            .segments
            .range(..=r.segment)
            .map(|(&id, _)| id)
            .collect();
        for old in superseded {
            self.segments.remove(&old);
            self.remove_segment_file(old);
        }
        self.segments.insert(
            id,
            Segment {
                start: MAGIC_LEN,
                len: buf.len() as u64,
                items: total,
            },
        );
        self.move_to(id, MAGIC_LEN);
        self.committed = front;
        self.recount();
        self.head_ts = Some(first_ts);
        Ok(())
    }

    /// Forgets what was read but not acknowledged: the next read starts at
    /// the cursor again.
    pub(crate) fn rewind(&mut self) {
        let c = self.committed;
        self.move_to(c.segment, c.offset);
        self.unread_items = self.unacked_items;
        self.unread_bytes = self.unacked_bytes;
    }

    /// Recomputes the counters from the segment table (nothing in flight).
    fn recount(&mut self) {
        let (items, bytes) = self
            .segments
            .values()
            .fold((0, 0), |(i, b), s| (i + s.items, b + (s.len - s.start)));
        self.unread_items = items;
        self.unread_bytes = bytes;
        self.unacked_items = items;
        self.unacked_bytes = bytes;
    }

    /// Checks one segment from `start`, truncating a torn tail.
    fn scan(
        &mut self,
        id: u64,
        start: u64,
        damage: &mut Vec<String>,
    ) -> Result<Option<(Segment, Option<u64>)>, OutboxError> {
        let path = self.segment_path(id);
        let mut file = File::open(&path).map_err(|e| self.io("open spool segment", &path, e))?;
        let mut len = file
            .metadata()
            .map_err(|e| self.io("open spool segment", &path, e))?
            .len();
        let mut magic = [0u8; 8];
        if len < MAGIC_LEN {
            // Created but its header never made it to disk.
            if len > 0 {
                self.corrupt_bytes += len;
                damage.push(format!(
                    "{}: {len} bytes, no complete header; removed",
                    path.display()
                ));
                tracing::warn!(outbox = %self.name, path = %path.display(), "spool segment without a header; removed");
            }
            self.remove_segment_file(id);
            return Ok(None);
        }
        file.read_exact(&mut magic)
            .map_err(|e| self.io("read spool segment", &path, e))?;
        if &magic != MAGIC {
            let aside = path.with_extension("corrupt");
            tracing::error!(outbox = %self.name, path = %path.display(), aside = %aside.display(),
                "spool segment has an unknown header; moved aside");
            damage.push(format!(
                "{}: unknown header, moved to {}",
                path.display(),
                aside.display()
            ));
            self.corrupt_bytes += len;
            fs::rename(&path, &aside)
                .map_err(|e| self.io("move corrupt segment aside", &path, e))?;
            return Ok(None);
        }
        let start = if start > len {
            damage.push(format!(
                "{}: cursor offset {start} past the end ({len})",
                path.display()
            ));
            len
        } else {
            start
        };
        file.seek(SeekFrom::Start(start))
            .map_err(|e| self.io("read spool segment", &path, e))?;
        let mut reader = BufReader::with_capacity(64 << 10, file);
        let mut pos = start;
        let mut items = 0;
        let mut first_ts = None;
        loop {
            match record::read_record(&mut reader, len - pos) {
                Ok(Read1::Record(rec)) => {
                    pos += rec.frame_len();
                    items += 1;
                    first_ts.get_or_insert(rec.ts_ms);
                }
                Ok(Read1::End) => break,
                Ok(Read1::Torn(why)) => {
                    let cut = len - pos;
                    tracing::warn!(outbox = %self.name, path = %path.display(), offset = pos, bytes = cut, reason = %why,
                        "torn spool record (crash mid-write?); truncating");
                    damage.push(format!(
                        "{}: torn record at offset {pos} ({why}); {cut} bytes truncated",
                        path.display()
                    ));
                    self.corrupt_bytes += cut;
                    OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.set_len(pos))
                        .map_err(|e| self.io("truncate spool segment", &path, e))?;
                    len = pos;
                    break;
                }
                Err(e) => return Err(self.io("read spool segment", &path, e)),
            }
        }
        Ok(Some((Segment { start, len, items }, first_ts)))
    }

    fn read_cursor(&self, damage: &mut Vec<String>) -> Option<Position> {
        let _ = fs::remove_file(self.dir.join(CURSOR_TMP));
        let path = self.dir.join(CURSOR);
        match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Position>(&bytes) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!(outbox = %self.name, path = %path.display(), error = %e,
                        "unreadable spool cursor; replaying the whole spool");
                    damage.push(format!(
                        "{}: unreadable ({e}); whole spool replayed",
                        path.display()
                    ));
                    None
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!(outbox = %self.name, path = %path.display(), error = %e,
                    "unreadable spool cursor; replaying the whole spool");
                damage.push(format!(
                    "{}: unreadable ({e}); whole spool replayed",
                    path.display()
                ));
                None
            }
        }
    }

    fn write_cursor(&self, pos: Position) -> Result<(), OutboxError> {
        let tmp = self.dir.join(CURSOR_TMP);
        let path = self.dir.join(CURSOR);
        let json = serde_json::to_vec(&pos).map_err(io::Error::other);
        json.and_then(|j| fs::write(&tmp, j))
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|e| self.io("write spool cursor", &path, e))
    }

    fn remove_segment_file(&self, id: u64) {
        let path = self.segment_path(id);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(outbox = %self.name, path = %path.display(), error = %e,
                "could not delete a consumed spool segment"),
        }
    }

    fn segment_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("seg-{id:020}.spool"))
    }

    fn io(&self, op: &'static str, path: &Path, source: io::Error) -> OutboxError {
        OutboxError::Io {
            name: self.name.clone(),
            op,
            path: path.to_owned(),
            accepted: 0,
            source,
        }
    }
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(".spool")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("weir-spool-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn open(dir: &Path, segment_bytes: u64) -> (Spool, Option<String>) {
        Spool::open("test", dir, segment_bytes).expect("spool opens")
    }

    fn values(batch: &ReadBatch) -> Vec<u64> {
        batch
            .records
            .iter()
            .map(|r| crate::codec::decode(&r.payload).expect("u64 payload"))
            .collect()
    }

    fn segment_files(dir: &Path) -> usize {
        fs::read_dir(dir)
            .expect("list")
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .and_then(parse_segment_name)
                    .is_some()
            })
            .count()
    }

    fn frame(v: u64) -> u64 {
        let mut payload = Vec::new();
        crate::codec::encode(&mut payload, &v).expect("encode");
        (record::OVERHEAD + payload.len()) as u64
    }

    #[test]
    fn segments_roll_are_read_in_order_and_deleted_when_committed() {
        let dir = temp_dir("roll");
        let (mut s, damage) = open(&dir, 100);
        assert_eq!(damage, None);
        let items: Vec<u64> = (0..20).collect();
        s.append(&items, 5).expect("append");
        assert_eq!(s.unread_items(), 20);
        let bytes: u64 = items.iter().map(|&v| frame(v)).sum();
        assert_eq!(s.unacked_bytes(), bytes);
        // 18-byte records (tag and one-byte integer), 8-byte magic: 5
        // records per 100-byte segment.
        assert_eq!(segment_files(&dir), 4);

        let b = s.read_batch(7).expect("read");
        assert_eq!(values(&b), (0..7).collect::<Vec<_>>());
        assert_eq!(s.unread_items(), 13);
        assert_eq!(s.unacked_items(), 20);
        s.commit(b.end.expect("end"), 7, b.bytes).expect("commit");
        assert_eq!(s.unacked_items(), 13);
        assert_eq!(segment_files(&dir), 3, "first segment deleted");

        // Restart: replays exactly what was not committed.
        drop(s);
        let (mut s, damage) = open(&dir, 100);
        assert_eq!(damage, None);
        assert_eq!(s.unacked_items(), 13);
        assert_eq!(s.head_ts(), Some(5));
        let b = s.read_batch(100).expect("read");
        assert_eq!(values(&b), (7..20).collect::<Vec<_>>());
        s.commit(b.end.expect("end"), 13, b.bytes).expect("commit");
        assert_eq!(s.unacked_bytes(), 0);
        assert_eq!(
            segment_files(&dir),
            1,
            "only the segment being written is kept"
        );
        // Appends continue behind, in a new or the last segment.
        s.append(&[20u64, 21], 6).expect("append");
        assert_eq!(values(&s.read_batch(10).expect("read")), vec![20, 21]);
        let _ = fs::remove_dir_all(&dir);
    }

    /// A spool left by a Weir that wrote JSON payloads is read as before,
    /// also after records of the new format are put in front of it.
    #[test]
    fn json_records_of_an_older_weir_are_still_read() {
        let dir = temp_dir("json");
        fs::create_dir_all(&dir).expect("dir");
        let mut segment = MAGIC.to_vec();
        for v in 1..=5u64 {
            record::encode_raw(&mut segment, 1, v.to_string().as_bytes());
        }
        fs::write(dir.join(format!("seg-{FIRST_SEGMENT:020}.spool")), &segment).expect("write");
        let (mut s, damage) = open(&dir, 1 << 20);
        assert_eq!((damage, s.unacked_items()), (None, 5));
        let b = s.read_batch(2).expect("read");
        assert_eq!(values(&b), vec![1, 2]);
        let mut frames = Vec::new();
        record::encode_item(&mut frames, 1, &2u64).expect("encode");
        s.persist_front(&frames, 1, 1).expect("persist");
        s.append(&[6u64], 1).expect("append");
        assert_eq!(
            values(&s.read_batch(10).expect("read")),
            vec![2, 3, 4, 5, 6]
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn persist_front_goes_before_unread_and_drops_in_flight() {
        let dir = temp_dir("front");
        let (mut s, _) = open(&dir, 100);
        s.append(&(1..=20u64).collect::<Vec<_>>(), 1)
            .expect("append");
        let b = s.read_batch(8).expect("read");
        assert_eq!(values(&b), (1..=8).collect::<Vec<_>>());
        // 1..=8 in flight; 7 and 8 still pending, plus memory items 100, 101.
        let mut frames = Vec::new();
        for v in [7u64, 8, 100, 101] {
            record::encode_item(&mut frames, 1, &v).expect("encode");
        }
        s.persist_front(&frames, 4, 1).expect("persist");
        let expected: Vec<u64> = [7, 8, 100, 101].into_iter().chain(9..=20).collect();
        assert_eq!(s.unacked_items(), expected.len() as u64);
        drop(s);

        let (mut s, damage) = open(&dir, 100);
        assert_eq!(damage, None);
        assert_eq!(s.unacked_items(), expected.len() as u64);
        let b = s.read_batch(100).expect("read");
        assert_eq!(values(&b), expected);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn torn_tail_is_truncated_on_open() {
        let dir = temp_dir("torn");
        let (mut s, _) = open(&dir, SEGMENT_BYTES);
        s.append(&[1000u64, 2000, 3000], 1).expect("append");
        drop(s);
        let path = dir.join(format!("seg-{FIRST_SEGMENT:020}.spool"));
        let len = fs::metadata(&path).expect("segment").len();
        let f = OpenOptions::new().write(true).open(&path).expect("open");
        f.set_len(len - 3).expect("truncate");
        drop(f);

        let (mut s, damage) = open(&dir, SEGMENT_BYTES);
        let damage = damage.expect("damage reported");
        assert!(damage.contains("torn record"), "{damage}");
        assert_eq!(s.corrupt_bytes(), frame(3000) - 3);
        assert_eq!(s.unacked_items(), 2);
        assert_eq!(
            fs::metadata(&path).expect("segment").len(),
            len - frame(3000)
        );
        assert_eq!(values(&s.read_batch(10).expect("read")), vec![1000, 2000]);
        // Appending after the repair lines up with the record boundary.
        s.append(&[4000u64], 1).expect("append");
        assert_eq!(values(&s.read_batch(10).expect("read")), vec![4000]);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn rewind_rereads_in_flight() {
        let dir = temp_dir("rewind");
        let (mut s, _) = open(&dir, 100);
        s.append(&(0..10u64).collect::<Vec<_>>(), 1)
            .expect("append");
        let b = s.read_batch(4).expect("read");
        s.commit(b.end.expect("end"), 4, b.bytes).expect("commit");
        assert_eq!(values(&s.read_batch(3).expect("read")), vec![4, 5, 6]);
        s.rewind();
        assert_eq!(s.unread_items(), 6);
        assert_eq!(
            values(&s.read_batch(100).expect("read")),
            (4..10).collect::<Vec<_>>()
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
