//! A detached container's log, in docker's json-file format: one JSON object per line,
//! `{"log":"text\n","stream":"stdout","time":"2026-12-02T05:21:19.123456789Z"}`, in
//! `containers/<id>/<id>-json.log`, with size-based rotation (`max-size`, `max-file`: the
//! current file is renamed `.1`, `.1` to `.2`, and so on; the oldest is dropped).
//!
//! Owns the writer (used by the supervisor: lines of up to 16 KiB, as docker splits them)
//! and the reader (`kiln logs`: the files oldest first, `--tail`, `--since`, following).
//! Must not: decide when a container runs or ends (the supervisor does).

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::oci::time;

/// Docker splits a stream into messages at newlines and at 16 KiB.
pub const MAX_MESSAGE: usize = 16 * 1024;

/// `--log-opt max-size=..,max-file=..`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LogConfig {
    /// Rotate once the current file reaches this many bytes; `None` never rotates (docker's
    /// default).
    pub max_size: Option<u64>,
    /// How many files to keep, the current one included (at least 1).
    pub max_file: u32,
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

impl Entry {
    /// Seconds and nanoseconds since the epoch.
    pub fn instant(&self) -> (i64, u32) {
        (
            time::parse_rfc3339(&self.time).unwrap_or(0),
            time::rfc3339_nanos(&self.time),
        )
    }
}

/// The log's current file for container `id` in its directory.
pub fn path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}-json.log"))
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(format!(".{n}"));
    PathBuf::from(p)
}

pub fn now() -> (i64, u32) {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as i64, d.subsec_nanos())
}

/// Appends entries, rotating by size.
pub struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
    config: LogConfig,
}

impl Writer {
    pub fn open(path: PathBuf, config: LogConfig) -> std::io::Result<Writer> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Writer {
            path,
            file,
            size,
            config,
        })
    }

    /// Write one message of `stream` (`stdout` or `stderr`), as one line.
    pub fn write(&mut self, stream: &str, message: &[u8]) -> std::io::Result<()> {
        let (secs, nanos) = now();
        let entry = Entry {
            log: String::from_utf8_lossy(message).into_owned(),
            stream: stream.to_string(),
            time: time::format_rfc3339_nanos(secs, nanos),
        };
        let mut line = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        if let Some(max) = self.config.max_size {
            if self.size > 0 && self.size + line.len() as u64 > max {
                self.rotate()?;
            }
        }
        self.file.write_all(&line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let keep = self.config.max_file.max(1);
        if keep == 1 {
            self.file.set_len(0)?;
            self.file.seek(SeekFrom::Start(0))?;
            self.size = 0;
            return Ok(());
        }
        let _ = fs::remove_file(rotated(&self.path, keep - 1));
        for n in (1..keep - 1).rev() {
            let from = rotated(&self.path, n);
            if from.exists() {
                fs::rename(&from, rotated(&self.path, n + 1))?;
            }
        }
        fs::rename(&self.path, rotated(&self.path, 1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Copy `from` into the log as `stream` until it ends: a message per line, or per 16 KiB of
/// a longer line, the last one without its newline if the stream ended mid-line. With
/// `interactive` (a terminal), a line is also written whole as far as it has come when
/// nothing more is waiting, so that a prompt reaches `attach` and `logs -f` before its
/// newline does.
pub fn copy_stream(
    from: impl Read,
    stream: &str,
    writer: &std::sync::Mutex<Writer>,
    interactive: bool,
) -> std::io::Result<()> {
    let mut reader = BufReader::with_capacity(MAX_MESSAGE, from);
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // A terminal's master reports EIO once the payload closed it: the end.
            Err(_) => &[],
        };
        if buf.is_empty() {
            if !pending.is_empty() {
                lock(writer).write(stream, &pending)?;
            }
            return Ok(());
        }
        let room = MAX_MESSAGE - pending.len();
        let take = match buf.iter().take(room).position(|&b| b == b'\n') {
            Some(nl) => nl + 1,
            None => buf.len().min(room),
        };
        pending.extend_from_slice(&buf[..take]);
        reader.consume(take);
        let idle = interactive && reader.buffer().is_empty();
        if pending.last() == Some(&b'\n') || pending.len() >= MAX_MESSAGE || idle {
            lock(writer).write(stream, &pending)?;
            pending.clear();
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every entry of the log, oldest first (rotated files, then the current one). Lines that
/// are not entries (a torn last line) are skipped.
pub fn read_all(path: &Path) -> std::io::Result<Vec<Entry>> {
    let mut files = Vec::new();
    let mut n = 1;
    while rotated(path, n).exists() {
        files.push(rotated(path, n));
        n += 1;
    }
    files.reverse();
    files.push(path.to_path_buf());
    let mut out = Vec::new();
    for f in files {
        match File::open(&f) {
            Ok(file) => {
                for line in BufReader::new(file).split(b'\n') {
                    if let Ok(e) = serde_json::from_slice::<Entry>(&line?) {
                        out.push(e);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Follows the current log file from its end (after [`read_all`]), across rotations.
pub struct Follower {
    path: PathBuf,
    reader: BufReader<File>,
    inode: u64,
    partial: Vec<u8>,
}

impl Follower {
    /// Start at the current end of the log.
    pub fn at_end(path: &Path) -> std::io::Result<Follower> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)?;
        file.seek(SeekFrom::End(0))?;
        let inode = file.metadata()?.ino();
        Ok(Follower {
            path: path.to_path_buf(),
            reader: BufReader::new(file),
            inode,
            partial: Vec::new(),
        })
    }

    /// Entries written since the last call (none when nothing new).
    pub fn poll(&mut self) -> std::io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        loop {
            self.drain(&mut out)?;
            // Rotated: the old file is read to its end above, then the new one from its start.
            match fs::metadata(&self.path) {
                Ok(m) if m.ino() != self.inode => {
                    let file = File::open(&self.path)?;
                    self.inode = m.ino();
                    self.reader = BufReader::new(file);
                    self.partial.clear();
                }
                _ => return Ok(out),
            }
        }
    }

    fn drain(&mut self, out: &mut Vec<Entry>) -> std::io::Result<()> {
        loop {
            let n = self.reader.read_until(b'\n', &mut self.partial)?;
            if n == 0 || self.partial.last() != Some(&b'\n') {
                return Ok(());
            }
            if let Ok(e) = serde_json::from_slice::<Entry>(&self.partial) {
                out.push(e);
            }
            self.partial.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_and_rotate_like_json_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path(), "abc");
        let writer = std::sync::Mutex::new(
            Writer::open(
                path.clone(),
                LogConfig {
                    max_size: Some(200),
                    max_file: 3,
                },
            )
            .unwrap(),
        );
        let long = vec![b'x'; MAX_MESSAGE + 5];
        copy_stream(&b"one\ntwo\nthree"[..], "stdout", &writer, false).unwrap();
        copy_stream(&long[..], "stderr", &writer, false).unwrap();
        let all = read_all(&path).unwrap();
        let logs: Vec<(&str, usize)> = all
            .iter()
            .map(|e| (e.stream.as_str(), e.log.len()))
            .collect();
        // Every message that would pass 200 bytes starts a file; three files are kept, so
        // the first file ("one", "two") is gone.
        assert!(rotated(&path, 2).exists());
        assert!(!rotated(&path, 3).exists());
        assert_eq!(
            logs,
            [("stdout", 5), ("stderr", MAX_MESSAGE), ("stderr", 5)],
            "{all:?}"
        );
        assert_eq!(all[0].log, "three");
        let text = fs::read_to_string(rotated(&path, 2)).unwrap();
        assert!(
            text.starts_with("{\"log\":\"three\",\"stream\":\"stdout\",\"time\":\""),
            "{text}"
        );
    }

    #[test]
    fn follower_crosses_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path(), "f");
        let mut w = Writer::open(
            path.clone(),
            LogConfig {
                max_size: Some(100),
                max_file: 2,
            },
        )
        .unwrap();
        let mut f = Follower::at_end(&path).unwrap();
        w.write("stdout", b"a\n").unwrap();
        assert_eq!(f.poll().unwrap().len(), 1);
        for _ in 0..4 {
            w.write(
                "stdout",
                b"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n",
            )
            .unwrap();
            assert_eq!(f.poll().unwrap().len(), 1);
        }
    }
}
