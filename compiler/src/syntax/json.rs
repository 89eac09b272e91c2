//! The `kiln parse --json` shape: one object per instruction mirroring BuildKit's parse tree
//! (`cmd`, `sub_cmd`, `json`, `flags`, `value`, `start_line`, `end_line`, `heredocs`), the
//! same fields the conformance oracle reports.
//!
//! For ONBUILD it shows BuildKit's node as a reader of that tree sees it: `cmd` "ONBUILD",
//! `sub_cmd` the inner keyword, the ONBUILD's own flags, and the inner instruction's `json` and
//! `value`; heredocs of the inner instruction are listed here since BuildKit attaches them to
//! the ONBUILD node. Must not: add meaning (no expansion, no validation).

use serde_json::{json, Value};

use super::ast::{Dockerfile, Heredoc, Instruction};

/// BuildKit's parse tree of `df` as JSON: an array with one object per instruction.
pub fn to_buildkit_json(df: &Dockerfile) -> Value {
    Value::Array(df.instructions.iter().map(instruction_json).collect())
}

fn instruction_json(i: &Instruction) -> Value {
    // The node whose arguments BuildKit's tree shows: the inner one for ONBUILD.
    let shown = i.sub.as_deref().unwrap_or(i);
    json!({
        "cmd": i.cmd,
        "sub_cmd": i.sub.as_ref().map(|s| s.cmd.as_str()),
        "json": shown.json,
        "flags": i.flags.iter().map(|f| f.raw.as_str()).collect::<Vec<_>>(),
        "value": shown.value,
        "start_line": i.start_line,
        "end_line": i.end_line,
        "heredocs": shown.heredocs.iter().map(heredoc_json).collect::<Vec<_>>(),
    })
}

fn heredoc_json(h: &Heredoc) -> Value {
    json!({
        "name": h.name,
        "file_descriptor": h.file_descriptor,
        "content": h.content,
        "expand": h.expand,
        "chomp": h.chomp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::parse;

    #[test]
    fn onbuild_shows_inner_arguments_and_outer_flags() {
        let df = parse("ONBUILD --x=1 RUN --mount=a [\"a\"]\nFROM b AS c").unwrap();
        let v = to_buildkit_json(&df);
        assert_eq!(v[0]["cmd"], "ONBUILD");
        assert_eq!(v[0]["sub_cmd"], "RUN");
        assert_eq!(v[0]["flags"], json!(["--x=1"]));
        assert_eq!(v[0]["json"], true);
        assert_eq!(v[0]["value"], json!(["a"]));
        assert_eq!(v[1]["sub_cmd"], Value::Null);
        assert_eq!(v[1]["value"], json!(["b", "AS", "c"]));
    }

    #[test]
    fn heredocs_are_listed_as_written() {
        let df = parse("RUN <<-EOF\n\tx\n\tEOF\n").unwrap();
        let v = to_buildkit_json(&df);
        assert_eq!(
            v[0]["heredocs"],
            json!([{"name": "EOF", "file_descriptor": 0, "content": "\tx\n", "expand": true, "chomp": true}])
        );
    }
}
