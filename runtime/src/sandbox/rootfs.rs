//! The container's filesystem, set up inside its new mount namespace: the overlay root, the
//! standard mounts (/proc, /dev and its nodes, /dev/pts, /dev/shm, /dev/mqueue, /sys), the
//! spec's mounts, Docker's masked and read-only /proc and /sys paths, then `pivot_root`.
//!
//! Every mount target inside the root is resolved inside the root (never following a symlink
//! out of it) and mounted through the descriptor it resolved to. Everything goes through the
//! [`Syscall`] trait, so the order and arguments are unit-tested with the recorder.
//! Must not: start processes, touch users or capabilities, or read the store.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::sys::stat::SFlag;

use super::spec::{ContainerSpec, Mount, MountKind};
use super::syscall::{Create, Syscall};

/// A failed set-up step: what was being done, and the kernel's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupFailure {
    pub step: String,
    pub errno: nix::errno::Errno,
}

impl std::fmt::Display for SetupFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step, self.errno.desc())
    }
}

type Result<T> = std::result::Result<T, SetupFailure>;

fn at(step: impl Into<String>) -> impl FnOnce(nix::errno::Errno) -> SetupFailure {
    let step = step.into();
    move |errno| SetupFailure { step, errno }
}

/// Files in the private tmpfs, for [`MountKind::File`] mounts.
pub struct FileStage {
    pub dir: PathBuf,
}

const OVERLAY_OPTIONS: &str = "index=off,metacopy=off,redirect_dir=off";
/// The kernel's limit on mount data is a page; stay below it with room for the other options.
const MAX_LOWERDIR: usize = 3500;
/// overlayfs stacks at most this many lower layers (the kernel's OVL_MAX_STACK).
const MAX_LAYERS: usize = 500;

/// Mount the overlay root at `spec.rootfs.merged` and everything inside it, then pivot into
/// it. Returns the paths (inside the root) that set-up had to create as mount points, so a
/// build step can remove them from its layer again.
pub fn setup(sys: &dyn Syscall, spec: &ContainerSpec, files: &FileStage) -> Result<Vec<String>> {
    let root = spec.rootfs.merged.as_path();
    sys.mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )
    .map_err(at("making / private"))?;
    mount_overlay(
        sys,
        &spec.rootfs.layers,
        Some((&spec.rootfs.upper, &spec.rootfs.work)),
        root,
        spec.rootfs.ephemeral,
    )?;
    let mut stubs = Vec::new();
    standard_mounts(sys, root, spec, &mut stubs)?;
    for (i, m) in spec.mounts.iter().enumerate() {
        user_mount(sys, root, m, files, i, &mut stubs)?;
    }
    // `--privileged`, as docker's: no masked or read-only paths.
    if !spec.privileged {
        mask_paths(sys, root)?;
    }
    if spec.rootfs.readonly {
        sys.remount_read_only(root)
            .map_err(at("making the root read-only"))?;
    }
    sys.pivot_root(root).map_err(at("pivot_root"))?;
    if !spec.hostname.is_empty() {
        sys.sethostname(&spec.hostname).map_err(at("sethostname"))?;
    }
    Ok(stubs)
}

/// Overlay `layers` (lowest first) at `target`; writable when `upper` is given. True when a
/// single read-only layer was bound instead, which the caller must remount read-only.
fn mount_overlay(
    sys: &dyn Syscall,
    layers: &[PathBuf],
    upper: Option<(&PathBuf, &PathBuf)>,
    target: &Path,
    volatile: bool,
) -> Result<bool> {
    if let ([only], None) = (layers, upper) {
        // overlayfs wants two lower layers when it has no upper one: bind the one instead;
        // the caller remounts it read-only (through a fresh resolution of the target).
        let src = only.display().to_string();
        sys.mount(
            Some(&src),
            target,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .map_err(at(format!("mounting {} at {}", src, target.display())))?;
        return Ok(true);
    }
    // `_open` holds the layers' descriptors when the names are theirs, until the mount is made.
    let (lower, _open) = lowerdir(sys, layers)?;
    let mut data = format!("lowerdir={lower}");
    if let Some((upper, work)) = upper {
        data.push_str(&format!(
            ",upperdir={},workdir={}",
            upper.display(),
            work.display()
        ));
    }
    data.push(',');
    data.push_str(OVERLAY_OPTIONS);
    if volatile && upper.is_some() {
        data.push_str(",volatile");
    }
    // nodev: a device node that came with an image (or that the payload makes) opens nothing;
    // the container's devices are those of its own /dev tmpfs.
    let flags = if upper.is_some() {
        MsFlags::MS_NODEV
    } else {
        MsFlags::MS_NODEV | MsFlags::MS_RDONLY
    };
    sys.mount(Some("overlay"), target, Some("overlay"), flags, Some(&data))
        .map_err(at(format!("mounting the overlay at {}", target.display())))?;
    Ok(false)
}

/// The `lowerdir=` value, topmost layer first, and the descriptors it names, if any. A stack
/// whose paths do not fit in the mount data is named relative to its common directory (the
/// store's unpacked-layer directory), which becomes the working directory; one that does not
/// fit that way either, by descriptors: each layer opened `O_PATH`, the working directory
/// `/proc/self/fd`, the names the descriptors' numbers (up to overlayfs's 500 layers; docker
/// stops at 125).
fn lowerdir(
    sys: &dyn Syscall,
    layers: &[PathBuf],
) -> Result<(String, Vec<super::syscall::Resolved>)> {
    let too_many = || SetupFailure {
        step: format!(
            "stacking {} layers (overlayfs takes at most {MAX_LAYERS} in one mount)",
            layers.len()
        ),
        errno: nix::errno::Errno::E2BIG,
    };
    if layers.len() > MAX_LAYERS {
        return Err(too_many());
    }
    let join = |names: Vec<String>| names.join(":");
    let absolute = join(
        layers
            .iter()
            .rev()
            .map(|p| p.display().to_string())
            .collect(),
    );
    if absolute.len() <= MAX_LOWERDIR {
        return Ok((absolute, Vec::new()));
    }
    let parent = layers
        .first()
        .and_then(|p| p.parent())
        .unwrap_or(Path::new("/"));
    if layers.iter().all(|p| p.parent() == Some(parent)) {
        let relative = join(
            layers
                .iter()
                .rev()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect(),
        );
        if relative.len() <= MAX_LOWERDIR {
            sys.chdir(parent)
                .map_err(at("entering the layer directory"))?;
            return Ok((relative, Vec::new()));
        }
    }
    let open = layers
        .iter()
        .rev()
        .map(|p| {
            sys.open_dir(p)
                .map_err(at(format!("opening the layer {}", p.display())))
        })
        .collect::<Result<Vec<_>>>()?;
    let names = join(open.iter().map(|d| d.fd_name()).collect());
    if names.len() > MAX_LOWERDIR {
        return Err(too_many());
    }
    sys.chdir(Path::new("/proc/self/fd"))
        .map_err(at("entering /proc/self/fd"))?;
    Ok((names, open))
}

fn resolve(
    sys: &dyn Syscall,
    root: &Path,
    inside: &str,
    create: Create,
    stubs: &mut Vec<String>,
) -> Result<super::syscall::Resolved> {
    let (r, created) = sys
        .resolve_in_root(root, inside, create)
        .map_err(at(format!("resolving {inside} inside the root")))?;
    stubs.extend(created);
    Ok(r)
}

/// Docker's standard mounts and device nodes (/sys writable when `privileged`, as docker's).
fn standard_mounts(
    sys: &dyn Syscall,
    root: &Path,
    spec: &ContainerSpec,
    stubs: &mut Vec<String>,
) -> Result<()> {
    let privileged = spec.privileged;
    let shm = format!("mode=1777,size={}", spec.limits.shm_bytes());
    let sys_flags = if privileged {
        MsFlags::empty()
    } else {
        MsFlags::MS_RDONLY
    };
    let nosuid_noexec_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    let table: [(&str, &str, MsFlags, &str); 6] = [
        ("/proc", "proc", nosuid_noexec_nodev, ""),
        (
            "/dev",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
            "mode=755,size=65536k",
        ),
        (
            "/dev/pts",
            "devpts",
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620,gid=5",
        ),
        ("/dev/shm", "tmpfs", nosuid_noexec_nodev, shm.as_str()),
        ("/dev/mqueue", "mqueue", nosuid_noexec_nodev, ""),
        ("/sys", "sysfs", nosuid_noexec_nodev | sys_flags, ""),
    ];
    for (target, fstype, flags, data) in table {
        let at_path = resolve(sys, root, target, Create::Dir, stubs)?;
        let data = (!data.is_empty()).then_some(data);
        sys.mount(
            Some(fstype),
            &at_path.proc_path(),
            Some(fstype),
            flags,
            data,
        )
        .map_err(at(format!("mounting {fstype} at {target}")))?;
        if target == "/dev" {
            // The nodes go into the fresh tmpfs: resolve /dev again to reach it.
            let dev = resolve(sys, root, "/dev", Create::Nothing, stubs)?;
            device_nodes(sys, &dev.proc_path())?;
        }
    }
    Ok(())
}

fn device_nodes(sys: &dyn Syscall, dev: &Path) -> Result<()> {
    let nodes: [(&str, u64, u64); 6] = [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ];
    for (name, major, minor) in nodes {
        let path = dev.join(name);
        sys.mknod(
            &path,
            SFlag::S_IFCHR,
            0o666,
            nix::sys::stat::makedev(major, minor),
        )
        .map_err(at(format!("creating /dev/{name}")))?;
    }
    for (name, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("core", "/proc/kcore"),
    ] {
        sys.symlink(target, &dev.join(name))
            .map_err(at(format!("linking /dev/{name}")))?;
    }
    for dir in ["pts", "shm", "mqueue"] {
        sys.mkdir(&dev.join(dir), 0o755)
            .map_err(at(format!("creating /dev/{dir}")))?;
    }
    Ok(())
}

fn user_mount(
    sys: &dyn Syscall,
    root: &Path,
    m: &Mount,
    files: &FileStage,
    index: usize,
    stubs: &mut Vec<String>,
) -> Result<()> {
    let what = format!("mounting {}", m.target);
    let mut readonly_remount = m.readonly;
    match &m.kind {
        MountKind::Bind { source, fill } => {
            if *fill {
                if let Ok((from, _)) = sys.resolve_in_root(root, &m.target, Create::Nothing) {
                    sys.fill_empty_dir(&from.proc_path(), source)
                        .map_err(at(format!(
                            "copying the image's {} into the volume",
                            m.target
                        )))?;
                }
            }
            bind_into_root(sys, root, source, &m.target, stubs)?;
        }
        MountKind::Tmpfs { size, mode, noexec } => {
            let target = resolve(sys, root, &m.target, Create::Dir, stubs)?;
            let mut data = format!("mode={mode:o}");
            if let Some(size) = size {
                data.push_str(&format!(",size={size}"));
            }
            let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
            if *noexec {
                flags |= MsFlags::MS_NOEXEC;
            }
            if m.readonly {
                flags |= MsFlags::MS_RDONLY;
                readonly_remount = false;
            }
            sys.mount(
                Some("tmpfs"),
                &target.proc_path(),
                Some("tmpfs"),
                flags,
                Some(&data),
            )
            .map_err(at(what.clone()))?;
        }
        MountKind::File {
            content,
            mode,
            uid,
            gid,
        } => {
            let staged = files.dir.join(format!("f{index}"));
            sys.write_file(&staged, content, *mode, *uid, *gid)
                .map_err(at(format!("writing the file for {}", m.target)))?;
            bind_into_root(sys, root, &staged, &m.target, stubs)?;
        }
        MountKind::Layers {
            layers,
            upper,
            subpath,
        } => {
            let upper = upper.as_ref().map(|(u, w)| (u, w));
            let whole = subpath.trim_matches('/').is_empty();
            if whole {
                let target = resolve(sys, root, &m.target, Create::Dir, stubs)?;
                let plain = mount_overlay(sys, layers, upper, &target.proc_path(), true)?;
                readonly_remount = plain && m.readonly;
            } else {
                // Stack the layers in the private tmpfs, then bind the part asked for.
                let stack = files.dir.join(format!("m{index}"));
                sys.mkdir(&stack, 0o755)
                    .map_err(at(format!("staging {}", m.target)))?;
                if mount_overlay(sys, layers, upper, &stack, true)? {
                    sys.remount_read_only(&stack)
                        .map_err(at(format!("making {} read-only", m.target)))?;
                }
                let mut none = Vec::new();
                let source = resolve(sys, &stack, subpath, Create::Nothing, &mut none)?;
                bind_into_root(sys, root, &source.proc_path(), &m.target, stubs)?;
            }
        }
    }
    if readonly_remount {
        // A bind mount takes MS_RDONLY only on a remount of the new mount: resolve it again.
        let target = resolve(sys, root, &m.target, Create::Nothing, stubs)?;
        sys.remount_read_only(&target.proc_path())
            .map_err(at(format!("making {} read-only", m.target)))?;
    }
    Ok(())
}

/// Bind `source` at `target` inside the root, the mount point made a directory or a file to
/// match the source.
fn bind_into_root(
    sys: &dyn Syscall,
    root: &Path,
    source: &Path,
    target: &str,
    stubs: &mut Vec<String>,
) -> Result<()> {
    let create = if source.is_dir() {
        Create::Dir
    } else {
        Create::File
    };
    let at_target = resolve(sys, root, target, create, stubs)?;
    let src = source.display().to_string();
    sys.mount(
        Some(&src),
        &at_target.proc_path(),
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
    .map_err(at(format!("mounting {target}")))
}

/// Docker's masked paths (hidden behind /dev/null or an empty read-only tmpfs) and read-only
/// paths under /proc and /sys. Paths the kernel does not have are skipped.
const MASKED: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const READ_ONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn mask_paths(sys: &dyn Syscall, root: &Path) -> Result<()> {
    let mut none = Vec::new();
    for path in MASKED {
        let Ok((target, _)) = sys.resolve_in_root(root, path, Create::Nothing) else {
            continue;
        };
        let target_path = target.proc_path();
        let is_dir = target_path.is_dir();
        let r = if is_dir {
            sys.mount(
                Some("tmpfs"),
                &target_path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=0"),
            )
        } else {
            let null = resolve(sys, root, "/dev/null", Create::Nothing, &mut none)?;
            let null = null.proc_path().display().to_string();
            sys.mount(Some(&null), &target_path, None, MsFlags::MS_BIND, None)
        };
        r.map_err(at(format!("masking {path}")))?;
    }
    for path in READ_ONLY {
        let Ok((target, _)) = sys.resolve_in_root(root, path, Create::Nothing) else {
            continue;
        };
        let target_path = target.proc_path();
        sys.mount(
            Some(&target_path.display().to_string()),
            &target_path,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .and_then(|()| {
            let (again, _) = sys.resolve_in_root(root, path, Create::Nothing)?;
            sys.remount_read_only(&again.proc_path())
        })
        .map_err(at(format!("making {path} read-only")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::spec::{Network, Process, Rootfs};
    use crate::sandbox::syscall::Recorder;

    fn spec(mounts: Vec<Mount>, readonly: bool) -> ContainerSpec {
        ContainerSpec {
            id: "c".into(),
            rootfs: Rootfs {
                layers: vec!["/s/l/a".into(), "/s/l/b".into()],
                upper: "/b/upper".into(),
                work: "/b/work".into(),
                merged: "/b/merged".into(),
                scratch: "/b/scratch".into(),
                readonly,
                ephemeral: false,
            },
            process: Process {
                args: vec!["true".into()],
                env: vec![],
                cwd: "/".into(),
                user: String::new(),
                terminal: false,
            },
            hostname: "h".into(),
            network: Network::None,
            mounts,
            init: false,
            capabilities: 0,
            seccomp: true,
            ports: vec![],
            privileged: false,
            pid: Default::default(),
            resources: Default::default(),
            limits: Default::default(),
        }
    }

    fn lines(spec: &ContainerSpec) -> Vec<String> {
        let rec = Recorder::default();
        setup(
            &rec,
            spec,
            &FileStage {
                dir: "/b/scratch".into(),
            },
        )
        .unwrap();
        rec.lines()
    }

    #[test]
    fn order_of_set_up() {
        let l = lines(&spec(vec![], false));
        assert!(
            l[0].starts_with("mount - / - MS_REC | MS_PRIVATE"),
            "{}",
            l[0]
        );
        // The topmost layer comes first in lowerdir.
        assert!(
            l[1].contains("overlay /b/merged overlay MS_NODEV lowerdir=/s/l/b:/s/l/a,upperdir=/b/upper,workdir=/b/work,index=off,metacopy=off,redirect_dir=off"),
            "{}",
            l[1]
        );
        let pos = |needle: &str| {
            l.iter()
                .position(|x| x.contains(needle))
                .unwrap_or_else(|| panic!("{needle} missing: {l:#?}"))
        };
        assert!(pos("resolve /proc Dir") < pos("resolve /dev Dir"));
        assert!(pos("mknod <root>/dev/null") > pos("tmpfs <root>/dev tmpfs"));
        assert!(pos("symlink pts/ptmx <root>/dev/ptmx") > 0);
        assert!(pos("newinstance,ptmxmode=0666") > pos("mknod <root>/dev/null"));
        assert!(pos("sysfs <root>/sys sysfs MS_RDONLY") > 0);
        // Masking comes after every mount, pivot_root last, then the hostname.
        assert!(pos("resolve /proc/kcore Nothing") > pos("sysfs"));
        let pivot = pos("pivot_root /b/merged");
        assert_eq!(l[pivot + 1], "sethostname h");
        // A writable root is never remounted read-only.
        assert!(!l.contains(&"remount-ro /b/merged".to_string()));
    }

    #[test]
    fn read_only_root_is_remounted_before_pivot() {
        let l = lines(&spec(vec![], true));
        let ro = l
            .iter()
            .position(|x| x == "remount-ro /b/merged")
            .expect("remount");
        let pivot = l.iter().position(|x| x.starts_with("pivot_root")).unwrap();
        assert!(ro < pivot);
    }

    #[test]
    fn user_mounts_are_resolved_inside_the_root_and_remounted_read_only() {
        let mounts = vec![
            Mount {
                target: "/data".into(),
                kind: MountKind::Bind {
                    source: "/nonexistent-host-dir".into(),
                    fill: false,
                },
                readonly: true,
            },
            Mount {
                target: "/etc/hosts".into(),
                kind: MountKind::File {
                    content: b"x".to_vec(),
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                },
                readonly: false,
            },
            Mount {
                target: "/t".into(),
                kind: MountKind::Tmpfs {
                    size: Some(1024),
                    mode: 0o1777,
                    noexec: false,
                },
                readonly: false,
            },
        ];
        let l = lines(&spec(mounts, false));
        let bind = l
            .iter()
            .position(|x| x == "mount /nonexistent-host-dir <root>/data - MS_BIND | MS_REC -")
            .expect("bind");
        assert_eq!(l[bind - 1], "resolve /data File");
        assert_eq!(l[bind + 1], "resolve /data Nothing");
        assert_eq!(l[bind + 2], "remount-ro <root>/data");
        assert!(l.contains(&"write /b/scratch/f1 1 bytes 644 0:0".to_string()));
        assert!(
            l.contains(&"mount /b/scratch/f1 <root>/etc/hosts - MS_BIND | MS_REC -".to_string())
        );
        assert!(l.contains(
            &"mount tmpfs <root>/t tmpfs MS_NOSUID | MS_NODEV mode=1777,size=1024".to_string()
        ));
    }

    #[test]
    fn long_layer_stacks_are_named_relative_to_their_directory_then_by_descriptors() {
        let mut s = spec(vec![], false);
        s.rootfs.layers = (0..50)
            .map(|i| PathBuf::from(format!("/store/layers/unpacked/{i:064}")))
            .collect();
        let l = lines(&s);
        assert_eq!(l[1], "chdir /store/layers/unpacked");
        assert!(l[2].contains(&format!("lowerdir={:064}:", 49)), "{}", l[2]);
        // Past what names fit: the layers' descriptors, from /proc/self/fd.
        s.rootfs.layers = (0..200)
            .map(|i| PathBuf::from(format!("/store/layers/unpacked/{i:064}")))
            .collect();
        let l = lines(&s);
        assert_eq!(l[1], format!("open /store/layers/unpacked/{:064}", 199));
        assert_eq!(l[201], "chdir /proc/self/fd");
        let lower = l[202]
            .split("lowerdir=")
            .nth(1)
            .and_then(|d| d.split(',').next())
            .unwrap_or_default();
        let names: Vec<&str> = lower.split(':').collect();
        assert_eq!(names.len(), 200, "{}", l[202]);
        assert!(names.iter().all(|n| n.parse::<u32>().is_ok()), "{lower}");
        s.rootfs.layers = (0..501)
            .map(|i| PathBuf::from(format!("/store/layers/unpacked/{i:064}")))
            .collect();
        let rec = Recorder::default();
        let err = setup(
            &rec,
            &s,
            &FileStage {
                dir: "/b/scratch".into(),
            },
        )
        .unwrap_err();
        assert_eq!(err.errno, nix::errno::Errno::E2BIG);
    }
}
