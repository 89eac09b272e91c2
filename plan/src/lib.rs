//! kiln-plan: what the front ends produce and the runtime executes.
//!
//! Owns: the layer plan, its cache keys, build records and explanations (`plan`, with
//! `plan::builder`, the one plan builder every front end calls), build contexts and their
//! hashing (`context`), `.dockerignore` patterns (`dockerignore`, `glob`), COPY's source
//! rules (`copy`), image references (`reference`), platforms (`platform`, `platforms`),
//! SOURCE_DATE_EPOCH (`source_date_epoch`) and byte spans (`span`).
//! Must not: parse Dockerfiles or kiln programs (kiln-compiler's front ends), touch the
//! image store, run processes, or write anywhere on disk. Cargo enforces the first: this
//! crate depends on no front end, and kiln-runtime depends on this crate, not on them.

pub mod context;
pub mod copy;
pub mod dockerignore;
pub mod glob;
pub mod plan;
pub mod platform;
pub mod platforms;
pub mod reference;
pub mod source_date_epoch;
pub mod span;
