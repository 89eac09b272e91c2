//! images, inspect, history, tag, rmi, prune: looking after the store's images.
use std::path::PathBuf;

use crate::cli::{HistoryArgs, ImagesArgs, InspectArgs, PruneArgs, RmiArgs, TagArgs};

pub fn images(_root: Option<PathBuf>, _a: ImagesArgs) -> miette::Result<()> {
    miette::bail!("kiln images is not implemented yet")
}
pub fn inspect(_root: Option<PathBuf>, _a: InspectArgs) -> miette::Result<()> {
    miette::bail!("kiln inspect is not implemented yet")
}
pub fn history(_root: Option<PathBuf>, _a: HistoryArgs) -> miette::Result<()> {
    miette::bail!("kiln history is not implemented yet")
}
pub fn tag(_root: Option<PathBuf>, _a: TagArgs) -> miette::Result<()> {
    miette::bail!("kiln tag is not implemented yet")
}
pub fn rmi(_root: Option<PathBuf>, _a: RmiArgs) -> miette::Result<()> {
    miette::bail!("kiln rmi is not implemented yet")
}
pub fn prune(_root: Option<PathBuf>, _a: PruneArgs) -> miette::Result<()> {
    miette::bail!("kiln prune is not implemented yet")
}
