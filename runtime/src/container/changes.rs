//! What a container changed, read from its overlay upper directory: `kiln diff CONTAINER`
//! (docker's A/C/D list) and `kiln commit` (a layer made exactly as a RUN step's is, by the
//! build's `capture_layer`, and an image with it on top of the container's image).
//! Also `kiln cp`: copies in and out of a running container, every container path resolved
//! inside its root (`openat2` with `RESOLVE_IN_ROOT`, from `/proc/<PID 1>/root`), nothing
//! below it followed through a symlink.
//!
//! Must not: change the upper directory (the container may be running), or parse
//! instructions (the CLI gives `kiln commit -c` changes as a typed `RunConfig`).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kiln_plan::plan::RunConfig;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;

use super::{ContainerError, Record};
use crate::build::{self, BuildError, LayerTree};
use crate::image::ImageName;
use crate::layer::EntryKind;
use crate::oci::{self, History};
use crate::sandbox::syscall::{Create, Linux, Syscall};
use crate::store::{Image, Store};

/// One line of `kiln diff CONTAINER`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `A` added, `C` changed, `D` deleted.
    pub kind: char,
    /// Absolute path inside the container.
    pub path: String,
}

fn base_image(store: &Store, record: &Record) -> Result<Image, ContainerError> {
    Ok(store.image(&record.image_id.to_string())?)
}

fn lower_tree(store: &Store, image: &Image) -> Result<LayerTree, ContainerError> {
    LayerTree::open(store, &build::image_layers(image)).map_err(build_error)
}

fn build_error(e: BuildError) -> ContainerError {
    ContainerError::Commit(Box::new(e))
}

/// The container's changes to its image's filesystem, sorted by path, as docker lists them:
/// a deleted path `D`, a path the image has `C`, a new one `A` (mount-point stubs left out).
pub fn changes(store: &Store, record: &Record) -> Result<Vec<Change>, ContainerError> {
    let image = base_image(store, record)?;
    let lower = lower_tree(store, &image)?;
    let entries =
        crate::layer::capture_changes(&record.spec.rootfs.upper, lower.view(), 0, &record.stubs)
            .map_err(|e| build_error(e.into()))?;
    let mut out: Vec<Change> = entries
        .into_iter()
        .map(|e| {
            let kind = match e.kind {
                EntryKind::Whiteout => 'D',
                _ if lower.view().get(&e.path).is_some() => 'C',
                _ => 'A',
            };
            Change {
                kind,
                path: format!("/{}", e.path),
            }
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// What `kiln commit` is given.
#[derive(Debug, Clone)]
pub struct CommitOptions {
    /// The new image's run config (the container's image's, with `-c` changes applied).
    pub config: RunConfig,
    /// `-m`.
    pub message: String,
    /// `-a`.
    pub author: String,
    pub tag: Option<ImageName>,
    /// SOURCE_DATE_EPOCH (0 when unset): the layer's mtimes and the image's `created`.
    pub epoch: u64,
}

/// Make an image of the container: its image's layers plus one made from the upper
/// directory exactly as a RUN step's layer is (none when nothing changed).
pub fn commit(
    store: &Store,
    record: &Record,
    opts: &CommitOptions,
) -> Result<Image, ContainerError> {
    let image = base_image(store, record)?;
    let lower = lower_tree(store, &image)?;
    let layer = build::capture_layer(
        store,
        &record.spec.rootfs.upper,
        &record.stubs,
        &lower,
        opts.epoch,
    )
    .map_err(build_error)?;
    let stamp = oci::time::format_rfc3339(opts.epoch as i64);
    let mut config = image.config.clone();
    config.config = opts.config.clone();
    config.created = Some(stamp.clone());
    config.history.push(History {
        created: Some(stamp),
        author: (!opts.author.is_empty()).then(|| opts.author.clone()),
        created_by: Some(record.spec.process.args.join(" ")),
        comment: (!opts.message.is_empty()).then(|| opts.message.clone()),
        empty_layer: layer.is_none(),
    });
    let mut layers = image.manifest.layers.clone();
    if let Some(l) = layer {
        config.rootfs.diff_ids.push(l.diff_id);
        layers.push(l.blob);
    }
    let tags: Vec<ImageName> = opts.tag.iter().cloned().collect();
    Ok(store.save_image(&config, &layers, &tags)?)
}

/// The running container's root, as kiln's namespace sees it.
fn root_of(record: &Record) -> Result<PathBuf, ContainerError> {
    match record.init_pid.filter(|_| record.running()) {
        Some(pid) => Ok(PathBuf::from(format!("/proc/{pid}/root"))),
        None => Err(ContainerError::CopyNeedsRunning(record.name.clone())),
    }
}

/// Own a descriptor nix just opened.
fn file_of(fd: std::os::fd::RawFd) -> fs::File {
    use std::os::fd::FromRawFd;
    // SAFETY: `fd` was returned by a successful open call and is owned by nobody else.
    unsafe { fs::File::from_raw_fd(fd) }
}

fn copy_error(path: &str, why: impl std::fmt::Display) -> ContainerError {
    ContainerError::Copy(format!("{path}: {why}"))
}

/// `kiln cp CONTAINER:SRC DEST`: SRC resolved inside the container's root (a symlink on the
/// way is followed inside it, never out of it); SRC itself, when a symlink, is copied as
/// one unless `follow` (`-L`); below SRC nothing is followed, symlinks are copied as
/// symlinks. DEST on the host: an existing directory receives SRC's last name.
pub fn copy_out(
    record: &Record,
    src: &str,
    dest: &Path,
    follow: bool,
) -> Result<(), ContainerError> {
    let root = root_of(record)?;
    let trimmed = src.trim_end_matches('/');
    if let (false, Some((parent, leaf))) = (follow, trimmed.rsplit_once('/')) {
        if !leaf.is_empty() && leaf != "." && leaf != ".." {
            let parent = if parent.is_empty() { "/" } else { parent };
            let (dir, _) = Linux
                .resolve_in_root(&root, parent, Create::Nothing)
                .map_err(|e| copy_error(parent, e.desc()))?;
            let dir = fs::File::open(dir.proc_path()).map_err(|e| copy_error(parent, e))?;
            use std::os::fd::AsRawFd;
            if let Ok(target) = nix::fcntl::readlinkat(Some(dir.as_raw_fd()), leaf) {
                let to = if dest.is_dir() {
                    dest.join(leaf)
                } else {
                    dest.to_path_buf()
                };
                let _ = fs::remove_file(&to);
                return std::os::unix::fs::symlink(target, &to)
                    .map_err(|e| copy_error(&to.display().to_string(), e));
            }
        }
    }
    let (resolved, _) = Linux
        .resolve_in_root(&root, src, Create::Nothing)
        .map_err(|e| copy_error(src, e.desc()))?;
    let from = resolved.proc_path();
    let meta = fs::metadata(&from).map_err(|e| copy_error(src, e))?;
    let name = Path::new(src.trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "root".into());
    let target = if dest.is_dir() {
        dest.join(name)
    } else {
        dest.to_path_buf()
    };
    if meta.is_dir() {
        copy_tree_out(&from, &target)
    } else {
        copy_file(&from, &target, meta.permissions().mode())
    }
}

fn copy_file(from: &Path, to: &Path, mode: u32) -> Result<(), ContainerError> {
    let shown = to.display().to_string();
    let mut input = fs::File::open(from).map_err(|e| copy_error(&shown, e))?;
    let mut output = fs::File::create(to).map_err(|e| copy_error(&shown, e))?;
    std::io::copy(&mut input, &mut output).map_err(|e| copy_error(&shown, e))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode & 0o7777))
        .map_err(|e| copy_error(&shown, e))
}

/// Copy a directory of the container (`from`, its resolved descriptor's magic link) to the
/// host. Every name below it is opened relative to its parent's descriptor with
/// `O_NOFOLLOW`, so a payload swapping a directory for a symlink mid-copy cannot lead the
/// copy out of the root.
fn copy_tree_out(from: &Path, to: &Path) -> Result<(), ContainerError> {
    let shown = from.display().to_string();
    let dir = nix::fcntl::open(
        from,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| copy_error(&shown, e.desc()))?;
    copy_dir_fd(file_of(dir), to)
}

fn copy_dir_fd(dir: fs::File, to: &Path) -> Result<(), ContainerError> {
    use std::os::fd::AsRawFd;
    let shown = to.display().to_string();
    let err = |e: nix::errno::Errno| copy_error(&shown, e.desc());
    if !to.exists() {
        fs::create_dir(to).map_err(|e| copy_error(&shown, e))?;
    }
    let mode = dir.metadata().map_err(|e| copy_error(&shown, e))?.mode();
    let listing = format!("/proc/self/fd/{}", dir.as_raw_fd());
    for entry in fs::read_dir(&listing).map_err(|e| copy_error(&shown, e))? {
        let entry = entry.map_err(|e| copy_error(&shown, e))?;
        let name = entry.file_name();
        let dest = to.join(&name);
        let st = nix::sys::stat::fstatat(
            Some(dir.as_raw_fd()),
            name.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(err)?;
        let kind =
            nix::sys::stat::SFlag::from_bits_truncate(st.st_mode) & nix::sys::stat::SFlag::S_IFMT;
        if kind == nix::sys::stat::SFlag::S_IFLNK {
            let target =
                nix::fcntl::readlinkat(Some(dir.as_raw_fd()), name.as_os_str()).map_err(err)?;
            let _ = fs::remove_file(&dest);
            std::os::unix::fs::symlink(target, &dest).map_err(|e| copy_error(&shown, e))?;
        } else if kind == nix::sys::stat::SFlag::S_IFDIR {
            let fd = nix::fcntl::openat(
                Some(dir.as_raw_fd()),
                name.as_os_str(),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(err)?;
            copy_dir_fd(file_of(fd), &dest)?;
        } else if kind == nix::sys::stat::SFlag::S_IFREG {
            let fd = nix::fcntl::openat(
                Some(dir.as_raw_fd()),
                name.as_os_str(),
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(err)?;
            let mut input = file_of(fd);
            let mut output = fs::File::create(&dest).map_err(|e| copy_error(&shown, e))?;
            std::io::copy(&mut input, &mut output).map_err(|e| copy_error(&shown, e))?;
            fs::set_permissions(&dest, fs::Permissions::from_mode(st.st_mode & 0o7777))
                .map_err(|e| copy_error(&shown, e))?;
        }
    }
    fs::set_permissions(to, fs::Permissions::from_mode(mode & 0o7777))
        .map_err(|e| copy_error(&shown, e))
}

/// `kiln cp SRC CONTAINER:DEST`: DEST resolved inside the container's root; an existing
/// directory receives SRC's last name, else DEST's parent must exist and DEST is created
/// there without following a symlink at DEST itself. Files are owned by root, as docker's.
pub fn copy_in(record: &Record, src: &Path, dest: &str) -> Result<(), ContainerError> {
    let root = root_of(record)?;
    let shown = src.display().to_string();
    let meta = fs::symlink_metadata(src).map_err(|e| copy_error(&shown, e))?;
    let name = src
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let into_dir = Linux
        .resolve_in_root(&root, dest, Create::Nothing)
        .ok()
        .filter(|(r, _)| fs::metadata(r.proc_path()).is_ok_and(|m| m.is_dir()));
    let (parent, leaf) = match into_dir {
        Some((dir, _)) if !name.is_empty() => (dir, name),
        _ => {
            let trimmed = dest.trim_end_matches('/');
            let (p, leaf) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
            if leaf.is_empty() || leaf == "." || leaf == ".." {
                return Err(copy_error(dest, "not a file name"));
            }
            let parent_path = if p.is_empty() { "/" } else { p };
            let (dir, _) = Linux
                .resolve_in_root(&root, parent_path, Create::Nothing)
                .map_err(|e| copy_error(parent_path, e.desc()))?;
            (dir, leaf.to_string())
        }
    };
    let dir = fs::File::open(parent.proc_path()).map_err(|e| copy_error(dest, e))?;
    put(&dir, &leaf, src, &meta)
}

/// Create `name` in the open container directory `dir` from the host path `src`.
fn put(dir: &fs::File, name: &str, src: &Path, meta: &fs::Metadata) -> Result<(), ContainerError> {
    use std::os::fd::AsRawFd;
    let shown = src.display().to_string();
    let err = |e: nix::errno::Errno| copy_error(&shown, e.desc());
    let ft = meta.file_type();
    let mode = meta.mode() & 0o7777;
    if ft.is_symlink() {
        let target = fs::read_link(src).map_err(|e| copy_error(&shown, e))?;
        let _ = nix::unistd::unlinkat(
            Some(dir.as_raw_fd()),
            name,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
        nix::unistd::symlinkat(&target, Some(dir.as_raw_fd()), name).map_err(err)?;
        let _ = nix::unistd::fchownat(
            Some(dir.as_raw_fd()),
            name,
            Some(nix::unistd::Uid::from_raw(0)),
            Some(nix::unistd::Gid::from_raw(0)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        );
        return Ok(());
    }
    if ft.is_dir() {
        match nix::sys::stat::mkdirat(Some(dir.as_raw_fd()), name, Mode::from_bits_truncate(mode)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(err(e)),
        }
        let fd = nix::fcntl::openat(
            Some(dir.as_raw_fd()),
            name,
            OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(err)?;
        let sub = file_of(fd);
        nix::unistd::fchown(
            sub.as_raw_fd(),
            Some(nix::unistd::Uid::from_raw(0)),
            Some(nix::unistd::Gid::from_raw(0)),
        )
        .map_err(err)?;
        for entry in fs::read_dir(src).map_err(|e| copy_error(&shown, e))? {
            let entry = entry.map_err(|e| copy_error(&shown, e))?;
            let path = entry.path();
            let m = fs::symlink_metadata(&path).map_err(|e| copy_error(&shown, e))?;
            put(&sub, &entry.file_name().to_string_lossy(), &path, &m)?;
        }
        return Ok(());
    }
    if !ft.is_file() {
        return Ok(());
    }
    // O_NOFOLLOW: a symlink planted at the name is an error, never a way out.
    let fd = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    )
    .map_err(err)?;
    let mut out = file_of(fd);
    let mut input = fs::File::open(src).map_err(|e| copy_error(&shown, e))?;
    std::io::copy(&mut input, &mut out).map_err(|e| copy_error(&shown, e))?;
    nix::unistd::fchown(
        out.as_raw_fd(),
        Some(nix::unistd::Uid::from_raw(0)),
        Some(nix::unistd::Gid::from_raw(0)),
    )
    .map_err(err)?;
    out.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| copy_error(&shown, e))
}
