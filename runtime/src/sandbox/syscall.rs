//! Everything the sandbox asks of the kernel while it sets a container up, behind one trait,
//! so the set-up logic (mount order, path resolution inside the root, users, the
//! spec-to-syscalls mapping) runs unchanged against [`Recorder`] in unit tests, without root.
//!
//! Owns the Linux implementation ([`Linux`], through `nix`) and the recording one.
//! Must not: decide anything; every choice is made by the callers in `rootfs` and `init`.

use std::cell::RefCell;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::{Mode, SFlag};

/// A path inside the container's root, opened without ever leaving the root: symlinks are
/// resolved as if the root were `/` (openat2 `RESOLVE_IN_ROOT`). Mounting onto
/// [`Resolved::proc_path`] mounts onto exactly the object that was resolved, so a symlink
/// swapped in afterwards cannot redirect the mount.
#[derive(Debug)]
pub struct Resolved {
    fd: Option<OwnedFd>,
    /// The path inside the root, for messages and for the recorder.
    pub inside: String,
}

impl Resolved {
    /// The descriptor's number, as `/proc/self/fd` names it (the path for the recorder).
    pub fn fd_name(&self) -> String {
        match &self.fd {
            Some(fd) => fd.as_raw_fd().to_string(),
            None => self.inside.clone(),
        }
    }

    /// The magic link naming the resolved object (`/proc/self/fd/N`).
    pub fn proc_path(&self) -> PathBuf {
        match &self.fd {
            Some(fd) => PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
            None => PathBuf::from(format!("<root>{}", self.inside)),
        }
    }
}

/// What to create at a path that does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    Nothing,
    Dir,
    File,
}

pub trait Syscall {
    fn unshare(&self, flags: CloneFlags) -> nix::Result<()>;
    fn mount(
        &self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()>;
    fn umount(&self, target: &Path, flags: MntFlags) -> nix::Result<()>;
    /// Make the mount at `target` read-only, keeping its other flags (nosuid, nodev, noexec:
    /// a bind remount replaces them all, so they are read back first).
    fn remount_read_only(&self, target: &Path) -> nix::Result<()>;
    fn pivot_root(&self, new_root: &Path) -> nix::Result<()>;
    fn chdir(&self, path: &Path) -> nix::Result<()>;
    fn sethostname(&self, name: &str) -> nix::Result<()>;
    fn mknod(&self, path: &Path, kind: SFlag, mode: u32, dev: u64) -> nix::Result<()>;
    fn symlink(&self, target: &str, link: &Path) -> nix::Result<()>;
    fn mkdir(&self, path: &Path, mode: u32) -> nix::Result<()>;
    fn write_file(
        &self,
        path: &Path,
        content: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> nix::Result<()>;
    /// Copy the tree at `from` into `to` when `to` is an empty directory (modes, owners and
    /// symlinks kept; symlinks are never followed).
    fn fill_empty_dir(&self, from: &Path, to: &Path) -> nix::Result<()>;
    /// Open a directory of kiln's own (a layer) as an `O_PATH` descriptor, closed on exec and
    /// when dropped, so a mount can name it by `/proc/self/fd/N`.
    fn open_dir(&self, path: &Path) -> nix::Result<Resolved>;
    /// Open `inside` (absolute, inside `root`) without leaving `root`, creating the last
    /// component (and missing parents, as directories) when asked. Returns the created paths
    /// too, outermost first, so a build can remove the stubs it made.
    fn resolve_in_root(
        &self,
        root: &Path,
        inside: &str,
        create: Create,
    ) -> nix::Result<(Resolved, Vec<String>)>;
}

/// The real kernel.
pub struct Linux;

impl Syscall for Linux {
    fn unshare(&self, flags: CloneFlags) -> nix::Result<()> {
        nix::sched::unshare(flags)
    }

    fn mount(
        &self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()> {
        nix::mount::mount(source, target, fstype, flags, data)
    }

    fn umount(&self, target: &Path, flags: MntFlags) -> nix::Result<()> {
        nix::mount::umount2(target, flags)
    }

    fn remount_read_only(&self, target: &Path) -> nix::Result<()> {
        use nix::sys::statvfs::FsFlags;
        let current = nix::sys::statvfs::statvfs(target)?.flags();
        let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        for (have, keep) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if current.contains(have) {
                flags |= keep;
            }
        }
        nix::mount::mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
    }

    fn pivot_root(&self, new_root: &Path) -> nix::Result<()> {
        // pivot_root(".", "."): the old root ends up stacked under the new one, where it is
        // detached; no directory for it is needed inside the container.
        nix::unistd::chdir(new_root)?;
        nix::unistd::pivot_root(".", ".")?;
        nix::mount::umount2(".", MntFlags::MNT_DETACH)?;
        nix::unistd::chdir("/")
    }

    fn open_dir(&self, path: &Path) -> nix::Result<Resolved> {
        Ok(Resolved {
            fd: Some(open_dir(path)?),
            inside: path.display().to_string(),
        })
    }

    fn chdir(&self, path: &Path) -> nix::Result<()> {
        nix::unistd::chdir(path)
    }

    fn sethostname(&self, name: &str) -> nix::Result<()> {
        nix::unistd::sethostname(name)
    }

    fn mknod(&self, path: &Path, kind: SFlag, mode: u32, dev: u64) -> nix::Result<()> {
        nix::sys::stat::mknod(path, kind, Mode::from_bits_truncate(mode), dev)?;
        // mknod's mode is filtered by the umask: set the bits exactly.
        nix::sys::stat::fchmodat(
            None,
            path,
            Mode::from_bits_truncate(mode),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
    }

    fn symlink(&self, target: &str, link: &Path) -> nix::Result<()> {
        nix::unistd::symlinkat(target, None, link)
    }

    fn mkdir(&self, path: &Path, mode: u32) -> nix::Result<()> {
        match nix::unistd::mkdir(path, Mode::from_bits_truncate(mode)) {
            Err(Errno::EEXIST) => Ok(()),
            r => r,
        }
    }

    fn write_file(
        &self,
        path: &Path,
        content: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> nix::Result<()> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_WRONLY
                | OFlag::O_CREAT
                | OFlag::O_TRUNC
                | OFlag::O_CLOEXEC
                | OFlag::O_NOFOLLOW,
            Mode::from_bits_truncate(0o600),
        )?;
        // SAFETY: `open` just returned this descriptor and nothing else owns it.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let mut rest = content;
        while !rest.is_empty() {
            let n = nix::unistd::write(&fd, rest)?;
            rest = &rest[n..];
        }
        nix::unistd::fchown(
            fd.as_raw_fd(),
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )?;
        nix::sys::stat::fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(mode))
    }

    fn fill_empty_dir(&self, from: &Path, to: &Path) -> nix::Result<()> {
        let empty = std::fs::read_dir(to)
            .map_err(|_| Errno::ENOTDIR)?
            .next()
            .is_none();
        if empty && from.is_dir() {
            copy_tree(from, to)
                .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        }
        Ok(())
    }

    fn resolve_in_root(
        &self,
        root: &Path,
        inside: &str,
        create: Create,
    ) -> nix::Result<(Resolved, Vec<String>)> {
        let root_fd = open_dir(root)?;
        let mut created = Vec::new();
        let how = |flags: OFlag| {
            OpenHow::new()
                .flags(flags | OFlag::O_CLOEXEC)
                .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
        };
        let rel = inside.trim_start_matches('/');
        let open = |p: &str| {
            nix::fcntl::openat2(
                root_fd.as_raw_fd(),
                if p.is_empty() { "." } else { p },
                how(OFlag::O_PATH),
            )
            .map(own)
        };
        match open(rel) {
            Ok(fd) => return Ok((resolved(fd, inside), created)),
            Err(Errno::ENOENT) if create != Create::Nothing => {}
            Err(e) => return Err(e),
        }
        // Create what is missing one component at a time, each relative to its resolved
        // parent (never by a path string that a symlink could redirect).
        let mut parent = open("")?;
        let mut so_far = String::new();
        let parts: Vec<&str> = rel
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        for (i, part) in parts.iter().enumerate() {
            if *part == ".." {
                return Err(Errno::EINVAL);
            }
            so_far.push('/');
            so_far.push_str(part);
            let last = i + 1 == parts.len();
            match open(&so_far[1..]) {
                Ok(fd) => {
                    parent = fd;
                    continue;
                }
                Err(Errno::ENOENT) => {}
                Err(e) => return Err(e),
            }
            let dirfd = own(nix::fcntl::openat2(
                parent.as_raw_fd(),
                ".",
                how(OFlag::O_DIRECTORY | OFlag::O_RDONLY),
            )?);
            let d = dirfd.as_raw_fd();
            if last && create == Create::File {
                // Created through the root like any other resolution: a dangling symlink in
                // the image (`/etc/hosts -> /../../tmp/x`) gets its target made inside the
                // root, as Docker does, never outside it.
                let f = nix::fcntl::openat2(
                    root_fd.as_raw_fd(),
                    &so_far[1..],
                    OpenHow::new()
                        .flags(OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC)
                        .mode(Mode::from_bits_truncate(0o644))
                        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS),
                )?;
                let _ = nix::unistd::close(f);
            } else {
                match nix::sys::stat::mkdirat(Some(d), *part, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e),
                }
            }
            created.push(so_far.clone());
            parent = open(&so_far[1..])?;
        }
        Ok((resolved(parent, inside), created))
    }
}

fn open_dir(path: &Path) -> nix::Result<OwnedFd> {
    let fd = nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    Ok(own(fd))
}

/// Copy the contents of directory `from` into `to`: only real directories are descended
/// into, so no path built here passes through a symlink.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::symlink_metadata(from)?;
    std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let m = std::fs::symlink_metadata(&src)?;
        let ft = m.file_type();
        if ft.is_dir() {
            std::fs::create_dir(&dst)?;
            copy_tree(&src, &dst)?;
            continue;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if ft.is_file() {
            let mut input = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&src)?;
            let mut output = std::fs::File::create_new(&dst)?;
            std::io::copy(&mut input, &mut output)?;
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(m.mode() & 0o7777))?;
        } else {
            continue;
        }
        std::os::unix::fs::lchown(&dst, Some(m.uid()), Some(m.gid()))?;
    }
    Ok(())
}

/// Take ownership of a descriptor a syscall just returned.
fn own(fd: std::os::fd::RawFd) -> OwnedFd {
    // SAFETY: called only on descriptors freshly returned by the kernel, owned by nobody.
    unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
}

fn resolved(fd: OwnedFd, inside: &str) -> Resolved {
    Resolved {
        fd: Some(fd),
        inside: inside.to_string(),
    }
}

/// Records every call as one line and succeeds; for unit tests of the set-up logic.
#[derive(Default)]
pub struct Recorder {
    pub calls: RefCell<Vec<String>>,
}

impl Recorder {
    fn log(&self, line: String) -> nix::Result<()> {
        self.calls.borrow_mut().push(line);
        Ok(())
    }

    pub fn lines(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }
}

impl Syscall for Recorder {
    fn fill_empty_dir(&self, from: &Path, to: &Path) -> nix::Result<()> {
        self.log(format!("fill {} {}", from.display(), to.display()))
    }

    fn unshare(&self, flags: CloneFlags) -> nix::Result<()> {
        self.log(format!("unshare {flags:?}"))
    }

    fn mount(
        &self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()> {
        let flags = format!("{flags:?}");
        let flags = flags
            .strip_prefix("MsFlags(")
            .and_then(|f| f.strip_suffix(')'))
            .unwrap_or(&flags);
        let flags = if flags.is_empty() { "-" } else { flags };
        self.log(format!(
            "mount {} {} {} {flags} {}",
            source.unwrap_or("-"),
            target.display(),
            fstype.unwrap_or("-"),
            data.unwrap_or("-")
        ))
    }

    fn umount(&self, target: &Path, flags: MntFlags) -> nix::Result<()> {
        self.log(format!("umount {} {flags:?}", target.display()))
    }

    fn remount_read_only(&self, target: &Path) -> nix::Result<()> {
        self.log(format!("remount-ro {}", target.display()))
    }

    fn pivot_root(&self, new_root: &Path) -> nix::Result<()> {
        self.log(format!("pivot_root {}", new_root.display()))
    }

    fn chdir(&self, path: &Path) -> nix::Result<()> {
        self.log(format!("chdir {}", path.display()))
    }

    /// A real descriptor (of `/`), so the names a caller builds from it are real numbers.
    fn open_dir(&self, path: &Path) -> nix::Result<Resolved> {
        self.log(format!("open {}", path.display()))?;
        Ok(Resolved {
            fd: Some(open_dir(Path::new("/"))?),
            inside: path.display().to_string(),
        })
    }

    fn sethostname(&self, name: &str) -> nix::Result<()> {
        self.log(format!("sethostname {name}"))
    }

    fn mknod(&self, path: &Path, kind: SFlag, mode: u32, dev: u64) -> nix::Result<()> {
        self.log(format!("mknod {} {kind:?} {mode:o} {dev}", path.display()))
    }

    fn symlink(&self, target: &str, link: &Path) -> nix::Result<()> {
        self.log(format!("symlink {target} {}", link.display()))
    }

    fn mkdir(&self, path: &Path, mode: u32) -> nix::Result<()> {
        self.log(format!("mkdir {} {mode:o}", path.display()))
    }

    fn write_file(
        &self,
        path: &Path,
        content: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> nix::Result<()> {
        self.log(format!(
            "write {} {} bytes {mode:o} {uid}:{gid}",
            path.display(),
            content.len()
        ))
    }

    fn resolve_in_root(
        &self,
        _root: &Path,
        inside: &str,
        create: Create,
    ) -> nix::Result<(Resolved, Vec<String>)> {
        self.log(format!("resolve {inside} {create:?}"))?;
        Ok((
            Resolved {
                fd: None,
                inside: inside.to_string(),
            },
            Vec::new(),
        ))
    }
}
