//! run, rm, volume: containers in the foreground, as `docker run` runs them. Turns docker's
//! flag spellings (`-v`, `--mount`, `--tmpfs`, `-p`, `-P`, `-e`, `--env-file`, `--cap-add`,
//! `--pid`, `--volumes-from`, ...) into typed options,
//! forwards signals and the terminal, and exits with the container's status.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use kiln_runtime::container::{
    self, log::LogConfig, volume, JoinRequest, MountRequest, PidRequest, RestartPolicy, RunOptions,
    VolumesFrom,
};
use kiln_runtime::sandbox::spec::{Port, Protocol, Ulimit, ULIMITS};
use kiln_runtime::sandbox::{tty, SandboxError, Streams};
use nix::sys::signal::{SigSet, Signal};

use super::transfer::open_store;
use crate::cli::{RmArgs, RunArgs, SecurityArgs, VolumeCommand};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub(crate) enum RunError {
    #[error("invalid {flag} value {value:?}: {why}")]
    #[diagnostic(help("{help}"))]
    Flag {
        flag: &'static str,
        value: String,
        why: String,
        help: &'static str,
    },
    #[error("unable to find image {0:?} in the store")]
    #[diagnostic(help(
        "kiln has no registry yet: `kiln build`, `kiln load -i image.tar` or `kiln import rootfs.tar NAME` first"
    ))]
    NoImage(String),
    #[error("cannot read --env-file {}: {source}", path.display())]
    EnvFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn flag_error(flag: &'static str, value: &str, why: &str, help: &'static str) -> RunError {
    RunError::Flag {
        flag,
        value: value.to_string(),
        why: why.to_string(),
        help,
    }
}

/// `-e K=V`, or `-e K` (kiln's own value, left out when unset), as docker does.
pub(crate) fn env_entry(entry: &str) -> Option<String> {
    if entry.contains('=') {
        Some(entry.to_string())
    } else {
        std::env::var(entry).ok().map(|v| format!("{entry}={v}"))
    }
}

fn env_file(path: &PathBuf) -> Result<Vec<String>, RunError> {
    let text = std::fs::read_to_string(path).map_err(|source| RunError::EnvFile {
        path: path.clone(),
        source,
    })?;
    Ok(text
        .lines()
        .map(|l| l.trim_start())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(env_entry)
        .collect())
}

const VOLUME_HELP: &str =
    "write -v /host/path:/container/path[:ro], -v VOLUME:/container/path or -v /container/path";

/// `-v SRC:DST[:OPTS]`: an absolute SRC is a host path, anything else a volume name; `-v DST`
/// alone is a new anonymous volume.
fn parse_volume(v: &str) -> Result<MountRequest, RunError> {
    let parts: Vec<&str> = v.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [dst] if dst.starts_with('/') => {
            return Ok(MountRequest::Anonymous {
                target: dst.to_string(),
            })
        }
        [src, dst] => (*src, *dst, ""),
        [src, dst, opts] => (*src, *dst, *opts),
        _ => {
            return Err(flag_error(
                "-v",
                v,
                "expected SRC:DST[:OPTIONS] or an absolute DST (an anonymous volume)",
                VOLUME_HELP,
            ))
        }
    };
    if !dst.starts_with('/') {
        return Err(flag_error(
            "-v",
            v,
            "the destination must be an absolute path",
            VOLUME_HELP,
        ));
    }
    let mut readonly = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => readonly = true,
            "rw" | "z" | "Z" | "rprivate" | "private" | "rslave" | "slave" | "nocopy" => {}
            _ => {
                return Err(flag_error(
                    "-v",
                    v,
                    &format!("unknown option {o:?}"),
                    VOLUME_HELP,
                ))
            }
        }
    }
    if src.starts_with('/') {
        Ok(MountRequest::Bind {
            source: PathBuf::from(src),
            target: dst.to_string(),
            readonly,
        })
    } else if src.contains('/') || src.is_empty() {
        Err(flag_error(
            "-v",
            v,
            "a host path must be absolute; a volume name has no '/'",
            VOLUME_HELP,
        ))
    } else {
        Ok(MountRequest::Volume {
            name: src.to_string(),
            target: dst.to_string(),
            readonly,
        })
    }
}

const MOUNT_HELP: &str =
    "write --mount type=bind,source=/host,target=/dst[,readonly], type=volume,source=NAME,target=/dst or type=tmpfs,target=/dst[,tmpfs-size=BYTES]";

fn parse_mount(v: &str) -> Result<MountRequest, RunError> {
    let (mut kind, mut source, mut target, mut readonly) = ("volume", None, None, false);
    let (mut size, mut mode) = (None, 0o1777);
    for field in v.split(',') {
        let (k, val) = field.split_once('=').unwrap_or((field, ""));
        match k {
            "type" => kind = val,
            "source" | "src" => source = Some(val),
            "target" | "destination" | "dst" => target = Some(val),
            "readonly" | "ro" => readonly = matches!(val, "" | "true" | "1"),
            "tmpfs-size" => {
                size = Some(
                    parse_size(val)
                        .ok_or_else(|| flag_error("--mount", v, "bad tmpfs-size", MOUNT_HELP))?,
                )
            }
            "tmpfs-mode" => {
                mode = u32::from_str_radix(val, 8)
                    .map_err(|_| flag_error("--mount", v, "bad tmpfs-mode (octal)", MOUNT_HELP))?
            }
            "bind-propagation" | "volume-nocopy" | "consistency" => {}
            _ => {
                return Err(flag_error(
                    "--mount",
                    v,
                    &format!("unknown field {k:?}"),
                    MOUNT_HELP,
                ))
            }
        }
    }
    let target = target
        .filter(|t| t.starts_with('/'))
        .ok_or_else(|| flag_error("--mount", v, "an absolute target is required", MOUNT_HELP))?
        .to_string();
    match (kind, source) {
        ("bind", Some(src)) if src.starts_with('/') => Ok(MountRequest::Bind {
            source: PathBuf::from(src),
            target,
            readonly,
        }),
        ("bind", _) => Err(flag_error(
            "--mount",
            v,
            "a bind mount needs an absolute source",
            MOUNT_HELP,
        )),
        ("volume", Some(name)) if !name.is_empty() => Ok(MountRequest::Volume {
            name: name.to_string(),
            target,
            readonly,
        }),
        ("volume", _) => Err(flag_error(
            "--mount",
            v,
            "a volume mount needs source=NAME",
            MOUNT_HELP,
        )),
        ("tmpfs", _) => Ok(MountRequest::Tmpfs {
            target,
            size,
            mode,
            noexec: true,
        }),
        (other, _) => Err(flag_error(
            "--mount",
            v,
            &format!("unknown type {other:?}"),
            MOUNT_HELP,
        )),
    }
}

/// `1024`, `64k`, `64m`, `1g` (docker's tmpfs sizes).
fn parse_size(s: &str) -> Option<u64> {
    let s = s.to_ascii_lowercase();
    let (num, mult) = match s.trim_end_matches('b').chars().last()? {
        'k' => (&s[..s.trim_end_matches('b').len() - 1], 1u64 << 10),
        'm' => (&s[..s.trim_end_matches('b').len() - 1], 1 << 20),
        'g' => (&s[..s.trim_end_matches('b').len() - 1], 1 << 30),
        _ => (s.as_str(), 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

fn parse_tmpfs(v: &str) -> Result<MountRequest, RunError> {
    let (target, opts) = v.split_once(':').unwrap_or((v, ""));
    let help = "write --tmpfs /dst[:size=64m,mode=1777]";
    if !target.starts_with('/') {
        return Err(flag_error(
            "--tmpfs",
            v,
            "the destination must be absolute",
            help,
        ));
    }
    let (mut size, mut mode, mut noexec) = (None, 0o1777, true);
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match (o, o.split_once('=')) {
            ("exec", _) => noexec = false,
            ("noexec", _) => noexec = true,
            (_, split) => match split {
                Some(("size", s)) => {
                    size = Some(
                        parse_size(s).ok_or_else(|| flag_error("--tmpfs", v, "bad size", help))?,
                    )
                }
                Some(("mode", m)) => {
                    mode = u32::from_str_radix(m, 8)
                        .map_err(|_| flag_error("--tmpfs", v, "bad mode", help))?
                }
                _ => {}
            },
        }
    }
    Ok(MountRequest::Tmpfs {
        target: target.to_string(),
        size,
        mode,
        noexec,
    })
}

const PUBLISH_HELP: &str =
    "write -p HOST_PORT:CONTAINER_PORT, -p 127.0.0.1:8080:80 or -p 53:53/udp";

pub(crate) fn parse_publish(v: &str) -> Result<Port, RunError> {
    let (spec, protocol) = match v.rsplit_once('/') {
        Some((s, "tcp")) => (s, Protocol::Tcp),
        Some((s, "udp")) => (s, Protocol::Udp),
        Some(_) => {
            return Err(flag_error(
                "-p",
                v,
                "the protocol is tcp or udp",
                PUBLISH_HELP,
            ))
        }
        None => (v, Protocol::Tcp),
    };
    let (ip, host, container) = match spec.rsplitn(3, ':').collect::<Vec<_>>().as_slice() {
        [c, h] => (String::new(), *h, *c),
        [c, h, ip] => (ip.trim_matches(['[', ']']).to_string(), *h, *c),
        _ => {
            return Err(flag_error(
                "-p",
                v,
                "kiln needs both ports (a port on the host is never picked at random)",
                PUBLISH_HELP,
            ))
        }
    };
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0);
    match (port(host), port(container)) {
        (Some(host_port), Some(container_port)) => Ok(Port {
            host_ip: ip,
            host_port,
            container_port,
            protocol,
        }),
        _ => Err(flag_error(
            "-p",
            v,
            "ports are numbers from 1 to 65535",
            PUBLISH_HELP,
        )),
    }
}

const RESTART_HELP: &str = "write --restart no, on-failure, on-failure:3, always or unless-stopped";

/// `--restart` as docker spells it.
fn parse_restart(v: &str) -> Result<RestartPolicy, RunError> {
    match v.split_once(':') {
        None if v == "no" => Ok(RestartPolicy::No),
        None if v == "always" => Ok(RestartPolicy::Always),
        None if v == "unless-stopped" => Ok(RestartPolicy::UnlessStopped),
        None if v == "on-failure" => Ok(RestartPolicy::OnFailure { max: 0 }),
        Some(("on-failure", n)) => n
            .parse()
            .map(|max| RestartPolicy::OnFailure { max })
            .map_err(|_| flag_error("--restart", v, "the count is a number", RESTART_HELP)),
        Some((_, _)) => Err(flag_error(
            "--restart",
            v,
            "only on-failure takes a maximum count",
            RESTART_HELP,
        )),
        None => Err(flag_error("--restart", v, "unknown policy", RESTART_HELP)),
    }
}

const LOG_OPT_HELP: &str = "write --log-opt max-size=10m or --log-opt max-file=3";

/// `--log-opt max-size=..` / `max-file=..` (the json-file driver's rotation).
fn parse_log_opts(opts: &[String]) -> Result<LogConfig, RunError> {
    let mut config = LogConfig {
        max_size: None,
        max_file: 1,
    };
    for o in opts {
        match o.split_once('=') {
            Some(("max-size", v)) => {
                let size = parse_size(v)
                    .filter(|s| *s > 0)
                    .ok_or_else(|| flag_error("--log-opt", o, "bad size", LOG_OPT_HELP))?;
                config.max_size = Some(size);
            }
            Some(("max-file", v)) => {
                config.max_file =
                    v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        flag_error("--log-opt", o, "a positive number", LOG_OPT_HELP)
                    })?;
            }
            _ => return Err(flag_error("--log-opt", o, "unknown option", LOG_OPT_HELP)),
        }
    }
    Ok(config)
}

/// `--cap-add`, `--cap-drop`, `--privileged`, `--pid`, `--volumes-from`, `-P`, into the
/// fields of `opts` they set.
fn security_options(s: &SecurityArgs, opts: &mut RunOptions) -> Result<(), RunError> {
    use kiln_runtime::sandbox::caps;
    if s.privileged || !s.cap_add.is_empty() || !s.cap_drop.is_empty() {
        let set = caps::tweak(&s.cap_add, &s.cap_drop, s.privileged, caps::all_available())
            .map_err(|e| {
                flag_error(
                    "--cap-add/--cap-drop",
                    &e.0,
                    "unknown capability",
                    "capability names are the kernel's, with or without CAP_ (CHOWN, NET_ADMIN, SYS_PTRACE, ...), or ALL",
                )
            })?;
        opts.capabilities = Some(set);
    }
    opts.privileged = s.privileged;
    opts.pid = match s.pid.as_deref() {
        None | Some("") => PidRequest::Private,
        Some("host") => PidRequest::Host,
        Some(other) => match other.strip_prefix("container:") {
            Some(c) if !c.is_empty() => PidRequest::Container(c.to_string()),
            _ => {
                return Err(flag_error(
                    "--pid",
                    other,
                    "expected host or container:NAME",
                    "write --pid host or --pid container:NAME",
                ))
            }
        },
    };
    for v in &s.volumes_from {
        let (container, readonly) = match v.rsplit_once(':') {
            Some((c, "ro")) => (c, true),
            Some((c, "rw")) => (c, false),
            Some((_, other)) => {
                return Err(flag_error(
                    "--volumes-from",
                    v,
                    &format!("unknown mode {other:?}"),
                    "write --volumes-from CONTAINER, CONTAINER:ro or CONTAINER:rw",
                ))
            }
            None => (v.as_str(), false),
        };
        opts.volumes_from.push(VolumesFrom {
            container: container.to_string(),
            readonly,
        });
    }
    opts.publish_all = s.publish_all;
    Ok(())
}

pub(crate) fn options(a: &RunArgs) -> miette::Result<RunOptions> {
    let mut env = Vec::new();
    for f in &a.env_files {
        env.extend(env_file(f)?);
    }
    env.extend(a.env.iter().filter_map(|e| env_entry(e)));
    let mut mounts = Vec::new();
    for v in &a.volumes {
        mounts.push(parse_volume(v)?);
    }
    for m in &a.mounts {
        mounts.push(parse_mount(m)?);
    }
    for t in &a.tmpfs {
        mounts.push(parse_tmpfs(t)?);
    }
    let (host_network, join) = match a.network.as_str() {
        "none" => (false, None),
        "host" => (true, None),
        "bridge" | "default" => {
            return Err(flag_error(
                "--network",
                &a.network,
                "kiln creates no bridges",
                "use --network none (a private loopback; publish ports with -p), host, or a network from kiln network create",
            )
            .into())
        }
        other => match other.strip_prefix("container:") {
            Some(c) => (false, Some(JoinRequest::Container(c.to_string()))),
            None => (false, Some(JoinRequest::Network(other.to_string()))),
        },
    };
    if !a.network_alias.is_empty() && !matches!(join, Some(JoinRequest::Network(_))) {
        return Err(flag_error(
            "--network-alias",
            &a.network_alias.join(","),
            "aliases belong to a kiln network",
            "use it with --network NAME (a network from kiln network create)",
        )
        .into());
    }
    let ports = a
        .publish
        .iter()
        .map(|p| parse_publish(p))
        .collect::<Result<Vec<_>, _>>()?;
    let resources = super::resources::resources(&a.resources)?;
    if resources.any() {
        super::resources::warn_unsupported(&resources);
    }
    let mut opts = RunOptions {
        args: a.image_and_args[1..].to_vec(),
        name: a.name.clone(),
        env,
        mounts,
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        entrypoint: a.entrypoint.clone(),
        host_network,
        join,
        aliases: a.network_alias.clone(),
        ports,
        read_only: a.read_only,
        hostname: a.hostname.clone(),
        init: a.init,
        tty: a.tty,
        open_stdin: a.interactive,
        remove: a.rm,
        restart: parse_restart(&a.restart)?,
        log: parse_log_opts(&a.log_opts)?,
        resources,
        labels: super::frontend::key_values(&a.labels, "--label")?
            .into_iter()
            .collect(),
        ..RunOptions::default()
    };
    if let Some(sig) = &a.stop_signal {
        if container::parse_signal(sig).is_none() {
            return Err(flag_error(
                "--stop-signal",
                sig,
                "not a signal",
                "name one as SIGTERM, TERM or 15",
            )
            .into());
        }
    }
    opts.stop_signal = a.stop_signal.clone();
    opts.stop_timeout = a.stop_timeout;
    opts.healthcheck = health_flags(&a.health)?;
    for entry in &a.add_hosts {
        opts.extra_hosts.push(add_host(entry)?);
    }
    if !opts.extra_hosts.is_empty() && matches!(opts.join, Some(JoinRequest::Network(_))) {
        return Err(flag_error(
            "--add-host",
            &a.add_hosts.join(","),
            "the members of a kiln network share one /etc/hosts",
            "name the host with --network-alias on a member, or use --network none or host",
        )
        .into());
    }
    for u in &a.ulimits {
        let limit = parse_ulimit(u).map_err(|why| {
            flag_error(
                "--ulimit",
                u,
                &why,
                "write NAME=SOFT[:HARD], as nofile=1024:4096",
            )
        })?;
        // As docker keeps them: one per name (the last given), in name order.
        opts.limits.ulimits.retain(|l| l.name != limit.name);
        opts.limits.ulimits.push(limit);
    }
    opts.limits.ulimits.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(size) = &a.shm_size {
        let bytes = super::resources::ram_in_bytes(size)
            .and_then(|b| u64::try_from(b).ok())
            .filter(|b| *b > 0)
            .ok_or_else(|| {
                flag_error(
                    "--shm-size",
                    size,
                    "not a size",
                    "write it as 64m, 1g or a number of bytes",
                )
            })?;
        opts.limits.shm_size = Some(bytes);
    }
    security_options(&a.security, &mut opts)?;
    Ok(opts)
}

/// `--ulimit NAME=SOFT[:HARD]`, as docker reads it: one of docker's names, HARD defaulting to
/// SOFT, -1 (any negative) unlimited, SOFT no more than HARD.
fn parse_ulimit(text: &str) -> Result<Ulimit, String> {
    let (name, values) = text
        .split_once('=')
        .ok_or_else(|| format!("invalid ulimit argument: {text}"))?;
    if !ULIMITS.iter().any(|(n, _)| *n == name) {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let number = |v: &str| {
        v.parse::<i64>()
            .map_err(|_| format!("invalid ulimit value: {v}"))
    };
    let (soft, hard) = match values.split_once(':') {
        Some((s, h)) => (number(s)?, number(h)?),
        None => {
            let v = number(values)?;
            (v, v)
        }
    };
    if hard >= 0 && (soft < 0 || soft > hard) {
        return Err(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        ));
    }
    Ok(Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

/// `--add-host NAME:IP` (split at the first `:`, so `NAME:::1` is IPv6), as docker reads it.
fn add_host(entry: &str) -> miette::Result<(String, String)> {
    let Some((name, ip)) = entry.split_once(':').filter(|(n, _)| !n.is_empty()) else {
        return Err(flag_error(
            "--add-host",
            entry,
            "bad format for add-host",
            "write NAME:IP, as db:127.0.0.1",
        )
        .into());
    };
    if ip == "host-gateway" {
        return Err(flag_error(
            "--add-host",
            entry,
            "kiln makes no bridge, so the host has no gateway address in a container",
            "use --network host, where the host is 127.0.0.1, or publish the host's port with -p",
        )
        .into());
    }
    if ip.parse::<std::net::IpAddr>().is_err() {
        return Err(flag_error(
            "--add-host",
            entry,
            "invalid IP address in add-host",
            "write NAME:IP, as db:127.0.0.1",
        )
        .into());
    }
    Ok((name.to_string(), ip.to_string()))
}

/// The `--health-*` flags as docker's container Healthcheck (None: the image's stands).
fn health_flags(
    h: &crate::cli::HealthArgs,
) -> miette::Result<Option<kiln_runtime::oci::HealthConfig>> {
    let durations = [
        ("--health-interval", &h.health_interval),
        ("--health-timeout", &h.health_timeout),
        ("--health-start-period", &h.health_start_period),
    ];
    let any = h.health_cmd.is_some()
        || h.health_retries.is_some()
        || durations.iter().any(|(_, v)| v.is_some());
    if h.no_healthcheck {
        if any {
            return Err(flag_error(
                "--no-healthcheck",
                "true",
                "it conflicts with the --health-* options",
                "give either --no-healthcheck or the --health-* flags",
            )
            .into());
        }
        return Ok(Some(kiln_runtime::oci::HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        }));
    }
    if !any {
        return Ok(None);
    }
    let mut ns = [0i64; 3];
    for ((flag, value), slot) in durations.iter().zip(ns.iter_mut()) {
        let Some(text) = value else { continue };
        let d = crate::compose::parse_duration(text)
            .filter(|d| d.is_zero() || *d >= std::time::Duration::from_millis(1))
            .and_then(|d| i64::try_from(d.as_nanos()).ok())
            .ok_or_else(|| {
                flag_error(
                    flag,
                    text,
                    "not a duration of 1ms or more",
                    "write it as 30s, 1m30s or 500ms",
                )
            })?;
        *slot = d;
    }
    let retries = h.health_retries.unwrap_or(0);
    if retries < 0 {
        return Err(flag_error(
            "--health-retries",
            &retries.to_string(),
            "cannot be negative",
            "give a count, 3 by default",
        )
        .into());
    }
    Ok(Some(kiln_runtime::oci::HealthConfig {
        test: h
            .health_cmd
            .iter()
            .flat_map(|c| ["CMD-SHELL".to_string(), c.clone()])
            .collect(),
        interval: ns[0],
        timeout: ns[1],
        start_period: ns[2],
        retries,
        ..Default::default()
    }))
}

/// The container `run`/`create` ask for, recorded (nothing started): the image resolved, the
/// flags read, and `--cidfile` refused when it exists, else written with the new ID.
fn create_record(
    store: &kiln_runtime::store::Store,
    a: &RunArgs,
) -> miette::Result<container::Record> {
    let reference = &a.image_and_args[0];
    let image = store
        .image(reference)
        .map_err(|_| RunError::NoImage(reference.clone()))?;
    let opts = options(a)?;
    check_cidfile(a)?;
    let record = container::create(store, reference, &image, &opts)?;
    write_cidfile(a, &record.id)?;
    Ok(record)
}

/// `kiln create`: the container's record, nothing started; prints its ID.
pub fn create(root: Option<PathBuf>, a: RunArgs) -> miette::Result<()> {
    let store = open_store(root)?;
    let record = create_record(&store, &a)?;
    println!("{}", record.id);
    Ok(())
}

/// `--cidfile`: docker refuses a file that is already there (another container's, perhaps).
fn check_cidfile(a: &RunArgs) -> miette::Result<()> {
    match &a.cidfile {
        Some(f) if f.exists() => Err(miette::miette!(
            help = "remove it, or name another file",
            "container ID file found, make sure the other container isn't running or delete {}",
            f.display()
        )),
        _ => Ok(()),
    }
}

fn write_cidfile(a: &RunArgs, id: &str) -> miette::Result<()> {
    if let Some(f) = &a.cidfile {
        std::fs::write(f, id).map_err(|e| {
            miette::miette!("cannot write the container ID file {}: {e}", f.display())
        })?;
    }
    Ok(())
}

/// `kiln run -d`: create, hand the container to a supervisor, print its ID.
fn run_detached(root: Option<PathBuf>, a: RunArgs) -> miette::Result<()> {
    let store = open_store(root)?;
    let record = create_record(&store, &a)?;
    match container::supervisor::start(&store, &record) {
        Ok(()) => {
            println!("{}", record.id);
            Ok(())
        }
        Err(e) => {
            let code = match &e {
                container::ContainerError::Sandbox(SandboxError::Start { code, .. }) => *code,
                _ => 125,
            };
            eprintln!("{:?}", miette::Report::new(e));
            std::process::exit(code);
        }
    }
}

pub fn run(root: Option<PathBuf>, a: RunArgs) -> miette::Result<()> {
    if a.detach {
        return run_detached(root, a);
    }
    // Signals are taken by one thread (they are blocked here, before any other thread exists,
    // so every later thread inherits the mask). Without a terminal they are passed to the
    // container's PID 1 (`--sig-proxy`, docker's default). With one, as docker, none is (the
    // terminal sends the payload its own): SIGWINCH resizes it, and SIGHUP, SIGINT, SIGTERM
    // or SIGQUIT, which end docker's CLI and so a container held by kiln, kill the container
    // (SIGKILL), so kiln still restores the terminal, records the end and honours --rm.
    let init = Arc::new(AtomicU32::new(0));
    let terminal = Arc::new(AtomicI32::new(-1));
    // Signals that arrive before PID 1's pid is known wait here (the payload may already
    // run when they come), delivered once it is.
    let pending: Arc<Mutex<Vec<Signal>>> = Arc::new(Mutex::new(Vec::new()));
    let deliver = {
        let (init, pending) = (Arc::clone(&init), Arc::clone(&pending));
        move |sig: Signal| {
            let mut waiting = pending.lock().unwrap_or_else(|p| p.into_inner());
            match init.load(Ordering::SeqCst) {
                0 => waiting.push(sig),
                pid => {
                    container::signal_init(pid, sig);
                }
            }
        }
    };
    if a.tty {
        let terminal = Arc::clone(&terminal);
        let mut set = SigSet::empty();
        for s in [
            Signal::SIGWINCH,
            Signal::SIGHUP,
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGQUIT,
        ] {
            set.add(s);
        }
        super::sigproxy::take(set, move |sig| {
            if sig != Signal::SIGWINCH {
                return deliver(Signal::SIGKILL);
            }
            let fd = terminal.load(Ordering::SeqCst);
            if fd >= 0 {
                tty::copy_window_size(0, fd);
            }
        });
    } else if a.sig_proxy {
        super::sigproxy::take(super::sigproxy::proxied(), deliver);
    }
    let store = open_store(root)?;
    let record = create_record(&store, &a)?;
    let streams = if a.tty {
        Streams {
            stdin: std::process::Stdio::null(),
            stdout: std::process::Stdio::inherit(),
            stderr: std::process::Stdio::inherit(),
        }
    } else {
        Streams {
            stdin: if a.interactive {
                std::process::Stdio::inherit()
            } else {
                std::process::Stdio::null()
            },
            stdout: std::process::Stdio::inherit(),
            stderr: std::process::Stdio::inherit(),
        }
    };
    let mut relay = None;
    let mut raw = None;
    let result = container::run_foreground(&store, record.clone(), streams, |c| {
        if let Some(pid) = c.init_pid {
            let mut waiting = pending.lock().unwrap_or_else(|p| p.into_inner());
            init.store(pid, Ordering::SeqCst);
            for sig in waiting.drain(..) {
                container::signal_init(pid, sig);
            }
        }
        if let Some(master) = c.terminal.take() {
            use std::os::fd::AsRawFd;
            terminal.store(master.as_raw_fd(), Ordering::SeqCst);
            raw = tty::RawMode::enter(0);
            let input = a.interactive;
            relay = Some(std::thread::spawn(move || tty::relay(master, input)));
        }
    });
    if let Some(r) = relay {
        let _ = r.join();
    }
    terminal.store(-1, Ordering::SeqCst);
    drop(raw);
    let code = match &result {
        Ok((_, exit)) => exit.code,
        Err(container::ContainerError::Sandbox(SandboxError::Start { code, .. })) => *code,
        Err(_) => 125,
    };
    if a.rm {
        container::remove(&store, &record)?;
        container::remove_anonymous_volumes(&store, &record)?;
    }
    if let Err(e) = result {
        eprintln!("{:?}", miette::Report::new(e));
    }
    std::process::exit(code);
}

pub fn rm(root: Option<PathBuf>, a: RmArgs) -> miette::Result<()> {
    let store = open_store(root)?;
    for name in &a.containers {
        let mut record = container::find(&store, name)?;
        if record.held() && a.force {
            record = container::kill_and_wait(&store, &record)?;
        }
        if record.held() {
            return Err(container::ContainerError::Running(name.clone()).into());
        }
        container::remove(&store, &record)?;
        if a.volumes {
            container::remove_anonymous_volumes(&store, &record)?;
        }
        println!("{name}");
    }
    Ok(())
}

/// A volume as `docker volume inspect` prints it (and `docker inspect VOLUME`).
pub(crate) fn volume_json(v: &volume::Volume) -> serde_json::Value {
    serde_json::json!({
        "CreatedAt": v.created,
        "Driver": v.driver,
        "Labels": null,
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Options": null,
        "Scope": "local",
    })
}

pub fn volume(root: Option<PathBuf>, c: VolumeCommand) -> miette::Result<()> {
    let store = open_store(root)?;
    match c {
        VolumeCommand::Create { name } => {
            volume::create(&store, &name)?;
            println!("{name}");
        }
        VolumeCommand::Ls { quiet } => {
            let all = volume::list_volumes(&store)?;
            // docker's tabwriter: the widest cell plus 3, at least 10.
            let width = all
                .iter()
                .map(|v| v.driver.len())
                .chain(["DRIVER".len()])
                .max()
                .map_or(10, |w| (w + 3).max(10));
            if !quiet {
                println!("{:<width$}VOLUME NAME", "DRIVER");
            }
            for v in all {
                if quiet {
                    println!("{}", v.name);
                } else {
                    println!("{:<width$}{}", v.driver, v.name);
                }
            }
        }
        VolumeCommand::Inspect { names, format } => {
            super::images::print_objects(&names, format.as_deref(), |n| {
                Ok(volume_json(&volume::inspect(&store, n)?))
            })?;
        }
        VolumeCommand::Rm { names } => {
            for n in &names {
                volume::remove(&store, n)?;
                println!("{n}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_flag_spellings() {
        assert_eq!(
            parse_volume("/h:/c:ro").unwrap(),
            MountRequest::Bind {
                source: "/h".into(),
                target: "/c".into(),
                readonly: true
            }
        );
        assert_eq!(
            parse_volume("data:/c").unwrap(),
            MountRequest::Volume {
                name: "data".into(),
                target: "/c".into(),
                readonly: false
            }
        );
        assert!(parse_volume("rel/x:/c").is_err());
        assert!(parse_volume("/h:c").is_err());
        assert_eq!(
            parse_mount("type=tmpfs,target=/t,tmpfs-size=64m").unwrap(),
            MountRequest::Tmpfs {
                target: "/t".into(),
                size: Some(64 << 20),
                mode: 0o1777,
                noexec: true,
            }
        );
        // docker's --tmpfs is noexec unless `exec` is given.
        assert_eq!(
            parse_tmpfs("/t:exec,size=1m").unwrap(),
            MountRequest::Tmpfs {
                target: "/t".into(),
                size: Some(1 << 20),
                mode: 0o1777,
                noexec: false,
            }
        );
        assert!(matches!(
            parse_tmpfs("/t").unwrap(),
            MountRequest::Tmpfs { noexec: true, .. }
        ));
        assert_eq!(
            parse_mount("type=bind,src=/a,dst=/b,readonly").unwrap(),
            MountRequest::Bind {
                source: "/a".into(),
                target: "/b".into(),
                readonly: true
            }
        );
        assert!(parse_mount("type=nfs,target=/x").is_err());
        let p = parse_publish("127.0.0.1:8080:80").unwrap();
        assert_eq!(
            (
                p.host_ip.as_str(),
                p.host_port,
                p.container_port,
                p.protocol
            ),
            ("127.0.0.1", 8080, 80, Protocol::Tcp)
        );
        assert_eq!(parse_publish("53:53/udp").unwrap().protocol, Protocol::Udp);
        assert!(parse_publish("80").is_err());
        assert_eq!(parse_size("1g"), Some(1 << 30));
    }
}
