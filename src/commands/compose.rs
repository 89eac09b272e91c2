//! `kiln compose config|up -d|ps|logs|down`: a compose project (src/compose.rs) carried out
//! with the library calls `kiln network create`, `kiln volume create`, `kiln build`, `kiln run -d`,
//! `kiln ps`, `kiln logs`, `kiln stop` and `kiln rm` make.
//! A service's `build:` is `kiln build`'s `build::run`.
//! Must not: parse the file itself (src/compose.rs does) or shell out to kiln.

use std::path::PathBuf;

use kiln_runtime::container::{self, network, volume, ContainerError};

use super::transfer::open_store;
use clap::Parser;

use crate::cli::{BuildArgs, Cli, Command, ComposeArgs, ComposeCommand, LogsArgs, RunArgs};
use crate::compose::{self, Project, Service};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
enum ComposeRunError {
    #[error("the build of a service did not parse as kiln build arguments: {0}")]
    BuildArgs(String),
    #[error("service {service}: image {image} is not in the store")]
    #[diagnostic(help("kiln pull {image}"))]
    NoImage { service: String, image: String },
    #[error("kiln compose up runs services detached only")]
    #[diagnostic(help("kiln compose up -d"))]
    Foreground,
    #[error("service {0} is not in the project")]
    NoService(String),
}

pub fn compose(root: Option<PathBuf>, a: ComposeArgs) -> miette::Result<()> {
    let project = compose::load(
        a.file.as_deref(),
        a.project_directory.as_deref(),
        a.project_name.as_deref(),
    )?;
    match a.command {
        ComposeCommand::Config => {
            let text = serde_norway::to_string(&compose::to_yaml(&project))
                .map_err(|e| miette::miette!("{e}"))?;
            print!("{text}");
            Ok(())
        }
        ComposeCommand::Up { detach, build } => {
            if !detach {
                return Err(ComposeRunError::Foreground.into());
            }
            up(root, &project, build)
        }
        ComposeCommand::Ps => ps(root, &project),
        ComposeCommand::Logs { service } => logs(root, &project, service.as_deref()),
        ComposeCommand::Down { volumes } => down(root, &project, volumes),
    }
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

fn up(root: Option<PathBuf>, p: &Project, rebuild: bool) -> miette::Result<()> {
    let store = open_store(root.clone())?;
    // Every image first, so a missing one fails before anything is created: a service with
    // `build:` is built (as `kiln build` would) when its image is missing or with --build.
    for s in &p.services {
        let image = p.image(s);
        match &s.build {
            Some(b) if rebuild || store.image(&image).is_err() => {
                eprintln!("Service {} Building {image}", s.name);
                super::build::run(root.clone(), build_args(&image, b)?)?;
            }
            None if store.image(&image).is_err() => {
                return Err(ComposeRunError::NoImage {
                    service: s.name.clone(),
                    image,
                }
                .into());
            }
            _ => {}
        }
    }
    let net = p.network();
    if network::inspect(&store, &net).is_err() {
        network::create(&store, &net)?;
        eprintln!("Network {net} Created");
    }
    for v in &p.volumes {
        volume::create(&store, &p.volume(v))?;
    }
    for s in &p.services {
        let name = p.container(&s.name);
        if let Ok(r) = container::find(&store, &name) {
            let r = container::refresh(&store, r)?;
            if r.held() {
                eprintln!("Container {name} Running");
                continue;
            }
            container::remove(&store, &r)?;
        }
        let args = run_args(p, s);
        let opts = super::run::options(&args)?;
        let image = store
            .image(&args.image_and_args[0])
            .map_err(|_| ComposeRunError::NoImage {
                service: s.name.clone(),
                image: args.image_and_args[0].clone(),
            })?;
        let record = container::create(&store, &args.image_and_args[0], &image, &opts)?;
        container::supervisor::start(&store, &record)?;
        eprintln!("Container {name} Started");
    }
    Ok(())
}

/// The `kiln run -d` arguments one service stands for.
fn run_args(p: &Project, s: &Service) -> RunArgs {
    let mut image_and_args = vec![p.image(s)];
    let mut entrypoint = None;
    if let Some(e) = &s.entrypoint {
        let mut e = e.iter();
        // `--entrypoint` takes one program; the rest of the list goes before the command, as
        // docker does for a list ENTRYPOINT.
        entrypoint = Some(e.next().cloned().unwrap_or_default());
        image_and_args.extend(e.cloned());
    }
    if let Some(c) = &s.command {
        image_and_args.extend(c.iter().cloned());
    }
    RunArgs {
        rm: false,
        interactive: false,
        tty: false,
        env: s
            .environment
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        env_files: Vec::new(),
        volumes: s
            .volumes
            .iter()
            .map(|m| {
                let source = if m.kind == "volume" {
                    p.volume(&m.source)
                } else {
                    m.source.clone()
                };
                let ro = if m.read_only { ":ro" } else { "" };
                format!("{source}:{}{ro}", m.target)
            })
            .collect(),
        mounts: Vec::new(),
        tmpfs: Vec::new(),
        workdir: s.working_dir.clone(),
        user: s.user.clone(),
        entrypoint,
        network: p.network(),
        network_alias: vec![s.name.clone()],
        publish: s.ports.clone(),
        read_only: false,
        hostname: None,
        name: Some(p.container(&s.name)),
        init: false,
        detach: true,
        restart: s.restart.clone().unwrap_or_else(|| "no".into()),
        log_opts: Vec::new(),
        resources: Default::default(),
        image_and_args,
    }
}

fn ps(root: Option<PathBuf>, p: &Project) -> miette::Result<()> {
    let store = open_store(root)?;
    println!(
        "{:<30}{:<30}{:<16}{:<12}STATUS",
        "NAME", "IMAGE", "SERVICE", "CONTAINER ID"
    );
    for s in &p.services {
        let name = p.container(&s.name);
        let Ok(r) = container::find(&store, &name) else {
            continue;
        };
        let r = container::refresh(&store, r)?;
        let status = match (r.state, r.exit_code) {
            (container::State::Exited, Some(c)) => format!("exited ({c})"),
            (state, _) => serde_json::to_value(state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        };
        println!(
            "{:<30}{:<30}{:<16}{:<14}{status}",
            r.name,
            r.image,
            s.name,
            &r.id[..12.min(r.id.len())]
        );
    }
    Ok(())
}

fn logs(root: Option<PathBuf>, p: &Project, only: Option<&str>) -> miette::Result<()> {
    if let Some(o) = only {
        if !p.services.iter().any(|s| s.name == o) {
            return Err(ComposeRunError::NoService(o.to_string()).into());
        }
    }
    let store = open_store(root.clone())?;
    for s in &p.services {
        if only.is_some_and(|o| o != s.name) {
            continue;
        }
        let name = p.container(&s.name);
        if container::find(&store, &name).is_err() {
            continue;
        }
        super::containers::logs(
            root.clone(),
            LogsArgs {
                follow: false,
                tail: "all".into(),
                timestamps: false,
                since: None,
                container: name,
            },
        )?;
    }
    Ok(())
}

fn down(root: Option<PathBuf>, p: &Project, volumes: bool) -> miette::Result<()> {
    let store = open_store(root)?;
    for s in p.services.iter().rev() {
        let name = p.container(&s.name);
        let r = match container::find(&store, &name) {
            Ok(r) => container::refresh(&store, r)?,
            Err(ContainerError::NoContainer(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        let r = if r.held() {
            container::stop(&store, &r, 10)?
        } else {
            r
        };
        container::remove(&store, &r)?;
        eprintln!("Container {name} Removed");
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
