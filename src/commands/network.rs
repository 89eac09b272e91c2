//! `kiln network create|ls|inspect|connect|disconnect|rm`: flags to calls of
//! `kiln_runtime::container::network`, and docker's output shapes.
//! Must not: touch namespaces or the store's files itself (the runtime does).

use std::path::PathBuf;

use kiln_runtime::container::network;

use super::transfer::open_store;
use crate::cli::NetworkCommand;

/// A network as `docker network inspect` prints it (and `docker inspect NETWORK`).
pub(crate) fn network_json(
    store: &kiln_runtime::store::Store,
    name: &str,
) -> miette::Result<serde_json::Value> {
    let net = network::inspect(store, name)?;
    let mut containers = serde_json::Map::new();
    for m in net.members(store)? {
        containers.insert(
            m.id.clone(),
            serde_json::json!({
                "Name": m.name,
                "Aliases": network::member_names(&m),
                "IPv4Address": "127.0.0.1/8",
                "IPv6Address": "",
            }),
        );
    }
    Ok(serde_json::json!({
        "Name": net.name,
        "Id": net.id,
        "Created": net.created,
        "Scope": "local",
        "Driver": "loopback",
        "EnableIPv6": false,
        "IPAM": {"Driver": "none", "Config": []},
        "Internal": true,
        "Containers": containers,
        "Options": {"kiln.netns": net.netns(store), "kiln.hosts": net.hosts(store)},
        "Labels": {},
    }))
}

pub fn network(root: Option<PathBuf>, c: NetworkCommand) -> miette::Result<()> {
    let store = open_store(root)?;
    match c {
        NetworkCommand::Create { name } => {
            let net = network::create(&store, &name)?;
            println!("{}", net.id);
        }
        NetworkCommand::Ls { quiet } => {
            let all = network::list_networks(&store)?;
            if !quiet {
                println!("{:<14}{:<20}{:<10}SCOPE", "NETWORK ID", "NAME", "DRIVER");
            }
            for n in all {
                if quiet {
                    println!("{}", n.name);
                } else {
                    println!("{:<14}{:<20}{:<10}local", &n.id[..12], n.name, "loopback");
                }
            }
        }
        NetworkCommand::Inspect { names, format } => {
            super::images::print_objects(&names, format.as_deref(), |n| network_json(&store, n))?;
        }
        NetworkCommand::Connect {
            network: net,
            container,
            alias,
        } => {
            network::connect(&store, &net, &container, &alias)?;
        }
        NetworkCommand::Disconnect {
            network: net,
            container,
        } => {
            network::disconnect(&store, &net, &container)?;
        }
        NetworkCommand::Rm { names } => {
            for n in &names {
                network::remove(&store, n)?;
                println!("{n}");
            }
        }
    }
    Ok(())
}
