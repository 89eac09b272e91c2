//! The container spec: one typed description of a container, the same for a RUN step and for
//! `kiln run` (modelled on the fields of OCI runtime-spec's `config.json`).
//!
//! Owns the types and the pure rules that derive values from them (the environment's
//! defaults, the combination of ENTRYPOINT/CMD/arguments). The spec is serialised to JSON to
//! cross from kiln to its init process, so every field is plain data.
//! Must not: touch the kernel or the store; build a spec from a plan (the builder does) or
//! from flags (the CLI does).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The default PATH of a container whose image sets none (Docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Identifies the container in messages and in its hostname default.
    pub id: String,
    pub rootfs: Rootfs,
    pub process: Process,
    pub hostname: String,
    pub network: Network,
    /// Mounts beyond the standard set (/proc, /dev, /sys, ...), applied in order.
    pub mounts: Vec<Mount>,
    /// `--init`: kiln's init is PID 1 and the payload its child; otherwise the payload is PID 1.
    pub init: bool,
    /// Capabilities of a root payload, as a bit mask (bit n = capability n).
    pub capabilities: u64,
    /// Docker's default seccomp profile.
    pub seccomp: bool,
    /// Ports published from the host into the container's own loopback.
    pub ports: Vec<Port>,
    /// `--privileged`: /proc and /sys without docker's masked and read-only paths, /sys
    /// writable (the capabilities and `seccomp: false` come separately).
    #[serde(default)]
    pub privileged: bool,
    /// The pid namespace: a new one (PID 1 is the payload), the host's, or another
    /// container's.
    #[serde(default)]
    pub pid: PidNamespace,
    /// Resource limits, carried out through the container's cgroup (see `cgroup`).
    #[serde(default)]
    pub resources: Resources,
    /// Limits of the payload's process and its /dev/shm (`--ulimit`, `--shm-size`).
    #[serde(default)]
    pub limits: ProcessLimits,
}

/// `--ulimit` and `--shm-size`: what the init sets before the payload starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ProcessLimits {
    /// setrlimit(2) values, one per resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ulimits: Vec<Ulimit>,
    /// The /dev/shm tmpfs's size in bytes (None: docker's 64 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<u64>,
}

impl ProcessLimits {
    /// docker's default /dev/shm size.
    pub const DEFAULT_SHM: u64 = 64 << 20;

    pub fn shm_bytes(&self) -> u64 {
        self.shm_size.unwrap_or(Self::DEFAULT_SHM)
    }
}

/// One `--ulimit NAME=SOFT[:HARD]` (docker's names; -1 is unlimited).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// docker's ulimit names and the resources they are.
pub const ULIMITS: [(&str, libc::__rlimit_resource_t); 15] = [
    ("core", libc::RLIMIT_CORE),
    ("cpu", libc::RLIMIT_CPU),
    ("data", libc::RLIMIT_DATA),
    ("fsize", libc::RLIMIT_FSIZE),
    ("locks", libc::RLIMIT_LOCKS),
    ("memlock", libc::RLIMIT_MEMLOCK),
    ("msgqueue", libc::RLIMIT_MSGQUEUE),
    ("nice", libc::RLIMIT_NICE),
    ("nofile", libc::RLIMIT_NOFILE),
    ("nproc", libc::RLIMIT_NPROC),
    ("rss", libc::RLIMIT_RSS),
    ("rtprio", libc::RLIMIT_RTPRIO),
    ("rttime", libc::RLIMIT_RTTIME),
    ("sigpending", libc::RLIMIT_SIGPENDING),
    ("stack", libc::RLIMIT_STACK),
];

impl Ulimit {
    /// The resource and the two values as setrlimit(2) takes them.
    pub fn rlimit(&self) -> Option<(libc::__rlimit_resource_t, libc::rlim_t, libc::rlim_t)> {
        let (_, resource) = ULIMITS.iter().find(|(n, _)| *n == self.name)?;
        let value = |v: i64| u64::try_from(v).unwrap_or(libc::RLIM_INFINITY);
        Some((*resource, value(self.soft), value(self.hard)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PidNamespace {
    /// A new pid namespace (docker's default).
    #[default]
    Private,
    /// `--pid host`: the host's (kiln's) pid namespace; the payload is not PID 1.
    Host,
    /// `--pid container:NAME`: that container's, joined through its nsfs file
    /// (`/proc/<its PID 1>/ns/pid`).
    Join { path: PathBuf },
}

/// Resource limits as docker's `HostConfig` holds them (`--memory`, `--cpus`, ...); `None`
/// (or 0, as docker) means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// `--memory`: bytes.
    pub memory: Option<i64>,
    /// `--memory-swap`: memory plus swap, bytes; -1 unlimited swap.
    pub memory_swap: Option<i64>,
    /// `--cpus` as billionths of a CPU (docker's NanoCpus).
    pub nano_cpus: Option<i64>,
    /// `--cpu-shares`: relative weight (docker's default 1024).
    pub cpu_shares: Option<u64>,
    /// `--cpu-quota` / `--cpu-period`: microseconds of CPU time per period.
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    /// `--pids-limit`: at most this many tasks (-1 or 0: unlimited).
    pub pids_limit: Option<i64>,
}

impl Resources {
    /// Whether any limit was asked for.
    pub fn any(&self) -> bool {
        *self != Resources::default()
    }
}

/// The root filesystem: an overlay of unpacked layers with a writable upper directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rootfs {
    /// Unpacked layer directories, lowest first. Empty for a scratch image.
    pub layers: Vec<PathBuf>,
    /// The overlay's upper and work directories (same filesystem), and where it is mounted.
    pub upper: PathBuf,
    pub work: PathBuf,
    pub merged: PathBuf,
    /// An empty directory where the container's private tmpfs goes (files made for it).
    pub scratch: PathBuf,
    /// `--read-only`: the root is remounted read-only once everything is mounted.
    pub readonly: bool,
    /// The upper directory is thrown away or captured right after the run (RUN steps,
    /// `--rm`): the overlay need not sync it to disk (overlayfs `volatile`).
    #[serde(default)]
    pub ephemeral: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// argv; `args[0]` is looked up in the container's PATH when it has no `/`.
    pub args: Vec<String>,
    /// The complete environment (`K=V`); nothing of kiln's own environment is added.
    pub env: Vec<String>,
    /// Working directory inside the container (absolute); created when missing.
    pub cwd: String,
    /// `user[:group]`, names or numbers, resolved in the container's /etc/passwd and /etc/group.
    /// Empty means root.
    pub user: String,
    /// `-t`: a pseudo-terminal from the container's own devpts becomes stdin/out/err.
    pub terminal: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// A private network namespace with only a loopback interface (up).
    None,
    /// The host's network namespace.
    Host,
    /// An existing network namespace, joined through its nsfs file: a kiln network's
    /// (bind-mounted under the store) or another container's (`/proc/PID/ns/net`).
    Join { path: PathBuf },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Absolute path inside the container, resolved inside the root.
    pub target: String,
    pub kind: MountKind,
    pub readonly: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum MountKind {
    /// A host file or directory (a `-v` path, a named volume, a cache directory). With
    /// `fill`, an empty source directory first gets a copy of what the root has at the target
    /// (a named volume's first use).
    Bind {
        source: PathBuf,
        #[serde(default)]
        fill: bool,
    },
    Tmpfs {
        size: Option<u64>,
        mode: u32,
        /// Mounted `noexec` (docker's default for `--tmpfs`; RUN's tmpfs mounts allow exec).
        #[serde(default)]
        noexec: bool,
    },
    /// A file made for this container in a private tmpfs (secrets, /etc/hosts, heredoc
    /// scripts): its bytes never touch a disk.
    File {
        #[serde(with = "hex_bytes")]
        content: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// Layers stacked (lowest first) and `subpath` of them mounted at the target (a stage's
    /// filesystem or context files for `RUN --mount=type=bind`); with `upper` (upper and work
    /// directories) writable, the writes landing there.
    Layers {
        layers: Vec<PathBuf>,
        upper: Option<(PathBuf, PathBuf)>,
        subpath: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl Protocol {
    /// `tcp` or `udp`, as docker writes a port's protocol.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl Port {
    /// The container port as docker keys it: `80/tcp`.
    pub fn container_key(&self) -> String {
        format!("{}/{}", self.container_port, self.protocol.name())
    }
    /// The host address as docker shows it: `0.0.0.0` for every address.
    pub fn shown_host_ip(&self) -> &str {
        if self.host_ip.is_empty() {
            "0.0.0.0"
        } else {
            &self.host_ip
        }
    }
}

/// The environment a container starts with: the image's (or step's) variables, then
/// `overrides` replacing or adding by name; PATH defaults to Docker's, HOSTNAME is the
/// container's, and HOME is filled in by the init from the user's passwd entry when unset.
pub fn container_env(image_env: &[String], overrides: &[String], hostname: &str) -> Vec<String> {
    let mut env: Vec<String> = Vec::new();
    let mut set = |kv: &str| {
        let name = kv.split('=').next().unwrap_or(kv);
        match env.iter_mut().find(|e| e.split('=').next() == Some(name)) {
            Some(slot) => *slot = kv.to_string(),
            None => env.push(kv.to_string()),
        }
    };
    if !image_env.iter().any(|e| e.starts_with("PATH=")) {
        set(&format!("PATH={DEFAULT_PATH}"));
    }
    if !hostname.is_empty() {
        set(&format!("HOSTNAME={hostname}"));
    }
    for kv in image_env.iter().chain(overrides) {
        set(kv);
    }
    env
}

/// Docker's combination of an image's ENTRYPOINT and CMD with `--entrypoint` and the
/// arguments after the image name: an `--entrypoint` drops the image's CMD; arguments
/// replace CMD.
pub fn command_line(
    entrypoint: &[String],
    cmd: &[String],
    entrypoint_flag: Option<&str>,
    args: &[String],
) -> Vec<String> {
    let (entry, default_cmd): (Vec<String>, &[String]) = match entrypoint_flag {
        Some("") => (Vec::new(), &[]),
        Some(e) => (vec![e.to_string()], &[]),
        None => (entrypoint.to_vec(), cmd),
    };
    let rest = if args.is_empty() { default_cmd } else { args };
    entry.into_iter().chain(rest.iter().cloned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn file_content_is_one_hex_string_and_the_old_array_still_reads() {
        let kind = MountKind::File {
            content: b"127.0.0.1\tlocalhost\n".to_vec(),
            mode: 0o644,
            uid: 0,
            gid: 0,
        };
        let json = serde_json::to_string(&kind).unwrap();
        assert!(json.contains(r#""content":"3132372e"#), "{json}");
        assert_eq!(serde_json::from_str::<MountKind>(&json).unwrap(), kind);
        let old = r#"{"type":"file","content":[104,105],"mode":420,"uid":0,"gid":0}"#;
        let MountKind::File { content, .. } = serde_json::from_str(old).unwrap() else {
            panic!("not a file mount");
        };
        assert_eq!(content, b"hi");
        let bad = r#"{"type":"file","content":"zz","mode":420,"uid":0,"gid":0}"#;
        assert!(serde_json::from_str::<MountKind>(bad).is_err());
    }

    #[test]
    fn env_defaults_and_overrides() {
        let env = container_env(&v(&["A=1", "B=2"]), &v(&["B=3", "C=4"]), "h");
        assert_eq!(
            env,
            v(&[
                &format!("PATH={DEFAULT_PATH}"),
                "HOSTNAME=h",
                "A=1",
                "B=3",
                "C=4"
            ])
        );
        let env = container_env(&v(&["PATH=/x"]), &[], "");
        assert_eq!(env, v(&["PATH=/x"]));
    }

    #[test]
    fn docker_command_combination() {
        let ep = v(&["/entry"]);
        let cmd = v(&["a", "b"]);
        assert_eq!(command_line(&ep, &cmd, None, &[]), v(&["/entry", "a", "b"]));
        assert_eq!(
            command_line(&ep, &cmd, None, &v(&["x"])),
            v(&["/entry", "x"])
        );
        assert_eq!(command_line(&ep, &cmd, Some("/e2"), &[]), v(&["/e2"]));
        assert_eq!(
            command_line(&ep, &cmd, Some("/e2"), &v(&["y"])),
            v(&["/e2", "y"])
        );
        assert_eq!(command_line(&ep, &cmd, Some(""), &v(&["sh"])), v(&["sh"]));
        assert_eq!(command_line(&[], &cmd, None, &[]), v(&["a", "b"]));
    }
}

/// A file's bytes in JSON as one hex string: a tenth of the size of serde's array of numbers
/// and parsed without buffering each number (records are read by every `ps`). Records written
/// before, with the array, still read.
mod hex_bytes {
    use serde::de::{self, Deserializer, SeqAccess, Visitor};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct HexOrArray;
        impl<'de> Visitor<'de> for HexOrArray {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a hex string or an array of bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
                hex::decode(v).map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_any(HexOrArray)
    }
}
