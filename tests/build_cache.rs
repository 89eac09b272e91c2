//! The shared build cache: `kiln build --cache-to` in one store, `--cache-from` in another
//! whose cache is empty, through an OCI layout directory and through a registry
//! (`docker-registry` on 127.0.0.1). The second build must run no step and give the same
//! image; a cache made from another Dockerfile must serve only the steps whose inputs are the
//! same; a corrupted layer must not enter the store.
//!
//! Must not: listen anywhere but 127.0.0.1.

use crate::common;
use crate::registry::{assert_store_whole, require_tools, Registry, REGISTRY_BIN};

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

fn context(dir: &Path, dockerfile: &str, files: &[(&str, &str)]) -> PathBuf {
    let ctx = dir.join("ctx");
    write_file(&ctx.join("Dockerfile"), dockerfile.as_bytes(), 0o644);
    for (name, content) in files {
        write_file(&ctx.join(name), content.as_bytes(), 0o644);
    }
    ctx
}

/// One build with `--progress json`: the events it printed (the last is the image's) and
/// its stderr.
struct Build {
    events: Vec<Value>,
    stderr: String,
}

impl Build {
    fn image(&self) -> &Value {
        self.events
            .iter()
            .find(|v| v["event"] == "image")
            .unwrap_or_else(|| panic!("no image event in {:?}", self.events))
    }

    fn id(&self) -> String {
        self.image()["id"].as_str().unwrap().to_string()
    }

    /// Steps that ran (a `start` event each).
    fn ran(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|v| v["event"] == "start")
            .map(|v| v["text"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

fn build(store: &KilnStore, ctx: &Path, extra: &[&str]) -> Build {
    let mut cmd = store.cmd();
    cmd.args(["build", "--progress", "json"])
        .args(extra)
        .arg(ctx);
    let out = run_ok(&mut cmd);
    Build {
        events: stdout_text(&out)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
        stderr: stderr_text(&out),
    }
}

const MULTI_STAGE: &str = "FROM busybox:test AS tools\n\
RUN echo tool > /tool && echo scratch-only > /big\n\
FROM busybox:test\n\
COPY a /a\n\
RUN cat /a /a > /b\n\
WORKDIR /w\n\
COPY --from=tools /tool /w/tool\n";

/// The layer digests an OCI-layout cache names, and its key map.
fn layout_cache(dir: &Path) -> (Vec<String>, Value) {
    let read = |digest: &str| {
        std::fs::read(
            dir.join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifest: Value =
        serde_json::from_slice(&read(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.kiln.build-cache.config.v1+json"
    );
    let config: Value =
        serde_json::from_slice(&read(manifest["config"]["digest"].as_str().unwrap())).unwrap();
    let layers = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    (layers, config["keys"].clone())
}

fn image_layers(store: &KilnStore, image: &str) -> Vec<String> {
    let dir = temp_dir();
    let tar = dir.path().join("i.tar");
    store.save(image, &tar);
    read_saved_image(&tar)
        .diff_ids()
        .into_iter()
        .map(|d| format!("sha256:{}", d.trim_start_matches("sha256:")))
        .collect()
}

#[test]
fn a_local_cache_makes_a_fresh_store_run_no_step() {
    require_peer!("busybox");
    let dir = temp_dir();
    let ctx = context(dir.path(), MULTI_STAGE, &[("a", "a\n")]);
    let cache = dir.path().join("cache");
    let dest = format!("type=local,dest={},mode=max", cache.display());
    let src = format!("type=local,src={}", cache.display());

    let first_store = KilnStore::with_busybox();
    let first = build(&first_store, &ctx, &["-t", "cached:1", "--cache-to", &dest]);
    assert_eq!(first.image()["cached"], 0);
    assert!(
        first.stderr.contains("#cache exported 5 steps"),
        "{}",
        first.stderr
    );
    let (cache_layers, keys) = layout_cache(&cache);
    assert_eq!(keys.as_object().unwrap().len(), 5, "{keys}");
    // Readable by the other users a CI system may restore the directory as.
    for entry in std::fs::read_dir(cache.join("blobs/sha256"))
        .unwrap()
        .flatten()
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{}", entry.path().display());
    }

    let second_store = KilnStore::with_busybox();
    let second = build(
        &second_store,
        &ctx,
        &["-t", "cached:1", "--cache-from", &src],
    );
    assert_eq!(second.ran(), Vec::<String>::new(), "{:?}", second.events);
    assert_eq!(second.image()["cached"], second.image()["steps"]);
    assert_eq!(second.image()["steps"], 5);
    assert_eq!(second.id(), first.id());
    assert_store_whole(&second_store);
    // Only the layers the image has were fetched: the tools stage's layer, which only a
    // cached step read, stayed in the cache.
    let image = image_layers(&second_store, "cached:1");
    let left: Vec<&String> = cache_layers.iter().filter(|l| !image.contains(l)).collect();
    assert_eq!(left.len(), 1, "cache {cache_layers:?}, image {image:?}");
    assert!(!second_store
        .root()
        .join("blobs/sha256")
        .join(left[0].trim_start_matches("sha256:"))
        .exists());

    // Exported again from the second store: the layer it left in the first cache is fetched
    // and exported too, so a chain of CI builds keeps every step.
    let relay = dir.path().join("relay");
    let relayed = build(
        &second_store,
        &ctx,
        &[
            "--cache-from",
            &src,
            "--cache-to",
            &format!("type=local,dest={},mode=max", relay.display()),
        ],
    );
    assert!(
        relayed
            .stderr
            .contains("#cache exported 5 steps (5 layers)"),
        "{}",
        relayed.stderr
    );
    let fourth = build(
        &KilnStore::with_busybox(),
        &ctx,
        &[
            "--cache-from",
            &format!("type=local,src={}", relay.display()),
        ],
    );
    assert_eq!(fourth.ran(), Vec::<String>::new());
    assert_eq!(fourth.id(), first.id());

    // A third store with mode=min's cache (the image's steps only) runs the tools stage.
    let min_cache = dir.path().join("min");
    build(
        &first_store,
        &ctx,
        &[
            "--cache-to",
            &format!("type=local,dest={}", min_cache.display()),
        ],
    );
    let third_store = KilnStore::with_busybox();
    let third = build(
        &third_store,
        &ctx,
        &[
            "--cache-from",
            &format!("type=local,src={}", min_cache.display()),
        ],
    );
    assert_eq!(third.ran().len(), 1, "{:?}", third.ran());
    assert!(
        third.ran()[0].starts_with("RUN echo tool"),
        "{:?}",
        third.ran()
    );
    assert_eq!(third.id(), first.id());
}

#[test]
fn a_registry_cache_makes_a_fresh_store_run_no_step() {
    if !require_tools(&[REGISTRY_BIN]) {
        return;
    }
    require_peer!("busybox");
    let registry = Registry::start(None, None);
    let reference = format!("{}/kiln-e2e/cache:main", registry.host());
    let dir = temp_dir();
    let ctx = context(
        dir.path(),
        "FROM busybox:test\nCOPY a /a\nRUN cat /a /a > /b\nWORKDIR /w\nENV X=1\n",
        &[("a", "a\n")],
    );
    let first_store = KilnStore::with_busybox();
    let first = build(
        &first_store,
        &ctx,
        &["--cache-to", &format!("type=registry,ref={reference}")],
    );
    assert_eq!(first.image()["cached"], 0);
    assert!(
        first.stderr.contains("#cache exported 3 steps (3 layers)"),
        "{}",
        first.stderr
    );
    let second_store = KilnStore::with_busybox();
    let second = build(
        &second_store,
        &ctx,
        &["--cache-from", &format!("type=registry,ref={reference}")],
    );
    assert_eq!(second.ran(), Vec::<String>::new(), "{:?}", second.events);
    assert_eq!(second.image()["cached"], 3);
    assert_eq!(second.id(), first.id());
    assert_store_whole(&second_store);

    // Exported again unchanged: the registry already has it all.
    let again = build(
        &first_store,
        &ctx,
        &["--cache-to", &format!("type=registry,ref={reference}")],
    );
    assert!(
        again.stderr.contains("#cache exported 3 steps"),
        "{}",
        again.stderr
    );

    // A reference with no cache behind it is a warning, and the build runs.
    let third_store = KilnStore::with_busybox();
    let missing = format!("{}/kiln-e2e/cache:none", registry.host());
    let third = build(&third_store, &ctx, &["--cache-from", &missing]);
    assert!(
        third.stderr.contains("warning: not using the cache"),
        "{}",
        third.stderr
    );
    assert_eq!(third.ran().len(), 3);
    assert_eq!(third.id(), first.id());
}

#[test]
fn a_cache_from_another_dockerfile_serves_only_equal_steps() {
    require_peer!("busybox");
    let dir = temp_dir();
    let one = context(
        &dir.path().join("one"),
        "FROM busybox:test\nCOPY a /a\nRUN echo one > /x\n",
        &[("a", "a\n")],
    );
    let two = context(
        &dir.path().join("two"),
        "FROM busybox:test\nCOPY a /a\nRUN echo two > /x\n",
        &[("a", "a\n")],
    );
    let cache = dir.path().join("cache");
    build(
        &KilnStore::with_busybox(),
        &one,
        &[
            "--cache-to",
            &format!("type=local,dest={},mode=max", cache.display()),
        ],
    );
    let src = format!("type=local,src={}", cache.display());
    let from_cache = build(&KilnStore::with_busybox(), &two, &["--cache-from", &src]);
    // COPY a /a has the same inputs in both; the RUN does not.
    assert_eq!(from_cache.ran(), vec!["RUN echo two > /x".to_string()]);
    assert_eq!(from_cache.image()["cached"], 1);
    let plain = build(&KilnStore::with_busybox(), &two, &[]);
    assert_eq!(from_cache.id(), plain.id());
}

#[test]
fn a_corrupted_cache_layer_does_not_enter_the_store() {
    require_peer!("busybox");
    let dir = temp_dir();
    let ctx = context(
        dir.path(),
        "FROM busybox:test\nCOPY a /a\n",
        &[("a", "a\n")],
    );
    let cache = dir.path().join("cache");
    build(
        &KilnStore::with_busybox(),
        &ctx,
        &[
            "--cache-to",
            &format!("type=local,dest={}", cache.display()),
        ],
    );
    let (layers, _) = layout_cache(&cache);
    assert_eq!(layers.len(), 1);
    let blob = cache
        .join("blobs/sha256")
        .join(layers[0].trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&blob).unwrap();
    let i = bytes.iter().position(|b| *b == b'a').unwrap();
    bytes[i] = b'b';
    std::fs::write(&blob, &bytes).unwrap();

    let store = KilnStore::with_busybox();
    let out = store.kiln([
        "build".as_ref(),
        "--cache-from".as_ref(),
        format!("type=local,src={}", cache.display()).as_ref(),
        ctx.as_os_str(),
    ]);
    assert!(!out.status.success());
    let err = stderr_text(&out);
    assert!(err.contains("has digest"), "{err}");
    assert!(err.contains(&layers[0]), "{err}");
    assert!(!store
        .root()
        .join("blobs/sha256")
        .join(layers[0].trim_start_matches("sha256:"))
        .exists());
    assert_store_whole(&store);
}
