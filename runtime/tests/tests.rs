//! kiln-runtime's integration tests: layers, the store, archives and the build executor.
//!
//! One test binary for the crate (each file below is a module), so the workspace links
//! a handful of test executables instead of one per file. Unwrapping is how a test
//! says "this must hold", so the workspace's no-unwrap lints are lifted here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod layer_support;
mod store_support;

mod archive_import;
mod archive_load;
mod archive_peers;
mod archive_save;
mod build_run;
mod layer_capture;
mod layer_extract;
mod layer_host;
mod layer_reader;
mod layer_unpack;
mod layer_view;
mod layer_writer;
mod store_blobs;
mod store_crash;
mod store_refs;
mod store_root;
