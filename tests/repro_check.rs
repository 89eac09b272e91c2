//! `kiln build --check`: passes (exit 0, the digest printed) on the repository's
//! reproducibility fixtures; fails (exit 1) naming the file and the Dockerfile step on builds
//! that are not reproducible: a RUN that writes the time, a RUN that writes random bytes, a
//! COPY --from a stage that does, and a COPY whose context file is edited while the check
//! runs.
//!
//! The edited-context case is made deterministic without any test-only hook in kiln: the test
//! holds the store's index lock (`<root>/lock`, as any concurrent kiln command may) before
//! starting kiln. The first build reads the context file, writes its layer, then waits for
//! that lock to record its image; the test sees kiln waiting in /proc/locks, edits the file,
//! and lets go. The first build has read the old content, the second build (which starts
//! after the first) reads the new one.
//!
//! RUN cases need root and the busybox base; without them they skip locally (fail in CI).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;

fn check(store: &KilnStore, context: &Path) -> std::process::Output {
    store.kiln([
        "build".as_ref(),
        "--check".as_ref(),
        "--progress".as_ref(),
        "plain".as_ref(),
        "-t".as_ref(),
        "checked:1".as_ref(),
        context.as_os_str(),
    ])
}

#[test]
fn passes_on_the_golden_fixture() {
    let store = KilnStore::new();
    let work = temp_dir();
    let ctx = work.path().join("ctx");
    copy_fixture(&fixture("golden"), &ctx);
    let iid = work.path().join("iid");
    let out = store.kiln([
        "build".as_ref(),
        "--check".as_ref(),
        "--iidfile".as_ref(),
        iid.as_os_str(),
        ctx.as_os_str(),
    ]);
    let err = stderr_text(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let id = std::fs::read_to_string(&iid).unwrap();
    assert!(
        err.contains(&format!("reproducible: both builds made {id}")),
        "{err}"
    );
    assert!(err.contains("umask"), "the variations are reported: {err}");
}

#[test]
fn passes_on_the_repro_fixture() {
    if let Err(why) = peer_status("busybox") {
        skip_or_fail("busybox", &why);
        return;
    }
    let store = KilnStore::with_busybox();
    let work = temp_dir();
    let ctx = work.path().join("ctx");
    copy_fixture(&fixture("repro"), &ctx);
    let bundle = TarBuilder::new()
        .dir("lib/", 0o755, 0, 0)
        .file("lib/a.so", b"\x7fELF fake", 0o755, 0, 0)
        .symlink("lib/a.so.1", "a.so")
        .finish();
    write_file(&ctx.join("bundle.tar"), &bundle, 0o644);
    let out = check(&store, &ctx);
    let err = stderr_text(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("reproducible: both builds made sha256:"),
        "{err}"
    );
    // The image is there, as after a plain build.
    store.kiln_ok(["inspect", "checked:1"]);
}

#[test]
fn passes_on_deterministic_run_steps() {
    if !can_run_containers() {
        return;
    }
    let store = KilnStore::with_busybox();
    let work = temp_dir();
    write_file(
        &work.path().join("Dockerfile"),
        b"FROM busybox:test AS one\nRUN echo one > /one && mkdir -p /d && echo x > /d/x\n\
          FROM busybox:test AS two\nRUN echo two > /two\n\
          FROM busybox:test\nCOPY --from=one /one /one\nCOPY --from=two /two /two\n\
          RUN cat /one /two > /both && chmod 0640 /both\n",
        0o644,
    );
    let out = check(&store, work.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
}

/// Asserts a failed check that names `file` and the step `step` (text and line).
fn assert_names(out: &std::process::Output, file: &str, step: &str, line: usize) {
    let err = stderr_text(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("NOT reproducible"), "{err}");
    let entry = err
        .lines()
        .skip_while(|l| !l.contains("files (merged):"))
        .find(|l| l.contains(&format!("changed /{file} ")))
        .unwrap_or_else(|| panic!("no merged entry for /{file}:\n{err}"));
    assert!(
        entry.contains(step),
        "step `{step}` not named in `{entry}`:\n{err}"
    );
    assert!(
        entry.contains(&format!("Dockerfile:{line} ")),
        "line {line} not named in `{entry}`:\n{err}"
    );
    assert!(err.contains("content: sha256:"), "{err}");
}

#[test]
fn fails_naming_the_file_and_step_of_a_run_that_writes_the_time() {
    if !can_run_containers() {
        return;
    }
    let store = KilnStore::with_busybox();
    let work = temp_dir();
    write_file(
        &work.path().join("Dockerfile"),
        b"FROM busybox:test\nRUN echo fixed > /fixed\nRUN date > /built-at\n",
        0o644,
    );
    let out = check(&store, work.path());
    assert_names(&out, "built-at", "RUN date > /built-at", 3);
    // A small text file: the unified diff is shown.
    let err = stderr_text(&out);
    assert!(
        err.contains("--- a/built-at") && err.contains("+++ b/built-at"),
        "{err}"
    );
    assert!(!err.contains("changed /fixed"), "{err}");
}

#[test]
fn fails_naming_the_file_and_step_of_a_run_that_writes_random_bytes() {
    if !can_run_containers() {
        return;
    }
    let store = KilnStore::with_busybox();
    let work = temp_dir();
    write_file(
        &work.path().join("Dockerfile"),
        b"FROM busybox:test\nRUN head -c8 /dev/urandom > /random\n",
        0o644,
    );
    let out = check(&store, work.path());
    assert_names(&out, "random", "RUN head -c8 /dev/urandom > /random", 2);
}

#[test]
fn fails_naming_the_copy_from_a_stage_that_is_not_reproducible() {
    if !can_run_containers() {
        return;
    }
    let store = KilnStore::with_busybox();
    let work = temp_dir();
    write_file(
        &work.path().join("Dockerfile"),
        b"FROM busybox:test AS gen\nRUN head -c16 /dev/urandom | od -x > /token\n\
          FROM scratch\nCOPY --from=gen /token /token\n",
        0o644,
    );
    let out = check(&store, work.path());
    assert_names(&out, "token", "COPY --from=gen /token /token", 4);
}

/// True when /proc/locks shows a process waiting (`->`) for a lock on the file with `inode`.
fn someone_waits_for(inode: u64) -> bool {
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    locks.lines().any(|l| {
        l.contains("->")
            && l.split_whitespace()
                .any(|f| f.rsplit(':').next() == Some(&inode.to_string()))
    })
}

#[test]
fn fails_naming_the_copy_whose_context_file_changes_between_the_builds() {
    let store = KilnStore::new();
    let work = temp_dir();
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    write_file(
        &ctx.join("Dockerfile"),
        b"FROM scratch\nCOPY stable.txt /stable.txt\nCOPY settings.txt /etc/settings.txt\n",
        0o644,
    );
    write_file(&ctx.join("stable.txt"), b"stable\n", 0o644);
    write_file(&ctx.join("settings.txt"), b"mode=old\n", 0o644);

    // Hold the store's index lock, as another kiln command would.
    store.kiln_ok(["images"]);
    let lock_path = store.root().join("lock");
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap();
    let inode = lock_file.metadata().unwrap().ino();
    let held = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .unwrap_or_else(|(_, e)| panic!("flock {}: {e}", lock_path.display()));

    let mut child = store
        .cmd()
        .args(["build", "--check", "--progress", "plain"])
        .arg(&ctx)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !someone_waits_for(inode) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("kiln ended ({status}) before it waited for the index lock");
        }
        assert!(
            Instant::now() < deadline,
            "kiln never waited for the index lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The first build has read the file and waits to record its image: edit the file.
    write_file(&ctx.join("settings.txt"), b"mode=new\n", 0o644);
    drop(held);
    let out = child.wait_with_output().unwrap();
    assert_names(
        &out,
        "etc/settings.txt",
        "COPY settings.txt /etc/settings.txt",
        3,
    );
    let err = stderr_text(&out);
    assert!(
        err.contains("-mode=old") && err.contains("+mode=new"),
        "{err}"
    );
    assert!(!err.contains("changed /stable.txt"), "{err}");
}

#[test]
fn refuses_a_dockerfile_from_standard_input() {
    let store = KilnStore::new();
    let work = temp_dir();
    let out = store.kiln([
        "build".as_ref(),
        "--check".as_ref(),
        "-f".as_ref(),
        "-".as_ref(),
        work.path().as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_text(&out).contains("standard input"),
        "{}",
        stderr_text(&out)
    );
}
