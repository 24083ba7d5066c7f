//! The write-ahead log: accepted points (and the series definitions they
//! need) appended to numbered segment files in `<store>.wal/`, replayed into
//! memory on open and deleted once a checkpoint has sealed them into redb.
//!
//! A segment (`00000001.log`, `00000002.log`, …) is a sequence of frames:
//! `[payload length u32 LE][CRC-32 of payload u32 LE][payload]`. A payload
//! is a sequence of entries:
//! - `0` series definition: id (varint), last day (zigzag varint), key
//!   length (varint) and key bytes, device type length (varint) and bytes;
//! - `1` point: series id (varint), time as a zigzag varint delta from the
//!   previous point of the frame (from 0 for the first), value (f64 LE).
//!
//! One write call is one frame (a huge call is split at entry boundaries),
//! and a series is always defined in an earlier entry than its points. A
//! torn or corrupt frame ends the replay of its segment, which is then
//! truncated before it. A segment is fsynced before the next one is
//! created, so syncing the active segment makes everything before it
//! durable too.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::codec::{put_ivarint, put_uvarint, Reader};

const FRAME_HEADER: usize = 8;
/// A frame's payload is closed once it grows past this (at an entry
/// boundary), so a frame length always fits its u32 with room to spare.
const FRAME_SPLIT: usize = 4 << 20;
const TAG_SERIES: u8 = 0;
const TAG_POINT: u8 = 1;

/// One decoded WAL entry.
#[derive(Debug, PartialEq)]
pub enum Entry<'a> {
    Series {
        id: u64,
        last_day: i64,
        key: &'a [u8],
        device_type: &'a str,
    },
    Point {
        id: u64,
        time_ms: i64,
        value: f64,
    },
}

/// Builds the frames of one write call in a reusable buffer.
#[derive(Default)]
pub struct FrameBuf {
    buf: Vec<u8>,
    /// Offset of the header of the frame being filled.
    start: usize,
    prev_time: i64,
}

impl FrameBuf {
    /// Starts over with one empty frame (letting go of the memory a huge
    /// call left behind).
    pub fn clear(&mut self) {
        if self.buf.capacity() > 2 * FRAME_SPLIT {
            self.buf = Vec::new();
        }
        self.buf.clear();
        self.start = 0;
        self.buf.extend_from_slice(&[0; FRAME_HEADER]);
        self.prev_time = 0;
    }

    fn split_if_full(&mut self) {
        if self.buf.len() - self.start - FRAME_HEADER >= FRAME_SPLIT {
            self.close_frame();
            self.start = self.buf.len();
            self.buf.extend_from_slice(&[0; FRAME_HEADER]);
            self.prev_time = 0;
        }
    }

    fn close_frame(&mut self) {
        let payload = &self.buf[self.start + FRAME_HEADER..];
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        let crc = crc32fast::hash(payload);
        self.buf[self.start..self.start + 4].copy_from_slice(&len.to_le_bytes());
        self.buf[self.start + 4..self.start + 8].copy_from_slice(&crc.to_le_bytes());
    }

    /// Appends a series definition.
    pub fn series(&mut self, id: u64, last_day: i64, key: &[u8], device_type: &str) {
        self.split_if_full();
        self.buf.push(TAG_SERIES);
        put_uvarint(&mut self.buf, id);
        put_ivarint(&mut self.buf, last_day);
        put_uvarint(&mut self.buf, key.len() as u64);
        self.buf.extend_from_slice(key);
        put_uvarint(&mut self.buf, device_type.len() as u64);
        self.buf.extend_from_slice(device_type.as_bytes());
    }

    /// Appends a point.
    #[inline]
    pub fn point(&mut self, id: u64, time_ms: i64, value: f64) {
        self.split_if_full();
        self.buf.push(TAG_POINT);
        put_uvarint(&mut self.buf, id);
        put_ivarint(&mut self.buf, time_ms.wrapping_sub(self.prev_time));
        self.prev_time = time_ms;
        self.buf.extend_from_slice(&value.to_le_bytes());
    }

    /// Closes the last frame and returns every frame's bytes.
    pub fn finish(&mut self) -> &[u8] {
        self.close_frame();
        &self.buf
    }
}

/// Decodes a whole payload; `None` if any entry is malformed.
fn decode_payload(payload: &[u8]) -> Option<Vec<Entry<'_>>> {
    let mut r = Reader::new(payload);
    let mut entries = Vec::new();
    let mut prev_time = 0i64;
    while !r.is_empty() {
        match r.u8()? {
            TAG_SERIES => {
                let id = r.uvarint()?;
                let last_day = r.ivarint()?;
                let key_len = usize::try_from(r.uvarint()?).ok()?;
                let key = r.take(key_len)?;
                let dt_len = usize::try_from(r.uvarint()?).ok()?;
                let device_type = std::str::from_utf8(r.take(dt_len)?).ok()?;
                entries.push(Entry::Series {
                    id,
                    last_day,
                    key,
                    device_type,
                });
            }
            TAG_POINT => {
                let id = r.uvarint()?;
                prev_time = prev_time.wrapping_add(r.ivarint()?);
                let value = r.f64_le()?;
                entries.push(Entry::Point {
                    id,
                    time_ms: prev_time,
                    value,
                });
            }
            _ => return None,
        }
    }
    Some(entries)
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:08}.log"))
}

/// Segment numbers present in `dir`, ascending.
pub fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut numbers = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let parsed = name
            .to_str()
            .and_then(|n| n.strip_suffix(".log"))
            .filter(|n| n.len() >= 8 && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(n) = parsed {
            numbers.push(n);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// Makes a segment's creation or removal durable (POSIX: fsync the
/// directory; elsewhere the file system journals names itself).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    if cfg!(unix) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// What a replay found.
#[derive(Debug, Default)]
pub struct Replay {
    pub segments: usize,
    pub frames: usize,
    /// Segments whose replay ended early at a torn or corrupt frame.
    pub torn: usize,
    /// The last segment and its length after any truncation.
    pub last: Option<(u64, u64)>,
}

/// Replays every segment of `dir` in order, handing each entry of each
/// intact frame to `visit`. A torn or corrupt frame ends its segment's
/// replay (logged and counted) and the segment is truncated before it.
pub fn replay(dir: &Path, mut visit: impl FnMut(Entry<'_>)) -> io::Result<Replay> {
    let mut out = Replay::default();
    for number in list_segments(dir)? {
        let path = segment_path(dir, number);
        let bytes = fs::read(&path)?;
        let mut pos = 0usize;
        let mut damage = None;
        while pos < bytes.len() {
            let Some(header) = bytes.get(pos..pos + FRAME_HEADER) else {
                damage = Some("torn frame header");
                break;
            };
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            let Some(payload) = bytes.get(pos + FRAME_HEADER..pos + FRAME_HEADER + len) else {
                damage = Some("torn frame");
                break;
            };
            if len == 0 || crc32fast::hash(payload) != crc {
                damage = Some("frame checksum mismatch");
                break;
            }
            let Some(entries) = decode_payload(payload) else {
                damage = Some("malformed frame");
                break;
            };
            entries.into_iter().for_each(&mut visit);
            out.frames += 1;
            pos += FRAME_HEADER + len;
        }
        if let Some(what) = damage {
            tracing::warn!(
                segment = %path.display(),
                offset = pos,
                dropped_bytes = bytes.len() - pos,
                "time series WAL: {what}; replay of this segment ends here and its tail is truncated"
            );
            out.torn += 1;
            let file = OpenOptions::new().write(true).open(&path)?;
            file.set_len(pos as u64)?;
            file.sync_all()?;
        }
        out.segments += 1;
        out.last = Some((number, pos as u64));
    }
    Ok(out)
}

/// Deletes every segment numbered below `number`.
pub fn remove_segments_before(dir: &Path, number: u64) -> io::Result<()> {
    for n in list_segments(dir)? {
        if n >= number {
            break;
        }
        match fs::remove_file(segment_path(dir, n)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Deletes every segment (used when the database file is new, so that a
/// stray log cannot resurrect data into it).
pub fn remove_all(dir: &Path) -> io::Result<usize> {
    let segments = list_segments(dir)?;
    remove_segments_before(dir, u64::MAX)?;
    Ok(segments.len())
}

/// The appending side: the active segment.
pub struct Wal {
    dir: PathBuf,
    active: u64,
    file: Arc<File>,
    len: u64,
    /// A failed append could not be undone: rotate before the next one.
    broken: bool,
}

fn create_segment(dir: &Path, number: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(segment_path(dir, number))?;
    sync_dir(dir)?;
    Ok(file)
}

impl Wal {
    /// Opens the log for appending after a [`replay`] that ended on `last`:
    /// an empty last segment is reused, otherwise a new one follows it.
    pub fn open(dir: &Path, last: Option<(u64, u64)>) -> io::Result<Wal> {
        let (active, file) = match last {
            Some((n, 0)) => {
                let file = OpenOptions::new().append(true).open(segment_path(dir, n))?;
                (n, file)
            }
            Some((n, _)) => (n + 1, create_segment(dir, n + 1)?),
            None => (1, create_segment(dir, 1)?),
        };
        Ok(Wal {
            dir: dir.to_path_buf(),
            active,
            file: Arc::new(file),
            len: 0,
            broken: false,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of the segment appends go to.
    pub fn active(&self) -> u64 {
        self.active
    }

    /// Bytes appended to the active segment.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The active segment's file, to fsync without holding the writer.
    pub fn active_file(&self) -> Arc<File> {
        Arc::clone(&self.file)
    }

    /// Appends whole frames; on success returns the file they went to (for
    /// a later fsync). On failure the segment is cut back to its previous
    /// length, or abandoned for a new one if that fails too.
    pub fn append(&mut self, frames: &[u8]) -> io::Result<Arc<File>> {
        if self.broken {
            self.rotate()?;
        }
        match (&*self.file).write_all(frames) {
            Ok(()) => {
                self.len += frames.len() as u64;
                Ok(Arc::clone(&self.file))
            }
            Err(e) => {
                if self.file.set_len(self.len).is_err() {
                    self.broken = true;
                }
                Err(e)
            }
        }
    }

    /// Makes the active segment durable and starts the next one.
    pub fn rotate(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        let next = self.active + 1;
        let file = create_segment(&self.dir, next)?;
        self.file = Arc::new(file);
        self.active = next;
        self.len = 0;
        self.broken = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(dir: &Path) -> (Vec<String>, Replay) {
        let mut seen = Vec::new();
        let r = replay(dir, |e| seen.push(format!("{e:?}"))).unwrap();
        (seen, r)
    }

    #[test]
    fn frames_round_trip_and_torn_tails_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), None).unwrap();
        let mut f = FrameBuf::default();
        f.clear();
        f.series(3, 19_000, b"dev\x00\x01t\x00\x01", "thermo");
        f.point(3, 1_700_000_000_000, 1.5);
        f.point(3, 1_699_999_999_000, -2.0);
        wal.append(f.finish()).unwrap();
        f.clear();
        f.point(3, -5, 0.25);
        let second = f.finish().to_vec();
        wal.append(&second).unwrap();
        let len = wal.len();
        drop(wal);
        let (seen, r) = collect(dir.path());
        assert_eq!(seen.len(), 4);
        assert!(seen[2].contains("1699999999000"));
        assert!(seen[3].contains("time_ms: -5"));
        assert_eq!((r.frames, r.torn, r.last), (2, 0, Some((1, len))));

        // Cut the last frame short: the first survives, the tail is cut.
        let path = segment_path(dir.path(), 1);
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len - 3).unwrap();
        let (seen, r) = collect(dir.path());
        assert_eq!((seen.len(), r.frames, r.torn), (3, 1, 1));
        let cut = len - second.len() as u64;
        assert_eq!(fs::metadata(&path).unwrap().len(), cut);
        let (_, r) = collect(dir.path());
        assert_eq!((r.frames, r.torn, r.last), (1, 0, Some((1, cut))));

        // Appends go to a new segment after the replayed one.
        let mut wal = Wal::open(dir.path(), r.last).unwrap();
        assert_eq!(wal.active(), 2);
        wal.append(&second).unwrap();
        wal.rotate().unwrap();
        assert_eq!(list_segments(dir.path()).unwrap(), vec![1, 2, 3]);
        remove_segments_before(dir.path(), 3).unwrap();
        assert_eq!(list_segments(dir.path()).unwrap(), vec![3]);
        // An empty last segment is reused.
        let (_, r) = collect(dir.path());
        assert_eq!(Wal::open(dir.path(), r.last).unwrap().active(), 3);
    }

    #[test]
    fn corrupt_payloads_are_refused() {
        let mut f = FrameBuf::default();
        f.clear();
        f.series(1, 2, b"k", "t");
        f.point(1, 10, 1.0);
        let bytes = f.finish().to_vec();
        let payload = &bytes[FRAME_HEADER..];
        assert_eq!(decode_payload(payload).unwrap().len(), 2);
        // The series entry is 7 bytes: a cut there is a whole entry.
        assert_eq!(decode_payload(&payload[..7]).unwrap().len(), 1);
        for cut in (1..payload.len()).filter(|c| *c != 7) {
            assert!(decode_payload(&payload[..cut]).is_none(), "cut {cut}");
        }
        assert!(decode_payload(&[7]).is_none());
    }

    #[test]
    fn big_calls_split_into_frames() {
        let mut f = FrameBuf::default();
        f.clear();
        let n = FRAME_SPLIT / 8;
        for i in 0..n as i64 {
            f.point(1, i, i as f64);
        }
        let bytes = f.finish().to_vec();
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), None).unwrap();
        wal.append(&bytes).unwrap();
        let mut count = 0i64;
        let r = replay(dir.path(), |e| {
            assert_eq!(
                e,
                Entry::Point {
                    id: 1,
                    time_ms: count,
                    value: count as f64
                }
            );
            count += 1;
        })
        .unwrap();
        assert_eq!(count as usize, n);
        assert!(r.frames >= 2);
    }
}
