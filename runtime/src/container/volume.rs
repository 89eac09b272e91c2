//! Named volumes: directories in the store (`volumes/<name>/_data`, metadata in
//! `volumes/<name>/volume.json`) that outlive containers. An empty volume is filled from the
//! image's content at its mount point when a container first mounts it (the sandbox does the
//! copy, from the container's own root, as Docker does).
//! Must not: delete a volume a container record still names.

use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{io, list, valid_name, ContainerError};
use crate::store::Store;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub driver: String,
    pub mountpoint: PathBuf,
    pub created: String,
}

fn volumes_dir(store: &Store) -> PathBuf {
    store.root().join("volumes")
}

/// Create volume `name` (or return the existing one).
pub fn create(store: &Store, name: &str) -> Result<Volume, ContainerError> {
    if !valid_name(name) {
        return Err(ContainerError::BadName(name.to_string()));
    }
    if let Ok(v) = inspect(store, name) {
        return Ok(v);
    }
    let dir = volumes_dir(store).join(name);
    let data = dir.join("_data");
    fs::create_dir_all(&data).map_err(io("create", &data))?;
    let v = Volume {
        name: name.to_string(),
        driver: "local".into(),
        mountpoint: data,
        created: crate::oci::time::format_rfc3339(super::now_secs()),
    };
    store.write_atomic(
        &dir.join("volume.json"),
        &serde_json::to_vec_pretty(&v).unwrap_or_default(),
    )?;
    Ok(v)
}

pub fn inspect(store: &Store, name: &str) -> Result<Volume, ContainerError> {
    let path = volumes_dir(store).join(name).join("volume.json");
    let bytes = fs::read(&path).map_err(|_| ContainerError::NoVolume(name.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|_| ContainerError::NoVolume(name.to_string()))
}

pub fn list_volumes(store: &Store) -> Result<Vec<Volume>, ContainerError> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(volumes_dir(store)) {
        for e in entries.flatten() {
            if let Some(name) = e.file_name().to_str() {
                if let Ok(v) = inspect(store, name) {
                    out.push(v);
                }
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub fn remove(store: &Store, name: &str) -> Result<(), ContainerError> {
    inspect(store, name)?;
    let users: Vec<String> = list(store)?
        .into_iter()
        .filter(|r| {
            r.spec.mounts.iter().any(|m| {
                matches!(&m.kind, crate::sandbox::spec::MountKind::Bind { source, .. }
                    if source.starts_with(volumes_dir(store).join(name)))
            })
        })
        .map(|r| r.name)
        .collect();
    if !users.is_empty() {
        return Err(ContainerError::VolumeInUse {
            name: name.to_string(),
            containers: users.join(", "),
        });
    }
    let dir = volumes_dir(store).join(name);
    fs::remove_dir_all(&dir).map_err(io("remove", &dir))
}
