//! Networks without bridges: a private namespace gets only its loopback interface (brought
//! up), and `-p` publishes a port by listening on the host and relaying each connection (or
//! datagram) into the container's own loopback. No bridge, veth or private address is ever
//! created.
//! Must not: change any interface other than the container's own `lo`.

use std::io;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;

use super::spec::{ContainerSpec, Network, Protocol};

pub enum Listener {
    Tcp(TcpListener, u16),
    Udp(UdpSocket, u16),
}

/// A port of 127.0.0.1 that is free now, as the kernel picks one for a bind to port 0
/// (`-P`; docker picks from the same ephemeral range).
pub fn free_port(protocol: Protocol) -> std::io::Result<u16> {
    match protocol {
        Protocol::Tcp => Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()),
        Protocol::Udp => Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port()),
    }
}

/// Bind every published port on the host (before the monitor leaves the host's network).
pub fn bind_ports(spec: &ContainerSpec) -> Result<Vec<Listener>, String> {
    if spec.network == Network::Host {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for p in &spec.ports {
        let ip = if p.host_ip.is_empty() {
            "0.0.0.0"
        } else {
            p.host_ip.as_str()
        };
        let addr = format!("{ip}:{}", p.host_port);
        let listener = match p.protocol {
            Protocol::Tcp => TcpListener::bind(&addr).map(|l| Listener::Tcp(l, p.container_port)),
            Protocol::Udp => UdpSocket::bind(&addr).map(|s| Listener::Udp(s, p.container_port)),
        };
        out.push(listener.map_err(|e| format!("publishing {addr}: {e}"))?);
    }
    Ok(out)
}

/// Move the calling thread into the network namespace whose nsfs file is `path` (a kiln
/// network's, or another container's `/proc/PID/ns/net`).
pub fn join(path: &std::path::Path) -> Result<(), String> {
    let file = std::fs::File::open(path)
        .map_err(|e| format!("opening the network namespace {}: {e}", path.display()))?;
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
        format!(
            "joining the network namespace {}: {}",
            path.display(),
            e.desc()
        )
    })
}

/// Make a new network namespace holding only a loopback interface (up), kept alive by a
/// bind mount of its nsfs file onto `path` (an existing empty file). The namespace is made
/// on a thread of its own, so the calling thread's namespace never changes.
pub fn create_namespace(path: &std::path::Path) -> Result<(), String> {
    let target = path.to_path_buf();
    let worker = std::thread::spawn(move || -> Result<(), String> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("creating a network namespace: {}", e.desc()))?;
        loopback_up().map_err(|e| format!("bringing up the loopback interface: {}", e.desc()))?;
        nix::mount::mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| {
            format!(
                "pinning the namespace at {}: {}",
                target.display(),
                e.desc()
            )
        })
    });
    worker
        .join()
        .map_err(|_| "the thread making the network namespace failed".to_string())?
}

/// Release a namespace made by [`create_namespace`] (it ends once no member is left in it).
pub fn remove_namespace(path: &std::path::Path) -> Result<(), String> {
    match nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(format!("unmounting {}: {}", path.display(), e.desc())),
    }
}

/// `ip link set lo up` in the current network namespace.
pub fn loopback_up() -> nix::Result<()> {
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain data; the ioctls read and write only within it.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(nix::errno::Errno::last());
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(nix::errno::Errno::last());
        }
    }
    Ok(())
}

/// TCP connections being relayed right now (see [`drain`]).
static ACTIVE_CONNECTIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Relay each listener into `127.0.0.1:<container port>` of the namespace the calling
/// process is now in (the container's), one thread per listener and per connection.
pub fn start_relays(listeners: Vec<Listener>) {
    use std::sync::atomic::Ordering;
    for l in listeners {
        match l {
            Listener::Tcp(listener, port) => {
                std::thread::spawn(move || {
                    for conn in listener.incoming().flatten() {
                        ACTIVE_CONNECTIONS.fetch_add(1, Ordering::SeqCst);
                        std::thread::spawn(move || {
                            if let Ok(inner) = TcpStream::connect(("127.0.0.1", port)) {
                                let _ = splice_both(conn, inner);
                            }
                            ACTIVE_CONNECTIONS.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                });
            }
            Listener::Udp(sock, port) => {
                std::thread::spawn(move || relay_udp(sock, port));
            }
        }
    }
}

/// Waits until no TCP connection is being relayed, or `limit` has passed. Called once the
/// payload has ended: a server that wrote its reply and exited still has that reply in
/// flight through the relay, and killing the relay at once would drop it.
pub fn drain(limit: std::time::Duration) {
    let deadline = std::time::Instant::now() + limit;
    while ACTIVE_CONNECTIONS.load(std::sync::atomic::Ordering::SeqCst) > 0
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn splice_both(a: TcpStream, b: TcpStream) -> io::Result<()> {
    let (mut a2, mut b2) = (a.try_clone()?, b.try_clone()?);
    let (mut a1, mut b1) = (a, b);
    let t = std::thread::spawn(move || {
        let _ = io::copy(&mut a1, &mut b1);
        let _ = b1.shutdown(std::net::Shutdown::Write);
    });
    let _ = io::copy(&mut b2, &mut a2);
    let _ = a2.shutdown(std::net::Shutdown::Write);
    let _ = t.join();
    Ok(())
}

/// UDP: datagrams from the host go to the container port from one inner socket per peer;
/// replies go back to that peer.
fn relay_udp(outer: UdpSocket, port: u16) {
    use std::collections::HashMap;
    use std::sync::Arc;
    let outer = Arc::new(outer);
    let mut peers: HashMap<std::net::SocketAddr, UdpSocket> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    while let Ok((n, from)) = outer.recv_from(&mut buf) {
        let inner = match peers.get(&from) {
            Some(s) => s,
            None => {
                let Ok(s) = UdpSocket::bind("127.0.0.1:0") else {
                    continue;
                };
                if s.connect(("127.0.0.1", port)).is_err() {
                    continue;
                }
                let Ok(reply) = s.try_clone() else { continue };
                let back = Arc::clone(&outer);
                std::thread::spawn(move || {
                    let mut b = vec![0u8; 65536];
                    while let Ok(n) = reply.recv(&mut b) {
                        let _ = back.send_to(&b[..n], from);
                    }
                });
                peers.entry(from).or_insert(s)
            }
        };
        let _ = inner.send(&buf[..n]);
    }
}

/// The lines of every private namespace's /etc/hosts (Docker's).
pub const LOOPBACK_HOSTS: &str =
    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
     fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
     ff02::2\tip6-allrouters\n";

/// The /etc/hosts, /etc/hostname and /etc/resolv.conf a container gets (as Docker writes
/// them: loopback names, the hostname, the host's resolver configuration).
/// `extra_hosts` (`--add-host NAME:IP`) follow the loopback names, as in docker's.
pub fn etc_files(
    hostname: &str,
    network: &Network,
    extra_hosts: &[(String, String)],
) -> Vec<super::spec::Mount> {
    use super::spec::{Mount, MountKind};
    let extra: String = extra_hosts
        .iter()
        .map(|(name, ip)| format!("{ip}\t{name}\n"))
        .collect();
    let hosts = match network {
        Network::Host => {
            let mut h = std::fs::read("/etc/hosts").unwrap_or_default();
            h.extend_from_slice(extra.as_bytes());
            h
        }
        Network::None | Network::Join { .. } => {
            let mut h = String::from(LOOPBACK_HOSTS);
            h.push_str(&extra);
            if !hostname.is_empty() {
                h.push_str(&format!("127.0.0.1\t{hostname}\n"));
            }
            h.into_bytes()
        }
    };
    let resolv = std::fs::read("/etc/resolv.conf").unwrap_or_default();
    let file = |target: &str, content: Vec<u8>| Mount {
        target: target.to_string(),
        kind: MountKind::File {
            content,
            mode: 0o644,
            uid: 0,
            gid: 0,
        },
        readonly: false,
    };
    vec![
        file("/etc/hosts", hosts),
        file("/etc/hostname", format!("{hostname}\n").into_bytes()),
        file("/etc/resolv.conf", resolv),
    ]
}
