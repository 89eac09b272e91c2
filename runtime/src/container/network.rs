//! User-defined networks without bridges: a network is ONE network namespace with only its
//! loopback interface, pinned by a bind mount of its nsfs file at `networks/<name>/netns`
//! (no process holds it). Members join that namespace and reach each other on 127.0.0.1;
//! `networks/<name>/hosts` maps every member's name, hostname and aliases to 127.0.0.1 and is
//! bind-mounted read-only as each member's /etc/hosts, rewritten in place (same inode, so
//! running members see it) whenever membership changes.
//! Metadata: `networks/<name>/network.json`. Membership lives in the container records
//! (`Record::network`, `Record::aliases`), never duplicated here.
//! Must not: create interfaces, bridges or addresses; remove a network a record still names.

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{io, list, valid_name, ContainerError, Record};
use crate::sandbox::spec::{Mount, MountKind, Network as NetMode, Port};
use crate::store::Store;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    pub id: String,
    pub created: String,
}

fn networks_dir(store: &Store) -> PathBuf {
    store.root().join("networks")
}

/// The names docker has built in; kiln's meaning of them is the `--network` mode.
pub const RESERVED: [&str; 3] = ["none", "host", "bridge"];

impl Network {
    pub fn dir(&self, store: &Store) -> PathBuf {
        networks_dir(store).join(&self.name)
    }
    /// The nsfs file the namespace is pinned at.
    pub fn netns(&self, store: &Store) -> PathBuf {
        self.dir(store).join("netns")
    }
    pub fn hosts(&self, store: &Store) -> PathBuf {
        self.dir(store).join("hosts")
    }
    /// The records of the containers on this network.
    pub fn members(&self, store: &Store) -> Result<Vec<Record>, ContainerError> {
        Ok(list(store)?
            .into_iter()
            .filter(|r| r.network.as_deref() == Some(self.name.as_str()))
            .collect())
    }
}

/// `kiln network create NAME`.
pub fn create(store: &Store, name: &str) -> Result<Network, ContainerError> {
    crate::sandbox::require_root()?;
    if !valid_name(name) || RESERVED.contains(&name) {
        return Err(ContainerError::BadName(name.to_string()));
    }
    if inspect(store, name).is_ok() {
        return Err(ContainerError::NetworkExists(name.to_string()));
    }
    let dir = networks_dir(store).join(name);
    fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    let net = Network {
        name: name.to_string(),
        id: super::new_id(),
        created: crate::oci::time::format_rfc3339(super::now_secs()),
    };
    let netns = net.netns(store);
    fs::File::create(&netns).map_err(io("create", &netns))?;
    if let Err(message) = crate::sandbox::net::create_namespace(&netns) {
        let _ = fs::remove_dir_all(&dir);
        return Err(ContainerError::Network {
            name: name.to_string(),
            message,
        });
    }
    write_hosts(store, &net, &[])?;
    store.write_atomic(
        &dir.join("network.json"),
        &serde_json::to_vec_pretty(&net).unwrap_or_default(),
    )?;
    Ok(net)
}

pub fn inspect(store: &Store, name: &str) -> Result<Network, ContainerError> {
    let path = networks_dir(store).join(name).join("network.json");
    let bytes = fs::read(&path).map_err(|_| ContainerError::NoNetwork(name.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|_| ContainerError::NoNetwork(name.to_string()))
}

/// Every network, by name.
pub fn list_networks(store: &Store) -> Result<Vec<Network>, ContainerError> {
    let dir = networks_dir(store);
    let mut out = Vec::new();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io("read", &dir)(e)),
    };
    for entry in entries.flatten() {
        if let Ok(n) = inspect(store, &entry.file_name().to_string_lossy()) {
            out.push(n);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// `kiln network rm NAME`: refused while a container record names it.
pub fn remove(store: &Store, name: &str) -> Result<(), ContainerError> {
    let net = inspect(store, name)?;
    let members = net.members(store)?;
    if !members.is_empty() {
        return Err(ContainerError::NetworkInUse {
            name: name.to_string(),
            containers: names(&members),
        });
    }
    crate::sandbox::net::remove_namespace(&net.netns(store)).map_err(|message| {
        ContainerError::Network {
            name: name.to_string(),
            message,
        }
    })?;
    let dir = net.dir(store);
    fs::remove_dir_all(&dir).map_err(io("remove", &dir))
}

fn names(records: &[Record]) -> String {
    records
        .iter()
        .map(|r| r.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The names a member answers to: its name, hostname and aliases (deduplicated, in order).
pub fn member_names(record: &Record) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let all = std::iter::once(&record.name)
        .chain(std::iter::once(&record.spec.hostname))
        .chain(record.aliases.iter());
    for n in all {
        if !n.is_empty() && !out.contains(n) {
            out.push(n.clone());
        }
    }
    out
}

/// Rewrite the network's hosts file in place (its inode is what members have mounted).
fn write_hosts(store: &Store, net: &Network, members: &[Record]) -> Result<(), ContainerError> {
    let mut text = String::from(crate::sandbox::net::LOOPBACK_HOSTS);
    for m in members {
        text.push_str(&format!("127.0.0.1\t{}\n", member_names(m).join(" ")));
    }
    let path = net.hosts(store);
    let mut f = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .map_err(io("write", &path))?;
    f.write_all(text.as_bytes()).map_err(io("write", &path))
}

/// Bring the network's hosts file up to date with its members (after a container joins,
/// leaves or is removed).
pub fn refresh_hosts(store: &Store, name: &str) -> Result<(), ContainerError> {
    let net = inspect(store, name)?;
    let members = net.members(store)?;
    write_hosts(store, &net, &members)
}

/// The clear error for a port published twice into one namespace: a relay into a port of a
/// shared loopback reaches whichever member bound it, so two members cannot both publish
/// the same container port. `others` are the network's other members.
pub fn check_ports(
    net: &str,
    name: &str,
    ports: &[Port],
    others: &[Record],
) -> Result<(), ContainerError> {
    for p in ports {
        for o in others {
            let clash = o
                .spec
                .ports
                .iter()
                .any(|q| q.container_port == p.container_port && q.protocol == p.protocol);
            if clash {
                return Err(ContainerError::PortTaken {
                    network: net.to_string(),
                    port: p.container_key(),
                    holder: o.name.clone(),
                    wanted: name.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Point a (not running) container's spec at network `net`: its namespace, and the
/// network's hosts file as its /etc/hosts.
pub fn attach_spec(store: &Store, record: &mut Record, net: &Network) {
    record.network = Some(net.name.clone());
    record.spec.network = NetMode::Join {
        path: net.netns(store),
    };
    set_hosts_mount(
        &mut record.spec.mounts,
        Mount {
            target: "/etc/hosts".into(),
            kind: MountKind::Bind {
                source: net.hosts(store),
                fill: false,
            },
            readonly: true,
        },
    );
}

fn set_hosts_mount(mounts: &mut Vec<Mount>, hosts: Mount) {
    match mounts.iter_mut().find(|m| m.target == "/etc/hosts") {
        Some(m) => *m = hosts,
        None => mounts.insert(0, hosts),
    }
}

/// `kiln network connect NET CONTAINER [--alias A]`: the container joins at its next start
/// (a running process cannot move to another network namespace).
pub fn connect(
    store: &Store,
    name: &str,
    container: &str,
    aliases: &[String],
) -> Result<Record, ContainerError> {
    let net = inspect(store, name)?;
    let mut record = super::find(store, container)?;
    if record.held() {
        return Err(ContainerError::NetworkRunning(record.name.clone()));
    }
    if let Some(current) = &record.network {
        return Err(ContainerError::Network {
            name: name.to_string(),
            message: format!(
                "{} is already on network {current}: a container has one network namespace; disconnect it first",
                record.name
            ),
        });
    }
    let others = net.members(store)?;
    check_ports(name, &record.name, &record.spec.ports, &others)?;
    attach_spec(store, &mut record, &net);
    record.aliases = aliases.to_vec();
    super::save(store, &record)?;
    write_hosts(store, &net, &net.members(store)?)?;
    Ok(record)
}

/// `kiln network disconnect NET CONTAINER`: back to a private loopback of its own.
pub fn disconnect(store: &Store, name: &str, container: &str) -> Result<Record, ContainerError> {
    let net = inspect(store, name)?;
    let mut record = super::find(store, container)?;
    if record.network.as_deref() != Some(name) {
        return Err(ContainerError::Network {
            name: name.to_string(),
            message: format!("{} is not connected to it", record.name),
        });
    }
    if record.held() {
        return Err(ContainerError::NetworkRunning(record.name.clone()));
    }
    record.network = None;
    record.aliases.clear();
    record.spec.network = NetMode::None;
    let own = crate::sandbox::net::etc_files(&record.spec.hostname, &NetMode::None, &[]);
    if let Some(hosts) = own.into_iter().find(|m| m.target == "/etc/hosts") {
        set_hosts_mount(&mut record.spec.mounts, hosts);
    }
    super::save(store, &record)?;
    write_hosts(store, &net, &net.members(store)?)?;
    Ok(record)
}

/// The nsfs file of a running container's network namespace (`--network container:NAME`).
pub fn container_netns(
    store: &Store,
    container: &str,
) -> Result<(Record, PathBuf), ContainerError> {
    super::container_ns(store, container, "net")
}
