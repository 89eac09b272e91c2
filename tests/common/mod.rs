//! Shared helpers of kiln's end-to-end tests (`tests/*.rs`): the kiln binary and temporary
//! stores, the peers (docker, podman, skopeo, umoci) and the rule for skipping when one is
//! missing, the deterministic busybox base image, and readers that turn a `docker save` or
//! `kiln save` tarball into a comparable file tree and config.
//!
//! Must not: build or patch kiln, talk to a network, or leave anything outside the scratch
//! directory (`target/tmp/e2e/<pid>`) and the docker tags named `*kiln-e2e*` / `busybox:test`.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The tag the busybox base has in docker and in every kiln store the tests make.
pub const BUSYBOX: &str = "busybox:test";

// ---------------------------------------------------------------------------------------
// Skipping: a missing peer skips locally and fails in CI.

/// True when `CI=true`: then a missing peer is a failure, never a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true").unwrap_or(false)
}

/// Skip the calling test (return from it) when a peer is missing; in CI, panic instead, so a
/// skipped test is never reported as passing there.
#[macro_export]
macro_rules! require_peer {
    ($($name:expr),+ $(,)?) => {
        $(
            if let Err(why) = $crate::common::peer_status($name) {
                $crate::common::skip_or_fail($name, &why);
                return;
            }
        )+
    };
}

/// Called by `require_peer!` when `name` is missing.
pub fn skip_or_fail(name: &str, why: &str) {
    if in_ci() {
        panic!("peer `{name}` is required in CI (CI=true) but is not usable: {why}");
    }
    eprintln!("SKIPPED: peer `{name}` is not usable here ({why}); with CI=true this fails");
}

/// Whether a peer can be used: `docker` (a reachable daemon with BuildKit), `podman`,
/// `skopeo`, `umoci`, `busybox` (the static binary the base image is made of).
pub fn peer_available(name: &str) -> bool {
    peer_status(name).is_ok()
}

/// Like [`peer_available`], with the reason when it is not. Probed once per process.
pub fn peer_status(name: &str) -> Result<(), String> {
    static CACHE: OnceLock<Mutex<HashMap<String, Result<(), String>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
    map.entry(name.to_string())
        .or_insert_with(|| probe_peer(name))
        .clone()
}

fn probe_peer(name: &str) -> Result<(), String> {
    let probe = |mut cmd: Command| -> Result<(), String> {
        let shown = format!("{cmd:?}");
        match cmd.stdin(Stdio::null()).output() {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(format!(
                "{shown} failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => Err(format!("{shown} cannot start: {e}")),
        }
    };
    match name {
        "docker" => {
            let mut c = docker();
            c.args(["info", "--format", "{{.ServerVersion}}"]);
            probe(c)?;
            // BuildKit through the classic client: `docker build` with DOCKER_BUILDKIT=1
            // needs a client that has BuildKit built in (Debian's docker.io does; a newer
            // client without the buildx plugin refuses).
            let mut c = docker();
            c.args(["build", "--help"]);
            probe(c)
        }
        "busybox" => {
            if Path::new(BUSYBOX_BINARY).is_file() {
                Ok(())
            } else {
                Err(format!(
                    "{BUSYBOX_BINARY} is missing (Debian: busybox-static)"
                ))
            }
        }
        "podman" | "skopeo" | "umoci" => {
            let mut c = Command::new(name);
            c.arg("--version");
            probe(c)
        }
        other => Err(format!("unknown peer {other:?}")),
    }
}

// ---------------------------------------------------------------------------------------
// Running commands.

/// Run a command to completion, capturing its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

/// Run a command with `stdin` fed to it.
pub fn run_with_stdin(cmd: &mut Command, stdin: &[u8]) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut pipe = child.stdin.take().expect("stdin is piped");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // The child may exit without reading everything; that is its answer, not ours.
        let _ = pipe.write_all(&data);
    });
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for {cmd:?}: {e}"));
    let _ = writer.join();
    out
}

/// Run a command and panic, showing everything it said, unless it exits 0.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert_success(&format!("{cmd:?}"), &out);
    out
}

pub fn assert_success(what: &str, out: &Output) {
    if !out.status.success() {
        panic!(
            "{what} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Whether this process runs as root (the owner of /proc/self is the effective uid).
pub fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

pub fn stdout_text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr_text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// ---------------------------------------------------------------------------------------
// Scratch space and fixtures.

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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------
// kiln.

/// The kiln binary cargo built for these tests.
pub fn kiln_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kiln"))
}

/// A kiln store in a temporary directory, passed as `--root`.
pub struct KilnStore {
    dir: tempfile::TempDir,
}

impl KilnStore {
    /// An empty store.
    pub fn new() -> KilnStore {
        KilnStore { dir: temp_dir() }
    }

    /// An empty store with the busybox base imported as `busybox:test`.
    pub fn with_busybox() -> KilnStore {
        let s = KilnStore::new();
        s.import_busybox();
        s
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `kiln --root <store>`, with the caller's SOURCE_DATE_EPOCH removed so tests decide it.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(kiln_bin());
        c.arg("--root").arg(self.root());
        c.env_remove("SOURCE_DATE_EPOCH");
        c.env_remove("KILN_ROOT");
        c.stdin(Stdio::null());
        c
    }

    /// Run kiln with these arguments.
    pub fn kiln<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        run(self.cmd().args(args))
    }

    /// Run kiln and panic (showing its output) unless it exits 0.
    pub fn kiln_ok<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        run_ok(self.cmd().args(args))
    }

    /// `kiln import <busybox rootfs tarball> busybox:test`.
    pub fn import_busybox(&self) {
        let bb = busybox();
        self.kiln_ok(["import".as_ref(), bb.tarball.as_os_str(), BUSYBOX.as_ref()]);
    }

    /// `kiln save -o <dest> <image>`.
    pub fn save(&self, image: &str, dest: &Path) {
        self.kiln_ok([
            "save".as_ref(),
            "-o".as_ref(),
            dest.as_os_str(),
            image.as_ref(),
        ]);
    }

    /// The image ID kiln prints for `kiln images -q`-style lookups: `kiln inspect` JSON `Id`.
    pub fn image_id(&self, image: &str) -> String {
        let out = self.kiln_ok(["inspect", image]);
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("kiln inspect {image} is not JSON: {e}"));
        let first = if v.is_array() { &v[0] } else { &v };
        first["Id"]
            .as_str()
            .unwrap_or_else(|| panic!("kiln inspect {image} has no Id: {v}"))
            .to_string()
    }

    /// Every file in the store directory with its size and sha256 (to show that a refused
    /// operation changed nothing).
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        snapshot_dir(self.root(), self.root(), &mut out);
        out
    }
}

fn snapshot_dir(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let rel = p
            .strip_prefix(base)
            .unwrap_or(&p)
            .to_string_lossy()
            .into_owned();
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            out.insert(format!("{rel}/"), "dir".into());
            snapshot_dir(base, &p, out);
        } else if meta.is_file() {
            out.insert(rel, sha256_file(&p));
        } else {
            out.insert(rel, "other".into());
        }
    }
}

/// One store per test process with `busybox:test` imported, shared by tests that only build
/// and save (several kiln processes on one store is a supported use).
pub fn shared_store() -> &'static KilnStore {
    static STORE: OnceLock<KilnStore> = OnceLock::new();
    STORE.get_or_init(KilnStore::with_busybox)
}

// ---------------------------------------------------------------------------------------
// docker.

/// The docker client: `$KILN_TEST_DOCKER`, else Debian's `/usr/bin/docker` (which has
/// BuildKit built in), else `docker` from PATH.
pub fn docker_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("KILN_TEST_DOCKER") {
        return PathBuf::from(p);
    }
    let debian = Path::new("/usr/bin/docker");
    if debian.is_file() {
        return debian.to_path_buf();
    }
    PathBuf::from("docker")
}

/// A docker command with BuildKit enabled.
pub fn docker() -> Command {
    let mut c = Command::new(docker_bin());
    c.env("DOCKER_BUILDKIT", "1");
    c.stdin(Stdio::null());
    c
}

/// `busybox:test` exists in docker with exactly our rootfs tarball as its one layer
/// (`docker import` keeps the tarball's bytes, so its diff_id is the tarball's sha256);
/// imported once, and only again when the tarball changed.
pub fn docker_busybox() -> &'static str {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let bb = busybox();
        let want = format!("[\"sha256:{}\"]", sha256_file(&bb.tarball));
        let have = run(docker().args([
            "image",
            "inspect",
            "--format",
            "{{json .RootFS.Layers}}",
            BUSYBOX,
        ]));
        if have.status.success() && stdout_text(&have).trim() == want {
            return;
        }
        run_ok(docker().arg("import").arg(&bb.tarball).arg(BUSYBOX));
        let have = run_ok(docker().args([
            "image",
            "inspect",
            "--format",
            "{{json .RootFS.Layers}}",
            BUSYBOX,
        ]));
        assert_eq!(
            stdout_text(&have).trim(),
            want,
            "docker import changed the bytes of the busybox tarball"
        );
    });
    BUSYBOX
}

/// `docker save -o <dest> <image>`.
pub fn docker_save(image: &str, dest: &Path) {
    run_ok(docker().arg("save").arg("-o").arg(dest).arg(image));
}

/// Remove docker images the tests tagged (ignoring ones already gone).
pub fn docker_rmi(image: &str) {
    let _ = run(docker().args(["rmi", "-f", image]));
}

// ---------------------------------------------------------------------------------------
// The busybox base image.

pub const BUSYBOX_BINARY: &str = "/usr/bin/busybox";

/// Applets linked in /bin (a fixed list, so the rootfs does not depend on busybox's build).
const APPLETS: &[&str] = &[
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

enum Spec {
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

fn spec_path(s: &Spec) -> &str {
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

// ---------------------------------------------------------------------------------------
// Reading image tarballs.

/// A file-system entry of an image's final file system (after all layers and whiteouts).
/// Modification times are left out on purpose: they are policy, not content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsEntry {
    pub kind: FsKind,
    /// Permission bits with setuid, setgid and sticky (`& 0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// sha256 of a regular file's content.
    pub sha256: Option<String>,
    pub size: u64,
    /// Symlink target.
    pub link: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    File,
    Dir,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
}

impl fmt::Display for FsEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} mode {:o} owner {}:{}",
            self.kind, self.mode, self.uid, self.gid
        )?;
        if let Some(h) = &self.sha256 {
            write!(f, " size {} sha256 {}", self.size, &h[..12])?;
        }
        if let Some(l) = &self.link {
            write!(f, " -> {l}")?;
        }
        Ok(())
    }
}

/// Paths (relative, no leading `/` or `./`, no trailing `/`) to entries.
pub type FsTree = BTreeMap<String, FsEntry>;

/// One image out of a `docker save` / `kiln save` tarball.
pub struct SavedImage {
    /// The manifest.json entry.
    pub manifest: Value,
    /// The config blob, parsed.
    pub config: Value,
    pub config_bytes: Vec<u8>,
    /// The layer blobs as stored in the tarball (maybe compressed), in order.
    pub layer_blobs: Vec<Vec<u8>>,
}

/// Every regular file of an outer tarball by normalized name, with symlinks resolved
/// (docker 20.10 writes a repeated layer as a symlink to the first copy).
pub struct OuterTar {
    files: HashMap<String, Vec<u8>>,
    links: HashMap<String, String>,
    pub names: Vec<String>,
}

pub fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

impl OuterTar {
    pub fn read(path: &Path) -> OuterTar {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        OuterTar::from_bytes(&bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> OuterTar {
        let mut files = HashMap::new();
        let mut links = HashMap::new();
        let mut names = Vec::new();
        let mut ar = tar::Archive::new(bytes);
        for entry in ar.entries().expect("outer tar entries") {
            let mut entry = entry.expect("outer tar entry");
            let name = normalize(&entry.path().expect("entry path").to_string_lossy());
            names.push(name.clone());
            match entry.header().entry_type() {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry
                        .link_name()
                        .expect("link name")
                        .expect("link target")
                        .to_string_lossy()
                        .into_owned();
                    let resolved = if entry.header().entry_type() == tar::EntryType::Symlink {
                        let parent = name.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
                        normalize(&format!("{parent}/{target}"))
                    } else {
                        normalize(&target)
                    };
                    links.insert(name, resolved);
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let mut data = Vec::new();
                    entry.read_to_end(&mut data).expect("read outer entry");
                    files.insert(name, data);
                }
                _ => {}
            }
        }
        OuterTar {
            files,
            links,
            names,
        }
    }

    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let mut name = normalize(name);
        for _ in 0..16 {
            if let Some(d) = self.files.get(&name) {
                return Some(d);
            }
            name = self.links.get(&name)?.clone();
        }
        None
    }

    pub fn json(&self, name: &str) -> Value {
        let bytes = self
            .get(name)
            .unwrap_or_else(|| panic!("tarball has no {name}"));
        serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
    }

    /// The images manifest.json lists.
    pub fn images(&self) -> Vec<SavedImage> {
        let manifest = self.json("manifest.json");
        let list = manifest
            .as_array()
            .unwrap_or_else(|| panic!("manifest.json is not an array: {manifest}"));
        list.iter()
            .map(|m| {
                let cfg_name = m["Config"]
                    .as_str()
                    .unwrap_or_else(|| panic!("manifest entry without Config: {m}"));
                let config_bytes = self
                    .get(cfg_name)
                    .unwrap_or_else(|| panic!("config {cfg_name} missing"))
                    .to_vec();
                let config = serde_json::from_slice(&config_bytes)
                    .unwrap_or_else(|e| panic!("config {cfg_name} is not JSON: {e}"));
                let layer_blobs = m["Layers"]
                    .as_array()
                    .unwrap_or_else(|| panic!("manifest entry without Layers: {m}"))
                    .iter()
                    .map(|l| {
                        let n = l.as_str().expect("layer name is a string");
                        self.get(n)
                            .unwrap_or_else(|| panic!("layer {n} missing"))
                            .to_vec()
                    })
                    .collect();
                SavedImage {
                    manifest: m.clone(),
                    config,
                    config_bytes,
                    layer_blobs,
                }
            })
            .collect()
    }
}

/// The single image of a saved tarball.
pub fn read_saved_image(path: &Path) -> SavedImage {
    let mut images = OuterTar::read(path).images();
    assert_eq!(
        images.len(),
        1,
        "{} should hold exactly one image",
        path.display()
    );
    images.remove(0)
}

/// A layer blob decompressed (gzip by its magic number; plain tar otherwise).
pub fn uncompressed(blob: &[u8]) -> Vec<u8> {
    if blob.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(blob)
            .read_to_end(&mut out)
            .expect("gunzip layer");
        out
    } else if blob.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        panic!("zstd layers are not readable by the test helpers");
    } else {
        blob.to_vec()
    }
}

impl SavedImage {
    /// The uncompressed layers, in order.
    pub fn layers(&self) -> Vec<Vec<u8>> {
        self.layer_blobs.iter().map(|b| uncompressed(b)).collect()
    }

    /// `rootfs.diff_ids` of the config.
    pub fn diff_ids(&self) -> Vec<String> {
        self.config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|d| d.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The image ID: sha256 of the config blob.
    pub fn id(&self) -> String {
        format!("sha256:{}", sha256_hex(&self.config_bytes))
    }

    /// The final file system: layers applied in order with whiteouts.
    pub fn fs(&self) -> FsTree {
        let mut tree = FsTree::new();
        for layer in self.layers() {
            apply_layer(&mut tree, &layer);
        }
        tree
    }

    /// The runtime config fields the tests compare.
    pub fn runtime_config(&self) -> RuntimeConfig {
        RuntimeConfig::from_config(&self.config)
    }
}

/// Apply one uncompressed layer tar to a tree: first its whiteouts (they hide lower layers
/// only), then its entries. Missing parent directories appear as 0755 root directories, as
/// a container runtime unpacking the layer would create them.
pub fn apply_layer(tree: &mut FsTree, layer: &[u8]) {
    struct Item {
        path: String,
        kind: tar::EntryType,
        mode: u32,
        uid: u64,
        gid: u64,
        data: Vec<u8>,
        link: Option<String>,
    }
    let mut items = Vec::new();
    let mut ar = tar::Archive::new(layer);
    for entry in ar.entries().expect("layer entries") {
        let mut entry = entry.expect("layer entry");
        let path = normalize(&entry.path().expect("path").to_string_lossy());
        let h = entry.header();
        let kind = h.entry_type();
        let mode = h.mode().expect("mode") & 0o7777;
        let uid = h.uid().expect("uid");
        let gid = h.gid().expect("gid");
        let link = entry
            .link_name()
            .expect("link name")
            .map(|l| l.to_string_lossy().into_owned());
        let mut data = Vec::new();
        if kind == tar::EntryType::Regular || kind == tar::EntryType::Continuous {
            entry.read_to_end(&mut data).expect("read layer file");
        }
        items.push(Item {
            path,
            kind,
            mode,
            uid,
            gid,
            data,
            link,
        });
    }
    for it in &items {
        let (parent, base) = match it.path.rsplit_once('/') {
            Some((p, b)) => (p.to_string(), b),
            None => (String::new(), it.path.as_str()),
        };
        if base == ".wh..wh..opq" {
            let prefix = if parent.is_empty() {
                String::new()
            } else {
                format!("{parent}/")
            };
            tree.retain(|k, _| !(k.starts_with(&prefix) && k.len() > prefix.len()));
        } else if let Some(hidden) = base.strip_prefix(".wh.") {
            let victim = if parent.is_empty() {
                hidden.to_string()
            } else {
                format!("{parent}/{hidden}")
            };
            let under = format!("{victim}/");
            tree.retain(|k, _| k != &victim && !k.starts_with(&under));
        }
    }
    for it in items {
        if it.path.is_empty() {
            continue; // the root directory itself: its metadata is the runtime's business
        }
        let base = it.path.rsplit('/').next().unwrap_or("");
        if base.starts_with(".wh.") {
            continue;
        }
        let mut parent = it.path.as_str();
        while let Some((p, _)) = parent.rsplit_once('/') {
            tree.entry(p.to_string()).or_insert(FsEntry {
                kind: FsKind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                sha256: None,
                size: 0,
                link: None,
            });
            parent = p;
        }
        let entry = match it.kind {
            tar::EntryType::Link => {
                let target = normalize(it.link.as_deref().unwrap_or_default());
                tree.get(&target)
                    .cloned()
                    .unwrap_or_else(|| panic!("hardlink {} to missing {target}", it.path))
            }
            k => {
                let kind = match k {
                    tar::EntryType::Directory => FsKind::Dir,
                    tar::EntryType::Symlink => FsKind::Symlink,
                    tar::EntryType::Char => FsKind::CharDevice,
                    tar::EntryType::Block => FsKind::BlockDevice,
                    tar::EntryType::Fifo => FsKind::Fifo,
                    tar::EntryType::Regular | tar::EntryType::Continuous => FsKind::File,
                    other => panic!("unexpected entry type {other:?} at {}", it.path),
                };
                FsEntry {
                    kind,
                    mode: it.mode,
                    uid: it.uid,
                    gid: it.gid,
                    sha256: (kind == FsKind::File).then(|| sha256_hex(&it.data)),
                    size: it.data.len() as u64,
                    link: if kind == FsKind::Symlink {
                        it.link
                    } else {
                        None
                    },
                }
            }
        };
        // A directory entry over an existing directory replaces its metadata only.
        if entry.kind != FsKind::Dir {
            let under = format!("{}/", it.path);
            tree.retain(|k, _| !k.starts_with(&under));
        }
        tree.insert(it.path, entry);
    }
}

/// Lines describing how two trees differ (empty when equal).
pub fn diff_trees(left_name: &str, left: &FsTree, right_name: &str, right: &FsTree) -> Vec<String> {
    let mut out = Vec::new();
    for (path, l) in left {
        match right.get(path) {
            None => out.push(format!("/{path}: only in {left_name} ({l})")),
            Some(r) if r != l => out.push(format!(
                "/{path}: {left_name} has {l}, {right_name} has {r}"
            )),
            Some(_) => {}
        }
    }
    for (path, r) in right {
        if !left.contains_key(path) {
            out.push(format!("/{path}: only in {right_name} ({r})"));
        }
    }
    out
}

/// The fields of an image config's `config` object that decide how a container runs.
pub const RUNTIME_FIELDS: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "StopSignal",
    "Healthcheck",
    "Shell",
    "OnBuild",
];

/// Those fields; a `null` field counts as absent (docker writes some as null, kiln omits
/// them), and so does an empty string for WorkingDir/User/StopSignal (docker 20.10 writes
/// `"WorkingDir": ""`, which means the same as none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig(pub BTreeMap<String, Value>);

impl RuntimeConfig {
    pub fn from_config(config: &Value) -> RuntimeConfig {
        let mut map = BTreeMap::new();
        let c = &config["config"];
        for f in RUNTIME_FIELDS {
            let v = &c[*f];
            let absent = v.is_null() || (v.as_str() == Some(""));
            if !absent {
                map.insert(f.to_string(), v.clone());
            }
        }
        RuntimeConfig(map)
    }

    pub fn get(&self, field: &str) -> Option<&Value> {
        self.0.get(field)
    }
}

/// Lines describing how two runtime configs differ.
pub fn diff_configs(
    left_name: &str,
    left: &RuntimeConfig,
    right_name: &str,
    right: &RuntimeConfig,
) -> Vec<String> {
    let mut out = Vec::new();
    for f in RUNTIME_FIELDS {
        let l = left.get(f);
        let r = right.get(f);
        if l != r {
            let show = |v: Option<&Value>| v.map(|v| v.to_string()).unwrap_or("(none)".into());
            out.push(format!(
                "config.{f}: {left_name} has {}, {right_name} has {}",
                show(l),
                show(r)
            ));
        }
    }
    out
}

/// Groups of paths (sorted, two or more each) that are hard links of one file in an image's
/// final file system. Hard links exist only within a layer; a later layer that rewrites one
/// name takes it out of its group (a copy-up), and whiteouts remove names.
pub fn hardlink_groups(layers: &[Vec<u8>]) -> std::collections::BTreeSet<Vec<String>> {
    let mut node: BTreeMap<String, u64> = BTreeMap::new();
    let mut next = 0u64;
    for layer in layers {
        let mut ar = tar::Archive::new(layer.as_slice());
        let mut items = Vec::new();
        for entry in ar.entries().expect("layer entries") {
            let entry = entry.expect("layer entry");
            let path = normalize(&entry.path().expect("path").to_string_lossy());
            let kind = entry.header().entry_type();
            let link = entry
                .link_name()
                .expect("link name")
                .map(|l| normalize(&l.to_string_lossy()));
            items.push((path, kind, link));
        }
        for (path, _, _) in &items {
            let (parent, base) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
            let prefix = if parent.is_empty() {
                String::new()
            } else {
                format!("{parent}/")
            };
            if base == ".wh..wh..opq" {
                node.retain(|k, _| !(k.starts_with(&prefix) && k.len() > prefix.len()));
            } else if let Some(hidden) = base.strip_prefix(".wh.") {
                let victim = format!("{prefix}{hidden}");
                let under = format!("{victim}/");
                node.retain(|k, _| k != &victim && !k.starts_with(&under));
            }
        }
        for (path, kind, link) in items {
            if path.rsplit('/').next().unwrap_or("").starts_with(".wh.") {
                continue;
            }
            match kind {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    next += 1;
                    node.insert(path, next);
                }
                tar::EntryType::Link => {
                    let target = link.unwrap_or_default();
                    let id = *node
                        .get(&target)
                        .unwrap_or_else(|| panic!("hardlink {path} to missing {target}"));
                    node.insert(path, id);
                }
                tar::EntryType::Directory => {}
                _ => {
                    node.remove(&path);
                }
            }
        }
    }
    let mut by_node: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (path, id) in node {
        by_node.entry(id).or_default().push(path);
    }
    by_node.into_values().filter(|g| g.len() > 1).collect()
}

/// One `history` entry's comparable fields: `created_by` (absent counts as "") and
/// `empty_layer` (absent counts as false).
pub fn history_fields(config: &Value) -> Vec<(String, bool)> {
    config["history"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|h| {
                    (
                        h["created_by"].as_str().unwrap_or_default().to_string(),
                        h["empty_layer"].as_bool().unwrap_or(false),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Everything the differential tests compare between two saved images: the final file
/// trees, the hard-link groups, the runtime config, the number of layers, and the history
/// entries (`created_by`, `empty_layer`) after each side's first `skip_left`/`skip_right`
/// entries (those of a base image, which each tool records its own way on import).
pub fn diff_images(
    left_name: &str,
    left: &SavedImage,
    skip_left: usize,
    right_name: &str,
    right: &SavedImage,
    skip_right: usize,
) -> Vec<String> {
    let mut out = diff_trees(left_name, &left.fs(), right_name, &right.fs());
    let (lg, rg) = (
        hardlink_groups(&left.layers()),
        hardlink_groups(&right.layers()),
    );
    for g in lg.difference(&rg) {
        out.push(format!("hardlink group {g:?}: only in {left_name}"));
    }
    for g in rg.difference(&lg) {
        out.push(format!("hardlink group {g:?}: only in {right_name}"));
    }
    out.extend(diff_configs(
        left_name,
        &left.runtime_config(),
        right_name,
        &right.runtime_config(),
    ));
    let (ln, rn) = (left.diff_ids().len(), right.diff_ids().len());
    if ln != rn {
        out.push(format!(
            "layers: {left_name} has {ln}, {right_name} has {rn}"
        ));
    }
    let lh: Vec<_> = history_fields(&left.config)
        .into_iter()
        .skip(skip_left)
        .collect();
    let rh: Vec<_> = history_fields(&right.config)
        .into_iter()
        .skip(skip_right)
        .collect();
    for i in 0..lh.len().max(rh.len()) {
        let show = |e: Option<&(String, bool)>| match e {
            Some((c, empty)) => format!("{c:?} empty_layer={empty}"),
            None => "(none)".to_string(),
        };
        if lh.get(i) != rh.get(i) {
            out.push(format!(
                "history[+{i}]: {left_name} has {}, {right_name} has {}",
                show(lh.get(i)),
                show(rh.get(i))
            ));
        }
    }
    out
}
