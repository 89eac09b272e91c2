//! The image store: a directory holding content-addressed blobs, the image index (tags),
//! the build cache index and small state files, shared safely by several kiln processes.
//!
//! Layout (version 1):
//! ```text
//! <root>/version                 "kiln-store 1\n"
//! <root>/oci-layout, index.json  the store is an OCI image layout: index.json lists one
//!                                descriptor per tag (io.containerd.image.name = full name,
//!                                org.opencontainers.image.ref.name = tag), and one without
//!                                annotations per untagged image; a descriptor is a manifest
//!                                or an image index (multi-platform), whose children are blobs
//! <root>/blobs/sha256/<hex>      blobs, visible only when whole and verified
//! <root>/layers/source/<hex>     diff_id -> a compressed blob that decompresses to it
//! <root>/layers/gzip/<hex>       diff_id -> kiln's deterministic gzip of it (save cache)
//! <root>/layers/zstd/<hex>       diff_id -> kiln's deterministic zstd of it (save cache)
//! <root>/layers/unpacked/<hex>/  the layer extracted as an overlayfs lowerdir (whiteouts as
//!                                0/0 devices, opaque xattrs), made once, renamed in whole
//! <root>/cache/<sha256(key)>.json  build cache entries {"key":..., "value":...}
//! <root>/state/<name>            small state files (e.g. the context stat cache)
//! <root>/records/targets/<t>/<n>.zst  build records, one per build of a target (records.rs)
//! <root>/records/chunks/<hex>.zst     context listing chunks the records share
//! <root>/lock                    flock: held exclusively while index.json is rewritten
//! <root>/gc.lock                 flock: shared by every open Store, exclusive for prune
//! <root>/tmp/<session>/          an open Store's temporary files, made at its first write;
//!                                <session>.lock is held while the Store lives, so stale
//!                                sessions are recognised
//! ```
//! Every file is written to the session's tmp directory, fsynced and renamed into place (then
//! the directory is fsynced): killing kiln at any moment leaves a store the next command uses
//! without repair; what a dead process left in tmp/ is removed when the next session is made.
//! A Store that only reads (`ps`, `images`, `inspect`) makes no session and writes nothing.
//!
//! Must not: know tar, Dockerfiles or the builder; write anything outside its root.

mod blobs;
mod cache;
mod cache_mounts;
mod layers;
mod prune;
mod records;
mod refs;
mod unpacked;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub use blobs::{BlobWriter, StagedBlob};
pub use cache_mounts::CacheMountLock;
pub use prune::{PruneOptions, PruneReport};
pub use records::RecordsPruned;
pub use refs::{Image, Removed, Stored, StoredIndex};

pub use crate::image::{ImageName, ImageRef, ReferenceError};
pub use crate::oci::Digest;

/// The first line of `<root>/version`.
const VERSION_CONTENT: &str = "kiln-store 1\n";
/// How old a half-created tmp session must be before another process may remove it.
const STALE_SESSION_AGE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum StoreError {
    #[error("cannot {action} {}: {error}", path.display())]
    #[diagnostic(code(kiln::store::io))]
    Io {
        action: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    #[error("no image store location: neither --root, KILN_ROOT, XDG_DATA_HOME nor HOME is set")]
    #[diagnostic(code(kiln::store::no_root), help("pass --root DIR or set KILN_ROOT"))]
    NoRoot,
    #[error("the store location {} is not a directory", root.display())]
    #[diagnostic(
        code(kiln::store::root_not_a_directory),
        help("--root (or KILN_ROOT) names the store's directory; give a directory, or a path that does not exist yet")
    )]
    RootNotADirectory { root: PathBuf },
    #[error("{} is not a kiln image store (it is not empty and has no `version` file)", root.display())]
    #[diagnostic(
        code(kiln::store::not_a_store),
        help("pass --root with an empty or new directory, or an existing kiln store")
    )]
    NotAStore { root: PathBuf },
    #[error("the image store {} has layout `{found}`, this kiln reads `{}`", root.display(), VERSION_CONTENT.trim_end())]
    #[diagnostic(
        code(kiln::store::version),
        help("use the kiln version that made this store, or another --root")
    )]
    UnsupportedVersion { root: PathBuf, found: String },
    #[error("content of {what} has digest {actual}, expected {expected}")]
    #[diagnostic(
        code(kiln::store::digest_mismatch),
        help("the data was corrupted or truncated in transit")
    )]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("blob {digest} is not in the store")]
    #[diagnostic(
        code(kiln::store::missing_blob),
        help("the store lost a blob an image needs; load or build the image again")
    )]
    MissingBlob { digest: Digest },
    #[error("no such image: {reference}")]
    #[diagnostic(code(kiln::store::no_such_image), help("`kiln images` lists the images in {}", root.display()))]
    NoSuchImage { reference: String, root: PathBuf },
    #[error("image ID prefix `{prefix}` is ambiguous: it matches {}", candidates.join(", "))]
    #[diagnostic(
        code(kiln::store::ambiguous_id),
        help("give more hex digits of the image ID")
    )]
    AmbiguousId {
        prefix: String,
        candidates: Vec<String>,
    },
    #[error("image {id} has several tags ({}); refusing to remove it by ID", tags.join(", "))]
    #[diagnostic(code(kiln::store::image_has_tags), help("remove the tags one by one: `kiln rmi {}`", tags.join(" ")))]
    ImageHasTags { id: String, tags: Vec<String> },
    #[error(
        "{reference} is an image index with no image for platform {wanted} (it has: {available})"
    )]
    #[diagnostic(
        code(kiln::store::no_platform),
        help("pull the image for this machine's platform: `kiln pull --platform {wanted} {reference}`")
    )]
    NoPlatform {
        reference: String,
        wanted: String,
        available: String,
    },
    #[error("{reference} is a platform's image inside an image index, not an image of its own")]
    #[diagnostic(
        code(kiln::store::part_of_index),
        help("remove the index that holds it (`kiln images` lists it); prune then deletes its images")
    )]
    PartOfIndex { reference: String },
    #[error("{what} is not valid JSON of the expected shape: {error}")]
    #[diagnostic(code(kiln::store::bad_json))]
    BadJson {
        what: String,
        error: serde_json::Error,
    },
    #[error("invalid image: {reason}")]
    #[diagnostic(code(kiln::store::invalid_image))]
    InvalidImage { reason: String },
    #[error("layer {diff_id} is not in the store, uncompressed or compressed")]
    #[diagnostic(
        code(kiln::store::unknown_layer),
        help("load or build the image that has this layer again")
    )]
    UnknownLayer { diff_id: Digest },
    #[error("`{name}` is not a valid state file name")]
    #[diagnostic(
        code(kiln::store::state_name),
        help("state names use letters, digits, `.`, `_` and `-` only")
    )]
    InvalidStateName { name: String },
    #[error("the image store {} is in use by another kiln process", root.display())]
    #[diagnostic(
        code(kiln::store::busy),
        help("run `kiln prune` again when the other kiln commands have finished")
    )]
    Busy { root: PathBuf },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Layer(#[from] crate::layer::LayerError),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Wraps an io::Error with what was being done to which path.
pub(crate) fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |error| StoreError::Io {
        action,
        path: path.to_path_buf(),
        error,
    }
}

/// The store location: `--root DIR`, else `$KILN_ROOT`, else `$XDG_DATA_HOME/kiln`, else
/// `~/.local/share/kiln`. Empty variables count as unset.
pub fn default_root(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(root) = flag {
        return Ok(root);
    }
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(root) = var("KILN_ROOT") {
        return Ok(root);
    }
    if let Some(xdg) = var("XDG_DATA_HOME").filter(|p| p.is_absolute()) {
        return Ok(xdg.join("kiln"));
    }
    if let Some(home) = var("HOME") {
        return Ok(home.join(".local/share/kiln"));
    }
    Err(StoreError::NoRoot)
}

/// An open image store. Cheap to share between threads (`&Store` is `Sync`).
pub struct Store {
    root: PathBuf,
    /// Shared flock on `gc.lock` for the life of this Store (prune needs it exclusively).
    gc_lock: File,
    /// This Store's private directory under tmp/, made at the first write.
    session: std::sync::OnceLock<Session>,
    /// Held while the session is made, so two threads make one.
    session_birth: std::sync::Mutex<()>,
}

/// A Store's private directory under tmp/ and the lock file that marks it alive.
struct Session {
    dir: PathBuf,
    lock_path: PathBuf,
    _lock: File,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("root", &self.root).finish()
    }
}

impl Store {
    /// Opens the store at `root`, creating it (and its parents) when missing.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root: PathBuf = root.into();
        if let Some(found) = root.ancestors().find(|a| a.exists()) {
            if !found.is_dir() {
                return Err(StoreError::RootNotADirectory {
                    root: found.to_path_buf(),
                });
            }
        }
        fs::create_dir_all(&root).map_err(io_err("create the store directory", &root))?;
        // Absolute, so that paths handed to processes that change directory (a container's
        // supervisor runs in `/`) still name this store.
        let root = std::path::absolute(&root).map_err(io_err("resolve", &root))?;
        let version_path = root.join("version");
        match fs::read_to_string(&version_path) {
            Ok(found) if found == VERSION_CONTENT => {}
            Ok(found) => {
                return Err(StoreError::UnsupportedVersion {
                    root,
                    found: found.trim_end().to_string(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => initialise(&root)?,
            Err(e) => return Err(io_err("read", &version_path)(e)),
        }
        for dir in [
            "blobs/sha256",
            "layers/source",
            "layers/gzip",
            "layers/zstd",
            "layers/unpacked",
            "cache",
            "state",
            "records/targets",
            "records/chunks",
            "tmp",
        ] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(io_err("create", &path))?;
        }
        let gc_path = root.join("gc.lock");
        let gc_lock = open_lock_file(&gc_path)?;
        gc_lock.lock_shared().map_err(io_err("lock", &gc_path))?;
        Ok(Store {
            root,
            gc_lock,
            session: std::sync::OnceLock::new(),
            session_birth: std::sync::Mutex::new(()),
        })
    }

    /// This Store's session directory, made (after removing what dead processes left in
    /// tmp/) the first time anything is staged.
    fn session_dir(&self) -> Result<&Path> {
        if let Some(session) = self.session.get() {
            return Ok(&session.dir);
        }
        let _birth = self
            .session_birth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(session) = self.session.get() {
            return Ok(&session.dir);
        }
        let tmp = self.root.join("tmp");
        remove_stale_sessions(&tmp);
        let session = new_session(&tmp)?;
        Ok(&self.session.get_or_init(|| session).dir)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with this digest lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// A new temporary file in this Store's session directory, deleted when dropped.
    pub(crate) fn temp_file(&self) -> Result<tempfile::NamedTempFile> {
        let dir = self.session_dir()?;
        tempfile::Builder::new()
            .prefix("t")
            .tempfile_in(dir)
            .map_err(io_err("create a temporary file in", dir))
    }

    /// A private scratch directory for this process (in the Store's tmp session), deleted
    /// when dropped; if the process dies, the next `Store::open` removes it. Nothing else in
    /// tmp/ is safe from that cleanup.
    pub fn scratch_dir(&self) -> Result<tempfile::TempDir> {
        let dir = self.session_dir()?;
        tempfile::Builder::new()
            .prefix("scratch")
            .tempdir_in(dir)
            .map_err(io_err("create a scratch directory in", dir))
    }

    /// Writes `bytes` to `dest` atomically (temp file, rename) but without waiting for the
    /// disk: for run-time state (container records) that a crash may lose but never tear.
    pub(crate) fn write_atomic_volatile(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        let mut tmp = self.temp_file()?;
        tmp.write_all(bytes).map_err(io_err("write", tmp.path()))?;
        tmp.persist(dest)
            .map_err(|e| io_err("rename a temporary file to", dest)(e.error))?;
        Ok(())
    }

    /// Writes `bytes` to `dest` atomically: temp file, fsync, rename, fsync of the directory.
    pub(crate) fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        let mut tmp = self.temp_file()?;
        tmp.write_all(bytes).map_err(io_err("write", tmp.path()))?;
        tmp.as_file()
            .sync_all()
            .map_err(io_err("sync", tmp.path()))?;
        tmp.persist(dest)
            .map_err(|e| io_err("rename a temporary file to", dest)(e.error))?;
        sync_parent(dest)
    }

    /// Runs `f` while holding the exclusive index lock (`<root>/lock`).
    pub(crate) fn with_lock<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let path = self.root.join("lock");
        let lock = open_lock_file(&path)?;
        lock.lock().map_err(io_err("lock", &path))?;
        let out = f();
        // Closing the file releases the lock, also when `f` failed.
        drop(lock);
        out
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // Best effort: a failure here leaves a stale session the next one removes.
        if let Some(session) = self.session.get() {
            let _ = fs::remove_dir_all(&session.dir);
            let _ = fs::remove_file(&session.lock_path);
        }
    }
}

/// Creates the layout of a new store in `root`, refusing a non-empty directory that is not one.
fn initialise(root: &Path) -> Result<()> {
    let known = [
        "version",
        "tmp",
        "blobs",
        "layers",
        "cache",
        "state",
        "records",
        "lock",
        "gc.lock",
        "index.json",
        "oci-layout",
    ];
    let entries = fs::read_dir(root).map_err(io_err("read", root))?;
    for entry in entries {
        let entry = entry.map_err(io_err("read", root))?;
        if !known.iter().any(|k| entry.file_name() == *k) {
            return Err(StoreError::NotAStore {
                root: root.to_path_buf(),
            });
        }
    }
    let tmp = root.join("tmp");
    fs::create_dir_all(&tmp).map_err(io_err("create", &tmp))?;
    let write = |name: &str, content: &[u8]| -> Result<()> {
        let dest = root.join(name);
        let mut file = tempfile::Builder::new()
            .prefix("init")
            .tempfile_in(&tmp)
            .map_err(io_err("create a temporary file in", &tmp))?;
        file.write_all(content)
            .map_err(io_err("write", file.path()))?;
        file.as_file()
            .sync_all()
            .map_err(io_err("sync", file.path()))?;
        file.persist(&dest)
            .map_err(|e| io_err("rename a temporary file to", &dest)(e.error))?;
        Ok(())
    };
    write("oci-layout", crate::oci::OCI_LAYOUT_FILE)?;
    // The version file goes last: its presence says the layout is complete.
    write("version", VERSION_CONTENT.as_bytes())?;
    sync_dir(root)
}

fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err("open", path))
}

/// fsync a directory so a rename into it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync", dir))
}

pub(crate) fn sync_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// Creates `tmp/<id>/` and `tmp/<id>.lock`, the lock held by the returned file.
/// The lock file is locked under a name the cleaner ignores, then renamed, so no other
/// process can mistake a session being born for a dead one.
fn new_session(tmp: &Path) -> Result<Session> {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let id = format!("{}-{nanos}", std::process::id());
    let birth = tempfile::Builder::new()
        .prefix(&format!("{id}-"))
        .suffix(".locking")
        .tempfile_in(tmp)
        .map_err(io_err("create a session lock in", tmp))?;
    birth
        .as_file()
        .lock()
        .map_err(io_err("lock", birth.path()))?;
    let name = birth
        .path()
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".locking"))
        .unwrap_or(&id)
        .to_string();
    let lock_path = tmp.join(format!("{name}.lock"));
    let dir = tmp.join(&name);
    let file = birth
        .persist(&lock_path)
        .map_err(|e| io_err("rename a session lock to", &lock_path)(e.error))?;
    fs::create_dir(&dir).map_err(io_err("create", &dir))?;
    Ok(Session {
        dir,
        lock_path,
        _lock: file,
    })
}

/// Removes what dead processes left in tmp/: sessions whose lock nobody holds, and leftovers
/// (half-born locks, orphaned directories, stray files) older than a minute.
fn remove_stale_sessions(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    let old = |path: &Path| {
        fs::symlink_metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_SESSION_AGE)
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if let Some(session) = name.strip_suffix(".lock") {
            let Ok(file) = OpenOptions::new().read(true).write(true).open(&path) else {
                continue;
            };
            if file.try_lock().is_ok() {
                let _ = fs::remove_dir_all(tmp.join(session));
                let _ = fs::remove_file(&path);
            }
        } else if name.ends_with(".locking") {
            if old(&path) {
                if let Ok(file) = OpenOptions::new().read(true).write(true).open(&path) {
                    if file.try_lock().is_ok() {
                        let _ = fs::remove_file(&path);
                    }
                }
            }
        } else if !tmp.join(format!("{name}.lock")).exists() && old(&path) {
            if path.is_dir() {
                let _ = fs::remove_dir_all(&path);
            } else {
                let _ = fs::remove_file(&path);
            }
        }
    }
}
