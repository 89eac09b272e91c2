//! ps, logs, start, stop, restart, kill, wait, exec (and `exec -d`) and `inspect` of containers: the
//! container lifecycle as docker's commands show it (columns, statuses, ages, JSON shapes).
//! Names, full IDs and unique ID prefixes name a container everywhere.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use kiln_runtime::container::{self, log, Record, State};
use kiln_runtime::oci::time;
use kiln_runtime::sandbox::{ExecSpec, Launcher, SandboxError, Streams};
use kiln_runtime::store::Store;
use serde_json::{json, Value};

use super::images::{human_duration, now, print_table};
use super::template::{Format, Template};
use super::transfer::open_store;
use crate::cli::{
    AttachArgs, ContainersArgs, ExecArgs, KillArgs, LogsArgs, PsArgs, StartArgs, StopArgs,
};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
enum ContainersError {
    #[error("invalid signal {0:?}")]
    #[diagnostic(help("name it (TERM, SIGKILL) or give its number"))]
    Signal(String),
    #[error("invalid filter {0:?}")]
    #[diagnostic(help(
        "kiln ps filters by status=created|running|exited, name=TEXT, id=PREFIX, label=KEY or label=KEY=VALUE"
    ))]
    Filter(String),
    #[error("invalid {flag} value {value:?}")]
    #[diagnostic(help("{help}"))]
    Value {
        flag: &'static str,
        value: String,
        help: &'static str,
    },
    #[error("container {0} has no log: it ran in the foreground, its output went to the terminal")]
    NoLog(String),
}

/// docker's STATUS column: `Up 5 seconds`, `Exited (0) 3 minutes ago`, `Created`.
fn status(r: &Record, now: i64) -> String {
    let since = |t: &Option<String>| t.as_deref().and_then(time::parse_rfc3339);
    match r.state {
        State::Created => "Created".into(),
        State::Running => {
            let up = match since(&r.started_at) {
                Some(t) => format!("Up {}", human_duration(now - t)),
                None => "Up".into(),
            };
            // docker's suffix: (Paused), else the health: (health: starting), (healthy).
            if r.paused() {
                return format!("{up} (Paused)");
            }
            match r.health.as_deref() {
                Some("starting") => format!("{up} (health: starting)"),
                Some(h) => format!("{up} ({h})"),
                None => up,
            }
        }
        State::Exited | State::Restarting => {
            let code = r.exit_code.unwrap_or(0);
            let word = if r.state == State::Exited {
                "Exited"
            } else {
                "Restarting"
            };
            match since(&r.finished_at) {
                Some(t) => format!("{word} ({code}) {} ago", human_duration(now - t)),
                None => format!("{word} ({code})"),
            }
        }
    }
}

fn state_name(r: &Record) -> &'static str {
    match r.state {
        State::Created => "created",
        State::Running if r.paused() => "paused",
        State::Running => "running",
        State::Restarting => "restarting",
        State::Exited => "exited",
    }
}

/// docker's COMMAND column: the command line (an argument with a space in single quotes),
/// cut to 20 characters with `…`, in double quotes.
fn command(r: &Record, full: bool) -> String {
    let line = r
        .spec
        .process
        .args
        .iter()
        .enumerate()
        .map(|(i, a)| {
            if i > 0 && a.contains(' ') {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let shown = if full || line.chars().count() <= 20 {
        line
    } else {
        let mut s: String = line.chars().take(19).collect();
        s.push('…');
        s
    };
    format!("\"{shown}\"")
}

fn ports(r: &Record) -> String {
    r.spec
        .ports
        .iter()
        .map(|p| {
            let ip = p.shown_host_ip();
            format!("{ip}:{}->{}", p.host_port, p.container_key())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The bytes of the files under `dir` (not following symlinks, a hard-linked file once),
/// as docker sums a layer's changes: directories count nothing.
fn dir_size(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                todo.push(e.path());
            } else if meta.nlink() < 2 || seen.insert((meta.dev(), meta.ino())) {
                total += meta.len();
            }
        }
    }
    total
}

/// docker's SIZE column of `ps -s`: the container's writes, and with the image's files
/// (`0B (virtual 1.98MB)`).
fn size(r: &Record) -> String {
    let rw = dir_size(&r.spec.rootfs.upper);
    let image: u64 = r.spec.rootfs.layers.iter().map(|l| dir_size(l)).sum();
    format!(
        "{} (virtual {})",
        super::images::human_size(rw),
        super::images::human_size(rw + image)
    )
}

/// One `{{.Field}}` of `ps --format` (also `kiln compose ps`'s columns).
pub(crate) fn field(r: &Record, name: &str, now: i64, full: bool) -> Option<String> {
    let id = if full {
        r.id.clone()
    } else {
        r.id[..12].to_string()
    };
    Some(match name {
        "ID" => id,
        "Image" => r.image.clone(),
        "Command" => command(r, full),
        "CreatedAt" => r.created.clone(),
        "RunningFor" => format!(
            "{} ago",
            human_duration(now - time::parse_rfc3339(&r.created).unwrap_or(now))
        ),
        "Status" => status(r, now),
        "State" => state_name(r).into(),
        "Ports" => ports(r),
        "Names" => r.name.clone(),
        "Size" => size(r),
        // docker's K=V,K=V (sorted here).
        "Labels" => r
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
        _ => return None,
    })
}

/// The fields `ps --format` can name, as one object for the template (Size only when the
/// template reads it: it walks the container's upper directory).
const PS_FIELDS: [&str; 11] = [
    "ID",
    "Image",
    "Command",
    "CreatedAt",
    "RunningFor",
    "Status",
    "State",
    "Ports",
    "Names",
    "Labels",
    "Size",
];

fn ps_row(r: &Record, template: &Template, now: i64, full: bool) -> Value {
    let mut row = serde_json::Map::new();
    for name in PS_FIELDS {
        if name != "Size" || template.mentions("Size") {
            row.insert(name.into(), json!(field(r, name, now, full)));
        }
    }
    Value::Object(row)
}

/// Each `ps --format` field's column title, as docker's table header shows it.
fn ps_headers() -> Value {
    json!({
        "ID": "CONTAINER ID",
        "Image": "IMAGE",
        "Command": "COMMAND",
        "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED",
        "Status": "STATUS",
        "State": "STATE",
        "Ports": "PORTS",
        "Names": "NAMES",
        "Size": "SIZE",
        "Labels": "LABELS",
    })
}

fn matches_filter(r: &Record, filter: &str) -> Result<bool, ContainersError> {
    let (k, v) = filter
        .split_once('=')
        .ok_or_else(|| ContainersError::Filter(filter.to_string()))?;
    Ok(match k {
        "status" => match v {
            "created" | "running" | "paused" | "restarting" | "exited" => state_name(r) == v,
            "removing" | "dead" => false,
            _ => return Err(ContainersError::Filter(filter.to_string())),
        },
        "name" => r.name.contains(v),
        "id" => r.id.starts_with(v),
        // docker's `label=K` (set, any value) and `label=K=V`.
        "label" => match v.split_once('=') {
            Some((k, want)) => r.labels.get(k).is_some_and(|have| have == want),
            None => r.labels.contains_key(v),
        },
        _ => return Err(ContainersError::Filter(filter.to_string())),
    })
}

pub fn ps(root: Option<PathBuf>, a: PsArgs) -> miette::Result<()> {
    let store = open_store(root)?;
    let mut all = container::list(&store)?;
    // Newest first, as docker lists.
    all.reverse();
    if a.latest {
        all.truncate(1);
    }
    // Stopped containers show with -a, -l, or a status filter (docker's rule).
    let status_filter = a.filters.iter().any(|f| f.starts_with("status="));
    let mut shown = Vec::new();
    for r in all {
        if !(a.all || a.latest || status_filter || r.held()) {
            continue;
        }
        let mut keep = true;
        for f in &a.filters {
            keep &= matches_filter(&r, f)?;
        }
        if keep {
            shown.push(r);
        }
    }
    let now = now();
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for r in &shown {
            let id = if a.no_trunc { &r.id[..] } else { &r.id[..12] };
            let _ = writeln!(out, "{id}");
        }
        return Ok(());
    }
    if let Some(format) = &a.format {
        let format = Format::parse(format)?;
        let rows: Vec<Value> = shown
            .iter()
            .map(|r| ps_row(r, format.template(), now, a.no_trunc))
            .collect();
        return format.print(&ps_headers(), &rows);
    }
    let mut rows = vec![[
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ]
    .map(str::to_string)
    .to_vec()];
    if a.size {
        rows[0].push("SIZE".into());
    }
    for r in &shown {
        let f = |n: &str| field(r, n, now, a.no_trunc).unwrap_or_default();
        let mut row = vec![
            f("ID"),
            f("Image"),
            f("Command"),
            f("RunningFor"),
            f("Status"),
            f("Ports"),
            f("Names"),
        ];
        if a.size {
            row.push(f("Size"));
        }
        rows.push(row);
    }
    print_table(&rows);
    Ok(())
}

/// `--since`: an RFC 3339 time, a Unix time (with a fraction), or a Go duration ago.
fn parse_since(v: &str, now: i64) -> Option<(i64, u32)> {
    if let Some(t) = time::parse_rfc3339(v) {
        return Some((t, time::rfc3339_nanos(v)));
    }
    if let Ok(f) = v.parse::<f64>() {
        return Some((f.trunc() as i64, (f.fract() * 1e9) as u32));
    }
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = v.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if (c == 'm' || c == 'u' || c == 'n') && chars.peek() == Some(&'s') {
            unit.push('s');
            chars.next();
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        any = true;
    }
    if !any || !num.is_empty() {
        return None;
    }
    let t = now as f64 - total;
    Some((t.trunc() as i64, (t.fract() * 1e9) as u32))
}

fn print_entry(e: &log::Entry, timestamps: bool) {
    let text = if timestamps {
        let (secs, nanos) = e.instant();
        let whole = time::format_rfc3339(secs);
        format!("{}.{nanos:09}Z {}", whole.trim_end_matches('Z'), e.log)
    } else {
        e.log.clone()
    };
    if e.stream == "stderr" {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    } else {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}

pub fn logs(root: Option<PathBuf>, a: LogsArgs) -> miette::Result<()> {
    let store = open_store(root)?;
    let record = container::find(&store, &a.container)?;
    let path = record.log_path(&store);
    if !path.exists() && !record.supervised {
        return Err(ContainersError::NoLog(record.name).into());
    }
    let tail: Option<usize> = match a.tail.as_str() {
        "all" | "-1" => None,
        n => Some(n.parse().map_err(|_| ContainersError::Value {
            flag: "--tail",
            value: n.to_string(),
            help: "a number of lines, or all",
        })?),
    };
    let since = match &a.since {
        Some(v) => Some(parse_since(v, now()).ok_or_else(|| ContainersError::Value {
            flag: "--since",
            value: v.clone(),
            help:
                "an RFC 3339 time (2026-01-02T15:04:05Z), a Unix time, or a duration (10m, 1h30m)",
        })?),
        None => None,
    };
    let keep = |e: &log::Entry| since.is_none_or(|s| e.instant() >= s);
    // The follower starts before the files are read, so nothing written in between is lost.
    let mut follower = if a.follow {
        Some(log::Follower::at_end(&path).map_err(|e| miette::miette!("{}: {e}", path.display()))?)
    } else {
        None
    };
    let entries: Vec<log::Entry> = log::read_all(&path)
        .map_err(|e| miette::miette!("{}: {e}", path.display()))?
        .into_iter()
        .filter(|e| keep(e))
        .collect();
    let skip = tail.map_or(0, |n| entries.len().saturating_sub(n));
    for e in &entries[skip..] {
        print_entry(e, a.timestamps);
    }
    let Some(follower) = follower.as_mut() else {
        return Ok(());
    };
    loop {
        let running = container::find(&store, &record.id).is_ok_and(|r| r.held());
        let new = follower
            .poll()
            .map_err(|e| miette::miette!("{}: {e}", path.display()))?;
        for e in new.iter().filter(|e| keep(e)) {
            print_entry(e, a.timestamps);
        }
        if !running {
            // Read once more: the supervisor writes the last output before the end.
            for e in follower
                .poll()
                .unwrap_or_default()
                .iter()
                .filter(|e| keep(e))
            {
                print_entry(e, a.timestamps);
            }
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn signal(text: &str) -> Result<nix::sys::signal::Signal, ContainersError> {
    container::parse_signal(text).ok_or_else(|| ContainersError::Signal(text.to_string()))
}

pub fn stop(root: Option<PathBuf>, a: StopArgs) -> miette::Result<()> {
    let store = open_store(root)?;
    for name in &a.containers {
        let record = container::find(&store, name)?;
        container::stop(&store, &record, record.stop_timeout(a.time))?;
        println!("{name}");
    }
    Ok(())
}

fn start_one(store: &Store, name: &str) -> miette::Result<Record> {
    let record = container::find(store, name)?;
    if !record.held() {
        container::supervisor::start(store, &record)?;
    }
    Ok(container::find(store, &record.id)?)
}

pub fn start(root: Option<PathBuf>, a: StartArgs) -> miette::Result<ExitCode> {
    let store = open_store(root)?;
    if a.attach || a.interactive {
        let [name] = a.containers.as_slice() else {
            return Err(miette::miette!(
                "you cannot start and attach multiple containers at once"
            ));
        };
        let keys = detach_keys(&a.detach_keys)?;
        let record = container::find(&store, name)?;
        // Attach from the end of what earlier runs wrote, as docker shows only this run.
        let follower = follow_from_now(&store, &record)?;
        // Signals are blocked before the supervisor or any thread is started (the
        // supervisor starts with none blocked).
        let proxy = !record.spec.process.terminal;
        let store = std::sync::Arc::new(store);
        if proxy {
            proxy_signals(&store, &record);
        }
        let record = start_one(&store, name)?;
        // As docker: `-i` passes stdin on, and only to a container made with -i or -t; a
        // terminal's input need not be a terminal (docker's start does not ask).
        return attached(&store, &record, follower, a.interactive, keys, false);
    }
    for name in &a.containers {
        start_one(&store, name)?;
        println!("{name}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `--sig-proxy`: every signal docker's CLI passes on goes to `record`'s PID 1 (`kill`).
fn proxy_signals(store: &std::sync::Arc<Store>, record: &Record) {
    let (store, record) = (std::sync::Arc::clone(store), record.clone());
    super::sigproxy::take(super::sigproxy::proxied(), move |sig| {
        if let Ok(now) = container::find(&store, &record.id) {
            let _ = container::kill(&store, &now, sig);
        }
    });
}

/// A follower of `record`'s log from its current end.
fn follow_from_now(store: &Store, record: &Record) -> miette::Result<log::Follower> {
    let path = record.log_path(store);
    log::Follower::at_end(&path).map_err(|e| miette::miette!("{}: {e}", path.display()))
}

/// Prints what the container writes until it ends (its status becomes ours), or until
/// `detached` is set (docker's "read escape sequence", status 1).
fn follow_to_the_end(
    store: &Store,
    record: &Record,
    mut follower: log::Follower,
    detached: Option<&std::sync::atomic::AtomicBool>,
) -> miette::Result<ExitCode> {
    use std::sync::atomic::Ordering;
    loop {
        let running = container::find(store, &record.id).is_ok_and(|r| r.running());
        for e in follower.poll().unwrap_or_default() {
            print_entry(&e, false);
        }
        if detached.is_some_and(|d| d.load(Ordering::SeqCst)) {
            eprintln!("read escape sequence");
            return Ok(ExitCode::from(1));
        }
        if !running {
            for e in follower.poll().unwrap_or_default() {
                print_entry(&e, false);
            }
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let code = container::wait(store, record)?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// `kiln attach`: the container's output from now on, this process's stdin into its stdin
/// (when it was started with `-i` or `-t`), until it ends or the detach keys are typed.
pub fn attach(root: Option<PathBuf>, a: AttachArgs) -> miette::Result<ExitCode> {
    let store = std::sync::Arc::new(open_store(root)?);
    let record = container::find(&store, &a.container)?;
    if !record.running() {
        return Err(miette::miette!(
            "You cannot attach to a stopped container, start it first"
        ));
    }
    let keys = detach_keys(&a.detach_keys)?;
    // As docker: no proxy for a terminal's container (the terminal sends its own signals).
    if a.sig_proxy && !record.spec.process.terminal {
        proxy_signals(&store, &record);
    }
    let follower = follow_from_now(&store, &record)?;
    attached(&store, &record, follower, !a.no_stdin, keys, true)
}

/// A client attached to a running container (`attach`, `start -a/-i`): prints its output
/// from `follower` until it ends (its status is returned) or the detach keys are typed on
/// a terminal (docker's "read escape sequence", status 1); with `stdin`, passes this
/// process's input on to a container that takes input (made with `-i` or `-t`), from a
/// terminal only when `only_a_terminal` and the container has one.
fn attached(
    store: &Store,
    record: &Record,
    follower: log::Follower,
    stdin: bool,
    keys: Vec<u8>,
    only_a_terminal: bool,
) -> miette::Result<ExitCode> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let detached = std::sync::Arc::new(AtomicBool::new(false));
    let terminal = record.spec.process.terminal;
    let mut raw_mode = None;
    if stdin && (record.open_stdin || terminal) {
        if only_a_terminal && terminal && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            // As docker's attach: a terminal container's input comes from a terminal.
            return Err(miette::miette!(
                help = "attach from a terminal, or with --no-stdin to only watch its output",
                "the input device is not a TTY"
            ));
        }
        let mut input = container::supervisor::attach_stdin(&record.dir(store))
            .map_err(|e| miette::miette!("attaching to {}: {e}", record.name))?
            .map_err(|why| miette::miette!("attaching to {}: {why}", record.name))?;
        if terminal {
            raw_mode = kiln_runtime::sandbox::tty::RawMode::enter(0);
        }
        let detached = std::sync::Arc::clone(&detached);
        std::thread::spawn(move || {
            // Detach keys are read on a terminal's input only, as docker's daemon reads them.
            let mut escape = terminal.then(|| EscapeWatch::new(keys));
            let mut buf = [0u8; 4096];
            let mut stdin = std::io::stdin().lock();
            loop {
                let n = match std::io::Read::read(&mut stdin, &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let (pass, hit) = match escape.as_mut() {
                    Some(w) => w.feed(&buf[..n]),
                    None => (buf[..n].to_vec(), false),
                };
                if input.write_all(&pass).is_err() {
                    return;
                }
                if hit {
                    detached.store(true, Ordering::SeqCst);
                    return;
                }
            }
        });
    }
    let code = follow_to_the_end(store, record, follower, Some(&detached));
    drop(raw_mode);
    code
}

/// docker's `--detach-keys`: `ctrl-<a-z @ [ \ ] ^ _>` or one character, comma-separated.
fn detach_keys(text: &str) -> miette::Result<Vec<u8>> {
    text.split(',')
        .map(|k| {
            let k = k.trim();
            let ctrl = k.strip_prefix("ctrl-");
            match (ctrl, k.as_bytes()) {
                (Some(c), _) if c.len() == 1 => {
                    let b = c.as_bytes()[0].to_ascii_lowercase();
                    match b {
                        b'a'..=b'z' => Ok(b - b'a' + 1),
                        b'@' => Ok(0),
                        b'[' | b'\\' | b']' | b'^' | b'_' => Ok(b - b'@'),
                        _ => Err(()),
                    }
                }
                (None, [b]) => Ok(*b),
                _ => Err(()),
            }
            .map_err(|()| {
                miette::miette!(
                    help = "keys are ctrl-<a-z, @, [, \\, ], ^ or _> or single characters, comma-separated (ctrl-p,ctrl-q)",
                    "invalid detach key {k:?} in --detach-keys {text:?}"
                )
            })
        })
        .collect()
}

/// Finds the detach sequence in a stream of input: bytes that could start it are held back
/// until the sequence completes (nothing of it is passed on) or breaks (they are passed on).
struct EscapeWatch {
    keys: Vec<u8>,
    matched: usize,
}

impl EscapeWatch {
    fn new(keys: Vec<u8>) -> EscapeWatch {
        EscapeWatch { keys, matched: 0 }
    }

    /// The bytes to pass on, and whether the sequence was typed.
    fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut pass = Vec::with_capacity(input.len());
        for &b in input {
            if self.keys.is_empty() {
                pass.push(b);
                continue;
            }
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return (pass, true);
                }
                continue;
            }
            pass.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
                if self.keys.len() == 1 {
                    self.matched = 0;
                    return (pass, true);
                }
            } else {
                pass.push(b);
            }
        }
        (pass, false)
    }
}

pub fn restart(root: Option<PathBuf>, a: StopArgs) -> miette::Result<()> {
    let store = open_store(root)?;
    for name in &a.containers {
        let record = container::find(&store, name)?;
        container::stop(&store, &record, record.stop_timeout(a.time))?;
        start_one(&store, name)?;
        println!("{name}");
    }
    Ok(())
}

pub fn kill(root: Option<PathBuf>, a: KillArgs) -> miette::Result<()> {
    let store = open_store(root)?;
    let sig = signal(&a.signal)?;
    for name in &a.containers {
        let record = container::find(&store, name)?;
        container::kill(&store, &record, sig)?;
        println!("{name}");
    }
    Ok(())
}

pub fn wait(root: Option<PathBuf>, a: ContainersArgs) -> miette::Result<ExitCode> {
    let store = open_store(root)?;
    for name in &a.containers {
        let record = container::find(&store, name)?;
        let code = container::wait(&store, &record)?;
        println!("{code}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The descriptor `exec --kiln-ready-fd` reports its start on.
const EXEC_READY_FD: i32 = 3;

/// `kiln exec -d`: the same exec run by a kiln of its own (a new session, standard streams
/// on /dev/null), which holds the process until it ends as a foreground exec does; this
/// one returns once it has started, with its failure's status if it did not.
fn exec_detached(store: &Store, a: &ExecArgs) -> miette::Result<ExitCode> {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| miette::miette!("cannot find kiln: {e}"))?;
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| miette::miette!("pipe: {}", e.desc()))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--root")
        .arg(store.root())
        .args(["exec", "--kiln-ready-fd"]);
    for e in a.env.iter().filter_map(|e| super::run::env_entry(e)) {
        cmd.arg("-e").arg(e);
    }
    if let Some(u) = &a.user {
        cmd.arg("-u").arg(u);
    }
    if let Some(w) = &a.workdir {
        cmd.arg("-w").arg(w);
    }
    cmd.args(&a.container_and_command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let fd = ready_w.as_raw_fd();
    // SAFETY: between fork and exec only async-signal-safe calls (fcntl, dup2, setsid) on a
    // descriptor that stays open until exec.
    unsafe {
        cmd.pre_exec(move || {
            let high = nix::libc::fcntl(fd, nix::libc::F_DUPFD_CLOEXEC, 10);
            if high < 0 || nix::libc::dup2(high, EXEC_READY_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            nix::libc::setsid();
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(|e| miette::miette!("cannot start the detached exec: {e}"))?;
    drop(ready_w);
    let mut text = String::new();
    let _ = std::fs::File::from(ready_r).read_to_string(&mut text);
    match text.split_once(' ') {
        None if text == "ok" => Ok(ExitCode::SUCCESS),
        Some((code, message)) => {
            eprintln!("kiln exec: {message}");
            Ok(ExitCode::from(code.parse::<u8>().unwrap_or(125)))
        }
        None => miette::bail!("the detached exec ended before starting its command"),
    }
}

/// `exec --kiln-ready-fd`: tell the `exec -d` that started this one how the start went.
fn report_ready(started: &Result<kiln_runtime::sandbox::Container, SandboxError>) {
    use std::os::fd::FromRawFd;
    // Only a descriptor that is open (the pipe `exec_detached` put there) is written.
    if nix::fcntl::fcntl(EXEC_READY_FD, nix::fcntl::FcntlArg::F_GETFD).is_err() {
        return;
    }
    // SAFETY: fd 3 is the ready pipe exec_detached set up for this process; owned from here.
    let mut f = unsafe { std::fs::File::from_raw_fd(EXEC_READY_FD) };
    let text = match started {
        Ok(_) => "ok".to_string(),
        Err(SandboxError::Start { message, code }) => format!("{code} {message}"),
        Err(e) => format!("125 {e}"),
    };
    let _ = f.write_all(text.as_bytes());
}

pub fn exec(root: Option<PathBuf>, a: ExecArgs) -> miette::Result<ExitCode> {
    let store = open_store(root)?;
    let name = &a.container_and_command[0];
    let record = container::find(&store, name)?;
    let Some(init_pid) = record.init_pid.filter(|_| record.running()) else {
        return Err(container::ContainerError::NotRunning(name.clone()).into());
    };
    if record.paused() {
        return Err(container::ContainerError::Paused(name.clone()).into());
    }
    if a.detach {
        return exec_detached(&store, &a);
    }
    let mut spec = record.spec.clone();
    spec.process.args = a.container_and_command[1..].to_vec();
    let extra: Vec<String> = a
        .env
        .iter()
        .filter_map(|e| super::run::env_entry(e))
        .collect();
    spec.process.env = kiln_runtime::sandbox::spec::container_env(&spec.process.env, &extra, "");
    if let Some(u) = &a.user {
        spec.process.user = u.clone();
    }
    if let Some(w) = &a.workdir {
        spec.process.cwd = w.clone();
    }
    spec.process.terminal = a.tty;
    let streams = Streams {
        stdin: if a.interactive && !a.tty {
            std::process::Stdio::inherit()
        } else {
            std::process::Stdio::null()
        },
        stdout: std::process::Stdio::inherit(),
        stderr: std::process::Stdio::inherit(),
    };
    let launcher = Launcher::current().map_err(container::ContainerError::from)?;
    let exec = ExecSpec { init_pid, spec };
    let started = launcher.exec(&exec, streams);
    if a.ready_fd {
        report_ready(&started);
    }
    let result = started.and_then(|mut c| {
        let raw;
        let relay = match c.terminal.take() {
            Some(master) => {
                raw = kiln_runtime::sandbox::tty::RawMode::enter(0);
                let input = a.interactive;
                Some(std::thread::spawn(move || {
                    kiln_runtime::sandbox::tty::relay(master, input)
                }))
            }
            None => {
                raw = None;
                None
            }
        };
        let exit = c.wait();
        if let Some(r) = relay {
            let _ = r.join();
        }
        drop(raw);
        exit
    });
    let code = match result {
        Ok(exit) => exit.code,
        Err(SandboxError::Start { message, code }) => {
            eprintln!("kiln exec: {message}");
            code
        }
        Err(e) => return Err(container::ContainerError::from(e).into()),
    };
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

const NEVER: &str = "0001-01-01T00:00:00Z";

/// `kiln inspect` of a container, in docker's shape for the common fields.
pub fn inspect_json(store: &Store, r: &Record) -> Value {
    let volumes = store.root().join("volumes");
    let mounts: Vec<Value> = r
        .spec
        .mounts
        .iter()
        .filter_map(|m| {
            use kiln_runtime::sandbox::spec::MountKind;
            let rw = !m.readonly;
            let mode = if m.readonly { "ro" } else { "" };
            match &m.kind {
                MountKind::Bind { source, .. } => match source.strip_prefix(&volumes) {
                    Ok(rel) => Some(json!({
                        "Type": "volume",
                        "Name": rel.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned()),
                        "Source": source,
                        "Destination": m.target,
                        "Driver": "local",
                        "Mode": if m.readonly { "ro" } else { "z" },
                        "RW": rw,
                        "Propagation": "",
                    })),
                    Err(_) => Some(json!({
                        "Type": "bind",
                        "Source": source,
                        "Destination": m.target,
                        "Mode": mode,
                        "RW": rw,
                        "Propagation": "rprivate",
                    })),
                },
                MountKind::Tmpfs { .. } => Some(json!({
                    "Type": "tmpfs",
                    "Source": "",
                    "Destination": m.target,
                    "Mode": mode,
                    "RW": rw,
                    "Propagation": "",
                })),
                _ => None,
            }
        })
        .collect();
    let args = &r.spec.process.args;
    let res = &r.spec.resources;
    let max_retry = match r.restart {
        container::RestartPolicy::OnFailure { max } => max,
        _ => 0,
    };
    let mut v = json!({
        "Id": r.id,
        "Created": r.created,
        "Path": args.first(),
        "Args": args.get(1..).unwrap_or(&[]),
        "State": {
            "Status": state_name(r),
            "Running": r.held(),
            "Paused": r.running() && r.paused(),
            "Restarting": r.state == State::Restarting,
            "OOMKilled": r.oom_killed,
            "Dead": false,
            "Pid": if r.running() { r.init_pid.unwrap_or(0) } else { 0 },
            "ExitCode": r.exit_code.unwrap_or(0),
            "Error": r.error.clone().unwrap_or_default(),
            "StartedAt": r.started_at.clone().unwrap_or_else(|| NEVER.into()),
            "FinishedAt": r.finished_at.clone().unwrap_or_else(|| NEVER.into()),
        },
        "Image": r.image_id,
        "LogPath": if r.supervised || r.log_path(store).exists() { r.log_path(store).display().to_string() } else { String::new() },
        "Name": format!("/{}", r.name),
        "RestartCount": r.restart_count,
        "HostConfig": {
            "AutoRemove": r.auto_remove,
            "NetworkMode": match (&r.spec.network, &r.network) {
                (_, Some(net)) => net.clone(),
                (kiln_runtime::sandbox::spec::Network::None, None) => "none".to_string(),
                (kiln_runtime::sandbox::spec::Network::Host, None) => "host".to_string(),
                (kiln_runtime::sandbox::spec::Network::Join { path }, None) => format!("container:{}", path.display()),
            },
            "ReadonlyRootfs": r.spec.rootfs.readonly,
            "Memory": res.memory.unwrap_or(0),
            // docker's default: as much swap as memory.
            "MemorySwap": match (res.memory, res.memory_swap) {
                (_, Some(s)) => s,
                (Some(m), None) => 2 * m,
                (None, None) => 0,
            },
            "NanoCpus": res.nano_cpus.unwrap_or(0),
            "CpuShares": res.cpu_shares.unwrap_or(0),
            "CpuQuota": res.cpu_quota.unwrap_or(0),
            "CpuPeriod": res.cpu_period.unwrap_or(0),
            "PidsLimit": res.pids_limit,
            "Init": r.spec.init,
            "RestartPolicy": {"Name": r.restart.name(), "MaximumRetryCount": max_retry},
            "LogConfig": {
                "Type": "json-file",
                "Config": match r.log.max_size {
                    Some(size) => json!({"max-size": size.to_string(), "max-file": r.log.max_file.to_string()}),
                    None => json!({}),
                },
            },
        },
        "Mounts": mounts,
        "Config": {
            "Hostname": r.spec.hostname,
            "User": r.spec.process.user,
            "Tty": r.spec.process.terminal,
            "Env": r.spec.process.env,
            "Cmd": r.cmd,
            "Image": r.image,
            "WorkingDir": r.spec.process.cwd,
            "Entrypoint": if r.entrypoint.is_empty() { Value::Null } else { json!(r.entrypoint) },
            "StopSignal": if r.stop_signal.is_empty() { Value::Null } else { json!(r.stop_signal) },
            "Labels": r.labels,
        },
    });
    v["NetworkSettings"] = network_settings(store, r);
    v["HostConfig"]["PortBindings"] = port_map(r, |p| json!(p.host_ip));
    v["HostConfig"]["Privileged"] = json!(r.spec.privileged);
    v["HostConfig"]["ShmSize"] = json!(r.spec.limits.shm_bytes());
    v["HostConfig"]["ExtraHosts"] = if r.extra_hosts.is_empty() {
        Value::Null
    } else {
        json!(r.extra_hosts)
    };
    v["HostConfig"]["Ulimits"] = if r.spec.limits.ulimits.is_empty() {
        Value::Null
    } else {
        json!(r.spec.limits.ulimits)
    };
    v["HostConfig"]["PidMode"] = json!(match &r.spec.pid {
        kiln_runtime::sandbox::spec::PidNamespace::Private => String::new(),
        kiln_runtime::sandbox::spec::PidNamespace::Host => "host".into(),
        kiln_runtime::sandbox::spec::PidNamespace::Join { path } => pid_owner(store, path),
    });
    v["Config"]["ExposedPorts"] = exposed_ports(store, r);
    v["Config"]["Volumes"] = anonymous_targets(store, r);
    v["Config"]["OpenStdin"] = json!(r.open_stdin);
    if let Some(t) = r.stop_timeout {
        v["Config"]["StopTimeout"] = json!(t);
    }
    if let Some(h) = &r.healthcheck {
        v["Config"]["Healthcheck"] = json!(h);
    }
    // docker's State.Health, as the supervisor's health thread last wrote it.
    if let Some(h) = r
        .healthcheck
        .as_ref()
        .and_then(|_| container::health::read(&r.dir(store)))
    {
        v["State"]["Health"] = json!(h);
    }
    v
}

/// `container:ID` for `--pid container:NAME`: the container whose init's namespace `path` is
/// (`/proc/PID/ns/pid`, as the run was given it); the path itself once that one is gone.
fn pid_owner(store: &Store, path: &std::path::Path) -> String {
    let owner = container::list(store).ok().and_then(|all| {
        all.into_iter().find(|o| {
            o.init_pid
                .is_some_and(|pid| path == std::path::Path::new(&format!("/proc/{pid}/ns/pid")))
        })
    });
    match owner {
        Some(o) => format!("container:{}", o.id),
        None => format!("container:{}", path.display()),
    }
}

/// Published ports keyed as docker keys them (`80/tcp`), each with its bindings; `host_ip`
/// is how a binding shows its address (given, for PortBindings; shown, for Ports).
fn port_map(r: &Record, host_ip: impl Fn(&kiln_runtime::sandbox::spec::Port) -> Value) -> Value {
    let mut out = serde_json::Map::new();
    for p in &r.spec.ports {
        let binding = json!({"HostIp": host_ip(p), "HostPort": p.host_port.to_string()});
        match out.entry(p.container_key()).or_insert_with(|| json!([])) {
            Value::Array(list) => list.push(binding),
            other => *other = json!([binding]),
        }
    }
    Value::Object(out)
}

/// docker's NetworkSettings, for kiln's networks: one entry under Networks for the
/// container's network (`none` for its own loopback, `host`, or a kiln network, on which
/// a member is reached at 127.0.0.1 by its aliases and short ID); nothing for
/// `container:NAME`, as docker. Ports while it runs (its relays live only then).
fn network_settings(store: &Store, r: &Record) -> Value {
    use kiln_runtime::sandbox::spec::Network;
    let running = r.running();
    let endpoint = |id: &str, address: &str, prefix: u32, aliases: Value| {
        json!({
            "IPAMConfig": null, "Links": null, "Aliases": aliases, "NetworkID": id,
            "EndpointID": "", "Gateway": "", "IPAddress": address, "IPPrefixLen": prefix,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "MacAddress": "", "DriverOpts": null,
        })
    };
    let mut networks = serde_json::Map::new();
    let mut sandbox_key = String::new();
    match (&r.spec.network, &r.network) {
        (_, Some(name)) => {
            let net = container::network::inspect(store, name).ok();
            let mut aliases = r.aliases.clone();
            aliases.push(r.id[..12].to_string());
            let id = net.as_ref().map(|n| n.id.clone()).unwrap_or_default();
            networks.insert(name.clone(), endpoint(&id, "127.0.0.1", 8, json!(aliases)));
            if let (true, Some(net)) = (running, net) {
                sandbox_key = net.netns(store).display().to_string();
            }
        }
        (Network::Host, None) => {
            networks.insert("host".into(), endpoint("", "", 0, Value::Null));
        }
        (Network::None, None) => {
            networks.insert("none".into(), endpoint("", "", 0, Value::Null));
            if let (true, Some(pid)) = (running, r.init_pid) {
                sandbox_key = format!("/proc/{pid}/ns/net");
            }
        }
        (Network::Join { .. }, None) => {}
    }
    json!({
        "Bridge": "", "SandboxID": "", "HairpinMode": false, "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": if running { port_map(r, |p| json!(p.shown_host_ip())) } else { json!({}) },
        "SandboxKey": sandbox_key, "SecondaryIPAddresses": null, "SecondaryIPv6Addresses": null,
        "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
        "Networks": networks,
    })
}

/// docker's Config.ExposedPorts: the image's EXPOSEd ports and the published ones (null
/// when there are none, as docker's).
fn exposed_ports(store: &Store, r: &Record) -> Value {
    let mut out = serde_json::Map::new();
    // The image may have been removed since; then only the published ports are known.
    let config = store
        .read_blob(&r.image_id)
        .ok()
        .and_then(|b| serde_json::from_slice::<kiln_runtime::oci::ImageConfig>(&b).ok());
    if let Some(config) = config {
        for k in config.config.exposed_ports.keys() {
            let key = if k.contains('/') {
                k.clone()
            } else {
                format!("{k}/tcp")
            };
            out.insert(key, json!({}));
        }
    }
    for p in &r.spec.ports {
        out.insert(p.container_key(), json!({}));
    }
    if out.is_empty() {
        Value::Null
    } else {
        Value::Object(out)
    }
}

/// docker's Config.Volumes: the targets of the container's anonymous volumes (`-v /DST` and
/// the image's VOLUMEs); null when there are none.
fn anonymous_targets(store: &Store, r: &Record) -> Value {
    let targets = container::anonymous_volumes_by_target(store, r);
    if targets.is_empty() {
        return Value::Null;
    }
    Value::Object(targets.into_keys().map(|t| (t, json!({}))).collect())
}

/// `kiln diff CONTAINER`: the container's changes, docker's `A|C|D PATH` lines.
pub fn diff(root: Option<PathBuf>, a: crate::cli::DiffArgs) -> miette::Result<()> {
    let store = open_store(root)?;
    let record = container::find(&store, &a.a)?;
    let changes = container::changes::changes(&store, &record)?;
    if a.json {
        let list: Vec<Value> = changes
            .iter()
            .map(|c| json!({"Kind": c.kind.to_string(), "Path": c.path}))
            .collect();
        println!("{}", Value::Array(list));
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    for c in changes {
        let _ = writeln!(out, "{} {}", c.kind, c.path);
    }
    Ok(())
}

/// `kiln cp`: exactly one side names a container (`NAME:PATH`); a host path with a colon
/// must start with `/` or `./`, as with docker.
pub fn cp(root: Option<PathBuf>, a: crate::cli::CpArgs) -> miette::Result<()> {
    let store = open_store(root)?;
    let split = |arg: &str| -> Option<(String, String)> {
        if arg.starts_with('/') || arg.starts_with('.') {
            return None;
        }
        arg.split_once(':')
            .map(|(c, p)| (c.to_string(), p.to_string()))
    };
    match (split(&a.src), split(&a.dest)) {
        (Some((c, path)), None) => {
            let record = container::find(&store, &c)?;
            container::changes::copy_out(
                &record,
                &path,
                std::path::Path::new(&a.dest),
                a.follow_link,
            )?;
        }
        (None, Some((c, path))) => {
            let record = container::find(&store, &c)?;
            container::changes::copy_in(&record, std::path::Path::new(&a.src), &path)?;
        }
        _ => {
            return Err(ContainersError::Value {
                flag: "cp",
                value: format!("{} {}", a.src, a.dest),
                help: "name the container on exactly one side: kiln cp NAME:/path dest, or kiln cp src NAME:/path",
            }
            .into())
        }
    }
    Ok(())
}

/// Instructions `commit -c` accepts (docker's list).
const COMMIT_CHANGES: &[&str] = &[
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "LABEL",
    "ONBUILD",
    "USER",
    "VOLUME",
    "WORKDIR",
    "STOPSIGNAL",
    "HEALTHCHECK",
];

/// The one image the `-c` changes are lowered on: the container's.
struct CommitBase(kiln_compiler::plan::ResolvedImage);

impl kiln_compiler::plan::ImageResolver for CommitBase {
    fn resolve(
        &self,
        _reference: &str,
    ) -> Result<Option<kiln_compiler::plan::ResolvedImage>, kiln_compiler::plan::ImageLookupError>
    {
        Ok(Some(self.0.clone()))
    }
}

/// `kiln commit`: the `-c` instructions are lowered by the compiler as a Dockerfile's
/// `FROM <the container's image>` stage would be, so they mean what they mean in a build;
/// the runtime makes the layer and the image.
pub fn commit(root: Option<PathBuf>, a: crate::cli::CommitArgs) -> miette::Result<()> {
    use kiln_compiler::plan::ImageResolver;
    let store = open_store(root)?;
    let record = container::find(&store, &a.container)?;
    for c in &a.changes {
        let word = c
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        if !COMMIT_CHANGES.contains(&word.as_str()) {
            return Err(ContainersError::Value {
                flag: "-c",
                value: c.clone(),
                help: "commit -c takes CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL or HEALTHCHECK",
            }
            .into());
        }
    }
    let base = ImageResolver::resolve(&store, &record.image_id.to_string())
        .map_err(|e| miette::miette!("{e}"))?
        .ok_or_else(|| container::ContainerError::NoContainer(record.image.clone()))?;
    let epoch =
        kiln_compiler::source_date_epoch::from_environment().map_err(|e| miette::miette!("{e}"))?;
    let text = format!("FROM base\n{}\n", a.changes.join("\n"));
    let tree = kiln_compiler::syntax::parse(&text).map_err(|e| miette::miette!("-c: {e}"))?;
    let opts = kiln_compiler::plan::BuildOptions {
        source_date_epoch: epoch,
        skip_context: true,
        ..Default::default()
    };
    let lowered = kiln_compiler::dockerfile::lower(
        &tree,
        &text,
        kiln_compiler::context::ContextIndex::default(),
        &kiln_compiler::context::StatCache::default(),
        &opts,
        &CommitBase(base),
    )
    .map_err(|e| miette::miette!("-c: {e}"))?;
    let (_, image_op) = lowered.plan.target_image();
    let tag = match &a.image {
        Some(t) => Some(
            kiln_runtime::image::ImageName::parse(t).map_err(|e| miette::miette!("{t}: {e}"))?,
        ),
        None => None,
    };
    let image = container::changes::commit(
        &store,
        &record,
        &container::changes::CommitOptions {
            config: image_op.config.clone(),
            message: a.message.unwrap_or_default(),
            author: a.author.unwrap_or_default(),
            tag,
            epoch: epoch.unwrap_or(0),
        },
    )?;
    println!("{}", image.id());
    Ok(())
}

pub fn rename(root: Option<PathBuf>, a: crate::cli::RenameArgs) -> miette::Result<()> {
    let store = open_store(root)?;
    let record = container::find(&store, &a.container)?;
    container::rename(&store, &record, &a.new_name)?;
    Ok(())
}

/// `kiln port`: docker's `80/tcp -> 127.0.0.1:8080` lines (or just the host side for one
/// port).
pub fn port(root: Option<PathBuf>, a: crate::cli::PortArgs) -> miette::Result<()> {
    let store = open_store(root)?;
    let record = container::find(&store, &a.container)?;
    let mut out = std::io::stdout().lock();
    let mut found = false;
    for p in &record.spec.ports {
        let ip = p.shown_host_ip();
        let inner = p.container_key();
        match &a.port {
            Some(want) => {
                let want = if want.contains('/') {
                    want.clone()
                } else {
                    format!("{want}/tcp")
                };
                if want == inner {
                    found = true;
                    let _ = writeln!(out, "{ip}:{}", p.host_port);
                }
            }
            None => {
                found = true;
                let _ = writeln!(out, "{inner} -> {ip}:{}", p.host_port);
            }
        }
    }
    if let (Some(want), false) = (&a.port, found) {
        return Err(miette::miette!(
            "no public port '{want}' published for {}",
            record.name
        ));
    }
    Ok(())
}

/// `kiln container prune`: every container that is not running or restarting, removed.
pub fn container(root: Option<PathBuf>, c: crate::cli::ContainerCommand) -> miette::Result<()> {
    let crate::cli::ContainerCommand::Prune { force: _ } = c;
    let store = open_store(root)?;
    let mut removed = Vec::new();
    for r in container::list(&store)? {
        if !r.held() {
            container::remove(&store, &r)?;
            removed.push(r.id);
        }
    }
    let mut out = std::io::stdout().lock();
    if !removed.is_empty() {
        let _ = writeln!(out, "Deleted Containers:");
        for id in &removed {
            let _ = writeln!(out, "{id}");
        }
        let _ = writeln!(out);
    }
    Ok(())
}

/// `kiln top`: the host's `ps` (options as given, `-ef` by default), as docker runs it,
/// keeping the header and the processes in the container's pid namespace.
pub fn top(root: Option<PathBuf>, a: crate::cli::TopArgs) -> miette::Result<()> {
    let store = open_store(root)?;
    let record = container::find(&store, &a.container)?;
    let Some(init_pid) = record.init_pid.filter(|_| record.running()) else {
        return Err(container::ContainerError::NotRunning(a.container.clone()).into());
    };
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let container_ns = ns(&init_pid.to_string())
        .ok_or_else(|| container::ContainerError::NotRunning(a.container.clone()))?;
    let pids: std::collections::HashSet<String> = std::fs::read_dir("/proc")
        .map_err(|e| miette::miette!("/proc: {e}"))?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        .filter(|p| ns(p).as_ref() == Some(&container_ns))
        .collect();
    let options = if a.ps_options.is_empty() {
        vec!["-ef".to_string()]
    } else {
        a.ps_options.clone()
    };
    let out = std::process::Command::new("ps")
        .args(&options)
        .output()
        .map_err(|e| miette::miette!("running ps: {e}"))?;
    if !out.status.success() {
        return Err(miette::miette!(
            "ps {}: {}",
            options.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let Some(column) = header.split_whitespace().position(|h| h == "PID") else {
        return Err(miette::miette!(
            "ps {} prints no PID column",
            options.join(" ")
        ));
    };
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{header}");
    for line in lines {
        if line
            .split_whitespace()
            .nth(column)
            .is_some_and(|p| pids.contains(p))
        {
            let _ = writeln!(stdout, "{line}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod attach_tests {
    use super::*;

    #[test]
    fn detach_keys_as_docker_spells_them() {
        assert_eq!(detach_keys("ctrl-p,ctrl-q").unwrap(), vec![0x10, 0x11]);
        assert_eq!(detach_keys("a").unwrap(), vec![b'a']);
        assert_eq!(detach_keys("ctrl-@,ctrl-_").unwrap(), vec![0, 0x1f]);
        assert!(detach_keys("ctrl-1").is_err());
        assert!(detach_keys("ab").is_err());
    }

    #[test]
    fn the_sequence_is_held_back_and_a_broken_one_passed_on() {
        let mut w = EscapeWatch::new(vec![0x10, 0x11]);
        assert_eq!(w.feed(b"ls\r"), (b"ls\r".to_vec(), false));
        // A ctrl-p then something else: both go through.
        assert_eq!(w.feed(&[0x10]), (Vec::new(), false));
        assert_eq!(w.feed(b"x"), (vec![0x10, b'x'], false));
        // ctrl-p ctrl-p ctrl-q: the first ctrl-p goes through, the sequence detaches.
        assert_eq!(
            w.feed(&[b'a', 0x10, 0x10, 0x11, b'z']),
            (vec![b'a', 0x10], true)
        );
        let mut one = EscapeWatch::new(vec![b'q']);
        assert_eq!(one.feed(b"abq"), (b"ab".to_vec(), true));
    }
}
