//! kiln-compiler: everything between Dockerfile text and the layer plan.
//!
//! Owns: the front ends: the Dockerfile parser (`syntax`), the shell-word expander (`shell`),
//! instruction semantics and validation (`dockerfile`), and the kiln language (`kiln`), each
//! lowering through kiln-plan's plan builder. kiln-plan's modules (`plan`, `context`, `copy`,
//! `dockerignore`, `glob`, `platform`, `source_date_epoch`) are re-exported under their old
//! paths.
//! Must not: touch the image store, run processes, or write anywhere on disk.

pub mod dockerfile;
pub use kiln_plan::{context, copy, dockerignore, glob, plan, platform, source_date_epoch};

pub mod frontend;
pub mod kiln;
pub mod shell;
pub mod source;
pub mod suggest;
pub mod syntax;
