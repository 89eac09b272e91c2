//! Conformance of `kiln_compiler::syntax::parse` with BuildKit's own parser.
//!
//! The oracle is BuildKit v0.12.5's parser (PyPI package `dockerfile`); its answers are stored
//! as `expected/<name>.json` next to the shared corpus (`KILN_CONFORMANCE_CORPUS`) and as
//! `expected.json` next to each hand-written case in `tests/parse_cases/<case>/Dockerfile`.
//! Every file must agree on ok/error (and the error message); when ok, every instruction must
//! agree on cmd, sub_cmd, json, flags, value, start_line, end_line and heredocs. All mismatches
//! are collected and reported together.
//!
//! The oracle's documented limits (corpus README), each handled below where it applies:
//! - `cmd` keeps the source's case (we upper-case): compared after Go's lower-casing, and an
//!   empty keyword is `null` there.
//! - heredoc `expand`/`chomp` are not exposed: only name, descriptor and content are compared
//!   (content as the tree holds it: `<<-` bodies keep their tabs in both trees).
//! - the oracle passes strings through C strings, so a NUL character (e.g. from a JSON `\u0000`
//!   escape) cuts a value short there: our strings are cut at their first NUL before comparing.
//! - for ONBUILD the oracle reads heredocs from the inner node, which never has any (BuildKit
//!   attaches them to the ONBUILD node): an empty oracle list is accepted there.

use std::path::{Path, PathBuf};

use kiln_compiler::source::read_dockerfile;
use kiln_compiler::syntax::{json::to_buildkit_json, parse};
use serde_json::Value;

/// One file to check and the oracle's answer for it.
struct Case {
    name: String,
    dockerfile: PathBuf,
    expected: PathBuf,
}

fn corpus_cases(root: &Path) -> Vec<Case> {
    let mut cases = Vec::new();
    let expected = root.join("expected");
    let mut real: Vec<PathBuf> = std::fs::read_dir(root.join("real"))
        .expect("corpus has real/")
        .map(|e| e.expect("readable corpus entry").path())
        .collect();
    real.sort();
    for path in real {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        cases.push(Case {
            expected: expected.join(format!("{name}.json")),
            name,
            dockerfile: path,
        });
    }
    for top in ["buildkit-testfiles", "buildkit-testfiles-negative"] {
        let Ok(dir) = std::fs::read_dir(root.join(top)) else {
            continue;
        };
        let mut dirs: Vec<PathBuf> = dir.map(|e| e.unwrap().path()).collect();
        dirs.sort();
        for case_dir in dirs {
            let dockerfile = case_dir.join("Dockerfile");
            if !dockerfile.is_file() {
                continue;
            }
            let case = case_dir.file_name().unwrap().to_string_lossy().into_owned();
            let name = format!("{top}__{case}");
            cases.push(Case {
                expected: expected.join(format!("{name}.json")),
                name,
                dockerfile,
            });
        }
    }
    cases
}

fn hand_written_cases() -> Vec<Case> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parse_cases");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/parse_cases exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Dockerfile").is_file())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|dir| Case {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            dockerfile: dir.join("Dockerfile"),
            expected: dir.join("expected.json"),
        })
        .collect()
}

/// Go's `strings.ToLower` (simple case mapping), which BuildKit uses to recognise keywords:
/// our canonical upper-case names compare equal to the oracle's source spelling under it.
fn go_lowercase(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '\u{130}' => 'i'.to_lowercase(),
            c => c.to_lowercase(),
        })
        .collect()
}

/// A list of strings as the oracle reports it: each string cut at its first NUL.
fn cut_at_nul(list: &Value) -> Value {
    match list.as_array() {
        Some(items) => Value::Array(
            items
                .iter()
                .map(|v| match v.as_str() {
                    Some(s) => Value::from(s.split('\0').next().unwrap_or("")),
                    None => v.clone(),
                })
                .collect(),
        ),
        None => list.clone(),
    }
}

/// Every difference between our parse of `case` and the oracle's, as readable lines.
fn differences(case: &Case) -> Vec<String> {
    let mut out = Vec::new();
    let expected: Value = match std::fs::read_to_string(&case.expected)
        .map_err(|e| e.to_string())
        .and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => return vec![format!("cannot read {}: {e}", case.expected.display())],
    };
    let source = match read_dockerfile(&case.dockerfile) {
        Ok(s) => s,
        Err(e) => return vec![format!("cannot read the Dockerfile: {e}")],
    };
    let ours = parse(&source.text);
    let want_ok = expected["ok"].as_bool().unwrap_or(false);
    let df = match (ours, want_ok) {
        (Err(e), false) => {
            if expected["error"].as_str() != Some(e.message.as_str()) {
                out.push(format!(
                    "both reject, but with different messages: ours {:?}, BuildKit {}",
                    e.message, expected["error"]
                ));
            }
            return out;
        }
        (Err(e), true) => return vec![format!("we reject ({}), BuildKit parses it", e.message)],
        (Ok(_), false) => {
            return vec![format!(
                "we parse it, BuildKit rejects it: {}",
                expected["error"]
            )]
        }
        (Ok(df), true) => df,
    };
    let got = to_buildkit_json(&df);
    let got = got.as_array().cloned().unwrap_or_default();
    let want = expected["instructions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if got.len() != want.len() {
        out.push(format!(
            "{} instructions, BuildKit has {}",
            got.len(),
            want.len()
        ));
    }
    for (n, (g, w)) in got.iter().zip(&want).enumerate() {
        let at = format!("instruction {} (line {})", n + 1, w["start_line"]);
        let cmd_of = |v: &Value| go_lowercase(v.as_str().unwrap_or(""));
        if cmd_of(&g["cmd"]) != cmd_of(&w["cmd"]) {
            out.push(format!("{at}: cmd {} vs {}", g["cmd"], w["cmd"]));
        }
        if cmd_of(&g["sub_cmd"]) != cmd_of(&w["sub_cmd"]) {
            out.push(format!(
                "{at}: sub_cmd {} vs {}",
                g["sub_cmd"], w["sub_cmd"]
            ));
        }
        for field in ["json", "start_line", "end_line"] {
            if g[field] != w[field] {
                out.push(format!("{at}: {field} {} vs {}", g[field], w[field]));
            }
        }
        for field in ["flags", "value"] {
            if cut_at_nul(&g[field]) != w[field] {
                out.push(format!("{at}: {field} {} vs {}", g[field], w[field]));
            }
        }
        let gh = g["heredocs"].as_array().cloned().unwrap_or_default();
        let wh = w["heredocs"].as_array().cloned().unwrap_or_default();
        let onbuild_limit = !w["sub_cmd"].is_null() && wh.is_empty();
        if onbuild_limit {
            continue;
        }
        if gh.len() != wh.len() {
            out.push(format!("{at}: {} heredocs vs {}", gh.len(), wh.len()));
            continue;
        }
        for (h, (gd, wd)) in gh.iter().zip(&wh).enumerate() {
            if gd["name"] != wd["name"] || gd["file_descriptor"] != wd["file_descriptor"] {
                out.push(format!(
                    "{at}: heredoc {h} is {}/{} vs {}/{}",
                    gd["name"], gd["file_descriptor"], wd["name"], wd["file_descriptor"]
                ));
            }
            if gd["content"] != wd["content"] {
                out.push(format!(
                    "{at}: heredoc {h} content {} vs {}",
                    gd["content"], wd["content"]
                ));
            }
        }
    }
    out
}

/// Check every case; panic with all differences (file by file) if any.
fn check_all(cases: &[Case]) {
    let mut failed = Vec::new();
    for case in cases {
        let diffs = differences(case);
        if !diffs.is_empty() {
            failed.push(format!("{}:\n    {}", case.name, diffs.join("\n    ")));
        }
    }
    println!(
        "{} of {} files agree with BuildKit",
        cases.len() - failed.len(),
        cases.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {} files differ from BuildKit:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
}

#[test]
fn corpus_matches_buildkit() {
    let Some(root) = std::env::var_os("KILN_CONFORMANCE_CORPUS") else {
        let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(!in_ci, "KILN_CONFORMANCE_CORPUS must be set in CI");
        println!("skipped: KILN_CONFORMANCE_CORPUS is not set (e.g. ../shared/corpus)");
        return;
    };
    // CI gives a path relative to the workspace root; tests run in the crate directory.
    let given = PathBuf::from(&root);
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = [given.clone(), workspace.join(&given)]
        .into_iter()
        .find(|p| p.join("expected").is_dir())
        .unwrap_or_else(|| panic!("KILN_CONFORMANCE_CORPUS={given:?}: no corpus there"));
    let cases = corpus_cases(&root);
    assert!(!cases.is_empty(), "no corpus files under {root:?}");
    check_all(&cases);
}

#[test]
fn hand_written_cases_match_buildkit() {
    let cases = hand_written_cases();
    assert!(
        cases.len() >= 10,
        "expected the hand-written cases, found {}",
        cases.len()
    );
    check_all(&cases);
}
