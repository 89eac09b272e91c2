//! The host conditions `kiln build --check` changes for its second build, and running a
//! closure under them.
//!
//! Owns: what is varied and how. The umask (process-wide, restored afterwards; kiln's own
//! files and every RUN step inherit it), the CPUs the build and its RUN steps may use
//! (`sched_setaffinity`, so `nproc` in a step sees fewer), the number of rayon threads
//! (context hashing, parallel stages), the host name kiln and its sandbox monitors run under
//! (a private UTS namespace of the build's threads, root only), and the wall clock (the
//! second build starts in a later whole second than the first ended in, so every time a
//! step reads with one-second or finer resolution differs). The caller varies the rest: the
//! store path and the order independent stages start in (`StartOrder::Reversed`).
//! Must not: change anything that must stay (SOURCE_DATE_EPOCH, the build arguments, the
//! context), or leave a change behind when the closure returns.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::sys::stat::{umask, Mode};
use nix::unistd::Pid;
use serde::Serialize;

/// The host name the second build's threads see (when they can be given one).
pub const CHECK_HOSTNAME: &str = "kiln-check-second-build";

/// What was varied for the second build, and what could not be (with why).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Variation {
    /// rayon threads: first build, second build.
    pub threads: (usize, usize),
    /// CPUs the build may use: first build, second build.
    pub cpus: (usize, usize),
    /// umask in octal: first build, second build.
    pub umask: (String, String),
    /// The host name of the second build, when it was changed.
    pub hostname: Option<String>,
    /// Conditions that stayed the same, each with the reason.
    pub not_varied: Vec<String>,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum VaryError {
    #[error("cannot start the second build's threads: {0}")]
    Threads(String),
}

/// Waits until the wall clock is in a later whole second than now.
pub fn wait_for_next_second() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let rest =
        Duration::from_secs(1).saturating_sub(Duration::from_nanos(u64::from(now.subsec_nanos())));
    std::thread::sleep(rest + Duration::from_millis(5));
}

/// Runs `f` under changed host conditions (see the module docs) and reports what changed.
pub fn run_varied<T: Send>(f: impl FnOnce() -> T + Send) -> Result<(T, Variation), VaryError> {
    let mut variation = Variation::default();
    let first_threads = rayon::current_num_threads();
    let second_threads = if first_threads > 1 { 1 } else { 2 };
    variation.threads = (first_threads, second_threads);

    let first_umask = umask(Mode::from_bits_truncate(0o022));
    let second_umask = if first_umask.bits() == 0o077 {
        Mode::from_bits_truncate(0o002)
    } else {
        Mode::from_bits_truncate(0o077)
    };
    umask(second_umask);
    variation.umask = (
        format!("{:04o}", first_umask.bits()),
        format!("{:04o}", second_umask.bits()),
    );

    let result = std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let mut notes = Vec::new();
            let cpus = vary_cpus(&mut notes);
            let hostname = vary_hostname(&mut notes);
            // Worker threads are made here, so they inherit this thread's CPUs and host name.
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(second_threads)
                .thread_name(|i| format!("kiln-check-{i}"))
                .build()
                .map_err(|e| VaryError::Threads(e.to_string()))?;
            let out = pool.install(f);
            Ok::<_, VaryError>((out, cpus, hostname, notes))
        });
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    umask(first_umask);
    let (out, cpus, hostname, notes) = result?;
    variation.cpus = cpus;
    variation.hostname = hostname;
    variation.not_varied = notes;
    variation
        .not_varied
        .push("TZ and the rest of kiln's environment: RUN steps never see it".into());
    Ok((out, variation))
}

/// Restricts this thread to one of its CPUs; returns (before, after).
fn vary_cpus(notes: &mut Vec<String>) -> (usize, usize) {
    let this = Pid::from_raw(0);
    let Ok(set) = sched_getaffinity(this) else {
        notes.push("CPUs: cannot read the CPU affinity".into());
        return (0, 0);
    };
    let allowed: Vec<usize> = (0..CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .collect();
    let Some(&first) = allowed.first() else {
        return (0, 0);
    };
    if allowed.len() < 2 {
        notes.push("CPUs: only one CPU is available".into());
        return (1, 1);
    }
    let mut one = CpuSet::new();
    if one.set(first).is_err() || sched_setaffinity(this, &one).is_err() {
        notes.push("CPUs: cannot change the CPU affinity".into());
        return (allowed.len(), allowed.len());
    }
    (allowed.len(), 1)
}

/// Gives this thread a private UTS namespace with another host name (needs CAP_SYS_ADMIN).
fn vary_hostname(notes: &mut Vec<String>) -> Option<String> {
    let changed = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUTS)
        .and_then(|()| nix::unistd::sethostname(CHECK_HOSTNAME));
    match changed {
        Ok(()) => Some(CHECK_HOSTNAME.to_string()),
        Err(e) => {
            notes.push(format!("host name: cannot change it ({e}; needs root)"));
            None
        }
    }
}
