//! Scratch space and fixtures.

use super::*;

/// This process's scratch directory, `target/tmp/e2e/<pid>`; directories of earlier test
/// processes that are no longer running are removed when it is first made.
pub fn scratch_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let parent = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e");
        std::fs::create_dir_all(&parent).expect("create target/tmp/e2e");
        if let Ok(entries) = std::fs::read_dir(&parent) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let alive = name
                    .parse::<u32>()
                    .map(|pid| Path::new("/proc").join(pid.to_string()).exists())
                    .unwrap_or(true);
                if !alive {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = parent.join(std::process::id().to_string());
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        dir
    })
}

/// A fresh directory under the scratch root, removed when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("t")
        .tempdir_in(scratch_root())
        .expect("create temp dir")
}

/// `tests/fixtures/<rel>` in the source tree.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Copy a checked-in fixture to `dst` with modes that do not depend on how the repository
/// was checked out (git keeps only the executable bit, and the checkout applies its umask):
/// directories 0755, files 0755 when executable in the checkout, else 0644. Symlinks are
/// copied as symlinks.
pub fn copy_fixture(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap_or_else(|e| panic!("mkdir {}: {e}", dst.display()));
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let mut names: Vec<_> = std::fs::read_dir(src)
        .unwrap_or_else(|e| panic!("read fixture {}: {e}", src.display()))
        .map(|e| e.expect("dir entry").file_name())
        .collect();
    names.sort();
    for name in names {
        let from = src.join(&name);
        let to = dst.join(&name);
        let meta = std::fs::symlink_metadata(&from).expect("stat fixture entry");
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&from).expect("readlink");
            std::os::unix::fs::symlink(target, &to).expect("symlink");
        } else if meta.is_dir() {
            copy_fixture(&from, &to);
        } else {
            std::fs::copy(&from, &to).expect("copy fixture file");
            let mode = if meta.mode() & 0o100 != 0 {
                0o755
            } else {
                0o644
            };
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
    }
}

/// Write a file (creating parents) with an explicit mode.
pub fn write_file(path: &Path, content: &[u8], mode: u32) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).expect("mkdir parent");
    }
    std::fs::write(path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn sha256_file(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    sha256_hex(&bytes)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
