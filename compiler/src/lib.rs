//! kiln-compiler: everything between Dockerfile text and the layer plan.
//!
//! Owns: the Dockerfile parser (`syntax`), the shell-word expander (`shell`), `.dockerignore`
//! patterns (`dockerignore`), instruction semantics and validation (`dockerfile`), COPY source
//! selection (`copy`), the layer plan and its cache keys (`plan`), and hashing of build
//! contexts (`context`).
//! Must not: touch the image store, run processes, or write anywhere on disk.

pub mod context;
pub mod copy;
pub mod dockerfile;
pub mod dockerignore;
pub mod frontend;
pub mod glob;
pub mod kiln;
pub mod plan;
pub mod platform;
pub mod shell;
pub mod source;
pub mod source_date_epoch;
pub mod suggest;
pub mod syntax;
