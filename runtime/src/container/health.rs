//! Container health: the HEALTHCHECK a detached container runs under its supervisor (the
//! image's, or one the caller put in the record, as `kiln compose` does for a service's
//! `healthcheck:`), probed as `kiln exec` runs a command, with docker's rules: a probe every
//! interval, a failure when it exits non-zero or outlives the timeout, `unhealthy` after
//! `retries` failures in a row, failures in the start period not counted. The state is
//! `containers/<id>/health.json` in docker's `State.Health` shape, written whole (a rename)
//! by the supervisor's health thread alone, so no write races the record's.
//!
//! Must not: write the container's record; run anything but the probe.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::oci::HealthConfig;
use crate::sandbox::spec::ContainerSpec;
use crate::sandbox::{ExecSpec, Launcher, Streams};

/// The file's name in the container's directory.
pub const FILE: &str = "health.json";
/// Probe results kept, as docker keeps five.
const KEEP: usize = 5;
/// Bytes of a probe's output kept, as docker's 4 KiB.
const OUTPUT_MAX: usize = 4096;

/// `State.Health` as docker shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    pub failing_streak: u32,
    pub log: Vec<Probe>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Probe {
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

/// docker's merge of a container's Healthcheck (`run --health-*`) over the image's: a test
/// given replaces the image's (`["NONE"]` disables the check), and each zero duration or
/// count takes the image's value.
pub fn merged(
    container: Option<&HealthConfig>,
    image: Option<&HealthConfig>,
) -> Option<HealthConfig> {
    let Some(c) = container else {
        return image.cloned();
    };
    let Some(i) = image else {
        return Some(c.clone());
    };
    let pick = |a: i64, b: i64| if a != 0 { a } else { b };
    Some(HealthConfig {
        test: if c.test.is_empty() {
            i.test.clone()
        } else {
            c.test.clone()
        },
        interval: pick(c.interval, i.interval),
        timeout: pick(c.timeout, i.timeout),
        start_period: pick(c.start_period, i.start_period),
        start_interval: pick(c.start_interval, i.start_interval),
        retries: pick(c.retries, i.retries),
    })
}

/// The settings a probe loop runs with: docker's defaults for the zero fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub argv: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub retries: u32,
}

impl Settings {
    /// `None` for no check: no test, or `NONE`.
    pub fn of(config: &HealthConfig) -> Option<Settings> {
        let argv = match config.test.split_first() {
            Some((k, rest)) if k == "CMD" && !rest.is_empty() => rest.to_vec(),
            Some((k, rest)) if k == "CMD-SHELL" && !rest.is_empty() => {
                vec!["/bin/sh".into(), "-c".into(), rest.join(" ")]
            }
            _ => return None,
        };
        let ns = |v: i64, default: Duration| {
            if v > 0 {
                Duration::from_nanos(v as u64)
            } else {
                default
            }
        };
        Some(Settings {
            argv,
            interval: ns(config.interval, Duration::from_secs(30)),
            timeout: ns(config.timeout, Duration::from_secs(30)),
            start_period: ns(config.start_period, Duration::ZERO),
            retries: if config.retries > 0 {
                config.retries.min(i64::from(u32::MAX)) as u32
            } else {
                3
            },
        })
    }
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The health last written for the container whose directory is `dir`; `None` when it has
/// no check (or has not started one).
pub fn read(dir: &Path) -> Option<Health> {
    let bytes = std::fs::read(path(dir)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write(dir: &Path, h: &Health) {
    let tmp = dir.join(format!("{FILE}.tmp"));
    let Ok(bytes) = serde_json::to_vec(h) else {
        return;
    };
    if std::fs::write(&tmp, bytes).is_ok() {
        let _ = std::fs::rename(&tmp, path(dir));
    }
}

/// Runs `argv` in the container whose PID 1's init is `init_pid`, with `spec`'s process
/// settings; its status and output, or a failure when it cannot start or outlives
/// `timeout` (then it is sent SIGTERM, which its init passes on).
pub fn probe(
    launcher: &Launcher,
    spec: &ContainerSpec,
    init_pid: u32,
    argv: &[String],
    timeout: Duration,
) -> (i32, String) {
    let mut spec = spec.clone();
    spec.process.args = argv.to_vec();
    spec.process.terminal = false;
    let (r, w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return (-1, format!("pipe: {}", e.desc())),
    };
    let w2 = match w.try_clone() {
        Ok(w2) => w2,
        Err(e) => return (-1, format!("pipe: {e}")),
    };
    let streams = Streams {
        stdin: Stdio::null(),
        stdout: Stdio::from(w),
        stderr: Stdio::from(w2),
    };
    let c = match launcher.exec(&ExecSpec { init_pid, spec }, streams) {
        Ok(c) => c,
        Err(e) => return (-1, e.to_string()),
    };
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = std::fs::File::from(r)
            .take(OUTPUT_MAX as u64)
            .read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    });
    let pid = c.pid();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(c.wait());
    });
    let result = match rx.recv_timeout(timeout) {
        Ok(Ok(exit)) => (exit.code, None),
        Ok(Err(e)) => (-1, Some(e.to_string())),
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            (
                -1,
                Some(format!(
                    "Health check exceeded timeout ({}ms)",
                    timeout.as_millis()
                )),
            )
        }
    };
    match result {
        (code, Some(message)) => (code, message),
        (code, None) => (code, reader.join().unwrap_or_default()),
    }
}

/// The probe loop of one run of the container: `starting` first, then a probe every
/// interval until `ended()` says the run is over (checked while waiting, via `wait`, which
/// sleeps up to the given time and returns true when the run ended).
pub fn monitor(
    dir: &Path,
    spec: &ContainerSpec,
    init_pid: u32,
    settings: &Settings,
    mut wait: impl FnMut(Duration) -> bool,
) {
    let Ok(launcher) = Launcher::current() else {
        return;
    };
    let mut health = Health {
        status: "starting".into(),
        failing_streak: 0,
        log: Vec::new(),
    };
    write(dir, &health);
    let started = Instant::now();
    loop {
        if wait(settings.interval) {
            return;
        }
        let start = super::now_rfc3339_nanos();
        let (code, output) = probe(&launcher, spec, init_pid, &settings.argv, settings.timeout);
        let end = super::now_rfc3339_nanos();
        if code == 0 {
            health.status = "healthy".into();
            health.failing_streak = 0;
        } else if started.elapsed() >= settings.start_period || health.status != "starting" {
            health.failing_streak += 1;
            if health.failing_streak >= settings.retries {
                health.status = "unhealthy".into();
            }
        }
        health.log.push(Probe {
            start,
            end,
            exit_code: code,
            output,
        });
        if health.log.len() > KEEP {
            health.log.remove(0);
        }
        write(dir, &health);
    }
}
