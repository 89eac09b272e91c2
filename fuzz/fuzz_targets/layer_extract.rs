//! A layer tar from a hostile image: scanning it, and extracting it below an empty
//! directory. Nothing may panic, nothing may appear outside the destination, and no
//! descriptor may stay open.
#![no_main]

use kiln_runtime::layer::{decompress_auto, extract_layer, scan_layer};
use libfuzzer_sys::fuzz_target;
use std::io::Read;
use std::path::Path;

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

fuzz_target!(|data: &[u8]| {
    let _ = scan_layer(data);
    // A compressed layer is decompressed first, as load does (bounded here).
    if let Ok((_, r)) = decompress_auto(data) {
        let mut sink = Vec::new();
        let _ = r.take(1 << 20).read_to_end(&mut sink);
    }
    let top = tempfile::tempdir().expect("a temporary directory");
    let tar = top.path().join("layer.tar");
    let dest = top.path().join("dest");
    let outside = top.path().join("outside");
    std::fs::write(&tar, data).expect("write the tar");
    std::fs::create_dir(&dest).expect("mkdir dest");
    std::fs::create_dir(&outside).expect("mkdir outside");
    let before = open_descriptors();
    let _ = extract_layer(&tar, &dest);
    assert_eq!(open_descriptors(), before, "extraction leaked a descriptor");
    assert_eq!(names(top.path()), ["dest", "layer.tar", "outside"], "an entry escaped");
    assert!(names(&outside).is_empty(), "an entry escaped into a sibling");
});
