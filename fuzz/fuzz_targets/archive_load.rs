//! `kiln load` of a hostile archive (docker save or OCI layout, plain or compressed):
//! nothing may panic, and the store may only ever hold whole, verified blobs: every file
//! under blobs/sha256 has the digest it is named by.
#![no_main]

use kiln_runtime::archive::load;
use kiln_runtime::store::Store;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

fn root() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory"))
        .path()
}

fuzz_target!(|data: &[u8]| {
    let store = Store::open(root().join("store")).expect("open the store");
    let _ = load(&store, data);
    drop(store);
    let blobs = root().join("store/blobs/sha256");
    for e in std::fs::read_dir(&blobs).expect("list blobs") {
        let e = e.expect("entry");
        let bytes = std::fs::read(e.path()).expect("read a blob");
        let hex: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(e.file_name().to_string_lossy(), hex, "a blob is not what it is named");
    }
    let tmp = root().join("store/tmp");
    let left = std::fs::read_dir(&tmp).map_or(0, |d| d.count());
    assert_eq!(left, 0, "a closed store left files in tmp/");
});
