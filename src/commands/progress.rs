//! Rendering build progress: on a terminal, a live block of the steps in flight with running
//! timers above which finished steps scroll (like BuildKit's display); plain lines when not a
//! terminal or with `--progress plain`; JSON events, one a line, with `--progress json`.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln_compiler::plan::explain::{self, Reason};
use kiln_runtime::build::{Event, Progress};

use crate::cli::Progress as Mode;

/// Steps in flight, and how many lines of the live block are on screen.
#[derive(Default)]
struct Live {
    running: Vec<(usize, String, Instant)>,
    /// The last lines of output of each running step, shown under it.
    tails: std::collections::HashMap<usize, Vec<String>>,
    drawn: usize,
}

/// Lines of a running step's output kept in the live block.
const TAIL: usize = 4;

pub struct Printer {
    mode: Mode,
    started: Instant,
    live: Arc<Mutex<Live>>,
    stop: Arc<AtomicBool>,
    /// `--explain`: why each step (by node id) may not come from the cache.
    reasons: Option<std::collections::BTreeMap<usize, Vec<Reason>>>,
    /// Steps the build took from the cache (for the build record).
    cached: Mutex<Vec<usize>>,
    /// `-q`: no progress at all, and only the image ID (on stdout) at the end.
    quiet: bool,
}

impl Printer {
    pub fn new(mode: Mode) -> Printer {
        let mode = match mode {
            Mode::Auto if std::io::stderr().is_terminal() => Mode::Auto,
            Mode::Auto => Mode::Plain,
            m => m,
        };
        let printer = Printer {
            mode,
            started: Instant::now(),
            live: Arc::new(Mutex::new(Live::default())),
            stop: Arc::new(AtomicBool::new(false)),
            reasons: None,
            cached: Mutex::new(Vec::new()),
            quiet: false,
        };
        if mode == Mode::Auto {
            // Redraw the running timers while long steps (a big COPY) work.
            let (live, stop) = (printer.live.clone(), printer.stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    if let Ok(mut l) = live.lock() {
                        if !l.running.is_empty() && !stop.load(Ordering::Relaxed) {
                            redraw(&mut l, None);
                        }
                    }
                }
            });
        }
        printer
    }

    /// Explain each step that runs with these reasons (`--explain`).
    pub fn with_reasons(mut self, reasons: std::collections::BTreeMap<usize, Vec<Reason>>) -> Self {
        self.reasons = Some(reasons);
        self
    }

    /// Print nothing while building and only the image ID at the end, as `docker build -q`
    /// does (errors still go to stderr).
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self.stop.store(true, Ordering::Relaxed);
        self
    }

    /// The ids of the steps taken from the cache so far.
    pub fn cached_steps(&self) -> Vec<usize> {
        self.cached.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The reason lines of a step that runs (`--explain` only).
    fn reason_lines(&self, id: usize) -> Option<(Vec<String>, &[Reason])> {
        let reasons = self.reasons.as_ref()?.get(&id)?;
        Some((explain::render_all(reasons), reasons))
    }

    /// The summary at the end (`plain`/`auto`), or a final JSON event.
    pub fn finish(&self, id: &str, tags: &[String], steps: usize, cached: usize) {
        self.stop.store(true, Ordering::Relaxed);
        let _guard = self.live.lock();
        let secs = self.started.elapsed().as_secs_f64();
        if self.quiet {
            println!("{id}");
            return;
        }
        match self.mode {
            Mode::Json => {
                let ev = serde_json::json!({"event": "image", "id": id, "tags": tags, "steps": steps, "cached": cached, "seconds": secs});
                println!("{ev}");
            }
            _ => {
                eprintln!("#done {steps} steps, {cached} cached, {secs:.2}s");
                eprintln!("writing image {id}");
                for t in tags {
                    eprintln!("naming to {t}");
                }
            }
        }
    }
}

impl Drop for Printer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The line a finished (or cached, or failed) step leaves behind.
fn final_line(event: &Event, color: bool) -> Option<String> {
    let (dim, blue, red, reset) = if color {
        ("\x1b[2m", "\x1b[34m", "\x1b[31m", "\x1b[0m")
    } else {
        ("", "", "", "")
    };
    Some(match event {
        Event::Start { .. } | Event::Log { .. } => return None,
        Event::Cached { id, stage, text } => format!("{blue}#{id} [{stage}] {text} CACHED{reset}"),
        Event::Done {
            id,
            stage,
            text,
            seconds,
            layer_bytes,
        } => {
            let size = layer_bytes
                .map(human_bytes)
                .unwrap_or_else(|| "no changes".into());
            format!("#{id} [{stage}] {text} {dim}DONE {seconds:.2}s ({size}){reset}")
        }
        Event::Error {
            id,
            stage,
            text,
            message,
        } => format!("{red}#{id} [{stage}] {text} ERROR: {message}{reset}"),
    })
}

/// Characters of an instruction shown in the live block (fits an 80-column terminal).
const LIVE_WIDTH: usize = 64;

/// Erase the live block, print `done` above it, draw the running steps again.
fn redraw(live: &mut Live, done: Option<&str>) {
    let mut err = std::io::stderr().lock();
    let mut out = String::new();
    if live.drawn > 0 {
        out.push_str(&format!("\x1b[{}F\x1b[J", live.drawn));
    }
    if let Some(line) = done {
        out.push_str(line);
        out.push('\n');
    }
    let mut rows = 0;
    for (id, label, since) in &live.running {
        // One terminal row per step, or the block's height would be miscounted: cut long
        // instructions (finished lines above the block may wrap freely).
        let short: String = if label.chars().count() > LIVE_WIDTH {
            label
                .chars()
                .take(LIVE_WIDTH - 1)
                .chain(std::iter::once('…'))
                .collect()
        } else {
            label.clone()
        };
        out.push_str(&format!(
            "\x1b[1m#{id} {short}\x1b[0m {:.1}s\n",
            since.elapsed().as_secs_f64()
        ));
        rows += 1;
        for line in live.tails.get(id).into_iter().flatten() {
            let short: String = line
                .chars()
                .filter(|c| !c.is_control())
                .take(LIVE_WIDTH + 8)
                .collect();
            out.push_str(&format!("\x1b[2m  {short}\x1b[0m\n"));
            rows += 1;
        }
    }
    live.drawn = rows;
    let _ = err.write_all(out.as_bytes());
    let _ = err.flush();
}

impl Progress for Printer {
    fn event(&self, event: Event) {
        let Ok(mut live) = self.live.lock() else {
            return;
        };
        if let Event::Cached { id, .. } = &event {
            if let Ok(mut c) = self.cached.lock() {
                c.push(*id);
            }
        }
        if self.quiet {
            return;
        }
        let why = match &event {
            Event::Start { id, .. } | Event::Done { id, .. } => self.reason_lines(*id),
            _ => None,
        };
        match self.mode {
            Mode::Json => {
                let mut value = serde_json::to_value(&event).unwrap_or_default();
                if let (Some((lines, reasons)), Some(obj)) = (&why, value.as_object_mut()) {
                    obj.insert("reason".into(), lines.join("\n").into());
                    obj.insert(
                        "causes".into(),
                        serde_json::to_value(reasons).unwrap_or_default(),
                    );
                }
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{value}");
            }
            Mode::Plain => {
                let line = match &event {
                    Event::Start { id, stage, text } => {
                        let mut line = format!("#{id} [{stage}] {text}");
                        for l in why.iter().flat_map(|(lines, _)| lines) {
                            line.push_str(&format!("\n#{id} why: {l}"));
                        }
                        line
                    }
                    Event::Cached { id, stage, text } => {
                        format!("#{id} [{stage}] {text}\n#{id} CACHED")
                    }
                    Event::Done {
                        id,
                        seconds,
                        layer_bytes,
                        ..
                    } => match layer_bytes {
                        Some(b) => format!("#{id} DONE {seconds:.2}s ({})", human_bytes(*b)),
                        None => format!("#{id} DONE {seconds:.2}s (no changes)"),
                    },
                    Event::Error { id, message, .. } => format!("#{id} ERROR: {message}"),
                    Event::Log { id, line } => {
                        format!("#{id} {:.3} {line}", self.started.elapsed().as_secs_f64())
                    }
                };
                eprintln!("{line}");
            }
            Mode::Auto => {
                match &event {
                    Event::Start { id, stage, text } => {
                        live.running
                            .push((*id, format!("[{stage}] {text}"), Instant::now()));
                        if let Some((lines, _)) = &why {
                            let text = lines
                                .iter()
                                .map(|l| format!("#{id} why: {l}"))
                                .collect::<Vec<_>>()
                                .join("\n");
                            redraw(&mut live, Some(&text));
                            return;
                        }
                    }
                    Event::Cached { id, .. } | Event::Done { id, .. } | Event::Error { id, .. } => {
                        live.running.retain(|(r, _, _)| r != id);
                        live.tails.remove(id);
                    }
                    Event::Log { id, line } => {
                        let tail = live.tails.entry(*id).or_default();
                        if tail.len() == TAIL {
                            tail.remove(0);
                        }
                        tail.push(line.clone());
                    }
                }
                let done = final_line(&event, true);
                redraw(&mut live, done.as_deref());
            }
        }
    }
}

pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{b}B")
    } else {
        format!("{v:.3}{}", UNITS[u]).replace(".000", "")
    }
}

/// Per-blob progress of a push or pull: on a terminal, a live block with one line per blob
/// in flight (bytes moved of its size) above which finished blobs scroll; otherwise one
/// line per finished blob. Both on stderr, in the build display's style.
pub struct TransferPrinter {
    /// Present on a terminal: blobs in flight (digest, done, size) and lines on screen.
    live: Option<Mutex<TransferLive>>,
    verb: &'static str,
}

#[derive(Default)]
struct TransferLive {
    blobs: Vec<(kiln_runtime::oci::Digest, u64, u64)>,
    drawn: usize,
}

impl TransferPrinter {
    /// `verb` names the transfer in flight: "Pushing", "Downloading".
    pub fn new(verb: &'static str, quiet: bool) -> TransferPrinter {
        let terminal = !quiet && std::io::stderr().is_terminal();
        TransferPrinter {
            live: terminal.then(|| Mutex::new(TransferLive::default())),
            verb,
        }
    }
}

impl kiln_runtime::registry::TransferProgress for TransferPrinter {
    fn event(&self, event: kiln_runtime::registry::TransferEvent) {
        use kiln_runtime::registry::TransferEvent as E;
        let line = match &event {
            E::Exists { digest } => Some(format!("{}: already exists", digest.short())),
            E::Mounted { digest, from } => Some(format!("{}: mounted from {from}", digest.short())),
            E::Done { digest } => Some(format!("{}: done", digest.short())),
            E::Retry {
                digest,
                attempt,
                error,
            } => Some(format!(
                "{}: attempt {attempt} failed ({error}); retrying",
                digest.short()
            )),
            E::Start { .. } | E::Bytes { .. } => None,
        };
        let Some(live) = &self.live else {
            if let Some(line) = line {
                eprintln!("{line}");
            }
            return;
        };
        let Ok(mut live) = live.lock() else { return };
        match &event {
            E::Start { digest, size } => live.blobs.push((digest.clone(), 0, *size)),
            E::Bytes { digest, done } => {
                if let Some(b) = live.blobs.iter_mut().find(|b| b.0 == *digest) {
                    b.1 = *done;
                }
            }
            E::Done { digest } | E::Exists { digest } | E::Mounted { digest, .. } => {
                live.blobs.retain(|b| b.0 != *digest)
            }
            E::Retry { .. } => {}
        }
        let mut out = String::new();
        if live.drawn > 0 {
            out.push_str(&format!("\x1b[{}F\x1b[J", live.drawn));
        }
        if let Some(line) = line {
            out.push_str(&line);
            out.push('\n');
        }
        for (digest, done, size) in &live.blobs {
            out.push_str(&format!(
                "\x1b[1m{}\x1b[0m {} {}/{}\n",
                digest.short(),
                self.verb,
                human_bytes(*done),
                human_bytes(*size)
            ));
        }
        live.drawn = live.blobs.len();
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(out.as_bytes());
        let _ = err.flush();
    }
}
