//! Resource limits and usage: `run`/`create`'s `--memory`, `--cpus`, `--cpu-shares`,
//! `--cpu-quota`, `--cpu-period`, `--pids-limit` (docker's spellings and checks, to a typed
//! `Resources`), `pause`/`unpause`, and `stats` in docker's table shape.
//! Must not: touch cgroup files itself (`kiln_runtime::sandbox::cgroup` does).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kiln_runtime::container::{self, Record};
use kiln_runtime::sandbox::cgroup::{self, Layout, RealFs, Usage};
use kiln_runtime::sandbox::spec::Resources;

use super::images::human_size;
use super::template::Format;
use super::transfer::open_store;
use crate::cli::{PauseArgs, ResourceArgs, StatsArgs};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
enum ResourceError {
    #[error("invalid {flag} value {value:?}: {why}")]
    #[diagnostic(help("{help}"))]
    Flag {
        flag: &'static str,
        value: String,
        why: String,
        help: &'static str,
    },
    #[error("{0}")]
    Conflict(&'static str),
}

const SIZE_HELP: &str = "a number with an optional unit: 512m, 1g, 64k, 1048576";

/// docker's `RAMInBytes`: a number (a fraction allowed) and an optional binary unit
/// `b|k|m|g|t|p`, optionally followed by `i` and `b` (`1.5g`, `64MiB`, `100`).
pub fn ram_in_bytes(text: &str) -> Option<i64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().ok()?;
    let unit = unit.trim_start_matches(' ').to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return None,
    };
    let bytes = num * (1u64 << shift) as f64;
    (bytes.is_finite() && bytes < i64::MAX as f64).then_some(bytes as i64)
}

fn flag(flag: &'static str, value: &str, why: &str, help: &'static str) -> ResourceError {
    ResourceError::Flag {
        flag,
        value: value.to_string(),
        why: why.to_string(),
        help,
    }
}

/// The flags, typed and checked as docker checks them.
pub fn resources(a: &ResourceArgs) -> miette::Result<Resources> {
    let size = |name: &'static str, v: &Option<String>| -> Result<Option<i64>, ResourceError> {
        match v.as_deref() {
            None => Ok(None),
            Some("-1") if name == "--memory-swap" => Ok(Some(-1)),
            Some(v) => ram_in_bytes(v)
                .map(Some)
                .ok_or_else(|| flag(name, v, "not a size", SIZE_HELP)),
        }
    };
    let memory = size("--memory", &a.memory)?.filter(|m| *m != 0);
    let memory_swap = size("--memory-swap", &a.memory_swap)?.filter(|m| *m != 0);
    if let Some(m) = memory {
        if m < 6 << 20 {
            return Err(ResourceError::Conflict("Minimum memory limit allowed is 6MB").into());
        }
    }
    match (memory, memory_swap) {
        (None, Some(_)) => {
            return Err(ResourceError::Conflict(
                "You should always set the Memory limit when using Memoryswap limit",
            )
            .into())
        }
        (Some(m), Some(s)) if s != -1 && s < m => {
            return Err(ResourceError::Conflict(
                "Minimum memoryswap limit should be larger than memory limit, see usage",
            )
            .into())
        }
        _ => {}
    }
    let nano_cpus = match a.cpus.as_deref() {
        None => None,
        Some(v) => {
            let cpus: f64 = v
                .parse()
                .ok()
                .filter(|c: &f64| c.is_finite() && *c >= 0.0)
                .ok_or_else(|| flag("--cpus", v, "not a number of CPUs", "write --cpus 1.5"))?;
            let online = std::thread::available_parallelism().map_or(1, |n| n.get());
            let nano = (cpus * 1e9).round() as i64;
            if nano != 0 && (nano < 10_000_000 || nano > online as i64 * 1_000_000_000) {
                return Err(flag(
                    "--cpus",
                    v,
                    &format!("the range of CPUs is from 0.01 to {online}.00, as there are only {online} CPUs available"),
                    "give a fraction of the machine's CPUs",
                )
                .into());
            }
            (nano != 0).then_some(nano)
        }
    };
    if nano_cpus.is_some() && a.cpu_quota.is_some_and(|q| q != 0) {
        return Err(ResourceError::Conflict(
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        )
        .into());
    }
    if nano_cpus.is_some() && a.cpu_period.is_some_and(|p| p != 0) {
        return Err(ResourceError::Conflict(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        )
        .into());
    }
    if let Some(p) = a.cpu_period.filter(|p| *p != 0) {
        if !(1000..=1_000_000).contains(&p) {
            return Err(ResourceError::Conflict(
                "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
            )
            .into());
        }
    }
    if let Some(q) = a.cpu_quota.filter(|q| *q > 0) {
        if q < 1000 {
            return Err(ResourceError::Conflict(
                "CPU cfs quota can not be less than 1ms (i.e. 1000)",
            )
            .into());
        }
    }
    Ok(Resources {
        memory,
        memory_swap,
        nano_cpus,
        cpu_shares: a.cpu_shares.filter(|s| *s != 0),
        cpu_quota: a.cpu_quota.filter(|q| *q != 0),
        cpu_period: a.cpu_period.filter(|p| *p != 0),
        pids_limit: a.pids_limit.filter(|p| *p != 0),
    })
}

/// One warning when limits were asked for that this machine cannot carry out.
pub fn warn_unsupported(res: &Resources) {
    let missing = cgroup::unsupported(&Layout::current(&RealFs), res);
    if !missing.is_empty() {
        eprintln!(
            "WARNING: no {} cgroup controller is available to kiln here (no cgroup v2 delegation and no cgroup v1 hierarchy for it): the container runs without those limits",
            missing.join(", ")
        );
    }
}

/// `kiln pause` / `kiln unpause`: each container's name as given, as docker prints it.
pub fn pause(root: Option<PathBuf>, a: PauseArgs, paused: bool) -> miette::Result<()> {
    let store = open_store(root)?;
    let one = |name: &String| {
        container::find(&store, name).and_then(|r| container::set_paused(&r, paused))
    };
    if let [name] = &a.containers[..] {
        one(name)?;
        println!("{name}");
        return Ok(());
    }
    let mut failed = Vec::new();
    for name in &a.containers {
        match one(name) {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("{:?}", miette::Report::new(e));
                failed.push(name.as_str());
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(miette::miette!("failed for {}", failed.join(", ")))
    }
}

/// docker's `BytesSize`: binary units, four significant digits (`212KiB`, `7.604GiB`).
fn bytes_size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit + 1 < UNITS.len() {
        size /= 1024.0;
        unit += 1;
    }
    let int_digits = if size < 1.0 {
        1
    } else {
        size.log10().floor() as i32 + 1
    };
    let decimals = (4 - int_digits).max(0) as usize;
    let mut text = format!("{size:.decimals$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{}", UNITS[unit])
}

/// Bytes received and sent on the container's interfaces other than loopback (docker's
/// NET I/O counts the container's network interfaces; kiln's containers have only `lo`
/// unless they share the host's).
fn net_io(init_pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{init_pid}/net/dev")).unwrap_or_default();
    let mut rx = 0;
    let mut tx = 0;
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        rx += f.first().copied().unwrap_or(0);
        tx += f.get(8).copied().unwrap_or(0);
    }
    (rx, tx)
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// One row of `kiln stats`.
struct Row {
    id: String,
    name: String,
    cpu: f64,
    mem: u64,
    limit: u64,
    net: (u64, u64),
    block: (u64, u64),
    pids: u64,
}

impl Row {
    /// The fields `stats --format` can name.
    fn fields(&self, no_trunc: bool) -> serde_json::Value {
        let mem_perc = if self.limit == 0 {
            0.0
        } else {
            self.mem as f64 * 100.0 / self.limit as f64
        };
        let id = if no_trunc {
            self.id.clone()
        } else {
            self.id[..12.min(self.id.len())].to_string()
        };
        serde_json::json!({
            "Container": id,
            "ID": id,
            "Name": self.name,
            "CPUPerc": format!("{:.2}%", self.cpu),
            "MemUsage": format!("{} / {}", bytes_size(self.mem), bytes_size(self.limit)),
            "MemPerc": format!("{mem_perc:.2}%"),
            "NetIO": format!("{} / {}", human_size(self.net.0), human_size(self.net.1)),
            "BlockIO": format!("{} / {}", human_size(self.block.0), human_size(self.block.1)),
            "PIDs": self.pids.to_string(),
        })
    }
}

const DEFAULT_FORMAT: &str =
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// Each field's column title, as docker's table header shows it.
fn headers() -> serde_json::Value {
    serde_json::json!({
        "Container": "CONTAINER",
        "ID": "CONTAINER ID",
        "Name": "NAME",
        "CPUPerc": "CPU %",
        "MemUsage": "MEM USAGE / LIMIT",
        "MemPerc": "MEM %",
        "NetIO": "NET I/O",
        "BlockIO": "BLOCK I/O",
        "PIDs": "PIDS",
    })
}

/// Usage of each container (zero for one that is not running), CPU % over `interval`.
fn sample(records: &[Record], interval: Duration) -> Vec<Row> {
    let fs = RealFs;
    let read = |r: &Record| -> Option<(Usage, Instant)> {
        let cg = r.cgroup()?;
        Some((cg.usage(&fs), Instant::now()))
    };
    let first: Vec<Option<(Usage, Instant)>> = records.iter().map(read).collect();
    if first.iter().any(Option::is_some) {
        std::thread::sleep(interval);
    }
    let host = host_memory();
    records
        .iter()
        .zip(first)
        .map(|(r, before)| {
            let after = read(r);
            let mut row = Row {
                id: r.id.clone(),
                name: r.name.clone(),
                cpu: 0.0,
                mem: 0,
                limit: 0,
                net: (0, 0),
                block: (0, 0),
                pids: 0,
            };
            if let (Some((u0, t0)), Some((u1, t1))) = (before, after) {
                let wall = t1.duration_since(t0).as_nanos() as f64;
                if let (Some(a), Some(b)) = (u0.cpu_ns, u1.cpu_ns) {
                    if wall > 0.0 {
                        row.cpu = b.saturating_sub(a) as f64 * 100.0 / wall;
                    }
                }
                row.mem = u1.memory.unwrap_or(0);
                row.limit = u1.memory_limit.unwrap_or(host).min(host.max(1));
                row.block = (u1.block_read, u1.block_write);
                // kiln's monitor is in the container's cgroup (docker's shim is not).
                row.pids = u1.pids.unwrap_or(0).saturating_sub(1);
                if let Some(pid) = r.init_pid {
                    row.net = net_io(pid);
                }
            }
            row
        })
        .collect()
}

/// `kiln stats`: docker's columns from the containers' cgroup files; CPU % is the CPU time
/// used over the sampling interval (100% is one CPU busy, as docker's).
pub fn stats(root: Option<PathBuf>, a: StatsArgs) -> miette::Result<()> {
    let store = open_store(root)?;
    let format = Format::parse(a.format.as_deref().unwrap_or(DEFAULT_FORMAT))?;
    let named: Vec<String> = a.containers.clone();
    let mut first = true;
    loop {
        let records: Vec<Record> = if named.is_empty() {
            container::list(&store)?
                .into_iter()
                .filter(|r| a.all || r.running())
                .collect()
        } else {
            named
                .iter()
                .map(|n| container::find(&store, n))
                .collect::<Result<_, _>>()?
        };
        let interval = if first && a.no_stream {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(1)
        };
        first = false;
        let rows = sample(&records, interval);
        let rows: Vec<serde_json::Value> = rows.iter().map(|r| r.fields(a.no_trunc)).collect();
        if !a.no_stream {
            // Clear the screen and go home, as docker's streaming display does.
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\x1b[2J\x1b[H");
        }
        format.print(&headers(), &rows)?;
        if a.no_stream {
            return Ok(());
        }
        let _ = std::io::stdout().flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_ram_sizes() {
        assert_eq!(ram_in_bytes("100"), Some(100));
        assert_eq!(ram_in_bytes("64m"), Some(64 << 20));
        assert_eq!(ram_in_bytes("64MiB"), Some(64 << 20));
        assert_eq!(ram_in_bytes("1.5g"), Some(3 << 29));
        assert_eq!(ram_in_bytes("8 kb"), Some(8 << 10));
        assert_eq!(ram_in_bytes("12x"), None);
        assert_eq!(ram_in_bytes("m"), None);
    }

    #[test]
    fn docker_bytes_size() {
        assert_eq!(bytes_size(0), "0B");
        assert_eq!(bytes_size(212 * 1024), "212KiB");
        assert_eq!(bytes_size(8 << 20), "8MiB");
        assert_eq!(bytes_size(8_164_000_000), "7.603GiB");
        assert_eq!(bytes_size(1536), "1.5KiB");
    }
}
