//! `prune`: deletes what no image needs.
//!
//! Live: each image's manifest, config and layer blobs, and the uncompressed tars of its
//! layers (blobs named by its diff_ids). A cache entry survives when every blob it names is
//! live (its results still belong to an image); other entries are deleted, and so are blobs
//! nothing live names, layer mappings whose blobs are gone, and unpacked layers
//! (`layers/unpacked/<hex>`) whose diff_id no live image has (decided like the mappings). Runs only when no other kiln
//! process has the store open (it takes `gc.lock` exclusively, without waiting).
//! Build records older than `PruneOptions::record_max_age` go too (each target's two newest
//! stay), and the listing chunks no remaining record names (`records.rs`).
//! Must not: change the index.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use super::cache::digests_in;
use super::{io_err, Result, Store, StoreError};
use crate::oci::Digest;

/// What `prune` deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub blobs_removed: usize,
    pub cache_entries_removed: usize,
    /// Unpacked layer directories removed (their bytes are not counted in `bytes_freed`).
    pub unpacked_removed: usize,
    pub bytes_freed: u64,
    /// Build records and listing chunks removed (their bytes are in `bytes_freed`).
    pub records: super::RecordsPruned,
}

/// What `prune` may remove besides what no image needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneOptions {
    /// Build records older than this go (a target's two newest always stay).
    pub record_max_age: std::time::Duration,
}

impl Default for PruneOptions {
    /// Records are kept for 90 days.
    fn default() -> Self {
        PruneOptions {
            record_max_age: std::time::Duration::from_secs(90 * 86400),
        }
    }
}

impl Store {
    pub fn prune(&self) -> Result<PruneReport> {
        self.prune_with(&PruneOptions::default())
    }

    pub fn prune_with(&self, options: &PruneOptions) -> Result<PruneReport> {
        if self.gc_lock.try_lock().is_err() {
            // A failed conversion may have dropped our shared lock: take it back.
            let _ = self.gc_lock.lock_shared();
            return Err(StoreError::Busy {
                root: self.root.clone(),
            });
        }
        let report = self.with_lock(|| {
            let mut report = self.prune_locked()?;
            report.records = self.prune_records(options.record_max_age)?;
            report.bytes_freed += report.records.bytes;
            Ok(report)
        });
        let path = self.root.join("gc.lock");
        self.gc_lock.lock_shared().map_err(io_err("lock", &path))?;
        report
    }

    fn prune_locked(&self) -> Result<PruneReport> {
        let mut live: BTreeSet<Digest> = BTreeSet::new();
        for image in self.images()? {
            live.insert(image.manifest_digest.clone());
            live.insert(image.id().clone());
            live.extend(image.manifest.layers.iter().map(|l| l.digest.clone()));
            live.extend(image.config.rootfs.diff_ids.iter().cloned());
        }
        let mut report = PruneReport::default();
        for (path, entry) in self.cache_files()? {
            let keep = entry.is_some_and(|e| {
                let mut named = Vec::new();
                digests_in(&e.value, &mut named);
                named.iter().all(|d| live.contains(d))
            });
            if !keep {
                let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                remove_file(&path)?;
                report.cache_entries_removed += 1;
                report.bytes_freed += size;
            }
        }
        for (digest, size) in self.list_blobs()? {
            if !live.contains(&digest) {
                remove_file(&self.blob_path(&digest))?;
                report.blobs_removed += 1;
                report.bytes_freed += size;
            }
        }
        for kind in ["source", "gzip", "zstd"] {
            let dir = self.root.join("layers").join(kind);
            for entry in fs::read_dir(&dir).map_err(io_err("read", &dir))? {
                let path = entry.map_err(io_err("read", &dir))?.path();
                let target = fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<crate::oci::Descriptor>(&b).ok());
                let diff_live = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| Digest::from_hex(n).ok())
                    .is_some_and(|d| live.contains(&d));
                if !diff_live || !target.is_some_and(|t| self.has_blob(&t.digest)) {
                    remove_file(&path)?;
                }
            }
        }
        let unpacked = self.unpacked_dir();
        let listing = match fs::read_dir(&unpacked) {
            Ok(listing) => Some(listing),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err("read", &unpacked)(e)),
        };
        for entry in listing.into_iter().flatten() {
            let path = entry.map_err(io_err("read", &unpacked))?.path();
            let diff_live = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| Digest::from_hex(n).ok())
                .is_some_and(|d| live.contains(&d));
            if !diff_live {
                self.remove_unpacked(&path)?;
                report.unpacked_removed += 1;
            }
        }
        Ok(report)
    }
}

fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", path)(e)),
    }
}
