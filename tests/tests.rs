//! kiln's end-to-end tests: the kiln binary against docker, podman, skopeo, umoci and itself.
//!
//! One test binary for the crate (each file below is a module), so the workspace links
//! a handful of test executables instead of one per file. Unwrapping is how a test
//! says "this must hold", so the workspace's no-unwrap lints are lifted here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod common;

mod build_cache;
mod build_features;
mod cli;
mod compose;
mod debian;
mod differential;
mod differential_run;
mod explain;
mod health;
mod image_diff;
mod interop;
mod kiln_lang;
mod lifecycle;
mod network;
mod registry;
mod repro_check;
mod reproducible;
mod resources;
mod runflags;
mod runner;
mod runtimes;
mod seeds;
