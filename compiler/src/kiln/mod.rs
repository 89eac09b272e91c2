//! The kiln language front end (`*.kiln`; a directory's default file is `build.kiln`):
//! loading a program (its file, the local files it imports, the embedded standard library
//! from the top-level `stdlib/`), checking it whole before anything runs, and lowering an
//! exported target to the plan through `plan::builder`, as the Dockerfile front end does.
//! docs/language.md is the language's reference.
//! Must not: build nodes other than through the plan builder, or start any build step
//! while an error stands.

pub mod ast;
pub mod check;
pub mod error;
pub mod fmt;
pub mod lower;
pub mod parse;
pub mod types;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ast::{ImportPath, Item, Module};
pub use error::{KilnError, KilnErrors, Problem};

/// The standard library, embedded: (module name, source).
pub const STDLIB: &[(&str, &str)] = &[
    ("users", include_str!("../../../stdlib/users.kiln")),
    ("oci", include_str!("../../../stdlib/oci.kiln")),
    ("static", include_str!("../../../stdlib/static.kiln")),
    ("node", include_str!("../../../stdlib/node.kiln")),
    ("python", include_str!("../../../stdlib/python.kiln")),
    ("debian", include_str!("../../../stdlib/debian.kiln")),
];

/// One file of a program.
#[derive(Debug)]
pub struct SourceFile {
    /// As shown in diagnostics: the path given, or `<stdlib>/users.kiln`.
    pub name: String,
    /// On disk (None for the standard library).
    pub path: Option<PathBuf>,
    pub text: String,
    /// None when the file did not parse (the problem is reported).
    pub module: Option<Module>,
    /// For each `import` item (by item index), the file it names.
    pub imports: HashMap<usize, usize>,
}

/// A program: file 0 is the one the build started from, then every module it imports.
#[derive(Debug)]
pub struct Program {
    pub files: Vec<SourceFile>,
}

impl Program {
    /// Attach file texts to problems, for miette.
    pub fn report(&self, problems: Vec<Problem>) -> KilnErrors {
        let errors = problems
            .into_iter()
            .map(|p| {
                let f = &self.files[p.file.min(self.files.len().saturating_sub(1))];
                let src = match p.outside.as_deref() {
                    Some((name, text)) => crate::source::diagnostic_source(name, text),
                    None => crate::source::diagnostic_source(&f.name, &f.text),
                };
                let called_from = p
                    .called_from
                    .iter()
                    .flat_map(|calls| calls.iter())
                    .filter_map(|(file, span)| {
                        let f = self.files.get(*file)?;
                        Some(error::CallSite {
                            file_name: f.name.clone(),
                            src: crate::source::diagnostic_source(&f.name, &f.text),
                            span: *span,
                        })
                    })
                    .collect();
                KilnError {
                    message: p.message,
                    src,
                    span: p.span,
                    label: p.label,
                    help: p.help,
                    called_from,
                }
            })
            .collect();
        KilnErrors { errors }
    }
}

/// The file a `kiln build`/`plan`/`check` argument names: a `.kiln` file, or a directory's
/// `build.kiln`.
pub fn program_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("build.kiln")
    } else {
        path.to_path_buf()
    }
}

/// Whether a path names a kiln program (a `.kiln` file, or a directory with `build.kiln`).
pub fn is_program(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "kiln")
        || (path.is_dir() && path.join("build.kiln").is_file())
}

/// Read the program at `path` and everything it imports; parse errors, unreadable files,
/// unknown stdlib modules and import cycles are problems (all of them, not the first).
pub fn load(path: &Path) -> Result<Program, KilnErrors> {
    let (prog, problems) = load_all(path);
    if problems.is_empty() {
        Ok(prog)
    } else {
        Err(prog.report(problems))
    }
}

/// The program and the problems loading it found (the files that did load are there).
fn load_all(path: &Path) -> (Program, Vec<Problem>) {
    let path = program_file(path);
    let mut prog = Program { files: Vec::new() };
    let mut problems = Vec::new();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            prog.files.push(SourceFile {
                name: path.display().to_string(),
                path: Some(path.clone()),
                text: String::new(),
                module: None,
                imports: HashMap::new(),
            });
            problems.push(
                Problem::new(
                    0,
                    Default::default(),
                    format!("cannot read {}: {e}", path.display()),
                    "here",
                )
                .help(
                    "kiln build, plan and check take a .kiln file or a directory with build.kiln",
                ),
            );
            return (prog, problems);
        }
    };
    let mut loader = Loader {
        by_key: HashMap::new(),
        stack: Vec::new(),
    };
    loader.add(
        &mut prog,
        &mut problems,
        FileKey::Disk(canonical(&path)),
        path.display().to_string(),
        Some(path.clone()),
        text,
    );
    (prog, problems)
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum FileKey {
    Disk(PathBuf),
    Std(String),
}

struct Loader {
    by_key: HashMap<FileKey, usize>,
    /// Files being loaded (the import chain), for cycles.
    stack: Vec<usize>,
}

impl Loader {
    fn add(
        &mut self,
        prog: &mut Program,
        problems: &mut Vec<Problem>,
        key: FileKey,
        name: String,
        path: Option<PathBuf>,
        text: String,
    ) -> usize {
        let id = prog.files.len();
        self.by_key.insert(key.clone(), id);
        let module = match parse::parse_module(&text) {
            Ok(m) => Some(m),
            Err(e) => {
                problems.push(syntax_problem(id, &text, &e));
                None
            }
        };
        prog.files.push(SourceFile {
            name,
            path: path.clone(),
            text,
            module,
            imports: HashMap::new(),
        });
        self.stack.push(id);
        let imports: Vec<(usize, ast::Import)> = prog.files[id]
            .module
            .iter()
            .flat_map(|m| m.items.iter().enumerate())
            .filter_map(|(i, item)| match item {
                Item::Import(imp) => Some((i, imp.clone())),
                _ => None,
            })
            .collect();
        for (idx, imp) in imports {
            let target = match &imp.path {
                ImportPath::Std(names) => {
                    let joined = names.join(".");
                    let module = names
                        .split_first()
                        .filter(|(first, rest)| first.as_str() == "std" && rest.len() == 1)
                        .map(|(_, rest)| rest[0].as_str());
                    let Some((mname, text)) = module
                        .and_then(|m| STDLIB.iter().find(|(n, _)| *n == m))
                        .copied()
                    else {
                        let names: Vec<String> =
                            STDLIB.iter().map(|(n, _)| format!("std.{n}")).collect();
                        let mut p = Problem::new(
                            id,
                            imp.span,
                            format!("no standard-library module named {joined}"),
                            "unknown module",
                        );
                        p = match crate::suggest::closest(&joined, names.iter().map(String::as_str)) {
                            Some(s) => p.help(format!("did you mean {s}?")),
                            None => p.help(format!(
                                "the standard library has {}; local files are imported by quoted path: import \"./lib.kiln\"",
                                names.join(", ")
                            )),
                        };
                        problems.push(p);
                        continue;
                    };
                    let key = FileKey::Std(mname.to_string());
                    match self.by_key.get(&key) {
                        Some(&f) => self.check_cycle(prog, problems, id, &imp, f).unwrap_or(f),
                        None => self.add(
                            prog,
                            problems,
                            key,
                            format!("<stdlib>/{mname}.kiln"),
                            None,
                            text.to_string(),
                        ),
                    }
                }
                ImportPath::File(rel) => {
                    let Some(base) = path.as_ref().and_then(|p| p.parent()) else {
                        problems.push(Problem::new(
                            id,
                            imp.span,
                            "a standard-library module cannot import a local file",
                            "local import",
                        ));
                        continue;
                    };
                    let file = base.join(rel.strip_prefix("./").unwrap_or(rel));
                    let key = FileKey::Disk(canonical(&file));
                    if let Some(&f) = self.by_key.get(&key) {
                        let f = self.check_cycle(prog, problems, id, &imp, f).unwrap_or(f);
                        prog.files[id].imports.insert(idx, f);
                        continue;
                    }
                    match std::fs::read_to_string(&file) {
                        Ok(text) => self.add(
                            prog,
                            problems,
                            key,
                            file.display().to_string(),
                            Some(file.clone()),
                            text,
                        ),
                        Err(e) => {
                            problems.push(
                                Problem::new(
                                    id,
                                    imp.span,
                                    format!("cannot read {}: {e}", file.display()),
                                    "imported here",
                                )
                                .help("local imports are relative to the importing file"),
                            );
                            continue;
                        }
                    }
                }
            };
            prog.files[id].imports.insert(idx, target);
        }
        self.stack.pop();
        id
    }

    /// An import of a file already loaded: a cycle when that file is still being loaded.
    fn check_cycle(
        &self,
        prog: &Program,
        problems: &mut Vec<Problem>,
        id: usize,
        imp: &ast::Import,
        target: usize,
    ) -> Option<usize> {
        let pos = self.stack.iter().position(|&f| f == target)?;
        let mut chain: Vec<&str> = self.stack[pos..]
            .iter()
            .map(|&f| prog.files[f].name.as_str())
            .collect();
        chain.push(prog.files[target].name.as_str());
        problems.push(
            Problem::new(id, imp.span, "import cycle", "this import closes the cycle")
                .help(format!("the chain: {}", chain.join(" → "))),
        );
        Some(target)
    }
}

/// Load and check a program: every problem of every file, at once.
pub fn check_file(path: &Path) -> Result<Program, KilnErrors> {
    let (prog, mut problems) = load_all(path);
    problems.extend(check::check(&prog));
    if problems.is_empty() {
        Ok(prog)
    } else {
        Err(prog.report(problems))
    }
}

/// A syntax error as a problem at its offset in file `file` (whose text is `text`).
pub fn syntax_problem(file: usize, text: &str, e: &parse::SyntaxError) -> Problem {
    let offset = e.offset.min(text.len());
    let end = (offset + 1).min(text.len()).max(offset);
    let found = text[offset..]
        .chars()
        .next()
        .map_or("the end of the file".to_string(), |c| format!("{c:?}"));
    Problem::new(
        file,
        crate::syntax::Span::new(offset, end),
        format!("syntax error: expected {}, found {found}", e.expected),
        format!("expected {}", e.expected),
    )
}
