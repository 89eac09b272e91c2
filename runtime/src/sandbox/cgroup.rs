//! A cgroup per container: created under a kiln-owned subtree (`kiln/<id>`) of the cgroup
//! the starting kiln process sits in (in v2: of the hierarchy's root when kiln may write
//! there, as the no-internal-processes rule allows controllers only there), in the cgroup v2 hierarchy and in each cgroup v1
//! hierarchy that holds a controller kiln uses (a host may mix both: each controller is
//! taken from v2 when the unified hierarchy offers it, else from its v1 hierarchy). The
//! container's monitor is put in it before it sets anything up, so the container's every
//! process, `exec`ed ones included, is in it; it is removed when the container ends.
//!
//! Owns: discovering the hierarchies (`/proc/self/mountinfo`, `/proc/PID/cgroup`), docker's
//! mapping of `HostConfig` limits to cgroup files (v1 and v2), the freezer
//! (pause/unpause), and reading usage for `kiln stats`. Every file operation goes through
//! [`CgroupFs`], so the mapping and placement logic runs against a fake in unit tests.
//! Must not: decide which limits a container gets (the spec says), print anything.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::spec::Resources;

/// The file operations cgroups need, behind a trait for tests.
pub trait CgroupFs {
    fn read(&self, path: &Path) -> std::io::Result<String>;
    fn write(&self, path: &Path, value: &str) -> std::io::Result<()>;
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()>;
    fn create_dir(&self, path: &Path) -> std::io::Result<()>;
    fn remove_dir(&self, path: &Path) -> std::io::Result<()>;
    fn exists(&self, path: &Path) -> bool;
    /// The child directories of `dir` last changed longer than `age` ago.
    fn old_children(&self, dir: &Path, age: Duration) -> Vec<PathBuf>;
}

/// The kernel's cgroup filesystems.
pub struct RealFs;

impl CgroupFs for RealFs {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
    fn write(&self, path: &Path, value: &str) -> std::io::Result<()> {
        // One write(2) per value: cgroup files take a value per write.
        use std::io::Write;
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)?
            .write_all(value.as_bytes())
    }
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(path)
    }
    fn create_dir(&self, path: &Path) -> std::io::Result<()> {
        std::fs::create_dir(path)
    }
    fn remove_dir(&self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_dir(path)
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn old_children(&self, dir: &Path, age: Duration) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| {
                e.metadata().is_ok_and(|m| {
                    m.is_dir()
                        && m.modified()
                            .ok()
                            .and_then(|t| t.elapsed().ok())
                            .is_some_and(|e| e > age)
                })
            })
            .map(|e| e.path())
            .collect()
    }
}

/// The controllers kiln uses, by their v1 names (v2: `io` for `blkio`, `cpu` for `cpuacct`;
/// the v2 freezer is no controller but `cgroup.freeze` of every non-root cgroup).
pub const CONTROLLERS: [&str; 6] = ["memory", "cpu", "cpuacct", "pids", "freezer", "blkio"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// One cgroup directory of a container and the controllers kiln uses through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dir {
    pub path: PathBuf,
    pub version: Version,
    pub controllers: Vec<&'static str>,
}

/// Where the hierarchies are mounted, and where a process sits in each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// The v2 hierarchy's directory for the process, and the controllers its root offers.
    pub unified: Option<(PathBuf, Vec<String>)>,
    /// The v2 hierarchy's root (as this process sees it): kiln's subtree goes there when it
    /// can (root, exempt from v2's no-processes-in-inner-cgroups rule).
    pub unified_root: Option<PathBuf>,
    /// Each v1 hierarchy's directory for the process, and its controllers.
    pub v1: Vec<(PathBuf, Vec<String>)>,
}

/// `(mount point, fstype, super options)` of each cgroup mount in mountinfo text.
fn cgroup_mounts(mountinfo: &str) -> Vec<(PathBuf, String, Vec<String>)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            let (fstype, options) = (fields.get(sep + 1)?, fields.get(sep + 3)?);
            if *fstype != "cgroup" && *fstype != "cgroup2" {
                return None;
            }
            let mount = unescape(fields.get(4)?);
            Some((
                PathBuf::from(mount),
                fstype.to_string(),
                options.split(',').map(str::to_string).collect(),
            ))
        })
        .collect()
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = std::str::from_utf8(&bytes[i + 1..i + 4]).ok();
            if let Some(n) = digits.and_then(|d| u8::from_str_radix(d, 8).ok()) {
                out.push(n);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `/proc/PID/cgroup` text: the v2 path (`0::/path`) and each v1 controller's path.
fn proc_paths(text: &str) -> (Option<String>, Vec<(String, String)>) {
    let mut v2 = None;
    let mut v1 = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if ctrls.is_empty() {
            v2 = Some(path.to_string());
        } else {
            for c in ctrls.split(',') {
                v1.push((c.to_string(), path.to_string()));
            }
        }
    }
    (v2, v1)
}

fn join(mount: &Path, path: &str) -> PathBuf {
    mount.join(path.trim_start_matches('/'))
}

impl Layout {
    /// The layout for the process whose `/proc/PID/cgroup` is `proc_cgroup`.
    pub fn parse(fs: &dyn CgroupFs, mountinfo: &str, proc_cgroup: &str) -> Layout {
        let (v2_path, v1_paths) = proc_paths(proc_cgroup);
        let mut layout = Layout::default();
        for (mount, fstype, options) in cgroup_mounts(mountinfo) {
            if fstype == "cgroup2" {
                if layout.unified.is_some() {
                    continue;
                }
                let Some(path) = &v2_path else { continue };
                let controllers = fs
                    .read(&mount.join("cgroup.controllers"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_string)
                    .collect();
                layout.unified = Some((join(&mount, path), controllers));
                layout.unified_root = Some(mount);
            } else {
                let controllers: Vec<String> = options
                    .into_iter()
                    .filter(|o| CONTROLLERS.contains(&o.as_str()))
                    .collect();
                let Some(first) = controllers.first() else {
                    continue;
                };
                let Some((_, path)) = v1_paths.iter().find(|(c, _)| c == first) else {
                    continue;
                };
                if layout.v1.iter().any(|(_, c)| c == &controllers) {
                    continue;
                }
                layout.v1.push((join(&mount, path), controllers));
            }
        }
        layout
    }

    /// The layout of the calling process.
    pub fn current(fs: &dyn CgroupFs) -> Layout {
        Layout::of_pid(fs, "self")
    }

    /// The layout as seen for process `pid` (`self` or a number): its own cgroups.
    fn of_pid(fs: &dyn CgroupFs, pid: &str) -> Layout {
        let mountinfo = fs
            .read(Path::new("/proc/self/mountinfo"))
            .unwrap_or_default();
        let cgroup = fs
            .read(&PathBuf::from(format!("/proc/{pid}/cgroup")))
            .unwrap_or_default();
        Layout::parse(fs, &mountinfo, &cgroup)
    }

    /// Each controller kiln uses, placed: v2 when the unified hierarchy offers it (the
    /// freezer: when no v1 freezer is mounted), else the v1 hierarchy holding it. The
    /// directories are this layout's own (the process's cgroups).
    pub fn dirs(&self) -> Vec<Dir> {
        let mut dirs: Vec<Dir> = Vec::new();
        let mut put = |path: &PathBuf, version: Version, c: &'static str| match dirs
            .iter_mut()
            .find(|d| &d.path == path)
        {
            Some(d) => d.controllers.push(c),
            None => dirs.push(Dir {
                path: path.clone(),
                version,
                controllers: vec![c],
            }),
        };
        let v1_of = |c: &str| self.v1.iter().find(|(_, cs)| cs.iter().any(|x| x == c));
        for c in CONTROLLERS {
            let v2_name = match c {
                "blkio" => "io",
                "cpuacct" => "cpu",
                other => other,
            };
            let in_v2 = self.unified.as_ref().filter(|(_, cs)| {
                if c == "freezer" {
                    v1_of("freezer").is_none()
                } else {
                    cs.iter().any(|x| x == v2_name)
                }
            });
            if let Some((path, _)) = in_v2 {
                put(path, Version::V2, c);
            } else if let Some((path, _)) = v1_of(c) {
                put(path, Version::V1, c);
            }
        }
        // The unified hierarchy holds the container even when it gives no controller.
        if let Some((path, _)) = &self.unified {
            if !dirs.iter().any(|d| &d.path == path) {
                dirs.push(Dir {
                    path: path.clone(),
                    version: Version::V2,
                    controllers: Vec::new(),
                });
            }
        }
        dirs
    }
}

/// Limits for which the host offers no controller (`memory`, `cpu`, `pids`), to warn about.
pub fn unsupported(layout: &Layout, res: &Resources) -> Vec<&'static str> {
    let dirs = layout.dirs();
    let has = |c: &str| dirs.iter().any(|d| d.controllers.contains(&c));
    let mut missing = Vec::new();
    if (res.memory.is_some() || res.memory_swap.is_some()) && !has("memory") {
        missing.push("memory");
    }
    if (res.nano_cpus.is_some()
        || res.cpu_shares.is_some()
        || res.cpu_quota.is_some()
        || res.cpu_period.is_some())
        && !has("cpu")
    {
        missing.push("cpu");
    }
    if res.pids_limit.is_some() && !has("pids") {
        missing.push("pids");
    }
    missing
}

/// The default CFS period (µs), docker's for `--cpus`.
pub const CPU_PERIOD: u64 = 100_000;

/// docker's (runc's) conversion of `--cpu-shares` (2..262144) to cgroup v2 `cpu.weight`
/// (1..10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 100;
    }
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// The files (controller, name, value) that carry `res` out, in write order, as docker
/// writes them for the same flags.
pub fn limit_files(res: &Resources, version: Version) -> Vec<(&'static str, &'static str, String)> {
    let mut out = Vec::new();
    let (quota, period) = match (res.nano_cpus, res.cpu_quota, res.cpu_period) {
        (Some(n), _, _) if n > 0 => (
            Some((n as i128 * CPU_PERIOD as i128 / 1_000_000_000) as i64),
            Some(CPU_PERIOD),
        ),
        (_, q, p) => (q.filter(|q| *q != 0), p.filter(|p| *p != 0)),
    };
    let memory = res.memory.filter(|m| *m > 0);
    // docker: without --memory-swap a limited container may use as much swap as memory.
    let swap = match (memory, res.memory_swap) {
        (_, Some(0)) | (None, None) => None,
        (Some(m), None) => Some(2 * m),
        (_, Some(s)) => Some(s),
    };
    let pids = res.pids_limit.map(|n| {
        if n > 0 {
            n.to_string()
        } else {
            "max".to_string()
        }
    });
    match version {
        Version::V1 => {
            if let Some(m) = memory {
                out.push(("memory", "memory.limit_in_bytes", m.to_string()));
            }
            if let Some(s) = swap {
                out.push(("memory", "memory.memsw.limit_in_bytes", s.to_string()));
            }
            if let Some(s) = res.cpu_shares.filter(|s| *s != 0) {
                out.push(("cpu", "cpu.shares", s.to_string()));
            }
            if let Some(p) = period {
                out.push(("cpu", "cpu.cfs_period_us", p.to_string()));
            }
            if let Some(q) = quota {
                out.push(("cpu", "cpu.cfs_quota_us", q.to_string()));
            }
            if let Some(p) = pids {
                out.push(("pids", "pids.max", p));
            }
        }
        Version::V2 => {
            if let Some(m) = memory {
                out.push(("memory", "memory.max", m.to_string()));
            }
            match (swap, memory) {
                (Some(-1), _) => out.push(("memory", "memory.swap.max", "max".into())),
                (Some(s), Some(m)) => {
                    out.push(("memory", "memory.swap.max", (s - m).max(0).to_string()))
                }
                _ => {}
            }
            if let Some(s) = res.cpu_shares.filter(|s| *s != 0) {
                out.push(("cpu", "cpu.weight", shares_to_weight(s).to_string()));
            }
            if quota.is_some() || period.is_some() {
                let q = quota
                    .filter(|q| *q > 0)
                    .map_or("max".to_string(), |q| q.to_string());
                out.push((
                    "cpu",
                    "cpu.max",
                    format!("{q} {}", period.unwrap_or(CPU_PERIOD)),
                ));
            }
            if let Some(p) = pids {
                out.push(("pids", "pids.max", p));
            }
        }
    }
    out
}

/// The name of kiln's subtree in each hierarchy.
pub const SUBTREE: &str = "kiln";

/// A container's cgroup: one directory per hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    pub dirs: Vec<Dir>,
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the container has no {0} cgroup here")]
    Missing(&'static str),
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError {
    let path = path.to_path_buf();
    move |source| CgroupError::Io {
        action,
        path,
        source,
    }
}

impl Cgroup {
    /// Create `kiln/<name>` (`kiln/<name>-<pid>` when taken) in every hierarchy of
    /// `layout`, with v2 controllers enabled down to it as far as the kernel allows.
    /// Hierarchies kiln cannot write to are left out.
    pub fn create(fs: &dyn CgroupFs, layout: &Layout, name: &str) -> Cgroup {
        let mut dirs = Vec::new();
        let leaf = [name.to_string(), format!("{name}-{}", std::process::id())];
        for d in layout.dirs() {
            let make = |base: &Path| -> Option<PathBuf> {
                let parent = base.join(SUBTREE);
                if d.version == Version::V2 {
                    let _ = fs.create_dir_all(&parent);
                    // Each on its own: one the kernel refuses leaves the others enabled.
                    for c in &d.controllers {
                        let name = match *c {
                            "memory" | "pids" | "cpu" => *c,
                            "blkio" => "io",
                            _ => continue,
                        };
                        for at in [base, &parent] {
                            let _ =
                                fs.write(&at.join("cgroup.subtree_control"), &format!("+{name}"));
                        }
                    }
                }
                leaf.iter().find_map(|l| {
                    let path = parent.join(l);
                    // The subtree may be removed by another container's end in between: again.
                    for _ in 0..3 {
                        let _ = fs.create_dir_all(&parent);
                        match fs.create_dir(&path) {
                            Ok(()) => return Some(path),
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                            Err(_) => return None,
                        }
                    }
                    None
                })
            };
            // Empty cgroups a killed holder left (none is that old while being filled).
            for base in [Some(&d.path), layout.unified_root.as_ref()]
                .into_iter()
                .flatten()
            {
                for old in fs.old_children(&base.join(SUBTREE), Duration::from_secs(60)) {
                    if fs
                        .read(&old.join("cgroup.procs"))
                        .is_ok_and(|p| p.trim().is_empty())
                    {
                        let _ = fs.remove_dir(&old);
                    }
                }
            }
            // v2: the hierarchy's root first (writable as root), else this process's cgroup.
            let bases: Vec<&Path> = match (&d.version, &layout.unified_root) {
                (Version::V2, Some(root)) if root != &d.path => vec![root, &d.path],
                _ => vec![&d.path],
            };
            let made = bases.into_iter().find_map(make);
            if let Some(path) = made {
                let controllers = match d.version {
                    Version::V1 => d.controllers.clone(),
                    // Only the controllers that reached the leaf.
                    Version::V2 => {
                        let enabled = fs
                            .read(&path.join("cgroup.controllers"))
                            .unwrap_or_default();
                        let on: Vec<&str> = enabled.split_whitespace().collect();
                        d.controllers
                            .iter()
                            .copied()
                            .filter(|c| match *c {
                                "freezer" => true,
                                "blkio" => on.contains(&"io"),
                                "cpuacct" => on.contains(&"cpu"),
                                other => on.contains(&other),
                            })
                            .collect()
                    }
                };
                dirs.push(Dir {
                    path,
                    version: d.version,
                    controllers,
                });
            }
        }
        Cgroup { dirs }
    }

    /// The cgroup process `pid` is in (a container's PID 1: its container's cgroup).
    /// Only directories of kiln's subtree count: a pid reused by a process outside any
    /// container gives an empty cgroup, never a foreign one.
    pub fn of_pid(fs: &dyn CgroupFs, pid: u32) -> Cgroup {
        let mut dirs = Layout::of_pid(fs, &pid.to_string()).dirs();
        dirs.retain(|d| {
            d.path
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|n| n == SUBTREE)
        });
        Cgroup { dirs }
    }

    /// Thaw whatever freezer is in `dirs` (the recorded cgroup of a container whose holder
    /// died: its processes can only die once thawed).
    pub fn thaw_dirs(fs: &dyn CgroupFs, dirs: &[PathBuf]) {
        for d in dirs {
            for (file, value) in [("freezer.state", "THAWED"), ("cgroup.freeze", "0")] {
                let path = d.join(file);
                if fs.exists(&path) {
                    let _ = fs.write(&path, value);
                }
            }
        }
    }

    /// Thaw a frozen container after a signal was sent to it, so the signal is acted on
    /// (docker's `kill` and `stop` of a paused container).
    pub fn thaw_after_signal(fs: &dyn CgroupFs, pid: u32) {
        let cg = Cgroup::of_pid(fs, pid);
        if cg.frozen(fs) == Some(true) {
            let _ = cg.freeze(fs, false);
        }
    }

    fn dir_of(&self, controller: &str) -> Option<&Dir> {
        self.dirs
            .iter()
            .find(|d| d.controllers.contains(&controller))
    }

    /// Write `res`'s limits. A limit whose controller is missing is skipped (the CLI has
    /// warned); one the kernel refuses is an error.
    pub fn apply(&self, fs: &dyn CgroupFs, res: &Resources) -> Result<(), CgroupError> {
        for d in &self.dirs {
            for (controller, file, value) in limit_files(res, d.version) {
                if !d.controllers.contains(&controller) {
                    continue;
                }
                let path = d.path.join(file);
                // No swap accounting: docker leaves the swap limit out too.
                if (file.contains("swap") || file.contains("memsw")) && !fs.exists(&path) {
                    continue;
                }
                fs.write(&path, &value).map_err(io_err("write", &path))?;
            }
        }
        Ok(())
    }

    /// Put process `pid` (and its future children) in every directory.
    pub fn add(&self, fs: &dyn CgroupFs, pid: u32) -> Result<(), CgroupError> {
        for d in &self.dirs {
            let path = d.path.join("cgroup.procs");
            fs.write(&path, &pid.to_string())
                .map_err(io_err("write", &path))?;
        }
        Ok(())
    }

    /// Remove the directories, waiting (at most `patience`) for exiting processes to
    /// leave; then the kiln subtree when nothing else is in it.
    pub fn remove(&self, fs: &dyn CgroupFs, patience: Duration) {
        let deadline = Instant::now() + patience;
        for d in &self.dirs {
            loop {
                match fs.remove_dir(&d.path) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(_) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(_) => break,
                }
            }
            if let Some(parent) = d.path.parent() {
                // Busy while another container's cgroup is in it: left for that one.
                let _ = fs.remove_dir(parent);
            }
        }
    }

    /// Freeze (`true`) or thaw the container: every process stops where it is.
    pub fn freeze(&self, fs: &dyn CgroupFs, frozen: bool) -> Result<(), CgroupError> {
        let d = self
            .dir_of("freezer")
            .ok_or(CgroupError::Missing("freezer"))?;
        let (file, value) = match (d.version, frozen) {
            (Version::V1, true) => ("freezer.state", "FROZEN"),
            (Version::V1, false) => ("freezer.state", "THAWED"),
            (Version::V2, true) => ("cgroup.freeze", "1"),
            (Version::V2, false) => ("cgroup.freeze", "0"),
        };
        let path = d.path.join(file);
        fs.write(&path, value).map_err(io_err("write", &path))?;
        // Freezing takes effect task by task: wait until the kernel says it is done.
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.frozen(fs) != Some(frozen) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// Whether the container is frozen (`None`: no freezer).
    pub fn frozen(&self, fs: &dyn CgroupFs) -> Option<bool> {
        let d = self.dir_of("freezer")?;
        match d.version {
            Version::V1 => fs
                .read(&d.path.join("freezer.state"))
                .ok()
                .map(|s| s.trim() == "FROZEN"),
            Version::V2 => {
                let events = fs.read(&d.path.join("cgroup.events")).ok()?;
                Some(events.lines().any(|l| l.trim() == "frozen 1"))
            }
        }
    }

    /// Whether the kernel's OOM killer killed a process of the container (docker's
    /// `State.OOMKilled`): v2 `memory.events` `oom_kill`; v1 `memory.oom_control`
    /// `oom_kill` (kernels since 4.13), else, on older kernels, the limit having been hit
    /// (`memory.failcnt`) when the container ended by SIGKILL (`killed`). Read before the
    /// cgroup is removed.
    pub fn oom_killed(&self, fs: &dyn CgroupFs, killed: bool) -> bool {
        let Some(d) = self.dir_of("memory") else {
            return false;
        };
        let count = |file: &str| {
            let text = fs.read(&d.path.join(file)).ok()?;
            text.lines().find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == "oom_kill")
                    .then(|| v.trim().parse::<u64>().ok())
                    .flatten()
            })
        };
        match d.version {
            Version::V2 => count("memory.events").is_some_and(|n| n > 0),
            Version::V1 => match count("memory.oom_control") {
                Some(n) => n > 0,
                None => {
                    killed
                        && fs
                            .read(&d.path.join("memory.failcnt"))
                            .ok()
                            .and_then(|s| s.trim().parse::<u64>().ok())
                            .is_some_and(|n| n > 0)
                }
            },
        }
    }

    /// What `kiln stats` shows, read from the controllers' files.
    pub fn usage(&self, fs: &dyn CgroupFs) -> Usage {
        let mut u = Usage::default();
        let read = |d: &Dir, f: &str| fs.read(&d.path.join(f)).ok();
        let num = |s: Option<String>| s.and_then(|s| s.trim().parse::<u64>().ok());
        let stat = |s: &Option<String>, key: &str| {
            s.as_deref().and_then(|s| {
                s.lines().find_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    (k == key).then(|| v.trim().parse::<u64>().ok()).flatten()
                })
            })
        };
        if let Some(d) = self.dir_of("memory") {
            let memstat = read(d, "memory.stat");
            match d.version {
                Version::V1 => {
                    let usage = num(read(d, "memory.usage_in_bytes"));
                    let inactive = stat(&memstat, "total_inactive_file").unwrap_or(0);
                    u.memory = usage.map(|m| m.saturating_sub(inactive));
                    // v1's "unlimited" is a huge page-aligned number.
                    u.memory_limit =
                        num(read(d, "memory.limit_in_bytes")).filter(|l| *l < (1 << 62));
                }
                Version::V2 => {
                    let usage = num(read(d, "memory.current"));
                    let inactive = stat(&memstat, "inactive_file").unwrap_or(0);
                    u.memory = usage.map(|m| m.saturating_sub(inactive));
                    u.memory_limit = num(read(d, "memory.max"));
                }
            }
        }
        if let Some(d) = self.dir_of("cpuacct") {
            u.cpu_ns = match d.version {
                Version::V1 => num(read(d, "cpuacct.usage")),
                Version::V2 => stat(&read(d, "cpu.stat"), "usage_usec").map(|us| us * 1000),
            };
        }
        if let Some(d) = self.dir_of("pids") {
            u.pids = num(read(d, "pids.current"));
        }
        if let Some(d) = self.dir_of("blkio") {
            let (mut r, mut w) = (0u64, 0u64);
            match d.version {
                Version::V1 => {
                    let text = read(d, "blkio.throttle.io_service_bytes").unwrap_or_default();
                    for l in text.lines() {
                        let f: Vec<&str> = l.split_whitespace().collect();
                        if let [_, op, v] = f[..] {
                            let v: u64 = v.parse().unwrap_or(0);
                            match op {
                                "Read" => r += v,
                                "Write" => w += v,
                                _ => {}
                            }
                        }
                    }
                }
                Version::V2 => {
                    let text = read(d, "io.stat").unwrap_or_default();
                    for f in text.split_whitespace() {
                        if let Some(v) = f.strip_prefix("rbytes=") {
                            r += v.parse().unwrap_or(0);
                        } else if let Some(v) = f.strip_prefix("wbytes=") {
                            w += v.parse().unwrap_or(0);
                        }
                    }
                }
            }
            u.block_read = r;
            u.block_write = w;
        }
        u
    }
}

/// A container's resource usage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time used so far, nanoseconds.
    pub cpu_ns: Option<u64>,
    /// Memory in use, less the inactive page cache (docker's figure).
    pub memory: Option<u64>,
    pub memory_limit: Option<u64>,
    pub pids: Option<u64>,
    pub block_read: u64,
    pub block_write: u64,
}

/// A container's cgroup, removed when dropped (the container has ended or failed to start).
pub struct Owned {
    pub cgroup: Cgroup,
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.cgroup.remove(&RealFs, Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// Files and directories in memory; writes are recorded in order.
    #[derive(Default)]
    struct Fake {
        files: RefCell<BTreeMap<PathBuf, String>>,
        dirs: RefCell<Vec<PathBuf>>,
        writes: RefCell<Vec<(PathBuf, String)>>,
    }

    impl CgroupFs for Fake {
        fn read(&self, path: &Path) -> std::io::Result<String> {
            self.files
                .borrow()
                .get(path)
                .cloned()
                .ok_or_else(|| std::io::ErrorKind::NotFound.into())
        }
        fn write(&self, path: &Path, value: &str) -> std::io::Result<()> {
            self.writes
                .borrow_mut()
                .push((path.to_path_buf(), value.to_string()));
            self.files
                .borrow_mut()
                .insert(path.to_path_buf(), value.to_string());
            Ok(())
        }
        fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
            self.dirs.borrow_mut().push(path.to_path_buf());
            Ok(())
        }
        fn create_dir(&self, path: &Path) -> std::io::Result<()> {
            if self.dirs.borrow().contains(&path.to_path_buf()) {
                return Err(std::io::ErrorKind::AlreadyExists.into());
            }
            self.dirs.borrow_mut().push(path.to_path_buf());
            Ok(())
        }
        fn remove_dir(&self, path: &Path) -> std::io::Result<()> {
            self.dirs.borrow_mut().retain(|d| d != path);
            Ok(())
        }
        fn exists(&self, path: &Path) -> bool {
            self.files.borrow().contains_key(path)
        }
        fn old_children(&self, dir: &Path, _age: Duration) -> Vec<PathBuf> {
            let dirs = self.dirs.borrow();
            dirs.iter()
                .filter(|d| d.parent() == Some(dir))
                .cloned()
                .collect()
        }
    }

    const HYBRID: &str = "\
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
34 30 0:30 / /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
35 30 0:31 / /sys/fs/cgroup/freezer rw,nosuid - cgroup cgroup rw,freezer
36 30 0:32 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,name=systemd
";
    const HYBRID_SELF: &str = "\
6:freezer:/
5:pids:/
4:memory:/session/a
3:cpu,cpuacct:/
1:name=systemd:/
0::/
";

    #[test]
    fn hybrid_hosts_take_controllers_from_v1() {
        let fs = Fake::default();
        fs.files.borrow_mut().insert(
            "/sys/fs/cgroup/unified/cgroup.controllers".into(),
            "hugetlb\n".into(),
        );
        let layout = Layout::parse(&fs, HYBRID, HYBRID_SELF);
        let dirs = layout.dirs();
        let find = |c: &str| dirs.iter().find(|d| d.controllers.contains(&c)).cloned();
        let mem = find("memory").expect("memory");
        assert_eq!(mem.path, PathBuf::from("/sys/fs/cgroup/memory/session/a"));
        assert_eq!(mem.version, Version::V1);
        let cpu = find("cpuacct").expect("cpuacct");
        assert_eq!(cpu.path, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(cpu.controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(find("freezer").map(|d| d.version), Some(Version::V1));
        assert!(find("blkio").is_none());
        // The unified hierarchy holds the container too, with no controller of its own.
        assert!(dirs
            .iter()
            .any(|d| d.version == Version::V2 && d.controllers.is_empty()));
        let res = Resources {
            memory: Some(1 << 20),
            ..Default::default()
        };
        assert!(unsupported(&layout, &res).is_empty());
    }

    #[test]
    fn unified_hosts_take_everything_from_v2() {
        let mountinfo = "31 25 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n";
        let fs = Fake::default();
        fs.files.borrow_mut().insert(
            "/sys/fs/cgroup/cgroup.controllers".into(),
            "cpuset cpu io memory pids\n".into(),
        );
        let layout = Layout::parse(&fs, mountinfo, "0::/user.slice\n");
        let dirs = layout.dirs();
        assert_eq!(dirs.len(), 1);
        assert_eq!(dirs[0].path, PathBuf::from("/sys/fs/cgroup/user.slice"));
        assert_eq!(
            dirs[0].controllers,
            vec!["memory", "cpu", "cpuacct", "pids", "freezer", "blkio"]
        );
        let cg = Cgroup::create(&fs, &layout, "abc");
        let writes = fs.writes.borrow().clone();
        // The hierarchy's root takes kiln's subtree (writable here).
        assert!(writes.contains(&(
            "/sys/fs/cgroup/cgroup.subtree_control".into(),
            "+memory".into()
        )));
        assert!(writes.contains(&(
            "/sys/fs/cgroup/kiln/cgroup.subtree_control".into(),
            "+pids".into()
        )));
        assert_eq!(cg.dirs[0].path, PathBuf::from("/sys/fs/cgroup/kiln/abc"));
        // The fake's leaf lists no enabled controllers: only the freezer remains.
        assert_eq!(cg.dirs[0].controllers, vec!["freezer"]);
        // A name taken already: the pid is added.
        let again = Cgroup::create(&fs, &layout, "abc");
        assert_eq!(
            again.dirs[0].path,
            PathBuf::from(format!("/sys/fs/cgroup/kiln/abc-{}", std::process::id()))
        );
        // An old, empty cgroup (its holder killed) is swept by the next create; a filled
        // one stays.
        fs.files
            .borrow_mut()
            .insert("/sys/fs/cgroup/kiln/abc/cgroup.procs".into(), String::new());
        fs.files
            .borrow_mut()
            .insert(again.dirs[0].path.join("cgroup.procs"), "42\n".into());
        Cgroup::create(&fs, &layout, "xyz");
        let dirs = fs.dirs.borrow();
        assert!(!dirs.contains(&PathBuf::from("/sys/fs/cgroup/kiln/abc")));
        assert!(dirs.contains(&again.dirs[0].path));
    }

    #[test]
    fn no_controllers_means_a_warning() {
        let layout = Layout::default();
        let res = Resources {
            memory: Some(1 << 20),
            nano_cpus: Some(500_000_000),
            pids_limit: Some(10),
            ..Default::default()
        };
        assert_eq!(unsupported(&layout, &res), vec!["memory", "cpu", "pids"]);
        assert!(unsupported(&layout, &Resources::default()).is_empty());
    }

    #[test]
    fn docker_conversions() {
        // runc's table: 2 -> 1, 1024 -> 39, 262144 -> 10000.
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(512), 20);
        assert_eq!(shares_to_weight(262_144), 10000);
        let res = Resources {
            memory: Some(64 << 20),
            nano_cpus: Some(1_500_000_000),
            cpu_shares: Some(512),
            pids_limit: Some(20),
            ..Default::default()
        };
        let v2: Vec<(&str, String)> = limit_files(&res, Version::V2)
            .into_iter()
            .map(|(_, f, v)| (f, v))
            .collect();
        assert_eq!(
            v2,
            vec![
                ("memory.max", (64u64 << 20).to_string()),
                ("memory.swap.max", (64u64 << 20).to_string()),
                ("cpu.weight", "20".into()),
                ("cpu.max", "150000 100000".into()),
                ("pids.max", "20".into()),
            ]
        );
        let v1: Vec<(&str, String)> = limit_files(&res, Version::V1)
            .into_iter()
            .map(|(_, f, v)| (f, v))
            .collect();
        assert_eq!(
            v1,
            vec![
                ("memory.limit_in_bytes", (64u64 << 20).to_string()),
                ("memory.memsw.limit_in_bytes", (128u64 << 20).to_string()),
                ("cpu.shares", "512".into()),
                ("cpu.cfs_period_us", "100000".into()),
                ("cpu.cfs_quota_us", "150000".into()),
                ("pids.max", "20".into()),
            ]
        );
        let quota = Resources {
            cpu_quota: Some(50_000),
            cpu_period: Some(200_000),
            memory: Some(10 << 20),
            memory_swap: Some(-1),
            ..Default::default()
        };
        let v2 = limit_files(&quota, Version::V2);
        assert!(v2.contains(&("cpu", "cpu.max", "50000 200000".into())));
        assert!(v2.contains(&("memory", "memory.swap.max", "max".into())));
        let period_only = Resources {
            cpu_period: Some(50_000),
            ..Default::default()
        };
        assert_eq!(
            limit_files(&period_only, Version::V2),
            vec![("cpu", "cpu.max", "max 50000".to_string())]
        );
    }

    #[test]
    fn apply_writes_only_controllers_the_cgroup_has() {
        let fs = Fake::default();
        let cg = Cgroup {
            dirs: vec![
                Dir {
                    path: "/m/kiln/x".into(),
                    version: Version::V1,
                    controllers: vec!["memory"],
                },
                Dir {
                    path: "/u/kiln/x".into(),
                    version: Version::V2,
                    controllers: vec!["freezer"],
                },
            ],
        };
        let res = Resources {
            memory: Some(8 << 20),
            pids_limit: Some(5),
            ..Default::default()
        };
        cg.apply(&fs, &res).expect("apply");
        // No memsw file (no swap accounting): only the memory limit.
        assert_eq!(
            fs.writes.borrow().clone(),
            vec![(
                PathBuf::from("/m/kiln/x/memory.limit_in_bytes"),
                (8u64 << 20).to_string()
            )]
        );
        cg.add(&fs, 42).expect("add");
        assert_eq!(
            fs.read(Path::new("/u/kiln/x/cgroup.procs")).ok(),
            Some("42".into())
        );
        fs.files.borrow_mut().insert(
            "/u/kiln/x/cgroup.events".into(),
            "populated 1\nfrozen 0\n".into(),
        );
        assert_eq!(cg.frozen(&fs), Some(false));
    }

    #[test]
    fn usage_from_v1_files() {
        let fs = Fake::default();
        for (f, v) in [
            ("/m/memory.usage_in_bytes", "1048576\n"),
            ("/m/memory.stat", "cache 0\ntotal_inactive_file 4096\n"),
            ("/m/memory.limit_in_bytes", "9223372036854771712\n"),
            ("/c/cpuacct.usage", "123456\n"),
            ("/p/pids.current", "3\n"),
            (
                "/b/blkio.throttle.io_service_bytes",
                "8:0 Read 100\n8:0 Write 50\n8:16 Read 1\nTotal 151\n",
            ),
        ] {
            fs.files.borrow_mut().insert(f.into(), v.into());
        }
        let dir = |p: &str, c: &'static str| Dir {
            path: p.into(),
            version: Version::V1,
            controllers: vec![c],
        };
        let cg = Cgroup {
            dirs: vec![
                dir("/m", "memory"),
                dir("/c", "cpuacct"),
                dir("/p", "pids"),
                dir("/b", "blkio"),
            ],
        };
        let u = cg.usage(&fs);
        assert_eq!(u.memory, Some(1048576 - 4096));
        assert_eq!(u.memory_limit, None);
        assert_eq!(u.cpu_ns, Some(123456));
        assert_eq!(u.pids, Some(3));
        assert_eq!((u.block_read, u.block_write), (101, 50));
    }

    #[test]
    fn oom_kills_from_v1_and_v2_files() {
        let fs = Fake::default();
        let one = |p: &str, v: Version| Cgroup {
            dirs: vec![Dir {
                path: p.into(),
                version: v,
                controllers: vec!["memory"],
            }],
        };
        let (v1, v2, old) = (
            one("/m1", Version::V1),
            one("/u", Version::V2),
            one("/m0", Version::V1),
        );
        let set = |f: &str, v: &str| fs.files.borrow_mut().insert(f.into(), v.into());
        set(
            "/m1/memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        );
        set(
            "/u/memory.events",
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n",
        );
        assert!(!v1.oom_killed(&fs, true));
        assert!(!v2.oom_killed(&fs, true));
        set(
            "/m1/memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        );
        set(
            "/u/memory.events",
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n",
        );
        assert!(v1.oom_killed(&fs, false));
        assert!(v2.oom_killed(&fs, false));
        // A kernel without the oom_kill count: the limit was hit and the end was SIGKILL.
        set(
            "/m0/memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\n",
        );
        set("/m0/memory.failcnt", "12\n");
        assert!(old.oom_killed(&fs, true));
        assert!(!old.oom_killed(&fs, false));
        assert!(!Cgroup { dirs: Vec::new() }.oom_killed(&fs, true));
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }
}
