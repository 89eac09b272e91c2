//! save, load, import: moving images in and out of the store.
use std::fs::File;
use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::path::PathBuf;

use kiln_runtime::archive;
use kiln_runtime::image::{ImageName, ImageRef};
use kiln_runtime::oci::Compression;
use kiln_runtime::store::{default_root, Store};
use miette::{Context, IntoDiagnostic};

use crate::cli::{self, ImportArgs, LoadArgs, SaveArgs};

pub(crate) fn open_store(root: Option<PathBuf>) -> miette::Result<Store> {
    Ok(Store::open(default_root(root)?)?)
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
enum TransferError {
    #[error("refusing to write a tarball to a terminal")]
    #[diagnostic(help("redirect the output (`kiln save app > app.tar`) or pass `-o FILE`"))]
    StdoutIsTerminal,
    #[error("no input: standard input is a terminal")]
    #[diagnostic(help("pass `-i FILE`, or pipe a tarball in (`kiln load < app.tar`)"))]
    StdinIsTerminal,
}

fn compression(c: cli::Compression) -> Compression {
    match c {
        cli::Compression::None => Compression::None,
        cli::Compression::Gzip => Compression::Gzip,
        cli::Compression::Zstd => Compression::Zstd,
    }
}

pub fn save(root: Option<PathBuf>, args: SaveArgs) -> miette::Result<()> {
    let refs = args
        .images
        .iter()
        .map(|s| ImageRef::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let compression = compression(args.compression);
    let store = open_store(root)?;
    match &args.output {
        Some(path) => archive::save_to_path(&store, &refs, path, compression)?,
        None => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                return Err(TransferError::StdoutIsTerminal.into());
            }
            // A File on fd 1 (not the line-buffered Stdout), so blobs are copied by the kernel.
            let fd = stdout
                .as_fd()
                .try_clone_to_owned()
                .into_diagnostic()
                .wrap_err("cannot use standard output")?;
            archive::save(&store, &refs, File::from(fd), compression)?;
        }
    }
    Ok(())
}

pub fn load(root: Option<PathBuf>, args: LoadArgs) -> miette::Result<()> {
    let store = open_store(root)?;
    let loaded = match &args.input {
        Some(path) => {
            let file = File::open(path)
                .into_diagnostic()
                .wrap_err_with(|| format!("cannot open {}", path.display()))?;
            archive::load(&store, file)?
        }
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                return Err(TransferError::StdinIsTerminal.into());
            }
            // A File on fd 0: read in big blocks, without Stdin's own buffer.
            let fd = stdin
                .as_fd()
                .try_clone_to_owned()
                .into_diagnostic()
                .wrap_err("cannot use standard input")?;
            archive::load(&store, File::from(fd))?
        }
    };
    for image in &loaded {
        if args.quiet {
            println!("{}", image.image.id());
        } else if image.tags.is_empty() {
            println!("Loaded image ID: {}", image.image.id());
        } else {
            for tag in &image.tags {
                println!("Loaded image: {}", tag.familiar());
            }
        }
    }
    Ok(())
}

pub fn import(root: Option<PathBuf>, args: ImportArgs) -> miette::Result<()> {
    let reference = args
        .reference
        .as_deref()
        .map(ImageName::parse)
        .transpose()?;
    let created = kiln_compiler::source_date_epoch::from_environment()?.unwrap_or(0);
    let store = open_store(root)?;
    let image = archive::import(&store, &args.source, reference.as_ref(), created)?;
    println!("{}", image.id());
    Ok(())
}
