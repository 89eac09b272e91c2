//! Base images for `kiln build`: the store's, pulled from their registry when missing (or
//! always checked with `--pull`), so a `FROM` names whatever the registry has and the plan
//! records the manifest digest it resolved to.
//!
//! Must not: hide a registry failure. Lowering only asks "is there such an image", so the
//! failures are kept and handed back with [`PullingResolver::failures`] for the caller to show
//! beside the planner's "no such image" diagnostic.

use std::sync::Mutex;

use kiln_plan::plan::{ImageLookupError, ImageResolver, ResolvedImage};

use super::{pull, PullOptions, RegistryError, RegistryOptions, TransferProgress};
use crate::image::ImageRef;
use crate::store::Store;

pub struct PullingResolver<'a> {
    pub store: &'a Store,
    pub registry: &'a RegistryOptions,
    /// Check the registry even for images the store has (`--pull`).
    pub always: bool,
    pub progress: &'a dyn TransferProgress,
    failures: Mutex<Vec<(String, RegistryError)>>,
}

impl<'a> PullingResolver<'a> {
    pub fn new(
        store: &'a Store,
        registry: &'a RegistryOptions,
        always: bool,
        progress: &'a dyn TransferProgress,
    ) -> PullingResolver<'a> {
        PullingResolver {
            store,
            registry,
            always,
            progress,
            failures: Mutex::new(Vec::new()),
        }
    }

    /// The pulls that failed, with the reference each was for.
    pub fn failures(self) -> Vec<(String, RegistryError)> {
        self.failures.into_inner().unwrap_or_default()
    }
}

impl ImageResolver for PullingResolver<'_> {
    fn resolve(&self, reference: &str) -> Result<Option<ResolvedImage>, ImageLookupError> {
        if !self.always {
            if let Some(found) = ImageResolver::resolve(self.store, reference)? {
                return Ok(Some(found));
            }
        }
        let (name, digest) = match ImageRef::parse(reference) {
            Ok(ImageRef::Name { name, .. }) => (name, None),
            Ok(ImageRef::NameDigest { name, digest }) => (name, Some(digest)),
            // IDs and bare digests name only what the store has.
            _ => return ImageResolver::resolve(self.store, reference),
        };
        if digest.as_ref().is_some_and(|d| self.store.has_blob(d)) {
            return ImageResolver::resolve(self.store, reference);
        }
        if let Err(e) = pull(
            self.store,
            &name,
            digest.as_ref(),
            self.registry,
            &PullOptions::default(),
            self.progress,
        ) {
            if let Ok(mut f) = self.failures.lock() {
                f.push((reference.to_string(), e));
            }
        }
        ImageResolver::resolve(self.store, reference)
    }
}
