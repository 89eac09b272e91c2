//! Containers of `kiln run`: a record in the store for each (id, name, image, spec, state,
//! exit code, restart policy, times), its directories (the overlay's upper and work
//! directories, the mount point, the private tmpfs's directory), and named volumes.
//! Foreground runs are held by the CLI; detached ones by a supervisor (`supervisor`), with
//! their output in a json-file log (`log`). Reading the records notices a holder that died
//! without recording the end, and records the container as failed.
//!
//! Store layout: `containers/<id>/{container.json,upper,work,merged,scratch}`, and for
//! detached containers `<id>-json.log[.N]` and `supervisor.sock`; `volumes/<name>/_data`
//! (see `volume`).
//! Must not: parse flags or text (the CLI gives typed [`RunOptions`]); run anything outside
//! the sandbox.

pub mod changes;
pub mod health;
pub mod idle;
pub mod log;
pub mod network;
pub mod supervisor;
pub mod volume;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::oci::Digest;
use crate::sandbox::cgroup::{Cgroup, RealFs};
use crate::sandbox::spec::{
    self, ContainerSpec, Mount, MountKind, Network, PidNamespace, Port, Process, Protocol, Rootfs,
};
use crate::sandbox::{caps, Exit, SandboxError};
use crate::store::{Image, Store, StoreError};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ContainerError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the container name {0:?} is already in use")]
    #[diagnostic(help("remove that container first, or choose another --name"))]
    NameInUse(String),
    #[error("invalid container name {0:?}")]
    #[diagnostic(help("names are letters, digits, and _ . - after the first character ([a-zA-Z0-9][a-zA-Z0-9_.-]*)"))]
    BadName(String),
    #[error("no such container: {0}")]
    NoContainer(String),
    #[error("{0}")]
    #[diagnostic(help("the mount's source must be an absolute host path or a volume name"))]
    BadMount(String),
    #[error("no such volume: {0}")]
    NoVolume(String),
    #[error("volume {name} is in use by {containers}")]
    #[diagnostic(help("remove those containers first (they keep a record until removed)"))]
    VolumeInUse { name: String, containers: String },
    #[error("container {0} is running")]
    #[diagnostic(help("stop it first, or remove it with -f"))]
    Running(String),
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("container {0} is paused, unpause the container before exec")]
    #[diagnostic(help("kiln unpause {0}"))]
    Paused(String),
    #[error("container {0} is already paused")]
    AlreadyPaused(String),
    #[error("container {0} is not paused")]
    NotPaused(String),
    #[error("container {name}: {source}")]
    Cgroup {
        name: String,
        source: crate::sandbox::cgroup::CgroupError,
    },
    #[error("the supervisor of container {name}: {message}")]
    Supervisor { name: String, message: String },
    #[error("making the layer: {0}")]
    #[diagnostic(transparent)]
    Commit(Box<crate::build::BuildError>),
    #[error("kiln cp: {0}")]
    Copy(String),
    #[error("container {0} is not running: kiln cp copies in and out of running containers")]
    #[diagnostic(help("start it first (kiln start NAME)"))]
    CopyNeedsRunning(String),
    #[error("network {0} already exists")]
    NetworkExists(String),
    #[error("no such network: {0}")]
    #[diagnostic(help("create it with kiln network create NAME"))]
    NoNetwork(String),
    #[error("network {name}: {message}")]
    Network { name: String, message: String },
    #[error("network {name} is in use by {containers}")]
    #[diagnostic(help("remove those containers or disconnect them first"))]
    NetworkInUse { name: String, containers: String },
    #[error("container {0} is running: it changes networks only while stopped")]
    #[diagnostic(help(
        "a kiln network is one shared network namespace, and a running process cannot move to another; stop the container, connect or disconnect it, start it again"
    ))]
    NetworkRunning(String),
    #[error("port {port} is published twice on network {network}: by {holder} and by {wanted}")]
    #[diagnostic(help(
        "the members of a kiln network share one loopback, so one container port belongs to one member; give {wanted} another container port"
    ))]
    PortTaken {
        network: String,
        port: String,
        holder: String,
        wanted: String,
    },
    #[error("no command given: the image has neither ENTRYPOINT nor CMD")]
    #[diagnostic(help("name the command after the image: kiln run IMAGE COMMAND..."))]
    NoCommand,
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ContainerError {
    let path = path.to_path_buf();
    move |source| ContainerError::Io {
        action,
        path,
        source,
    }
}

/// A mount asked for with `-v`, `--mount` or `--tmpfs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountRequest {
    Bind {
        source: PathBuf,
        target: String,
        readonly: bool,
    },
    Volume {
        name: String,
        target: String,
        readonly: bool,
    },
    /// `-v /dst`: a new volume with a random 64-hex name, recorded in the container's
    /// `anonymous_volumes` (removed with it by `--rm` and `rm -v`).
    Anonymous { target: String },
    Tmpfs {
        target: String,
        size: Option<u64>,
        mode: u32,
        /// docker's `noexec` default; the `exec` option lifts it.
        noexec: bool,
    },
}

/// `kiln run`'s flags, typed.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub args: Vec<String>,
    pub name: Option<String>,
    /// `K=V` pairs, in order, after `--env-file` and `-e` are resolved.
    pub env: Vec<String>,
    pub mounts: Vec<MountRequest>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub entrypoint: Option<String>,
    pub host_network: bool,
    /// `--network NAME` or `--network container:NAME` (instead of a private loopback).
    pub join: Option<JoinRequest>,
    /// `--network-alias`: more names resolving to the member on its network.
    pub aliases: Vec<String>,
    pub ports: Vec<Port>,
    pub read_only: bool,
    pub hostname: Option<String>,
    pub init: bool,
    pub tty: bool,
    /// `-i`: the container's stdin stays open (a pipe its supervisor holds), for `attach`.
    pub open_stdin: bool,
    /// `--rm`: the container is removed when it ends.
    pub remove: bool,
    pub restart: RestartPolicy,
    pub log: log::LogConfig,
    /// Capabilities of a root payload (`--cap-add`, `--cap-drop` and `--privileged` as
    /// `caps::tweak` reads them); `None` is docker's default set.
    pub capabilities: Option<caps::CapabilitySet>,
    /// `--privileged`: no seccomp filter, no masked /proc and /sys paths, /sys writable.
    pub privileged: bool,
    /// `--pid`.
    pub pid: PidRequest,
    /// `--volumes-from`: the binds and volumes of other containers, at the same paths.
    pub volumes_from: Vec<VolumesFrom>,
    /// `-P`: every port the image EXPOSEs published on a free port of 127.0.0.1.
    pub publish_all: bool,
    /// `--memory`, `--cpus`, ...: carried out through the container's cgroup.
    pub resources: spec::Resources,
    /// `--ulimit` and `--shm-size`.
    pub limits: spec::ProcessLimits,
    /// `--add-host NAME:IP`, in order (not on a kiln network, whose /etc/hosts is shared).
    pub extra_hosts: Vec<(String, String)>,
    /// `--label`: metadata kept in the record (`inspect`'s Config.Labels, `ps --filter
    /// label=`); compose keeps its project, service and configuration hash here.
    pub labels: BTreeMap<String, String>,
    /// Anonymous volumes to use again, by target: a `-v /DST` whose target is here mounts
    /// this volume instead of a new one (compose recreating a container keeps its data, as
    /// docker-compose does); it is still the new container's anonymous volume.
    pub reuse_anonymous: BTreeMap<String, String>,
    /// `--stop-signal` (None: the image's STOPSIGNAL).
    pub stop_signal: Option<String>,
    /// `--stop-timeout`.
    pub stop_timeout: Option<u64>,
    /// The `--health-*` flags as docker's container Healthcheck: set fields replace the
    /// image's, zero ones keep them (`["NONE"]` disables it).
    pub healthcheck: Option<crate::oci::HealthConfig>,
}

/// `--pid`: the pid namespace a new container gets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PidRequest {
    #[default]
    Private,
    Host,
    /// Another running container's (`container:NAME`).
    Container(String),
}

/// `--volumes-from CONTAINER[:ro|:rw]`: with `:ro` every mount is read-only; `:rw` (the
/// default) leaves each as the other container has it (docker's rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumesFrom {
    pub container: String,
    pub readonly: bool,
}

/// A namespace a new container joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinRequest {
    /// A kiln network (`kiln network create`).
    Network(String),
    /// Another running container's (`container:NAME`).
    Container(String),
}

/// `--restart`: what the supervisor does when the container ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", tag = "name")]
pub enum RestartPolicy {
    #[default]
    No,
    /// Restart after a non-zero exit, at most `max` times (0: without limit).
    OnFailure {
        max: u32,
    },
    Always,
    UnlessStopped,
}

impl RestartPolicy {
    /// Docker's name (`no`, `on-failure`, `always`, `unless-stopped`).
    pub fn name(&self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure { .. } => "on-failure",
            RestartPolicy::Always => "always",
            RestartPolicy::UnlessStopped => "unless-stopped",
        }
    }

    /// Whether a run that ended with `code`, after `restarts` restarts, starts again.
    /// A container stopped or killed by a command never restarts.
    pub fn restarts(&self, code: i32, restarts: u32, stopped_by_user: bool) -> bool {
        if stopped_by_user {
            return false;
        }
        match self {
            RestartPolicy::No => false,
            RestartPolicy::OnFailure { max } => code != 0 && (*max == 0 || restarts < *max),
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Created,
    Running,
    /// Ended; its supervisor starts it again after the restart delay.
    Restarting,
    Exited,
}

/// A container's record (`containers/<id>/container.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub name: String,
    /// The image as the user named it, and its ID.
    pub image: String,
    pub image_id: Digest,
    /// RFC 3339, UTC.
    pub created: String,
    pub state: State,
    pub exit_code: Option<i32>,
    /// The last run ended with an OOM kill in its memory cgroup (docker's `OOMKilled`).
    #[serde(default)]
    pub oom_killed: bool,
    /// While running: the monitor's pid (foreground), or the supervisor's (detached).
    pub pid: Option<u32>,
    pub spec: ContainerSpec,
    /// Held by a supervisor (`kiln run -d`, `kiln start`) rather than a foreground CLI.
    #[serde(default)]
    pub supervised: bool,
    /// PID 1 of the container while it runs (in kiln's pid namespace).
    #[serde(default)]
    pub init_pid: Option<u32>,
    /// RFC 3339 with nanoseconds, UTC.
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Why the container failed outside its payload (its holder died, the start failed).
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub restart: RestartPolicy,
    #[serde(default)]
    pub restart_count: u32,
    /// Stopped by `kiln stop`/`kill`: not restarted by its policy.
    #[serde(default)]
    pub stopped_by_user: bool,
    #[serde(default)]
    pub auto_remove: bool,
    /// `-i`: stdin is a pipe that `kiln attach` writes to (else /dev/null).
    #[serde(default)]
    pub open_stdin: bool,
    #[serde(default)]
    pub log: log::LogConfig,
    /// `--stop-signal`, else the image's STOPSIGNAL (empty: SIGTERM).
    #[serde(default)]
    pub stop_signal: String,
    /// `--stop-timeout`: the seconds `stop` waits by default (None: 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<u64>,
    /// The ENTRYPOINT and CMD in effect (docker's `Config.Entrypoint` and `Config.Cmd`).
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    /// Mount points set-up created in the upper directory (left out of `commit` and `diff`).
    #[serde(default)]
    pub stubs: Vec<String>,
    /// The kiln network the container is on (see `network`), and its aliases there.
    #[serde(default)]
    pub network: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The HEALTHCHECK the supervisor probes (the image's unless the creator set another);
    /// its results are `health.json` (see `health`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<crate::oci::HealthConfig>,
    /// The health status (`starting`, `healthy`, `unhealthy`) of a running container with a
    /// healthcheck, read from `health.json` by `list`/`find`; never stored in the record.
    #[serde(skip)]
    pub health: Option<String>,
    /// The cgroup directories of the current or last run (see `sandbox::cgroup`).
    #[serde(default)]
    pub cgroups: Vec<PathBuf>,
    /// The volumes created for `-v /dst` (docker's anonymous volumes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anonymous_volumes: Vec<String>,
    /// `--label` metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `--add-host` entries as given (`NAME:IP`), for inspect's HostConfig.ExtraHosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
}

impl Record {
    pub fn dir(&self, store: &Store) -> PathBuf {
        containers_dir(store).join(&self.id)
    }

    /// The json-file log of a detached container.
    pub fn log_path(&self, store: &Store) -> PathBuf {
        log::path(&self.dir(store), &self.id)
    }

    pub fn running(&self) -> bool {
        self.state == State::Running
    }

    /// Running, or between runs under a restart policy: a holder looks after it.
    pub fn held(&self) -> bool {
        matches!(self.state, State::Running | State::Restarting)
    }

    /// The container's cgroup while it runs (see `sandbox::cgroup`).
    pub fn cgroup(&self) -> Option<Cgroup> {
        let pid = self.init_pid.filter(|_| self.running())?;
        Some(Cgroup::of_pid(&RealFs, pid))
    }

    /// Frozen by `kiln pause`: read from the cgroup, so it ends with the container.
    pub fn paused(&self) -> bool {
        self.cgroup()
            .and_then(|c| c.frozen(&RealFs))
            .unwrap_or(false)
    }

    /// The signal `kiln stop` sends first: the image's STOPSIGNAL, else SIGTERM.
    /// The seconds a stop waits before SIGKILL: `asked` (`stop -t`), else the container's
    /// `--stop-timeout`, else docker's 10.
    pub fn stop_timeout(&self, asked: Option<u64>) -> u64 {
        asked.or(self.stop_timeout).unwrap_or(10)
    }

    pub fn stop_signal(&self) -> nix::sys::signal::Signal {
        parse_signal(&self.stop_signal).unwrap_or(nix::sys::signal::Signal::SIGTERM)
    }
}

/// A signal as docker takes it: `TERM`, `SIGTERM`, `sigterm` or `15`.
pub fn parse_signal(text: &str) -> Option<nix::sys::signal::Signal> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    if let Ok(n) = t.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n).ok();
    }
    let upper = t.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse().ok()
}

/// The nsfs file of namespace `ns` (`net`, `pid`, ...) of a running container's PID 1.
pub fn container_ns(
    store: &Store,
    container: &str,
    ns: &str,
) -> Result<(Record, PathBuf), ContainerError> {
    let record = find(store, container)?;
    match (record.running(), record.init_pid) {
        (true, Some(pid)) => {
            let path = Path::new("/proc").join(pid.to_string()).join("ns").join(ns);
            Ok((record, path))
        }
        _ => Err(ContainerError::NotRunning(record.name.clone())),
    }
}

/// The files kiln makes for every container (`sandbox::net::etc_files`) or binds for a
/// network's members: not volumes, so `--volumes-from` leaves them.
const ETC_FILES: [&str; 3] = ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"];

/// `--volumes-from`: the other containers' binds and volumes (not tmpfs, not kiln's own
/// /etc files), in order, each read-only when it was or when `:ro` asks.
fn mounts_from(store: &Store, from: &[VolumesFrom]) -> Result<Vec<Mount>, ContainerError> {
    let mut out: Vec<Mount> = Vec::new();
    for f in from {
        let other = find(store, &f.container)?;
        for m in &other.spec.mounts {
            if !matches!(m.kind, MountKind::Bind { .. }) || ETC_FILES.contains(&m.target.as_str()) {
                continue;
            }
            let mut m = m.clone();
            m.readonly |= f.readonly;
            out.retain(|o| o.target != m.target);
            out.push(m);
        }
    }
    Ok(out)
}

/// `-P`: each EXPOSEd port (`80`, `80/tcp`, `53/udp`) on a port of 127.0.0.1 that is free
/// now (the kernel picks it), unless `-p` already publishes that container port.
fn publish_all(
    exposed: &std::collections::BTreeMap<String, crate::oci::Empty>,
    ports: &mut Vec<Port>,
) -> Result<(), ContainerError> {
    for spec in exposed.keys() {
        let (num, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
        let protocol = match proto {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            _ => continue,
        };
        let Ok(container_port) = num.parse::<u16>() else {
            continue;
        };
        if ports
            .iter()
            .any(|p| p.container_port == container_port && p.protocol == protocol)
        {
            continue;
        }
        let host_port =
            crate::sandbox::net::free_port(protocol).map_err(|e| ContainerError::Io {
                action: "find a free port on",
                path: PathBuf::from("127.0.0.1"),
                source: e,
            })?;
        ports.push(Port {
            host_ip: "127.0.0.1".into(),
            host_port,
            container_port,
            protocol,
        });
    }
    Ok(())
}

fn containers_dir(store: &Store) -> PathBuf {
    store.root().join("containers")
}

/// The unpacked directories of an image's layers, lowest first (each unpacked once).
pub fn layer_dirs(store: &Store, diff_ids: &[Digest]) -> Result<Vec<PathBuf>, StoreError> {
    use rayon::prelude::*;
    diff_ids
        .par_iter()
        .map(|d| store.unpacked_layer(d))
        .collect()
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn new_id() -> String {
    let mut bytes = [0u8; 32];
    if fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        bytes = *blake3::hash(format!("{t:?}{}", std::process::id()).as_bytes()).as_bytes();
    }
    hex::encode(bytes)
}

/// Every container record in the store.
pub fn list(store: &Store) -> Result<Vec<Record>, ContainerError> {
    let dir = containers_dir(store);
    let mut out = Vec::new();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io("read", &dir)(e)),
    };
    for entry in entries.flatten() {
        let path = entry.path().join("container.json");
        if let Ok(bytes) = fs::read(&path) {
            if let Ok(rec) = serde_json::from_slice::<Record>(&bytes) {
                let mut rec = refresh(store, rec)?;
                if rec.healthcheck.is_some() && rec.running() {
                    rec.health = health::read(&rec.dir(store)).map(|h| h.status);
                }
                out.push(rec);
            }
        }
    }
    out.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// A container by name, full id or unique id prefix.
pub fn find(store: &Store, wanted: &str) -> Result<Record, ContainerError> {
    let all = list(store)?;
    if let Some(r) = all.iter().find(|r| r.name == wanted || r.id == wanted) {
        return Ok(r.clone());
    }
    let mut prefixed = all.into_iter().filter(|r| r.id.starts_with(wanted));
    match (prefixed.next(), prefixed.next()) {
        (Some(r), None) if !wanted.is_empty() => Ok(r),
        _ => Err(ContainerError::NoContainer(wanted.to_string())),
    }
}

/// A record as it stands: one that says running whose holder is gone (a supervisor that no
/// longer answers on its socket, a foreground kiln whose monitor is gone) is recorded as
/// exited with status 255 and the reason.
pub fn refresh(store: &Store, record: Record) -> Result<Record, ContainerError> {
    if !record.held() || holder_alive(store, &record) {
        return Ok(record);
    }
    // Read it again: the holder may have recorded the end just before leaving.
    let path = record.dir(store).join("container.json");
    let mut fresh: Record = match fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        Some(r) => r,
        None => return Ok(record),
    };
    if !fresh.held() || holder_alive(store, &fresh) {
        return Ok(fresh);
    }
    let holder = if fresh.supervised {
        "supervisor"
    } else {
        "kiln process"
    };
    // A paused container's processes can act on the end of their holder only once thawed.
    Cgroup::thaw_dirs(&RealFs, &fresh.cgroups);
    fresh.error = Some(format!(
        "the container's {holder} (pid {}) ended without recording the container's end",
        fresh.pid.unwrap_or(0)
    ));
    fresh.state = State::Exited;
    fresh.exit_code = Some(255);
    fresh.pid = None;
    fresh.init_pid = None;
    fresh.finished_at = Some(now_rfc3339_nanos());
    save(store, &fresh)?;
    Ok(fresh)
}

fn holder_alive(store: &Store, record: &Record) -> bool {
    if record.supervised {
        return supervisor::connect(&record.dir(store)).is_ok();
    }
    record
        .pid
        .is_some_and(|p| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p as i32), None).is_ok())
}

pub(crate) fn now_rfc3339_nanos() -> String {
    let (secs, nanos) = log::now();
    crate::oci::time::format_rfc3339_nanos(secs, nanos)
}

pub fn save(store: &Store, record: &Record) -> Result<(), ContainerError> {
    let path = record.dir(store).join("container.json");
    let bytes = serde_json::to_vec_pretty(record).unwrap_or_default();
    store.write_atomic_volatile(&path, &bytes)?;
    Ok(())
}

/// Create a container from `image` (named `reference` by the user): its record, directories
/// and spec. Nothing runs yet.
pub fn create(
    store: &Store,
    reference: &str,
    image: &Image,
    opts: &RunOptions,
) -> Result<Record, ContainerError> {
    crate::sandbox::require_root()?;
    let id = new_id();
    let existing = list(store)?;
    let name = match &opts.name {
        Some(n) if !valid_name(n) => return Err(ContainerError::BadName(n.clone())),
        Some(n) if existing.iter().any(|r| &r.name == n) => {
            return Err(ContainerError::NameInUse(n.clone()))
        }
        Some(n) => n.clone(),
        None => format!("kiln_{}", &id[..12]),
    };
    let dir = containers_dir(store).join(&id);
    let [upper, work, merged, scratch] =
        ["upper", "work", "merged", "scratch"].map(|d| dir.join(d));
    for d in [&upper, &work, &merged, &scratch] {
        fs::create_dir_all(d).map_err(io("create", d))?;
    }
    let config = &image.config.config;
    let joined = match &opts.join {
        Some(JoinRequest::Network(n)) => {
            let net = network::inspect(store, n)?;
            let others = net.members(store)?;
            network::check_ports(n, &name, &opts.ports, &others)?;
            Some(net)
        }
        _ => None,
    };
    let network = match &opts.join {
        _ if opts.host_network => Network::Host,
        Some(JoinRequest::Container(c)) => Network::Join {
            path: network::container_netns(store, c)?.1,
        },
        _ => Network::None,
    };
    let hostname = match (&opts.hostname, &network) {
        (Some(h), _) => h.clone(),
        (None, Network::Host) => nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
        (None, _) => id[..12].to_string(),
    };
    let image_entrypoint = config.entrypoint.as_deref().unwrap_or(&[]);
    let image_cmd = config.cmd.as_deref().unwrap_or(&[]);
    let args = spec::command_line(
        image_entrypoint,
        image_cmd,
        opts.entrypoint.as_deref(),
        &opts.args,
    );
    let entrypoint = spec::command_line(image_entrypoint, &[], opts.entrypoint.as_deref(), &[]);
    let cmd = args[entrypoint.len().min(args.len())..].to_vec();
    if args.is_empty() {
        return Err(ContainerError::NoCommand);
    }
    let mut layers = layer_dirs(store, &image.config.rootfs.diff_ids)?;
    if layers.is_empty() {
        let empty = dir.join("empty");
        fs::create_dir_all(&empty).map_err(io("create", &empty))?;
        layers.push(empty);
    }
    let mut mounts = crate::sandbox::net::etc_files(&hostname, &network, &opts.extra_hosts);
    // `--volumes-from` first; a `-v`/`--mount` at the same path replaces it (docker's order).
    let mut anonymous_volumes = Vec::new();
    let own: Vec<Mount> = opts
        .mounts
        .iter()
        .map(|m| mount_for(store, m, &opts.reuse_anonymous, &mut anonymous_volumes))
        .collect::<Result<_, _>>()?;
    for m in mounts_from(store, &opts.volumes_from)? {
        if !own.iter().any(|o| o.target == m.target) {
            mounts.push(m);
        }
    }
    mounts.extend(own);
    // The image's VOLUMEs: an anonymous volume for each path nothing above mounts, filled
    // from the image, as docker makes them (the binds and `--volumes-from` come first).
    for target in config.volumes.keys() {
        if !mounts.iter().any(|m| same_path(&m.target, target)) {
            let request = MountRequest::Anonymous {
                target: target.clone(),
            };
            let m = mount_for(
                store,
                &request,
                &opts.reuse_anonymous,
                &mut anonymous_volumes,
            )?;
            mounts.push(m);
        }
    }
    let pid = match &opts.pid {
        PidRequest::Private => PidNamespace::Private,
        PidRequest::Host => PidNamespace::Host,
        PidRequest::Container(c) => PidNamespace::Join {
            path: container_ns(store, c, "pid")?.1,
        },
    };
    let mut ports = opts.ports.clone();
    if opts.publish_all && network != Network::Host {
        publish_all(&config.exposed_ports, &mut ports)?;
    }
    let cwd = opts
        .workdir
        .clone()
        .or_else(|| (!config.working_dir.is_empty()).then(|| config.working_dir.clone()))
        .unwrap_or_else(|| "/".into());
    let spec = ContainerSpec {
        id: id.clone(),
        rootfs: Rootfs {
            layers,
            upper,
            work,
            merged,
            scratch,
            readonly: opts.read_only,
            ephemeral: opts.remove,
        },
        process: Process {
            args,
            env: spec::container_env(&config.env, &opts.env, &hostname),
            cwd,
            user: opts.user.clone().unwrap_or_else(|| config.user.clone()),
            terminal: opts.tty,
        },
        hostname,
        network,
        mounts,
        init: opts.init,
        capabilities: opts
            .capabilities
            .map_or(caps::DOCKER_DEFAULT, caps::CapabilitySet::bits),
        seccomp: !opts.privileged,
        ports,
        privileged: opts.privileged,
        pid,
        resources: opts.resources.clone(),
        limits: opts.limits.clone(),
    };
    let mut record = Record {
        id,
        name,
        image: reference.to_string(),
        image_id: image.id().clone(),
        created: crate::oci::time::format_rfc3339(now_secs()),
        state: State::Created,
        exit_code: None,
        oom_killed: false,
        pid: None,
        spec,
        supervised: false,
        init_pid: None,
        started_at: None,
        finished_at: None,
        error: None,
        restart: opts.restart,
        restart_count: 0,
        stopped_by_user: false,
        auto_remove: opts.remove,
        open_stdin: opts.open_stdin,
        log: opts.log,
        stop_signal: opts
            .stop_signal
            .clone()
            .unwrap_or_else(|| config.stop_signal.clone()),
        stop_timeout: opts.stop_timeout,
        entrypoint,
        cmd,
        stubs: Vec::new(),
        network: None,
        aliases: opts.aliases.clone(),
        healthcheck: health::merged(opts.healthcheck.as_ref(), config.healthcheck.as_ref())
            .filter(|h| health::Settings::of(h).is_some()),
        health: None,
        cgroups: Vec::new(),
        anonymous_volumes,
        labels: opts.labels.clone(),
        extra_hosts: opts
            .extra_hosts
            .iter()
            .map(|(name, ip)| format!("{name}:{ip}"))
            .collect(),
    };
    if let Some(net) = &joined {
        network::attach_spec(store, &mut record, net);
    }
    save(store, &record)?;
    if let Some(net) = &joined {
        network::refresh_hosts(store, &net.name)?;
    }
    Ok(record)
}

/// The mount a request makes; an anonymous volume's name (a new one, or the one `reuse`
/// gives for its target) goes to `anonymous`.
/// Whether two container paths name one place (`/data`, `/data/` and `//data` do).
fn same_path(a: &str, b: &str) -> bool {
    Path::new(a).components().eq(Path::new(b).components())
}

fn mount_for(
    store: &Store,
    m: &MountRequest,
    reuse: &BTreeMap<String, String>,
    anonymous: &mut Vec<String>,
) -> Result<Mount, ContainerError> {
    Ok(match m {
        MountRequest::Anonymous { target } => {
            let name = reuse.get(target).cloned().unwrap_or_else(new_id);
            let data = volume::create(store, &name)?.mountpoint;
            anonymous.push(name);
            Mount {
                target: target.clone(),
                kind: MountKind::Bind {
                    source: data,
                    fill: true,
                },
                readonly: false,
            }
        }
        MountRequest::Bind {
            source,
            target,
            readonly,
        } => {
            if !source.exists() {
                // Docker creates a missing -v host directory.
                fs::create_dir_all(source).map_err(io("create", source))?;
            }
            Mount {
                target: target.clone(),
                kind: MountKind::Bind {
                    source: source.clone(),
                    fill: false,
                },
                readonly: *readonly,
            }
        }
        MountRequest::Volume {
            name,
            target,
            readonly,
        } => {
            let data = volume::create(store, name)?.mountpoint;
            Mount {
                target: target.clone(),
                kind: MountKind::Bind {
                    source: data,
                    fill: true,
                },
                readonly: *readonly,
            }
        }
        MountRequest::Tmpfs {
            target,
            size,
            mode,
            noexec,
        } => Mount {
            target: target.clone(),
            kind: MountKind::Tmpfs {
                size: *size,
                mode: *mode,
                noexec: *noexec,
            },
            readonly: false,
        },
    })
}

/// Run a created container in the foreground: start it, mark it running, wait, record the
/// exit. `on_start` gets the running container (to relay a terminal, forward signals).
pub fn run_foreground(
    store: &Store,
    mut record: Record,
    streams: crate::sandbox::Streams,
    on_start: impl FnOnce(&mut crate::sandbox::Container),
) -> Result<(Record, Exit), ContainerError> {
    let launcher = crate::sandbox::Launcher::current()?;
    let mut container = match launcher.start(&record.spec, streams) {
        Ok(c) => c,
        Err(e) => {
            record.state = State::Exited;
            record.exit_code = Some(match &e {
                SandboxError::Start { code, .. } => *code,
                SandboxError::Spawn(_) | SandboxError::NotRoot(_) => 125,
            });
            save(store, &record)?;
            return Err(e.into());
        }
    };
    record.state = State::Running;
    record.oom_killed = false;
    record.pid = Some(container.pid());
    record.init_pid = container.init_pid;
    record.stubs = container.stubs.clone();
    record.cgroups = container.cgroup_dirs();
    record.started_at = Some(now_rfc3339_nanos());
    save(store, &record)?;
    on_start(&mut container);
    let result = container.wait();
    record.state = State::Exited;
    record.pid = None;
    record.init_pid = None;
    record.finished_at = Some(now_rfc3339_nanos());
    record.oom_killed = result.as_ref().is_ok_and(|e| e.oom_killed);
    record.exit_code = Some(match &result {
        Ok(exit) => exit.code,
        Err(SandboxError::Start { code, .. }) => *code,
        Err(SandboxError::Spawn(_)) | Err(SandboxError::NotRoot(_)) => 125,
    });
    save(store, &record)?;
    Ok((record, result?))
}

/// Remove a container that is not running: its record and directories (the log too).
pub fn remove(store: &Store, record: &Record) -> Result<(), ContainerError> {
    // Left by a holder that was killed: empty by now (its processes died with it).
    Cgroup {
        dirs: record
            .cgroups
            .iter()
            .map(|p| crate::sandbox::cgroup::Dir {
                path: p.clone(),
                version: crate::sandbox::cgroup::Version::V1,
                controllers: Vec::new(),
            })
            .collect(),
    }
    .remove(&RealFs, std::time::Duration::from_secs(2));
    let dir = record.dir(store);
    fs::remove_dir_all(&dir).map_err(io("remove", &dir))?;
    if let Some(net) = &record.network {
        network::refresh_hosts(store, net)?;
    }
    Ok(())
}

/// A container's anonymous volumes by the target they are mounted at (for
/// [`RunOptions::reuse_anonymous`]); one that is gone is left out.
pub fn anonymous_volumes_by_target(store: &Store, record: &Record) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for name in &record.anonymous_volumes {
        let Ok(v) = volume::inspect(store, name) else {
            continue;
        };
        let at =
            record.spec.mounts.iter().find(
                |m| matches!(&m.kind, MountKind::Bind { source, .. } if *source == v.mountpoint),
            );
        if let Some(m) = at {
            out.insert(m.target.clone(), name.clone());
        }
    }
    out
}

/// After `remove`: the container's anonymous volumes (`--rm`, `rm -v`), as docker removes
/// them; one still mounted by another container (`--volumes-from`) stays, as in docker.
pub fn remove_anonymous_volumes(store: &Store, record: &Record) -> Result<(), ContainerError> {
    for name in &record.anonymous_volumes {
        match volume::remove(store, name) {
            Ok(()) | Err(ContainerError::VolumeInUse { .. } | ContainerError::NoVolume(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `kiln rename`: a new unique name (the supervisor of a running container reads the record
/// afresh before each write, so it keeps the new name).
pub fn rename(store: &Store, record: &Record, new_name: &str) -> Result<Record, ContainerError> {
    if !valid_name(new_name) {
        return Err(ContainerError::BadName(new_name.to_string()));
    }
    if list(store)?
        .iter()
        .any(|r| r.name == new_name && r.id != record.id)
    {
        return Err(ContainerError::NameInUse(new_name.to_string()));
    }
    let mut fresh = find(store, &record.id)?;
    fresh.name = new_name.to_string();
    save(store, &fresh)?;
    Ok(fresh)
}

/// Send `sig` to a running container's PID 1 (through its supervisor when it has one).
pub fn kill(
    store: &Store,
    record: &Record,
    sig: nix::sys::signal::Signal,
) -> Result<(), ContainerError> {
    if !record.running() {
        return Err(ContainerError::NotRunning(record.name.clone()));
    }
    if record.supervised {
        let answer = supervisor::request(
            &record.dir(store),
            &supervisor::Request::Kill { signal: sig as i32 },
        )
        .map_err(|e| supervisor_error(record, e))?;
        return match answer.error {
            Some(message) => Err(ContainerError::Supervisor {
                name: record.name.clone(),
                message,
            }),
            None => Ok(()),
        };
    }
    let pid = record.init_pid.or(record.pid).unwrap_or(0);
    if !signal_init(pid, sig) {
        return Err(ContainerError::NotRunning(record.name.clone()));
    }
    Ok(())
}

/// Send `sig` to a container's PID 1 (pid in kiln's namespace), thawing the container when
/// it is paused so the signal is acted on (docker's behaviour); false when there is no such
/// process. The one way every holder and `kill` signal a container.
pub fn signal_init(pid: u32, sig: nix::sys::signal::Signal) -> bool {
    if pid == 0 || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).is_err() {
        return false;
    }
    Cgroup::thaw_after_signal(&RealFs, pid);
    true
}

/// `kiln pause` (`true`) and `unpause`: freeze or thaw every process of the container.
pub fn set_paused(record: &Record, paused: bool) -> Result<(), ContainerError> {
    let Some(cgroup) = record.cgroup().filter(|_| record.running()) else {
        return Err(ContainerError::NotRunning(record.name.clone()));
    };
    match (cgroup.frozen(&RealFs), paused) {
        (Some(true), true) => return Err(ContainerError::AlreadyPaused(record.name.clone())),
        (Some(false), false) | (None, false) => {
            return Err(ContainerError::NotPaused(record.name.clone()))
        }
        _ => {}
    }
    cgroup
        .freeze(&RealFs, paused)
        .map_err(|source| ContainerError::Cgroup {
            name: record.name.clone(),
            source,
        })
}

fn supervisor_error(record: &Record, e: std::io::Error) -> ContainerError {
    ContainerError::Supervisor {
        name: record.name.clone(),
        message: format!("no answer on its socket ({e})"),
    }
}

/// `kiln stop`: the stop signal, SIGKILL after `timeout` seconds; returns the record once
/// the container has ended (a container that is not running is left as it is).
pub fn stop(store: &Store, record: &Record, timeout: u64) -> Result<Record, ContainerError> {
    if record.supervised {
        // The supervisor answers once the container has ended; a supervisor that left in
        // the meantime has recorded the end.
        let _ = supervisor::request(&record.dir(store), &supervisor::Request::Stop { timeout });
    } else {
        let _ = kill(store, record, record.stop_signal());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout);
        while find(store, &record.id)?.running() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = kill(store, record, nix::sys::signal::Signal::SIGKILL);
    }
    wait_until_ended(store, record)
}

/// SIGKILL and wait for the end (`rm -f`).
pub fn kill_and_wait(store: &Store, record: &Record) -> Result<Record, ContainerError> {
    if !record.running() {
        // Between runs: the supervisor is told not to start it again.
        return stop(store, record, 0);
    }
    let _ = kill(store, record, nix::sys::signal::Signal::SIGKILL);
    wait_until_ended(store, record)
}

fn wait_until_ended(store: &Store, record: &Record) -> Result<Record, ContainerError> {
    loop {
        let now = find(store, &record.id)?;
        if !now.held() {
            return Ok(now);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Until the current run of a running container ends (foreground runs).
fn wait_until_not_running(store: &Store, record: &Record) -> Result<Record, ContainerError> {
    loop {
        let now = find(store, &record.id)?;
        if !now.running() {
            return Ok(now);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `kiln wait`: block until the container's current run ends (as docker's does: a restart
/// policy may start it again) and give its exit code.
pub fn wait(store: &Store, record: &Record) -> Result<i32, ContainerError> {
    if record.held() && record.supervised {
        if let Ok(answer) = supervisor::request(&record.dir(store), &supervisor::Request::Wait) {
            if let Some(code) = answer.exit_code {
                return Ok(code);
            }
        }
    }
    let now = wait_until_not_running(store, record)?;
    Ok(now.exit_code.unwrap_or(0))
}

/// `IMAGE` as the user wrote it, resolved in the store.
pub fn image(store: &Store, reference: &str) -> Result<Image, ContainerError> {
    Ok(store.image(reference)?)
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
