//! Rendering build progress: live lines on a terminal, plain lines otherwise, JSON events
//! with `--progress json`.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Instant;

use kiln_runtime::build::{Event, Progress};

use crate::cli::Progress as Mode;

pub struct Printer {
    mode: Mode,
    started: Instant,
    lock: Mutex<()>,
}

impl Printer {
    pub fn new(mode: Mode) -> Printer {
        let mode = match mode {
            Mode::Auto if std::io::stderr().is_terminal() => Mode::Auto,
            Mode::Auto => Mode::Plain,
            m => m,
        };
        Printer {
            mode,
            started: Instant::now(),
            lock: Mutex::new(()),
        }
    }

    /// A line of summary at the end (`plain`/`auto`), or a JSON event.
    pub fn finish(&self, id: &str, tags: &[String], steps: usize, cached: usize) {
        let _g = self.lock.lock();
        let secs = self.started.elapsed().as_secs_f64();
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

impl Progress for Printer {
    fn event(&self, event: Event) {
        let _g = self.lock.lock();
        if self.mode == Mode::Json {
            if let Ok(line) = serde_json::to_string(&event) {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
            }
            return;
        }
        let tty = self.mode == Mode::Auto;
        let (bold, dim, blue, reset) = if tty {
            ("\x1b[1m", "\x1b[2m", "\x1b[34m", "\x1b[0m")
        } else {
            ("", "", "", "")
        };
        let line = match &event {
            Event::Start { id, stage, text } => format!("{bold}#{id} [{stage}] {text}{reset}"),
            Event::Cached { id, stage, text } => {
                format!("{blue}#{id} [{stage}] {text}{reset}\n#{id} CACHED")
            }
            Event::Done {
                id,
                seconds,
                layer_bytes,
                ..
            } => match layer_bytes {
                Some(b) => format!("{dim}#{id} DONE {seconds:.2}s ({}){reset}", human_bytes(*b)),
                None => format!("{dim}#{id} DONE {seconds:.2}s (no changes){reset}"),
            },
            Event::Error { id, message, .. } => format!("#{id} ERROR: {message}"),
        };
        eprintln!("{line}");
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
