//! The compose file model: finding the file, `${VAR}` interpolation from the environment and
//! `.env`, the project name, and the normalised services (`kiln compose config` prints it).
//! Must not: touch the store, start anything or shell out (src/commands/compose.rs does the
//! runs, through the same library calls as `kiln run`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

pub mod kubernetes;
mod merge;

/// Override files read after the default file when no file is named, in docker compose's
/// order (the first that exists).
pub const OVERRIDE_FILES: &[&str] = &[
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

/// File names looked for in the project directory, in docker compose's order.
pub const DEFAULT_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ComposeError {
    #[error("no compose file in {0} (looked for compose.yaml, compose.yml, docker-compose.yml, docker-compose.yaml)")]
    #[diagnostic(help("name one with -f FILE"))]
    NoFile(PathBuf),
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Yaml {
        path: PathBuf,
        #[source]
        source: serde_norway::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: service {service}: {message}")]
    Service {
        path: PathBuf,
        service: String,
        message: String,
    },
    #[error("{path}: ${{{var}}}: {message}")]
    #[diagnostic(help("set {var} in the environment or in .env"))]
    Required {
        path: PathBuf,
        var: String,
        message: String,
    },
    #[error("{path}: depends_on has a cycle through service {service}")]
    Cycle { path: PathBuf, service: String },
}

/// A service's `build:`.
#[derive(Debug, Clone, PartialEq)]
pub struct Build {
    pub context: PathBuf,
    pub dockerfile: String,
    pub args: BTreeMap<String, String>,
    pub target: Option<String>,
}

/// A `ports:` entry of a service (short `[IP:][HOST:]CONTAINER[/PROTO]` or long syntax).
#[derive(Debug, Clone, PartialEq)]
pub struct PortSpec {
    pub target: u16,
    /// The host port; `None` when compose would pick one (kiln's `up` refuses that).
    pub published: Option<u16>,
    pub host_ip: Option<String>,
    /// `tcp` or `udp`.
    pub protocol: String,
}

impl PortSpec {
    /// The `kiln run -p` spelling, when the port is published.
    pub fn publish_flag(&self) -> Option<String> {
        let p = self.published?;
        let ip = self
            .host_ip
            .as_ref()
            .map(|i| format!("{i}:"))
            .unwrap_or_default();
        Some(format!("{ip}{p}:{}/{}", self.target, self.protocol))
    }
}

/// A service's `healthcheck:` (durations as docker's defaults when unset).
#[derive(Debug, Clone, PartialEq)]
pub struct Healthcheck {
    /// `CMD` arguments run directly, or `CMD-SHELL` (one string for `/bin/sh -c`), as written.
    pub test: Vec<String>,
    pub interval: std::time::Duration,
    pub timeout: std::time::Duration,
    pub retries: u32,
    pub start_period: std::time::Duration,
}

impl Healthcheck {
    /// The command one probe runs in the container.
    pub fn argv(&self) -> Vec<String> {
        match self.test.split_first() {
            Some((k, rest)) if k == "CMD-SHELL" => {
                vec!["/bin/sh".into(), "-c".into(), rest.join(" ")]
            }
            Some((k, rest)) if k == "CMD" => rest.to_vec(),
            _ => self.test.clone(),
        }
    }
}

/// A `volumes:` entry of a service (short or long syntax).
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    /// `volume` (source is the top-level name; empty for an anonymous volume, one per
    /// container), `bind` (source an absolute path).
    pub kind: &'static str,
    pub source: String,
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    pub image: Option<String>,
    pub build: Option<Build>,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub environment: BTreeMap<String, String>,
    pub ports: Vec<PortSpec>,
    /// `expose:` container ports (never published; `convert` gives them a Service).
    pub expose: Vec<PortSpec>,
    pub volumes: Vec<Mount>,
    /// `tmpfs:` mounts and `type: tmpfs` volumes, as `kiln run --tmpfs` spells them
    /// (`/run`, `/tmp:size=65536`).
    pub tmpfs: Vec<String>,
    /// `None` also for `disable: true` and `test: [NONE]`.
    pub healthcheck: Option<Healthcheck>,
    /// Service name and condition (`service_started`, `service_healthy`, ...).
    pub depends_on: BTreeMap<String, String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub restart: Option<String>,
    /// `network_mode:`; `None` puts the service on the project's network.
    pub network_mode: Option<NetworkMode>,
    /// `profiles:`: when not empty, the service is enabled only by one of these profiles
    /// being active (or by being named on the command line).
    pub profiles: Vec<String>,
    /// The keys that are `kiln run` flags as they are (`--name`, `--label`, ...).
    pub run: RunKeys,
}

/// A service's keys that `kiln run` takes as flags.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunKeys {
    /// `container_name:`: the one container's name (the service cannot scale).
    pub container_name: Option<String>,
    /// `labels:` (a bare list item is an empty label, as compose reads it).
    pub labels: BTreeMap<String, String>,
    pub hostname: Option<String>,
    pub init: bool,
    pub stop_signal: Option<String>,
    /// `stop_grace_period:`: what `stop` waits before SIGKILL (`--stop-timeout`, seconds).
    pub stop_grace_period: Option<std::time::Duration>,
    pub read_only: bool,
    pub tty: bool,
    pub stdin_open: bool,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
}

impl Service {
    /// Whether these active profiles enable the service (one without `profiles:` always is).
    pub fn enabled_by(&self, active: &[String]) -> bool {
        self.profiles.is_empty() || self.profiles.iter().any(|p| active.contains(p))
    }
}

/// A service's `network_mode:`, in the forms kiln can give without a bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    /// Its own loopback only.
    None,
    /// The host's network.
    Host,
    /// The network namespace of another service's (first) container.
    Service(String),
    /// The network namespace of a container by name or ID.
    Container(String),
}

impl NetworkMode {
    fn parse(text: &str) -> Result<NetworkMode, String> {
        match text.split_once(':') {
            None if text == "none" => Ok(NetworkMode::None),
            None if text == "host" => Ok(NetworkMode::Host),
            Some(("service", s)) if !s.is_empty() => Ok(NetworkMode::Service(s.to_string())),
            Some(("container", c)) if !c.is_empty() => Ok(NetworkMode::Container(c.to_string())),
            _ => Err(format!(
                "network_mode: {text}: kiln gives none, host, service:NAME and container:NAME \
                 (it creates no bridges; leave network_mode out to put the service on the \
                 project's network)"
            )),
        }
    }

    /// As written in a compose file.
    pub fn text(&self) -> String {
        match self {
            NetworkMode::None => "none".into(),
            NetworkMode::Host => "host".into(),
            NetworkMode::Service(s) => format!("service:{s}"),
            NetworkMode::Container(c) => format!("container:{c}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    pub name: String,
    pub directory: PathBuf,
    /// The files read, in order (later ones merged over earlier ones); at least one.
    pub files: Vec<PathBuf>,
    /// In depends_on order (a service after the ones it depends on; ties by name).
    pub services: Vec<Service>,
    /// Top-level volume names (as written; created as `<project>_<name>`).
    pub volumes: Vec<String>,
    /// The active profiles: `--profile` flags, else `COMPOSE_PROFILES` (comma-separated).
    pub profiles: Vec<String>,
}

impl Project {
    pub fn network(&self) -> String {
        format!("{}_default", self.name)
    }
    /// Whether any service is on the project's network (none has a `network_mode:`).
    pub fn uses_network(&self) -> bool {
        self.services.iter().any(|s| s.network_mode.is_none())
    }
    pub fn volume(&self, name: &str) -> String {
        format!("{}_{name}", self.name)
    }
    /// The name of a service's container number `index` (from 1), as docker compose's: its
    /// `container_name:` when it has one.
    pub fn container(&self, service: &str, index: u32) -> String {
        let fixed = self
            .services
            .iter()
            .find(|s| s.name == service)
            .and_then(|s| s.run.container_name.clone());
        fixed.unwrap_or_else(|| format!("{}-{service}-{index}", self.name))
    }
    /// The image a service runs: `image:`, else `<project>-<service>` for a built one.
    pub fn image(&self, s: &Service) -> String {
        s.image
            .clone()
            .unwrap_or_else(|| format!("{}-{}", self.name, s.name))
    }
}

/// The files to read: `files` (relative to the cwd), else `COMPOSE_FILE` (split at
/// `COMPOSE_PATH_SEPARATOR`, default `:`), else a default name in `dir` and the first
/// override file there, as docker compose looks for them.
pub fn find_files(files: &[PathBuf], dir: &Path) -> Result<Vec<PathBuf>, ComposeError> {
    if !files.is_empty() {
        return Ok(files.to_vec());
    }
    if let Some(list) = std::env::var("COMPOSE_FILE").ok().filter(|l| !l.is_empty()) {
        let sep = std::env::var("COMPOSE_PATH_SEPARATOR").unwrap_or_else(|_| ":".into());
        return Ok(list
            .split(sep.as_str())
            .filter(|f| !f.is_empty())
            .map(PathBuf::from)
            .collect());
    }
    let first = |names: &[&str]| names.iter().map(|n| dir.join(n)).find(|p| p.is_file());
    let main = first(DEFAULT_FILES).ok_or_else(|| ComposeError::NoFile(dir.to_path_buf()))?;
    Ok(std::iter::once(main).chain(first(OVERRIDE_FILES)).collect())
}

/// `K=V` lines of a `.env` file (`#` comments, optional quotes); absent file: empty.
pub fn read_dotenv(path: &Path) -> Result<HashMap<String, String>, ComposeError> {
    let mut out = HashMap::new();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(source) => {
            return Err(ComposeError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            out.insert(k.trim().to_string(), v.to_string());
        }
    }
    Ok(out)
}

/// Interpolates one string: `$$`, `$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`, `${VAR:?msg}`,
/// `${VAR?msg}`. Unset variables without a default become empty, as in docker compose.
pub fn interpolate(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, (String, String)> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = closing_brace(body) else {
                return Err((body.to_string(), "no closing }".into()));
            };
            let inner = &body[..end];
            out.push_str(&expand(inner, lookup)?);
            rest = &body[end + 1..];
        } else {
            let n = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if n == 0 {
                out.push('$');
            } else {
                out.push_str(&lookup(&after[..n]).unwrap_or_default());
            }
            rest = &after[n..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn closing_brace(body: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn expand(
    inner: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, (String, String)> {
    let n = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(inner.len());
    let (var, op) = inner.split_at(n);
    let value = lookup(var);
    let word = |w: &str| interpolate(w, lookup);
    Ok(if op.is_empty() {
        value.unwrap_or_default()
    } else if let Some(d) = op.strip_prefix(":-") {
        match value.filter(|v| !v.is_empty()) {
            Some(v) => v,
            None => word(d)?,
        }
    } else if let Some(d) = op.strip_prefix('-') {
        match value {
            Some(v) => v,
            None => word(d)?,
        }
    } else if let Some(m) = op.strip_prefix(":?") {
        match value.filter(|v| !v.is_empty()) {
            Some(v) => v,
            None => return Err((var.to_string(), required(m))),
        }
    } else if let Some(m) = op.strip_prefix('?') {
        match value {
            Some(v) => v,
            None => return Err((var.to_string(), required(m))),
        }
    } else {
        return Err((var.to_string(), format!("unsupported substitution `{op}`")));
    })
}

fn required(m: &str) -> String {
    if m.is_empty() {
        "required variable is not set".into()
    } else {
        m.to_string()
    }
}

fn interpolate_value(
    v: &mut Value,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    match v {
        Value::String(s) => *s = interpolate(s, lookup)?,
        Value::Sequence(items) => {
            for i in items {
                interpolate_value(i, lookup)?;
            }
        }
        Value::Mapping(m) => {
            for (_, i) in m.iter_mut() {
                interpolate_value(i, lookup)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Project name as compose derives it: lowercase, only `[a-z0-9_-]`.
pub fn normalise_name(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

/// Loads the project. `dir` is the project directory (`--project-directory`, else the file's
/// directory), `name` the `-p` flag.
pub fn load(
    files: &[PathBuf],
    dir: Option<&Path>,
    name: Option<&str>,
    profiles: &[String],
) -> Result<Project, ComposeError> {
    let cwd = std::env::current_dir().map_err(|source| ComposeError::Read {
        path: PathBuf::from("."),
        source,
    })?;
    let files: Vec<PathBuf> = find_files(files, dir.unwrap_or(&cwd))?
        .into_iter()
        .map(|f| if f.is_absolute() { f } else { cwd.join(f) })
        .collect();
    let Some(file) = files.first().cloned() else {
        return Err(ComposeError::NoFile(dir.unwrap_or(&cwd).to_path_buf()));
    };
    let directory = match dir {
        Some(d) if d.is_absolute() => d.to_path_buf(),
        Some(d) => cwd.join(d),
        None => file.parent().map(Path::to_path_buf).unwrap_or(cwd),
    };
    let dotenv = read_dotenv(&directory.join(".env"))?;
    let lookup = |k: &str| std::env::var(k).ok().or_else(|| dotenv.get(k).cloned());
    let mut doc = Value::Null;
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|source| ComposeError::Read {
            path: f.clone(),
            source,
        })?;
        let mut this: Value =
            serde_norway::from_str(&text).map_err(|source| ComposeError::Yaml {
                path: f.clone(),
                source,
            })?;
        interpolate_value(&mut this, &lookup).map_err(|(var, message)| ComposeError::Required {
            path: f.clone(),
            var,
            message,
        })?;
        if !matches!(this, Value::Mapping(_)) {
            return Err(ComposeError::Invalid {
                path: f.clone(),
                message: "the file is not a mapping".into(),
            });
        }
        merge::documents(&mut doc, this);
    }
    // Errors in the merged model name the first file (and the others after it).
    let file = match files.len() {
        1 => file,
        _ => PathBuf::from(
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(" + "),
        ),
    };
    let invalid = |message: String| ComposeError::Invalid {
        path: file.clone(),
        message,
    };
    let Value::Mapping(top) = doc else {
        return Err(invalid("the file is not a mapping".into()));
    };
    let from_dir = directory
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = name
        .map(str::to_string)
        .or_else(|| lookup("COMPOSE_PROJECT_NAME"))
        .or_else(|| top.get("name").and_then(Value::as_str).map(str::to_string))
        .unwrap_or(from_dir);
    let name = normalise_name(&name);
    if name.is_empty() {
        return Err(invalid(
            "the project name is empty (name it with -p)".into(),
        ));
    }
    let mut services = Vec::new();
    match top.get("services") {
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let svc = key(k);
                let s = service(&svc, v, &directory).map_err(|message| ComposeError::Service {
                    path: file.clone(),
                    service: svc.clone(),
                    message,
                })?;
                services.push(s);
            }
        }
        Some(_) => return Err(invalid("services: is not a mapping".into())),
        None => return Err(invalid("no services:".into())),
    }
    let volumes: Vec<String> = match top.get("volumes") {
        Some(Value::Mapping(m)) => m.keys().map(key).collect(),
        _ => Vec::new(),
    };
    for s in &services {
        for m in &s.volumes {
            if m.kind == "volume" && !m.source.is_empty() && !volumes.contains(&m.source) {
                return Err(ComposeError::Service {
                    path: file.clone(),
                    service: s.name.clone(),
                    message: format!("volume {} is not declared in top-level volumes:", m.source),
                });
            }
        }
        for d in s.depends_on.keys() {
            if !services.iter().any(|o| &o.name == d) {
                return Err(ComposeError::Service {
                    path: file.clone(),
                    service: s.name.clone(),
                    message: format!("depends_on names an undefined service {d}"),
                });
            }
        }
    }
    let services = order(services).map_err(|service| ComposeError::Cycle {
        path: file.clone(),
        service,
    })?;
    // As docker compose: the flags, else the variable (from the environment or .env).
    let profiles = match profiles {
        [] => lookup("COMPOSE_PROFILES")
            .map(|l| {
                l.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        flags => flags.to_vec(),
    };
    Ok(Project {
        name,
        directory,
        files,
        services,
        volumes,
        profiles,
    })
}

fn key(v: &Value) -> String {
    scalar(v).unwrap_or_default()
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Depends_on order: repeatedly take the first (by name) service whose dependencies are taken.
fn order(mut rest: Vec<Service>) -> Result<Vec<Service>, String> {
    rest.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out: Vec<Service> = Vec::new();
    while !rest.is_empty() {
        let ready = rest.iter().position(|s| {
            s.depends_on
                .keys()
                .all(|d| out.iter().any(|o| &o.name == d))
        });
        match ready {
            Some(i) => out.push(rest.remove(i)),
            None => return Err(rest[0].name.clone()),
        }
    }
    Ok(out)
}

fn string_list(v: &Value, what: &str) -> Result<Vec<String>, String> {
    match v {
        Value::Sequence(items) => items
            .iter()
            .map(|i| scalar(i).ok_or_else(|| format!("{what}: items must be scalars")))
            .collect(),
        Value::String(s) => split_words(s).ok_or_else(|| format!("{what}: unbalanced quotes")),
        _ => Err(format!("{what}: must be a string or a list")),
    }
}

/// Splits a command string as compose does (shell words: quotes and backslashes, no
/// expansion).
fn split_words(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => word.push(chars.next()?),
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.push(chars.next()?);
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        out.push(word);
    }
    Some(out)
}

fn string_map(v: &Value, what: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    match v {
        Value::Mapping(m) => {
            for (k, v) in m {
                out.insert(key(k), scalar(v).unwrap_or_default());
            }
        }
        Value::Sequence(items) => {
            for i in items {
                let s = scalar(i).ok_or_else(|| format!("{what}: items must be K=V"))?;
                match s.split_once('=') {
                    Some((k, v)) => out.insert(k.to_string(), v.to_string()),
                    None => match std::env::var(&s) {
                        Ok(v) => out.insert(s, v),
                        Err(_) => continue,
                    },
                };
            }
        }
        _ => return Err(format!("{what}: must be a mapping or a list")),
    }
    Ok(out)
}

fn service(name: &str, v: &Value, dir: &Path) -> Result<Service, String> {
    let Value::Mapping(m) = v else {
        return Err("must be a mapping".into());
    };
    let get = |k: &str| m.get(k);
    let text = |k: &str| text_at(m, k);
    let build = match get("build") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) => Some(Build {
            context: normalise_path(&dir.join(c)),
            dockerfile: "Dockerfile".into(),
            args: BTreeMap::new(),
            target: None,
        }),
        Some(Value::Mapping(b)) => Some(Build {
            context: normalise_path(
                &dir.join(
                    b.get("context")
                        .and_then(scalar)
                        .unwrap_or_else(|| ".".into()),
                ),
            ),
            dockerfile: b
                .get("dockerfile")
                .and_then(scalar)
                .unwrap_or_else(|| "Dockerfile".into()),
            args: match b.get("args") {
                Some(a) => string_map(a, "build.args")?,
                None => BTreeMap::new(),
            },
            target: b.get("target").and_then(scalar),
        }),
        Some(_) => return Err("build: must be a path or a mapping".into()),
    };
    let image = text("image")?;
    if image.is_none() && build.is_none() {
        return Err("has neither image: nor build:".into());
    }
    let mut volumes = Vec::new();
    let mut tmpfs = match get("tmpfs") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => string_list(v, "tmpfs")?,
    };
    match get("volumes") {
        None | Some(Value::Null) => {}
        Some(Value::Sequence(items)) => {
            for i in items {
                match i {
                    Value::Mapping(m)
                        if m.get("type").and_then(scalar).as_deref() == Some("tmpfs") =>
                    {
                        tmpfs.push(long_tmpfs(m)?)
                    }
                    Value::Mapping(m) => volumes.push(long_mount(m, dir)?),
                    i => volumes.push(mount(
                        &scalar(i).ok_or("volumes: an item is a string or a mapping")?,
                        dir,
                    )?),
                }
            }
        }
        Some(_) => return Err("volumes: must be a list".into()),
    }
    for t in &tmpfs {
        if !t.starts_with('/') {
            return Err(format!("tmpfs: {t}: the target is an absolute path"));
        }
    }
    let depends_on = match get("depends_on") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(scalar)
            .map(|d| (d, "service_started".to_string()))
            .collect(),
        Some(Value::Mapping(deps)) => deps
            .iter()
            .map(|(k, v)| {
                let c = v
                    .get("condition")
                    .and_then(scalar)
                    .unwrap_or_else(|| "service_started".into());
                match c.as_str() {
                    "service_started" | "service_healthy" | "service_completed_successfully" => {
                        Ok((key(k), c))
                    }
                    _ => Err(format!(
                        "depends_on: {}: condition {c} is not service_started, service_healthy or service_completed_successfully",
                        key(k)
                    )),
                }
            })
            .collect::<Result<_, String>>()?,
        Some(_) => return Err("depends_on: must be a list or a mapping".into()),
    };
    let network_mode = text("network_mode")?
        .map(|m| NetworkMode::parse(&m))
        .transpose()?;
    let mut depends_on = depends_on;
    if let Some(NetworkMode::Service(other)) = &network_mode {
        // Its namespace must exist first, as docker compose orders it.
        depends_on
            .entry(other.clone())
            .or_insert_with(|| "service_started".to_string());
    }
    let ports = match get("ports") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(items)) => {
            let mut ports = Vec::new();
            for i in items {
                match i {
                    Value::Mapping(m) => ports.push(long_port(m)?),
                    i => ports.extend(short_port(
                        &scalar(i).ok_or("ports: an item is a string or a mapping")?,
                    )?),
                }
            }
            ports
        }
        Some(_) => return Err("ports: must be a list".into()),
    };
    let expose = match get("expose") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(items)) => {
            let mut ports = Vec::new();
            for i in items {
                let text = scalar(i).ok_or("expose: items are ports")?;
                let these = short_port(&text).map_err(|e| e.replacen("ports:", "expose:", 1))?;
                if these
                    .iter()
                    .any(|p| p.published.is_some() || p.host_ip.is_some())
                {
                    return Err(format!("expose: {text}: only a container port[/protocol]"));
                }
                ports.extend(these);
            }
            ports
        }
        Some(_) => return Err("expose: must be a list".into()),
    };
    // env_file first, environment: over it, as compose merges them.
    let mut environment = BTreeMap::new();
    let env_files = match get("env_file") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|i| match i {
                Value::Mapping(m) => m.get("path").and_then(scalar).map(|p| {
                    let required = m.get("required").and_then(Value::as_bool).unwrap_or(true);
                    (p, required)
                }),
                i => scalar(i).map(|p| (p, true)),
            })
            .collect::<Option<Vec<_>>>()
            .ok_or("env_file: an item is a path or a mapping with path:")?,
        Some(v) => vec![(scalar(v).ok_or("env_file: must be a path or a list")?, true)],
    };
    for (f, required) in env_files {
        let path = normalise_path(&dir.join(&f));
        if !path.is_file() {
            if required {
                return Err(format!("env_file: {} is not a file", path.display()));
            }
            continue;
        }
        let vars = read_dotenv(&path).map_err(|e| format!("env_file: {e}"))?;
        environment.extend(vars);
    }
    if let Some(e) = get("environment") {
        environment.extend(string_map(e, "environment")?);
    }
    let healthcheck = match get("healthcheck") {
        None | Some(Value::Null) => None,
        Some(Value::Mapping(h)) => healthcheck(h)?,
        Some(_) => return Err("healthcheck: must be a mapping".into()),
    };
    Ok(Service {
        name: name.to_string(),
        image,
        build,
        command: get("command")
            .map(|v| string_list(v, "command"))
            .transpose()?,
        entrypoint: get("entrypoint")
            .map(|v| string_list(v, "entrypoint"))
            .transpose()?,
        environment,
        ports,
        expose,
        volumes,
        tmpfs,
        healthcheck,
        depends_on,
        working_dir: text("working_dir")?,
        user: text("user")?,
        restart: text("restart")?,
        network_mode,
        run: run_keys(m)?,
        profiles: match get("profiles") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Sequence(items)) => items
                .iter()
                .map(|i| scalar(i).ok_or("profiles: items are profile names"))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("profiles: must be a list of profile names".into()),
        },
    })
}

/// A service key holding a string (or a number or boolean, read as text); absent or null:
/// None.
fn text_at(m: &Mapping, k: &str) -> Result<Option<String>, String> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => scalar(v)
            .map(Some)
            .ok_or_else(|| format!("{k}: must be a string")),
    }
}

/// The keys that are `kiln run` flags.
fn run_keys(m: &Mapping) -> Result<RunKeys, String> {
    let text = |k: &str| text_at(m, k);
    let flag = |k: &str| -> Result<bool, String> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(format!("{k}: must be true or false")),
        }
    };
    let names = |k: &str| -> Result<Vec<String>, String> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Sequence(items)) => items
                .iter()
                .map(|i| scalar(i).ok_or_else(|| format!("{k}: items are names")))
                .collect(),
            Some(_) => Err(format!("{k}: must be a list")),
        }
    };
    let labels = match m.get("labels") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|i| {
                let s = scalar(i).ok_or("labels: items must be K=V")?;
                Ok(match s.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (s, String::new()),
                })
            })
            .collect::<Result<_, String>>()?,
        Some(v) => string_map(v, "labels")?,
    };
    let stop_grace_period = text("stop_grace_period")?
        .map(|t| {
            parse_duration(&t).ok_or_else(|| {
                format!("stop_grace_period: {t} is not a duration (write it as 10s or 1m30s)")
            })
        })
        .transpose()?;
    Ok(RunKeys {
        container_name: text("container_name")?,
        labels,
        hostname: text("hostname")?,
        init: flag("init")?,
        stop_signal: text("stop_signal")?,
        stop_grace_period,
        read_only: flag("read_only")?,
        tty: flag("tty")?,
        stdin_open: flag("stdin_open")?,
        privileged: flag("privileged")?,
        cap_add: names("cap_add")?,
        cap_drop: names("cap_drop")?,
    })
}

/// `[IP:][HOST:]CONTAINER[/PROTO]`, IPv6 addresses in brackets; `HOST` and `CONTAINER` may be
/// ranges (`8000-8002:9000-9002`, or `9000-9002` alone), one entry per port as compose expands
/// them.
fn short_port(s: &str) -> Result<Vec<PortSpec>, String> {
    let bad = |why: &str| format!("ports: {s}: {why}");
    let (spec, protocol) = match s.rsplit_once('/') {
        Some((p, proto @ ("tcp" | "udp"))) => (p, proto.to_string()),
        Some(_) => return Err(bad("the protocol is tcp or udp")),
        None => (s, "tcp".to_string()),
    };
    let num = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("ports are numbers from 1 to 65535, or ranges of them (A-B)"))
    };
    // An inclusive range (a single port is a range of one).
    let range = |p: &str| -> Result<(u16, u16), String> {
        match p.split_once('-') {
            None => num(p).map(|n| (n, n)),
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if b < a {
                    return Err(bad("a range's end is below its start"));
                }
                Ok((a, b))
            }
        }
    };
    let (ip, published, target) = match spec.rsplitn(3, ':').collect::<Vec<_>>().as_slice() {
        [t] => (None, None, range(t)?),
        [t, h] => (None, Some(range(h)?), range(t)?),
        [t, h, ip] => {
            let ip = ip.trim_matches(['[', ']']);
            let published = if h.is_empty() { None } else { Some(range(h)?) };
            (
                (!ip.is_empty()).then(|| ip.to_string()),
                published,
                range(t)?,
            )
        }
        _ => return Err(bad("cannot read it")),
    };
    let count = target.1 - target.0;
    if let Some(h) = published {
        if h.1 - h.0 != count {
            return Err(bad(
                "the host and container ranges differ in length (kiln publishes each container \
                 port on one host port of its own)",
            ));
        }
    }
    Ok((0..=count)
        .map(|i| PortSpec {
            target: target.0 + i,
            published: published.map(|h| h.0 + i),
            host_ip: ip.clone(),
            protocol: protocol.clone(),
        })
        .collect())
}

/// `target`, `published`, `host_ip`, `protocol` (`mode` and `name` are accepted and ignored).
fn long_port(m: &Mapping) -> Result<PortSpec, String> {
    let num = |k: &str| -> Result<Option<u16>, String> {
        match m.get(k).and_then(scalar) {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) => v
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .map(Some)
                .ok_or_else(|| format!("ports: {k}: {v} is not a port from 1 to 65535")),
        }
    };
    let protocol = m
        .get("protocol")
        .and_then(scalar)
        .unwrap_or_else(|| "tcp".into());
    if protocol != "tcp" && protocol != "udp" {
        return Err(format!(
            "ports: protocol {protocol}: the protocol is tcp or udp"
        ));
    }
    Ok(PortSpec {
        target: num("target")?.ok_or("ports: the long syntax needs target:")?,
        published: num("published")?,
        host_ip: m.get("host_ip").and_then(scalar).filter(|s| !s.is_empty()),
        protocol,
    })
}

/// `type: volume|bind`, `source`, `target`, `read_only`.
fn long_mount(m: &Mapping, dir: &Path) -> Result<Mount, String> {
    let field = |k: &str| m.get(k).and_then(scalar);
    let target = field("target").ok_or("volumes: the long syntax needs target:")?;
    // No source: an anonymous volume (a bind needs one).
    let source = field("source").unwrap_or_default();
    if source.is_empty() && field("type").as_deref() == Some("bind") {
        return Err(format!("volumes: {target}: a bind mount needs source:"));
    }
    let read_only = m.get("read_only").and_then(Value::as_bool).unwrap_or(false);
    match field("type").as_deref() {
        Some("volume") | None => Ok(Mount {
            kind: "volume",
            source,
            target,
            read_only,
        }),
        Some("bind") => Ok(Mount {
            kind: "bind",
            source: bind_source(&source, dir),
            target,
            read_only,
        }),
        Some(t) => Err(format!(
            "volumes: {target}: type {t} is not supported (volume and bind are)"
        )),
    }
}

/// A `type: tmpfs` volume (`target`, `tmpfs: {size, mode}`) as a `--tmpfs` value.
fn long_tmpfs(m: &Mapping) -> Result<String, String> {
    let target = m
        .get("target")
        .and_then(scalar)
        .ok_or("volumes: the long syntax needs target:")?;
    let mut options = Vec::new();
    if let Some(Value::Mapping(t)) = m.get("tmpfs") {
        if let Some(size) = t.get("size").and_then(scalar) {
            options.push(format!("size={size}"));
        }
        if let Some(mode) = t.get("mode").and_then(scalar) {
            options.push(format!("mode={mode}"));
        }
    }
    Ok(match options.is_empty() {
        true => target,
        false => format!("{target}:{}", options.join(",")),
    })
}

fn bind_source(source: &str, dir: &Path) -> String {
    let path = match source.strip_prefix("~/") {
        Some(rest) => PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(rest),
        None => dir.join(source),
    };
    normalise_path(&path).to_string_lossy().into_owned()
}

/// Durations as compose writes them: `1m30s`, `500ms`, `10s`, `2h`, `1.5s`.
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += value * unit;
        rest = &rest[u..];
    }
    std::time::Duration::try_from_secs_f64(total).ok()
}

/// Go's duration spelling, as docker compose config prints it: `1m30s`, `500ms`, `10s`.
pub fn format_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m, s, rem) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if rem == 0 {
        out.push_str(&format!("{s}s"));
    } else {
        let frac = format!("{rem:03}");
        out.push_str(&format!("{s}.{}s", frac.trim_end_matches('0')));
    }
    out
}

/// `test`, `interval`, `timeout`, `retries`, `start_period`, `disable`; docker's defaults.
fn healthcheck(h: &Mapping) -> Result<Option<Healthcheck>, String> {
    if h.get("disable").and_then(Value::as_bool) == Some(true) {
        return Ok(None);
    }
    let test = match h.get("test") {
        Some(Value::String(s)) => vec!["CMD-SHELL".to_string(), s.clone()],
        Some(Value::Sequence(items)) => items
            .iter()
            .map(scalar)
            .collect::<Option<Vec<_>>>()
            .ok_or("healthcheck: test: items must be strings")?,
        None => return Err("healthcheck: needs test:".into()),
        Some(_) => return Err("healthcheck: test: must be a string or a list".into()),
    };
    match test.first().map(String::as_str) {
        Some("NONE") => return Ok(None),
        Some("CMD") if test.len() > 1 => {}
        Some("CMD-SHELL") if test.len() == 2 => {}
        _ => {
            return Err(
                "healthcheck: test: a list starts with CMD (then the arguments) or CMD-SHELL (then one command string)".into(),
            )
        }
    }
    let duration = |k: &str, default: u64| -> Result<std::time::Duration, String> {
        match h.get(k).and_then(scalar) {
            None => Ok(std::time::Duration::from_secs(default)),
            Some(v) => parse_duration(&v).ok_or_else(|| {
                format!("healthcheck: {k}: {v} is not a duration like 10s or 1m30s")
            }),
        }
    };
    Ok(Some(Healthcheck {
        test,
        interval: duration("interval", 30)?,
        timeout: duration("timeout", 30)?,
        retries: match h.get("retries") {
            None => 3,
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or("healthcheck: retries: must be a whole number")?,
        },
        start_period: duration("start_period", 0)?,
    }))
}

fn mount(s: &str, dir: &Path) -> Result<Mount, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] if t.starts_with('/') => {
            return Ok(Mount {
                kind: "volume",
                source: String::new(),
                target: t.to_string(),
                read_only: false,
            })
        }
        [t] => {
            return Err(format!(
                "volumes: {t}: an anonymous volume's target is an absolute path"
            ))
        }
        [s, t] => (*s, *t, ""),
        [s, t, m] => (*s, *t, *m),
        _ => return Err(format!("volumes: cannot read {s}")),
    };
    let read_only = match mode {
        "" | "rw" => false,
        "ro" => true,
        m => return Err(format!("volumes: unsupported mode {m}")),
    };
    let bind = source.starts_with('.') || source.starts_with('/') || source.starts_with('~');
    if bind {
        Ok(Mount {
            kind: "bind",
            source: bind_source(source, dir),
            target: target.to_string(),
            read_only,
        })
    } else {
        Ok(Mount {
            kind: "volume",
            source: source.to_string(),
            target: target.to_string(),
            read_only,
        })
    }
}

/// Drops `.` and folds `..` (no symlinks resolved, as compose prints it).
fn normalise_path(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// `$` written as `$$` in every string, so the printed model reads back as the same model
/// (docker compose config does the same).
fn escape_dollars(v: &mut Value) {
    match v {
        Value::String(s) => *s = s.replace('$', "$$"),
        Value::Sequence(items) => items.iter_mut().for_each(escape_dollars),
        Value::Mapping(m) => m.iter_mut().for_each(|(_, v)| escape_dollars(v)),
        _ => {}
    }
}

/// The normalised model in docker compose config's shape, `$` escaped as `$$`.
pub fn to_yaml(p: &Project) -> Value {
    let mut v = model(p);
    escape_dollars(&mut v);
    v
}

fn model(p: &Project) -> Value {
    let s = |t: &str| Value::String(t.to_string());
    let mut top = Mapping::new();
    top.insert(s("name"), s(&p.name));
    let mut services = Mapping::new();
    let mut by_name: Vec<&Service> = p.services.iter().collect();
    by_name.sort_by(|a, b| a.name.cmp(&b.name));
    for svc in by_name {
        let mut m = Mapping::new();
        if let Some(b) = &svc.build {
            let mut bm = Mapping::new();
            bm.insert(s("context"), s(&b.context.to_string_lossy()));
            bm.insert(s("dockerfile"), s(&b.dockerfile));
            if !b.args.is_empty() {
                bm.insert(s("args"), str_map(&b.args));
            }
            if let Some(t) = &b.target {
                bm.insert(s("target"), s(t));
            }
            m.insert(s("build"), Value::Mapping(bm));
        }
        if let Some(c) = &svc.command {
            m.insert(s("command"), list(c));
        }
        if !svc.depends_on.is_empty() {
            let mut d = Mapping::new();
            for (k, c) in &svc.depends_on {
                let mut dm = Mapping::new();
                dm.insert(s("condition"), s(c));
                dm.insert(s("required"), Value::Bool(true));
                d.insert(s(k), Value::Mapping(dm));
            }
            m.insert(s("depends_on"), Value::Mapping(d));
        }
        if let Some(e) = &svc.entrypoint {
            m.insert(s("entrypoint"), list(e));
        }
        if !svc.environment.is_empty() {
            m.insert(s("environment"), str_map(&svc.environment));
        }
        if !svc.expose.is_empty() {
            let items: Vec<String> = svc
                .expose
                .iter()
                .map(|p| match p.protocol.as_str() {
                    "tcp" => p.target.to_string(),
                    proto => format!("{}/{proto}", p.target),
                })
                .collect();
            m.insert(s("expose"), list(&items));
        }
        if let Some(h) = &svc.healthcheck {
            let mut hm = Mapping::new();
            hm.insert(s("test"), list(&h.test));
            hm.insert(s("timeout"), s(&format_duration(h.timeout)));
            hm.insert(s("interval"), s(&format_duration(h.interval)));
            hm.insert(s("retries"), Value::Number(h.retries.into()));
            if !h.start_period.is_zero() {
                hm.insert(s("start_period"), s(&format_duration(h.start_period)));
            }
            m.insert(s("healthcheck"), Value::Mapping(hm));
        }
        if let Some(i) = &svc.image {
            m.insert(s("image"), s(i));
        }
        match &svc.network_mode {
            Some(mode) => {
                m.insert(s("network_mode"), s(&mode.text()));
            }
            None => {
                let mut nets = Mapping::new();
                nets.insert(s("default"), Value::Null);
                m.insert(s("networks"), Value::Mapping(nets));
            }
        }
        if !svc.ports.is_empty() {
            let ports = svc
                .ports
                .iter()
                .map(|p| {
                    let mut pm = Mapping::new();
                    pm.insert(s("mode"), s("ingress"));
                    if let Some(ip) = &p.host_ip {
                        pm.insert(s("host_ip"), s(ip));
                    }
                    pm.insert(s("target"), Value::Number(p.target.into()));
                    if let Some(h) = p.published {
                        pm.insert(s("published"), s(&h.to_string()));
                    }
                    pm.insert(s("protocol"), s(&p.protocol));
                    Value::Mapping(pm)
                })
                .collect();
            m.insert(s("ports"), Value::Sequence(ports));
        }
        if !svc.profiles.is_empty() {
            m.insert(s("profiles"), list(&svc.profiles));
        }
        let r = &svc.run;
        for (k, v) in [("cap_add", &r.cap_add), ("cap_drop", &r.cap_drop)] {
            if !v.is_empty() {
                m.insert(s(k), list(v));
            }
        }
        for (k, v) in [
            ("container_name", &r.container_name),
            ("hostname", &r.hostname),
            ("stop_signal", &r.stop_signal),
        ] {
            if let Some(v) = v {
                m.insert(s(k), s(v));
            }
        }
        for (k, v) in [
            ("init", r.init),
            ("read_only", r.read_only),
            ("tty", r.tty),
            ("stdin_open", r.stdin_open),
            ("privileged", r.privileged),
        ] {
            if v {
                m.insert(s(k), Value::Bool(true));
            }
        }
        if !r.labels.is_empty() {
            m.insert(s("labels"), str_map(&r.labels));
        }
        if let Some(d) = r.stop_grace_period {
            m.insert(s("stop_grace_period"), s(&format_duration(d)));
        }
        if let Some(r) = &svc.restart {
            m.insert(s("restart"), s(r));
        }
        if let Some(u) = &svc.user {
            m.insert(s("user"), s(u));
        }
        if !svc.volumes.is_empty() {
            let vols = svc
                .volumes
                .iter()
                .map(|v| {
                    let mut vm = Mapping::new();
                    vm.insert(s("type"), s(v.kind));
                    if !v.source.is_empty() {
                        vm.insert(s("source"), s(&v.source));
                    }
                    vm.insert(s("target"), s(&v.target));
                    if v.read_only {
                        vm.insert(s("read_only"), Value::Bool(true));
                    }
                    Value::Mapping(vm)
                })
                .collect();
            m.insert(s("volumes"), Value::Sequence(vols));
        }
        if !svc.tmpfs.is_empty() {
            m.insert(s("tmpfs"), list(&svc.tmpfs));
        }
        if let Some(w) = &svc.working_dir {
            m.insert(s("working_dir"), s(w));
        }
        services.insert(s(&svc.name), Value::Mapping(m));
    }
    top.insert(s("services"), Value::Mapping(services));
    if p.uses_network() {
        let mut nets = Mapping::new();
        let mut def = Mapping::new();
        def.insert(s("name"), s(&p.network()));
        nets.insert(s("default"), Value::Mapping(def));
        top.insert(s("networks"), Value::Mapping(nets));
    }
    if !p.volumes.is_empty() {
        let mut vols = Mapping::new();
        for v in &p.volumes {
            let mut vm = Mapping::new();
            vm.insert(s("name"), s(&p.volume(v)));
            vols.insert(s(v), Value::Mapping(vm));
        }
        top.insert(s("volumes"), Value::Mapping(vols));
    }
    Value::Mapping(top)
}

fn list(items: &[String]) -> Value {
    Value::Sequence(items.iter().map(|i| Value::String(i.clone())).collect())
}

fn str_map(m: &BTreeMap<String, String>) -> Value {
    let mut out = Mapping::new();
    for (k, v) in m {
        out.insert(Value::String(k.clone()), Value::String(v.clone()));
    }
    Value::Mapping(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The string readers of the model (interpolation, command words, ports, volumes,
    /// durations) on text made of the characters they care about: a value or an error,
    /// never a panic.
    #[test]
    fn the_string_readers_take_any_text() {
        let text = "[-$:{}?/0-9a-z.\\[\\]\"' \\\\é]{0,40}";
        let mut runner = proptest::test_runner::TestRunner::default();
        runner
            .run(&text, |t| {
                let _ = interpolate(&t, &|k| (k == "a").then(|| "x".to_string()));
                let _ = split_words(&t);
                let _ = short_port(&t);
                let _ = mount(&t, Path::new("/p"));
                let _ = parse_duration(&t);
                let _ = NetworkMode::parse(&t);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn durations_read_and_print_as_go_spells_them() {
        for (text, ms) in [
            ("1m30s", 90_000),
            ("90s", 90_000),
            ("500ms", 500),
            ("1.5s", 1500),
            ("2h", 7_200_000),
        ] {
            assert_eq!(
                parse_duration(text),
                Some(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for bad in ["", "10", "5x", "s", "99999999999999999999h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn short_ports() {
        let one = |s: &str| {
            let mut p = short_port(s).unwrap();
            assert_eq!(p.len(), 1, "{s}");
            p.remove(0)
        };
        let p = one("127.0.0.1:8080:80/udp");
        assert_eq!(
            (
                p.host_ip.as_deref(),
                p.published,
                p.target,
                p.protocol.as_str()
            ),
            (Some("127.0.0.1"), Some(8080), 80, "udp")
        );
        assert_eq!(p.publish_flag().as_deref(), Some("127.0.0.1:8080:80/udp"));
        let p = one("80");
        assert_eq!((p.published, p.publish_flag()), (None, None));
        let p = one("[::1]:53:53");
        assert_eq!(p.host_ip.as_deref(), Some("::1"));
        let p = one("127.0.0.1::80");
        assert_eq!((p.published, p.target), (None, 80));
        let flags: Vec<_> = short_port("127.0.0.1:8000-8002:9000-9002/udp")
            .unwrap()
            .iter()
            .map(|p| p.publish_flag().unwrap())
            .collect();
        assert_eq!(
            flags,
            [
                "127.0.0.1:8000:9000/udp",
                "127.0.0.1:8001:9001/udp",
                "127.0.0.1:8002:9002/udp"
            ]
        );
        let targets: Vec<_> = short_port("3000-3002")
            .unwrap()
            .iter()
            .map(|p| p.target)
            .collect();
        assert_eq!(targets, [3000, 3001, 3002]);
        for bad in [
            "8000-8010:80",
            "0:80",
            "80/sctp",
            "a:b",
            "9-8:9-8",
            "1-3:1-2",
        ] {
            assert!(short_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn command_strings_split_into_shell_words() {
        assert_eq!(
            split_words(r#"sh -c "echo 'a b'" x\ y ''"#).unwrap(),
            ["sh", "-c", "echo 'a b'", "x y", ""]
        );
        assert_eq!(split_words("unbalanced 'quote"), None);
    }

    #[test]
    fn healthcheck_argv() {
        let h = |test: &[&str]| Healthcheck {
            test: test.iter().map(|s| s.to_string()).collect(),
            interval: Duration::ZERO,
            timeout: Duration::ZERO,
            retries: 3,
            start_period: Duration::ZERO,
        };
        assert_eq!(h(&["CMD", "pg_isready", "-q"]).argv(), ["pg_isready", "-q"]);
        assert_eq!(
            h(&["CMD-SHELL", "test -f /ok"]).argv(),
            ["/bin/sh", "-c", "test -f /ok"]
        );
    }
}
