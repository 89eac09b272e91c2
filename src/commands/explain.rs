//! `kiln explain`, the reasons `kiln build --explain` prints, and `--depfile`.
//!
//! Build records come from the store (`Store::last_records`); the comparison is the
//! compiler's (`plan::explain`). This module loads the listing chunks a comparison needs,
//! prints the reasons, and writes Make dependency files.
//! Must not: compare records itself or write anything but the depfile.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use kiln_compiler::frontend::FrontendInput;
use kiln_compiler::plan::explain::{self, Reason};
use kiln_compiler::plan::record::{self, BuildRecord};
use kiln_compiler::plan::{Op, Plan};
use kiln_runtime::store::Store;
use miette::Result;

use crate::cli::ExplainArgs;

/// The file the build reads its definition from: the kiln program when the input names one
/// (`build.kiln`, `-f x.kiln`), else the Dockerfile.
pub fn build_file(input: &FrontendInput) -> PathBuf {
    kiln_compiler::frontend::kiln_program(input)
        .unwrap_or_else(|| kiln_compiler::frontend::dockerfile_path(input))
}

/// What identifies "the same target" in the store: the build file's absolute path (for
/// standard input: the context's, and `-`) and `--target`.
pub fn target_id(input: &FrontendInput, target: Option<&str>) -> String {
    let df = build_file(input);
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let name = if df.as_os_str() == "-" {
        format!("{}/-", abs(&input.context).display())
    } else {
        abs(&df).display().to_string()
    };
    record::target_id(&name, target.map(|t| t.to_ascii_lowercase()).as_deref())
}

/// The reasons for every step of `new` against `old`, loading the earlier build's listing
/// chunks that `new` does not share from the store.
pub fn reasons(
    store: &Store,
    old: Option<&BuildRecord>,
    new: &BuildRecord,
    new_chunks: &BTreeMap<String, Vec<u8>>,
) -> Result<BTreeMap<usize, Vec<Reason>>> {
    let mut loaded: HashMap<String, Vec<u8>> = HashMap::new();
    if let Some(old) = old {
        for digest in explain::chunks_to_load(old, new) {
            if let Some(bytes) = store.read_chunk(&digest)? {
                loaded.insert(digest, bytes);
            }
        }
    }
    // A chunk the store no longer has makes that listing's reason "context changed, the
    // earlier listing is gone".
    let get = |d: &str| -> Option<Vec<u8>> { new_chunks.get(d).or_else(|| loaded.get(d)).cloned() };
    Ok(explain::explain(old, new, &get))
}

/// `kiln explain`: the last build of the target against the one before.
pub fn run(root: Option<PathBuf>, args: ExplainArgs) -> Result<()> {
    let store = Store::open(kiln_runtime::store::default_root(root)?)?;
    let input = FrontendInput {
        context: args.context.clone(),
        dockerfile: args.file.clone(),
    };
    let target = target_id(&input, args.target.as_deref());
    let mut last = store.last_records(&target, 2)?;
    if last.is_empty() {
        miette::bail!(
            help = "build it first (kiln build with the same -f and --target); kiln explain compares its last two builds",
            "no build of {} (target {}) is recorded in the store {}",
            build_file(&input).display(),
            args.target.as_deref().unwrap_or("the last stage"),
            store.root().display()
        );
    }
    let new = last.remove(0);
    let old = last.pop();
    let mut chunks = BTreeMap::new();
    for l in new.nodes.iter().filter_map(|n| n.context.as_ref()) {
        for c in &l.chunks {
            if let Some(bytes) = store.read_chunk(c)? {
                chunks.insert(c.clone(), bytes);
            }
        }
    }
    let all = reasons(&store, old.as_ref(), &new, &chunks)?;
    let ran: Vec<(usize, &Vec<Reason>)> = all
        .iter()
        .filter(|(id, _)| new.nodes[**id].cached != Some(true))
        .map(|(id, r)| (*id, r))
        .collect();
    if args.json {
        let steps: Vec<serde_json::Value> = ran
            .iter()
            .map(|(id, r)| {
                let n = &new.nodes[*id];
                serde_json::json!({
                    "id": id, "stage": n.stage, "line": n.line, "text": n.text,
                    "reason": explain::render_all(r).join("\n"), "causes": r,
                })
            })
            .collect();
        let out = serde_json::json!({
            "image": new.image,
            "earlier_image": old.as_ref().and_then(|o| o.image.clone()),
            "steps": steps,
        });
        println!("{out}");
        return Ok(());
    }
    let cached = all.len() - ran.len();
    println!(
        "last build: manifest {} ({} steps, {cached} cached){}",
        new.image.as_deref().unwrap_or("(no image recorded)"),
        all.len(),
        match &old {
            Some(o) => format!(
                ", compared with the build before: manifest {}",
                o.image.as_deref().unwrap_or("(no image recorded)")
            ),
            None => String::new(),
        }
    );
    for (id, r) in ran {
        let n = &new.nodes[id];
        println!("#{id} [{}] {} (line {})", n.stage, n.text, n.line);
        for line in explain::render_all(r) {
            println!("#{id} why: {line}");
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DepfileError {
    #[error("--depfile needs a target: --iidfile FILE or -o type=...,dest=FILE")]
    #[diagnostic(
        code(kiln::build::depfile_target),
        help("the depfile's rule says when FILE is out of date, so the build must write one")
    )]
    NoTarget,
    #[error("cannot write the path {path:?} into a Makefile rule: Make has no escape for a newline or a tab")]
    #[diagnostic(code(kiln::build::depfile_path))]
    Unrepresentable { path: String },
    #[error("cannot write the depfile {}: {error}", path.display())]
    #[diagnostic(code(kiln::build::depfile_write))]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// A path as a Make target or prerequisite: spaces and `#` escaped with `\`, `$` doubled.
fn make_escape(path: &str) -> Result<String, DepfileError> {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '\n' | '\t' | '\r' => {
                return Err(DepfileError::Unrepresentable {
                    path: path.to_string(),
                })
            }
            ' ' => out.push_str("\\ "),
            '#' => out.push_str("\\#"),
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// `dir/rel` as the user would write it (no `./` in front).
fn joined(dir: &Path, rel: &str) -> String {
    let p = if rel.is_empty() {
        dir.to_path_buf()
    } else {
        dir.join(rel)
    };
    let s = p.display().to_string();
    s.strip_prefix("./").map(str::to_string).unwrap_or(s)
}

/// The files a build read, as paths relative to where kiln runs: the Dockerfile, the ignore
/// files that exist, and every context entry a step selected (the context directory itself
/// when a step selects all of it, so a new top-level file is noticed).
pub fn build_inputs(input: &FrontendInput, plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    let df = build_file(input);
    if df.as_os_str() != "-" {
        out.push(df.display().to_string());
    }
    for ignore in kiln_compiler::dockerignore::ignore_file_candidates(&df, &input.context) {
        if ignore.is_file() {
            out.push(ignore.display().to_string());
        }
    }
    let mut which = Vec::new();
    let mut whole = false;
    for n in &plan.nodes {
        if let Op::Context(sel) = &n.op {
            which.extend_from_slice(&sel.files);
            whole |= sel.patterns.iter().any(|p| p.is_empty());
        }
    }
    if whole {
        out.push(joined(&input.context, ""));
    }
    for i in kiln_compiler::context::sorted_unique(&which) {
        let f = &plan.context.files[i];
        // A dangling symlink has no time for Make to compare.
        if plan.context.host_path(f).metadata().is_ok() {
            out.push(joined(&input.context, &f.path));
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    out
}

/// Writes `target: prerequisites` and an empty rule per prerequisite (so a deleted input
/// makes the target out of date instead of stopping Make), atomically.
pub fn write_depfile(path: &Path, target: &Path, inputs: &[String]) -> Result<(), DepfileError> {
    let mut text = make_escape(&target.display().to_string())?;
    text.push(':');
    let mut rules = String::new();
    for p in inputs {
        let e = make_escape(p)?;
        text.push_str(" \\\n  ");
        text.push_str(&e);
        rules.push_str(&e);
        rules.push_str(":\n");
    }
    text.push_str("\n\n");
    text.push_str(&rules);
    super::build::write_file_atomically(path, text.as_bytes()).map_err(|error| {
        DepfileError::Write {
            path: path.to_path_buf(),
            error,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_escapes() {
        assert_eq!(make_escape("a b#c$d").unwrap(), "a\\ b\\#c$$d");
        assert!(make_escape("a\nb").is_err());
        assert_eq!(joined(Path::new("."), "x/y"), "x/y");
        assert_eq!(joined(Path::new("ctx"), "x"), "ctx/x");
    }
}
