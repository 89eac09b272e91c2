//! Build script of the kiln CLI: the git commit `kiln version` prints, when the sources are
//! a git checkout and git is installed (`KILN_GIT_COMMIT` in the environment wins, for
//! builds from a tarball). Nothing else.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=KILN_GIT_COMMIT");
    let commit = std::env::var("KILN_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=7", "HEAD"]));
    // A new commit moves HEAD's reflog: run again then (and only then).
    if let Some(log) = git(&[
        "rev-parse",
        "--path-format=absolute",
        "--git-path",
        "logs/HEAD",
    ]) {
        println!("cargo:rerun-if-changed={log}");
    }
    if let Some(c) = commit {
        println!("cargo:rustc-env=KILN_GIT_COMMIT={c}");
    }
}
