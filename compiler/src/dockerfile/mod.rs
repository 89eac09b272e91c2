//! Dockerfile semantics: typed instructions, validation, lowering to the plan, build checks.
//!
//! Owns everything that gives a syntax tree meaning. Must not: parse text (that is
//! `crate::syntax`) or touch files other than through `crate::context`.

pub mod checks;
pub mod error;
pub mod expose;
pub mod instructions;
pub mod lower;
pub mod mounts;
pub use kiln_plan::{platforms, reference};

pub use error::DockerfileError;
pub use lower::{lower, LowerError};
