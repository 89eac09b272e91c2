//! Extracting one layer tar to disk in overlayfs lowerdir format.
//!
//! Owns: turning the entries of an uncompressed layer tar (possibly from a hostile image)
//! into files, directories, links and device nodes below an empty directory, with their
//! modes, numeric owners, mtimes and extended attributes, and the overlayfs encoding of
//! deletions (`.wh.<name>` becomes a 0/0 character device, `.wh..wh..opq` the
//! `trusted.overlay.opaque=y` xattr on its directory).
//! Must not: write outside the destination, follow any symlink below it, know the store's
//! layout, or merge layers (each layer is its own lowerdir; the kernel merges them).
//!
//! How paths stay inside the destination:
//! - entries are read with `reader::scan_layer_file`, which cleans paths (`..` above the
//!   root refused), refuses entries and hardlink targets whose parents go through a symlink
//!   of the same layer, and refuses whiteouts of `.`/`..`; the whole tar is scanned before
//!   anything is written, so a refused tar leaves `dest` empty;
//! - every parent directory is opened component by component from a descriptor of `dest`
//!   with `openat(O_DIRECTORY | O_NOFOLLOW)`, and every final component is created or changed
//!   with `*at` calls that do not follow symlinks; nothing is ever resolved by path;
//! - a hardlink must name a regular file extracted earlier (as `view::FsView` and the writer
//!   require): a hardlink to a symlink, a device or a directory is refused.
//!
//! Semantics (docker's, and `view`'s):
//! - a later entry replaces an earlier one at the same path; a directory entry over an
//!   existing directory only updates its metadata (their contents merge); a whiteout never
//!   replaces an entry of its own layer (it hides lower layers only, whatever its position
//!   in the tar, as in `view`), while an entry after a whiteout replaces it;
//! - a missing parent is created as a directory 0755, 0:0, mtime 0; a non-directory where a
//!   parent is needed is replaced by such a directory (as `view` does);
//! - directory mtimes are set after everything else, so creating children does not undo
//!   them; hardlink entries keep the metadata of the file they link to;
//! - xattrs applied: `security.capability`, `user.*` and `trusted.*` (on files and
//!   directories; `trusted.*` and `security.capability` also on device nodes and fifos);
//!   `trusted.overlay.*` and `user.overlay.*` from the tar are dropped (only the opaque
//!   marker may set overlay state), as are all other namespaces and all xattrs of symlinks;
//! - a real character device 0/0 in the tar is extracted as one, so overlayfs treats it as
//!   a whiteout exactly as it would treat the `.wh.` form.
//!
//! Needs root (or CAP_CHOWN, CAP_MKNOD, CAP_SYS_ADMIN for `trusted.*`) and `/proc` (device
//! nodes are chmod-ed through `/proc/self/fd` of an `O_PATH` descriptor). Directory nesting is
//! bounded by the process's descriptor limit (one descriptor per open level): a deeper tree
//! fails with an error, it does not crash.

use super::path::{file_name, parent};
use super::reader::scan_layer_file;
use super::{Entry, EntryKind, LayerError, TarOffset};
use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{
    fchmod, fstatat, futimens, makedev, mkdirat, mknodat, utimensat, Mode, SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::rc::Rc;

/// The overlayfs xattr that makes a directory hide the layers below it.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Buffer for header reads and for the copy fallback (when `copy_file_range` cannot be used).
const BUFFER: usize = 1 << 20;

/// Unpacks the uncompressed layer tar `tar` into `dest`, an existing empty directory, in
/// overlayfs lowerdir format (see the module docs). On error `dest` may hold part of the
/// layer; callers extract into a staging directory and discard it.
pub fn extract_layer(tar: &Path, dest: &Path) -> Result<(), LayerError> {
    extract(tar, dest).map_err(|e| LayerError::InLayer {
        layer: tar.to_path_buf(),
        source: Box::new(e),
    })
}

fn extract(tar: &Path, dest: &Path) -> Result<(), LayerError> {
    let file =
        File::open(tar).map_err(|e| LayerError::io(format!("opening {}", tar.display()), e))?;
    let scanned = scan_layer_file(&file)?;

    let mut listing = std::fs::read_dir(dest)
        .map_err(|e| LayerError::io(format!("reading {}", dest.display()), e))?;
    if listing.next().is_some() {
        return Err(LayerError::NotEmpty {
            path: dest.to_path_buf(),
        });
    }
    drop(listing);
    let root = openat(
        None,
        dest,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys(|| format!("opening {}", dest.display())))?;
    // SAFETY: `openat` just returned this descriptor and nothing else owns it.
    let root = Rc::new(unsafe { OwnedFd::from_raw_fd(root) });

    let mut extractor = Extractor {
        tar: &file,
        root,
        stack: Vec::new(),
        dir_times: BTreeMap::new(),
        buffer: Vec::new(),
        copy_file_range: true,
    };
    for entry in &scanned {
        extractor.apply(entry)?;
    }
    extractor.set_dir_times()
}

/// Maps an errno to a `LayerError::Io` with a sentence saying what was being done.
fn sys<C: FnOnce() -> String>(context: C) -> impl FnOnce(Errno) -> LayerError {
    move |errno| LayerError::io(context(), std::io::Error::from(errno))
}

fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: only called with descriptors a syscall just returned, owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn timespec(seconds: u64) -> TimeSpec {
    TimeSpec::new(i64::try_from(seconds).unwrap_or(i64::MAX), 0)
}

/// Flags for opening a directory below the root without following a symlink.
fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

struct Extractor<'t> {
    tar: &'t File,
    root: Rc<OwnedFd>,
    /// The directories of the last parent opened, one per component: `stack[i]` is the
    /// directory named by the first `i + 1` components. Sorted tars reuse most of it.
    stack: Vec<(String, Rc<OwnedFd>)>,
    /// Directory mtimes to set at the end (explicit entries, and 0 for implicit parents).
    dir_times: BTreeMap<String, u64>,
    buffer: Vec<u8>,
    /// False once `copy_file_range` reported it cannot copy between these files.
    copy_file_range: bool,
}

impl Extractor<'_> {
    fn apply(&mut self, entry: &Entry<TarOffset>) -> Result<(), LayerError> {
        let path = entry.path.as_str();
        if entry.kind == EntryKind::OpaqueDir {
            let dir = match self.dir(path, true)? {
                Some(dir) => dir,
                None => return Err(not_a_dir(path)),
            };
            let file = File::from(dir.try_clone().map_err(|e| {
                LayerError::io(format!("duplicating the descriptor of `{path}`"), e)
            })?);
            return xattr::FileExt::set_xattr(&file, OPAQUE_XATTR, b"y")
                .map_err(|e| LayerError::io(format!("marking `{path}` opaque"), e));
        }
        let name = file_name(path);
        let dir = match self.dir(parent(path), true)? {
            Some(dir) => dir,
            None => return Err(not_a_dir(parent(path))),
        };
        let at = dir.as_raw_fd();
        let uid = Uid::from_raw(id(entry.uid, path, "uid")?);
        let gid = Gid::from_raw(id(entry.gid, path, "gid")?);
        let mode = Mode::from_bits_truncate(entry.mode & 0o7777);
        let time = timespec(entry.mtime);
        match &entry.kind {
            EntryKind::OpaqueDir => Ok(()),
            EntryKind::Dir => {
                let fd = self.make_dir(at, name, path)?;
                fchown(fd.as_raw_fd(), Some(uid), Some(gid))
                    .map_err(sys(|| format!("changing the owner of `{path}`")))?;
                fchmod(fd.as_raw_fd(), mode)
                    .map_err(sys(|| format!("changing the mode of `{path}`")))?;
                set_xattrs(&File::from(fd), entry, true)?;
                self.dir_times.insert(path.to_string(), entry.mtime);
                Ok(())
            }
            EntryKind::File {
                size,
                source: TarOffset(data_offset),
            } => {
                let flags = OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC;
                let create = || openat(Some(at), name, flags, Mode::from_bits_truncate(0o600));
                let fd = self.create(at, name, path, create)?;
                let out = File::from(owned(fd));
                self.copy_data(&out, *data_offset, *size, path)?;
                fchown(out.as_raw_fd(), Some(uid), Some(gid))
                    .map_err(sys(|| format!("changing the owner of `{path}`")))?;
                fchmod(out.as_raw_fd(), mode)
                    .map_err(sys(|| format!("changing the mode of `{path}`")))?;
                set_xattrs(&out, entry, true)?;
                futimens(out.as_raw_fd(), &time, &time)
                    .map_err(sys(|| format!("setting the mtime of `{path}`")))
            }
            EntryKind::Symlink { target } => {
                self.create(at, name, path, || {
                    symlinkat(target.as_str(), Some(at), name)
                })?;
                self.finish_node(at, name, path, uid, gid, None, &time)
            }
            EntryKind::Hardlink { target } => self.hardlink(&dir, name, path, target),
            EntryKind::Whiteout => {
                let nofollow = nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW;
                if fstatat(Some(at), name, nofollow).is_ok() {
                    // This layer has its own entry here: a whiteout only hides lower layers.
                    return Ok(());
                }
                let dev = makedev(0, 0);
                self.create(at, name, path, || {
                    mknodat(Some(at), name, SFlag::S_IFCHR, Mode::empty(), dev)
                })?;
                let root = Uid::from_raw(0);
                let wheel = Gid::from_raw(0);
                self.finish_node(
                    at,
                    name,
                    path,
                    root,
                    wheel,
                    Some((Mode::empty(), None)),
                    &time,
                )
            }
            EntryKind::CharDevice { major, minor } | EntryKind::BlockDevice { major, minor } => {
                let kind = if matches!(entry.kind, EntryKind::CharDevice { .. }) {
                    SFlag::S_IFCHR
                } else {
                    SFlag::S_IFBLK
                };
                let dev = makedev(u64::from(*major), u64::from(*minor));
                self.create(at, name, path, || {
                    mknodat(Some(at), name, kind, Mode::empty(), dev)
                })?;
                self.finish_node(at, name, path, uid, gid, Some((mode, Some(entry))), &time)
            }
            EntryKind::Fifo => {
                self.create(at, name, path, || {
                    mknodat(Some(at), name, SFlag::S_IFIFO, Mode::empty(), 0)
                })?;
                self.finish_node(at, name, path, uid, gid, Some((mode, Some(entry))), &time)
            }
        }
    }

    /// Owner, then mode and xattrs (for device nodes and fifos, through an `O_PATH`
    /// descriptor), then mtime of a node that cannot be opened for I/O.
    #[allow(clippy::too_many_arguments)]
    fn finish_node(
        &self,
        at: RawFd,
        name: &str,
        path: &str,
        uid: Uid,
        gid: Gid,
        mode_and_xattrs: Option<(Mode, Option<&Entry<TarOffset>>)>,
        time: &TimeSpec,
    ) -> Result<(), LayerError> {
        fchownat(
            Some(at),
            name,
            Some(uid),
            Some(gid),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(sys(|| format!("changing the owner of `{path}`")))?;
        if let Some((mode, xattrs_of)) = mode_and_xattrs {
            let fd = openat(
                Some(at),
                name,
                OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map(owned)
            .map_err(sys(|| format!("opening `{path}`")))?;
            let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
            nix::sys::stat::fchmodat(
                None,
                proc_path.as_str(),
                mode,
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
            .map_err(sys(|| format!("changing the mode of `{path}`")))?;
            if let Some(entry) = xattrs_of {
                for (key, value) in entry.xattrs.iter().filter(|(k, _)| applies(k, false)) {
                    xattr::set_deref(&proc_path, key, value).map_err(|e| {
                        LayerError::io(format!("setting extended attribute {key} of `{path}`"), e)
                    })?;
                }
            }
        }
        utimensat(Some(at), name, time, time, UtimensatFlags::NoFollowSymlink)
            .map_err(sys(|| format!("setting the mtime of `{path}`")))
    }

    /// Runs `create` (which makes `name` in `at`); if something is in the way, removes it
    /// and tries once more.
    fn create<T>(
        &mut self,
        at: RawFd,
        name: &str,
        path: &str,
        create: impl Fn() -> nix::Result<T>,
    ) -> Result<T, LayerError> {
        match create() {
            Err(Errno::EEXIST) => {
                self.remove(at, name, path)?;
                create().map_err(sys(|| format!("creating `{path}`")))
            }
            other => other.map_err(sys(|| format!("creating `{path}`"))),
        }
    }

    /// Creates directory `name` in `at` (keeping an existing directory, replacing anything
    /// else) and opens it.
    fn make_dir(&mut self, at: RawFd, name: &str, path: &str) -> Result<OwnedFd, LayerError> {
        let private = Mode::from_bits_truncate(0o700);
        match mkdirat(Some(at), name, private) {
            Ok(()) => {}
            Err(Errno::EEXIST) => {
                let stat = fstatat(Some(at), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
                    .map_err(sys(|| format!("reading metadata of `{path}`")))?;
                if stat.st_mode & SFlag::S_IFMT.bits() != SFlag::S_IFDIR.bits() {
                    self.remove(at, name, path)?;
                    mkdirat(Some(at), name, private)
                        .map_err(sys(|| format!("creating directory `{path}`")))?;
                }
            }
            Err(e) => return Err(sys(|| format!("creating directory `{path}`"))(e)),
        }
        openat(Some(at), name, dir_flags(), Mode::empty())
            .map(owned)
            .map_err(sys(|| format!("opening directory `{path}`")))
    }

    /// Removes whatever is at `name` in `at` (`path` below the root), directories with
    /// their contents.
    fn remove(&mut self, at: RawFd, name: &str, path: &str) -> Result<(), LayerError> {
        match unlinkat(Some(at), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(Errno::EISDIR) => {
                self.forget(path);
                remove_tree(at, name, path)
            }
            Err(e) => Err(sys(|| format!("removing `{path}`"))(e)),
        }
    }

    /// Drops the cached descriptors of `path` and everything below it (it is being removed).
    fn forget(&mut self, path: &str) {
        let depth = path.split('/').count();
        let cached = self.stack.len() >= depth
            && self
                .stack
                .iter()
                .zip(path.split('/'))
                .all(|((name, _), component)| name == component);
        if cached {
            self.stack.truncate(depth - 1);
        }
    }

    /// The directory at `path` (the root when empty), opened without following symlinks.
    /// With `create`, missing parents are made (0755, 0:0, mtime 0) and non-directories in
    /// the way replaced; without it, `None` when some component is missing or not a
    /// directory.
    fn dir(&mut self, path: &str, create: bool) -> Result<Option<Rc<OwnedFd>>, LayerError> {
        if path.is_empty() {
            return Ok(Some(self.root.clone()));
        }
        let components: Vec<&str> = path.split('/').collect();
        let common = self
            .stack
            .iter()
            .zip(&components)
            .take_while(|((cached, _), wanted)| cached == *wanted)
            .count();
        self.stack.truncate(common);
        for (depth, component) in components.iter().enumerate().skip(common) {
            let at = match self.stack.last() {
                Some((_, fd)) => fd.clone(),
                None => self.root.clone(),
            };
            let here = || components[..=depth].join("/");
            let fd = match openat(Some(at.as_raw_fd()), *component, dir_flags(), Mode::empty()) {
                Ok(fd) => owned(fd),
                Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) if !create => return Ok(None),
                Err(errno @ (Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP)) => {
                    let here = here();
                    if errno != Errno::ENOENT {
                        // A file, device or symlink where a directory is needed.
                        self.remove(at.as_raw_fd(), component, &here)?;
                    }
                    self.implicit_dir(at.as_raw_fd(), component, &here)?
                }
                Err(e) => return Err(sys(|| format!("opening directory `{}`", here()))(e)),
            };
            self.stack.push((component.to_string(), Rc::new(fd)));
        }
        Ok(self.stack.last().map(|(_, fd)| fd.clone()))
    }

    /// Creates a missing parent directory: 0755, 0:0, mtime 0 (set at the end).
    fn implicit_dir(&mut self, at: RawFd, name: &str, path: &str) -> Result<OwnedFd, LayerError> {
        let fd = self.make_dir(at, name, path)?;
        fchown(
            fd.as_raw_fd(),
            Some(Uid::from_raw(0)),
            Some(Gid::from_raw(0)),
        )
        .map_err(sys(|| format!("changing the owner of `{path}`")))?;
        fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(0o755))
            .map_err(sys(|| format!("changing the mode of `{path}`")))?;
        self.dir_times.insert(path.to_string(), 0);
        Ok(fd)
    }

    /// Links `name` in `dir` (`path`) to the regular file `target` extracted earlier.
    fn hardlink(
        &mut self,
        dir: &OwnedFd,
        name: &str,
        path: &str,
        target: &str,
    ) -> Result<(), LayerError> {
        let refused = || LayerError::HardlinkTarget {
            path: path.to_string(),
            target: target.to_string(),
        };
        let Some(target_dir) = self.dir(parent(target), false)? else {
            return Err(refused());
        };
        let target_name = file_name(target);
        let nofollow = nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW;
        let stat = match fstatat(Some(target_dir.as_raw_fd()), target_name, nofollow) {
            Ok(stat) => stat,
            Err(Errno::ENOENT) => return Err(refused()),
            Err(e) => return Err(sys(|| format!("reading metadata of `{target}`"))(e)),
        };
        if stat.st_mode & SFlag::S_IFMT.bits() != SFlag::S_IFREG.bits() {
            return Err(refused());
        }
        if let Ok(existing) = fstatat(Some(dir.as_raw_fd()), name, nofollow) {
            if existing.st_dev == stat.st_dev && existing.st_ino == stat.st_ino {
                // Already this file (`a` linked to itself, or a repeated entry).
                return Ok(());
            }
        }
        let at = dir.as_raw_fd();
        self.create(at, name, path, || {
            linkat(
                Some(target_dir.as_raw_fd()),
                target_name,
                Some(at),
                name,
                nix::fcntl::AtFlags::empty(),
            )
        })
    }

    /// Copies `size` bytes at `offset` of the tar to `out`: in the kernel when possible.
    fn copy_data(
        &mut self,
        out: &File,
        offset: u64,
        size: u64,
        path: &str,
    ) -> Result<(), LayerError> {
        let truncated = || LayerError::Malformed {
            detail: format!("the tar ends inside the data of `{path}`"),
        };
        let mut position = offset;
        let end = offset.checked_add(size).ok_or_else(truncated)?;
        while position < end && self.copy_file_range {
            let want = usize::try_from(end - position)
                .unwrap_or(usize::MAX)
                .min(1 << 30);
            let mut offset_in = i64::try_from(position).map_err(|_| truncated())?;
            match nix::fcntl::copy_file_range(
                self.tar.as_fd(),
                Some(&mut offset_in),
                out.as_fd(),
                None,
                want,
            ) {
                Ok(0) => return Err(truncated()),
                Ok(n) => position += n as u64,
                Err(Errno::EINTR) => {}
                Err(Errno::EXDEV | Errno::ENOSYS | Errno::EINVAL | Errno::EOPNOTSUPP) => {
                    self.copy_file_range = false;
                }
                Err(e) => return Err(sys(|| format!("copying the data of `{path}`"))(e)),
            }
        }
        if position < end && self.buffer.is_empty() {
            self.buffer = vec![0; BUFFER];
        }
        let mut out = out;
        while position < end {
            let want = usize::try_from(end - position)
                .unwrap_or(usize::MAX)
                .min(self.buffer.len());
            let n = match self.tar.read_at(&mut self.buffer[..want], position) {
                Ok(0) => return Err(truncated()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(LayerError::io(format!("reading the data of `{path}`"), e)),
            };
            out.write_all(&self.buffer[..n])
                .map_err(|e| LayerError::io(format!("writing `{path}`"), e))?;
            position += n as u64;
        }
        Ok(())
    }

    /// Sets the recorded directory mtimes (directories replaced since are skipped).
    fn set_dir_times(&mut self) -> Result<(), LayerError> {
        let times = std::mem::take(&mut self.dir_times);
        for (path, mtime) in &times {
            let Some(fd) = self.dir(path, false)? else {
                continue;
            };
            let time = timespec(*mtime);
            futimens(fd.as_raw_fd(), &time, &time)
                .map_err(sys(|| format!("setting the mtime of `{path}`")))?;
        }
        self.stack.clear();
        Ok(())
    }
}

fn not_a_dir(path: &str) -> LayerError {
    LayerError::InvalidEntry {
        path: path.to_string(),
        reason: "is not a directory".to_string(),
    }
}

fn id(value: u64, path: &str, field: &'static str) -> Result<u32, LayerError> {
    u32::try_from(value).map_err(|_| LayerError::FieldOverflow {
        path: path.to_string(),
        field,
    })
}

/// Whether an xattr from the tar is applied (see the module docs); `user.*` only on files
/// and directories (the kernel allows them nowhere else).
fn applies(name: &str, file_or_dir: bool) -> bool {
    name == "security.capability"
        || (name.starts_with("trusted.") && !name.starts_with("trusted.overlay."))
        || (file_or_dir && name.starts_with("user.") && !name.starts_with("user.overlay."))
}

fn set_xattrs(file: &File, entry: &Entry<TarOffset>, file_or_dir: bool) -> Result<(), LayerError> {
    for (key, value) in entry.xattrs.iter().filter(|(k, _)| applies(k, file_or_dir)) {
        xattr::FileExt::set_xattr(file, key, value).map_err(|e| {
            LayerError::io(
                format!("setting extended attribute {key} of `{}`", entry.path),
                e,
            )
        })?;
    }
    Ok(())
}

/// Removes directory `name` in `at` and everything in it, without following symlinks.
fn remove_tree(at: RawFd, name: &str, path: &str) -> Result<(), LayerError> {
    let fd = openat(Some(at), name, dir_flags(), Mode::empty())
        .map_err(sys(|| format!("opening directory `{path}`")))?;
    // `from_fd` owns the descriptor from here on (it closes it when it fails).
    let mut dir =
        nix::dir::Dir::from_fd(fd).map_err(sys(|| format!("reading directory `{path}`")))?;
    let mut children: Vec<String> = Vec::new();
    for item in dir.iter() {
        let item = item.map_err(sys(|| format!("reading directory `{path}`")))?;
        let bytes = item.file_name().to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        // Names come from our own extraction of UTF-8 entry paths.
        children.push(String::from_utf8_lossy(bytes).into_owned());
    }
    let dir_fd = dir.as_raw_fd();
    for child in children {
        let child_path = format!("{path}/{child}");
        match unlinkat(Some(dir_fd), child.as_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(Errno::EISDIR) => remove_tree(dir_fd, &child, &child_path)?,
            Err(e) => return Err(sys(|| format!("removing `{child_path}`"))(e)),
        }
    }
    drop(dir);
    unlinkat(Some(at), name, UnlinkatFlags::RemoveDir)
        .map_err(sys(|| format!("removing directory `{path}`")))
}
