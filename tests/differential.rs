//! Differential tests: the same RUN-free Dockerfile and context built by `docker build`
//! (BuildKit, `--network none`) and by `kiln build`, then both images saved and compared:
//! the final file trees (path, type, mode, owner, content, link target; mtimes ignored) and
//! the runtime config fields (Env, Cmd, Entrypoint, WorkingDir, User, ExposedPorts, Volumes,
//! Labels, StopSignal, Healthcheck, Shell, OnBuild) must be equal.
//!
//! Each case is a checked-in fixture `tests/fixtures/diff/<name>/` (Dockerfile + context);
//! what git cannot hold (modes beyond the executable bit, setuid/sticky, symlinks, empty
//! directories) is made by the case's setup function on a copy of the fixture. The base
//! images are `scratch` and `busybox:test`: the same rootfs tarball imported into docker and
//! into kiln (their layer digests are checked to be equal).
//!
//! Docker's BuildKit adds nothing of its own to RUN-free images (no /etc/hosts, no
//! /etc/resolv.conf: those appear only after RUN steps), so no path is ignored; the only
//! normalization is in `common::RuntimeConfig` (null and "" fields count as absent).
//!
//! Must not: use RUN (kiln has no runner yet), a registry or the network.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

/// One differential case: a fixture, the build flags and a setup step on the copied context.
struct Case<'a> {
    fixture: &'a str,
    /// Distinguishes several cases that share a fixture (different targets or args).
    variant: &'a str,
    build_args: &'a [&'a str],
    target: Option<&'a str>,
    setup: fn(&Path),
    /// A fixture built first, by both builders, under this tag (a base image for the case).
    parent: Option<(&'a str, &'a str)>,
}

impl Default for Case<'_> {
    fn default() -> Self {
        Case {
            fixture: "",
            variant: "",
            build_args: &[],
            target: None,
            setup: |_| {},
            parent: None,
        }
    }
}

fn check(case: Case) {
    require_peer!("docker", "busybox");
    let name = if case.variant.is_empty() {
        case.fixture.to_string()
    } else {
        format!("{}-{}", case.fixture, case.variant)
    };
    let work = temp_dir();
    let ctx = work.path().join("context");
    copy_fixture(&fixture(&format!("diff/{}", case.fixture)), &ctx);
    (case.setup)(&ctx);
    let dockerfile = std::fs::read_to_string(ctx.join("Dockerfile")).expect("read Dockerfile");
    if dockerfile.contains(BUSYBOX) || case.build_args.iter().any(|a| a.contains(BUSYBOX)) {
        docker_busybox();
    }
    let store = shared_store();
    if let Some((parent_fixture, parent_tag)) = case.parent {
        docker_busybox();
        let parent_ctx = work.path().join("parent");
        copy_fixture(&fixture(&format!("diff/{parent_fixture}")), &parent_ctx);
        run_ok(
            docker()
                .args(["build", "--network", "none", "-q", "-t", parent_tag])
                .arg(&parent_ctx),
        );
        store.kiln_ok([
            "build".as_ref(),
            "-t".as_ref(),
            parent_tag.as_ref(),
            parent_ctx.as_os_str(),
        ]);
    }

    let mut flags: Vec<String> = Vec::new();
    for a in case.build_args {
        flags.push("--build-arg".into());
        flags.push(a.to_string());
    }
    if let Some(t) = case.target {
        flags.push("--target".into());
        flags.push(t.into());
    }
    let tag = format!("kiln-e2e/diff:{}", name.replace('_', "-"));

    // docker
    let docker_tar = work.path().join("docker.tar");
    let built = run(docker()
        .args(["build", "--network", "none", "-q", "-t", &tag])
        .args(&flags)
        .arg(&ctx));
    assert_success(&format!("docker build of case {name}"), &built);
    docker_save(&tag, &docker_tar);
    docker_rmi(&tag);
    if let Some((_, parent_tag)) = case.parent {
        docker_rmi(parent_tag);
    }

    // kiln
    let kiln_tar = work.path().join("kiln.tar");
    let built = store.kiln(
        ["build", "--progress", "plain", "-t", &tag]
            .iter()
            .map(|s| s.to_string())
            .chain(flags.iter().cloned())
            .chain([ctx.to_string_lossy().into_owned()]),
    );
    assert_success(&format!("kiln build of case {name}"), &built);
    store.save(&tag, &kiln_tar);

    let d = read_saved_image(&docker_tar);
    let k = read_saved_image(&kiln_tar);
    let mut problems = diff_trees("docker", &d.fs(), "kiln", &k.fs());
    problems.extend(diff_configs(
        "docker",
        &d.runtime_config(),
        "kiln",
        &k.runtime_config(),
    ));
    if let (Some(dl), Some(kl)) = (d.diff_ids().first(), k.diff_ids().first()) {
        if dockerfile
            .lines()
            .any(|l| l.trim() == format!("FROM {BUSYBOX}"))
            && case.target.is_none()
            && dl != kl
        {
            problems.push(format!(
                "base layer differs: docker {dl}, kiln {kl} (the same busybox tarball)"
            ));
        }
    }
    if !problems.is_empty() {
        panic!(
            "case {name}: docker and kiln disagree ({} differences)\n{}\n--- Dockerfile\n{dockerfile}",
            problems.len(),
            problems.join("\n")
        );
    }
}

/// A case both builders must refuse: docker build fails, kiln build exits 1 with a
/// diagnostic, and kiln names no image.
fn check_rejected(fixture_name: &str) {
    require_peer!("docker", "busybox");
    let work = temp_dir();
    let ctx = work.path().join("context");
    copy_fixture(&fixture(&format!("diff/{fixture_name}")), &ctx);
    let dockerfile = std::fs::read_to_string(ctx.join("Dockerfile")).expect("read Dockerfile");
    if dockerfile.contains(BUSYBOX) {
        docker_busybox();
    }
    let tag = format!("kiln-e2e/reject:{}", fixture_name.replace('_', "-"));
    let d = run(docker()
        .args(["build", "--network", "none", "-q", "-t", &tag])
        .arg(&ctx));
    docker_rmi(&tag);
    assert!(
        !d.status.success(),
        "docker accepted case {fixture_name}; the case is wrong\n{dockerfile}"
    );
    let store = shared_store();
    let k = store.kiln([
        "build".as_ref(),
        "--progress".as_ref(),
        "plain".as_ref(),
        "-t".as_ref(),
        tag.as_ref(),
        ctx.as_os_str(),
    ]);
    assert_eq!(
        k.status.code(),
        Some(1),
        "kiln build of case {fixture_name} should fail with exit 1 like docker (docker said: {})\n--- kiln stdout\n{}\n--- kiln stderr\n{}",
        stderr_text(&d).lines().last().unwrap_or_default(),
        stdout_text(&k),
        stderr_text(&k)
    );
    assert!(
        !stderr_text(&k).trim().is_empty(),
        "kiln failed without saying why"
    );
    let inspect = store.kiln(["inspect", &tag]);
    assert!(
        !inspect.status.success(),
        "kiln failed but still tagged {tag}"
    );
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

fn symlink(target: &str, link: &Path) {
    std::os::unix::fs::symlink(target, link)
        .unwrap_or_else(|e| panic!("symlink {}: {e}", link.display()));
}

/// One `#[test]` per case, so each failure shows on its own.
macro_rules! case {
    ($test:ident, $($field:ident : $value:expr),* $(,)?) => {
        #[test]
        fn $test() {
            check(Case { $($field: $value,)* ..Case::default() });
        }
    };
}

case!(copy_file, fixture: "copy_file");
case!(copy_into_existing_dir, fixture: "copy_into_existing_dir");
case!(copy_dir, fixture: "copy_dir");
case!(wildcards, fixture: "wildcards");
case!(chown_numeric, fixture: "chown_numeric");
case!(chown_names, fixture: "chown_names");
case!(chmod_octal, fixture: "chmod");
case!(copy_from_stage, fixture: "copy_from_stage");
case!(copy_from_image, fixture: "copy_from_image");
case!(target_last, fixture: "target", variant: "last");
case!(target_middle, fixture: "target", variant: "middle", target: Some("middle"));
case!(target_base, fixture: "target", variant: "base", target: Some("base"));
case!(add_archives, fixture: "add_archives");
case!(dockerignore, fixture: "dockerignore");
case!(variables, fixture: "variables");
case!(build_args_defaults, fixture: "build_args");
case!(
    build_args_overridden,
    fixture: "build_args",
    variant: "overridden",
    build_args: &["VERSION=2.5", "CHANNEL=beta", "BASE=busybox:test", "EMPTY=filled"],
);
case!(metadata_instructions, fixture: "metadata");
case!(
    healthcheck_shell_form,
    fixture: "healthcheck_forms",
    variant: "shell",
    target: Some("shellform"),
);
case!(
    healthcheck_none,
    fixture: "healthcheck_forms",
    variant: "none",
    target: Some("none"),
);
case!(
    healthcheck_defaults,
    fixture: "healthcheck_forms",
    variant: "defaults",
    target: Some("defaults"),
);
case!(
    shell_entrypoint_ignores_cmd,
    fixture: "cmd_entrypoint",
    variant: "shell-ep",
    target: Some("shell_entrypoint"),
);
case!(
    exec_entrypoint_with_cmd,
    fixture: "cmd_entrypoint",
    variant: "exec-ep",
    target: Some("exec_entrypoint"),
);
case!(
    entrypoint_clears_inherited_cmd,
    fixture: "cmd_entrypoint",
    variant: "clears",
    target: Some("entrypoint_clears_cmd"),
);
case!(
    cmd_keeps_inherited_entrypoint,
    fixture: "cmd_entrypoint",
    variant: "keeps",
    target: Some("cmd_keeps_entrypoint"),
);
case!(
    custom_shell_wraps_shell_forms,
    fixture: "cmd_entrypoint",
    variant: "shell",
    target: Some("custom_shell"),
);
case!(
    last_cmd_wins,
    fixture: "cmd_entrypoint",
    variant: "last-cmd",
    target: Some("last_cmd_wins"),
);
case!(
    empty_cmd_and_entrypoint,
    fixture: "cmd_entrypoint",
    variant: "empty",
    target: Some("empty_forms"),
);
case!(workdir, fixture: "workdir");
// BuildKit accepts a COPY whose only source is a wildcard matching nothing.
// (Docker 20.10 also accepts `COPY a b /dst` without a trailing slash, writing a file, and an
// unknown --chown user, using root; later BuildKit refuses both, and so does kiln: those
// two are checked in tests/cli.rs, not here.)
case!(wildcard_no_match, fixture: "wildcard_no_match");
case!(onbuild_triggers, fixture: "onbuild");
case!(
    onbuild_triggers_from_image,
    fixture: "onbuild_image_child",
    parent: Some(("onbuild_image_parent", "kiln-e2e/onbuild-parent:1")),
);
case!(
    symlinks_in_context,
    fixture: "symlinks",
    setup: |ctx| {
        symlink("a.txt", &ctx.join("link-to-file"));
        symlink("dir", &ctx.join("link-to-dir"));
        symlink("nowhere", &ctx.join("dangling"));
        symlink("/etc/passwd", &ctx.join("absolute"));
        symlink("../a.txt", &ctx.join("dir/up-link"));
    },
);
case!(
    special_modes,
    fixture: "special_modes",
    setup: |ctx| {
        chmod(&ctx.join("suid"), 0o4755);
        chmod(&ctx.join("sgid"), 0o2755);
        chmod(&ctx.join("private"), 0o600);
        chmod(&ctx.join("readonly"), 0o444);
        chmod(&ctx.join("nomode"), 0o000);
        chmod(&ctx.join("exec"), 0o711);
        chmod(&ctx.join("stickydir"), 0o1777);
        chmod(&ctx.join("privdir/keep"), 0o640);
        chmod(&ctx.join("privdir"), 0o700);
    },
);
case!(
    empty_files_and_spaces,
    fixture: "empty_and_spaces",
    setup: |ctx| {
        std::fs::create_dir(ctx.join("emptydir")).expect("mkdir emptydir");
        chmod(&ctx.join("emptydir"), 0o750);
    },
);

macro_rules! rejected {
    ($test:ident) => {
        #[test]
        fn $test() {
            check_rejected(stringify!($test));
        }
    };
}

rejected!(reject_quoted_shell_source);
rejected!(reject_missing_source);
