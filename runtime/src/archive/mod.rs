//! Moving images in and out of the store as tarballs: `save` (combined docker-archive + OCI
//! layout), `load` (docker archives of any version, the combined layout, OCI archives) and
//! `import` (a root filesystem tarball or directory as a one-layer image).
//!
//! Must not: change images it did not make (loaded blobs keep their bytes and digests), or
//! write anything outside the store.

mod import;
mod load;
mod save;
mod tar_out;

pub use import::{import, ImportError};
pub use load::{load, LoadError, LoadedImage};
pub use save::{save, save_to_path, SaveError};

use std::collections::HashSet;
use std::io::Read;

/// Reads an uncompressed layer tar to its end-of-archive marker and refuses entries that
/// escape the root: absolute or `..` paths, hardlinks to outside, and entries whose parent
/// path goes through a symlink of the same layer. Returns a description of the first problem.
///
/// Stand-in until `layer::scan_layer` lands on main; callers use only this function.
pub(crate) fn check_layer_entries(reader: &mut dyn Read) -> Result<(), String> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(|e| e.to_string())?;
    let mut symlinks: HashSet<String> = HashSet::new();
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path =
            clean_layer_path(&raw).ok_or_else(|| format!("entry `{raw}` escapes the root"))?;
        let through_symlink = |p: &str| {
            let mut prefix = String::new();
            for part in p
                .split('/')
                .collect::<Vec<_>>()
                .split_last()
                .map(|(_, dirs)| dirs.to_vec())
                .unwrap_or_default()
            {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(part);
                if symlinks.contains(&prefix) {
                    return true;
                }
            }
            false
        };
        if through_symlink(&path) {
            return Err(format!("entry `{raw}` is reached through a symlink"));
        }
        let kind = entry.header().entry_type();
        if kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|t| String::from_utf8_lossy(&t).into_owned())
                .unwrap_or_default();
            let cleaned = clean_layer_path(&target)
                .ok_or_else(|| format!("hardlink `{raw}` points outside the root ({target})"))?;
            if through_symlink(&cleaned) {
                return Err(format!(
                    "hardlink `{raw}` points through a symlink ({target})"
                ));
            }
        }
        if kind.is_symlink() {
            symlinks.insert(path);
        }
    }
    Ok(())
}

/// `./a/b`, `/a/b` and `a//b` are `a/b`; `a/../b` is `b`; `None` when `..` climbs above the
/// root.
fn clean_layer_path(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}
