//! Append-only JSON-lines journals under the data directory
//! (`alerts.jsonl`, `dead-letter.jsonl`, …), buffered and flushed on the
//! host's checkpoint interval and at shutdown.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Mutex;

pub struct Journals {
    dir: PathBuf,
    open: Mutex<HashMap<String, BufWriter<File>>>,
}

impl Journals {
    pub fn new(dir: PathBuf) -> Journals {
        Journals {
            dir,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `name` is a usable journal name (`[a-z0-9_-]+`).
    pub fn valid_name(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.jsonl"))
    }

    /// Append lines (each gets a trailing newline; embedded newlines are
    /// escaped so one line stays one record).
    pub fn append<S: AsRef<str>>(&self, name: &str, lines: &[S]) -> std::io::Result<()> {
        if !Self::valid_name(name) {
            return Err(std::io::Error::other(format!(
                "invalid journal name {name:?}"
            )));
        }
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if !open.contains_key(name) {
            std::fs::create_dir_all(&self.dir)?;
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.path(name))?;
            open.insert(name.to_string(), BufWriter::new(f));
        }
        let Some(w) = open.get_mut(name) else {
            return Err(std::io::Error::other("journal vanished"));
        };
        for line in lines {
            let line = line.as_ref();
            if line.contains('\n') {
                w.write_all(line.replace('\n', "\\n").as_bytes())?;
            } else {
                w.write_all(line.as_bytes())?;
            }
            w.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Flush every journal to the OS.
    pub fn flush(&self) -> std::io::Result<()> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        for w in open.values_mut() {
            w.flush()?;
        }
        Ok(())
    }
}
