//! kiln-runtime: the image store, deterministic layers, OCI formats, save/load and the builder.
//!
//! Must not: parse Dockerfile text (it receives a `kiln_plan::plan::Plan`).

pub mod archive;
pub mod build;
pub mod compare;
pub mod container;
pub mod image;
pub mod layer;
pub mod oci;
pub mod provenance;
pub mod registry;
pub mod sandbox;
pub mod shared_cache;
pub mod store;
