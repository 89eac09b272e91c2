//! Pseudo-terminals for `-t`. The container side opens the terminal in the container's own
//! devpts instance (so `tty` inside names a device that exists there), makes it the payload's
//! controlling terminal and stdin/out/err, and sends the master to kiln over the control
//! channel. kiln's side puts its own terminal in raw mode, copies bytes both ways and passes
//! window-size changes on.
//! Must not: read or write anything but the terminal's bytes.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::fcntl::OFlag;
use nix::sys::termios;

use super::channel::{self, Report, CONTROL_FD};

nix::ioctl_write_int_bad!(tiocsctty, libc::TIOCSCTTY);
nix::ioctl_read_bad!(tiocgwinsz, libc::TIOCGWINSZ, libc::winsize);
nix::ioctl_write_ptr_bad!(tiocswinsz, libc::TIOCSWINSZ, libc::winsize);

/// In the payload, after pivot_root: allocate the terminal and make it stdin/out/err.
pub fn attach_container_side() -> Result<(), String> {
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(|e| format!("opening /dev/ptmx: {}", e.desc()))?;
    nix::pty::grantpt(&master).map_err(|e| format!("grantpt: {}", e.desc()))?;
    nix::pty::unlockpt(&master).map_err(|e| format!("unlockpt: {}", e.desc()))?;
    let name = nix::pty::ptsname_r(&master).map_err(|e| format!("ptsname: {}", e.desc()))?;
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| format!("opening {name}: {}", e.desc()))?;
    channel::send(CONTROL_FD, &Report::Tty, Some(master.as_raw_fd()))
        .map_err(|e| format!("sending the terminal to kiln: {}", e.desc()))?;
    // Wait until kiln has set the window size, so the payload starts with the right one.
    let mut ack = [0u8; 1];
    let _ = nix::unistd::read(CONTROL_FD, &mut ack);
    drop(master);
    let _ = nix::unistd::setsid();
    // SAFETY: TIOCSCTTY on a terminal descriptor this process just opened.
    unsafe { tiocsctty(slave, 0) }.map_err(|e| format!("TIOCSCTTY: {}", e.desc()))?;
    for fd in 0..3 {
        nix::unistd::dup2(slave, fd).map_err(|e| format!("dup2: {}", e.desc()))?;
    }
    if slave > 2 {
        let _ = nix::unistd::close(slave);
    }
    Ok(())
}

/// Copy `from`'s window size onto `to` (kiln's terminal onto the container's).
pub fn copy_window_size(from: RawFd, to: RawFd) {
    // SAFETY: winsize is plain data; both ioctls read or write only it.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if tiocgwinsz(from, &mut ws).is_ok() {
            let _ = tiocswinsz(to, &ws);
        }
    }
}

/// kiln's terminal in raw mode until dropped.
pub struct RawMode {
    fd: RawFd,
    saved: termios::Termios,
}

impl RawMode {
    /// Raw mode on `fd` when it is a terminal; `None` otherwise.
    pub fn enter(fd: RawFd) -> Option<RawMode> {
        // SAFETY: the descriptor is only borrowed for the calls below.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let saved = termios::tcgetattr(borrowed).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(borrowed, termios::SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: as in `enter`.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.fd) };
        let _ = termios::tcsetattr(borrowed, termios::SetArg::TCSANOW, &self.saved);
    }
}

/// Copy the terminal's output to kiln's stdout until the payload closes it, and (with
/// `input`) kiln's stdin to the terminal. Returns when the output side ends.
pub fn relay(master: OwnedFd, input: bool) {
    let out_fd = master.as_raw_fd();
    if input {
        let dup = nix::unistd::dup(out_fd).ok();
        std::thread::spawn(move || {
            let Some(fd) = dup else { return };
            // SAFETY: `dup` returned a descriptor this thread now owns.
            let mut to = unsafe { std::fs::File::from_raw_fd(fd) };
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 {
                    // End of input: send the terminal's EOF character, as a user would.
                    let _ = to.write_all(&[4]);
                    break;
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    }
    let mut from = std::fs::File::from(master);
    let mut stdout = std::io::stdout().lock();
    let mut buf = [0u8; 8192];
    // EIO is how a master reports that the last slave closed.
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || stdout.write_all(&buf[..n]).is_err() {
            break;
        }
        let _ = stdout.flush();
    }
}
