//! The busybox base image.

use super::*;

pub const BUSYBOX_BINARY: &str = "/usr/bin/busybox";

/// Applets linked in /bin (a fixed list, so the rootfs does not depend on busybox's build).
pub(crate) const APPLETS: &[&str] = &[
    "basename",
    "cat",
    "chgrp",
    "chmod",
    "chown",
    "cp",
    "cut",
    "dirname",
    "echo",
    "env",
    "false",
    "find",
    "grep",
    "gzip",
    "head",
    "id",
    "ln",
    "ls",
    "mkdir",
    "mv",
    "printf",
    "readlink",
    "rm",
    "rmdir",
    "sed",
    "sh",
    "sha256sum",
    "sleep",
    "sort",
    "stat",
    "tar",
    "test",
    "touch",
    "tr",
    "true",
    "wc",
    "whoami",
    "xargs",
];

pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          daemon:x:1:1:daemon:/usr/sbin:/bin/false\n\
                          app:x:1000:1000::/home/app:/bin/sh\n";
pub const GROUP: &str = "root:x:0:\ndaemon:x:1:\napp:x:1000:\nstaff:x:50:\n";

/// The busybox root filesystem as a directory and as a deterministic tarball.
pub struct Busybox {
    pub rootfs: PathBuf,
    pub tarball: PathBuf,
}

pub(crate) enum Spec {
    Dir(&'static str, u32, u32),
    File(&'static str, u32, Vec<u8>),
    Symlink(String, &'static str),
}

/// Made once per process from `/usr/bin/busybox`: entries sorted, mtime 0, owner 0:0
/// (but /home/app 1000:1000), explicit modes, no user or group names.
pub fn busybox() -> &'static Busybox {
    static BB: OnceLock<Busybox> = OnceLock::new();
    BB.get_or_init(|| {
        let binary = std::fs::read(BUSYBOX_BINARY)
            .unwrap_or_else(|e| panic!("read {BUSYBOX_BINARY} (busybox-static): {e}"));
        let mut spec = vec![
            Spec::Dir("bin", 0o755, 0),
            Spec::File("bin/busybox", 0o755, binary),
            Spec::Dir("dev", 0o755, 0),
            Spec::Dir("etc", 0o755, 0),
            Spec::File("etc/group", 0o644, GROUP.as_bytes().to_vec()),
            Spec::File("etc/passwd", 0o644, PASSWD.as_bytes().to_vec()),
            Spec::Dir("home", 0o755, 0),
            Spec::Dir("home/app", 0o750, 1000),
            Spec::Dir("proc", 0o755, 0),
            Spec::Dir("root", 0o700, 0),
            Spec::Dir("sys", 0o755, 0),
            Spec::Dir("tmp", 0o1777, 0),
        ];
        for a in APPLETS {
            spec.push(Spec::Symlink(format!("bin/{a}"), "busybox"));
        }
        spec.sort_by(|a, b| spec_path(a).cmp(spec_path(b)));

        let dir = scratch_root().join("busybox");
        let rootfs = dir.join("rootfs");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&rootfs).expect("mkdir busybox rootfs");
        std::fs::set_permissions(&rootfs, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let tarball = dir.join("rootfs.tar");
        let mut tar = tar::Builder::new(Vec::new());
        let am_root = running_as_root();
        for s in &spec {
            let mut h = tar::Header::new_ustar();
            h.set_mtime(0);
            h.set_uid(0);
            h.set_gid(0);
            match s {
                Spec::Dir(p, mode, owner) => {
                    let path = rootfs.join(p);
                    std::fs::create_dir(&path).expect("mkdir");
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode))
                        .expect("chmod");
                    if am_root && *owner != 0 {
                        std::os::unix::fs::lchown(&path, Some(*owner), Some(*owner))
                            .expect("chown");
                    }
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(*mode);
                    h.set_uid(u64::from(*owner));
                    h.set_gid(u64::from(*owner));
                    h.set_size(0);
                    tar.append_data(&mut h, format!("{p}/"), std::io::empty())
                        .expect("tar dir");
                }
                Spec::File(p, mode, content) => {
                    write_file(&rootfs.join(p), content, *mode);
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(*mode);
                    h.set_size(content.len() as u64);
                    tar.append_data(&mut h, p, content.as_slice())
                        .expect("tar file");
                }
                Spec::Symlink(p, target) => {
                    std::os::unix::fs::symlink(target, rootfs.join(p)).expect("symlink");
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_mode(0o777);
                    h.set_size(0);
                    tar.append_link(&mut h, p, target).expect("tar symlink");
                }
            }
        }
        let bytes = tar.into_inner().expect("finish tar");
        std::fs::write(&tarball, bytes).expect("write busybox tarball");
        Busybox { rootfs, tarball }
    })
}

pub(crate) fn spec_path(s: &Spec) -> &str {
    match s {
        Spec::Dir(p, ..) | Spec::File(p, ..) => p,
        Spec::Symlink(p, _) => p,
    }
}

/// Build a tar archive in memory from (path, kind) entries, deterministically (mtime 0
/// unless given, the given owner). Used for ADD fixtures and hostile load inputs.
pub struct TarBuilder {
    inner: tar::Builder<Vec<u8>>,
}

impl TarBuilder {
    pub fn new() -> TarBuilder {
        TarBuilder {
            inner: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, uid: u64, gid: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(0);
        h.set_size(0);
        h
    }

    pub fn dir(mut self, path: &str, mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = Self::header(tar::EntryType::Directory, mode, uid, gid);
        self.inner
            .append_data(&mut h, path, std::io::empty())
            .expect("tar dir");
        self
    }

    pub fn file(mut self, path: &str, content: &[u8], mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, uid, gid);
        h.set_size(content.len() as u64);
        self.inner
            .append_data(&mut h, path, content)
            .expect("tar file");
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0, 0);
        self.inner
            .append_link(&mut h, path, target)
            .expect("tar symlink");
        self
    }

    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Link, 0o644, 0, 0);
        self.inner
            .append_link(&mut h, path, target)
            .expect("tar hardlink");
        self
    }

    /// Write a file entry whose name is stored raw in the header (no path checks), for
    /// hostile inputs such as `../../etc/x`.
    pub fn raw_file(mut self, name: &[u8], content: &[u8]) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, 0o644, 0, 0);
        h.set_size(content.len() as u64);
        {
            let gnu = h.as_gnu_mut().expect("gnu header");
            gnu.name = [0; 100];
            gnu.name[..name.len()].copy_from_slice(name);
        }
        h.set_cksum();
        self.inner.append(&h, content).expect("tar raw entry");
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.inner.into_inner().expect("finish tar")
    }
}
