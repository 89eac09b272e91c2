//! RUN steps: from a plan's RUN op to a container spec, through the [`StepRunner`] the build
//! is handed (the sandbox, or a fake in tests), to the layer its changes make.
//!
//! Owns: the step's root (the input's layers, unpacked once in the store, under a fresh
//! overlay upper directory), its mounts (context and stage binds, persistent cache
//! directories, tmpfs, secrets, heredoc scripts), its network, removing the mount points
//! set-up had to create, and turning the upper directory into layer entries.
//! Must not: write layers or cache records (the executor does), or keep a secret's bytes
//! anywhere but in the spec handed to the runner.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use kiln_plan::plan::{MountKind as PlanMount, MountSource, Node, RunMount, RunNetwork, RunOp};

use super::{BuildError, Exec, LayerRef, Output};
use crate::layer::{self, Entry};
use crate::sandbox::spec::{self, ContainerSpec, Mount, MountKind, Network, Process, Rootfs};
use crate::sandbox::{caps, Launcher, Streams};

/// The hostname RUN steps see (BuildKit's, which scripts sometimes test for).
const HOSTNAME: &str = "buildkitsandbox";
/// Lines of a failed step's output repeated in its error.
const TAIL_LINES: usize = 10;

/// How a step's container ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepExit {
    /// The payload's exit status (128+signal when killed).
    pub code: i32,
    /// Mount points set-up created inside the root (removed again before the layer is made).
    pub stubs: Vec<String>,
}

/// Runs one RUN step's container. `output` receives the payload's stdout and stderr, a line
/// at a time.
pub trait StepRunner: Sync {
    /// Whether steps can run here at all (checked before a step's root is prepared).
    fn check(&self) -> Result<(), BuildError> {
        Ok(())
    }
    fn run(
        &self,
        spec: &ContainerSpec,
        output: &mut dyn FnMut(&str),
    ) -> Result<StepExit, BuildError>;
}

/// The real runner: kiln's sandbox.
pub struct SandboxRunner {
    pub launcher: Launcher,
}

impl StepRunner for SandboxRunner {
    fn check(&self) -> Result<(), BuildError> {
        Ok(crate::sandbox::require_root()?)
    }

    fn run(
        &self,
        spec: &ContainerSpec,
        output: &mut dyn FnMut(&str),
    ) -> Result<StepExit, BuildError> {
        let (read, write) = std::io::pipe().map_err(|e| BuildError::Run(format!("pipe: {e}")))?;
        let write2 = write
            .try_clone()
            .map_err(|e| BuildError::Run(format!("pipe: {e}")))?;
        let streams = Streams {
            stdin: Stdio::null(),
            stdout: Stdio::from(write),
            stderr: Stdio::from(write2),
        };
        let mut container = self.launcher.start(spec, streams)?;
        // The streams' write ends now live only in the container: EOF comes when it ends.
        let mut reader = BufReader::new(read);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            let text = String::from_utf8_lossy(&line);
            output(text.trim_end_matches(['\n', '\r']));
            line.clear();
        }
        let stubs = std::mem::take(&mut container.stubs);
        Ok(StepExit {
            code: container.wait()?.code,
            stubs,
        })
    }
}

/// Secrets given to the build (`--secret id=..,src=..|env=..`): id to bytes.
#[derive(Clone, Default)]
pub struct Secrets(pub BTreeMap<String, Arc<[u8]>>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the values.
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Exec<'_> {
    pub(super) fn run_step(
        &self,
        node: &Node,
        op: &RunOp,
        base: &Output,
    ) -> Result<Option<LayerRef>, BuildError> {
        self.runner.check()?;
        let bundle = self.store.scratch_dir()?;
        let dirs = ["upper", "work", "merged", "scratch", "empty"].map(|d| bundle.path().join(d));
        for d in &dirs {
            std::fs::create_dir(d).map_err(|e| BuildError::Run(format!("{}: {e}", d.display())))?;
        }
        let [upper, work, merged, scratch, empty] = dirs;
        let mut layers = self.unpacked(&base.layers)?;
        if layers.is_empty() {
            layers.push(empty.clone());
        }
        let network = match op.network {
            RunNetwork::None => Network::None,
            RunNetwork::Host | RunNetwork::Default => Network::Host,
        };
        let mut env = op.env.clone();
        let mut mounts = crate::sandbox::net::etc_files(HOSTNAME, &network, &[]);
        let mut cache_locks = Vec::new();
        for (i, m) in op.mounts.iter().enumerate() {
            if let Some(mount) =
                self.mount(node, m, i, bundle.path(), &mut env, &mut cache_locks)?
            {
                mounts.push(mount);
            }
        }
        let spec = ContainerSpec {
            id: format!("step-{}", node.id.0),
            rootfs: Rootfs {
                layers,
                upper: upper.clone(),
                work,
                merged,
                scratch,
                readonly: false,
                ephemeral: true,
            },
            process: Process {
                args: op.argv.clone(),
                // BuildKit sets the sandbox's host name but no HOSTNAME variable (that is
                // dockerd's, for `docker run`): a step's environment is the image's and the
                // build's, PATH defaulted.
                env: spec::container_env(&env, &[], ""),
                cwd: if op.cwd.is_empty() {
                    "/".into()
                } else {
                    op.cwd.clone()
                },
                user: op.user.clone(),
                terminal: false,
            },
            hostname: HOSTNAME.into(),
            network,
            mounts,
            init: false,
            capabilities: caps::DOCKER_DEFAULT,
            seccomp: true,
            ports: Vec::new(),
            privileged: false,
            pid: Default::default(),
            resources: Default::default(),
            limits: Default::default(),
        };
        let mut tail: Vec<String> = Vec::new();
        let id = node.id.0;
        let exit = self.runner.run(&spec, &mut |line| {
            if tail.len() == TAIL_LINES {
                tail.remove(0);
            }
            tail.push(line.to_string());
            self.progress.event(super::Event::Log {
                id,
                line: line.to_string(),
            });
        })?;
        drop(cache_locks);
        if exit.code != 0 {
            return Err(BuildError::RunFailed {
                command: op.argv.join(" "),
                code: exit.code,
                tail: tail.join("\n"),
            });
        }
        let lower = self.tree(&base.layers)?;
        capture_layer(self.store, &upper, &exit.stubs, &lower, op.mtime)
    }

    fn unpacked(&self, layers: &[LayerRef]) -> Result<Vec<PathBuf>, BuildError> {
        self.ensure_layers(layers)?;
        let diff_ids: Vec<_> = layers.iter().map(|l| l.diff_id.clone()).collect();
        Ok(crate::container::layer_dirs(self.store, &diff_ids)?)
    }

    /// The sandbox mount for one `RUN --mount` (None for an absent optional secret).
    fn mount(
        &self,
        node: &Node,
        m: &RunMount,
        index: usize,
        bundle: &Path,
        env: &mut Vec<String>,
        cache_locks: &mut Vec<crate::store::CacheMountLock>,
    ) -> Result<Option<Mount>, BuildError> {
        let target = m.target.clone().unwrap_or_default();
        let mut read_only = true;
        let kind = match &m.kind {
            PlanMount::Bind {
                source,
                from,
                readonly,
            } => {
                let layers = self.source_layers(node, *from, bundle, index)?;
                read_only = *readonly;
                let upper = if *readonly {
                    None
                } else {
                    let (u, w) = (
                        bundle.join(format!("m{index}-upper")),
                        bundle.join(format!("m{index}-work")),
                    );
                    for d in [&u, &w] {
                        std::fs::create_dir(d)
                            .map_err(|e| BuildError::Run(format!("{}: {e}", d.display())))?;
                    }
                    Some((u, w))
                };
                MountKind::Layers {
                    layers,
                    upper,
                    subpath: source.clone(),
                }
            }
            PlanMount::Cache {
                id,
                sharing,
                readonly,
                mode,
                uid,
                gid,
                ..
            } => {
                let (dir, lock) = self
                    .store
                    .cache_mount_dir(id, *sharing, *mode, *uid, *gid)?;
                cache_locks.extend(lock);
                return Ok(Some(Mount {
                    target,
                    kind: MountKind::Bind {
                        source: dir,
                        fill: false,
                    },
                    readonly: *readonly,
                }));
            }
            PlanMount::Tmpfs { size, readonly } => {
                return Ok(Some(Mount {
                    target,
                    kind: MountKind::Tmpfs {
                        size: *size,
                        mode: 0o1777,
                        noexec: false,
                    },
                    readonly: *readonly,
                }))
            }
            PlanMount::Secret {
                id,
                required,
                mode,
                uid,
                gid,
                env: var,
            } => {
                let Some(value) = self.settings.secrets.0.get(id) else {
                    if *required {
                        return Err(BuildError::MissingSecret(id.clone()));
                    }
                    return Ok(None);
                };
                if let Some(var) = var {
                    env.push(format!("{var}={}", String::from_utf8_lossy(value)));
                }
                if m.target.is_none() {
                    return Ok(None);
                }
                MountKind::File {
                    content: value.to_vec(),
                    mode: *mode,
                    uid: *uid,
                    gid: *gid,
                }
            }
            PlanMount::File { content, mode } => MountKind::File {
                content: content.as_bytes().to_vec(),
                mode: *mode,
                uid: 0,
                gid: 0,
            },
        };
        Ok(Some(Mount {
            target,
            kind,
            readonly: read_only,
        }))
    }

    /// The layers of a bind mount's source: a stage's or image's stack, or the selected
    /// context files written as one layer.
    fn source_layers(
        &self,
        node: &Node,
        from: MountSource,
        bundle: &Path,
        index: usize,
    ) -> Result<Vec<PathBuf>, BuildError> {
        match from {
            MountSource::Node { input } => {
                let mut dirs = self.unpacked(&self.input(node, input).layers)?;
                if dirs.is_empty() {
                    let empty = bundle.join(format!("m{index}-empty"));
                    std::fs::create_dir(&empty)
                        .map_err(|e| BuildError::Run(format!("{}: {e}", empty.display())))?;
                    dirs.push(empty);
                }
                Ok(dirs)
            }
            MountSource::Context { input } => {
                let Some(kiln_plan::plan::Op::Context(sel)) =
                    node.inputs.get(input).map(|id| &self.plan.node(*id).op)
                else {
                    return Err(BuildError::Run(
                        "a context bind mount without its context input".into(),
                    ));
                };
                let ctx = &self.plan.context;
                let mut entries: Vec<Entry> = Vec::new();
                for &i in &sel.files {
                    let path = &ctx.files[i].path;
                    if let Some(e) = super::copy::FsTree::entry(ctx, path, path.clone())? {
                        entries.push(e);
                    }
                }
                let tar = bundle.join(format!("m{index}.tar"));
                let file = std::fs::File::create(&tar)
                    .map_err(|e| BuildError::Run(format!("{}: {e}", tar.display())))?;
                layer::write_layer(entries, std::io::BufWriter::new(file))?;
                let dir = bundle.join(format!("m{index}-context"));
                std::fs::create_dir(&dir)
                    .map_err(|e| BuildError::Run(format!("{}: {e}", dir.display())))?;
                layer::extract_layer(&tar, &dir)?;
                Ok(vec![dir])
            }
        }
    }
}

/// The layer a container's upper directory makes over `lower` (its image's layers): the
/// changes, mount-point stubs left out, every mtime `mtime`; `None` when nothing changed.
/// RUN steps and `kiln commit` make their layers here.
pub(crate) fn capture_layer(
    store: &crate::store::Store,
    upper: &Path,
    stubs: &[String],
    lower: &super::LayerTree,
    mtime: u64,
) -> Result<Option<LayerRef>, BuildError> {
    let entries = layer::capture_changes(upper, lower.view(), mtime, stubs)?;
    if entries.is_empty() {
        return Ok(None);
    }
    super::write_layer_blob(store, entries).map(Some)
}
