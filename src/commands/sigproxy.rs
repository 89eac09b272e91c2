//! docker's `--sig-proxy`: the signals a CLI attached to a container receives are passed on
//! to the container (`run` in the foreground, `attach`, `start -a`), as docker's CLI passes
//! every signal it can catch but SIGCHLD, SIGPIPE and SIGURG. Signals of kiln's own faults
//! (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS) keep their default action.
//!
//! Owns: which signals are proxied, blocking them and the one thread that takes them.
//! Must not: decide where a signal goes (the caller's `deliver` does); be started after
//! other threads exist (they would not inherit the mask, and could take a signal).

use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};

/// The signals docker's CLI passes on.
pub(crate) fn proxied() -> SigSet {
    use Signal::*;
    let mut set = SigSet::empty();
    for s in Signal::iterator() {
        let kept = matches!(
            s,
            SIGKILL
                | SIGSTOP
                | SIGCHLD
                | SIGPIPE
                | SIGURG
                | SIGSEGV
                | SIGBUS
                | SIGFPE
                | SIGILL
                | SIGTRAP
                | SIGSYS
        );
        if !kept {
            set.add(s);
        }
    }
    set
}

/// Block `set` in the calling thread (and so in every thread it starts later) and hand
/// each of its signals, as it arrives, to `deliver` on a thread of its own.
pub(crate) fn take(set: SigSet, mut deliver: impl FnMut(Signal) + Send + 'static) {
    let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
    std::thread::spawn(move || loop {
        if let Ok(sig) = set.wait() {
            deliver(sig);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_list() {
        let set = proxied();
        for s in [
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGUSR1,
            Signal::SIGHUP,
        ] {
            assert!(set.contains(s), "{s} is proxied");
        }
        for s in [
            Signal::SIGCHLD,
            Signal::SIGPIPE,
            Signal::SIGURG,
            Signal::SIGKILL,
        ] {
            assert!(!set.contains(s), "{s} is not proxied");
        }
    }
}
