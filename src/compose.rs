//! The compose file model: finding the file, `${VAR}` interpolation from the environment and
//! `.env`, the project name, and the normalised services (`kiln compose config` prints it).
//! Must not: touch the store, start anything or shell out (src/commands/compose.rs does the
//! runs, through the same library calls as `kiln run`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

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

/// A `volumes:` entry of a service (short syntax).
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    /// `volume` (source is the top-level name), `bind` (source an absolute path).
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
    pub ports: Vec<String>,
    pub volumes: Vec<Mount>,
    /// Service name and condition (`service_started`, `service_healthy`, ...).
    pub depends_on: BTreeMap<String, String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub restart: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    pub name: String,
    pub directory: PathBuf,
    pub file: PathBuf,
    /// In depends_on order (a service after the ones it depends on; ties by name).
    pub services: Vec<Service>,
    /// Top-level volume names (as written; created as `<project>_<name>`).
    pub volumes: Vec<String>,
}

impl Project {
    pub fn network(&self) -> String {
        format!("{}_default", self.name)
    }
    pub fn volume(&self, name: &str) -> String {
        format!("{}_{name}", self.name)
    }
    pub fn container(&self, service: &str) -> String {
        format!("{}-{service}-1", self.name)
    }
    /// The image a service runs: `image:`, else `<project>-<service>` for a built one.
    pub fn image(&self, s: &Service) -> String {
        s.image
            .clone()
            .unwrap_or_else(|| format!("{}-{}", self.name, s.name))
    }
}

/// Finds the file: `file` (relative to the cwd), else a default name in `dir`.
pub fn find_file(file: Option<&Path>, dir: &Path) -> Result<PathBuf, ComposeError> {
    if let Some(f) = file {
        return Ok(f.to_path_buf());
    }
    DEFAULT_FILES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| ComposeError::NoFile(dir.to_path_buf()))
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
    file: Option<&Path>,
    dir: Option<&Path>,
    name: Option<&str>,
) -> Result<Project, ComposeError> {
    let cwd = std::env::current_dir().map_err(|source| ComposeError::Read {
        path: PathBuf::from("."),
        source,
    })?;
    let file = find_file(file, dir.unwrap_or(&cwd))?;
    let file = if file.is_absolute() {
        file
    } else {
        cwd.join(file)
    };
    let directory = match dir {
        Some(d) if d.is_absolute() => d.to_path_buf(),
        Some(d) => cwd.join(d),
        None => file.parent().map(Path::to_path_buf).unwrap_or(cwd),
    };
    let dotenv = read_dotenv(&directory.join(".env"))?;
    let lookup = |k: &str| std::env::var(k).ok().or_else(|| dotenv.get(k).cloned());
    let text = std::fs::read_to_string(&file).map_err(|source| ComposeError::Read {
        path: file.clone(),
        source,
    })?;
    let mut doc: Value = serde_norway::from_str(&text).map_err(|source| ComposeError::Yaml {
        path: file.clone(),
        source,
    })?;
    interpolate_value(&mut doc, &lookup).map_err(|(var, message)| ComposeError::Required {
        path: file.clone(),
        var,
        message,
    })?;
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
            if m.kind == "volume" && !volumes.contains(&m.source) {
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
    Ok(Project {
        name,
        directory,
        file,
        services,
        volumes,
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
    let text = |k: &str| -> Result<Option<String>, String> {
        match get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => scalar(v)
                .map(Some)
                .ok_or_else(|| format!("{k}: must be a string")),
        }
    };
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
    if let Some(Value::Sequence(items)) = get("volumes") {
        for i in items {
            let Some(s) = scalar(i) else {
                return Err("volumes: only the short syntax SRC:DST[:ro] is supported".into());
            };
            volumes.push(mount(&s, dir)?);
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
                (key(k), c)
            })
            .collect(),
        Some(_) => return Err("depends_on: must be a list or a mapping".into()),
    };
    let ports = match get("ports") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|i| {
                scalar(i).ok_or_else(|| "ports: only the short syntax is supported".to_string())
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("ports: must be a list".into()),
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
        environment: match get("environment") {
            Some(e) => string_map(e, "environment")?,
            None => BTreeMap::new(),
        },
        ports,
        volumes,
        depends_on,
        working_dir: text("working_dir")?,
        user: text("user")?,
        restart: text("restart")?,
    })
}

fn mount(s: &str, dir: &Path) -> Result<Mount, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] => return Err(format!("volumes: anonymous volume {t} is not supported")),
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
        let path = match source.strip_prefix("~/") {
            Some(rest) => PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(rest),
            None => dir.join(source),
        };
        let path = normalise_path(&path);
        Ok(Mount {
            kind: "bind",
            source: path.to_string_lossy().into_owned(),
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

/// The normalised model in docker compose config's shape.
pub fn to_yaml(p: &Project) -> Value {
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
        if let Some(i) = &svc.image {
            m.insert(s("image"), s(i));
        }
        let mut nets = Mapping::new();
        nets.insert(s("default"), Value::Null);
        m.insert(s("networks"), Value::Mapping(nets));
        if !svc.ports.is_empty() {
            m.insert(s("ports"), list(&svc.ports));
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
                    vm.insert(s("source"), s(&v.source));
                    vm.insert(s("target"), s(&v.target));
                    if v.read_only {
                        vm.insert(s("read_only"), Value::Bool(true));
                    }
                    Value::Mapping(vm)
                })
                .collect();
            m.insert(s("volumes"), Value::Sequence(vols));
        }
        if let Some(w) = &svc.working_dir {
            m.insert(s("working_dir"), s(w));
        }
        services.insert(s(&svc.name), Value::Mapping(m));
    }
    top.insert(s("services"), Value::Mapping(services));
    let mut nets = Mapping::new();
    let mut def = Mapping::new();
    def.insert(s("name"), s(&p.network()));
    nets.insert(s("default"), Value::Mapping(def));
    top.insert(s("networks"), Value::Mapping(nets));
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
