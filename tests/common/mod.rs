//! Shared helpers of kiln's end-to-end tests (`tests/*.rs`): the kiln binary and temporary
//! stores, the peers (docker, podman, skopeo, umoci) and the rule for skipping when one is
//! missing, the deterministic busybox base image, and readers that turn a `docker save` or
//! `kiln save` tarball into a comparable file tree and config.
//!
//! Must not: build or patch kiln, talk to a network (beyond the loopback server `http` starts), or leave anything outside the scratch
//! directory (`target/tmp/e2e/<pid>`) and the docker tags named `*kiln-e2e*` / `busybox:test`.
#![allow(dead_code)]

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

/// The tag the busybox base has in docker and in every kiln store the tests make.
pub const BUSYBOX: &str = "busybox:test";

mod peers;
pub use peers::*;
mod commands;
pub use commands::*;
mod scratch;
pub use scratch::*;
mod kiln;
pub use kiln::*;
mod docker;
pub use docker::*;
mod busybox;
pub use busybox::*;
mod tarball;
pub use tarball::*;
mod http;
pub use http::*;
mod cgroup;
pub use cgroup::*;

/// Skip the calling test (return from it) when a peer is missing; in CI, panic instead, so a
/// skipped test is never reported as passing there.
#[macro_export]
macro_rules! require_peer {
    ($($name:expr),+ $(,)?) => {
        $(
            if let Err(why) = $crate::common::peer_status($name) {
                $crate::common::skip_or_fail($name, &why);
                return;
            }
        )+
    };
}
