//! Build checks: BuildKit's linter rules, reported as warnings by `kiln check` and `kiln build`,
//! and the `check` directive that configures them (`# check=skip=A,B;error=true`, also as a
//! comment right before one instruction, for that instruction only).
//!
//! Rules that need a stage's expansion or the base image come from lowering (UndefinedVar,
//! UnusedBuildArg, ExposeProtoCasing, ExposeInvalidFormat, InvalidBaseImagePlatform); the rest
//! read the syntax tree here, with the global ARGs for the FROM rules and the ignore file for
//! CopyIgnoredFile. Wording, URLs and when each rule fires follow BuildKit's linter.
//! Must not: fail a build by itself. A rule finding something is a warning; only the
//! Dockerfile's own `error=true` turns findings into [`CheckViolation`].

use std::collections::{BTreeSet, HashMap};

use crate::dockerfile::error::DockerfileError;
use crate::dockerfile::instructions::{self, Instruction as Typed};
use crate::dockerfile::lower;
use crate::dockerfile::platforms::Platform;
use crate::dockerfile::reference::is_valid_image_name;
use crate::dockerignore::IgnoreFile;
use crate::plan::{FileId, Warning};
use crate::shell::{Lexer, NoEnv};
use crate::syntax::{Dockerfile, Instruction, Span};

/// A warning as a miette diagnostic (severity warning, the rule name as its code).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{rule}: {message}")]
#[diagnostic(
    severity(Warning),
    url("https://docs.docker.com/go/dockerfile/rule/{}/", kebab(rule))
)]
pub struct CheckWarning {
    pub rule: &'static str,
    pub message: String,
    #[label("here")]
    pub span: Option<Span>,
}

impl From<Warning> for CheckWarning {
    fn from(w: Warning) -> Self {
        let span = if w.span.is_empty() {
            None
        } else {
            Some(w.span)
        };
        CheckWarning {
            rule: w.rule,
            message: w.message,
            span,
        }
    }
}

/// Findings while the Dockerfile says `# check=error=true`: BuildKit's build error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
#[error("lint violation found for rules: {}", rules.join(", "))]
#[diagnostic(
    code(kiln::check::violation),
    help("this Dockerfile's `check` directive sets error=true: fix the warnings above, or skip their rules with `# check=skip=RULE`")
)]
pub struct CheckViolation {
    pub rules: Vec<&'static str>,
    #[label("error=true is set here")]
    pub span: Option<Span>,
}

fn kebab(rule: &str) -> String {
    let chars: Vec<char> = rule.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let prev_lower = i > 0 && chars[i - 1].is_ascii_lowercase();
        let acronym_end = i > 0
            && chars[i - 1].is_ascii_uppercase()
            && chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
        if c.is_ascii_uppercase() && (prev_lower || acronym_end) {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Rules BuildKit runs only when named in `experimental=` (or `experimental=all`).
const EXPERIMENTAL_RULES: &[&str] = &["InvalidDefinitionDescription"];

/// The `check` directive's options (BuildKit's `linter.Config`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckConfig {
    pub skip_all: bool,
    pub skip: BTreeSet<String>,
    pub experimental_all: bool,
    pub experimental: BTreeSet<String>,
    /// Findings fail the build.
    pub error: bool,
}

/// Go's `strconv.ParseBool`.
fn go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn rule_list(v: &str) -> BTreeSet<String> {
    v.split(',').map(|r| r.trim().to_string()).collect()
}

impl CheckConfig {
    /// BuildKit's `ParseLintOptions`: up to three `;`-separated `key=value` options, `skip`,
    /// `experimental` (rule names, or `all`) and `error` (a Go boolean). The error is BuildKit's
    /// message.
    pub fn parse(value: &str) -> Result<CheckConfig, String> {
        let value = value.trim();
        let mut config = CheckConfig::default();
        if value.is_empty() {
            return Ok(config);
        }
        for part in value.splitn(3, ';') {
            let Some((k, v)) = part.split_once('=') else {
                return Err(format!("invalid check option {part:?}"));
            };
            let v = v.trim();
            match k.trim() {
                "skip" if v == "all" => config.skip_all = true,
                "skip" => config.skip = rule_list(v),
                "experimental" if v == "all" => config.experimental_all = true,
                "experimental" => config.experimental = rule_list(v),
                "error" => {
                    config.error = go_bool(v).ok_or_else(|| {
                        format!("failed to parse check option {part:?}: strconv.ParseBool: parsing {v:?}: invalid syntax")
                    })?;
                }
                other => return Err(format!("invalid check option {other:?}")),
            }
        }
        Ok(config)
    }

    /// The Dockerfile's `check` directive, or the default (every rule but the experimental
    /// ones, warnings only). A malformed directive is an error at the directive.
    pub fn of(df: &Dockerfile) -> Result<CheckConfig, DockerfileError> {
        let Some(d) = df.directives.iter().find(|d| d.name == "check") else {
            return Ok(CheckConfig::default());
        };
        CheckConfig::parse(&d.value).map_err(|e| {
            DockerfileError::at(
                format!("failed to parse check options: {e}"),
                d.span,
                "in this directive",
            )
            .with_help("write # check=skip=RULE1,RULE2;error=true (skip=all skips every rule)")
        })
    }

    /// This config with an instruction's own `# check=...` comment applied (BuildKit's
    /// `WithMergedConfigFromComments`: the first such comment counts, its value ends at the
    /// first space, a malformed one is ignored; `error` stays the file's).
    fn for_comments(&self, comments: &[String]) -> CheckConfig {
        let mut merged = self.clone();
        let Some(value) = comments.iter().find_map(|c| comment_directive(c, "check")) else {
            return merged;
        };
        let value = value.split(' ').next().unwrap_or("");
        let Ok(other) = CheckConfig::parse(value) else {
            return merged;
        };
        merged.skip_all |= other.skip_all;
        merged.skip.extend(other.skip);
        merged.experimental_all |= other.experimental_all;
        merged.experimental.extend(other.experimental);
        merged
    }

    /// Does `rule` run under this config?
    pub fn runs(&self, rule: &str) -> bool {
        if EXPERIMENTAL_RULES.contains(&rule) {
            self.experimental_all || self.experimental.contains(rule)
        } else {
            !self.skip_all && !self.skip.contains(rule)
        }
    }
}

/// A comment that reads as the directive `name=value` (`check=skip=all // why`), as BuildKit's
/// directive parser reads a `PrevComment` line: the value, trimmed.
fn comment_directive<'c>(comment: &'c str, name: &str) -> Option<&'c str> {
    let text = comment.trim_start();
    let key_len = text
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(text.len(), |(i, _)| i);
    let (key, rest) = text.split_at(key_len);
    if key.is_empty() || !key.eq_ignore_ascii_case(name) {
        return None;
    }
    let value = rest.trim_start().strip_prefix('=')?.trim();
    (!value.is_empty()).then_some(value)
}

/// The warnings that survive the Dockerfile's `check` configuration, in source order, and
/// whether they fail the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub warnings: Vec<Warning>,
    error: bool,
    directive: Option<Span>,
}

impl CheckReport {
    /// The error BuildKit ends the build with when `error=true` and some rule fired.
    pub fn violation(&self) -> Option<CheckViolation> {
        if !self.error || self.warnings.is_empty() {
            return None;
        }
        let rules: BTreeSet<&'static str> = self.warnings.iter().map(|w| w.rule).collect();
        Some(CheckViolation {
            rules: rules.into_iter().collect(),
            span: self.directive,
        })
    }
}

/// Apply the `check` directive (and each instruction's own `# check=` comment) to `warnings`:
/// skipped and not-enabled experimental rules are dropped, the rest sorted and deduplicated.
pub fn report(df: &Dockerfile, mut warnings: Vec<Warning>) -> Result<CheckReport, DockerfileError> {
    let config = CheckConfig::of(df)?;
    let mut per_instruction: HashMap<usize, CheckConfig> = HashMap::new();
    warnings.retain(|w| {
        let at = df.instructions.iter().position(|n| {
            !w.span.is_empty()
                && n.span.start <= w.span.start
                && w.span.start < n.span.end.max(n.span.start + 1)
        });
        match at {
            Some(i) => per_instruction
                .entry(i)
                .or_insert_with(|| config.for_comments(&df.instructions[i].comments))
                .runs(w.rule),
            None => config.runs(w.rule),
        }
    });
    warnings.sort_by_key(|w| w.span.start);
    warnings.dedup();
    Ok(CheckReport {
        warnings,
        error: config.error,
        directive: df
            .directives
            .iter()
            .find(|d| d.name == "check")
            .map(|d| d.span),
    })
}

fn warn(out: &mut Vec<Warning>, rule: &'static str, message: String, span: Span) {
    out.push(Warning {
        rule,
        message,
        file: FileId(0),
        span,
    });
}

/// Keyword as written in the source.
fn keyword<'s>(source: &'s str, node: &Instruction) -> &'s str {
    source
        .get(node.cmd_span.start..node.cmd_span.end)
        .unwrap_or("")
}

fn is_secret_name(name: &str) -> bool {
    const WORDS: &[&str] = &[
        "apikey",
        "auth",
        "credential",
        "credentials",
        "key",
        "password",
        "pword",
        "passwd",
        "secret",
        "token",
    ];
    name.to_ascii_lowercase()
        .split('_')
        .any(|part| WORDS.contains(&part))
}

/// What the syntax-level rules need besides the tree.
#[derive(Debug, Clone, Copy, Default)]
pub struct LintInput<'a> {
    /// `--build-arg`s (the FROM rules see global ARGs as the build does).
    pub build_args: &'a [(String, String)],
    /// The context's ignore file, for CopyIgnoredFile; None when there is no context.
    pub ignore: Option<&'a IgnoreFile>,
}

/// The global scope FROM lines expand in: the predefined platform ARGs and the ARGs before
/// the first FROM, and the names those ARGs declare.
struct MetaArgs {
    env: Vec<(String, String)>,
    declared: Vec<String>,
}

/// BuildKit's `buildMetaArgs`: each global ARG takes its `--build-arg` (when `build_args` is
/// given) or its default expanded so far; an ARG with neither keeps an earlier value. None when
/// a default fails to expand (lowering reports that).
fn meta_args(
    df: &Dockerfile,
    source: &str,
    lexer: &Lexer,
    build_args: Option<&[(String, String)]>,
) -> Option<MetaArgs> {
    let mut env = lower::predefined_args();
    let mut declared = Vec::new();
    for node in &df.instructions {
        if node.cmd == "FROM" {
            break;
        }
        let Ok(Typed::Arg(args)) = instructions::from_node(node, source) else {
            continue;
        };
        for (name, default) in args {
            let given = build_args.and_then(|b| {
                b.iter()
                    .rev()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.clone())
            });
            let value = match (given, default) {
                (Some(v), _) => Some(v),
                (None, Some(d)) => Some(lexer.expand_word(&d, &env).ok()?.value),
                (None, None) => None,
            };
            if let Some(v) = value {
                env.retain(|(k, _)| *k != name);
                env.push((name.clone(), v));
            }
            declared.push(name);
        }
    }
    Some(MetaArgs { env, declared })
}

/// The FROM rules: UndefinedArgInFrom, RedundantTargetPlatform, FromPlatformFlagConstDisallowed
/// (in the build's global scope) and InvalidDefaultArgInFrom (with defaults only).
fn lint_from_lines(df: &Dockerfile, source: &str, input: &LintInput, out: &mut Vec<Warning>) {
    let lexer = Lexer::new(df.escape);
    let froms: Vec<(&Instruction, instructions::FromInstr)> = df
        .instructions
        .iter()
        .filter_map(|n| match instructions::from_node(n, source) {
            Ok(Typed::From(f)) => Some((n, f)),
            _ => None,
        })
        .collect();
    if let Some(meta) = meta_args(df, source, &lexer, Some(input.build_args)) {
        let known: Vec<&str> = meta
            .declared
            .iter()
            .map(String::as_str)
            .chain(meta.env.iter().map(|(k, _)| k.as_str()))
            .collect();
        for (node, from) in &froms {
            let mut words = vec![from.image.as_str()];
            words.extend(from.platform.as_ref().map(|p| p.value.as_str()));
            for word in words {
                let Ok(e) = lexer.expand_word(word, &meta.env) else {
                    continue;
                };
                for var in e.unset.iter().filter(|v| !known.contains(&v.as_str())) {
                    let mut message = format!("FROM argument '{var}' is not declared");
                    if let Some(s) = crate::suggest::buildkit_closest(var, known.iter().copied()) {
                        message.push_str(&format!(" (did you mean {s}?)"));
                    }
                    warn(
                        out,
                        "UndefinedArgInFrom",
                        message,
                        node.span_of(source, var),
                    );
                }
            }
            let Some(platform) = &from.platform else {
                continue;
            };
            let Ok(e) = lexer.expand_word(&platform.value, &meta.env) else {
                continue;
            };
            if e.used == ["TARGETPLATFORM"]
                && e.unset.is_empty()
                && Some(e.value.as_str()) == crate::shell::Env::get(&meta.env, "TARGETPLATFORM")
            {
                warn(
                    out,
                    "RedundantTargetPlatform",
                    format!(
                        "Setting platform to predefined {} in FROM is redundant as this is the default behavior",
                        platform.value
                    ),
                    platform.span,
                );
            }
            if e.used.is_empty() && e.unset.is_empty() {
                let crate::platform::Platform {
                    os,
                    architecture: arch,
                    ..
                } = crate::platform::host();
                let stage = from.name.as_deref().unwrap_or("").to_ascii_lowercase();
                if let Some(p) = Platform::parse(&e.value, os, arch) {
                    if !stage.contains(&p.os) && !stage.contains(&p.architecture) {
                        warn(
                            out,
                            "FromPlatformFlagConstDisallowed",
                            format!(
                                "FROM --platform flag should not use constant value {:?}",
                                e.value
                            ),
                            platform.span,
                        );
                    }
                }
            }
        }
    }
    let Some(defaults) = meta_args(df, source, &lexer, None) else {
        return;
    };
    for (node, from) in &froms {
        let Ok(e) = lexer.expand_word(&from.image, &defaults.env) else {
            return;
        };
        if !is_valid_image_name(&e.value) {
            warn(
                out,
                "InvalidDefaultArgInFrom",
                format!(
                    "Default value for ARG {} results in empty or invalid base image name",
                    from.image
                ),
                node.span_of(source, &from.image),
            );
        }
    }
}

/// InvalidDefinitionDescription (experimental): a comment right before a named FROM or an ARG
/// should start with the stage's or an argument's name.
fn lint_descriptions(node: &Instruction, typed: &Typed, out: &mut Vec<Warning>) {
    let (instruction, keys): (&str, Vec<&str>) = match typed {
        Typed::From(f) => match &f.name {
            Some(n) => ("FROM", vec![n.as_str()]),
            None => return,
        },
        Typed::Arg(args) => ("ARG", args.iter().map(|(k, _)| k.as_str()).collect()),
        _ => return,
    };
    let Some(last) = node.comments.last() else {
        return;
    };
    let lowered: Vec<String>;
    let keys = if instruction == "FROM" {
        // BuildKit compares with the stage name lower-cased.
        lowered = keys.iter().map(|k| k.to_ascii_lowercase()).collect();
        lowered.iter().map(String::as_str).collect()
    } else {
        keys
    };
    let Some(&first_key) = keys.first() else {
        return;
    };
    let first_word = last.split(' ').next().unwrap_or("");
    if keys.contains(&first_word) {
        return;
    }
    let example = if keys.len() > 1 {
        "<arg_key>"
    } else {
        first_key
    };
    warn(
        out,
        "InvalidDefinitionDescription",
        format!("Comment for {instruction} should follow the format: `# {example} <description>`"),
        node.cmd_span,
    );
}

/// CopyIgnoredFile: a COPY/ADD source from the context that the ignore file excludes (skipped,
/// as in BuildKit, when the ignore file has `!` patterns). Sources that use variables are not
/// looked at: their value depends on the stage.
fn lint_copy_ignored(
    source: &str,
    node: &Instruction,
    c: &instructions::CopyInstr,
    lexer: &Lexer,
    ignore: &IgnoreFile,
    out: &mut Vec<Warning>,
) {
    if c.from.is_some() || ignore.is_empty() || ignore.has_exclusions() {
        return;
    }
    let word = if c.is_add { "Add" } else { "Copy" };
    for raw in &c.sources {
        if lower::heredoc_ref(raw).is_some() && !c.heredocs.is_empty() {
            continue;
        }
        if c.is_add && crate::copy::is_url(raw) {
            continue;
        }
        let Ok(e) = lexer.expand_word(raw, &NoEnv) else {
            continue;
        };
        if !e.unset.is_empty() {
            continue;
        }
        let cleaned = crate::copy::clean(&e.value);
        let (shown, excluded) = if cleaned.is_empty() {
            // The context root: only patterns that exclude everything in it exclude it.
            let root_ignored = ignore
                .patterns()
                .any(|p| !p.reinclude && matches!(p.pattern, "*" | "**" | "**/*"));
            let shown = if e.value.starts_with('/') { "/" } else { "." };
            (shown.to_string(), root_ignored)
        } else {
            let shown = if e.value.starts_with('/') {
                ["/", &cleaned].concat()
            } else {
                cleaned.clone()
            };
            (shown, ignore.is_excluded(&cleaned))
        };
        if excluded {
            warn(
                out,
                "CopyIgnoredFile",
                format!("Attempting to {word} file {shown:?} that is excluded by .dockerignore"),
                node.span_of(source, raw),
            );
        }
    }
}

/// ExposeProtoCasing and ExposeInvalidFormat for one expanded EXPOSE word (from lowering,
/// which expands it).
pub(crate) fn expose_warnings(
    raw: &str,
    read: &crate::dockerfile::expose::PortSpec,
    span: Span,
) -> Vec<Warning> {
    let mut out = Vec::new();
    if read.proto_not_lowercase {
        warn(
            &mut out,
            "ExposeProtoCasing",
            format!("Defined protocol '{raw}' in EXPOSE instruction should be lowercase"),
            span,
        );
    }
    if read.has_host_part {
        warn(
            &mut out,
            "ExposeInvalidFormat",
            format!("EXPOSE instruction should not define an IP address or host-port mapping, found '{raw}'"),
            span,
        );
    }
    out
}

/// InvalidBaseImagePlatform: the base image `name` resolved to `actual`, the build is for
/// `expected` (OS and architecture compared, as BuildKit does).
pub(crate) fn base_image_platform(
    name: &str,
    expected: &Platform,
    actual: &Platform,
    span: Span,
) -> Option<Warning> {
    (expected.os != actual.os || expected.architecture != actual.architecture).then(|| Warning {
        rule: "InvalidBaseImagePlatform",
        message: format!(
            "Base image {name} was pulled with platform {:?}, expected {:?} for current build",
            actual.to_string(),
            expected.to_string()
        ),
        file: FileId(0),
        span,
    })
}

/// The syntax-level rules, in source order.
pub fn lint(df: &Dockerfile, source: &str, input: &LintInput) -> Vec<Warning> {
    let mut out = Vec::new();
    for w in &df.warnings {
        warn(
            &mut out,
            "NoEmptyContinuation",
            "Empty continuation line".into(),
            w.span,
        );
    }
    // ConsistentInstructionCasing: compare each keyword with the file's majority casing.
    let (mut upper, mut lower) = (0, 0);
    for n in &df.instructions {
        let k = keyword(source, n);
        if k == k.to_ascii_uppercase() {
            upper += 1;
        } else if k == k.to_ascii_lowercase() {
            lower += 1;
        }
    }
    let majority_upper = upper >= lower;
    let lexer = Lexer::new(df.escape);
    let quotes_only = Lexer::new(df.escape).with_unset_kept(true);
    let mut stages: HashMap<String, Span> = HashMap::new();
    // Per stage name: whether the stage set an absolute WORKDIR (a stage built FROM it
    // inherits that, as BuildKit's `workdirSet` does).
    let mut stage_workdir_set: HashMap<String, bool> = HashMap::new();
    let mut current_stage: Option<String> = None;
    let mut stage_seen = false;
    let mut per_stage: HashMap<&'static str, Span> = HashMap::new();
    let mut workdir_set = false;
    for n in &df.instructions {
        let typed = instructions::from_node(n, source).ok();
        if let Some(t) = &typed {
            lint_descriptions(n, t, &mut out);
        }
        let k = keyword(source, n);
        let consistent = if majority_upper {
            k == k.to_ascii_uppercase()
        } else {
            k == k.to_ascii_lowercase()
        };
        if !consistent {
            let want = if majority_upper {
                "uppercase"
            } else {
                "lowercase"
            };
            warn(
                &mut out,
                "ConsistentInstructionCasing",
                format!("Command '{k}' should match the case of the command majority ({want})"),
                n.cmd_span,
            );
        }
        match n.cmd.as_str() {
            "FROM" => {
                if let Some(name) = current_stage.take() {
                    stage_workdir_set.insert(name, workdir_set);
                }
                stage_seen = true;
                per_stage.clear();
                workdir_set = n
                    .value
                    .first()
                    .and_then(|base| stage_workdir_set.get(&base.to_ascii_lowercase()))
                    .copied()
                    .unwrap_or(false);
                if let [_, as_kw, name] = n.value.as_slice() {
                    current_stage = Some(name.to_ascii_lowercase());
                    let as_span = n.span_of(source, as_kw);
                    let as_written = source.get(as_span.start..as_span.end).unwrap_or(as_kw);
                    let from_upper = k == k.to_ascii_uppercase();
                    let from_lower = k == k.to_ascii_lowercase();
                    let as_upper = as_written == as_written.to_ascii_uppercase();
                    let as_lower = as_written == as_written.to_ascii_lowercase();
                    // A FROM of mixed case is ConsistentInstructionCasing's business.
                    if (from_upper && !as_upper) || (from_lower && !as_lower) {
                        warn(
                            &mut out,
                            "FromAsCasing",
                            format!("'{as_written}' and '{k}' keywords' casing do not match"),
                            as_span,
                        );
                    }
                    let span = n.span_of(source, name);
                    if name != &name.to_ascii_lowercase() {
                        warn(
                            &mut out,
                            "StageNameCasing",
                            format!("Stage name '{name}' should be lowercase"),
                            span,
                        );
                    }
                    let lower = name.to_ascii_lowercase();
                    if lower == "scratch" || lower == "context" {
                        warn(
                            &mut out,
                            "ReservedStageName",
                            format!("Stage name should not use the same name as reserved stage {lower:?}"),
                            span,
                        );
                    }
                    if stages.insert(lower.clone(), span).is_some() {
                        warn(
                            &mut out,
                            "DuplicateStageName",
                            format!("Duplicate stage name {lower:?}, stage names should be unique"),
                            span,
                        );
                    }
                }
            }
            "CMD" | "ENTRYPOINT" if !n.json => {
                warn(
                    &mut out,
                    "JSONArgsRecommended",
                    format!("JSON arguments recommended for {} to prevent unintended behavior related to OS signals", n.cmd),
                    n.args_span,
                );
            }
            "MAINTAINER" => {
                warn(
                    &mut out,
                    "MaintainerDeprecated",
                    "Maintainer instruction is deprecated in favor of using label".into(),
                    n.cmd_span,
                );
            }
            "WORKDIR" => {
                // The path as the build reads it: quotes removed; a variable left as written
                // (its value depends on the stage) counts as absolute.
                let dir = n
                    .value
                    .first()
                    .and_then(|d| quotes_only.expand_word(d, &NoEnv).ok())
                    .map(|e| e.value);
                if let Some(dir) = dir {
                    if !workdir_set && !dir.starts_with('/') && !dir.starts_with('$') {
                        warn(
                            &mut out,
                            "WorkdirRelativePath",
                            format!("Relative workdir {dir:?} can have unexpected results if the base image changes"),
                            n.args_span,
                        );
                    }
                    workdir_set = true;
                }
            }
            "ENV" | "LABEL" => {
                let args = source.get(n.args_span.start..n.args_span.end).unwrap_or("");
                let first = args.split_whitespace().next().unwrap_or("");
                if !first.contains('=') {
                    warn(
                        &mut out,
                        "LegacyKeyValueFormat",
                        format!("\"{} key=value\" should be used instead of legacy \"{} key value\" format", n.cmd, n.cmd),
                        n.args_span,
                    );
                }
                if n.cmd == "ENV" {
                    for pair in n.value.chunks(2) {
                        if is_secret_name(&pair[0]) {
                            warn(&mut out, "SecretsUsedInArgOrEnv", format!("Do not use ARG or ENV instructions for sensitive data (ENV \"{}\")", pair[0]), n.span_of(source, &pair[0]));
                        }
                    }
                }
            }
            "ARG" => {
                for word in &n.value {
                    let name = word.split('=').next().unwrap_or(word);
                    if is_secret_name(name) {
                        warn(&mut out, "SecretsUsedInArgOrEnv", format!("Do not use ARG or ENV instructions for sensitive data (ARG \"{name}\")"), n.span_of(source, name));
                    }
                }
            }
            _ => {}
        }
        if let (Some(Typed::Copy(c)), Some(ignore)) = (&typed, input.ignore) {
            lint_copy_ignored(source, n, c, &lexer, ignore, &mut out);
        }
        if stage_seen {
            let rule_key = match n.cmd.as_str() {
                "CMD" => Some("CMD"),
                "ENTRYPOINT" => Some("ENTRYPOINT"),
                "HEALTHCHECK" => Some("HEALTHCHECK"),
                _ => None,
            };
            if let Some(key) = rule_key {
                // BuildKit points at the earlier instruction: it is the one that is ignored.
                if let Some(previous) = per_stage.insert(key, n.cmd_span) {
                    warn(
                        &mut out,
                        "MultipleInstructionsDisallowed",
                        format!("Multiple {key} instructions should not be used in the same stage because only the last one will be used"),
                        previous,
                    );
                }
            }
        }
    }
    lint_from_lines(df, source, input, &mut out);
    out.sort_by_key(|w| w.span.start);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::lower::lower_all_stages;
    use crate::plan::BuildOptions;
    use crate::syntax::parse;

    /// A finding as (rule, message, line).
    type Finding = (&'static str, String, usize);

    /// Every finding of `kiln check` on `text` (with `ignore` as the .dockerignore), in
    /// source order; and the violation's rules, if any.
    fn run(
        text: &str,
        ignore: Option<&str>,
        build_args: &[(&str, &str)],
    ) -> (Vec<Finding>, Option<Vec<&'static str>>) {
        let df = parse(text).unwrap();
        let ignore = ignore.map(|i| IgnoreFile::parse(i).unwrap());
        let build_args: Vec<(String, String)> = build_args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let opts = BuildOptions {
            build_args: build_args.clone(),
            ..Default::default()
        };
        let input = LintInput {
            build_args: &build_args,
            ignore: ignore.as_ref(),
        };
        let mut warnings = lint(&df, text, &input);
        warnings.extend(lower_all_stages(&df, text, &opts).unwrap());
        let report = report(&df, warnings).unwrap();
        let line = |at: usize| text[..at.min(text.len())].matches('\n').count() + 1;
        let found = report
            .warnings
            .iter()
            .map(|w| (w.rule, w.message.clone(), line(w.span.start)))
            .collect();
        (found, report.violation().map(|v| v.rules))
    }

    fn findings(text: &str) -> Vec<(&'static str, String, usize)> {
        run(text, None, &[]).0
    }

    fn rules(text: &str) -> Vec<&'static str> {
        findings(text).into_iter().map(|(r, _, _)| r).collect()
    }

    fn one(rule: &'static str, message: &str, line: usize) -> Vec<(&'static str, String, usize)> {
        vec![(rule, message.to_string(), line)]
    }

    #[test]
    fn rule_urls() {
        assert_eq!(kebab("JSONArgsRecommended"), "json-args-recommended");
        assert_eq!(kebab("StageNameCasing"), "stage-name-casing");
        assert_eq!(kebab("UndefinedArgInFrom"), "undefined-arg-in-from");
    }

    #[test]
    fn undefined_arg_in_from() {
        // The documented example, bad then good.
        assert_eq!(
            findings("FROM node:22${VARIANT} AS jsbuilder\n"),
            one(
                "UndefinedArgInFrom",
                "FROM argument 'VARIANT' is not declared",
                1
            )
        );
        assert_eq!(
            findings("ARG VARIANT=\"-alpine3.20\"\nFROM node:22${VARIANT} AS jsbuilder\n"),
            []
        );
        // BuildKit's own cases: declared (with or without a value) and predefined names are
        // fine; a misspelt one gets a suggestion.
        assert_eq!(findings("ARG base=scratch\nFROM $base\n"), []);
        assert_eq!(findings("FROM --platform=$BUILDPLATFORM scratch\n"), []);
        assert_eq!(findings("ARG DEBUG\nFROM scratch${DEBUG}\n"), []);
        assert_eq!(findings("ARG DEBUG\nFROM scra${DEBUG:-tch}\n"), []);
        assert_eq!(
            findings("FROM --platform=$BULIDPLATFORM scratch\n"),
            one(
                "UndefinedArgInFrom",
                "FROM argument 'BULIDPLATFORM' is not declared (did you mean BUILDPLATFORM?)",
                1
            )
        );
        assert_eq!(
            findings(
                "ARG MY_OS=linux\nARG MY_ARCH=amd64\nFROM --platform=linux/${MYARCH} busybox\n"
            ),
            one(
                "UndefinedArgInFrom",
                "FROM argument 'MYARCH' is not declared (did you mean MY_ARCH?)",
                3
            )
        );
        assert_eq!(
            findings("ARG tag=latest\nFROM busybox:${tag}${version} AS b\n"),
            one(
                "UndefinedArgInFrom",
                "FROM argument 'version' is not declared",
                2
            )
        );
    }

    #[test]
    fn invalid_default_arg_in_from() {
        // The documented examples.
        assert_eq!(
            findings("ARG TAG\nFROM busybox:${TAG}\n"),
            one(
                "InvalidDefaultArgInFrom",
                "Default value for ARG busybox:${TAG} results in empty or invalid base image name",
                2
            )
        );
        assert_eq!(findings("ARG TAG=latest\nFROM busybox:${TAG}\n"), []);
        assert_eq!(findings("ARG VARIANT\nFROM busybox:stable${VARIANT}\n"), []);
        assert_eq!(findings("ARG TAG\nFROM alpine:${TAG:-3.14}\n"), []);
        // A --build-arg does not help: the defaults alone must give a valid name.
        let (found, _) = run(
            "ARG IMAGE\nFROM $IMAGE\n",
            None,
            &[("IMAGE", "busybox:latest")],
        );
        assert_eq!(
            found,
            one(
                "InvalidDefaultArgInFrom",
                "Default value for ARG $IMAGE results in empty or invalid base image name",
                2
            )
        );
        let (found, _) = run(
            "ARG SFX=\"box:\"\nFROM busy${SFX}\n",
            None,
            &[("SFX", "box:latest")],
        );
        assert_eq!(
            found,
            one(
                "InvalidDefaultArgInFrom",
                "Default value for ARG busy${SFX} results in empty or invalid base image name",
                2
            )
        );
    }

    #[test]
    fn redundant_target_platform() {
        assert_eq!(
            findings("FROM --platform=$TARGETPLATFORM alpine AS builder\nRUN apk add --no-cache git\n"),
            one(
                "RedundantTargetPlatform",
                "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior",
                1
            )
        );
        assert_eq!(
            findings("FROM --platform=${TARGETPLATFORM} scratch\n"),
            one(
                "RedundantTargetPlatform",
                "Setting platform to predefined ${TARGETPLATFORM} in FROM is redundant as this is the default behavior",
                1
            )
        );
        assert_eq!(
            findings("FROM alpine AS builder\nRUN apk add --no-cache git\n"),
            []
        );
        assert_eq!(
            findings(
                "# check=skip=RedundantTargetPlatform\nFROM --platform=$TARGETPLATFORM scratch\n"
            ),
            []
        );
    }

    #[test]
    fn from_platform_flag_const_disallowed() {
        assert_eq!(
            findings("FROM --platform=linux/amd64 alpine AS base\nRUN apk add --no-cache git\n"),
            one(
                "FromPlatformFlagConstDisallowed",
                "FROM --platform flag should not use constant value \"linux/amd64\"",
                1
            )
        );
        assert_eq!(findings("FROM alpine AS base\n"), []);
        assert_eq!(
            findings("FROM --platform=${BUILDPLATFORM} alpine AS base\n"),
            []
        );
        assert_eq!(
            findings(
                "FROM --platform=linux/amd64 alpine AS build_amd64\n\
                 FROM --platform=linux/arm64 alpine AS build_arm64\n\
                 FROM build_${TARGETARCH} AS build\n"
            ),
            []
        );
        assert_eq!(
            findings("FROM --platform=linux/amd64 scratch AS linux\n"),
            []
        );
    }

    #[test]
    fn copy_ignored_file() {
        // The documented example's ignore file: `*/tmp/*` needs a directory above `tmp`
        // (BuildKit's matcher does not exclude `tmp/helloworld.txt` with it either).
        let (found, _) = run(
            "FROM scratch\nCOPY ./src/tmp/helloworld.txt /helloworld.txt\n",
            Some("*/tmp/*\n"),
            &[],
        );
        assert_eq!(
            found,
            one(
                "CopyIgnoredFile",
                "Attempting to Copy file \"src/tmp/helloworld.txt\" that is excluded by .dockerignore",
                2
            )
        );
        for good in ["./forever/helloworld.txt", "./tmp/helloworld.txt"] {
            let text = format!("FROM scratch\nCOPY {good} /helloworld.txt\n");
            assert_eq!(run(&text, Some("*/tmp/*\n"), &[]).0, [], "{good}");
        }
        // BuildKit's own cases.
        let (found, _) = run(
            "\nFROM scratch\nCOPY Dockerfile .\nADD Dockerfile /windy\n",
            Some("\nDockerfile\n"),
            &[],
        );
        assert_eq!(
            found,
            vec![
                (
                    "CopyIgnoredFile",
                    "Attempting to Copy file \"Dockerfile\" that is excluded by .dockerignore"
                        .to_string(),
                    3
                ),
                (
                    "CopyIgnoredFile",
                    "Attempting to Add file \"Dockerfile\" that is excluded by .dockerignore"
                        .to_string(),
                    4
                ),
            ]
        );
        let (found, _) = run(
            "# check=skip=CopyIgnoredFile\n\nFROM scratch\nCOPY Dockerfile .\n",
            Some("Dockerfile\n"),
            &[],
        );
        assert_eq!(found, []);
        // Copies from a stage, and files a `!` pattern may bring back, are not looked at.
        let (found, _) = run(
            "FROM scratch AS base\nCOPY Dockerfile /foobar\nFROM base\nCOPY --from=base /foobar /Dockerfile\n",
            Some("foobar\n"),
            &[],
        );
        assert_eq!(found, []);
        let (found, _) = run(
            "FROM scratch\nCOPY ./Dockerfile .\n",
            Some("**\n!Dockerfile\n"),
            &[],
        );
        assert_eq!(found, []);
        // The context root: only a pattern excluding everything in it counts.
        let (found, _) = run("FROM scratch\nCOPY . .\n", Some(".*\n"), &[]);
        assert_eq!(found, []);
        let (found, _) = run("FROM scratch\nCOPY . .\n", Some("*\n"), &[]);
        assert_eq!(
            found,
            one(
                "CopyIgnoredFile",
                "Attempting to Copy file \".\" that is excluded by .dockerignore",
                2
            )
        );
    }

    #[test]
    fn invalid_definition_description_is_experimental() {
        let text = "# bar this is the bar\nARG foo=bar\n# BasE this is the BasE image\nFROM scratch AS base\n\
                    # definitely a bad comment\nARG version=latest\n# definitely a bad comment\nARG foo=baz bar=qux baz=quux\n";
        // Off unless asked for.
        assert_eq!(findings(text), []);
        let on = ["# check=experimental=InvalidDefinitionDescription\n", text].concat();
        assert_eq!(
            findings(&on),
            vec![
                (
                    "InvalidDefinitionDescription",
                    "Comment for ARG should follow the format: `# foo <description>`".to_string(),
                    3
                ),
                (
                    "InvalidDefinitionDescription",
                    "Comment for FROM should follow the format: `# base <description>`".to_string(),
                    5
                ),
                (
                    "InvalidDefinitionDescription",
                    "Comment for ARG should follow the format: `# version <description>`"
                        .to_string(),
                    7
                ),
                (
                    "InvalidDefinitionDescription",
                    "Comment for ARG should follow the format: `# <arg_key> <description>`"
                        .to_string(),
                    9
                ),
            ]
        );
        // Descriptions that name what they describe, an empty `#` in between, and comments on
        // other instructions are fine, even with every other rule skipped.
        let good = "# check=skip=all;experimental=InvalidDefinitionDescription\n# foo this is the foo\nARG foo=bar\n\n\
                    # base this is the base image\nFROM scratch AS base\n\n# version this is the version number\nARG version=latest\n\n\
                    # baz this is the baz\nARG foo=baz bar=qux baz=quux\n#\nARG bit=bat\n\n\
                    # comment for something other than ARG or FROM\nCOPY Dockerfile .\n";
        assert_eq!(findings(good), []);
        // The documented bad example (the comment is the last one before the instruction).
        let doc = "# check=experimental=all\n# a non-descriptive comment\nFROM scratch AS base\n\n# another non-descriptive comment\nARG VERSION=1\n";
        assert_eq!(
            rules(doc),
            [
                "InvalidDefinitionDescription",
                "InvalidDefinitionDescription"
            ]
        );
        let doc_good = "# check=experimental=all\n# base is a stage for compiling source\nFROM scratch AS base\n# VERSION This is the version number.\nARG VERSION=1\n";
        assert_eq!(findings(doc_good), []);
    }

    #[test]
    fn expose_proto_casing() {
        assert_eq!(
            findings("FROM alpine\nEXPOSE 80/TcP\n"),
            one(
                "ExposeProtoCasing",
                "Defined protocol '80/TcP' in EXPOSE instruction should be lowercase",
                2
            )
        );
        assert_eq!(findings("FROM alpine\nEXPOSE 80/tcp\n"), []);
        assert_eq!(
            rules("FROM scratch\nEXPOSE 80/TcP 8080/TCP 8080/udp\n"),
            ["ExposeProtoCasing", "ExposeProtoCasing"]
        );
    }

    #[test]
    fn expose_invalid_format() {
        assert_eq!(
            findings("FROM alpine\nEXPOSE 127.0.0.1:80:80\n"),
            one(
                "ExposeInvalidFormat",
                "EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:80:80'",
                2
            )
        );
        assert_eq!(
            findings("FROM alpine\nEXPOSE 80:80\n"),
            one(
                "ExposeInvalidFormat",
                "EXPOSE instruction should not define an IP address or host-port mapping, found '80:80'",
                2
            )
        );
        assert_eq!(findings("FROM alpine\nEXPOSE 80\n"), []);
        let found: Vec<String> =
            findings("FROM scratch\nEXPOSE 127.0.0.1:80:80 [::1]:8080:8080 5000:5000 8000\n")
                .into_iter()
                .map(|(_, m, _)| m)
                .collect();
        assert_eq!(
            found,
            [
                "EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:80:80'",
                "EXPOSE instruction should not define an IP address or host-port mapping, found '[::1]:8080:8080'",
                "EXPOSE instruction should not define an IP address or host-port mapping, found '5000:5000'",
            ]
        );
    }

    #[test]
    fn invalid_base_image_platform_wording() {
        let p = |s: &str| Platform::parse(s, "linux", "amd64").unwrap();
        let w = base_image_platform(
            "app:1",
            &p("linux/amd64"),
            &p("linux/arm64"),
            Span::new(5, 10),
        )
        .unwrap();
        assert_eq!(w.rule, "InvalidBaseImagePlatform");
        assert_eq!(
            w.message,
            "Base image app:1 was pulled with platform \"linux/arm64\", expected \"linux/amd64\" for current build"
        );
        // The variant alone is no mismatch.
        assert!(
            base_image_platform("a", &p("linux/arm/v7"), &p("linux/arm/v6"), Span::default())
                .is_none()
        );
    }

    /// A store holding one image, `base:1`, whose config names `platform`.
    struct OneImage(Platform);

    impl crate::plan::ImageResolver for OneImage {
        fn resolve(
            &self,
            reference: &str,
        ) -> Result<Option<crate::plan::ResolvedImage>, crate::plan::ImageLookupError> {
            Ok((reference == "base:1").then(|| crate::plan::ResolvedImage {
                digest: format!("sha256:{}", "ab".repeat(32)),
                config: Default::default(),
                history: Vec::new(),
                platform: Some(self.0.clone()),
            }))
        }
    }

    #[test]
    fn invalid_base_image_platform_fires_where_the_base_is_resolved() {
        let crate::platform::Platform {
            os,
            architecture: arch,
            ..
        } = crate::platform::host();
        let other = if arch == "amd64" { "arm64" } else { "amd64" };
        let lowered = |platform: Platform| {
            let text = "FROM base:1\nENV foo=bar\n";
            let df = parse(text).unwrap();
            let opts = BuildOptions {
                skip_context: true,
                ..Default::default()
            };
            crate::dockerfile::lower(
                &df,
                text,
                Default::default(),
                &Default::default(),
                &opts,
                &OneImage(platform),
            )
            .unwrap()
            .warnings
        };
        let warnings = lowered(Platform::from_config(os, other, ""));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].rule, "InvalidBaseImagePlatform");
        assert_eq!(
            warnings[0].message,
            format!("Base image base:1 was pulled with platform \"{os}/{other}\", expected \"{os}/{arch}\" for current build")
        );
        assert!(lowered(Platform::from_config(os, arch, "")).is_empty());
    }

    #[test]
    fn workdir_relative_path_reads_the_unquoted_path() {
        assert_eq!(findings("FROM scratch\nWORKDIR \"/shared-dir-1\"\n"), []);
        assert_eq!(findings("FROM scratch\nWORKDIR '/x'\n"), []);
        assert_eq!(
            findings("FROM scratch\nWORKDIR app/\n"),
            one(
                "WorkdirRelativePath",
                "Relative workdir \"app/\" can have unexpected results if the base image changes",
                2
            )
        );
        assert_eq!(
            findings("FROM scratch\nWORKDIR \"app\"\n"),
            one(
                "WorkdirRelativePath",
                "Relative workdir \"app\" can have unexpected results if the base image changes",
                2
            )
        );
        // A stage inherits its base stage's absolute WORKDIR; only the first one counts.
        assert_eq!(
            findings("FROM scratch AS a\nWORKDIR /app\n\nFROM a AS b\nWORKDIR subdir/\n"),
            []
        );
        assert_eq!(
            rules("FROM scratch\nWORKDIR a\nWORKDIR b\n"),
            ["WorkdirRelativePath"]
        );
        assert_eq!(
            findings("FROM scratch\n# check=skip=WorkdirRelativePath\nWORKDIR app/\n"),
            []
        );
    }

    #[test]
    fn check_directive_skips_and_errors() {
        let body = "FROM scratch as base\ncopy Dockerfile .\n";
        assert_eq!(
            run(&["#check=skip=all\n", body].concat(), None, &[]),
            (vec![], None)
        );
        assert_eq!(
            run(&["#check=skip=all;error=true\n", body].concat(), None, &[]),
            (vec![], None)
        );
        assert_eq!(
            run(
                &[
                    "#check=skip=ConsistentInstructionCasing,FromAsCasing;error=true\n",
                    body
                ]
                .concat(),
                None,
                &[]
            ),
            (vec![], None)
        );
        let (found, violation) = run(
            &["#check=skip=ConsistentInstructionCasing;error=true\n", body].concat(),
            None,
            &[],
        );
        assert_eq!(
            found,
            one(
                "FromAsCasing",
                "'as' and 'FROM' keywords' casing do not match",
                2
            )
        );
        assert_eq!(violation, Some(vec!["FromAsCasing"]));
        let (found, violation) = run(body, None, &[]);
        assert_eq!(
            found,
            vec![
                (
                    "FromAsCasing",
                    "'as' and 'FROM' keywords' casing do not match".to_string(),
                    1
                ),
                (
                    "ConsistentInstructionCasing",
                    "Command 'copy' should match the case of the command majority (uppercase)"
                        .to_string(),
                    2
                ),
            ]
        );
        assert_eq!(violation, None);
        let e = CheckViolation {
            rules: vec!["A", "B"],
            span: None,
        };
        assert_eq!(e.to_string(), "lint violation found for rules: A, B");
    }

    #[test]
    fn check_comments_apply_to_their_instruction_only() {
        let text = "FROM scratch\nARG SECRET_PASSPHRASE\n# check=skip=SecretsUsedInArgOrEnv // allow secret in environment\nENV password=bar\n\
                    # check=skip=all // is local to only this instruction\nARG alternate_password\nENV apikey=x\n";
        assert_eq!(
            findings(text),
            vec![
                ("SecretsUsedInArgOrEnv", "Do not use ARG or ENV instructions for sensitive data (ARG \"SECRET_PASSPHRASE\")".to_string(), 2),
                ("SecretsUsedInArgOrEnv", "Do not use ARG or ENV instructions for sensitive data (ENV \"apikey\")".to_string(), 7),
            ]
        );
    }

    #[test]
    fn check_options_are_read_as_buildkit_reads_them() {
        let c = CheckConfig::parse(" skip = A, B ;error=TRUE").unwrap();
        assert_eq!(c.skip, ["A", "B"].map(String::from).into_iter().collect());
        assert!(c.error && !c.skip_all);
        assert!(CheckConfig::parse("skip=all").unwrap().skip_all);
        assert_eq!(
            CheckConfig::parse("skip").unwrap_err(),
            "invalid check option \"skip\""
        );
        assert_eq!(
            CheckConfig::parse("nope=1").unwrap_err(),
            "invalid check option \"nope\""
        );
        assert_eq!(
            CheckConfig::parse("error=yes").unwrap_err(),
            "failed to parse check option \"error=yes\": strconv.ParseBool: parsing \"yes\": invalid syntax"
        );
        let df = parse("# check=bogus\nFROM scratch\n").unwrap();
        assert_eq!(
            report(&df, Vec::new()).unwrap_err().message,
            "failed to parse check options: invalid check option \"bogus\""
        );
    }

    #[test]
    fn existing_rules_keep_buildkits_wording() {
        // Lowering refuses duplicate names, so this one is the syntax-level rule alone.
        let text = "FROM a AS x\nFROM b AS x\n";
        let dup: Vec<_> = lint(&parse(text).unwrap(), text, &LintInput::default())
            .into_iter()
            .map(|w| {
                (
                    w.rule,
                    w.message,
                    text[..w.span.start].matches('\n').count() + 1,
                )
            })
            .collect();
        assert_eq!(
            dup,
            one(
                "DuplicateStageName",
                "Duplicate stage name \"x\", stage names should be unique",
                2
            )
        );
        assert_eq!(
            findings("FROM a AS scratch\n"),
            one(
                "ReservedStageName",
                "Stage name should not use the same name as reserved stage \"scratch\"",
                1
            )
        );
        assert_eq!(
            findings("FROM a\nRUN a \\\n\n  b\n"),
            one("NoEmptyContinuation", "Empty continuation line", 3)
        );
        // The earlier CMD is the one BuildKit points at: it is ignored.
        assert_eq!(
            findings("FROM a\nCMD [\"a\"]\nCMD [\"b\"]\n"),
            one(
                "MultipleInstructionsDisallowed",
                "Multiple CMD instructions should not be used in the same stage because only the last one will be used",
                2
            )
        );
    }
}
