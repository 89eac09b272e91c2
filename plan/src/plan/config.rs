//! What a build decides about its image besides the filesystem: the run configuration (the
//! `config` object of an OCI image config, with Docker's field names so it serializes exactly
//! as `docker inspect` shows it) and the history entries.
//!
//! The whole image config blob (architecture, os, rootfs, timestamps, and this `RunConfig`
//! as its `config` field) is the runtime's `oci::ImageConfig`; it is written when the build
//! has the layers' diff_ids.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How a container made from the image runs (user, env, entrypoint, cmd, working directory,
/// ports, volumes, labels, ...): the `config` object of an OCI image config (Docker field
/// names; Docker's builder calls it the run config). The one model of it in kiln: the planner
/// fills it in, the runtime writes and reads it as `oci::ImageConfig::config`, and RUN steps
/// and `kiln run` take their defaults from it.
/// Empty fields are omitted when written, and `null` reads as empty (docker writes
/// `"Env": null`); unknown fields (`Hostname`, ...) are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub user: String,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub exposed_ports: BTreeMap<String, Empty>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "none_or_empty")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "none_or_empty")]
    pub cmd: Option<Vec<String>>,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub volumes: BTreeMap<String, Empty>,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub working_dir: String,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub labels: BTreeMap<String, String>,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub stop_signal: String,
    /// Set when CMD/ENTRYPOINT came from a Windows shell form; kept for round trips.
    #[serde(
        default,
        skip_serializing_if = "std::ops::Not::not",
        deserialize_with = "null_as_default"
    )]
    pub args_escaped: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub on_build: Vec<String>,
    #[serde(default, skip_serializing_if = "none_or_empty")]
    pub shell: Option<Vec<String>>,
}

/// Docker (Go's `omitempty`) never writes an empty list: `CMD []` leaves `Cmd` out.
fn none_or_empty(v: &Option<Vec<String>>) -> bool {
    v.as_ref().is_none_or(Vec::is_empty)
}

/// `null` in JSON reads as the type's empty value.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `{}` in JSON (the value type of ExposedPorts and Volumes).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Empty {}

/// HEALTHCHECK settings; durations in nanoseconds as Docker stores them, 0 meaning default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", args...]` or `["CMD-SHELL", command]`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub test: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "null_as_default"
    )]
    pub interval: i64,
    #[serde(
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "null_as_default"
    )]
    pub timeout: i64,
    #[serde(
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "null_as_default"
    )]
    pub start_period: i64,
    #[serde(
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "null_as_default"
    )]
    pub start_interval: i64,
    #[serde(
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "null_as_default"
    )]
    pub retries: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// One image history entry as the plan records it; the runtime writes it as an
/// `oci::History`, with `created` from the build's timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub created_by: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

impl RunConfig {
    /// The value of an environment variable, last definition winning.
    pub fn env_get(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find_map(|kv| match kv.split_once('=') {
                Some((k, v)) if k == name => Some(v),
                None if kv == name => Some(""),
                _ => None,
            })
    }

    /// Nothing set at all (the `config` object is then left out of an image config).
    pub fn is_empty(&self) -> bool {
        *self == RunConfig::default()
    }

    /// Set an environment variable, replacing an earlier definition in place.
    pub fn env_set(&mut self, name: &str, value: &str) {
        let entry = [name, "=", value].concat();
        match self
            .env
            .iter_mut()
            .find(|kv| kv.split_once('=').map_or(kv.as_str(), |(k, _)| k) == name)
        {
            Some(slot) => *slot = entry,
            None => self.env.push(entry),
        }
    }
}
