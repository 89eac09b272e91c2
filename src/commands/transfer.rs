//! save, load, import: moving images in and out of the store.
use std::path::PathBuf;

use crate::cli::{ImportArgs, LoadArgs, SaveArgs};

pub fn save(_root: Option<PathBuf>, _args: SaveArgs) -> miette::Result<()> {
    miette::bail!("kiln save is not implemented yet")
}
pub fn load(_root: Option<PathBuf>, _args: LoadArgs) -> miette::Result<()> {
    miette::bail!("kiln load is not implemented yet")
}
pub fn import(_root: Option<PathBuf>, _args: ImportArgs) -> miette::Result<()> {
    miette::bail!("kiln import is not implemented yet")
}
