//! `rejected.jsonl`: items that can never be delivered, one JSON object a line:
//!
//! ```json
//! {"ts_ms":1764300000000,"outbox":"dynamodb:shadow","reason":"ValidationException: ...","item":{...}}
//! ```
//!
//! `item` is the item as JSON; for a spool record that no longer parses as
//! the outbox's item type it is the record's JSON (or, if not JSON at all,
//! the bytes as a lossy UTF-8 string). The file is append-only and never
//! rotated by the outbox.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

use serde::Serialize;

use crate::now_ms;

/// Appends rejected items to `<dir>/rejected.jsonl`.
#[derive(Debug)]
pub(crate) struct RejectedLog {
    outbox: String,
    path: PathBuf,
    file: Option<File>,
    line: Vec<u8>,
}

#[derive(Serialize)]
struct Line<'a, I: Serialize> {
    ts_ms: u64,
    outbox: &'a str,
    reason: &'a str,
    item: I,
}

impl RejectedLog {
    pub(crate) fn new(outbox: &str, path: PathBuf) -> Self {
        RejectedLog {
            outbox: outbox.to_owned(),
            path,
            file: None,
            line: Vec::new(),
        }
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Appends one line per item; all of them in one write.
    pub(crate) fn write_items<T: Serialize>(
        &mut self,
        items: &[T],
        reason: &str,
    ) -> io::Result<()> {
        self.line.clear();
        let ts_ms = now_ms();
        for item in items {
            let line = Line {
                ts_ms,
                outbox: &self.outbox,
                reason,
                item,
            };
            let mark = self.line.len();
            if let Err(e) = serde_json::to_writer(&mut self.line, &line) {
                // Not representable as JSON: keep a trace of it anyway.
                self.line.truncate(mark);
                let line = Line {
                    ts_ms,
                    outbox: &self.outbox,
                    reason,
                    item: format!("<item not serializable: {e}>"),
                };
                serde_json::to_writer(&mut self.line, &line).map_err(io::Error::other)?;
            }
            self.line.push(b'\n');
        }
        self.append()
    }

    /// Appends a line for a raw spool payload.
    pub(crate) fn write_raw(&mut self, payload: &[u8], reason: &str) -> io::Result<()> {
        self.write_items(&[crate::codec::to_json(payload)], reason)
    }

    fn append(&mut self) -> io::Result<()> {
        if self.file.is_none() {
            self.file = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        let result = match self.file.as_mut() {
            Some(f) => f.write_all(&self.line),
            None => Ok(()),
        };
        if result.is_err() {
            self.file = None;
        }
        result
    }
}
