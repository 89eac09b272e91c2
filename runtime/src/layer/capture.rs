//! Capturing a RUN step's changes: an overlayfs upper directory as layer entries.
//!
//! Owns: walking an upper directory (after the overlay is unmounted, a plain directory) and
//! deciding which of its paths are changes: overlayfs whiteouts (0/0 character devices)
//! become `Whiteout`, opaque directories become `OpaqueDir`, and directories that are there
//! only because overlayfs copied them up to hold a changed child are left out when nothing
//! below them is captured.
//! Must not: stat or read host files itself (that is `host`), mount anything, or choose entry
//! order (the writer sorts; the order of the returned entries does not matter).
//!
//! Rules:
//! - every entry's mtime is the build's SOURCE_DATE_EPOCH (the `mtime` argument); modes and
//!   numeric owners are as on disk; xattrs are the writer's allow-list only
//!   (`security.capability`), so `trusted.overlay.*`/`user.overlay.*` never reach a layer;
//! - a directory is captured when it is opaque (`trusted.overlay.opaque=y`, or
//!   `user.overlay.opaque=y` for `userxattr` mounts), when something below it is captured
//!   (docker's layers carry the parents of changed paths), or when the lower layers (`lower`,
//!   their merged view) have no directory there with the same mode, uid and gid;
//! - regular files with several links carry `(device, inode)`, so the writer emits the second
//!   and later names as hardlinks; sockets are skipped (a tar cannot hold them);
//! - the upper's root directory itself is never an entry (layers have no root entry), even if
//!   overlayfs marked it opaque;
//! - mount-point stubs (paths set-up created only to mount something there, given by the
//!   caller) are left out when the lower layers lack them and they are still stubs: an empty
//!   file, or a directory holding nothing but stubs. The upper directory is never changed, so
//!   a running container's upper can be captured (`kiln commit`, `kiln diff`).
//!
//! The walk is sequential: upper directories hold one step's changes, and the writer's
//! reading of the files dominates the cost.

use super::path::join;
use super::{host, Entry, EntryKind, FsView, LayerError};
use std::collections::HashSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// The layer entries for the changes recorded in the overlay upper directory `upper`, over
/// the lower layers whose merged view is `lower`; every entry gets `mtime`.
pub fn capture_upper(upper: &Path, lower: &FsView, mtime: u64) -> Result<Vec<Entry>, LayerError> {
    capture_changes(upper, lower, mtime, &[])
}

/// [`capture_upper`] leaving out the mount-point `stubs` set-up created (paths inside the
/// root, as the sandbox reports them).
pub fn capture_changes(
    upper: &Path,
    lower: &FsView,
    mtime: u64,
    stubs: &[String],
) -> Result<Vec<Entry>, LayerError> {
    let stubs: HashSet<&str> = stubs
        .iter()
        .map(|s| s.trim_start_matches('/').trim_end_matches('/'))
        .filter(|s| !s.is_empty() && lower.get(s).is_none())
        .collect();
    let mut entries = Vec::new();
    capture_dir(upper, "", lower, mtime, &stubs, &mut entries)?;
    Ok(entries)
}

fn capture_dir(
    dir: &Path,
    rel: &str,
    lower: &FsView,
    mtime: u64,
    stubs: &HashSet<&str>,
    out: &mut Vec<Entry>,
) -> Result<bool, LayerError> {
    let listing = std::fs::read_dir(dir)
        .map_err(|e| LayerError::io(format!("reading {}", dir.display()), e))?;
    let mut names = Vec::new();
    for item in listing {
        let item = item.map_err(|e| LayerError::io(format!("reading {}", dir.display()), e))?;
        let name = item
            .file_name()
            .into_string()
            .map_err(|raw| LayerError::InvalidEntry {
                path: join(rel, &raw.to_string_lossy()),
                reason: "the name is not valid UTF-8".to_string(),
            })?;
        names.push(name);
    }
    names.sort();

    // Whether everything in this directory is a stub left out.
    let mut only_stubs = true;
    for name in names {
        let path = dir.join(&name);
        let rel_path = join(rel, &name);
        let meta = host::lstat(&path)?;
        let file_type = meta.file_type();
        let stub = stubs.contains(rel_path.as_str());
        if stub && file_type.is_file() && meta.len() == 0 {
            continue;
        }
        if file_type.is_char_device() && meta.rdev() == 0 {
            only_stubs = false;
            out.push(Entry {
                path: rel_path,
                kind: EntryKind::Whiteout,
                mode: 0,
                uid: 0,
                gid: 0,
                mtime,
                xattrs: Vec::new(),
            });
            continue;
        }
        let (uid, gid) = (u64::from(meta.uid()), u64::from(meta.gid()));
        if file_type.is_dir() {
            let opaque = host::overlay_opaque(&path)?;
            let before = out.len();
            let inner_stubs = capture_dir(&path, &rel_path, lower, mtime, stubs, out)?;
            if stub && inner_stubs && out.len() == before {
                continue;
            }
            only_stubs = false;
            let mode = meta.mode() & 0o7777;
            let copied_up = !opaque
                && out.len() == before
                && lower
                    .get(&rel_path)
                    .is_some_and(|l| l.is_dir() && l.mode == mode && l.uid == uid && l.gid == gid);
            if copied_up {
                continue;
            }
            if let Some(mut entry) =
                host::entry_from_metadata(&path, &meta, rel_path, uid, gid, mtime)?
            {
                if opaque {
                    // The writer writes an `OpaqueDir` as the directory's own header plus
                    // its `.wh..wh..opq` marker.
                    entry.kind = EntryKind::OpaqueDir;
                }
                out.push(entry);
            }
        } else {
            only_stubs = false;
            if let Some(entry) = host::entry_from_metadata(&path, &meta, rel_path, uid, gid, mtime)?
            {
                out.push(entry);
            }
        }
    }
    Ok(only_stubs)
}
