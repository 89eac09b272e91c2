//! The plan's cache-key invariants (issue: the layer plan):
//! - the same context content in two directories, with different mtimes and umask, gives
//!   identical plan JSON;
//! - changing one byte of one context file changes exactly the keys of the nodes that read it
//!   and their descendants;
//! - reordering independent stages does not change any key.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use kiln_compiler::context::StatCache;
use kiln_compiler::frontend::{self, FrontendInput};
use kiln_compiler::plan::{BuildOptions, NoImages};
use kiln_compiler::plan::{Op, Plan};

fn write(dir: &Path, rel: &str, body: &[u8], mode: u32) {
    let p = dir.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, body).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

fn context(dir: &Path, dockerfile: &str) {
    write(dir, "Dockerfile", dockerfile.as_bytes(), 0o644);
    write(dir, "app/main.txt", b"main\n", 0o644);
    write(dir, "app/run.sh", b"#!/bin/sh\necho hi\n", 0o755);
    write(dir, "lib/util.txt", b"util\n", 0o644);
    write(dir, "docs/readme.md", b"docs\n", 0o644);
    write(dir, ".dockerignore", b"docs\n", 0o644);
}

fn plan(dir: &Path) -> Plan {
    let input = FrontendInput {
        context: dir.to_path_buf(),
        dockerfile: None,
    };
    let opts = BuildOptions {
        network: kiln_compiler::plan::RunNetwork::None,
        ..Default::default()
    };
    match frontend::plan(&input, &opts, &StatCache::default(), &NoImages) {
        Ok((_, lowered)) => lowered.plan,
        Err(e) => panic!("plan failed: {e:?}"),
    }
}

const MULTI: &str = "FROM scratch AS one\nCOPY app /app\n\nFROM scratch AS two\nCOPY lib /lib\n\nFROM scratch\nCOPY --from=one /app /app\nCOPY --from=two /lib /lib\nENV A=1\n";
const MULTI_REORDERED: &str = "FROM scratch AS two\nCOPY lib /lib\n\nFROM scratch AS one\nCOPY app /app\n\nFROM scratch\nCOPY --from=one /app /app\nCOPY --from=two /lib /lib\nENV A=1\n";

fn set_mtime(path: &Path, secs: i64) {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64);
    let f = fs::File::options().write(true).open(path).unwrap();
    f.set_modified(t).unwrap();
}

#[test]
fn same_content_elsewhere_gives_identical_plan_json() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    context(a.path(), MULTI);
    context(b.path(), MULTI);
    // Different mtimes, and a different umask-like effect on a directory's mode is not content:
    // directory modes do count, so keep them equal and vary only what must not matter.
    for rel in ["app/main.txt", "lib/util.txt", "Dockerfile"] {
        set_mtime(&b.path().join(rel), 1_000_000);
    }
    let ja = serde_json::to_string(&plan(a.path()).to_json()).unwrap();
    let jb = serde_json::to_string(&plan(b.path()).to_json()).unwrap();
    assert_eq!(ja, jb);
    assert!(
        !ja.contains(a.path().to_str().unwrap()),
        "a host path leaked into the plan"
    );
}

fn keys_by_origin(p: &Plan) -> BTreeMap<String, String> {
    p.nodes
        .iter()
        .map(|n| {
            let kind = serde_json::to_value(&n.op).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string();
            (
                format!("{}|{}|{}", n.origin.stage, kind, n.origin.text),
                n.key.to_hex(),
            )
        })
        .collect()
}

#[test]
fn one_byte_changes_exactly_the_readers_and_their_descendants() {
    let d = tempfile::tempdir().unwrap();
    context(d.path(), MULTI);
    let before = plan(d.path());
    write(d.path(), "lib/util.txt", b"utiL\n", 0o644);
    let after = plan(d.path());
    assert_eq!(before.nodes.len(), after.nodes.len());
    // Expected changed set: the context node selecting lib, and everything downstream of it.
    let mut changed_expected = BTreeSet::new();
    for n in &before.nodes {
        let reads_lib = matches!(&n.op, Op::Context(sel) if sel.patterns == ["lib"]);
        if reads_lib || n.inputs.iter().any(|i| changed_expected.contains(&i.0)) {
            changed_expected.insert(n.id.0);
        }
    }
    let changed: BTreeSet<usize> = before
        .nodes
        .iter()
        .zip(&after.nodes)
        .filter(|(a, b)| a.key != b.key)
        .map(|(a, _)| a.id.0)
        .collect();
    assert_eq!(changed, changed_expected);
    // And the app side did not move.
    assert!(changed.len() < before.nodes.len());
    let untouched = before
        .nodes
        .iter()
        .find(|n| matches!(&n.op, Op::Context(sel) if sel.patterns == ["app"]))
        .unwrap();
    assert!(!changed.contains(&untouched.id.0));
}

#[test]
fn reordering_independent_stages_keeps_every_key() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    context(a.path(), MULTI);
    context(b.path(), MULTI_REORDERED);
    let ka = keys_by_origin(&plan(a.path()));
    let kb = keys_by_origin(&plan(b.path()));
    // The Dockerfile itself is a context file and differs; compare nodes not reading it.
    assert_eq!(ka, kb);
}

#[test]
fn ignored_files_do_not_enter_keys() {
    let d = tempfile::tempdir().unwrap();
    context(d.path(), "FROM scratch\nCOPY . /all\n");
    let before = plan(d.path());
    write(d.path(), "docs/readme.md", b"changed\n", 0o644);
    let after = plan(d.path());
    assert_eq!(before.to_json(), after.to_json());
}

/// Pins the `run` row of docs/cache-keys.md: a RUN node's key is blake3 over the envelope with
/// the op written exactly as the spec lists its members (mounts included, modes in decimal).
#[test]
fn golden_run_key_follows_the_spec() {
    let d = tempfile::tempdir().unwrap();
    context(
        d.path(),
        "FROM scratch\nRUN --mount=type=cache,target=/c,sharing=locked --mount=type=secret,id=s,env=S --mount=type=tmpfs,target=/t,size=1k --mount=target=/b,source=app true\n",
    );
    let p = plan(d.path());
    let scratch = blake3::hash(br#"{"content":null,"inputs":[],"op":{"kind":"scratch"},"v":1}"#);
    let ctx = p
        .nodes
        .iter()
        .find(|n| matches!(&n.op, Op::Context(sel) if sel.patterns == ["app"]))
        .unwrap();
    let run = p.nodes.iter().find(|n| matches!(n.op, Op::Run(_))).unwrap();
    let doc = format!(
        concat!(
            r#"{{"content":null,"inputs":["{}","{}"],"op":{{"kind":"run","definition":{{"#,
            r#""argv":["/bin/sh","-c","true"],"#,
            r#""env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"#,
            r#""cwd":"/","user":"","network":"none","mounts":["#,
            r#"{{"target":"/c","type":"cache","id":"/c","source":"/","from":null,"sharing":"locked","readonly":false,"mode":493,"uid":0,"gid":0}},"#,
            r#"{{"target":null,"type":"secret","id":"s","required":false,"mode":256,"uid":0,"gid":0,"env":"S"}},"#,
            r#"{{"target":"/t","type":"tmpfs","size":1024,"readonly":false}},"#,
            r#"{{"target":"/b","type":"bind","source":"/app","from":{{"context":{{"input":1}}}},"readonly":true}}"#,
            r#"],"mtime":0}}}},"v":1}}"#
        ),
        scratch.to_hex(),
        ctx.key.to_hex()
    );
    assert_eq!(run.inputs, [p.nodes[0].id, ctx.id]);
    assert_eq!(
        run.key.to_hex(),
        blake3::hash(doc.as_bytes()).to_hex().to_string()
    );
}

/// Pins the `config` row of docs/cache-keys.md: a metadata node is keyed by what it sets
/// (values after expansion), not by the instruction's text, so two spellings of one change
/// (`ENV A=1` and `ENV A="1"`, `ENV A $X` with X=1) have one key.
#[test]
fn golden_config_key_is_what_it_sets() {
    let d = tempfile::tempdir().unwrap();
    context(d.path(), "FROM scratch\nENV A=1 B=two\n");
    let p = plan(d.path());
    let scratch = blake3::hash(br#"{"content":null,"inputs":[],"op":{"kind":"scratch"},"v":1}"#);
    let env = p
        .nodes
        .iter()
        .find(|n| matches!(n.op, Op::Config(_)))
        .unwrap();
    let doc = format!(
        concat!(
            r#"{{"content":null,"inputs":["{}"],"op":{{"kind":"config","definition":"#,
            r#"{{"set":"env","vars":[["A","1"],["B","two"]]}}}},"v":1}}"#
        ),
        scratch.to_hex()
    );
    assert_eq!(
        env.key.to_hex(),
        blake3::hash(doc.as_bytes()).to_hex().to_string()
    );
    for spelling in [
        "FROM scratch\nENV A=\"1\" B=two\n",
        "FROM scratch\nARG X=1\nENV A=$X B=two\n",
    ] {
        let d2 = tempfile::tempdir().unwrap();
        context(d2.path(), spelling);
        let p2 = plan(d2.path());
        let env2 = p2
            .nodes
            .iter()
            .rfind(|n| matches!(n.op, Op::Config(_)))
            .unwrap();
        assert_eq!(env2.op, env.op, "{spelling:?}");
        if !spelling.contains("ARG") {
            assert_eq!(env2.key, env.key, "{spelling:?}");
        }
    }
}

/// Pins the `copy` row of docs/cache-keys.md now that the plan holds COPY's flags parsed:
/// sources, `--chown`, `--chmod` and `--exclude` still enter the key as written.
#[test]
fn golden_copy_key_encodes_parsed_flags_as_written() {
    let d = tempfile::tempdir().unwrap();
    context(
        d.path(),
        "FROM scratch\nCOPY --chown=1000:app --chmod=u+x --exclude=*.md ./app/../app /dst/\n",
    );
    let p = plan(d.path());
    let scratch = blake3::hash(br#"{"content":null,"inputs":[],"op":{"kind":"scratch"},"v":1}"#);
    let ctx = p
        .nodes
        .iter()
        .find(|n| matches!(&n.op, Op::Context(sel) if sel.patterns == ["app"]))
        .unwrap();
    let copy = p
        .nodes
        .iter()
        .find(|n| matches!(n.op, Op::Copy(_)))
        .unwrap();
    let doc = format!(
        concat!(
            r#"{{"content":null,"inputs":["{}","{}"],"op":{{"kind":"copy","definition":{{"#,
            r#""add":false,"sources":["./app/../app"],"inline":[],"dest":"/dst/","#,
            r#""chown":"1000:app","chmod":"u+x","link":false,"parents":false,"#,
            r#""excludes":["*.md"],"checksum":null,"from_context":true,"mtime":0}}}},"v":1}}"#
        ),
        scratch.to_hex(),
        ctx.key.to_hex()
    );
    assert_eq!(
        copy.key.to_hex(),
        blake3::hash(doc.as_bytes()).to_hex().to_string()
    );
    let Op::Copy(op) = &copy.op else {
        unreachable!()
    };
    assert_eq!(op.selected, ["app"]);
}

/// Flag values and source patterns are checked when the Dockerfile is lowered, with the
/// error at the instruction, never first at build time.
#[test]
fn bad_copy_flags_fail_planning_at_the_flag() {
    for (line, message, label) in [
        (
            "COPY --chown=:x app /a",
            "invalid --chown value \":x\"",
            "--chown=:x",
        ),
        (
            "COPY --chmod=u+q app /a",
            "invalid chmod value \"u+q\"",
            "--chmod=u+q",
        ),
        (
            "COPY --exclude=[]a] app /a",
            "invalid --exclude pattern",
            "--exclude=[]a]",
        ),
        (
            "COPY --from=base [-a] /a",
            "syntax error in pattern \"[-a]\"",
            "[-a]",
        ),
    ] {
        let d = tempfile::tempdir().unwrap();
        let dockerfile = format!("FROM scratch AS base\nFROM scratch\n{line}\n");
        context(d.path(), &dockerfile);
        let input = FrontendInput {
            context: d.path().to_path_buf(),
            dockerfile: None,
        };
        let err = match frontend::plan(
            &input,
            &BuildOptions::default(),
            &StatCache::default(),
            &NoImages,
        ) {
            Ok(_) => panic!("{line}: planned"),
            Err(e) => e,
        };
        let text = format!("{err:?}");
        assert!(text.contains(message), "{line}: {text}");
        let labels: Vec<_> = err
            .labels()
            .map(|l| l.collect::<Vec<_>>())
            .unwrap_or_default();
        let span = labels.first().unwrap_or_else(|| panic!("{line}: no label"));
        let start = dockerfile.find(label).unwrap();
        // The label covers (part of) the flag or source, not just the instruction's start.
        assert!(
            span.offset() < start + label.len() && start < span.offset() + span.len().max(1),
            "{line}: label at {}..{}, flag at {start}",
            span.offset(),
            span.offset() + span.len()
        );
    }
}

#[test]
fn nodes_record_the_build_args_they_read() {
    let dir = tempfile::tempdir().unwrap();
    context(
        dir.path(),
        "FROM scratch\nARG V=1\nARG OTHER=x\nENV E=$V\nCOPY app /dst-${V}/\nENV OTHER=hidden\nRUN echo hi\n",
    );
    let input = FrontendInput {
        context: dir.path().to_path_buf(),
        dockerfile: None,
    };
    let opts = BuildOptions {
        build_args: vec![("V".into(), "2".into())],
        network: kiln_compiler::plan::RunNetwork::None,
        ..Default::default()
    };
    let plan = match frontend::plan(&input, &opts, &StatCache::default(), &NoImages) {
        Ok((_, lowered)) => lowered.plan,
        Err(e) => panic!("plan failed: {e:?}"),
    };
    let args_of = |text: &str| {
        plan.nodes
            .iter()
            .find(|n| n.origin.text == text && !matches!(n.op, Op::Context(_)))
            .unwrap_or_else(|| panic!("no node {text}"))
            .args
            .clone()
    };
    let v = ("V".to_string(), "2".to_string());
    assert_eq!(args_of("ENV E=$V"), vec![v.clone()]);
    assert_eq!(args_of("COPY app /dst-${V}/"), vec![v.clone()]);
    assert_eq!(args_of("ARG OTHER=x"), vec![]);
    // RUN sees every ARG of the stage in its environment, except one an ENV hides.
    assert_eq!(args_of("RUN echo hi"), vec![v]);
}
