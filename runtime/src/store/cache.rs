//! The build cache index (plan cache key -> result, one small file per key) and small state
//! files.
//!
//! A cache value is opaque JSON, but every string in it that is a digest (`sha256:<hex>`) is
//! taken to name a blob the entry needs: a lookup whose blobs are gone is a miss, and `prune`
//! keeps exactly the blobs that surviving entries name. Must not: interpret cache keys.

use std::fs;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{io_err, Result, Store, StoreError};
use crate::oci::Digest;

#[derive(Serialize, Deserialize)]
pub(crate) struct CacheEntry {
    pub key: String,
    pub value: serde_json::Value,
}

/// Every digest named by a string anywhere in `value`.
pub(crate) fn digests_in(value: &serde_json::Value, out: &mut Vec<Digest>) {
    match value {
        serde_json::Value::String(s) => {
            if let Ok(d) = s.parse::<Digest>() {
                out.push(d);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| digests_in(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| digests_in(v, out)),
        _ => {}
    }
}

fn valid_state_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl Store {
    fn cache_path(&self, key: &str) -> PathBuf {
        self.root
            .join("cache")
            .join(format!("{}.json", Digest::of_bytes(key.as_bytes()).hex()))
    }

    /// The cached result for `key`, or `None` when there is none or a blob it names is gone.
    pub fn get_cache(&self, key: &str) -> Result<Option<serde_json::Value>> {
        let path = self.cache_path(key);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let Ok(entry) = serde_json::from_slice::<CacheEntry>(&bytes) else {
            return Ok(None);
        };
        if entry.key != key {
            return Ok(None);
        }
        let mut digests = Vec::new();
        digests_in(&entry.value, &mut digests);
        if digests.iter().all(|d| self.has_blob(d)) {
            Ok(Some(entry.value))
        } else {
            Ok(None)
        }
    }

    /// Records `value` as the result for `key` (replacing any earlier one).
    pub fn put_cache(&self, key: &str, value: &serde_json::Value) -> Result<()> {
        let entry = CacheEntry {
            key: key.to_string(),
            value: value.clone(),
        };
        let bytes = serde_json::to_vec(&entry).map_err(|error| StoreError::BadJson {
            what: format!("the cache value for `{key}`"),
            error,
        })?;
        self.write_atomic(&self.cache_path(key), &bytes)
    }

    /// Every cache entry file with its parsed entry (unparseable files give `None`).
    pub(crate) fn cache_files(&self) -> Result<Vec<(PathBuf, Option<CacheEntry>)>> {
        let dir = self.root.join("cache");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("read", &dir))? {
            let path = entry.map_err(io_err("read", &dir))?.path();
            let parsed = fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            out.push((path, parsed));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn state_path(&self, name: &str) -> Result<PathBuf> {
        if !valid_state_name(name) {
            return Err(StoreError::InvalidStateName {
                name: name.to_string(),
            });
        }
        Ok(self.root.join("state").join(name))
    }

    /// The contents of state file `name`, `None` when it was never written.
    pub fn read_state(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let path = self.state_path(name)?;
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    /// Replaces state file `name` atomically.
    pub fn write_state(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.state_path(name)?;
        self.write_atomic(&path, bytes)
    }
}
