//! The image config a build writes (the plan's `RunConfig` and history inside an
//! `oci::ImageConfig`), and the store as the planner's `ImageResolver`.
//! Must not: decide config contents (the plan already did).

use kiln_plan::plan::{HistoryEntry, RunConfig};
use kiln_plan::plan::{ImageLookupError, ImageResolver, ResolvedImage};
use kiln_plan::platforms::Platform;

use crate::oci::{self, Digest, History, RootFs};
use crate::store::{Store, StoreError};

/// The OCI config of a built image. `created` comes from SOURCE_DATE_EPOCH (0 when unset).
pub fn image_config(
    config: &RunConfig,
    diff_ids: Vec<Digest>,
    history: &[HistoryEntry],
    created: u64,
) -> oci::ImageConfig {
    let host = oci::Platform::host();
    let stamp = oci::time::format_rfc3339(created as i64);
    oci::ImageConfig {
        architecture: host.architecture,
        variant: host.variant,
        os: host.os,
        config: config.clone(),
        created: Some(stamp.clone()),
        history: history
            .iter()
            .map(|h| History {
                created: Some(stamp.clone()),
                author: None,
                created_by: Some(h.created_by.clone()),
                comment: (!h.comment.is_empty()).then(|| h.comment.clone()),
                empty_layer: h.empty_layer,
            })
            .collect(),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids,
        },
        ..Default::default()
    }
}

/// The store answers the planner's base-image questions. Only "no such image" (or a
/// reference no image of the store can have) is an absent image; any other store error (an
/// unreadable index, a corrupt config, an ambiguous ID) stops planning as itself.
impl ImageResolver for Store {
    fn resolve(&self, reference: &str) -> Result<Option<ResolvedImage>, ImageLookupError> {
        let image = match self.image(reference) {
            Ok(image) => image,
            Err(StoreError::NoSuchImage { .. } | StoreError::Reference(_)) => return Ok(None),
            Err(other) => return Err(ImageLookupError(Box::new(other))),
        };
        Ok(Some(ResolvedImage {
            digest: image.manifest_digest.to_string(),
            config: image.config.config.clone(),
            history: image
                .config
                .history
                .iter()
                .map(|h| HistoryEntry {
                    created_by: h.created_by.clone().unwrap_or_default(),
                    comment: h.comment.clone().unwrap_or_default(),
                    empty_layer: h.empty_layer,
                })
                .collect(),
            platform: (!image.config.os.is_empty() && !image.config.architecture.is_empty()).then(
                || {
                    Platform::from_config(
                        &image.config.os,
                        &image.config.architecture,
                        image.config.variant.as_deref().unwrap_or(""),
                    )
                },
            ),
        }))
    }
}
