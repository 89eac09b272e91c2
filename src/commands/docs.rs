//! `kiln completion SHELL` and `kiln man`: shell completion scripts and manual pages, both
//! generated from the one declaration of every command and flag (`cli.rs`), so they cannot
//! drift from what kiln accepts.
//!
//! Must not: describe any command by hand; everything comes from clap's model.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;
use miette::{Context, IntoDiagnostic};

use crate::cli::{Cli, CompletionArgs, ManArgs};

pub fn completion(args: CompletionArgs) -> miette::Result<()> {
    let mut command = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut command, "kiln", &mut out);
    out.flush().into_diagnostic()
}

pub fn man(args: ManArgs) -> miette::Result<()> {
    let command = Cli::command();
    let Some(dir) = args.dir else {
        let mut out = std::io::stdout().lock();
        clap_mangen::Man::new(command)
            .render(&mut out)
            .into_diagnostic()?;
        return out.flush().into_diagnostic();
    };
    std::fs::create_dir_all(&dir)
        .into_diagnostic()
        .wrap_err_with(|| format!("creating {}", dir.display()))?;
    write_page(&dir, "kiln", command.clone())?;
    for sub in command.get_subcommands().filter(|c| !c.is_hide_set()) {
        let name = format!("kiln-{}", sub.get_name());
        write_page(&dir, &name, sub.clone().name(name.clone()))?;
    }
    Ok(())
}

/// Renders one page to `DIR/NAME.1`, through a temporary file renamed into place.
fn write_page(dir: &Path, name: &str, command: clap::Command) -> miette::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut page)
        .into_diagnostic()?;
    let path = dir.join(format!("{name}.1"));
    let temp = dir.join(format!(".{name}.1.tmp"));
    std::fs::write(&temp, &page)
        .and_then(|()| std::fs::rename(&temp, &path))
        .into_diagnostic()
        .wrap_err_with(|| format!("writing {}", path.display()))
}
