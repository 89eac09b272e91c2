//! OCI (and docker-compatible) image formats: digests, descriptors, manifests, indexes,
//! image configs, media types, and their one deterministic JSON encoding.
//!
//! Owns the serde types and the rules for writing them: fixed field order, no insignificant
//! whitespace, maps as `BTreeMap`, empty and absent fields omitted (as the OCI Go types do with
//! `omitempty`), and `null` read back as empty. Configs written by docker (with `null` fields
//! and extra keys) are read leniently, but kiln never rewrites a blob it did not make: a loaded
//! config or manifest keeps its bytes and digest.
//! Must not: touch the filesystem or know the store's layout.

pub mod digest;
pub mod time;

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

pub use digest::{Digest, DigestError, DigestReader, DigestWriter};

pub const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_TYPE_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_TYPE_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_TYPE_DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_TYPE_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MEDIA_TYPE_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const MEDIA_TYPE_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Annotation with the full image reference (`docker.io/library/app:1.0`), as containerd and
/// docker write it into `index.json`.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// Annotation with the tag alone (`1.0`), from the OCI image-layout spec.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation with the image's creation time.
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";

/// The `oci-layout` file of an image layout.
pub const OCI_LAYOUT_FILE: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression a layer media type names; `None` for media types that are not layers
    /// kiln can read (foreign or encrypted layers, unknown types).
    pub fn of_layer_media_type(media_type: &str) -> Option<Compression> {
        match media_type {
            MEDIA_TYPE_OCI_LAYER
            | MEDIA_TYPE_DOCKER_LAYER
            | "application/vnd.oci.image.layer.nondistributable.v1.tar" => Some(Compression::None),
            MEDIA_TYPE_OCI_LAYER_GZIP
            | MEDIA_TYPE_DOCKER_LAYER_GZIP
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                Some(Compression::Gzip)
            }
            MEDIA_TYPE_OCI_LAYER_ZSTD
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
                Some(Compression::Zstd)
            }
            _ => None,
        }
    }

    /// The media type of a layer with this compression, in the OCI or docker v2 family.
    /// Docker v2 has no zstd layer type; zstd layers always use the OCI one.
    pub fn layer_media_type(self, docker: bool) -> &'static str {
        match (self, docker) {
            (Compression::None, false) => MEDIA_TYPE_OCI_LAYER,
            (Compression::None, true) => MEDIA_TYPE_DOCKER_LAYER,
            (Compression::Gzip, false) => MEDIA_TYPE_OCI_LAYER_GZIP,
            (Compression::Gzip, true) => MEDIA_TYPE_DOCKER_LAYER_GZIP,
            (Compression::Zstd, _) => MEDIA_TYPE_OCI_LAYER_ZSTD,
        }
    }

    /// `none`, `gzip` or `zstd`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// True for manifest media types of one image (OCI or docker v2).
pub fn is_manifest_media_type(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_OCI_MANIFEST || media_type == MEDIA_TYPE_DOCKER_MANIFEST
}

/// True for index media types (OCI index or docker manifest list).
pub fn is_index_media_type(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_OCI_INDEX || media_type == MEDIA_TYPE_DOCKER_MANIFEST_LIST
}

/// Reads `null` as the type's default (docker writes `"Env": null` and the like).
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The platform an image or manifest is for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default, deserialize_with = "null_as_default")]
    pub architecture: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub os_features: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform kiln runs on, in OCI terms (`linux`/`amd64`, `linux`/`arm64`/`v8`, ...),
    /// from the compiler's one table (`kiln_plan::platform`).
    pub fn host() -> Platform {
        let host = kiln_plan::platform::host();
        Platform {
            architecture: host.architecture.to_string(),
            os: host.os.to_string(),
            os_version: None,
            os_features: Vec::new(),
            variant: host.variant.map(str::to_string),
        }
    }

    /// Same os and architecture (variants are not compared).
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os && self.architecture == other.architecture
    }

    /// Same os and architecture as `wanted`, and the same variant when `wanted` names one.
    pub fn satisfies(&self, wanted: &Platform) -> bool {
        self.matches(wanted)
            && wanted
                .variant
                .as_ref()
                .is_none_or(|v| self.variant.as_ref() == Some(v))
    }

    /// `os/arch[/variant]`.
    pub fn text(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }

    /// The host's os and architecture without a variant: what an index is asked for when no
    /// platform is given (any variant of the host's architecture is taken).
    pub fn host_default() -> Platform {
        Platform {
            variant: None,
            ..Platform::host()
        }
    }
}

/// A content descriptor: what a manifest or index points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default, deserialize_with = "null_as_default")]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub urls: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
        }
    }
}

/// An image manifest (OCI, or docker v2 schema 2 which has the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default, deserialize_with = "null_as_default")]
    pub layers: Vec<Descriptor>,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub annotations: BTreeMap<String, String>,
}

impl Manifest {
    /// An OCI manifest for a config and its layers.
    pub fn oci(config: Descriptor, layers: Vec<Descriptor>) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_OCI_MANIFEST.to_string()),
            config,
            layers,
            annotations: BTreeMap::new(),
        }
    }
}

/// An image index (OCI) or manifest list (docker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub manifests: Vec<Descriptor>,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub annotations: BTreeMap<String, String>,
}

impl Index {
    /// An empty OCI index.
    pub fn new(manifests: Vec<Descriptor>) -> Index {
        Index {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_OCI_INDEX.to_string()),
            manifests,
            annotations: BTreeMap::new(),
        }
    }

    /// The first image manifest for `wanted` (see [`Platform::satisfies`]); nested indexes
    /// are not looked into.
    pub fn manifest_for(&self, wanted: &Platform) -> Option<&Descriptor> {
        self.manifests.iter().find(|d| {
            !is_index_media_type(&d.media_type)
                && d.platform.as_ref().is_some_and(|p| p.satisfies(wanted))
        })
    }

    /// The platforms the index offers, as `os/arch[/variant]`, leaving out `unknown/unknown`
    /// (attestations): for "it has: ..." messages.
    pub fn platforms_text(&self) -> String {
        self.manifests
            .iter()
            .filter(|d| !is_index_media_type(&d.media_type))
            .filter_map(|d| d.platform.as_ref())
            .filter(|p| p.os != "unknown")
            .map(Platform::text)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The image config's `config` object (how a container runs) is the planner's model.
pub use kiln_plan::plan::config::Empty;
pub use kiln_plan::plan::{HealthConfig, RunConfig};

/// `rootfs`: the layers' diff_ids, bottom first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: "layers".to_string(),
            diff_ids: Vec::new(),
        }
    }
}

/// One `history` entry. Entries with `empty_layer` false match `rootfs.diff_ids` one to one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "null_as_default"
    )]
    pub empty_layer: bool,
}

/// An image config (the blob whose digest is the image ID): the platform, the layers'
/// diff_ids, history and timestamps, and under `config` the plan's [`RunConfig`]. Top-level
/// keys are written in alphabetical order, as docker and BuildKit write them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, deserialize_with = "null_as_default")]
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "RunConfig::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub config: RunConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub history: Vec<History>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub os: String,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub os_features: Vec<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl ImageConfig {
    /// The platform this config is for.
    pub fn platform(&self) -> Platform {
        Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            os_version: self.os_version.clone(),
            os_features: self.os_features.clone(),
            variant: self.variant.clone(),
        }
    }
}

/// The one JSON encoding kiln writes: compact, fields in declaration order, maps sorted.
pub fn to_canonical_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these types cannot fail: every map key is a string and no custom
    // serializer returns an error. An empty vector would surface as a digest mismatch.
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_config_with_nulls() {
        let raw = br#"{"architecture":"amd64","comment":"Imported from -","config":{"Hostname":"","Env":null,"Cmd":null,"Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null},"container_config":{},"created":"2026-11-23T18:47:25.837697515Z","docker_version":"20.10.24","history":[{"created":"2026-11-23T18:47:25.837697515Z","comment":"Imported from -"}],"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:9d1fcf861ff197f78cfe8969667f7a875271ce9622e8739d302ffe77119ebe90"]}}"#;
        let c: ImageConfig = serde_json::from_slice(raw).unwrap();
        assert_eq!(c.architecture, "amd64");
        assert!(c.config.env.is_empty());
        assert_eq!(c.rootfs.diff_ids.len(), 1);
        assert_eq!(c.history.len(), 1);
        assert!(!c.history[0].empty_layer);
    }

    #[test]
    fn writes_deterministic_compact_json() {
        let mut c = ImageConfig {
            architecture: "amd64".into(),
            os: "linux".into(),
            created: Some(time::format_rfc3339(0)),
            ..Default::default()
        };
        c.config.env = vec!["PATH=/bin".into()];
        c.config.labels.insert("b".into(), "2".into());
        c.config.labels.insert("a".into(), "1".into());
        c.config.exposed_ports.insert("80/tcp".into(), Empty {});
        c.rootfs.diff_ids.push(Digest::of_bytes(b""));
        c.history.push(History {
            created: Some("1970-01-01T00:00:00Z".into()),
            created_by: Some("ENV PATH=/bin".into()),
            empty_layer: true,
            ..Default::default()
        });
        let json = String::from_utf8(to_canonical_json(&c)).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"{"architecture":"amd64","config":{"ExposedPorts":{"80/tcp":{}},"Env":["PATH=/bin"],"Labels":{"a":"1","b":"2"}},"#,
                r#""created":"1970-01-01T00:00:00Z","history":[{"created":"1970-01-01T00:00:00Z","created_by":"ENV PATH=/bin","empty_layer":true}],"#,
                r#""os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]}}"#
            )
        );
        let back: ImageConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        assert_eq!(to_canonical_json(&back), json.as_bytes());
    }

    #[test]
    fn layer_media_types() {
        assert_eq!(
            Compression::of_layer_media_type(MEDIA_TYPE_DOCKER_LAYER_GZIP),
            Some(Compression::Gzip)
        );
        assert_eq!(
            Compression::of_layer_media_type(MEDIA_TYPE_OCI_LAYER),
            Some(Compression::None)
        );
        assert_eq!(
            Compression::of_layer_media_type("application/x-unknown"),
            None
        );
    }
}
