//! The builder's RUN logic with a fake step runner (no sandbox, no root): the spec it is
//! handed, the layer made from what the step leaves in the upper directory, the cache, a
//! failing step, secrets that never reach the store, and the base image a plan names being
//! the one built from even when its tag moves between planning and building.

use crate::store_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Mutex;

use kiln_compiler::context::StatCache;
use kiln_compiler::frontend::FrontendInput;
use kiln_compiler::plan::BuildOptions;
use kiln_compiler::plan::RunNetwork;
use kiln_runtime::build::{self, BuildError, BuildSettings, Event, Progress, StepExit, StepRunner};
use kiln_runtime::sandbox::spec::{ContainerSpec, MountKind, Network};
use kiln_runtime::store::Store;

struct Quiet;
impl Progress for Quiet {
    fn event(&self, _: Event) {}
}

/// Plays the step: records the spec, then writes into the upper directory what `effect`
/// says, and exits with `code`.
struct Fake {
    specs: Mutex<Vec<ContainerSpec>>,
    code: i32,
}

impl StepRunner for Fake {
    fn run(
        &self,
        spec: &ContainerSpec,
        output: &mut dyn FnMut(&str),
    ) -> Result<StepExit, BuildError> {
        output("fake output line");
        let upper = &spec.rootfs.upper;
        std::fs::create_dir_all(upper.join("app")).unwrap();
        std::fs::write(upper.join("app/made-by-run"), spec.process.args.join(" ")).unwrap();
        std::fs::set_permissions(upper.join("app"), std::fs::Permissions::from_mode(0o750))
            .unwrap();
        // A mount point set-up would have created: it must not reach the layer.
        std::fs::create_dir_all(upper.join("run/secrets")).unwrap();
        std::fs::write(upper.join("run/secrets/tok"), b"").unwrap();
        self.specs.lock().unwrap().push(spec.clone());
        Ok(StepExit {
            code: self.code,
            stubs: vec![
                "/run".into(),
                "/run/secrets".into(),
                "/run/secrets/tok".into(),
            ],
        })
    }
}

fn plan(ctx: &Path, dockerfile: &str, store: &Store) -> kiln_compiler::plan::Plan {
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    let input = FrontendInput {
        context: ctx.to_path_buf(),
        dockerfile: None,
    };
    let opts = BuildOptions {
        network: RunNetwork::None,
        source_date_epoch: Some(1_700_000_000),
        ..Default::default()
    };
    let (_, lowered) = kiln_compiler::frontend::plan(&input, &opts, &StatCache::default(), store)
        .map_err(|e| format!("{e:?}"))
        .unwrap();
    lowered.plan
}

fn layer_paths(store: &Store, image: &kiln_runtime::store::Image) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for l in &image.manifest.layers {
        let mut a = tar::Archive::new(store.open_blob(&l.digest).unwrap());
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            out.push((
                e.path().unwrap().display().to_string(),
                e.header().mtime().unwrap(),
            ));
        }
    }
    out
}

#[test]
fn a_run_step_becomes_a_layer_of_its_upper_directory() {
    let root = tempfile::tempdir().unwrap();
    let ctx = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let p = plan(
        ctx.path(),
        "FROM scratch\nRUN --mount=type=secret,id=tok make all\n",
        &store,
    );
    let fake = Fake {
        specs: Mutex::new(Vec::new()),
        code: 0,
    };
    let mut settings = BuildSettings::default();
    settings
        .secrets
        .0
        .insert("tok".into(), b"hunter2-secret".to_vec().into());
    let built = build::build(&store, &p, &settings, &fake, &Quiet).unwrap();
    let specs = fake.specs.lock().unwrap().clone();
    assert_eq!(specs.len(), 1);
    let spec = &specs[0];
    assert_eq!(spec.process.args, ["/bin/sh", "-c", "make all"]);
    assert_eq!(spec.network, Network::None);
    assert_eq!(spec.capabilities, 0xa80425fb);
    assert!(spec.seccomp);
    assert!(spec
        .mounts
        .iter()
        .any(|m| m.target == "/run/secrets/tok" && matches!(&m.kind, MountKind::File { content, mode: 0o400, .. } if content == b"hunter2-secret")));
    let paths = layer_paths(&store, &built.image);
    let names: Vec<&str> = paths.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        names,
        ["app/", "app/made-by-run"],
        "mount stubs must not reach the layer"
    );
    assert!(paths.iter().all(|(_, m)| *m == 1_700_000_000));

    // Cached: the runner is not called again.
    let again = build::build(&store, &p, &settings, &fake, &Quiet).unwrap();
    assert_eq!(again.cached, 1);
    assert_eq!(fake.specs.lock().unwrap().len(), 1);

    // The secret's bytes are nowhere in the store.
    for entry in walkdir::WalkDir::new(root.path()).into_iter().flatten() {
        if entry.file_type().is_file() {
            let bytes = std::fs::read(entry.path()).unwrap_or_default();
            assert!(
                !bytes.windows(14).any(|w| w == b"hunter2-secret"),
                "secret in {}",
                entry.path().display()
            );
        }
    }
}

#[test]
fn a_failing_step_fails_the_build_with_its_code_and_output() {
    let root = tempfile::tempdir().unwrap();
    let ctx = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let p = plan(ctx.path(), "FROM scratch\nRUN false\n", &store);
    let fake = Fake {
        specs: Mutex::new(Vec::new()),
        code: 3,
    };
    let err = build::build(&store, &p, &BuildSettings::default(), &fake, &Quiet).unwrap_err();
    let text = format!("{:?}", miette::Report::new(err));
    assert!(
        text.contains("exit code: 3") && text.contains("fake output line"),
        "{text}"
    );
}

#[test]
fn a_required_secret_that_was_not_given_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let ctx = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let p = plan(
        ctx.path(),
        "FROM scratch\nRUN --mount=type=secret,id=x,required=true true\n",
        &store,
    );
    let fake = Fake {
        specs: Mutex::new(Vec::new()),
        code: 0,
    };
    let err = build::build(&store, &p, &BuildSettings::default(), &fake, &Quiet).unwrap_err();
    assert!(format!("{:?}", miette::Report::new(err)).contains("secret x not found"));
    assert!(fake.specs.lock().unwrap().is_empty());
}

/// The plan names its base image by manifest digest: re-tagging the base between planning
/// and building changes nothing, and once the planned image is gone the build fails (it
/// never falls back to whatever the tag names now).
#[test]
fn a_base_image_retagged_between_plan_and_build_is_not_used() {
    use store_support::make_image;
    let root = tempfile::tempdir().unwrap();
    let ctx = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    std::fs::write(ctx.path().join("f"), b"f").unwrap();
    let planned = make_image(&store, &[&[("planned", b"a")]], "a", &["base:1"]);
    let p = plan(ctx.path(), "FROM base:1\nCOPY f /f\n", &store);
    let other = make_image(&store, &[&[("other", b"b")]], "b", &["base:1"]);
    assert_eq!(
        store.image("base:1").unwrap().manifest_digest,
        other.manifest_digest
    );
    let fake = Fake {
        specs: Mutex::new(Vec::new()),
        code: 0,
    };
    let built = build::build(&store, &p, &BuildSettings::default(), &fake, &Quiet).unwrap();
    assert_eq!(built.image.manifest.layers[0], planned.manifest.layers[0]);
    assert_eq!(built.image.manifest.layers.len(), 2);

    store.remove(&planned.manifest_digest.to_string()).unwrap();
    let err = build::build(&store, &p, &BuildSettings::default(), &fake, &Quiet).unwrap_err();
    let BuildError::Step { source, .. } = &err else {
        panic!("not a step error: {err:?}");
    };
    assert!(
        matches!(**source, BuildError::BaseImageGone { ref digest, .. } if *digest == planned.manifest_digest),
        "{source:?}"
    );
    let text = format!("{:?}", miette::Report::new(err));
    assert!(
        text.contains("base:1") && text.contains("no longer has"),
        "{text}"
    );
}

/// A store that cannot answer (here a corrupt index) stops planning with its own error;
/// it is not taken for "no such image".
#[test]
fn a_corrupt_store_is_not_a_missing_base_image() {
    let root = tempfile::tempdir().unwrap();
    let ctx = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    std::fs::write(root.path().join("index.json"), b"{ not json").unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), "FROM base:1\n").unwrap();
    let input = FrontendInput {
        context: ctx.path().to_path_buf(),
        dockerfile: None,
    };
    let err = kiln_compiler::frontend::plan(
        &input,
        &BuildOptions::default(),
        &StatCache::default(),
        &store,
    )
    .err()
    .expect("planning against a corrupt store fails");
    let text = format!("{err:?}");
    assert!(text.contains("index.json"), "{text}");
    assert!(!text.contains("no such image"), "{text}");
}

/// Path, mode and owner of every entry of the image's layer `n`.
fn layer_entries(
    store: &Store,
    image: &kiln_runtime::store::Image,
    n: usize,
) -> Vec<(String, u32, u64)> {
    let blob = store.open_blob(&image.manifest.layers[n].digest).unwrap();
    let mut a = tar::Archive::new(blob);
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        let path = e.path().unwrap().display().to_string();
        out.push((
            path.trim_end_matches('/').to_string(),
            h.mode().unwrap(),
            h.uid().unwrap(),
        ));
    }
    out
}

/// The plan carries COPY's sources, `--chmod`, `--chown` and `--exclude` parsed; the builder
/// applies them, from the context (the planner's selection) and from a stage (patterns
/// matched over the stage's filesystem), and the layer matches what the key covers.
#[test]
fn copy_applies_the_plans_parsed_flags_from_the_context_and_from_a_stage() {
    let root = tempfile::tempdir().unwrap();
    let ctx = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    std::fs::create_dir_all(ctx.path().join("src/keep")).unwrap();
    for dir in ["src", "src/keep"] {
        let perms = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(ctx.path().join(dir), perms).unwrap();
    }
    for (rel, mode) in [
        ("src/a.txt", 0o644),
        ("src/b.md", 0o644),
        ("src/keep/c.txt", 0o600),
        ("src/keep/secret", 0o644),
        ("top.txt", 0o755),
    ] {
        let path = ctx.path().join(rel);
        std::fs::write(&path, rel).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let p = plan(
        ctx.path(),
        concat!(
            "FROM scratch AS files\n",
            "COPY --chown=1000:50 --chmod=u+x,go-r --exclude=*.md --exclude=src/keep/secret src /in/\n",
            "FROM scratch\n",
            "COPY --from=files --chmod=0640 --exclude=*.txt /in/*[ek]* /out/\n",
            "COPY *.txt /top/\n",
        ),
        &store,
    );
    let fake = Fake {
        specs: Mutex::new(Vec::new()),
        code: 0,
    };
    let files = build::build(&store, &p, &BuildSettings::default(), &fake, &Quiet).unwrap();
    let image = &files.image;
    assert_eq!(image.manifest.layers.len(), 2);
    // Layer 0: `COPY --from=files` of `/in/keep` (the only name with e or k; `*.txt` left out).
    assert_eq!(
        layer_entries(&store, image, 0),
        [("out".to_string(), 0o755, 0)],
        "a directory source whose only file is excluded leaves the directory"
    );
    // Layer 1: the wildcard from the context.
    assert_eq!(
        layer_entries(&store, image, 1),
        [
            ("top".to_string(), 0o755, 0),
            ("top/top.txt".to_string(), 0o755, 0),
        ]
    );
    // The first stage's own layer, through a plan that targets it.
    let mut files_plan = std::fs::read_to_string(ctx.path().join("Dockerfile")).unwrap();
    files_plan.truncate(files_plan.find("FROM scratch\n").unwrap());
    let p = plan(ctx.path(), &files_plan, &store);
    let built = build::build(&store, &p, &BuildSettings::default(), &fake, &Quiet).unwrap();
    assert_eq!(
        layer_entries(&store, &built.image, 0),
        [
            ("in".to_string(), 0o755, 1000),
            ("in/a.txt".to_string(), 0o700, 1000),
            ("in/keep".to_string(), 0o711, 1000),
            ("in/keep/c.txt".to_string(), 0o700, 1000),
        ]
    );
}
