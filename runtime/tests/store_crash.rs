//! Killing a writer at any moment leaves a store the next command uses without repair.
//!
//! The test re-runs its own binary as a worker (`KILN_STORE_CRASH_WORKER=<root>`) that writes
//! blobs, images, tags, cache entries and state files in a loop, kills it with SIGKILL at
//! varying moments, and then checks the store: every blob matches its name, index.json parses
//! and every image in it resolves with all its blobs, cache and state files are whole, and
//! what the dead worker left in tmp/ is gone after the next open.

use crate::store_support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use kiln_runtime::image::ImageName;
use kiln_runtime::oci::Digest;
use kiln_runtime::store::Store;
use store_support::*;

const WORKER_ENV: &str = "KILN_STORE_CRASH_WORKER";

/// The worker: runs only when started by `killed_writers_leave_a_usable_store`.
#[test]
fn crash_worker() {
    let Ok(root) = std::env::var(WORKER_ENV) else {
        return;
    };
    let store = Store::open(&root).unwrap();
    let mut i: u64 = 0;
    loop {
        i += 1;
        let big = vec![(i % 251) as u8; 64 * 1024 + (i as usize * 7919) % (512 * 1024)];
        let mut w = store.blob_writer().unwrap();
        for chunk in big.chunks(8192) {
            w.write_all(chunk).unwrap();
        }
        w.commit(None).unwrap();
        let name = format!("crash:{}", i % 5);
        make_image(
            &store,
            &[&[("data", format!("round {i}").as_bytes())]],
            "sh",
            &[&name],
        );
        store
            .put_cache(
                &format!("key{}", i % 7),
                &serde_json::json!({"round": i, "pad": "x".repeat(2000)}),
            )
            .unwrap();
        store
            .write_state("stat-cache", format!("round {i} ").repeat(500).as_bytes())
            .unwrap();
    }
}

fn check_store(root: &std::path::Path) {
    let store = Store::open(root).unwrap();
    for (digest, _) in store.list_blobs().unwrap() {
        let bytes = store.read_blob(&digest).unwrap();
        assert_eq!(
            Digest::of_bytes(&bytes),
            digest,
            "blob {digest} is not whole"
        );
    }
    for image in store.images().unwrap() {
        let again = store.image(&image.manifest_digest.to_string()).unwrap();
        for layer in &again.manifest.layers {
            assert!(store.has_blob(&layer.digest));
        }
    }
    for i in 0..7 {
        if let Some(v) = store.get_cache(&format!("key{i}")).unwrap() {
            assert_eq!(v["pad"].as_str().unwrap().len(), 2000);
        }
    }
    if let Some(state) = store.read_state("stat-cache").unwrap() {
        let text = String::from_utf8(state).unwrap();
        let first = text.split(' ').take(2).collect::<Vec<_>>().join(" ") + " ";
        assert_eq!(text, first.repeat(500), "state file is not whole");
    }
    // Only this store's own session is left in tmp/.
    let leftovers: Vec<String> = std::fs::read_dir(root.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers.len(), 2, "stale temporary files: {leftovers:?}");
    // And the store keeps working.
    make_image(&store, &[&[("after", b"crash")]], "sh", &["after:1"]);
    assert!(store
        .get_ref(&ImageName::parse("after:1").unwrap())
        .unwrap()
        .is_some());
}

#[test]
fn killed_writers_leave_a_usable_store() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    for round in 0..6u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "store_crash::crash_worker",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WORKER_ENV, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(150 + round * 97));
        // SIGKILL: no destructor, no cleanup.
        child.kill().unwrap();
        child.wait().unwrap();
        // The dead worker's session (its lock and directory) is still there...
        let left = std::fs::read_dir(dir.path().join("tmp"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert!(
            left >= 2,
            "the worker was not killed while it had the store open"
        );
        // ...until the next open, which also finds everything else whole.
        check_store(dir.path());
    }
    let store = Store::open(dir.path()).unwrap();
    assert!(
        !store.images().unwrap().is_empty(),
        "the worker never got to write an image"
    );
}
