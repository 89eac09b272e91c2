//! Moving images in and out of the store as tarballs: `save` (combined docker-archive + OCI
//! layout), `load` (docker archives of any version, the combined layout, OCI archives) and
//! `import` (a root filesystem tarball or directory as a one-layer image).
//!
//! Must not: change images it did not make (loaded blobs keep their bytes and digests), or
//! write anything outside the store.

mod import;
mod load;
mod save;
mod tar_out;

pub use import::{import, ImportError};
pub use load::{load, LoadError, LoadedImage};
pub use save::{save, save_image_to_path, save_to_path, SaveError};
