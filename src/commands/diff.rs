//! `kiln diff A B`: finding the two images (store references and IDs, or tarballs read into a
//! temporary store), running the runtime's comparison, and rendering it as text or JSON. The
//! text rendering is shared with `kiln build --check`.
//!
//! Must not: compare anything itself (that is `kiln_runtime::compare`) or add to the user's
//! store (tarballs go to a temporary store, removed on exit).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use kiln_runtime::compare::{self, Change, FileChange, FileState, ImageDiff, Side};
use kiln_runtime::store::{Image, Store};
use miette::{IntoDiagnostic, Result};

use crate::cli::DiffArgs;

/// Exit status for "the images differ".
const DIFFERENT: u8 = 1;
/// Exit status for an error (bad reference, unreadable tarball, ...).
const ERROR: u8 = 2;

pub fn run(root: Option<PathBuf>, args: DiffArgs) -> ExitCode {
    match compare_args(root, &args) {
        Ok(diff) => {
            if args.json {
                match serde_json::to_value(&diff) {
                    Ok(mut value) => {
                        if let Some(map) = value.as_object_mut() {
                            map.insert("equal".into(), diff.is_equal().into());
                        }
                        println!("{value}");
                    }
                    Err(e) => {
                        eprintln!("cannot render the comparison as JSON: {e}");
                        return ExitCode::from(ERROR);
                    }
                }
            } else {
                print!(
                    "{}",
                    render(&diff, &|which, layer| history_step(&diff, which, layer))
                );
            }
            if diff.is_equal() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(DIFFERENT)
            }
        }
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::from(ERROR)
        }
    }
}

/// Where an argument's image lives.
enum Source {
    Store(String),
    Tarball(PathBuf),
}

fn source_of(arg: &str) -> Source {
    if Path::new(arg).is_file() {
        Source::Tarball(PathBuf::from(arg))
    } else {
        Source::Store(arg.to_string())
    }
}

fn compare_args(root: Option<PathBuf>, args: &DiffArgs) -> Result<ImageDiff> {
    let b = args.b.clone().unwrap_or_default();
    let sources = [source_of(&args.a), source_of(&b)];
    let user_store = if sources.iter().any(|s| matches!(s, Source::Store(_))) {
        Some(Store::open(kiln_runtime::store::default_root(root)?)?)
    } else {
        None
    };
    // Both tarballs share one temporary store: a layer they have in common is read once.
    let temp_dir = if sources.iter().any(|s| matches!(s, Source::Tarball(_))) {
        Some(
            tempfile::Builder::new()
                .prefix("kiln-diff-")
                .tempdir()
                .into_diagnostic()?,
        )
    } else {
        None
    };
    let temp_store = match &temp_dir {
        Some(dir) => Some(Store::open(dir.path().join("store"))?),
        None => None,
    };
    let mut images: Vec<(&Store, Image)> = Vec::new();
    for (source, arg) in sources.iter().zip([&args.a, &b]) {
        match (source, &user_store, &temp_store) {
            (Source::Store(reference), Some(store), _) => {
                images.push((store, store.image(reference)?));
            }
            (Source::Tarball(path), _, Some(store)) => {
                images.push((store, load_one(store, path)?));
            }
            _ => miette::bail!("cannot open the store for {arg}"),
        }
    }
    let [(store_a, image_a), (store_b, image_b)] = <[_; 2]>::try_from(images)
        .map_err(|_| miette::miette!("kiln diff compares exactly two images"))?;
    Ok(compare::diff_images(
        Side {
            store: store_a,
            image: &image_a,
        },
        Side {
            store: store_b,
            image: &image_b,
        },
    )?)
}

/// The one image of a tarball, loaded into `store` (the load code verifies everything).
fn load_one(store: &Store, path: &Path) -> Result<Image> {
    let file = std::fs::File::open(path)
        .map_err(|e| miette::miette!("cannot open {}: {e}", path.display()))?;
    let loaded = kiln_runtime::archive::load(store, file)?;
    match <[_; 1]>::try_from(loaded) {
        Ok([one]) => Ok(one.image),
        Err(many) => miette::bail!(
            help = "save one image per tarball (`kiln save IMAGE -o FILE`), or load it and compare by reference",
            "{} holds {} images; kiln diff compares one image per tarball",
            path.display(),
            many.len()
        ),
    }
}

/// Which image of the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    A,
    B,
}

/// The history entry that created layer `layer` of one side.
fn history_step(diff: &ImageDiff, which: Which, layer: usize) -> Option<String> {
    let pair = diff.layers.get(layer)?;
    let info = match which {
        Which::A => pair.a.as_ref(),
        Which::B => pair.b.as_ref(),
    }?;
    info.created_by.clone()
}

/// The text rendering: identity, config differences, layers, merged file differences.
/// `step_of` names the step that made a layer of one side.
pub fn render(diff: &ImageDiff, step_of: &dyn Fn(Which, usize) -> Option<String>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "A: {} ({} layers)", diff.a.id, diff.a.layers);
    let _ = writeln!(out, "B: {} ({} layers)", diff.b.id, diff.b.layers);
    if diff.is_equal() {
        let _ = writeln!(out, "equal");
        return out;
    }
    if !diff.config.is_empty() {
        let _ = writeln!(out, "\nconfig:");
        for c in &diff.config {
            let show = |v: &Option<serde_json::Value>| {
                v.as_ref()
                    .map_or_else(|| "(absent)".to_string(), |v| v.to_string())
            };
            let _ = writeln!(out, "  {}: {} -> {}", c.field, show(&c.a), show(&c.b));
        }
    }
    let _ = writeln!(out, "\nlayers:");
    for layer in &diff.layers {
        let name = |which: Which| {
            let info = match which {
                Which::A => layer.a.as_ref(),
                Which::B => layer.b.as_ref(),
            };
            info.map(|i| {
                let step = step_of(which, layer.index)
                    .map(|s| format!(" `{s}`"))
                    .unwrap_or_default();
                format!("{}{step}", short(&i.diff_id))
            })
        };
        match (name(Which::A), name(Which::B)) {
            (Some(a), Some(_)) if layer.equal => {
                let _ = writeln!(out, "  #{} equal: {a}", layer.index);
            }
            (Some(a), Some(b)) => {
                let _ = writeln!(out, "  #{} differs: A {a}, B {b}", layer.index);
            }
            (Some(a), None) => {
                let _ = writeln!(out, "  #{} only in A: {a}", layer.index);
            }
            (None, Some(b)) => {
                let _ = writeln!(out, "  #{} only in B: {b}", layer.index);
            }
            (None, None) => {}
        }
        for f in &layer.files {
            let _ = writeln!(out, "      {} {}{}", verb(f), f.path, brief(f));
        }
    }
    if !diff.files.is_empty() {
        let _ = writeln!(out, "\nfiles (merged):");
        for f in &diff.files {
            out.push_str(&render_file(f, step_of));
        }
    }
    out
}

fn verb(f: &FileChange) -> &'static str {
    match f.change {
        Change::Added => "added",
        Change::Removed => "removed",
        Change::Changed => "changed",
    }
}

fn brief(f: &FileChange) -> String {
    if f.differs.is_empty() {
        String::new()
    } else {
        format!(" ({})", f.differs.join(", "))
    }
}

/// `sha256:0123456789ab` (the first 12 hex digits).
fn short(digest: &str) -> String {
    digest.chars().take(19).collect()
}

/// One merged difference: path, the step that wrote it on each side, what differs.
pub fn render_file(f: &FileChange, step_of: &dyn Fn(Which, usize) -> Option<String>) -> String {
    let mut out = String::new();
    let writer = |which: Which, layer: Option<usize>| match layer {
        Some(i) => match step_of(which, i) {
            Some(step) => format!("layer {i}, {step}"),
            None => format!("layer {i}"),
        },
        None => "no layer".to_string(),
    };
    let written = match f.change {
        Change::Added => format!("written by B's {}", writer(Which::B, f.b_layer)),
        Change::Removed => format!("written by A's {}", writer(Which::A, f.a_layer)),
        Change::Changed => {
            let (wa, wb) = (writer(Which::A, f.a_layer), writer(Which::B, f.b_layer));
            if wa == wb {
                format!("written by {wa}")
            } else {
                format!("written by A's {wa}; B's {wb}")
            }
        }
    };
    let _ = writeln!(out, "  {} /{}  [{written}]", verb(f), f.path);
    match (&f.a, &f.b) {
        (Some(a), Some(b)) => {
            for attr in &f.differs {
                let _ = writeln!(
                    out,
                    "      {attr}: {} -> {}",
                    attr_of(a, attr),
                    attr_of(b, attr)
                );
            }
        }
        (Some(one), None) | (None, Some(one)) => {
            let _ = writeln!(out, "      {}", summary(one));
        }
        (None, None) => {}
    }
    if let Some(text) = &f.text_diff {
        for line in text.lines() {
            let _ = writeln!(out, "      {line}");
        }
    }
    out
}

fn attr_of(s: &FileState, attr: &str) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    match attr {
        "type" => s.kind.to_string(),
        "content" => opt(&s.content),
        "size" => s.size.map_or_else(|| "-".into(), |n| n.to_string()),
        "mode" => s.mode.clone(),
        "owner" => format!("{}:{}", s.uid, s.gid),
        "mtime" => s.mtime.to_string(),
        "link_target" => opt(&s.link_target),
        "xattrs" => format!("{:?}", s.xattrs),
        _ => String::new(),
    }
}

fn summary(s: &FileState) -> String {
    let mut parts = vec![
        s.kind.to_string(),
        s.mode.clone(),
        format!("{}:{}", s.uid, s.gid),
    ];
    if let Some(n) = s.size {
        parts.push(format!("{n} bytes"));
    }
    if let Some(t) = &s.link_target {
        parts.push(format!("-> {t}"));
    }
    if let Some(c) = &s.content {
        parts.push(c.clone());
    }
    parts.join(", ")
}
