//! Unpacked layers: each layer tar extracted once into `layers/unpacked/<diff_id hex>/`, in
//! overlayfs lowerdir format, for the sandbox that runs RUN steps.
//!
//! Owns: making an unpacked layer appear atomically (extracted in this Store's tmp session,
//! flushed, renamed into place with `RENAME_NOREPLACE`; a concurrent winner is kept and our
//! copy discarded), and removing one so no half-deleted directory is ever visible.
//! Must not: interpret tar entries (that is `layer::extract`), or mount anything.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::{io_err, sync_dir, Result, Store};
use crate::layer;
use crate::oci::Digest;

impl Store {
    /// The directory of unpacked layers.
    pub(crate) fn unpacked_dir(&self) -> PathBuf {
        self.root.join("layers/unpacked")
    }

    /// `<root>/layers/unpacked/<hex>`: layer `diff_id` extracted as an overlayfs lowerdir,
    /// made on first use (the uncompressed tar is made first if needed, see
    /// [`Store::uncompressed_layer`]). The directory is visible only when complete.
    pub fn unpacked_layer(&self, diff_id: &Digest) -> Result<PathBuf> {
        let dir = self.unpacked_dir();
        let dest = dir.join(diff_id.hex());
        if is_dir(&dest) {
            return Ok(dest);
        }
        let tar = self.uncompressed_layer(diff_id)?;
        let scratch = self.scratch_dir()?;
        let staging = scratch.path().join("layer");
        fs::create_dir(&staging).map_err(io_err("create", &staging))?;
        layer::extract_layer(&tar, &staging)?;
        // The lowerdir's root is the container's root directory when this layer is on top.
        std::os::unix::fs::chown(&staging, Some(0), Some(0)).map_err(io_err("chown", &staging))?;
        fs::set_permissions(
            &staging,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .map_err(io_err("chmod", &staging))?;
        // One flush of the filesystem instead of an fsync per extracted file.
        let handle = fs::File::open(&staging).map_err(io_err("open", &staging))?;
        nix::unistd::syncfs(handle.as_raw_fd())
            .map_err(|e| io_err("sync the filesystem of", &staging)(e.into()))?;
        drop(handle);
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        publish(&staging, &dest)?;
        Ok(dest)
    }

    /// Removes an unpacked layer: it is renamed into this Store's tmp session first, so it
    /// disappears at once and a crash mid-delete leaves only tmp/ leftovers.
    pub(crate) fn remove_unpacked(&self, path: &Path) -> Result<()> {
        let scratch = self.scratch_dir()?;
        let doomed = scratch.path().join("doomed");
        match fs::rename(path, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("move aside", path)(e)),
        }
        if is_dir(&doomed) {
            fs::remove_dir_all(&doomed).map_err(io_err("remove", &doomed))?;
        } else {
            fs::remove_file(&doomed).map_err(io_err("remove", &doomed))?;
        }
        drop(scratch);
        Ok(())
    }
}

/// Renames the complete `staging` directory to `dest` unless `dest` exists. Returns false
/// when another process got there first (their directory is kept, `staging` stays).
fn publish(staging: &Path, dest: &Path) -> Result<bool> {
    match nix::fcntl::renameat2(
        None,
        staging,
        None,
        dest,
        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
    ) {
        Ok(()) => {
            if let Some(dir) = dest.parent() {
                sync_dir(dir)?;
            }
            Ok(true)
        }
        Err(nix::errno::Errno::EEXIST | nix::errno::Errno::ENOTEMPTY) if is_dir(dest) => Ok(false),
        Err(e) => Err(io_err("rename an unpacked layer to", dest)(e.into())),
    }
}

fn is_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    /// A layer tar with one directory and one file, and one whose second entry escapes.
    fn tar_with(entries: &[(&[u8], u8)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, kind) in entries {
            let mut header = tar::Header::new_ustar();
            header.as_old_mut().name[..name.len()].copy_from_slice(name);
            header.set_mode(0o755);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            header.set_size(0);
            header.set_entry_type(tar::EntryType::new(*kind));
            header.set_cksum();
            out.extend_from_slice(header.as_bytes());
        }
        out.extend_from_slice(&[0; 1024]);
        out
    }

    #[test]
    fn unpacks_once_and_in_place() {
        if !is_root() {
            eprintln!("skipped: extracting layers needs root (chown, mknod)");
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let digest = store
            .put_blob(&tar_with(&[(b"d/", b'5'), (b"d/f", b'0')]))
            .unwrap();
        let path = store.unpacked_layer(&digest).unwrap();
        assert_eq!(path, root.path().join("layers/unpacked").join(digest.hex()));
        assert!(path.join("d/f").is_file());
        // Second call: the same directory, not extracted again.
        fs::write(path.join("marker"), b"").unwrap();
        assert_eq!(store.unpacked_layer(&digest).unwrap(), path);
        assert!(path.join("marker").exists());
        // Nothing left in the session's tmp directory.
        assert_eq!(
            fs::read_dir(store.session_dir().unwrap()).unwrap().count(),
            0
        );
    }

    #[test]
    fn failed_extraction_leaves_no_unpacked_dir() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        // A regular directory entry, then one that climbs out of the root.
        let digest = store
            .put_blob(&tar_with(&[(b"ok/", b'5'), (b"../evil", b'0')]))
            .unwrap();
        let err = store.unpacked_layer(&digest).unwrap_err();
        assert!(format!("{err:?}").contains("Escape"), "{err:?}");
        let unpacked = root.path().join("layers/unpacked");
        assert!(!unpacked.join(digest.hex()).exists());
        if let Ok(listing) = fs::read_dir(&unpacked) {
            assert_eq!(listing.count(), 0, "something was left in layers/unpacked");
        }
        assert_eq!(
            fs::read_dir(store.session_dir().unwrap()).unwrap().count(),
            0
        );
        assert!(!root.path().join("evil").exists());
    }

    #[test]
    fn a_lost_race_keeps_the_winner() {
        let dir = tempfile::tempdir().unwrap();
        let theirs = dir.path().join("layer");
        fs::create_dir(&theirs).unwrap();
        fs::write(theirs.join("theirs"), b"").unwrap();
        let staging = dir.path().join("staging");
        fs::create_dir(&staging).unwrap();
        fs::write(staging.join("mine"), b"").unwrap();
        assert!(!publish(&staging, &theirs).unwrap());
        assert!(theirs.join("theirs").exists());
        assert!(!theirs.join("mine").exists());
        // An empty winner is kept too (a plain rename would replace it).
        fs::remove_file(theirs.join("theirs")).unwrap();
        fs::write(theirs.join("../staging/again"), b"").unwrap();
        assert!(!publish(&staging, &theirs).unwrap());
        assert!(!theirs.join("mine").exists());
        let fresh = dir.path().join("fresh");
        assert!(publish(&staging, &fresh).unwrap());
        assert!(fresh.join("mine").exists() && !staging.exists());
    }

    #[test]
    fn prune_removes_unpacked_layers_no_image_needs() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let unpacked = root.path().join("layers/unpacked");
        let orphan = unpacked.join("ab".repeat(32));
        fs::create_dir_all(orphan.join("usr/bin")).unwrap();
        fs::write(orphan.join("usr/bin/tool"), b"x").unwrap();
        fs::write(unpacked.join("junk"), b"").unwrap();
        let report = store.prune().unwrap();
        assert_eq!(report.unpacked_removed, 2);
        assert_eq!(fs::read_dir(&unpacked).unwrap().count(), 0);
        assert_eq!(
            fs::read_dir(store.session_dir().unwrap()).unwrap().count(),
            0
        );
    }
}
