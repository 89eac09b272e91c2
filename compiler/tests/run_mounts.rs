//! RUN's typed op: `--mount` parsing (every type, defaults, BuildKit's errors with kiln's
//! spans and help), mount inputs and their keys, secrets kept out of the plan, and the
//! heredoc forms of BuildKit's dispatchRun.

use std::fs;
use std::path::Path;

use kiln_compiler::context::{ContextIndex, StatCache};
use kiln_compiler::dockerfile::{lower, DockerfileError, LowerError};
use kiln_compiler::dockerignore::IgnoreFile;
use kiln_compiler::plan::{BuildOptions, NoImages};
use kiln_compiler::plan::{MountKind, MountSource, Node, Op, Plan, RunMount, RunNetwork, Sharing};

fn lower_in(dir: &Path, df: &str, network: RunNetwork) -> Result<Plan, DockerfileError> {
    let parsed = kiln_compiler::syntax::parse(df).expect("parses");
    let index = ContextIndex::scan(dir, &IgnoreFile::default()).expect("scan");
    let opts = BuildOptions {
        network,
        ..Default::default()
    };
    match lower(&parsed, df, index, &StatCache::default(), &opts, &NoImages) {
        Ok(l) => Ok(l.plan),
        Err(LowerError::Dockerfile(e)) => Err(e),
        Err(e) => panic!("unexpected error {e:?}"),
    }
}

fn plan(df: &str) -> Plan {
    let dir = tempfile::tempdir().unwrap();
    lower_in(dir.path(), df, RunNetwork::None).unwrap_or_else(|e| panic!("{e:?}"))
}

fn error(df: &str) -> DockerfileError {
    let dir = tempfile::tempdir().unwrap();
    match lower_in(dir.path(), df, RunNetwork::None) {
        Ok(_) => panic!("expected an error for {df:?}"),
        Err(e) => e,
    }
}

/// The last RUN node of a plan.
fn last_run(p: &Plan) -> (&Node, &kiln_compiler::plan::RunOp) {
    p.nodes
        .iter()
        .rev()
        .find_map(|n| match &n.op {
            Op::Run(r) => Some((n, r)),
            _ => None,
        })
        .expect("a RUN node")
}

fn mounts(df: &str) -> Vec<RunMount> {
    last_run(&plan(df)).1.mounts.clone()
}

fn one(df: &str) -> RunMount {
    let m = mounts(df);
    assert_eq!(m.len(), 1, "{m:?}");
    m.into_iter().next().unwrap()
}

#[test]
fn bind_defaults_to_read_only_context() {
    let p = plan("FROM scratch\nWORKDIR /app\nRUN --mount=target=src true\n");
    let (node, run) = last_run(&p);
    let m = &run.mounts[0];
    assert_eq!(m.target.as_deref(), Some("/app/src"));
    assert_eq!(
        m.kind,
        MountKind::Bind {
            source: "/".into(),
            from: MountSource::Context { input: 1 },
            readonly: true
        }
    );
    assert_eq!(node.inputs.len(), 2);
    assert!(matches!(p.node(node.inputs[1]).op, Op::Context(_)));
    // rw, readwrite, ro=false make it writable.
    for flag in ["rw", "readwrite", "ro=false", "readwrite=true", "RW"] {
        let m = one(&format!(
            "FROM scratch\nRUN --mount=type=bind,target=/x,{flag} true\n"
        ));
        assert!(
            matches!(
                m.kind,
                MountKind::Bind {
                    readonly: false,
                    ..
                }
            ),
            "{flag}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("b")).unwrap();
    let p = lower_in(
        dir.path(),
        "FROM scratch\nRUN --mount=type=bind,src=a/../b/,dst=/x/./y/ true\n",
        RunNetwork::None,
    )
    .unwrap();
    let m = last_run(&p).1.mounts[0].clone();
    assert_eq!(m.target.as_deref(), Some("/x/y"));
    assert!(matches!(m.kind, MountKind::Bind { ref source, .. } if source == "/b"));
}

#[test]
fn cache_defaults() {
    let m = one("FROM scratch\nRUN --mount=type=cache,target=/root/.cache/ true\n");
    assert_eq!(m.target.as_deref(), Some("/root/.cache"));
    assert_eq!(
        m.kind,
        MountKind::Cache {
            id: "/root/.cache".into(),
            source: "/".into(),
            from: None,
            sharing: Sharing::Shared,
            readonly: false,
            mode: 0o755,
            uid: 0,
            gid: 0,
        }
    );
    let m = one("FROM scratch\nRUN --mount=type=cache,id=go,target=/go,sharing=LOCKED,mode=0700,uid=1000,gid=100,ro true\n");
    assert_eq!(
        m.kind,
        MountKind::Cache {
            id: "go".into(),
            source: "/".into(),
            from: None,
            sharing: Sharing::Locked,
            readonly: true,
            mode: 0o700,
            uid: 1000,
            gid: 100,
        }
    );
    let m = one("FROM scratch\nRUN --mount=type=cache,target=/c,sharing=private true\n");
    assert!(matches!(
        m.kind,
        MountKind::Cache {
            sharing: Sharing::Private,
            ..
        }
    ));
}

#[test]
fn tmpfs_and_sizes() {
    let m = one("FROM scratch\nRUN --mount=type=tmpfs,target=/tmp true\n");
    assert_eq!(
        m.kind,
        MountKind::Tmpfs {
            size: None,
            readonly: false
        }
    );
    let m = one("FROM scratch\nRUN --mount=type=tmpfs,target=/tmp,size=64m true\n");
    assert_eq!(
        m.kind,
        MountKind::Tmpfs {
            size: Some(64 << 20),
            readonly: false
        }
    );
}

#[test]
fn secret_defaults() {
    let m = one("FROM scratch\nRUN --mount=type=secret,id=npmrc true\n");
    assert_eq!(m.target.as_deref(), Some("/run/secrets/npmrc"));
    assert_eq!(
        m.kind,
        MountKind::Secret {
            id: "npmrc".into(),
            required: false,
            mode: 0o400,
            uid: 0,
            gid: 0,
            env: None
        }
    );
    // The id defaults to the target's base name.
    let m = one("FROM scratch\nRUN --mount=type=secret,target=/etc/app/token,required true\n");
    assert_eq!(m.target.as_deref(), Some("/etc/app/token"));
    assert!(matches!(m.kind, MountKind::Secret { ref id, required: true, .. } if id == "token"));
    // source= is the id.
    let m = one("FROM scratch\nRUN --mount=type=secret,source=aws,mode=0440,uid=1,gid=2 true\n");
    assert_eq!(m.target.as_deref(), Some("/run/secrets/aws"));
    assert!(matches!(
        m.kind,
        MountKind::Secret { ref id, mode: 0o440, uid: 1, gid: 2, .. } if id == "aws"
    ));
    // Only env=: no file.
    let m = one("FROM scratch\nRUN --mount=type=secret,id=tok,env=TOKEN true\n");
    assert_eq!(m.target, None);
    assert!(matches!(m.kind, MountKind::Secret { ref env, .. } if env.as_deref() == Some("TOKEN")));
    // env= and a target: both.
    let m = one("FROM scratch\nRUN --mount=type=secret,id=tok,env=TOKEN,target=/t true\n");
    assert_eq!(m.target.as_deref(), Some("/t"));
}

#[test]
fn mount_values_are_expanded_keys_are_not() {
    let m = one(
        "FROM scratch\nARG T=/cache\nARG K=id\nRUN --mount=type=cache,target=$T,id=${T}-x true\n",
    );
    assert_eq!(m.target.as_deref(), Some("/cache"));
    assert!(matches!(m.kind, MountKind::Cache { ref id, .. } if id == "/cache-x"));
    let e = error("FROM scratch\nARG K=id\nRUN --mount=type=cache,target=/c,$K=x true\n");
    assert!(e.message.contains("unexpected key '$k'"), "{}", e.message);
}

fn flag_span(df: &str) -> (usize, usize) {
    let start = df.find("--mount").unwrap();
    let end = df[start..].find(' ').map_or(df.len(), |i| start + i);
    (start, end)
}

fn assert_error(df: &str, message: &str, help: &str) {
    let e = error(df);
    assert!(
        e.message.contains(message),
        "{df:?}: message {:?} lacks {message:?}",
        e.message
    );
    let h = e.help.clone().unwrap_or_default();
    assert!(h.contains(help), "{df:?}: help {h:?} lacks {help:?}");
    assert!(!e.label.is_empty());
    let (start, end) = flag_span(df);
    assert_eq!(
        (e.span.start, e.span.end),
        (start, end),
        "{df:?}: span {:?} is not the flag {:?}",
        &df[e.span.start..e.span.end],
        &df[start..end]
    );
}

#[test]
fn errors_point_at_the_flag_with_help() {
    assert_error(
        "FROM scratch\nRUN --mount=type=cach,target=/c true\n",
        "unsupported mount type \"cach\"",
        "did you mean type=cache? valid types: bind, cache, tmpfs, secret, ssh",
    );
    assert_error(
        "FROM scratch\nRUN --mount=type=volume,target=/c true\n",
        "unsupported mount type",
        "valid types: bind, cache, tmpfs, secret, ssh",
    );
    assert_error(
        "FROM scratch\nRUN --mount=type=cache,targt=/c true\n",
        "unexpected key 'targt' in 'targt=/c'",
        "did you mean target?",
    );
    assert_error(
        "FROM scratch\nRUN --mount=type=cache,target=/c,mode=0999 true\n",
        "invalid value 0999 for mode",
        "octal",
    );
    assert_error(
        "FROM scratch\nRUN --mount=type=cache true\n",
        "invalid mount target \"/\"",
        "no target= given",
    );
    assert_error(
        "FROM scratch\nRUN --mount=type=ssh true\n",
        "ssh mounts are not supported yet",
        "secret",
    );
    assert_error(
        "FROM scratch\nRUN --mount=type=bind,target=/x,mode=0600 true\n",
        "mode not allowed for \"bind\" type mounts",
        "cache, secret and ssh",
    );
    assert_error(
        "FROM scratch\nRUN --mount=type=cache,target=/x,size=1m true\n",
        "unexpected key 'size' for mount type 'cache'",
        "tmpfs",
    );
    assert_error(
        "FROM scratch\nRUN --mount=type=secret,from=x,id=a true\n",
        "secret mount should not have a from",
        "",
    );
    assert_error(
        "FROM scratch\nRUN --mount=type=secret true\n",
        "invalid secret mount. one of source, target required",
        "id=",
    );
    assert_error(
        "FROM scratch\nRUN --mount=type=secret,id=a,src=b true\n",
        "both source and id can't be set",
        "",
    );
    assert_error(
        "FROM scratch\nRUN --mount=type=bind,target=/x,sharing=locked true\n",
        "invalid cache sharing set for bind mount",
        "",
    );
    assert_error(
        "FROM scratch\nRUN --mount=type=cache,target=/x,sharing=open true\n",
        "unsupported sharing value",
        "shared, private, locked",
    );
    assert_error(
        "FROM scratch\nRUN --mount=type=bind,target=/x,ro=maybe true\n",
        "invalid value for ro: maybe",
        "true or false",
    );
    assert_error(
        "FROM scratch\nRUN --mount=type=bind,target=/x,required true\n",
        "unexpected key 'required' for mount type 'bind'",
        "",
    );
    assert_error(
        "FROM scratch\nRUN --mount=type=bind,target=/x,cache true\n",
        "invalid field 'cache' must be a key=value pair",
        "",
    );
    assert_error(
        "FROM scratch\nRUN --mount=type=cache,target=/x,uid=-1 true\n",
        "invalid value -1 for uid",
        "decimal",
    );
    assert_error(
        "FROM scratch\nARG S=a\nRUN --mount=from=$S,target=/x true\n",
        "'from' doesn't support variable expansion",
        "alias",
    );
    assert_error(
        "FROM scratch\nRUN --mount=type=bind,target=/x\\\"y true\n",
        "failed to parse csv mounts",
        "",
    );
}

#[test]
fn network_modes() {
    let dir = tempfile::tempdir().unwrap();
    let df = "FROM scratch\nRUN a\nRUN --network=none b\nRUN --network=host c\nRUN --network=default d\n";
    let nets = |build: RunNetwork| -> Vec<(RunNetwork, bool)> {
        let p = lower_in(dir.path(), df, build).unwrap();
        p.nodes
            .iter()
            .filter_map(|n| match &n.op {
                Op::Run(r) => Some((r.network, n.reasons.iter().any(|r| r.contains("network")))),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        nets(RunNetwork::Host),
        [
            (RunNetwork::Host, true),
            (RunNetwork::None, false),
            (RunNetwork::Host, true),
            (RunNetwork::Host, true)
        ]
    );
    assert_eq!(nets(RunNetwork::None)[0], (RunNetwork::None, false));
    assert_eq!(nets(RunNetwork::Default)[0], (RunNetwork::Default, true));
    let e = error("FROM scratch\nRUN --network=bridge x\n");
    assert!(e.message.contains("invalid network mode \"bridge\""));
}

#[test]
fn from_stage_adds_an_input_and_its_key_follows_the_stage() {
    let df = |build: &str| {
        format!("FROM scratch AS tools\nRUN {build}\n\nFROM scratch\nRUN --mount=from=tools,source=/bin,target=/tools --mount=type=cache,from=tools,target=/c --mount=type=bind,target=/ctx true\n")
    };
    let a = plan(&df("make a"));
    let (node, run) = last_run(&a);
    let tools_last = a
        .nodes
        .iter()
        .find(|n| n.origin.stage == "tools" && matches!(n.op, Op::Run(_)))
        .unwrap()
        .id;
    // Input 0 is the stage's previous node, 1 the tools stage (once), 2 the context.
    assert_eq!(node.inputs.len(), 3);
    assert_eq!(node.inputs[1], tools_last);
    assert_eq!(
        run.mounts[0].kind,
        MountKind::Bind {
            source: "/bin".into(),
            from: MountSource::Node { input: 1 },
            readonly: true
        }
    );
    assert!(matches!(
        run.mounts[1].kind,
        MountKind::Cache {
            from: Some(MountSource::Node { input: 1 }),
            ..
        }
    ));
    assert!(matches!(
        run.mounts[2].kind,
        MountKind::Bind {
            from: MountSource::Context { input: 2 },
            ..
        }
    ));
    let b = plan(&df("make b"));
    assert_ne!(last_run(&a).0.key, last_run(&b).0.key);
    assert_eq!(last_run(&a).0.key, last_run(&plan(&df("make a"))).0.key);
    // A stage index works as for COPY --from; an unknown one is COPY's error.
    let p = plan("FROM scratch\nRUN x\nFROM scratch\nRUN --mount=from=0,target=/m true\n");
    assert_eq!(last_run(&p).0.inputs.len(), 2);
    let e = error("FROM scratch\nRUN --mount=from=7,target=/m true\n");
    assert!(e.message.contains("invalid stage index 7"), "{}", e.message);
    // An image reference becomes a base image input.
    let p = plan("FROM scratch\nRUN --mount=from=alpine:3.19,target=/m true\n");
    let (node, _) = last_run(&p);
    assert!(
        matches!(&p.node(node.inputs[1]).op, Op::BaseImage { reference, .. } if reference == "alpine:3.19")
    );
}

#[test]
fn context_bind_key_follows_the_bound_files() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("src")).unwrap();
    fs::write(dir.path().join("src/a.txt"), "one").unwrap();
    fs::write(dir.path().join("other.txt"), "x").unwrap();
    let df = "FROM scratch\nRUN --mount=source=src,target=/src cat /src/a.txt\n";
    let key = || {
        last_run(&lower_in(dir.path(), df, RunNetwork::None).unwrap())
            .0
            .key
    };
    let k1 = key();
    fs::write(dir.path().join("other.txt"), "y").unwrap();
    assert_eq!(key(), k1, "a file outside the bind does not move the key");
    fs::write(dir.path().join("src/a.txt"), "two").unwrap();
    assert_ne!(key(), k1, "the bound file's content is in the key");
    let e = match lower_in(
        dir.path(),
        "FROM scratch\nRUN --mount=source=nope,target=/n true\n",
        RunNetwork::None,
    ) {
        Err(e) => e,
        Ok(_) => panic!("missing bind source must fail"),
    };
    assert!(e.message.contains("nope"), "{}", e.message);
}

#[test]
fn secrets_and_caches_are_not_hermetic_and_secrets_stay_out_of_json() {
    let p = plan("FROM scratch\nRUN --mount=type=secret,id=tok,env=TOKEN --mount=type=cache,target=/c echo $TOKEN\n");
    let (node, _) = last_run(&p);
    assert!(!node.hermetic);
    assert!(node.reasons.iter().any(|r| r.contains("secret \"tok\"")));
    assert!(node.reasons.iter().any(|r| r.contains("cache \"/c\"")));
    // The op as the key and the plan serialize it: members in the documented order.
    let json = serde_json::to_string(&node.op).unwrap();
    assert!(json.contains(r#"{"target":null,"type":"secret","id":"tok","required":false,"mode":256,"uid":0,"gid":0,"env":"TOKEN"}"#), "{json}");
    // The plan has no place for a secret's value: nothing but what the Dockerfile says.
    let hist = match &p.target_image().1.history.last() {
        Some(h) => h.created_by.clone(),
        None => panic!("history"),
    };
    assert_eq!(hist, "RUN /bin/sh -c echo $TOKEN # buildkit");
}

#[test]
fn mount_json_shape() {
    let p = plan("FROM scratch\nRUN --mount=type=tmpfs,target=/t,size=1k --mount=target=/b true\n");
    let v = p.to_json();
    let run = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == "run")
        .unwrap();
    assert_eq!(
        run["definition"]["mounts"],
        serde_json::json!([
            {"target": "/t", "type": "tmpfs", "size": 1024, "readonly": false},
            {"target": "/b", "type": "bind", "source": "/", "from": {"context": {"input": 1}}, "readonly": true}
        ])
    );
    assert_eq!(run["definition"]["network"], "none");
}

fn history(p: &Plan) -> String {
    p.target_image()
        .1
        .history
        .last()
        .unwrap()
        .created_by
        .clone()
}

#[test]
fn heredoc_single_runs_its_body() {
    let p = plan("FROM scratch\nRUN <<EOF\necho a\necho $HOME\nEOF\n");
    let (_, run) = last_run(&p);
    assert_eq!(run.argv, ["/bin/sh", "-c", "echo a\necho $HOME\n"]);
    assert!(run.mounts.is_empty());
    assert_eq!(
        history(&p),
        "RUN /bin/sh -c echo a\necho $HOME\n # buildkit"
    );
    // `<<-` strips leading tabs; a quoted delimiter changes nothing here (never expanded).
    let p = plan("FROM scratch\nRUN <<-'EOF'\n\techo a\n\t\techo b\n\tEOF\n");
    assert_eq!(last_run(&p).1.argv[2], "echo a\necho b\n");
    // SHELL applies.
    let p = plan("FROM scratch\nSHELL [\"/bin/bash\", \"-ec\"]\nRUN <<EOF\nx\nEOF\n");
    assert_eq!(last_run(&p).1.argv, ["/bin/bash", "-ec", "x\n"]);
}

#[test]
fn heredoc_shebang_becomes_a_file() {
    let p = plan("FROM scratch\nRUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n");
    let (_, run) = last_run(&p);
    assert_eq!(run.argv, ["/bin/sh", "-c", "/dev/pipes/EOF"]);
    assert_eq!(
        run.mounts,
        [RunMount {
            target: Some("/dev/pipes/EOF".into()),
            kind: MountKind::File {
                content: "#!/usr/bin/env python3\nprint(1)\n".into(),
                mode: 0o755
            }
        }]
    );
    assert_eq!(history(&p), "RUN /bin/sh -c /dev/pipes/EOF # buildkit");
    // The script file comes after the --mounts; with <<- the shebang is found after chomping.
    let p = plan("FROM scratch\nRUN --mount=type=tmpfs,target=/t <<-X\n\t#!/bin/sh\n\techo\nX\n");
    let (_, run) = last_run(&p);
    assert_eq!(run.mounts.len(), 2);
    assert_eq!(run.mounts[1].target.as_deref(), Some("/dev/pipes/X"));
    assert!(
        matches!(&run.mounts[1].kind, MountKind::File { content, .. } if content == "#!/bin/sh\necho\n")
    );
}

#[test]
fn heredoc_with_a_command_is_reconstituted() {
    let p = plan("FROM scratch\nRUN python3 <<EOF\nprint(1)\nEOF\n");
    assert_eq!(
        last_run(&p).1.argv,
        ["/bin/sh", "-c", "python3 <<EOF\nprint(1)\nEOF"]
    );
    assert_eq!(
        history(&p),
        "RUN /bin/sh -c python3 <<EOF\nprint(1)\nEOF # buildkit"
    );
    // Two heredocs; `<<-` bodies keep their tabs for the shell to strip.
    let p = plan("FROM scratch\nRUN cat <<A <<-B > /x\na\nA\n\tb\n\tB\n");
    assert_eq!(last_run(&p).1.argv[2], "cat <<A <<-B > /x\na\nA\n\tb\nB");
    // A shebang body with a command is not a file.
    let p = plan("FROM scratch\nRUN sh <<EOF\n#!/bin/sh\nEOF\n");
    assert!(last_run(&p).1.mounts.is_empty());
}

#[test]
fn history_leaves_mount_flags_out() {
    let p = plan("FROM scratch\nRUN --mount=type=cache,target=/c --network=none make\n");
    assert_eq!(history(&p), "RUN /bin/sh -c make # buildkit");
}

/// Every `--mount` in the real-world corpus parses (ssh mounts refused with our message),
/// lowered with the rest of its Dockerfile where it lowers at all.
#[test]
fn corpus_mounts_parse() {
    let root = match std::env::var_os("KILN_CONFORMANCE_CORPUS") {
        Some(r) => std::path::PathBuf::from(r),
        None => std::path::PathBuf::from("/work/shared/corpus"),
    };
    let Ok(dir) = fs::read_dir(root.join("real")) else {
        eprintln!("corpus not found; skipped");
        return;
    };
    let mut checked = 0;
    let mut failures = Vec::new();
    for entry in dir {
        let path = entry.unwrap().path();
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        if !text.contains("--mount") {
            continue;
        }
        let Ok(df) = kiln_compiler::syntax::parse(&text) else {
            continue;
        };
        for ins in &df.instructions {
            let ins = ins.sub.as_deref().unwrap_or(ins);
            if ins.cmd != "RUN" {
                continue;
            }
            for f in &ins.flags {
                let Some(v) = f.raw.strip_prefix("--mount=") else {
                    continue;
                };
                checked += 1;
                let r =
                    kiln_compiler::dockerfile::mounts::parse_mount(
                        v,
                        f.span,
                        |s| Ok(s.to_string()),
                    );
                if let Err(e) = r {
                    failures.push(format!("{}: --mount={v}: {}", path.display(), e.message));
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} mounts in the corpus");
    // buildah's own `z` (SELinux relabel) option, which BuildKit rejects with this message too.
    failures.retain(|f| {
        !(f.contains("containers__buildah")
            && f.contains("invalid field 'z' must be a key=value pair"))
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
