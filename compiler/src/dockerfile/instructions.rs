//! Typed instructions: one syntax-tree node in, one [`Instruction`] out, with flags checked.
//!
//! Owns the per-instruction rules BuildKit's `instructions` package applies after parsing:
//! known names, allowed flags (and which may repeat), argument counts, exec-form-only
//! instructions, ONBUILD restrictions. Must not: expand variables (values stay raw here;
//! `lower` expands them with the right scope) or look at any other instruction.

use crate::dockerfile::error::DockerfileError;
use crate::syntax::{self, Heredoc, Span};

/// A command given either as a JSON array (exec form) or as one shell string.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum CommandLine {
    Exec(Vec<String>),
    Shell(String),
}

/// A flag value with the span of the whole flag word, for diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagValue {
    pub value: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromInstr {
    pub image: String,
    pub name: Option<String>,
    pub platform: Option<FlagValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInstr {
    pub command: CommandLine,
    pub mounts: Vec<FlagValue>,
    pub network: Option<FlagValue>,
    pub security: Option<FlagValue>,
    pub heredocs: Vec<Heredoc>,
}

/// COPY and ADD share one shape; ADD-only flags are None for COPY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyInstr {
    pub is_add: bool,
    pub sources: Vec<String>,
    pub dest: String,
    pub from: Option<FlagValue>,
    pub chown: Option<FlagValue>,
    pub chmod: Option<FlagValue>,
    pub link: bool,
    pub parents: bool,
    pub excludes: Vec<FlagValue>,
    pub checksum: Option<FlagValue>,
    pub keep_git_dir: bool,
    pub heredocs: Vec<Heredoc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthcheckInstr {
    /// None for `HEALTHCHECK NONE`.
    pub test: Option<CommandLine>,
    pub interval: Option<FlagValue>,
    pub timeout: Option<FlagValue>,
    pub start_period: Option<FlagValue>,
    pub start_interval: Option<FlagValue>,
    pub retries: Option<FlagValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    From(FromInstr),
    Run(RunInstr),
    Copy(CopyInstr),
    Env(Vec<(String, String)>),
    Label(Vec<(String, String)>),
    /// `ARG name[=default]`, several per line allowed.
    Arg(Vec<(String, Option<String>)>),
    Cmd(CommandLine),
    Entrypoint(CommandLine),
    Shell(Vec<String>),
    Workdir(String),
    User(String),
    Expose(Vec<String>),
    Volume(Vec<String>),
    StopSignal(String),
    Healthcheck(HealthcheckInstr),
    /// The trigger's source text, e.g. `RUN make` (validated here, run in the child).
    Onbuild(String),
    Maintainer(String),
}

/// An instruction with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<'a> {
    pub instr: Instruction,
    pub node: &'a syntax::Instruction,
}

pub const KNOWN: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Flags one instruction accepts: (name, takes a value, may repeat).
struct FlagSpec {
    name: &'static str,
    boolean: bool,
    repeat: bool,
}

const fn flag(name: &'static str) -> FlagSpec {
    FlagSpec {
        name,
        boolean: false,
        repeat: false,
    }
}
const fn boolean(name: &'static str) -> FlagSpec {
    FlagSpec {
        name,
        boolean: true,
        repeat: false,
    }
}
const fn repeated(name: &'static str) -> FlagSpec {
    FlagSpec {
        name,
        boolean: false,
        repeat: true,
    }
}

const FROM_FLAGS: &[FlagSpec] = &[flag("platform")];
const RUN_FLAGS: &[FlagSpec] = &[
    repeated("mount"),
    flag("network"),
    flag("security"),
    repeated("device"),
];
const COPY_FLAGS: &[FlagSpec] = &[
    flag("from"),
    flag("chown"),
    flag("chmod"),
    boolean("link"),
    boolean("parents"),
    repeated("exclude"),
];
const ADD_FLAGS: &[FlagSpec] = &[
    flag("chown"),
    flag("chmod"),
    boolean("link"),
    flag("checksum"),
    boolean("keep-git-dir"),
    repeated("exclude"),
    boolean("unpack"),
];
const HEALTHCHECK_FLAGS: &[FlagSpec] = &[
    flag("interval"),
    flag("timeout"),
    flag("start-period"),
    flag("start-interval"),
    flag("retries"),
];

fn flag_specs(cmd: &str) -> &'static [FlagSpec] {
    match cmd {
        "FROM" => FROM_FLAGS,
        "RUN" => RUN_FLAGS,
        "COPY" => COPY_FLAGS,
        "ADD" => ADD_FLAGS,
        "HEALTHCHECK" => HEALTHCHECK_FLAGS,
        _ => &[],
    }
}

/// Parsed flags of one instruction.
#[derive(Default)]
struct Flags {
    values: Vec<(&'static str, FlagValue)>,
}

impl Flags {
    fn one(&self, name: &str) -> Option<FlagValue> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    }
    fn all(&self, name: &str) -> Vec<FlagValue> {
        self.values
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
    fn boolean(&self, name: &str) -> Result<bool, DockerfileError> {
        match self.one(name) {
            None => Ok(false),
            Some(v) => match v.value.as_str() {
                "" | "true" => Ok(true),
                "false" => Ok(false),
                other => Err(DockerfileError::at(
                    format!("expecting boolean value for flag --{name}, not: {other}"),
                    v.span,
                    "not true or false",
                )),
            },
        }
    }
}

fn parse_flags(node: &syntax::Instruction) -> Result<Flags, DockerfileError> {
    let specs = flag_specs(&node.cmd);
    let mut flags = Flags::default();
    for f in &node.flags {
        let body = f.raw.strip_prefix("--").unwrap_or(&f.raw);
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let Some(spec) = specs.iter().find(|s| s.name == name) else {
            let help = if specs.is_empty() {
                format!("{} takes no flags", node.cmd)
            } else {
                let names: Vec<String> = specs.iter().map(|s| format!("--{}", s.name)).collect();
                match crate::suggest::closest(name, specs.iter().map(|s| s.name)) {
                    Some(s) => format!(
                        "did you mean --{s}? {} accepts {}",
                        node.cmd,
                        names.join(", ")
                    ),
                    None => format!("{} accepts {}", node.cmd, names.join(", ")),
                }
            };
            return Err(DockerfileError::at(
                format!("unknown flag: --{name}"),
                f.span,
                "unknown flag",
            )
            .with_help(help));
        };
        if !spec.repeat && flags.values.iter().any(|(n, _)| *n == spec.name) {
            return Err(DockerfileError::at(
                format!("duplicate flag specified: --{name}"),
                f.span,
                "given twice",
            )
            .with_help("give each flag once"));
        }
        let value = match value {
            Some(v) => v.to_string(),
            None if spec.boolean => String::new(),
            None => {
                return Err(DockerfileError::at(
                    format!("missing a value on flag --{name}"),
                    f.span,
                    "needs a value",
                )
                .with_help(format!("write --{name}=VALUE")))
            }
        };
        flags.values.push((
            spec.name,
            FlagValue {
                value,
                span: f.span,
            },
        ));
    }
    Ok(flags)
}

fn command_line(node: &syntax::Instruction) -> CommandLine {
    if node.json {
        CommandLine::Exec(node.value.clone())
    } else {
        CommandLine::Shell(node.value.join(" "))
    }
}

fn exactly_one(node: &syntax::Instruction, what: &str) -> Result<String, DockerfileError> {
    match node.value.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(DockerfileError::at(
            format!("{} requires exactly one argument", node.cmd),
            span_or_cmd(node),
            format!("expected one {what}"),
        )),
    }
}

fn at_least_one(node: &syntax::Instruction, what: &str) -> Result<(), DockerfileError> {
    if node.value.is_empty() {
        return Err(DockerfileError::at(
            format!("{} requires at least one argument", node.cmd),
            node.cmd_span,
            format!("expected {what}"),
        ));
    }
    Ok(())
}

fn span_or_cmd(node: &syntax::Instruction) -> Span {
    if node.args_span.is_empty() {
        node.cmd_span
    } else {
        node.args_span
    }
}

fn pairs(node: &syntax::Instruction) -> Result<Vec<(String, String)>, DockerfileError> {
    if node.value.is_empty() {
        return Err(DockerfileError::at(
            format!("{} requires at least one argument", node.cmd),
            node.cmd_span,
            "expected name=value",
        ));
    }
    Ok(node
        .value
        .chunks(2)
        .map(|c| (c[0].clone(), c.get(1).cloned().unwrap_or_default()))
        .collect())
}

/// Turn one syntax node into a typed instruction.
pub fn from_node(node: &syntax::Instruction, source: &str) -> Result<Instruction, DockerfileError> {
    let flags = parse_flags(node)?;
    let instr = match node.cmd.as_str() {
        "FROM" => {
            let (image, name) = match node.value.as_slice() {
                [image] => (image.clone(), None),
                [image, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
                    (image.clone(), Some(name.clone()))
                }
                _ => {
                    return Err(DockerfileError::at(
                        "FROM requires either one or three arguments",
                        span_or_cmd(node),
                        "expected IMAGE or IMAGE AS NAME",
                    ))
                }
            };
            Instruction::From(FromInstr {
                image,
                name,
                platform: flags.one("platform"),
            })
        }
        "RUN" => {
            if node.value.is_empty() && node.heredocs.is_empty() {
                at_least_one(node, "a command")?;
            }
            let network = flags.one("network");
            if let Some(n) = &network {
                // BuildKit checks the mode as written (no variable expansion) at parse time.
                if crate::plan::RunNetwork::parse(&n.value).is_none() {
                    return Err(DockerfileError::at(
                        format!("invalid network mode {:?}", n.value),
                        n.span,
                        "unknown network mode",
                    )
                    .with_help("RUN --network takes default, none or host"));
                }
            }
            let mounts = flags.all("mount");
            for m in &mounts {
                crate::dockerfile::mounts::check_unexpanded(&m.value, m.span)?;
            }
            Instruction::Run(RunInstr {
                command: command_line(node),
                mounts,
                network,
                security: flags.one("security"),
                heredocs: node.heredocs.clone(),
            })
        }
        "COPY" | "ADD" => {
            let is_add = node.cmd == "ADD";
            let min = if node.heredocs.is_empty() { 2 } else { 1 };
            if node.value.len() < min {
                return Err(DockerfileError::at(
                    format!("{} requires at least two arguments, but only one was provided. Destination could not be determined", node.cmd),
                    span_or_cmd(node),
                    "expected SOURCE... DEST",
                ));
            }
            let (dest, sources) = node
                .value
                .split_last()
                .map(|(d, s)| (d.clone(), s.to_vec()))
                .unwrap_or_default();
            Instruction::Copy(CopyInstr {
                is_add,
                sources,
                dest,
                from: flags.one("from"),
                chown: flags.one("chown"),
                chmod: flags.one("chmod"),
                link: flags.boolean("link")?,
                parents: flags.boolean("parents")?,
                excludes: flags.all("exclude"),
                checksum: flags.one("checksum"),
                keep_git_dir: flags.boolean("keep-git-dir")?,
                heredocs: node.heredocs.clone(),
            })
        }
        "ENV" => Instruction::Env(pairs(node)?),
        "LABEL" => Instruction::Label(pairs(node)?),
        "ARG" => {
            at_least_one(node, "a name")?;
            let mut args = Vec::new();
            for word in &node.value {
                let (name, default) = match word.split_once('=') {
                    Some((n, d)) => (n.to_string(), Some(d.to_string())),
                    None => (word.clone(), None),
                };
                if name.is_empty() {
                    return Err(DockerfileError::at(
                        "ARG names can not be blank",
                        node.span_of(source, word),
                        "no name before =",
                    ));
                }
                args.push((name, default));
            }
            Instruction::Arg(args)
        }
        "CMD" => Instruction::Cmd(command_line(node)),
        "ENTRYPOINT" => Instruction::Entrypoint(command_line(node)),
        "SHELL" => {
            if !node.json {
                return Err(DockerfileError::at(
                    "SHELL requires the arguments to be in JSON form",
                    span_or_cmd(node),
                    "not a JSON array",
                )
                .with_help(r#"write it as SHELL ["/bin/sh", "-c"]"#));
            }
            at_least_one(node, "a shell")?;
            Instruction::Shell(node.value.clone())
        }
        "WORKDIR" => Instruction::Workdir(exactly_one(node, "directory")?),
        "USER" => Instruction::User(exactly_one(node, "user")?),
        "STOPSIGNAL" => Instruction::StopSignal(exactly_one(node, "signal")?),
        "MAINTAINER" => {
            at_least_one(node, "a name")?;
            Instruction::Maintainer(node.value.join(" "))
        }
        "EXPOSE" => {
            at_least_one(node, "a port")?;
            Instruction::Expose(node.value.clone())
        }
        "VOLUME" => {
            at_least_one(node, "a path")?;
            if node.value.iter().any(|v| v.trim().is_empty()) {
                return Err(DockerfileError::at(
                    "VOLUME specified can not be an empty string",
                    span_or_cmd(node),
                    "empty path",
                ));
            }
            Instruction::Volume(node.value.clone())
        }
        "HEALTHCHECK" => healthcheck(node, &flags)?,
        "ONBUILD" => {
            let Some(sub) = node.sub.as_deref() else {
                return Err(DockerfileError::at(
                    "ONBUILD requires at least one argument",
                    node.cmd_span,
                    "expected an instruction",
                ));
            };
            if matches!(sub.cmd.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                return Err(DockerfileError::at(
                    format!("{} isn't allowed as an ONBUILD trigger", sub.cmd),
                    sub.cmd_span,
                    "not allowed here",
                ));
            }
            // Validate the trigger now so mistakes show in the parent's build.
            check_known(sub, source)?;
            from_node(sub, source)?;
            let text = source
                .get(sub.cmd_span.start..sub.span.end)
                .unwrap_or_default();
            Instruction::Onbuild(join_continuations(text))
        }
        _ => {
            check_known(node, source)?;
            unreachable_known(node)?
        }
    };
    Ok(instr)
}

/// An instruction name kiln accepts at the syntax level but does not know is a user error.
pub fn check_known(node: &syntax::Instruction, _source: &str) -> Result<(), DockerfileError> {
    if KNOWN.contains(&node.cmd.as_str()) {
        return Ok(());
    }
    let mut err = DockerfileError::at(
        format!("unknown instruction: {}", node.cmd),
        node.cmd_span,
        "not a Dockerfile instruction",
    );
    if let Some(s) = crate::suggest::closest(&node.cmd, KNOWN.iter().copied()) {
        err = err.with_help(format!("did you mean {s}?"));
    }
    Err(err)
}

fn unreachable_known(node: &syntax::Instruction) -> Result<Instruction, DockerfileError> {
    Err(DockerfileError::at(
        format!("unsupported instruction: {}", node.cmd),
        node.cmd_span,
        "unsupported",
    ))
}

/// ONBUILD trigger text as stored in image configs: continuation escapes removed, one line.
fn join_continuations(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_end();
        let t = t
            .strip_suffix('\\')
            .or_else(|| t.strip_suffix('`'))
            .unwrap_or(t);
        if t.trim_start().starts_with('#') {
            continue;
        }
        out.push_str(t);
    }
    out.trim().to_string()
}

fn healthcheck(node: &syntax::Instruction, flags: &Flags) -> Result<Instruction, DockerfileError> {
    let kind = node.value.first().map(|s| s.to_ascii_uppercase());
    let test = match kind.as_deref() {
        Some("NONE") => {
            if node.value.len() > 1 || !node.flags.is_empty() {
                return Err(DockerfileError::at(
                    "HEALTHCHECK NONE takes no arguments",
                    span_or_cmd(node),
                    "unexpected arguments",
                ));
            }
            None
        }
        Some("CMD") => {
            let rest = &node.value[1..];
            if rest.is_empty() {
                return Err(DockerfileError::at(
                    "Missing command after HEALTHCHECK CMD",
                    span_or_cmd(node),
                    "expected a command",
                ));
            }
            Some(if node.json {
                CommandLine::Exec(rest.to_vec())
            } else {
                CommandLine::Shell(rest.join(" "))
            })
        }
        _ => {
            return Err(DockerfileError::at(
                format!(
                    "Unknown type {:?} in HEALTHCHECK (try CMD)",
                    node.value.first().map(String::as_str).unwrap_or("")
                ),
                span_or_cmd(node),
                "expected CMD or NONE",
            )
            .with_help("write HEALTHCHECK CMD <command> or HEALTHCHECK NONE"))
        }
    };
    Ok(Instruction::Healthcheck(HealthcheckInstr {
        test,
        interval: flags.one("interval"),
        timeout: flags.one("timeout"),
        start_period: flags.one("start-period"),
        start_interval: flags.one("start-interval"),
        retries: flags.one("retries"),
    }))
}
