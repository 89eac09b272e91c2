//! `kiln compose config|convert|up|down|ps|logs|build|pull|push|stop|start|restart|rm|exec|run`:
//! a compose project (src/compose.rs) carried out with the library calls and commands of
//! `kiln network create`, `kiln volume create`, `kiln build`, `kiln pull`, `kiln push`,
//! `kiln run`, `kiln ps`, `kiln logs`, `kiln exec`, `kiln stop|start|restart` and `kiln rm`;
//! `up` waits for depends_on conditions (`service_healthy` reads the health the container's
//! supervisor records from its healthcheck) and, without -d, follows the containers' logs with `service-N  | ` prefixes.
//! Must not: parse the file itself (src/compose.rs does) or shell out to kiln.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use kiln_runtime::container::{self, health, log, network, volume, ContainerError, Record};
use kiln_runtime::store::Store;

use super::transfer::open_store;
use clap::Parser;

use crate::cli::{
    BuildArgs, Cli, Command, ComposeArgs, ComposeCommand, ConvertFormat, ExecArgs, PullArgs,
    PushArgs, RunArgs,
};
use crate::compose::{self, NetworkMode, Project, Service};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
enum ComposeRunError {
    #[error("the arguments kiln compose made did not parse: {0}")]
    BuildArgs(String),
    #[error("service {service}: image {image} is not in the store")]
    #[diagnostic(help("kiln compose pull {service} (or kiln pull {image})"))]
    NoImage { service: String, image: String },
    #[error("service {service}: port {target} has no host port")]
    #[diagnostic(help("kiln never picks a host port at random: write HOST:{target}"))]
    RandomPort { service: String, target: u16 },
    #[error("service {service}: image {image} is not in kiln's store, so it has no digest to pin")]
    #[diagnostic(help("{help}"))]
    Unpinned {
        service: String,
        image: String,
        help: String,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot print YAML: {0}")]
    Yaml(String),
    #[error("service {0} is not in the project")]
    NoService(String),
    #[error("--scale {0}: write SERVICE=N")]
    Scale(String),
    #[error("service {service} cannot run {n} containers: it publishes host port {port}, which only one can bind")]
    ScalePort { service: String, n: u32, port: u16 },
    #[error("service {service} did not become healthy: {why}")]
    #[diagnostic(help("kiln compose logs {service}"))]
    Unhealthy { service: String, why: String },
    #[error("service {service} did not complete successfully: {why}")]
    #[diagnostic(help("kiln compose logs {service}"))]
    NotCompleted { service: String, why: String },
    #[error("service {service} depends on {dependency} with the unknown condition {condition}")]
    #[diagnostic(help(
        "the conditions are service_started, service_healthy and service_completed_successfully"
    ))]
    Condition {
        service: String,
        dependency: String,
        condition: String,
    },
    #[error("service {service} uses the container name {name}, so it cannot run more than one container")]
    #[diagnostic(help("remove container_name: from {service} to scale it"))]
    ScaleName { service: String, name: String },
    #[error("service {0} has no healthcheck, so depends_on cannot wait for it to be healthy")]
    NoHealthcheck(String),
    #[error(
        "service {dependency} was pulled in as a dependency of service {service} but is not \
         enabled by the active profiles"
    )]
    #[diagnostic(help(
        "give {dependency} and {service} a common profile, activate one of {dependency}'s \
         with --profile, or name {dependency} on the command line"
    ))]
    DisabledDependency { service: String, dependency: String },
    #[error("service {service} has no container {index}")]
    #[diagnostic(help("kiln compose up -d {service}"))]
    NoContainer { service: String, index: u32 },
}

pub fn compose(root: Option<PathBuf>, a: ComposeArgs) -> miette::Result<ExitCode> {
    let project = compose::load(
        &a.file,
        a.project_directory.as_deref(),
        a.project_name.as_deref(),
        &a.profile,
    )?;
    let p = &project;
    let done = |r: miette::Result<()>| r.map(|()| ExitCode::SUCCESS);
    match a.command {
        ComposeCommand::Config { quiet: true, .. } => Ok(ExitCode::SUCCESS),
        ComposeCommand::Config { services: true, .. } => {
            for s in &p.services {
                println!("{}", s.name);
            }
            Ok(ExitCode::SUCCESS)
        }
        ComposeCommand::Config { volumes: true, .. } => {
            for v in &p.volumes {
                println!("{v}");
            }
            Ok(ExitCode::SUCCESS)
        }
        ComposeCommand::Config { .. }
        | ComposeCommand::Convert {
            to: ConvertFormat::Compose,
            out: None,
        } => {
            print!("{}", yaml(&compose::to_yaml(p))?);
            Ok(ExitCode::SUCCESS)
        }
        ComposeCommand::Convert {
            to: ConvertFormat::Compose,
            out: Some(dir),
        } => {
            let text = yaml(&compose::to_yaml(p))?;
            done(write_file(&dir, "compose.yaml", &text))
        }
        ComposeCommand::Convert {
            to: ConvertFormat::Kubernetes,
            out,
        } => done(convert_kubernetes(root, p, out.as_deref())),
        ComposeCommand::Up {
            detach,
            build,
            scale,
            force_recreate,
            no_recreate,
            timeout,
            services,
        } => {
            if !detach {
                // Before any thread exists, so every thread inherits the mask: a SIGTERM or
                // Ctrl-C while the services start is taken once the logs are followed.
                stop_signals();
            }
            let scale = parse_scale(p, &scale)?;
            let chosen = enabled(p, &services)?;
            let recreate = match (force_recreate, no_recreate) {
                (true, _) => Recreate::Always(timeout),
                (_, true) => Recreate::Never,
                _ => Recreate::Changed(timeout),
            };
            up(root.clone(), p, &chosen, build, &scale, recreate)?;
            if detach {
                Ok(ExitCode::SUCCESS)
            } else {
                done(follow_logs(root, p, &chosen, Follow::AndStop))
            }
        }
        ComposeCommand::Build { services } => done(ensure_images(
            root,
            p,
            &enabled(p, &services)?,
            Images::Build,
        )),
        ComposeCommand::Pull { services } => done(ensure_images(
            root,
            p,
            &enabled(p, &services)?,
            Images::Pull,
        )),
        ComposeCommand::Push { services } => done(push(root, p, &enabled(p, &services)?)),
        ComposeCommand::Stop { timeout, services } => {
            done(stop(root, p, &selected(p, &services)?, timeout))
        }
        ComposeCommand::Start { services } => done(start(root, p, &selected(p, &services)?)),
        ComposeCommand::Restart { timeout, services } => {
            let chosen = selected(p, &services)?;
            stop(root.clone(), p, &chosen, timeout)?;
            done(start(root, p, &chosen))
        }
        ComposeCommand::Rm {
            force: _,
            stop: stop_first,
            services,
        } => {
            let chosen = selected(p, &services)?;
            if stop_first {
                stop(root.clone(), p, &chosen, 10)?;
            }
            done(rm(root, p, &chosen))
        }
        ComposeCommand::Exec {
            no_tty: _,
            tty,
            env,
            user,
            workdir,
            index,
            service_and_command,
        } => {
            let (service, command) = service_and_command
                .split_first()
                .ok_or_else(|| ComposeRunError::NoService(String::new()))?;
            let s = service_of(p, service)?;
            let store = open_store(root.clone())?;
            let name = p.container(&s.name, index);
            if container::find(&store, &name).is_err() {
                return Err(ComposeRunError::NoContainer {
                    service: s.name.clone(),
                    index,
                }
                .into());
            }
            // `kiln exec`'s argv, read by the CLI's parser (its defaults, its checks).
            let mut argv: Vec<String> = vec!["kiln".into(), "exec".into()];
            if tty {
                argv.extend(["-i".into(), "-t".into()]);
            }
            for e in env {
                argv.push(format!("--env={e}"));
            }
            if let Some(u) = user {
                argv.push(format!("--user={u}"));
            }
            if let Some(w) = workdir {
                argv.push(format!("--workdir={w}"));
            }
            argv.push(name);
            argv.extend(command.iter().cloned());
            let args: ExecArgs = match Cli::try_parse_from(&argv) {
                Ok(Cli {
                    command: Command::Exec(a),
                    ..
                }) => a,
                _ => return Err(ComposeRunError::BuildArgs(argv.join(" ")).into()),
            };
            super::containers::exec(root, args)
        }
        ComposeCommand::Run {
            rm,
            detach,
            env,
            user,
            workdir,
            entrypoint,
            service_and_command,
        } => {
            let (service, command) = service_and_command
                .split_first()
                .ok_or_else(|| ComposeRunError::NoService(String::new()))?;
            let s = service_of(p, service)?;
            // The service and its dependencies, which the active profiles must enable.
            let deps: Vec<&Service> = enabled(p, std::slice::from_ref(service))?
                .into_iter()
                .filter(|d| d.name != s.name)
                .collect();
            // As docker-compose 1.29: running dependencies are kept as they are.
            up(
                root.clone(),
                p,
                &deps,
                false,
                &BTreeMap::new(),
                Recreate::Never,
            )?;
            ensure_images(root.clone(), p, &[s], Images::Missing)?;
            let mut extra: Vec<String> = Vec::new();
            if rm {
                extra.push("--rm".into());
            }
            if detach {
                extra.push("-d".into());
            }
            for e in &env {
                extra.push(format!("--env={e}"));
            }
            if let Some(u) = &user {
                extra.push(format!("--user={u}"));
            }
            if let Some(w) = &workdir {
                extra.push(format!("--workdir={w}"));
            }
            if let Some(e) = &entrypoint {
                extra.push(format!("--entrypoint={e}"));
            }
            let name = format!("{}-{}-run-{}", p.name, s.name, run_suffix());
            let mut service = s.clone();
            // docker compose run publishes no ports (they would collide with the service's).
            service.ports.clear();
            if entrypoint.is_some() {
                service.entrypoint = None;
            }
            let command = (!command.is_empty()).then_some(command);
            let args = run_args(p, &service, &name, &extra, command)?;
            done(super::run::run(root, args))
        }
        ComposeCommand::Ps {
            all,
            quiet,
            services,
        } => done(ps(root, p, &selected(p, &services)?, all, quiet)),
        ComposeCommand::Logs { follow, services } => {
            done(logs(root, p, &selected(p, &services)?, follow))
        }
        ComposeCommand::Down { volumes, timeout } => done(down(root, p, volumes, timeout)),
    }
}

/// A short random suffix for `compose run` containers, as docker compose names them.
fn run_suffix() -> String {
    let mut bytes = [0u8; 6];
    if getrandom(&mut bytes).is_err() {
        let n = std::process::id();
        return format!("{n:012x}");
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn getrandom(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

fn service_of<'a>(p: &'a Project, name: &str) -> Result<&'a Service, ComposeRunError> {
    p.services
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ComposeRunError::NoService(name.to_string()))
}

/// The services named (all when none is), in the project's depends_on order.
fn selected<'a>(p: &'a Project, names: &[String]) -> Result<Vec<&'a Service>, ComposeRunError> {
    for n in names {
        service_of(p, n)?;
    }
    Ok(p.services
        .iter()
        .filter(|s| names.is_empty() || names.contains(&s.name))
        .collect())
}

/// The services `up`, `build`, `pull`, `push` and `convert` act on: the ones named, else
/// every one the active profiles enable; then, transitively, their dependencies, each of
/// which must be enabled, as docker compose requires. Naming a service activates its
/// profiles (so a named service runs whatever its profiles, and so do dependencies that
/// share one of them). In depends_on order.
fn enabled<'a>(p: &'a Project, names: &[String]) -> Result<Vec<&'a Service>, ComposeRunError> {
    let chosen: Vec<&Service> = match names {
        [] => p
            .services
            .iter()
            .filter(|s| s.enabled_by(&p.profiles))
            .collect(),
        names => selected(p, names)?,
    };
    let mut active = p.profiles.clone();
    for s in chosen.iter().filter(|s| names.contains(&s.name)) {
        active.extend(s.profiles.iter().cloned());
    }
    let all = with_dependencies(p, &chosen);
    for s in &all {
        for d in s.depends_on.keys() {
            if !service_of(p, d)?.enabled_by(&active) {
                return Err(ComposeRunError::DisabledDependency {
                    service: s.name.clone(),
                    dependency: d.clone(),
                });
            }
        }
    }
    Ok(all)
}

/// The services and, transitively, the ones they depend on, in depends_on order.
fn with_dependencies<'a>(p: &'a Project, chosen: &[&Service]) -> Vec<&'a Service> {
    let mut want: Vec<String> = chosen.iter().map(|s| s.name.clone()).collect();
    let mut i = 0;
    while i < want.len() {
        if let Some(s) = p.services.iter().find(|s| s.name == want[i]) {
            for d in s.depends_on.keys() {
                if !want.contains(d) {
                    want.push(d.clone());
                }
            }
        }
        i += 1;
    }
    p.services
        .iter()
        .filter(|s| want.contains(&s.name))
        .collect()
}

fn parse_scale(p: &Project, specs: &[String]) -> miette::Result<BTreeMap<String, u32>> {
    let mut out = BTreeMap::new();
    for spec in specs {
        let (name, n) = spec
            .split_once('=')
            .and_then(|(s, n)| Some((s, n.parse::<u32>().ok()?)))
            .ok_or_else(|| ComposeRunError::Scale(spec.clone()))?;
        let s = service_of(p, name)?;
        if n > 1 {
            if let Some(fixed) = &s.run.container_name {
                return Err(ComposeRunError::ScaleName {
                    service: s.name.clone(),
                    name: fixed.clone(),
                }
                .into());
            }
            if let Some(port) = s.ports.iter().find_map(|p| p.published) {
                return Err(ComposeRunError::ScalePort {
                    service: s.name.clone(),
                    n,
                    port,
                }
                .into());
            }
        }
        out.insert(name.to_string(), n);
    }
    Ok(out)
}

/// The service's containers, by number (not `compose run` ones): those labelled with the
/// project, the service and a container number, as `up` labels them (a `container_name:`
/// one too), and unlabelled ones named `<project>-<service>-N`.
fn instances(store: &Store, p: &Project, service: &str) -> miette::Result<Vec<(u32, Record)>> {
    let prefix = format!("{}-{service}-", p.name);
    let label = |r: &Record, k: &str| r.labels.get(k).cloned();
    let mut out: Vec<(u32, Record)> = container::list(store)?
        .into_iter()
        .filter_map(|r| {
            let n = match label(&r, NUMBER_LABEL) {
                Some(n) => {
                    let ours = label(&r, PROJECT_LABEL).as_deref() == Some(p.name.as_str())
                        && label(&r, SERVICE_LABEL).as_deref() == Some(service);
                    if !ours {
                        return None;
                    }
                    n.parse::<u32>().ok()?
                }
                None => r.name.strip_prefix(&prefix)?.parse::<u32>().ok()?,
            };
            Some((n, r))
        })
        .collect();
    out.sort_by_key(|(n, _)| *n);
    Ok(out)
}

/// The `kiln build` arguments of a service's `build:`, read by the CLI's own parser so every
/// default is the one `kiln build` has.
fn build_args(image: &str, b: &compose::Build) -> miette::Result<BuildArgs> {
    let mut argv: Vec<String> = vec!["kiln".into(), "build".into(), "-q".into()];
    argv.extend(["-t".into(), image.to_string()]);
    argv.extend([
        "-f".into(),
        b.context.join(&b.dockerfile).display().to_string(),
    ]);
    for (k, v) in &b.args {
        argv.extend(["--build-arg".into(), format!("{k}={v}")]);
    }
    if let Some(t) = &b.target {
        argv.extend(["--target".into(), t.clone()]);
    }
    argv.push(b.context.display().to_string());
    match Cli::try_parse_from(&argv) {
        Ok(Cli {
            command: Command::Build(a),
            ..
        }) => Ok(a),
        Ok(_) => Err(ComposeRunError::BuildArgs(argv.join(" ")).into()),
        Err(e) => Err(miette::miette!("{}: {e}", argv.join(" "))),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Images {
    /// Build a service with `build:` when its image is missing; pull one without.
    Missing,
    /// Build every service that has `build:` (`compose build`, `up --build`).
    Build,
    /// Pull every service that has `image:` and no `build:` (`compose pull`).
    Pull,
}

/// Makes sure the services' images are in the store, as `what` says.
fn ensure_images(
    root: Option<PathBuf>,
    p: &Project,
    services: &[&Service],
    what: Images,
) -> miette::Result<()> {
    let store = open_store(root.clone())?;
    for s in services {
        let image = p.image(s);
        let missing = store.image(&image).is_err();
        match (&s.build, what) {
            (Some(b), Images::Build) | (Some(b), Images::Missing)
                if what == Images::Build || missing =>
            {
                eprintln!("Service {} Building {image}", s.name);
                super::build::run(root.clone(), build_args(&image, b)?)?;
            }
            // docker compose up pulls a missing image too.
            (None, Images::Pull) | (None, Images::Missing) if what == Images::Pull || missing => {
                eprintln!("Service {} Pulling {image}", s.name);
                let args = match Cli::try_parse_from(["kiln", "pull", "-q", image.as_str()]) {
                    Ok(Cli {
                        command: Command::Pull(a),
                        ..
                    }) => a,
                    _ => {
                        return Err(ComposeRunError::BuildArgs(format!("kiln pull {image}")).into())
                    }
                };
                let args: PullArgs = args;
                super::registry::pull(root.clone(), args)?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn push(root: Option<PathBuf>, p: &Project, services: &[&Service]) -> miette::Result<()> {
    for s in services {
        let image = p.image(s);
        eprintln!("Service {} Pushing {image}", s.name);
        let args = match Cli::try_parse_from(["kiln", "push", "-q", image.as_str()]) {
            Ok(Cli {
                command: Command::Push(a),
                ..
            }) => a,
            _ => return Err(ComposeRunError::BuildArgs(format!("kiln push {image}")).into()),
        };
        let args: PushArgs = args;
        super::registry::push(root.clone(), args)?;
    }
    Ok(())
}

/// The names of the services' containers, in order.
fn names(store: &Store, p: &Project, services: &[&Service]) -> miette::Result<Vec<String>> {
    let mut out = Vec::new();
    for s in services {
        out.extend(
            instances(store, p, &s.name)?
                .into_iter()
                .map(|(_, r)| r.name),
        );
    }
    Ok(out)
}

fn stop(
    root: Option<PathBuf>,
    p: &Project,
    services: &[&Service],
    timeout: u64,
) -> miette::Result<()> {
    let store = open_store(root.clone())?;
    let mut reversed = services.to_vec();
    reversed.reverse();
    for name in names(&store, p, &reversed)? {
        let r = container::refresh(&store, container::find(&store, &name)?)?;
        if r.held() {
            container::stop(&store, &r, timeout)?;
        }
        eprintln!("Container {name} Stopped");
    }
    Ok(())
}

fn start(root: Option<PathBuf>, p: &Project, services: &[&Service]) -> miette::Result<()> {
    let store = open_store(root.clone())?;
    for s in services {
        for (dep, condition) in &s.depends_on {
            wait_for(&store, p, s, service_of(p, dep)?, condition)?;
        }
        for (_, r) in instances(&store, p, &s.name)? {
            let r = container::refresh(&store, r)?;
            if !r.held() {
                container::supervisor::start(&store, &r)?;
            }
            eprintln!("Container {} Started", r.name);
        }
    }
    Ok(())
}

/// Removes the services' stopped containers (running ones are left, as docker compose rm).
fn rm(root: Option<PathBuf>, p: &Project, services: &[&Service]) -> miette::Result<()> {
    let store = open_store(root)?;
    for name in names(&store, p, services)? {
        let r = container::refresh(&store, container::find(&store, &name)?)?;
        if r.held() {
            eprintln!("Container {name} is running: not removed (kiln compose rm -s stops it)");
            continue;
        }
        container::remove(&store, &r)?;
        eprintln!("Container {name} Removed");
    }
    Ok(())
}

/// When `up` replaces a service's existing container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recreate {
    /// When its configuration hash differs (docker-compose's default), stopping it with
    /// this timeout.
    Changed(u64),
    /// `--force-recreate`.
    Always(u64),
    /// `--no-recreate`.
    Never,
}

impl Recreate {
    fn timeout(self) -> u64 {
        match self {
            Recreate::Changed(t) | Recreate::Always(t) => t,
            Recreate::Never => 10,
        }
    }
}

/// The label holding what a service's container was made from: a hash of its `kiln run`
/// command line, its healthcheck and its image's ID (docker-compose's config-hash), so
/// `up` recreates the container when any of them changes.
const CONFIG_HASH: &str = "com.docker.compose.config-hash";
/// The labels naming a service's container: its project, service and number (docker
/// compose's), by which `up`, `stop`, `ps`, ... find it again.
const PROJECT_LABEL: &str = "com.docker.compose.project";
const SERVICE_LABEL: &str = "com.docker.compose.service";
const NUMBER_LABEL: &str = "com.docker.compose.container-number";

fn config_hash(argv: &[String], s: &Service, image: &kiln_runtime::store::Image) -> String {
    let mut h = blake3::Hasher::new();
    for a in argv {
        h.update(a.as_bytes());
        h.update(b"\0");
    }
    h.update(format!("{:?}", s.healthcheck).as_bytes());
    h.update(b"\0");
    h.update(image.id().to_string().as_bytes());
    h.finalize().to_hex().to_string()
}

fn up(
    root: Option<PathBuf>,
    p: &Project,
    chosen: &[&Service],
    rebuild: bool,
    scale: &BTreeMap<String, u32>,
    recreate: Recreate,
) -> miette::Result<()> {
    // Every image first, so a missing one fails before anything is created: a service with
    // `build:` is built (as `kiln build` would) when its image is missing or with --build.
    ensure_images(
        root.clone(),
        p,
        chosen,
        if rebuild {
            Images::Build
        } else {
            Images::Missing
        },
    )?;
    let store = open_store(root.clone())?;
    network_and_volumes(&store, p)?;
    for s in chosen {
        for (dep, condition) in &s.depends_on {
            let d = service_of(p, dep)?;
            wait_for(&store, p, s, d, condition)?;
        }
        let want = scale.get(&s.name).copied().unwrap_or(1);
        let existing = instances(&store, p, &s.name)?;
        for (n, r) in &existing {
            if *n > want {
                let r = container::refresh(&store, r.clone())?;
                let r = if r.held() {
                    container::stop(&store, &r, recreate.timeout())?
                } else {
                    r
                };
                container::remove(&store, &r)?;
                eprintln!("Container {} Removed", r.name);
            }
        }
        let reference = p.image(s);
        let image = store
            .image(&reference)
            .map_err(|_| ComposeRunError::NoImage {
                service: s.name.clone(),
                image: reference.clone(),
            })?;
        for n in 1..=want {
            let name = p.container(&s.name, n);
            let mut extra = vec![
                "-d".to_string(),
                format!("--label={PROJECT_LABEL}={}", p.name),
                format!("--label={SERVICE_LABEL}={}", s.name),
                format!("--label={NUMBER_LABEL}={n}"),
            ];
            let hash = config_hash(&run_argv(p, s, &name, &extra, None)?, s, &image);
            extra.push(format!("--label={CONFIG_HASH}={hash}"));
            let mut reuse = BTreeMap::new();
            if let Some((_, r)) = existing.iter().find(|(i, _)| *i == n) {
                let r = container::refresh(&store, r.clone())?;
                let current = match recreate {
                    Recreate::Changed(_) => r.labels.get(CONFIG_HASH) == Some(&hash),
                    Recreate::Always(_) => false,
                    Recreate::Never => true,
                };
                if current && r.held() {
                    eprintln!("Container {name} Running");
                    continue;
                }
                if current {
                    // As docker-compose: the same container again, its files kept.
                    container::supervisor::start(&store, &r)?;
                    eprintln!("Container {name} Started");
                    continue;
                }
                let r = if r.held() {
                    container::stop(&store, &r, recreate.timeout())?
                } else {
                    r
                };
                // Its anonymous volumes go to the new container, as docker-compose keeps them.
                reuse = container::anonymous_volumes_by_target(&store, &r);
                container::remove(&store, &r)?;
                eprintln!("Container {name} Recreate");
            }
            let args = run_args(p, s, &name, &extra, None)?;
            let mut opts = super::run::options(&args)?;
            opts.reuse_anonymous = reuse;
            let mut record = container::create(&store, &reference, &image, &opts)?;
            if let Some(h) = &s.healthcheck {
                // The service's healthcheck replaces the image's, probed by the supervisor.
                record.healthcheck = Some(health_config(h));
                container::save(&store, &record)?;
            }
            container::supervisor::start(&store, &record)?;
            eprintln!("Container {name} Started");
        }
    }
    Ok(())
}

/// The project's network and volumes, created when missing.
fn network_and_volumes(store: &Store, p: &Project) -> miette::Result<()> {
    let net = p.network();
    if p.uses_network() && network::inspect(store, &net).is_err() {
        network::create(store, &net)?;
        eprintln!("Network {net} Created");
    }
    for v in &p.volumes {
        if volume::inspect(store, &p.volume(v)).is_err() {
            volume::create(store, &p.volume(v))?;
            eprintln!("Volume {} Created", p.volume(v));
        }
    }
    Ok(())
}

/// Waits until `dep` meets `condition` for `s`: started (its containers run), healthy (its
/// healthcheck passes in its first container, probed every interval until the retries are
/// spent after the start period), or completed successfully (it exited 0).
fn wait_for(
    store: &Store,
    p: &Project,
    s: &Service,
    dep: &Service,
    condition: &str,
) -> miette::Result<()> {
    let first = || -> miette::Result<Option<Record>> {
        match instances(store, p, &dep.name)?.into_iter().next() {
            Some((_, r)) => Ok(Some(container::refresh(store, r)?)),
            None => Ok(None),
        }
    };
    match condition {
        "service_started" => Ok(()),
        "service_healthy" => {
            let unhealthy = |why: String| ComposeRunError::Unhealthy {
                service: dep.name.clone(),
                why,
            };
            let mut said = false;
            loop {
                let r = first()?.ok_or_else(|| unhealthy("it has no container".into()))?;
                if r.healthcheck.is_none() {
                    return Err(ComposeRunError::NoHealthcheck(dep.name.clone()).into());
                }
                if !r.running() {
                    return Err(
                        unhealthy(format!("its container {} is not running", r.name)).into(),
                    );
                }
                match health::read(&r.dir(store)) {
                    Some(h) if h.status == "healthy" => {
                        eprintln!("Container {} Healthy", r.name);
                        return Ok(());
                    }
                    Some(h) if h.status == "unhealthy" => {
                        let last = h.log.last().map_or(String::new(), |p| {
                            format!(
                                ": the last check exited {}: {}",
                                p.exit_code,
                                p.output.trim()
                            )
                        });
                        return Err(unhealthy(format!(
                            "{} checks failed in a row{last}",
                            h.failing_streak
                        ))
                        .into());
                    }
                    _ => {
                        if !said {
                            eprintln!("Container {} Waiting", r.name);
                            said = true;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        }
        "service_completed_successfully" => {
            let not = |why: String| ComposeRunError::NotCompleted {
                service: dep.name.clone(),
                why,
            };
            let r = first()?.ok_or_else(|| not("it has no container".into()))?;
            let code = container::wait(store, &r)?;
            if code == 0 {
                Ok(())
            } else {
                Err(not(format!("it exited {code}")).into())
            }
        }
        other => Err(ComposeRunError::Condition {
            service: s.name.clone(),
            dependency: dep.name.clone(),
            condition: other.to_string(),
        }
        .into()),
    }
}

/// A service's `healthcheck:` as the image config's HEALTHCHECK (durations in nanoseconds).
fn health_config(h: &compose::Healthcheck) -> kiln_runtime::oci::HealthConfig {
    let ns = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    kiln_runtime::oci::HealthConfig {
        test: h.test.clone(),
        interval: ns(h.interval),
        timeout: ns(h.timeout),
        start_period: ns(h.start_period),
        retries: i64::from(h.retries),
        ..Default::default()
    }
}

/// Blocks SIGINT and SIGTERM in this thread (and the threads it starts), for a signalfd.
fn stop_signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal};
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGINT);
    mask.add(Signal::SIGTERM);
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&mask), None);
    mask
}

#[derive(Clone, Copy, PartialEq)]
enum Follow {
    /// `logs`: what the containers printed so far.
    No,
    /// `logs -f`: then follow until they stop, or Ctrl-C / SIGTERM.
    Yes,
    /// `up` without -d: the same, and Ctrl-C / SIGTERM stops the containers.
    AndStop,
}

/// `logs [-f]` and `up` without -d: every chosen container's output from its start, prefixed
/// `service-N  | ` as docker compose does, then as `follow` says.
fn follow_logs(
    root: Option<PathBuf>,
    p: &Project,
    chosen: &[&Service],
    follow: Follow,
) -> miette::Result<()> {
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    let store = open_store(root)?;
    let mut followed = Vec::new();
    for s in chosen {
        for (n, r) in instances(&store, p, &s.name)? {
            // From the start: docker compose up shows what the containers printed so far.
            let path = r.log_path(&store);
            // The follower starts before the file is read, so nothing in between is lost.
            let f = log::Follower::at_end(&path)
                .map_err(|e| miette::miette!("{}: {e}", path.display()))?;
            let earlier = log::read_all(&path).unwrap_or_default();
            followed.push((format!("{}-{n}", s.name), r, earlier, f, false));
        }
    }
    let width = followed.iter().map(|(l, ..)| l.len()).max().unwrap_or(0);
    let print = |label: &str, e: &log::Entry| {
        let line = format!("{label:<width$}  | {}", e.log);
        let line = if line.ends_with('\n') {
            line
        } else {
            line + "\n"
        };
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    };
    for (label, _, earlier, _, _) in &followed {
        for e in earlier {
            print(label, e);
        }
    }
    if follow == Follow::No {
        return Ok(());
    }
    let mask = stop_signals();
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| miette::miette!("signalfd: {e}"))?;
    loop {
        if let Ok(Some(_)) = signals.read_signal() {
            if follow != Follow::AndStop {
                return Ok(());
            }
            eprintln!("Gracefully stopping...");
            for (label, r, _, f, _) in followed.iter_mut().rev() {
                let current = container::refresh(&store, r.clone())?;
                if current.held() {
                    container::stop(&store, &current, 10)?;
                    eprintln!("Container {} Stopped", current.name);
                }
                for e in f.poll().unwrap_or_default() {
                    print(label, &e);
                }
            }
            return Ok(());
        }
        for (label, r, _, f, ended) in followed.iter_mut().filter(|x| !x.4) {
            let now = container::find(&store, &r.id).ok();
            let running = now.as_ref().is_some_and(Record::held);
            for e in f.poll().unwrap_or_default() {
                print(label, &e);
            }
            if !running {
                // The last output is written before the end is recorded: read once more.
                for e in f.poll().unwrap_or_default() {
                    print(label, &e);
                }
                let code = now.and_then(|c| c.exit_code).unwrap_or(0);
                println!("{label} exited with code {code}");
                *ended = true;
            }
        }
        if followed.iter().all(|x| x.4) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `kiln run` arguments one container of a service stands for, read by the CLI's own
/// parser (as `build_args`), so every default and check is `kiln run`'s.
fn run_args(
    p: &Project,
    s: &Service,
    name: &str,
    extra: &[String],
    command: Option<&[String]>,
) -> miette::Result<RunArgs> {
    parse_run_argv(s, run_argv(p, s, name, extra, command)?)
}

/// The `kiln run` command line that makes a container of `s`: `extra` flags go before the
/// image, `command` replaces the service's.
fn run_argv(
    p: &Project,
    s: &Service,
    name: &str,
    extra: &[String],
    command: Option<&[String]>,
) -> miette::Result<Vec<String>> {
    let mut argv: Vec<String> = vec!["kiln".into(), "run".into()];
    // `--flag=value`, so a value that starts with `-` is still the flag's value.
    let mut flag = |f: &str, v: &str| argv.push(format!("{f}={v}"));
    flag("--name", name);
    match &s.network_mode {
        None => {
            flag("--network", &p.network());
            flag("--network-alias", &s.name);
        }
        Some(NetworkMode::None) => flag("--network", "none"),
        Some(NetworkMode::Host) => flag("--network", "host"),
        Some(NetworkMode::Service(other)) => {
            flag("--network", &format!("container:{}", p.container(other, 1)))
        }
        Some(NetworkMode::Container(c)) => flag("--network", &format!("container:{c}")),
    }
    for (k, v) in &s.environment {
        flag("--env", &format!("{k}={v}"));
    }
    for m in &s.volumes {
        let source = if m.kind == "volume" {
            p.volume(&m.source)
        } else {
            m.source.clone()
        };
        let ro = if m.read_only { ":ro" } else { "" };
        if m.source.is_empty() {
            // Anonymous: `run -v /dst` makes the container's own volume.
            flag("--volume", &m.target);
            continue;
        }
        flag("--volume", &format!("{source}:{}{ro}", m.target));
    }
    for t in &s.tmpfs {
        flag("--tmpfs", t);
    }
    for port in &s.ports {
        let Some(f) = port.publish_flag() else {
            return Err(ComposeRunError::RandomPort {
                service: s.name.clone(),
                target: port.target,
            }
            .into());
        };
        flag("--publish", &f);
    }
    if let Some(w) = &s.working_dir {
        flag("--workdir", w);
    }
    if let Some(u) = &s.user {
        flag("--user", u);
    }
    if let Some(r) = &s.restart {
        flag("--restart", r);
    }
    let keys = &s.run;
    for (k, v) in &keys.labels {
        flag("--label", &format!("{k}={v}"));
    }
    if let Some(h) = &keys.hostname {
        flag("--hostname", h);
    }
    if let Some(sig) = &keys.stop_signal {
        flag("--stop-signal", sig);
    }
    if let Some(d) = keys.stop_grace_period {
        flag("--stop-timeout", &d.as_secs().to_string());
    }
    for c in &keys.cap_add {
        flag("--cap-add", c);
    }
    for c in &keys.cap_drop {
        flag("--cap-drop", c);
    }
    let switches = [
        (keys.init, "--init"),
        (keys.read_only, "--read-only"),
        (keys.tty, "--tty"),
        (keys.stdin_open, "--interactive"),
        (keys.privileged, "--privileged"),
    ];
    let mut rest: Vec<String> = Vec::new();
    if let Some(e) = &s.entrypoint {
        let mut e = e.iter();
        // `--entrypoint` takes one program; the rest of the list goes before the command, as
        // docker does for a list ENTRYPOINT.
        flag("--entrypoint", e.next().map_or("", String::as_str));
        rest.extend(e.cloned());
    }
    argv.extend(
        switches
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, f)| f.to_string()),
    );
    argv.extend(extra.iter().cloned());
    argv.push(p.image(s));
    argv.extend(rest);
    match command {
        Some(c) => argv.extend(c.iter().cloned()),
        None => argv.extend(s.command.iter().flatten().cloned()),
    }
    Ok(argv)
}

fn parse_run_argv(s: &Service, argv: Vec<String>) -> miette::Result<RunArgs> {
    match Cli::try_parse_from(&argv) {
        Ok(Cli {
            command: Command::Run(a),
            ..
        }) => Ok(a),
        Ok(_) => Err(ComposeRunError::BuildArgs(argv.join(" ")).into()),
        Err(e) => Err(miette::miette!("service {}: {e}", s.name)),
    }
}

/// docker compose ps's table: NAME IMAGE COMMAND SERVICE CREATED STATUS PORTS, running
/// containers only unless `all` (then `compose run`'s too), in depends_on order.
fn ps(
    root: Option<PathBuf>,
    p: &Project,
    services: &[&Service],
    all: bool,
    quiet: bool,
) -> miette::Result<()> {
    let store = open_store(root)?;
    let now = super::images::now();
    let mut rows = vec![[
        "NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS",
    ]
    .map(str::to_string)
    .to_vec()];
    for s in services {
        let mut records: Vec<Record> = instances(&store, p, &s.name)?
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        if all {
            records.extend(one_offs(&store, p, &s.name)?);
        }
        for r in records {
            if !all && !r.held() {
                continue;
            }
            if quiet {
                println!("{}", r.id);
                continue;
            }
            let f = |n: &str| super::containers::field(&r, n, now, false).unwrap_or_default();
            rows.push(vec![
                r.name.clone(),
                f("Image"),
                f("Command"),
                s.name.clone(),
                f("RunningFor"),
                f("Status"),
                f("Ports"),
            ]);
        }
    }
    if !quiet {
        super::images::print_table(&rows);
    }
    Ok(())
}

fn logs(
    root: Option<PathBuf>,
    p: &Project,
    services: &[&Service],
    follow: bool,
) -> miette::Result<()> {
    let how = if follow { Follow::Yes } else { Follow::No };
    follow_logs(root, p, services, how)
}

/// The one-off containers `compose run` left (`<project>-<service>-run-<hex>`).
fn one_offs(store: &Store, p: &Project, service: &str) -> miette::Result<Vec<Record>> {
    let prefix = format!("{}-{service}-run-", p.name);
    Ok(container::list(store)?
        .into_iter()
        .filter(|r| {
            r.name
                .strip_prefix(&prefix)
                .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
        })
        .collect())
}

fn down(root: Option<PathBuf>, p: &Project, volumes: bool, timeout: u64) -> miette::Result<()> {
    let store = open_store(root)?;
    for s in p.services.iter().rev() {
        let all = instances(&store, p, &s.name)?
            .into_iter()
            .map(|(_, r)| r)
            .chain(one_offs(&store, p, &s.name)?);
        for r in all {
            let r = match container::refresh(&store, r) {
                Ok(r) => r,
                Err(ContainerError::NoContainer(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            let r = if r.held() {
                container::stop(&store, &r, timeout)?
            } else {
                r
            };
            container::remove(&store, &r)?;
            if volumes {
                container::remove_anonymous_volumes(&store, &r)?;
            }
            eprintln!("Container {} Removed", r.name);
        }
    }
    let net = p.network();
    if network::inspect(&store, &net).is_ok() {
        network::remove(&store, &net)?;
        eprintln!("Network {net} Removed");
    }
    if volumes {
        for v in &p.volumes {
            let name = p.volume(v);
            if volume::inspect(&store, &name).is_ok() {
                volume::remove(&store, &name)?;
                eprintln!("Volume {name} Removed");
            }
        }
    }
    Ok(())
}

fn yaml(v: &serde_norway::Value) -> Result<String, ComposeRunError> {
    serde_norway::to_string(v).map_err(|e| ComposeRunError::Yaml(e.to_string()))
}

fn write_file(dir: &Path, name: &str, text: &str) -> miette::Result<()> {
    let write = |path: &Path, f: &dyn Fn(&Path) -> std::io::Result<()>| {
        f(path).map_err(|source| ComposeRunError::Write {
            path: path.to_path_buf(),
            source,
        })
    };
    write(dir, &|d| std::fs::create_dir_all(d))?;
    let path = dir.join(name);
    write(&path, &|p| std::fs::write(p, text))?;
    eprintln!("{}", path.display());
    Ok(())
}

/// Each service's image as `REPOSITORY@sha256:...`, the digest of the manifest (or index)
/// the store holds under the service's image name; an error naming how to get it otherwise.
fn pinned_images(root: Option<PathBuf>, p: &Project) -> miette::Result<BTreeMap<String, String>> {
    use kiln_runtime::store::{ImageName, ImageRef};
    let store = open_store(root)?;
    let mut out = BTreeMap::new();
    for s in &p.services {
        let image = p.image(s);
        let unpinned = || ComposeRunError::Unpinned {
            service: s.name.clone(),
            image: image.clone(),
            help: if s.build.is_some() {
                "kiln compose build, then convert again".into()
            } else {
                format!("kiln pull {image} (or kiln compose pull), then convert again")
            },
        };
        let stored = ImageRef::parse(&image)
            .ok()
            .and_then(|r| store.lookup(&r).ok())
            .ok_or_else(unpinned)?;
        let repository = match image.split_once('@') {
            Some((repo, _)) => repo.to_string(),
            None => ImageName::parse(&image)
                .map(|n| n.repository())
                .map_err(|_| unpinned())?,
        };
        out.insert(s.name.clone(), format!("{repository}@{}", stored.digest()));
    }
    Ok(out)
}

fn convert_kubernetes(
    root: Option<PathBuf>,
    p: &Project,
    out: Option<&Path>,
) -> miette::Result<()> {
    // What `up` would run: the services the active profiles enable.
    let active = Project {
        services: enabled(p, &[])?.into_iter().cloned().collect(),
        ..p.clone()
    };
    let images = pinned_images(root, &active)?;
    let (objects, notes) = compose::kubernetes::convert(&active, &images);
    for n in &notes {
        eprintln!("note: {n}");
    }
    match out {
        None => {
            let mut text = String::new();
            for (i, o) in objects.iter().enumerate() {
                if i > 0 {
                    text.push_str("---\n");
                }
                text.push_str(&yaml(&o.value)?);
            }
            print!("{text}");
        }
        Some(dir) => {
            for o in &objects {
                write_file(dir, &o.file, &yaml(&o.value)?)?;
            }
        }
    }
    Ok(())
}
