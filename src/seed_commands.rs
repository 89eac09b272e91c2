//! The tutorials' command lines against kiln's parser: every `docker ...`, `docker-compose ...`
//! and `docker compose ...` line of the seed tutorials (`../shared/seeds/*.txt` beside the
//! workspace), mapped to kiln's argv (`docker X` is `kiln X`, compose is `kiln compose X`), must
//! be accepted by `Cli::try_parse_from`, except the reviewed exclusions and refusals listed
//! here, each with its reason. The Dockerfiles of the tutorials (fenced blocks whose first
//! instruction is FROM or ARG) must parse and lower as `kiln check` does them. This module only
//! reads text and parses: it runs nothing.

use std::path::{Path, PathBuf};

use clap::Parser;

use crate::cli::{Cli, Command};

/// Lines of the tutorials that are not commands anyone can type as written: placeholders the
/// reader fills in. Matched against the whole logical line after the prompt.
const EXCLUDED: &[(&str, &str)] = &[
    (
        "docker commit [container ID]",
        "placeholder: the reader types a container ID",
    ),
    (
        "docker rmi [name]:[tag] or",
        "placeholder and prose ('or' joins two forms)",
    ),
    (
        "docker rmi [image-id]",
        "placeholder: the reader types an image ID",
    ),
    (
        "docker run -p 3000:80 -d --rm --name {Container-Name} {Image-Tag}",
        "placeholder: the reader types a name and a tag",
    ),
];

/// Command lines docker itself refuses as written, so kiln must refuse them too (the test
/// checks that kiln does).
const DOCKER_REFUSES: &[(&str, &str)] = &[(
    "docker cp dummy/.jovial_mayer:copyTest",
    "a typo in the tutorial (no space between the two paths): docker cp says \
     \"requires exactly 2 arguments\"",
)];

/// Flags kiln parses but refuses when the command runs, with the reason; the test checks each
/// refusal through the same function `kiln run` uses, for every seed line that has one.
const KNOWN_REFUSALS: &[(&str, &str)] = &[(
    "-p 1234 ",
    "a random host port (docker picks a free one): kiln never picks a host port at random, \
     so that a container's address is known before it starts; -P does pick free ports, of \
     127.0.0.1 only",
)];

/// Dockerfiles of the tutorials that docker refuses too: (file, the block's first line, what
/// both say). The test checks that kiln's error says the same.
const DOCKERFILES_REFUSED: &[(&str, usize, &str)] = &[(
    "004_cfcc84ec9770d8bc.txt",
    18,
    // A comment that lost its `#`: docker build (classic and BuildKit) says "dockerfile parse
    // error line 20: unknown instruction: APPLICATION".
    "unknown instruction: APPLICATION",
)];

/// One command line found in a tutorial.
#[derive(Debug, Clone)]
struct Found {
    file: String,
    line: usize,
    /// The logical line after the prompt, continuations joined.
    text: String,
    /// The words of one command (a line may hold several: `a && b`, `$(c)`).
    words: Vec<String>,
}

/// Where the seeds are: `../shared/seeds` beside the workspace.
fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/seeds")
}

/// The text after a shell prompt when the line is a docker command line: `$ `, `$> `, `# `
/// prompts and `sudo ` are dropped. Prose, bullets and inline code (`` `docker ps` ``) are not
/// command lines.
fn command_start(line: &str) -> Option<&str> {
    let mut rest = line.trim_start();
    for prompt in ["$> ", "$ ", "# "] {
        if let Some(r) = rest.strip_prefix(prompt) {
            rest = r.trim_start();
            break;
        }
    }
    if let Some(r) = rest.strip_prefix("sudo ") {
        rest = r.trim_start();
    }
    let is_docker = ["docker ", "docker-compose ", "docker-compose"]
        .iter()
        .any(|p| rest.starts_with(p) && (rest.len() == p.len() || p.ends_with(' ')));
    (is_docker || rest == "docker").then_some(rest)
}

/// Split a logical line into commands of words, as a POSIX shell would for these simple
/// forms: quotes, backslashes, `&&`, `;`, `|` and `$(...)` (whose command is a command of its
/// own; its output stands in as the word `ID`, as the tutorials use it for IDs).
fn split_commands(text: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    split_into(&chars, &mut 0, &mut out, false);
    out.retain(|c: &Vec<String>| !c.is_empty());
    out
}

fn split_into(chars: &[char], i: &mut usize, out: &mut Vec<Vec<String>>, nested: bool) {
    let mut words: Vec<String> = Vec::new();
    let mut word: Option<String> = None;
    while *i < chars.len() {
        let c = chars[*i];
        match c {
            ' ' | '\t' => {
                words.extend(word.take());
                *i += 1;
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                *i += 1;
                while *i < chars.len() && chars[*i] != '\'' {
                    w.push(chars[*i]);
                    *i += 1;
                }
                *i += 1;
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                *i += 1;
                while *i < chars.len() && chars[*i] != '"' {
                    if chars[*i] == '\\' && *i + 1 < chars.len() {
                        *i += 1;
                    }
                    w.push(chars[*i]);
                    *i += 1;
                }
                *i += 1;
            }
            '\\' => {
                if let Some(&n) = chars.get(*i + 1) {
                    word.get_or_insert_with(String::new).push(n);
                }
                *i += 2;
            }
            '$' if chars.get(*i + 1) == Some(&'(') => {
                *i += 2;
                split_into(chars, i, out, true);
                word.get_or_insert_with(String::new).push_str("ID");
            }
            ')' if nested => {
                *i += 1;
                words.extend(word.take());
                out.push(words);
                return;
            }
            '&' | ';' | '|' => {
                words.extend(word.take());
                out.push(std::mem::take(&mut words));
                while *i < chars.len() && matches!(chars[*i], '&' | ';' | '|') {
                    *i += 1;
                }
            }
            _ => {
                word.get_or_insert_with(String::new).push(c);
                *i += 1;
            }
        }
    }
    words.extend(word.take());
    out.push(words);
}

/// kiln's argv for a docker argv, or None when it is not a docker command.
fn kiln_argv(words: &[String]) -> Option<Vec<String>> {
    let (first, rest) = words.split_first()?;
    let mut argv = vec!["kiln".to_string()];
    match first.as_str() {
        "docker-compose" => argv.push("compose".to_string()),
        "docker" => {}
        _ => return None,
    }
    argv.extend(rest.iter().cloned());
    Some(argv)
}

/// Every command line of every seed, in file order.
fn find_all(dir: &Path) -> std::io::Result<Vec<Found>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    let mut found = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let mut n = 0;
        while n < lines.len() {
            let start = n;
            let Some(first) = command_start(lines[n]) else {
                n += 1;
                continue;
            };
            let mut logical = first.trim_end().to_string();
            while logical.ends_with('\\') && n + 1 < lines.len() {
                logical.pop();
                n += 1;
                logical.push(' ');
                logical.push_str(lines[n].trim());
            }
            n += 1;
            let logical = logical.trim().to_string();
            for words in split_commands(&logical) {
                if words.first().is_some_and(|w| w.starts_with("docker")) {
                    found.push(Found {
                        file: name.clone(),
                        line: start + 1,
                        text: logical.clone(),
                        words,
                    });
                }
            }
        }
    }
    Ok(found)
}

/// The tutorials' Dockerfiles: each fenced block (```` ``` ````) whose first line that is not
/// blank or a comment is a FROM or ARG instruction. (file, first line, text)
fn dockerfiles(dir: &Path) -> std::io::Result<Vec<(String, usize, String)>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut block: Option<(usize, String)> = None;
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                match block.take() {
                    Some((start, body)) => {
                        let first = body
                            .lines()
                            .map(str::trim)
                            .find(|l| !l.is_empty() && !l.starts_with('#'))
                            .unwrap_or_default()
                            .to_ascii_uppercase();
                        if first.starts_with("FROM ") || first.starts_with("ARG ") {
                            out.push((name.clone(), start, body));
                        }
                    }
                    None => block = Some((n + 2, String::new())),
                }
            } else if let Some((_, body)) = &mut block {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the seeds hold, or `None` after a skip (locally) or a failure (in CI, where
    /// the seeds must be there).
    fn found_or_skip<T, E: std::fmt::Display>(
        dir: &Path,
        found: Result<Vec<T>, E>,
        none: &str,
    ) -> Option<Vec<T>> {
        let why = match found {
            Ok(found) if !found.is_empty() => return Some(found),
            Ok(_) => none.to_string(),
            Err(e) => e.to_string(),
        };
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("the seeds at {} are required in CI: {why}", dir.display());
        }
        eprintln!(
            "SKIPPED: the seeds at {} are not readable ({why}); with CI=true this fails",
            dir.display()
        );
        None
    }

    #[test]
    fn every_tutorial_dockerfile_parses_and_lowers() {
        let dir = seeds_dir();
        let Some(found) = found_or_skip(&dir, dockerfiles(&dir), "no Dockerfiles found") else {
            return;
        };
        let (mut ok, mut refused_as_docker, mut failures) = (0, 0, Vec::new());
        for (file, line, text) in &found {
            let opts = kiln_compiler::plan::BuildOptions::default();
            let result = kiln_compiler::syntax::parse(text)
                .map_err(|e| e.to_string())
                .and_then(|df| {
                    kiln_compiler::dockerfile::lower::lower_all_stages(&df, text, &opts)
                        .map(|_warnings| ())
                        .map_err(|e| e.to_string())
                });
            let refused = DOCKERFILES_REFUSED
                .iter()
                .find(|(f, l, _)| f == file && l == line);
            match (result, refused) {
                (Ok(()), None) => ok += 1,
                (Err(e), Some((_, _, says))) if e.contains(says) => refused_as_docker += 1,
                (Ok(()), Some((_, _, says))) => failures.push(format!(
                    "{file}:{line}: accepted, but docker refuses it: {says}"
                )),
                (Err(e), _) => failures.push(format!("{file}:{line}: {e}\n{text}")),
            }
        }
        eprintln!(
            "{} Dockerfiles, {ok} parsed and lowered, {refused_as_docker} refused as docker \
             refuses them",
            found.len(),
        );
        for (file, line, says) in DOCKERFILES_REFUSED {
            assert!(
                found.iter().any(|(f, l, _)| f == file && l == line),
                "the listed Dockerfile {file}:{line} ({says}) is no longer in the seeds"
            );
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn splitting_follows_the_shell() {
        assert_eq!(
            split_commands("docker rm $(docker ps --all --quiet) && docker rmi x"),
            vec![
                vec!["docker", "ps", "--all", "--quiet"],
                vec!["docker", "rm", "ID"],
                vec!["docker", "rmi", "x"],
            ]
        );
        assert_eq!(
            split_commands(r#"docker run -e WHO="Sean and Karl" img sh -c 'a && b'"#),
            vec![vec![
                "docker",
                "run",
                "-e",
                "WHO=Sean and Karl",
                "img",
                "sh",
                "-c",
                "a && b"
            ]]
        );
        assert_eq!(command_start("$> sudo docker ps"), Some("docker ps"));
        assert_eq!(command_start("* docker swarm"), None);
        assert_eq!(
            command_start("You can list images with `docker images`:"),
            None
        );
        assert_eq!(command_start("dockerd --bridge=none"), None);
    }

    #[test]
    fn every_tutorial_command_line_parses() {
        let dir = seeds_dir();
        let Some(found) = found_or_skip(&dir, find_all(&dir), "no command lines found") else {
            return;
        };
        let mut accepted = 0;
        let mut excluded = 0;
        let mut refused_as_docker = 0;
        let mut refused_known = 0;
        let mut failures = Vec::new();
        let mut used: Vec<&str> = Vec::new();
        for f in &found {
            if let Some((text, _)) = EXCLUDED.iter().find(|(t, _)| *t == f.text) {
                excluded += 1;
                used.push(text);
                continue;
            }
            let Some(argv) = kiln_argv(&f.words) else {
                continue;
            };
            let parsed = Cli::try_parse_from(&argv);
            if let Some((text, why)) = DOCKER_REFUSES.iter().find(|(t, _)| *t == f.text) {
                used.push(text);
                match parsed {
                    Err(_) => refused_as_docker += 1,
                    Ok(_) => failures.push(format!(
                        "{}:{}: `{}` was accepted, but docker refuses it: {why}",
                        f.file, f.line, f.text
                    )),
                }
                continue;
            }
            if let Some((flag, why)) = KNOWN_REFUSALS.iter().find(|(t, _)| f.text.contains(t)) {
                used.push(flag);
                let value = flag.trim().trim_start_matches("-p ");
                if crate::commands::run::parse_publish(value).is_ok() {
                    failures.push(format!(
                        "{}:{}: `{}` is listed as refused ({why}) but kiln takes -p {value}",
                        f.file, f.line, f.text
                    ));
                }
                refused_known += 1;
            }
            match parsed {
                // An unknown flag before the image would be read as the image: not accepted.
                Ok(Cli {
                    command: Command::Run(a) | Command::Create(a),
                    ..
                }) if a.image_and_args.first().is_some_and(|i| i.starts_with('-')) => failures
                    .push(format!(
                        "{}:{}: `{}`: {:?} is not a flag of kiln run",
                        f.file, f.line, f.text, a.image_and_args[0]
                    )),
                Ok(Cli {
                    command: Command::Exec(a),
                    ..
                }) if a
                    .container_and_command
                    .first()
                    .is_some_and(|i| i.starts_with('-')) =>
                {
                    failures.push(format!(
                        "{}:{}: `{}`: {:?} is not a flag of kiln exec",
                        f.file, f.line, f.text, a.container_and_command[0]
                    ))
                }
                // `docker help` prints the help and ends with status 0: so does `kiln help`.
                Ok(_) => accepted += 1,
                Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => accepted += 1,
                Err(e) => {
                    let first = e.to_string();
                    let first = first.lines().next().unwrap_or_default().to_string();
                    failures.push(format!(
                        "{}:{}: `{}` ({:?}): {first}",
                        f.file, f.line, f.text, argv
                    ));
                }
            }
        }
        eprintln!(
            "{} command lines, {accepted} accepted (of which {refused_known} refused when run, \
             as listed), {refused_as_docker} refused as docker refuses them, {excluded} \
             excluded as placeholders",
            found.len()
        );
        for (text, why) in EXCLUDED.iter().chain(DOCKER_REFUSES).chain(KNOWN_REFUSALS) {
            assert!(
                used.contains(text),
                "the listed line `{text}` ({why}) is no longer in the seeds: drop it from the list"
            );
        }
        assert!(
            failures.is_empty(),
            "{} of {} command lines are not accepted:\n{}",
            failures.len(),
            found.len(),
            failures.join("\n")
        );
    }
}
