//! The image config a build writes, and the base-image view the planner reads: conversions
//! between the plan's config model (`kiln_compiler::plan::ImageConfig`) and the OCI config
//! (`crate::oci::ImageConfig`), plus the store as the planner's `ImageResolver`.
//! Must not: decide config contents (the plan already did).

use kiln_compiler::dockerfile::{ImageResolver, ResolvedImage};
use kiln_compiler::plan::{HealthConfig, HistoryEntry, ImageConfig as PlanConfig};

use crate::oci::{self, Digest, Healthcheck, History, RootFs, RunConfig};
use crate::store::Store;

/// The OCI config of a built image. `created` comes from SOURCE_DATE_EPOCH (0 when unset).
pub fn image_config(
    config: &PlanConfig,
    diff_ids: Vec<Digest>,
    history: &[HistoryEntry],
    created: u64,
) -> oci::ImageConfig {
    let (os, arch) = kiln_compiler::dockerfile::lower::host_platform();
    let stamp = oci::time::format_rfc3339(created as i64);
    oci::ImageConfig {
        architecture: arch.to_string(),
        os: os.to_string(),
        config: to_run_config(config),
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

pub fn to_run_config(c: &PlanConfig) -> RunConfig {
    RunConfig {
        user: c.user.clone(),
        exposed_ports: c
            .exposed_ports
            .keys()
            .map(|k| (k.clone(), Default::default()))
            .collect(),
        env: c.env.clone(),
        entrypoint: c.entrypoint.clone().unwrap_or_default(),
        cmd: c.cmd.clone().unwrap_or_default(),
        volumes: c
            .volumes
            .keys()
            .map(|k| (k.clone(), Default::default()))
            .collect(),
        working_dir: c.working_dir.clone(),
        labels: c.labels.clone(),
        stop_signal: c.stop_signal.clone(),
        args_escaped: c.args_escaped,
        healthcheck: c.healthcheck.as_ref().map(|h| Healthcheck {
            test: h.test.clone(),
            interval: h.interval,
            timeout: h.timeout,
            start_period: h.start_period,
            start_interval: h.start_interval,
            retries: h.retries,
        }),
        on_build: c.on_build.clone(),
        shell: c.shell.clone().unwrap_or_default(),
    }
}

pub fn from_run_config(c: &RunConfig) -> PlanConfig {
    let nonempty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    PlanConfig {
        user: c.user.clone(),
        exposed_ports: c
            .exposed_ports
            .keys()
            .map(|k| (k.clone(), Default::default()))
            .collect(),
        env: c.env.clone(),
        entrypoint: nonempty(&c.entrypoint),
        cmd: nonempty(&c.cmd),
        volumes: c
            .volumes
            .keys()
            .map(|k| (k.clone(), Default::default()))
            .collect(),
        working_dir: c.working_dir.clone(),
        labels: c.labels.clone(),
        stop_signal: c.stop_signal.clone(),
        healthcheck: c.healthcheck.as_ref().map(|h| HealthConfig {
            test: h.test.clone(),
            interval: h.interval,
            timeout: h.timeout,
            start_period: h.start_period,
            start_interval: h.start_interval,
            retries: h.retries,
        }),
        shell: nonempty(&c.shell),
        on_build: c.on_build.clone(),
        args_escaped: c.args_escaped,
    }
}

/// The store answers the planner's base-image questions.
impl ImageResolver for Store {
    fn resolve(&self, reference: &str) -> Option<ResolvedImage> {
        let image = self.image(reference).ok()?;
        Some(ResolvedImage {
            digest: image.manifest_digest.to_string(),
            config: from_run_config(&image.config.config),
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
        })
    }
}
