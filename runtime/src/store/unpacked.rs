//! TEMPORARY local shim.
use super::{Result, Store};
use crate::oci::Digest;
use std::path::PathBuf;
impl Store {
    pub fn unpacked_layer(&self, diff_id: &Digest) -> Result<PathBuf> {
        let dir = self.root().join("layers/unpacked").join(diff_id.hex());
        if !dir.exists() {
            let tar = self.uncompressed_layer(diff_id)?;
            let tmp = self.root().join("layers/unpacked").join(format!("{}.tmp", diff_id.hex()));
            std::fs::create_dir_all(&tmp).unwrap();
            let mut a = tar::Archive::new(std::fs::File::open(tar).unwrap());
            a.set_preserve_permissions(true); a.set_preserve_ownerships(true);
            a.unpack(&tmp).unwrap();
            std::fs::rename(&tmp, &dir).unwrap();
        }
        Ok(dir)
    }
}
