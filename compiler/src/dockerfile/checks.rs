//! Build checks: BuildKit's linter rules, reported as warnings by `kiln check` (and shown by
//! `kiln build`). Rules that need expansion (UndefinedVar) come from lowering; the rest read
//! the syntax tree here.
//! Must not: fail a build. A rule finding something is a warning, never an error.

use std::collections::HashMap;

use crate::dockerfile::lower::Warning;
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

fn warn(out: &mut Vec<Warning>, rule: &'static str, message: String, span: Span) {
    out.push(Warning {
        rule,
        message,
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

/// The syntax-level rules, in source order.
pub fn lint(df: &Dockerfile, source: &str) -> Vec<Warning> {
    let mut out = Vec::new();
    for w in &df.warnings {
        warn(
            &mut out,
            "NoEmptyContinuation",
            "Empty continuation lines will become errors in a future release".into(),
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
    let mut stages: HashMap<String, Span> = HashMap::new();
    let mut stage_seen = false;
    let mut per_stage: HashMap<&'static str, usize> = HashMap::new();
    let mut workdir_absolute = false;
    for n in &df.instructions {
        let k = keyword(source, n);
        let consistent = if majority_upper {
            k == k.to_ascii_uppercase()
        } else {
            k == k.to_ascii_lowercase()
        };
        if !consistent {
            let want = if majority_upper {
                k.to_ascii_uppercase()
            } else {
                k.to_ascii_lowercase()
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
                stage_seen = true;
                per_stage.clear();
                workdir_absolute = false;
                if let [_, as_kw, name] = n.value.as_slice() {
                    let as_span = n.span_of(source, as_kw);
                    let as_written = source.get(as_span.start..as_span.end).unwrap_or(as_kw);
                    let from_upper = k == k.to_ascii_uppercase();
                    let as_upper = as_written == as_written.to_ascii_uppercase();
                    if from_upper != as_upper {
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
                            format!("'{name}' is reserved and should not be used as a stage name"),
                            span,
                        );
                    }
                    if stages.insert(lower, span).is_some() {
                        warn(
                            &mut out,
                            "DuplicateStageName",
                            format!("Duplicate stage name '{name}', stage names should be unique"),
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
                if let Some(dir) = n.value.first() {
                    if dir.starts_with('/') || dir.starts_with('$') {
                        workdir_absolute = true;
                    } else if !workdir_absolute {
                        warn(
                            &mut out,
                            "WorkdirRelativePath",
                            format!("Relative workdir \"{dir}\" can have unexpected results if the base image changes"),
                            n.args_span,
                        );
                    }
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
        if stage_seen {
            let rule_key = match n.cmd.as_str() {
                "CMD" => Some("CMD"),
                "ENTRYPOINT" => Some("ENTRYPOINT"),
                "HEALTHCHECK" => Some("HEALTHCHECK"),
                _ => None,
            };
            if let Some(key) = rule_key {
                let count = per_stage.entry(key).or_insert(0);
                *count += 1;
                if *count > 1 {
                    warn(
                        &mut out,
                        "MultipleInstructionsDisallowed",
                        format!("Multiple {key} instructions should not be used in the same stage because only the last one will be used"),
                        n.cmd_span,
                    );
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::kebab;

    #[test]
    fn rule_urls() {
        assert_eq!(kebab("JSONArgsRecommended"), "json-args-recommended");
        assert_eq!(kebab("StageNameCasing"), "stage-name-casing");
    }
}
