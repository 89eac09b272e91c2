//! The control channel between kiln and a container's processes: one Unix stream socket.
//! kiln sends the spec (a length-prefixed JSON document); the container side sends
//! [`Report`]s back as JSON lines, the pseudo-terminal's master descriptor riding along with
//! [`Report::Tty`]. The socket also carries liveness: when kiln goes away, even by SIGKILL,
//! its end closes and the monitor kills the container.
//! Must not: decide what a report means (the launcher and the init do).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::{Deserialize, Serialize};

use super::spec::ContainerSpec;

/// The descriptor number the control socket has in the container's processes.
pub const CONTROL_FD: RawFd = 3;

/// Largest spec accepted (heredoc scripts and secrets ride in it).
const MAX_SPEC: u32 = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "report", rename_all = "snake_case")]
pub enum Report {
    /// Mount points set-up had to create inside the root (paths inside it).
    Stubs { paths: Vec<String> },
    /// The master side of the payload's terminal is attached; kiln answers with one byte once
    /// it has set the window size.
    Tty,
    /// The container could not start: the step and why; `code` is the exit status Docker
    /// gives that failure (126 not executable, 127 not found, 125 set-up).
    Failed { message: String, code: i32 },
    /// PID 1 exists: its pid in kiln's pid namespace (signals and `exec` reach the container
    /// through it). Sent by the monitor right after the fork, so it may come before or after
    /// [`Report::Stubs`].
    Pid { pid: u32 },
    /// The payload has exec'd (its command exists and runs). Not sent for `exec`.
    Started,
    /// The payload (PID 1) ended.
    Exited { code: i32, signal: Option<i32> },
}

/// What `kiln exec` sends: the container's spec with the exec's process in it, and the
/// container's PID 1 (in kiln's pid namespace), whose namespaces the process joins.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecSpec {
    pub init_pid: u32,
    pub spec: ContainerSpec,
}

pub fn write_spec(w: impl Write, spec: &ContainerSpec) -> std::io::Result<()> {
    write_json(w, spec)
}

pub fn write_exec(w: impl Write, exec: &ExecSpec) -> std::io::Result<()> {
    write_json(w, exec)
}

fn write_json(mut w: impl Write, value: &impl Serialize) -> std::io::Result<()> {
    let json = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    w.write_all(&(json.len() as u32).to_le_bytes())?;
    w.write_all(&json)
}

pub fn read_spec(r: impl Read) -> std::io::Result<ContainerSpec> {
    read_json(r)
}

pub fn read_exec(r: impl Read) -> std::io::Result<ExecSpec> {
    read_json(r)
}

fn read_json<T: serde::de::DeserializeOwned>(mut r: impl Read) -> std::io::Result<T> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len);
    if len > MAX_SPEC {
        return Err(std::io::Error::other("container spec too large"));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf)?;
    serde_json::from_slice(&buf).map_err(std::io::Error::other)
}

/// Send one report, with `fd` attached when given. Errors are ignored by callers on the
/// container side: if kiln is gone there is nobody to tell.
pub fn send(sock: RawFd, report: &Report, fd: Option<RawFd>) -> nix::Result<()> {
    let mut line = serde_json::to_vec(report).unwrap_or_default();
    line.push(b'\n');
    let fds = fd.map(|f| [f]);
    let cmsg: Vec<ControlMessage> = fds.iter().map(|f| ControlMessage::ScmRights(f)).collect();
    let mut sent = 0;
    while sent < line.len() {
        let iov = [std::io::IoSlice::new(&line[sent..])];
        let c: &[ControlMessage] = if sent == 0 { &cmsg } else { &[] };
        sent += sendmsg::<()>(sock, &iov, c, MsgFlags::MSG_NOSIGNAL, None)?;
    }
    Ok(())
}

/// kiln's side: reads reports (and attached descriptors) until the socket closes.
pub struct Reports {
    sock: OwnedFd,
    buf: Vec<u8>,
    fds: Vec<OwnedFd>,
}

impl Reports {
    pub fn new(sock: OwnedFd) -> Reports {
        Reports {
            sock,
            buf: Vec::new(),
            fds: Vec::new(),
        }
    }

    pub fn raw(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// The next report, with the descriptor sent along with it; `None` at end of stream.
    pub fn next(&mut self) -> std::io::Result<Option<(Report, Option<OwnedFd>)>> {
        loop {
            if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=nl).collect();
                let report = serde_json::from_slice(&line[..nl]).map_err(std::io::Error::other)?;
                let fd = match report {
                    Report::Tty if !self.fds.is_empty() => Some(self.fds.remove(0)),
                    _ => None,
                };
                return Ok(Some((report, fd)));
            }
            let mut chunk = [0u8; 4096];
            let mut space = nix::cmsg_space!([RawFd; 2]);
            let mut iov = [std::io::IoSliceMut::new(&mut chunk)];
            let msg = match recvmsg::<()>(
                self.sock.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(m) => m,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            let n = msg.bytes;
            for c in msg.cmsgs().into_iter().flatten() {
                if let ControlMessageOwned::ScmRights(fds) = c {
                    for f in fds {
                        // SAFETY: the kernel just installed this descriptor for us.
                        self.fds.push(unsafe { OwnedFd::from_raw_fd(f) });
                    }
                }
            }
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Send kiln's one-byte answer (after a [`Report::Tty`]).
    pub fn ack(&self) -> std::io::Result<()> {
        nix::unistd::write(&self.sock, b"k")
            .map(|_| ())
            .map_err(Into::into)
    }
}
