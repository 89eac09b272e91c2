//! Build records in the store: one zstd-compressed JSON file per build of a target, and the
//! context listing chunks they share.
//!
//! Layout: `records/targets/<blake3(target id), 32 hex>/<nanoseconds, 20 digits>-<pid>.zst`
//! (a record; names sort by age) and `records/chunks/<blake3 hex>.zst` (a listing chunk,
//! named by the blake3 of its uncompressed bytes, written once and shared by every record
//! that lists it). Every file is written atomically (session temp file, rename; chunks
//! before the record that names them) but not fsynced: a record is bookkeeping, not an
//! image, and a crash may lose the newest ones but never tears one into something read as
//! valid (a record that does not parse is passed over, a chunk whose bytes do not hash to
//! its name is treated as missing). `prune` removes records older than its limit
//! (never a target's two newest, which `kiln explain` compares), then the chunks no
//! remaining record names.
//! Must not: interpret records beyond the chunks they name (`kiln_plan::plan::record`
//! owns the model).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kiln_plan::plan::record::BuildRecord;

use super::{io_err, Result, Store, StoreError};

/// zstd level of records and chunks: small files, written on every build.
const LEVEL: i32 = 3;

/// Records and chunks `prune` removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordsPruned {
    pub records: usize,
    pub chunks: usize,
    pub bytes: u64,
}

fn target_dir_name(target: &str) -> String {
    blake3::hash(target.as_bytes()).to_hex()[..32].to_string()
}

fn valid_chunk_name(d: &str) -> bool {
    d.len() == 64
        && d.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The age of a record from its file name (None when the name is not a record's).
fn record_time(path: &Path) -> Option<u128> {
    let name = path.file_name()?.to_str()?.strip_suffix(".zst")?;
    let (nanos, _pid) = name.split_once('-')?;
    nanos.parse().ok()
}

impl Store {
    fn records_dir(&self) -> PathBuf {
        self.root.join("records")
    }

    fn chunk_path(&self, digest: &str) -> PathBuf {
        self.records_dir()
            .join("chunks")
            .join(format!("{digest}.zst"))
    }

    /// Stores `record` and the chunks it names that the store lacks (`chunks` holds their
    /// bytes, by blake3 hex digest).
    pub fn put_record(
        &self,
        record: &BuildRecord,
        chunks: &BTreeMap<String, Vec<u8>>,
    ) -> Result<()> {
        let chunk_dir = self.records_dir().join("chunks");
        fs::create_dir_all(&chunk_dir).map_err(io_err("create", &chunk_dir))?;
        for listing in record.nodes.iter().filter_map(|n| n.context.as_ref()) {
            for name in &listing.chunks {
                let path = self.chunk_path(name);
                if !valid_chunk_name(name) || path.exists() {
                    continue;
                }
                let Some(bytes) = chunks.get(name) else {
                    continue;
                };
                let packed = zstd::encode_all(bytes.as_slice(), LEVEL)
                    .map_err(io_err("compress a listing chunk for", &path))?;
                self.write_atomic_volatile(&path, &packed)?;
            }
        }
        let dir = self
            .records_dir()
            .join("targets")
            .join(target_dir_name(&record.target));
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = dir.join(format!("{nanos:020}-{}.zst", std::process::id()));
        let json = serde_json::to_vec(record).map_err(|error| StoreError::BadJson {
            what: "a build record".into(),
            error,
        })?;
        let packed = zstd::encode_all(json.as_slice(), LEVEL).map_err(io_err("compress", &path))?;
        self.write_atomic(&path, &packed)
    }

    /// The record files of `target`, oldest first.
    fn record_files(&self, target: &str) -> Result<Vec<PathBuf>> {
        let dir = self
            .records_dir()
            .join("targets")
            .join(target_dir_name(target));
        list_records(&dir)
    }

    /// Up to `n` records of `target`, newest first (records that cannot be read, or that
    /// belong to another target, are passed over).
    pub fn last_records(&self, target: &str, n: usize) -> Result<Vec<BuildRecord>> {
        let mut out = Vec::new();
        for path in self.record_files(target)?.iter().rev() {
            if out.len() == n {
                break;
            }
            if let Some(r) = read_record(path)?.filter(|r| r.target == target) {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// A listing chunk's bytes, None when it is not in the store (or does not match its
    /// name).
    pub fn read_chunk(&self, digest: &str) -> Result<Option<Vec<u8>>> {
        if !valid_chunk_name(digest) {
            return Ok(None);
        }
        let path = self.chunk_path(digest);
        let packed = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let Ok(bytes) = zstd::decode_all(packed.as_slice()) else {
            return Ok(None);
        };
        Ok((blake3::hash(&bytes).to_hex().as_str() == digest).then_some(bytes))
    }

    /// Removes records older than `max_age` (keeping each target's two newest) and chunks
    /// no remaining record names. Called by `prune` with the store locked.
    pub(super) fn prune_records(&self, max_age: Duration) -> Result<RecordsPruned> {
        let mut out = RecordsPruned::default();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let cutoff = now.saturating_sub(max_age.as_nanos());
        let targets = self.records_dir().join("targets");
        let mut named: BTreeSet<String> = BTreeSet::new();
        for dir in read_dir_paths(&targets)? {
            let files = list_records(&dir)?;
            let keep_from = files.len().saturating_sub(2);
            for (i, path) in files.iter().enumerate() {
                let old = record_time(path).is_none_or(|t| t < cutoff);
                if i < keep_from && old {
                    out.bytes += fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                    remove(path)?;
                    out.records += 1;
                    continue;
                }
                if let Some(r) = read_record(path)? {
                    for l in r.nodes.iter().filter_map(|n| n.context.as_ref()) {
                        named.extend(l.chunks.iter().cloned());
                    }
                }
            }
            if list_records(&dir)?.is_empty() {
                let _ = fs::remove_dir(&dir);
            }
        }
        for path in read_dir_paths(&self.records_dir().join("chunks"))? {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".zst"))
                .unwrap_or("");
            if !named.contains(name) {
                out.bytes += fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                remove(&path)?;
                out.chunks += 1;
            }
        }
        Ok(out)
    }
}

fn read_dir_paths(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("read", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        out.push(entry.map_err(io_err("read", dir))?.path());
    }
    out.sort();
    Ok(out)
}

/// The record files in a target's directory, oldest first.
fn list_records(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(read_dir_paths(dir)?
        .into_iter()
        .filter(|p| record_time(p).is_some())
        .collect())
}

/// A record, None when the file is gone or is not a record this kiln reads.
fn read_record(path: &Path) -> Result<Option<BuildRecord>> {
    let packed = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read", path)(e)),
    };
    let Ok(json) = zstd::decode_all(packed.as_slice()) else {
        return Ok(None);
    };
    Ok(serde_json::from_slice::<BuildRecord>(&json)
        .ok()
        .filter(|r| r.v == kiln_plan::plan::record::RECORD_VERSION))
}

fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", path)(e)),
    }
}
