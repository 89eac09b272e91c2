//! `kiln parse [--json] FILE`: print a Dockerfile's syntax tree, either readable (one line per
//! instruction, heredoc bodies indented below) or as BuildKit-shaped JSON. Parse warnings go
//! to standard error. Must not: interpret the Dockerfile beyond the syntax tree.

use std::io::{self, Write};

use kiln_compiler::source::{read_dockerfile, SourceText};
use kiln_compiler::syntax::{self, json::to_buildkit_json, Dockerfile, Instruction, Span};
use miette::{IntoDiagnostic, Report};

use crate::cli::ParseArgs;

/// A parse warning shown with its place in the file.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
#[diagnostic(
    severity(Warning),
    help("remove it: BuildKit warns that empty continuation lines will become errors")
)]
struct ParseWarningReport {
    message: String,
    #[label("inside a continued instruction")]
    span: Span,
}

pub fn run(args: ParseArgs) -> miette::Result<()> {
    let source = read_dockerfile(&args.file).map_err(Report::new)?;
    let df = syntax::parse(&source.text)
        .map_err(|e| Report::new(e).with_source_code(source.named_source()))?;
    for w in &df.warnings {
        let report = Report::new(ParseWarningReport {
            message: w.message.clone(),
            span: w.span,
        })
        .with_source_code(source.named_source());
        eprintln!("{report:?}");
    }
    let out = if args.json {
        let mut s = serde_json::to_string_pretty(&to_buildkit_json(&df)).into_diagnostic()?;
        s.push('\n');
        s
    } else {
        render_tree(&source, &df)
    };
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // `kiln parse Dockerfile | head` is fine.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.into_diagnostic(),
    }
}

/// The readable tree: directives, then one line per instruction (`3-5  RUN [--flag] "arg"`),
/// heredocs indented below their instruction with their body lines.
fn render_tree(source: &SourceText, df: &Dockerfile) -> String {
    let mut out = String::new();
    for d in &df.directives {
        out.push_str(&format!("# {}={}\n", d.name, d.value));
    }
    let line_label = |i: &Instruction| {
        if i.start_line == i.end_line {
            i.start_line.to_string()
        } else {
            format!("{}-{}", i.start_line, i.end_line)
        }
    };
    let width = df
        .instructions
        .iter()
        .map(|i| line_label(i).len())
        .max()
        .unwrap_or(1);
    for instruction in &df.instructions {
        let label = line_label(instruction);
        out.push_str(&format!("{label:>width$}  {}\n", describe(instruction)));
        let heredocs = instruction
            .sub
            .as_deref()
            .map_or(&instruction.heredocs, |s| &s.heredocs);
        for h in heredocs {
            let mut notes = Vec::new();
            if h.file_descriptor != 0 {
                notes.push(format!("fd {}", h.file_descriptor));
            }
            if h.chomp {
                notes.push("leading tabs removed".to_owned());
            }
            if !h.expand {
                notes.push("no variable expansion".to_owned());
            }
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!("  ({})", notes.join(", "))
            };
            out.push_str(&format!("{:width$}    <<{}{notes}\n", "", h.name));
            for line in h.body().lines() {
                out.push_str(&format!("{:width$}    │ {line}\n", ""));
            }
        }
    }
    if df.instructions.is_empty() {
        out.push_str(&format!("{}: no instructions\n", source.name));
    }
    out
}

/// `CMD [flags] args`, with ONBUILD's inner instruction after it.
fn describe(i: &Instruction) -> String {
    let mut s = i.cmd.clone();
    if !i.flags.is_empty() {
        let flags: Vec<String> = i.flags.iter().map(|f| quote_if_needed(&f.raw)).collect();
        s.push_str(&format!(" [{}]", flags.join(" ")));
    }
    if let Some(sub) = &i.sub {
        s.push(' ');
        s.push_str(&describe(sub));
        return s;
    }
    if i.json {
        let items: Vec<String> = i.value.iter().map(|v| json_string(v)).collect();
        s.push_str(&format!(" [{}]", items.join(", ")));
    } else {
        for v in &i.value {
            s.push(' ');
            s.push_str(&json_string(v));
        }
    }
    s
}

fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

fn quote_if_needed(s: &str) -> String {
    if s.is_empty()
        || s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"')
    {
        json_string(s)
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(text: &str) -> String {
        let source = SourceText {
            name: "Dockerfile".into(),
            text: text.into(),
        };
        let df = syntax::parse(&source.text).expect("test Dockerfile parses");
        render_tree(&source, &df)
    }

    #[test]
    fn one_line_per_instruction_with_flags_forms_and_heredocs() {
        let out = tree(
            "# syntax=docker/dockerfile:1\nFROM a AS b\nRUN --mount=type=cache,target=/x \\\n  apt-get update\nCMD [\"a\", \"b c\"]\nONBUILD COPY --chown=\"u g\" x y\nCOPY 3<<-'EOF' /f\n\thello\n\tEOF\n",
        );
        let want = "\
# syntax=docker/dockerfile:1
  2  FROM \"a\" \"AS\" \"b\"
3-4  RUN [--mount=type=cache,target=/x] \"apt-get update\"
  5  CMD [\"a\", \"b c\"]
  6  ONBUILD COPY [\"--chown=u g\"] \"x\" \"y\"
7-9  COPY \"3<<-'EOF'\" \"/f\"
       <<EOF  (fd 3, leading tabs removed, no variable expansion)
       │ hello
";
        assert_eq!(out, want);
    }
}
