//! Differential tests of RUN: the same small Dockerfile (FROM the busybox base) and context
//! built by `docker build` (BuildKit, `--network none`) and by `kiln build --network none`,
//! both images saved and compared with `common::diff_images`: the final file trees (path,
//! type, mode, owner, size, content hash, link target; mtimes ignored), the hard-link
//! groups, the runtime config (Env, Cmd, Entrypoint, WorkingDir, User, ...), the number of
//! layers and the history entries after the base image's (`created_by`, `empty_layer`).
//!
//! No path is ignored: what a RUN step leaves behind besides its own changes (the mount
//! points of /proc, /dev, /sys, /etc/hosts, /etc/resolv.conf, mount targets) must be the same
//! on both sides.
//!
//! Differences found against dockerd 20.10 (BuildKit 0.8, moby exporter), where kiln does
//! what current BuildKit does; each case lists its expected differences exactly
//! (`docker_20_10_only`), and any other difference fails it:
//! - mount points: docker's RUN layers keep the empty directories the sandbox created as
//!   mount targets (`/src`, `/o`, `/tmp/o`, `/c`, `/mnt/etc`) and, over a base without them,
//!   `/dev`, `/proc`, `/sys` and `/etc`; kiln removes them (newer BuildKit removes mount-target
//!   stubs too);
//! - a RUN that changes nothing: docker still writes a layer (holding the copied-up `etc/`),
//!   kiln writes none and marks the history entry `empty_layer` (BuildKit's own image
//!   exporter drops empty layers too; the moby exporter does not);
//! - history: kiln now writes `ARG` entries, the `RUN |N K=V` prefix and `SHELL [/bin/sh
//!   -ec]` as BuildKit does; it still keeps `--from=` in COPY's history text, where BuildKit
//!   writes `COPY /bin /bin` (listed in `mount_points_absent_from_base`).
//!
//! Must not: use a registry or the network (both builders run steps with `--network none`).

use crate::common;

use std::path::Path;
use std::sync::OnceLock;

use common::*;

/// One case: a Dockerfile, its context files and build arguments.
struct Case<'a> {
    name: &'a str,
    dockerfile: &'a str,
    files: &'a [(&'a str, &'a str)],
    build_args: &'a [&'a str],
    /// Whether the final stage's history starts with the busybox base's entries (false for
    /// a final stage FROM scratch).
    on_busybox: bool,
    /// The differences expected from dockerd 20.10's BuildKit (0.8 and its moby exporter)
    /// where current BuildKit does what kiln does (see the file's header), exactly as
    /// `diff_images` words them. The case fails if any other difference appears or if one of
    /// these does not.
    docker_20_10_only: &'a [&'a str],
}

impl Default for Case<'_> {
    fn default() -> Self {
        Case {
            name: "",
            dockerfile: "",
            files: &[],
            build_args: &[],
            on_busybox: true,
            docker_20_10_only: &[],
        }
    }
}

/// How many history entries the busybox base has in docker and in kiln.
fn base_history() -> (usize, usize) {
    static LEN: OnceLock<(usize, usize)> = OnceLock::new();
    *LEN.get_or_init(|| {
        docker_busybox();
        let work = temp_dir();
        let d = work.path().join("docker.tar");
        let k = work.path().join("kiln.tar");
        docker_save(BUSYBOX, &d);
        shared_store().save(BUSYBOX, &k);
        (
            history_fields(&read_saved_image(&d).config).len(),
            history_fields(&read_saved_image(&k).config).len(),
        )
    })
}

fn write_context(dir: &Path, case: &Case) {
    write_file(&dir.join("Dockerfile"), case.dockerfile.as_bytes(), 0o644);
    for (name, content) in case.files {
        write_file(&dir.join(name), content.as_bytes(), 0o644);
    }
}

fn build_flags(case: &Case) -> Vec<String> {
    let mut flags = vec!["--network".to_string(), "none".to_string()];
    for a in case.build_args {
        flags.push("--build-arg".into());
        flags.push(a.to_string());
    }
    flags
}

fn tag_of(case: &Case) -> String {
    format!("kiln-e2e/diffrun:{}", case.name.replace('_', "-"))
}

fn docker_build(ctx: &Path, case: &Case) -> std::process::Output {
    run(docker()
        .args(["build", "-q", "-t", &tag_of(case)])
        .args(build_flags(case))
        .arg(ctx))
}

fn kiln_build(store: &KilnStore, ctx: &Path, case: &Case) -> std::process::Output {
    store.kiln(
        ["build", "--progress", "plain", "-t", &tag_of(case)]
            .iter()
            .map(|s| s.to_string())
            .chain(build_flags(case))
            .chain([ctx.to_string_lossy().into_owned()]),
    )
}

/// Build the case with both, compare, and return both images (docker's, kiln's) for the
/// case's own further checks.
fn check(case: Case) -> (SavedImage, SavedImage) {
    let (d, k, problems) = compare(&case);
    if !problems.is_empty() {
        panic!("{problems}");
    }
    (d, k)
}

/// Build the case with both and compare: both images and the differences (empty when none).
fn compare(case: &Case) -> (SavedImage, SavedImage, String) {
    docker_busybox();
    let work = temp_dir();
    let ctx = work.path().join("context");
    write_context(&ctx, case);
    let tag = tag_of(case);

    let built = docker_build(&ctx, case);
    assert_success(&format!("docker build of case {}", case.name), &built);
    let docker_tar = work.path().join("docker.tar");
    docker_save(&tag, &docker_tar);
    docker_rmi(&tag);

    let store = shared_store();
    let built = kiln_build(store, &ctx, case);
    assert_success(&format!("kiln build of case {}", case.name), &built);
    let kiln_tar = work.path().join("kiln.tar");
    store.save(&tag, &kiln_tar);

    let d = read_saved_image(&docker_tar);
    let k = read_saved_image(&kiln_tar);
    let (skip_d, skip_k) = if case.on_busybox {
        base_history()
    } else {
        (0, 0)
    };
    let found = diff_images("docker", &d, skip_d, "kiln", &k, skip_k);
    let mut problems: Vec<String> = found
        .iter()
        .filter(|p| !case.docker_20_10_only.contains(&p.as_str()))
        .cloned()
        .collect();
    for expected in case.docker_20_10_only {
        if !found.iter().any(|p| p == expected) {
            problems.push(format!(
                "expected dockerd 20.10 difference not seen: {expected}"
            ));
        }
    }
    let report = if problems.is_empty() {
        String::new()
    } else {
        format!(
            "case {}: docker and kiln disagree ({} differences)\n{}\n--- Dockerfile\n{}",
            case.name,
            problems.len(),
            problems.join("\n"),
            case.dockerfile
        )
    };
    (d, k, report)
}

fn file_content(tree: &FsTree, path: &str, expected: &str) {
    let e = tree
        .get(path)
        .unwrap_or_else(|| panic!("/{path} is missing"));
    assert_eq!(e.kind, FsKind::File, "/{path}");
    assert_eq!(
        e.sha256.as_deref(),
        Some(sha256_hex(expected.as_bytes()).as_str()),
        "/{path} should hold {expected:?}"
    );
}

macro_rules! case {
    ($test:ident, $($field:ident : $value:expr),* $(,)?) => {
        #[test]
        fn $test() {
            require_peer!("docker", "busybox");
            check(Case { name: stringify!($test), $($field: $value,)* ..Case::default() });
        }
    };
}

case!(
    whiteouts,
    dockerfile: "FROM busybox:test\n\
        RUN mkdir -p /data/sub/deeper && echo a > /data/a && echo b > /data/sub/b \
            && echo c > /data/sub/deeper/c && echo keep > /data/keep\n\
        RUN rm /data/a && rm -rf /data/sub && rm /bin/wc && rm -rf /home/app\n",
);

case!(
    opaque_directory,
    dockerfile: "FROM busybox:test\n\
        RUN mkdir -p /d/x && echo 1 > /d/x/one && echo 2 > /d/two && chmod 0750 /d\n\
        RUN rm -rf /d && mkdir /d && echo 3 > /d/three\n\
        RUN rm -rf /home && mkdir -p /home/other && echo o > /home/other/f\n",
);

/// A case whose images must also hold these hard-link groups (so that equal groups on both
/// sides are not merely both empty).
fn check_links(case: Case, groups: &[&[&str]]) {
    let (d, k) = check(case);
    for (who, img) in [("docker", &d), ("kiln", &k)] {
        let have = hardlink_groups(&img.layers());
        for g in groups {
            let g: Vec<String> = g.iter().map(|p| p.to_string()).collect();
            assert!(
                have.contains(&g),
                "{who}: no hard-link group {g:?} in {have:?}"
            );
        }
    }
}

#[test]
fn links_in_one_step() {
    require_peer!("docker", "busybox");
    check_links(
        Case {
            name: "links_in_one_step",
            dockerfile: "FROM busybox:test\n\
                RUN echo hi > /f && ln /f /hard && ln /f /hard2 && ln -s /f /soft \
                    && ln -s nowhere /dangling && mkdir /dir && ln -s ../f /dir/rel\n",
            ..Case::default()
        },
        &[&["f", "hard", "hard2"]],
    );
}

#[test]
fn hardlink_to_lower_file() {
    require_peer!("docker", "busybox");
    check_links(
        Case {
            name: "hardlink_to_lower_file",
            dockerfile: "FROM busybox:test\n\
                RUN echo lower > /lower\n\
                RUN ln /lower /upper-link && ln /etc/passwd /passwd-link\n",
            ..Case::default()
        },
        &[&["lower", "upper-link"], &["etc/passwd", "passwd-link"]],
    );
}

case!(
    permissions_and_owners,
    dockerfile: "FROM busybox:test\n\
        RUN echo x > /suid && chmod 4755 /suid \
            && mkdir /sticky && chmod 1777 /sticky \
            && echo s > /secret && chmod 0600 /secret \
            && echo o > /owned && chown 1000:1000 /owned \
            && mkdir -m 0700 /private && mkdir -m 2750 /sgid \
            && mkdir /owned-dir && chown 1000:1000 /owned-dir && chmod 0600 /etc/group\n",
);

case!(
    users,
    dockerfile: "FROM busybox:test\n\
        USER app\n\
        RUN touch /tmp/app-file && id > /tmp/id-app && touch /home/app/mine\n\
        USER 1000:1000\n\
        RUN touch /tmp/numeric-file && id > /tmp/id-numeric\n\
        USER root\n\
        RUN id > /id-root\n\
        USER 1000:1000\n",
);

case!(
    shell_instruction,
    dockerfile: "FROM busybox:test\n\
        SHELL [\"/bin/sh\", \"-ec\"]\n\
        RUN echo \"$0 $1\" > /args; case $- in *e*) echo errexit > /flags;; esac\n\
        RUN [\"/bin/sh\", \"-c\", \"echo exec-form > /exec\"]\n",
);

const VARIABLES: &str = "FROM busybox:test\n\
    ARG A=default-a\n\
    ARG B\n\
    ARG E=from-arg\n\
    ENV E=from-env\n\
    RUN echo \"A=$A B=$B E=$E\" > /vars && env | sort > /env\n\
    ENV A=env-override\n\
    RUN echo \"$A\" > /a2\n";

case!(arg_env_defaults, dockerfile: VARIABLES);
case!(
    arg_env_build_args,
    dockerfile: VARIABLES,
    build_args: &["A=given-a", "B=given-b", "E=given-e"],
);

case!(
    bind_mount_context,
    dockerfile: "FROM busybox:test\n\
        RUN --mount=type=bind,target=/src cp /src/x /x && cp -r /src/sub /sub\n",
    files: &[("x", "from the context\n"), ("sub/y", "nested\n")],
    docker_20_10_only: &["/src: only in docker (Dir mode 755 owner 0:0)"],
);

case!(
    bind_mount_stage,
    dockerfile: "FROM busybox:test AS producer\n\
        RUN mkdir /out && echo produced > /out/p && echo other > /not-mounted\n\
        FROM busybox:test\n\
        RUN --mount=type=bind,from=producer,source=/out,target=/o cp /o/p /p\n\
        RUN --mount=type=bind,from=producer,source=/out,target=/tmp/o cat /tmp/o/p > /p2\n",
    docker_20_10_only: &[
        "/o: only in docker (Dir mode 755 owner 0:0)",
        "/tmp/o: only in docker (Dir mode 755 owner 0:0)",
    ],
);

case!(
    run_changes_nothing,
    dockerfile: "FROM busybox:test\n\
        RUN true\n\
        RUN touch /newfile\n\
        RUN test -f /newfile\n",
    docker_20_10_only: &[
        "layers: docker has 4, kiln has 2",
        "history[+0]: docker has \"RUN /bin/sh -c true # buildkit\" empty_layer=false, kiln has \"RUN /bin/sh -c true # buildkit\" empty_layer=true",
        "history[+2]: docker has \"RUN /bin/sh -c test -f /newfile # buildkit\" empty_layer=false, kiln has \"RUN /bin/sh -c test -f /newfile # buildkit\" empty_layer=true",
    ],
);

case!(
    etc_files_of_busybox_base,
    dockerfile: "FROM busybox:test\n\
        RUN test -e /etc/hosts && test -e /etc/resolv.conf && echo ok > /etc-ok\n",
);

// The base has no /etc, /proc, /dev or /sys: the sandbox must make those mount points,
// and neither they nor /etc/hosts or /etc/resolv.conf may reach the layer.
case!(
    mount_points_absent_from_base,
    dockerfile: "FROM busybox:test AS bb\n\
        FROM scratch\n\
        COPY --from=bb /bin /bin\n\
        RUN test -d /proc/self && test -d /dev && test -d /sys && test -e /etc/hosts \
            && echo made > /made\n\
        RUN --mount=type=bind,from=bb,source=/etc,target=/mnt/etc cp /mnt/etc/passwd /passwd\n",
    on_busybox: false,
    docker_20_10_only: &[
        "/dev: only in docker (Dir mode 755 owner 0:0)",
        "/etc: only in docker (Dir mode 755 owner 0:0)",
        "/mnt: only in docker (Dir mode 755 owner 0:0)",
        "/mnt/etc: only in docker (Dir mode 755 owner 0:0)",
        "/proc: only in docker (Dir mode 755 owner 0:0)",
        "/sys: only in docker (Dir mode 755 owner 0:0)",
        // Not a 20.10 quirk: kiln's COPY history keeps `--from=`; see the closing note.
        "history[+0]: docker has \"COPY /bin /bin # buildkit\" empty_layer=false, kiln has \"COPY --from=bb /bin /bin # buildkit\" empty_layer=false",
    ],
);

#[test]
fn cache_mount() {
    require_peer!("docker", "busybox");
    // A fresh cache id per run, so that neither builder's earlier runs (or layer cache)
    // decide what the second build sees.
    let id = format!(
        "kiln-e2e-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let first = format!(
        "FROM busybox:test\n\
         RUN --mount=type=cache,id={id},target=/c echo cached > /c/f && echo image > /img\n"
    );
    // Both builds run and are checked before any difference is reported.
    let stub = ["/c: only in docker (Dir mode 755 owner 0:0)"];
    let (d, k, mut problems) = compare(&Case {
        name: "cache_mount_first",
        dockerfile: &first,
        docker_20_10_only: &stub,
        ..Case::default()
    });
    for (who, img) in [("docker", &d), ("kiln", &k)] {
        let fs = img.fs();
        file_content(&fs, "img", "image\n");
        assert!(
            !fs.contains_key("c/f"),
            "{who}: the cache mount's content reached the image"
        );
    }
    let second = format!(
        "FROM busybox:test\n\
         RUN --mount=type=cache,id={id},target=/c cat /c/f > /seen && echo more >> /c/f\n"
    );
    let (d, k, more) = compare(&Case {
        name: "cache_mount_second",
        dockerfile: &second,
        docker_20_10_only: &stub,
        ..Case::default()
    });
    for img in [&d, &k] {
        file_content(&img.fs(), "seen", "cached\n");
    }
    if !problems.is_empty() && !more.is_empty() {
        problems.push('\n');
    }
    problems.push_str(&more);
    assert!(problems.is_empty(), "{problems}");
}

#[test]
fn failing_run() {
    require_peer!("docker", "busybox");
    docker_busybox();
    let case = Case {
        name: "failing_run",
        dockerfile: "FROM busybox:test\n\
            RUN echo partial > /partial\n\
            RUN echo before-failing && exit 3\n",
        ..Case::default()
    };
    let work = temp_dir();
    let ctx = work.path().join("context");
    write_context(&ctx, &case);
    let d = docker_build(&ctx, &case);
    docker_rmi(&tag_of(&case));
    assert!(
        !d.status.success(),
        "docker accepted a failing RUN; the case is wrong"
    );
    assert!(
        stderr_text(&d).contains("exit code: 3"),
        "docker's error: {}",
        stderr_text(&d)
    );
    let store = shared_store();
    let k = kiln_build(store, &ctx, &case);
    let err = stderr_text(&k);
    assert_eq!(
        k.status.code(),
        Some(1),
        "kiln build should exit 1\n--- stderr\n{err}"
    );
    assert!(
        err.contains("echo before-failing && exit 3"),
        "kiln's error should name the command\n{err}"
    );
    assert!(
        err.contains("exit code: 3"),
        "kiln's error should give the exit code\n{err}"
    );
    assert!(
        !store.kiln(["inspect", &tag_of(&case)]).status.success(),
        "kiln tagged the image of a failed build"
    );
}

/// Heredocs need Dockerfile syntax 1.4 (BuildKit 0.10); dockerd 20.10's built-in frontend
/// (BuildKit 0.8) refuses them ("unknown instruction"). When docker refuses, kiln is checked
/// against the tree written here from the Dockerfile reference: a RUN that is only a heredoc
/// runs its body with the default shell; a heredoc after a command is that command's stdin
/// (`sh` reads it as a script; `cat > file` writes it); nothing else (no script file, no
/// mount point) reaches the layers. When docker accepts them, the two are compared as usual.
#[test]
fn heredocs() {
    require_peer!("docker", "busybox");
    docker_busybox();
    let case = Case {
        name: "heredocs",
        dockerfile: "FROM busybox:test\n\
            RUN <<EOF\n\
            echo one > /h1\n\
            echo two >> /h1\n\
            EOF\n\
            RUN <<EOT sh\n\
            echo three > /h2\n\
            EOT\n\
            RUN cat <<'A' > /h3\n\
            alpha $NOT_EXPANDED\n\
            A\n",
        ..Case::default()
    };
    let work = temp_dir();
    let ctx = work.path().join("context");
    write_context(&ctx, &case);
    let d = docker_build(&ctx, &case);
    docker_rmi(&tag_of(&case));
    if d.status.success() {
        check(case);
        return;
    }
    eprintln!(
        "docker refused the heredocs ({}); checking kiln against the expected tree",
        stderr_text(&d).lines().last().unwrap_or_default()
    );
    let store = shared_store();
    let built = kiln_build(store, &ctx, &case);
    assert_success("kiln build of heredocs", &built);
    let tar = work.path().join("kiln.tar");
    store.save(&tag_of(&case), &tar);
    let k = read_saved_image(&tar);

    let mut expected = FsTree::new();
    apply_layer(
        &mut expected,
        &std::fs::read(&busybox().tarball).expect("read busybox tarball"),
    );
    for (path, content) in [
        ("h1", "one\ntwo\n"),
        ("h2", "three\n"),
        ("h3", "alpha $NOT_EXPANDED\n"),
    ] {
        expected.insert(
            path.to_string(),
            FsEntry {
                kind: FsKind::File,
                mode: 0o644,
                uid: 0,
                gid: 0,
                sha256: Some(sha256_hex(content.as_bytes())),
                size: content.len() as u64,
                link: None,
            },
        );
    }
    let mut problems = diff_trees("expected", &expected, "kiln", &k.fs());
    if k.diff_ids().len() != 4 {
        problems.push(format!(
            "layers: expected 4 (base + 3 RUN), kiln has {}",
            k.diff_ids().len()
        ));
    }
    let history: Vec<_> = history_fields(&k.config)
        .into_iter()
        .skip(base_history().1)
        .collect();
    if history.len() != 3 || history.iter().any(|(_, empty)| *empty) {
        problems.push(format!(
            "history after the base: expected 3 RUN entries with layers, kiln has {history:?}"
        ));
    }
    assert!(
        problems.is_empty(),
        "heredocs: kiln differs from the expected tree\n{}",
        problems.join("\n")
    );
}

/// The same RUN Dockerfile built into two fresh stores gives byte-identical `kiln save`
/// tarballs.
#[test]
fn run_build_is_deterministic() {
    require_peer!("busybox");
    let work = temp_dir();
    let ctx = work.path().join("context");
    write_file(
        &ctx.join("Dockerfile"),
        b"FROM busybox:test\n\
          RUN mkdir -p /a/b && echo x > /a/b/f && ln /a/b/f /a/hard && ln -s b/f /a/soft \
              && chmod 4755 /a/b/f && chown 1000:1000 /a/b && rm /bin/wc\n\
          RUN --mount=type=cache,target=/c echo c > /c/x && echo y > /y\n\
          RUN rm -rf /a/b && mkdir /a/b && touch /a/b/g\n\
          CMD [\"sh\"]\n",
        0o644,
    );
    let mut saved = Vec::new();
    for i in 0..2 {
        let store = KilnStore::with_busybox();
        store.kiln_ok([
            "build".as_ref(),
            "--network".as_ref(),
            "none".as_ref(),
            "-t".as_ref(),
            "kiln-e2e/det:1".as_ref(),
            ctx.as_os_str(),
        ]);
        let tar = work.path().join(format!("save{i}.tar"));
        store.save("kiln-e2e/det:1", &tar);
        saved.push(tar);
    }
    let out = run(std::process::Command::new("cmp")
        .arg(&saved[0])
        .arg(&saved[1]));
    assert!(
        out.status.success(),
        "two builds of the same RUN Dockerfile differ: {}",
        stdout_text(&out)
    );
}
