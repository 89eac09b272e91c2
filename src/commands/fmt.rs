//! `kiln fmt [--check] [FILE]`: rewrite a kiln program in the canonical layout
//! (`kiln_compiler::kiln::fmt`), or with `--check` only say whether it is in it (exit 1 when
//! not). `-` formats standard input to standard output.
//! Must not: write a file that did not parse, or write anything with `--check`.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use kiln_compiler::kiln::{self, fmt, KilnErrors};
use kiln_compiler::source;

use crate::cli::FmtArgs;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum FmtError {
    #[error("{path} is not formatted")]
    #[diagnostic(code(kiln::fmt::check), help("run `kiln fmt {path}` to format it"))]
    NotFormatted { path: String },
    #[error("cannot write {path}")]
    #[diagnostic(code(kiln::fmt::write))]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub fn run(args: FmtArgs) -> miette::Result<()> {
    let path = match &args.file {
        Some(p) if p.as_os_str() == "-" => p.clone(),
        Some(p) => kiln::program_file(p),
        None => PathBuf::from("build.kiln"),
    };
    let src = source::read_dockerfile(&path)?;
    let formatted = fmt::format(&src.text).map_err(|e| {
        let p = kiln::syntax_problem(0, &src.text, &e);
        KilnErrors {
            errors: vec![kiln::KilnError {
                message: p.message,
                src: source::diagnostic_source(&src.name, &src.text),
                span: p.span,
                label: p.label,
                help: Some("kiln fmt formats only a file that parses".into()),
                called_from: Vec::new(),
            }],
        }
    })?;
    if path.as_os_str() == "-" {
        if args.check {
            return check(&src.name, &src.text, &formatted);
        }
        print!("{formatted}");
        return Ok(());
    }
    if args.check {
        return check(&src.name, &src.text, &formatted);
    }
    if formatted != src.text {
        write(&path, &formatted).map_err(|source| FmtError::Write {
            path: src.name.clone(),
            source,
        })?;
        eprintln!("{}: formatted", src.name);
    }
    Ok(())
}

fn check(name: &str, text: &str, formatted: &str) -> miette::Result<()> {
    if text == formatted {
        return Ok(());
    }
    Err(FmtError::NotFormatted {
        path: name.to_string(),
    }
    .into())
}

/// Write beside the file and rename over it, keeping its mode.
fn write(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mode = std::fs::metadata(path)?.permissions().mode();
    let mut tmp = tempfile::Builder::new()
        .prefix(".kiln-fmt-")
        .tempfile_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
