//! kiln-compiler's integration tests: parser conformance, plan keys, shell expansion, fuzzing.
//!
//! One test binary for the crate (each file below is a module), so the workspace links
//! a handful of test executables instead of one per file. Unwrapping is how a test
//! says "this must hold", so the workspace's no-unwrap lints are lifted here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod conformance;
mod dockerignore_fuzz;
mod dockerignore_match;
mod kiln_lang;
mod parse_fuzz;
mod plan_keys;
mod run_mounts;
mod shell_expand;
mod shell_fuzz;
