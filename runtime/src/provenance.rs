//! Build provenance: an in-toto Statement v1 whose predicate is SLSA provenance v1, for
//! `kiln build --provenance` and `kiln verify-provenance` (docs/provenance.md is the text).
//!
//! Owns the statement's model, making one from a plan and its image, and the context
//! digest: sha256 over the records (`ContextIndex::write_record`: path, kind, mode, link
//! target, blake3 of the content) of every context entry any step of the plan selected, in
//! path order. Deterministic: members in fixed order, maps sorted, no wall-clock time (the
//! only time is SOURCE_DATE_EPOCH, when the build was given one), so the same build writes the
//! same bytes.
//! Must not: read or write files, or hold secrets (`--secret` values never reach a plan).

use std::collections::BTreeMap;

use kiln_plan::plan::{Op, Plan};
use serde::{Deserialize, Serialize};

use crate::oci::Digest;

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// What `externalParameters` mean: a Dockerfile build by kiln (docs/provenance.md).
pub const BUILD_TYPE: &str = "urn:kiln:build-type:dockerfile:v1";

/// `annotations.role` of each resolved dependency.
pub const ROLE_DOCKERFILE: &str = "dockerfile";
pub const ROLE_CONTEXT: &str = "context";
pub const ROLE_BASE_IMAGE: &str = "base-image";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub type_: String,
    pub subject: Vec<Resource>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: Predicate,
}

/// An in-toto ResourceDescriptor (the members kiln uses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub digest: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Predicate {
    pub build_definition: BuildDefinition,
    pub run_details: RunDetails,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildDefinition {
    pub build_type: String,
    pub external_parameters: ExternalParameters,
    pub resolved_dependencies: Vec<Resource>,
}

/// What the user chose: everything `kiln verify-provenance` needs to build again.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalParameters {
    /// The context directory as given on the command line.
    pub context: String,
    /// `-f` as given; None for CONTEXT/Dockerfile.
    #[serde(default)]
    pub dockerfile: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
    /// `--build-arg`s (the last value of each name).
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    /// `--label`s.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `--network` of RUN steps.
    pub network: String,
    #[serde(default)]
    pub squash: bool,
    /// SOURCE_DATE_EPOCH as the build used it (from `--build-arg` or the environment).
    #[serde(default)]
    pub source_date_epoch: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunDetails {
    pub builder: Builder,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Builder {
    pub id: String,
    pub version: BTreeMap<String, String>,
}

/// The context digest of a plan: sha256 over the records of every context entry a step
/// selected, in path order.
pub fn context_digest(plan: &Plan) -> Digest {
    let mut which = Vec::new();
    for n in &plan.nodes {
        if let Op::Context(sel) = &n.op {
            which.extend_from_slice(&sel.files);
        }
    }
    let mut bytes = Vec::new();
    for i in kiln_plan::context::sorted_unique(&which) {
        plan.context.write_record(i, &mut bytes);
    }
    Digest::of_bytes(&bytes)
}

/// The base images a plan resolved: (reference, manifest digest), sorted, once each.
pub fn base_images(plan: &Plan) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = plan
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::BaseImage {
                reference,
                digest: Some(d),
                ..
            } => Some((reference.clone(), d.clone())),
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn sha256_set(d: &Digest) -> BTreeMap<String, String> {
    [("sha256".to_string(), d.hex().to_string())].into()
}

fn role(r: &str) -> BTreeMap<String, String> {
    [("role".to_string(), r.to_string())].into()
}

/// The statement for `manifest` built from `plan`.
pub fn statement(
    plan: &Plan,
    manifest: &Digest,
    tags: &[String],
    dockerfile_digest: &Digest,
    params: ExternalParameters,
    kiln_version: &str,
) -> Statement {
    let subject = if tags.is_empty() {
        vec![Resource {
            name: None,
            digest: sha256_set(manifest),
            annotations: BTreeMap::new(),
        }]
    } else {
        tags.iter()
            .map(|t| Resource {
                name: Some(t.clone()),
                digest: sha256_set(manifest),
                annotations: BTreeMap::new(),
            })
            .collect()
    };
    let mut deps = vec![
        Resource {
            name: Some("Dockerfile".into()),
            digest: sha256_set(dockerfile_digest),
            annotations: role(ROLE_DOCKERFILE),
        },
        Resource {
            name: Some("context".into()),
            digest: sha256_set(&context_digest(plan)),
            annotations: role(ROLE_CONTEXT),
        },
    ];
    for (reference, digest) in base_images(plan) {
        let hex = digest
            .strip_prefix("sha256:")
            .unwrap_or(&digest)
            .to_string();
        deps.push(Resource {
            name: Some(reference),
            digest: [("sha256".to_string(), hex)].into(),
            annotations: role(ROLE_BASE_IMAGE),
        });
    }
    Statement {
        type_: STATEMENT_TYPE.into(),
        subject,
        predicate_type: PREDICATE_TYPE.into(),
        predicate: Predicate {
            build_definition: BuildDefinition {
                build_type: BUILD_TYPE.into(),
                external_parameters: params,
                resolved_dependencies: deps,
            },
            run_details: RunDetails {
                builder: Builder {
                    id: format!("urn:kiln:builder:{kiln_version}"),
                    version: [("kiln".to_string(), kiln_version.to_string())].into(),
                },
            },
        },
    }
}

impl Statement {
    /// The file's bytes: pretty JSON and a newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// The sha256 digest (as `sha256:<hex>`) of the dependency with this role and name.
    pub fn dependency(&self, role: &str) -> Vec<(Option<&str>, Option<String>)> {
        self.predicate
            .build_definition
            .resolved_dependencies
            .iter()
            .filter(|d| d.annotations.get("role").map(String::as_str) == Some(role))
            .map(|d| {
                (
                    d.name.as_deref(),
                    d.digest.get("sha256").map(|h| format!("sha256:{h}")),
                )
            })
            .collect()
    }

    /// The subject's manifest digest, `sha256:<hex>`.
    pub fn subject_digest(&self) -> Option<String> {
        self.subject
            .first()
            .and_then(|s| s.digest.get("sha256"))
            .map(|h| format!("sha256:{h}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_in_the_documented_order() {
        let plan = Plan {
            nodes: vec![],
            target: kiln_plan::plan::NodeId(0),
            context: Default::default(),
        };
        let d = Digest::of_bytes(b"x");
        let params = ExternalParameters {
            context: ".".into(),
            network: "default".into(),
            build_args: [("B".to_string(), "2".to_string()), ("A".into(), "1".into())].into(),
            ..Default::default()
        };
        let s = statement(&plan, &d, &["app:1".into()], &d, params, "0.1.0");
        let text = String::from_utf8(s.to_bytes()).unwrap();
        let at = |needle: &str| {
            text.find(needle)
                .unwrap_or_else(|| panic!("{needle}: {text}"))
        };
        assert!(at("\"_type\"") < at("\"subject\""));
        assert!(at("\"predicateType\"") < at("\"predicate\":"));
        assert!(at("\"A\"") < at("\"B\""), "maps sorted");
        assert!(!text.contains("startedOn"), "no wall-clock time");
        let back: Statement = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.subject_digest(), Some(d.to_string()));
        assert_eq!(
            back.dependency(ROLE_CONTEXT)[0].1,
            Some(context_digest(&plan).to_string())
        );
    }
}
