//! `RUN --mount=type=cache` directories: persistent, shared by every build that names the
//! same id, never part of a layer or a key. `cache-mounts/<blake3(id)>/` with a lock file
//! beside it for `sharing=locked` (one step at a time) and `sharing=private` (a step that
//! finds it busy gets a directory of its own).
//! Must not: be removed by `kiln prune` (like BuildKit's cache mounts, they outlive images).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use kiln_plan::plan::Sharing;

use super::{io_err, Result, Store};

/// An exclusive lock on a cache-mount directory (std's `flock`), held while a step uses it;
/// dropping it releases the lock.
#[derive(Debug)]
pub struct CacheMountLock {
    _file: fs::File,
}

impl Store {
    /// The directory for cache id `id` (created with `mode`, `uid`, `gid` when new), and the
    /// lock to hold while the step runs (for locked and private sharing).
    pub fn cache_mount_dir(
        &self,
        id: &str,
        sharing: Sharing,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<(PathBuf, Option<CacheMountLock>)> {
        let base = self.root.join("cache-mounts");
        fs::create_dir_all(&base).map_err(io_err("create", &base))?;
        let name = blake3::hash(id.as_bytes()).to_hex().to_string();
        for n in 0.. {
            let stem = if n == 0 {
                name.clone()
            } else {
                format!("{name}-{n}")
            };
            let dir = base.join(&stem);
            let lock = match sharing {
                Sharing::Shared => None,
                Sharing::Locked | Sharing::Private => {
                    let path = base.join(format!("{stem}.lock"));
                    let file = fs::OpenOptions::new()
                        .create(true)
                        .truncate(false)
                        .write(true)
                        .open(&path)
                        .map_err(io_err("open", &path))?;
                    if sharing == Sharing::Locked {
                        file.lock().map_err(io_err("lock", &path))?;
                    } else {
                        match file.try_lock() {
                            Ok(()) => {}
                            Err(fs::TryLockError::WouldBlock) => continue,
                            Err(fs::TryLockError::Error(e)) => {
                                return Err(io_err("lock", &path)(e))
                            }
                        }
                    }
                    Some(CacheMountLock { _file: file })
                }
            };
            if !dir.exists() {
                let staging = self.scratch_dir()?.keep();
                fs::set_permissions(&staging, fs::Permissions::from_mode(mode))
                    .map_err(io_err("chmod", &staging))?;
                std::os::unix::fs::chown(&staging, Some(uid), Some(gid))
                    .map_err(io_err("chown", &staging))?;
                if fs::rename(&staging, &dir).is_err() {
                    let _ = fs::remove_dir(&staging);
                }
            }
            return Ok((dir, lock));
        }
        unreachable!("the loop returns")
    }
}
