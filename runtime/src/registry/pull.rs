//! `kiln pull`: a manifest (choosing the platform from an index or manifest list), its config
//! and layers from a registry into the store, layers in parallel.
//!
//! Every byte is verified before it enters the store: manifests against the digest asked for,
//! the index's descriptor or the registry's `Docker-Content-Digest`; blobs through
//! `BlobWriter::commit` with the digest the manifest names. A failed attempt (a dropped
//! connection, a truncated body) drops its staged file and starts again. Must not: register
//! an image before all its blobs are stored.

use std::io::{Read, Write};

use serde::Deserialize;

use super::transport::{Body, Client};
use super::{in_parallel, RegistryError, RegistryOptions, Result, TransferEvent, TransferProgress};
use crate::image::ImageName;
use crate::oci::{
    is_index_media_type, Descriptor, Digest, Index, Manifest, Platform, MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_DOCKER_MANIFEST_LIST, MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST,
};
use crate::store::{Image, Store, StoreError};

/// Largest manifest or index accepted (the distribution spec's limit is 4 MiB).
pub(crate) const MANIFEST_LIMIT: u64 = 4 * 1024 * 1024;
/// Blobs moved at once.
pub(crate) const WORKERS: usize = 4;
/// Every manifest type kiln reads, for the `Accept` header.
pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// What to pull besides the reference.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// The platform to pick from an index (default: the host's os and architecture; a
    /// variant is compared only when given here).
    pub platform: Option<Platform>,
}

/// The result of a pull.
#[derive(Debug)]
pub struct Pulled {
    pub image: Image,
    /// The digest the reference resolved to (the index's when it named one).
    pub resolved_digest: Digest,
    /// Blobs fetched (the others were already in the store).
    pub fetched: usize,
}

/// A manifest or index as fetched: exact bytes, digest, media type.
pub(crate) struct Fetched {
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub media_type: String,
}

#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
}

/// Pulls `name` (at `digest` when given, else its tag) into the store and tags it (an image
/// pulled by digest stays untagged, as in docker).
pub fn pull(
    store: &Store,
    name: &ImageName,
    digest: Option<&Digest>,
    registry: &RegistryOptions,
    options: &PullOptions,
    progress: &dyn TransferProgress,
) -> Result<Pulled> {
    let client = Client::connect(
        name.domain(),
        registry,
        None,
        vec![format!("repository:{}:pull", name.path())],
    )?;
    let reference = match digest {
        Some(d) => d.to_string(),
        None => name.tag().to_string(),
    };
    let top = fetch_manifest(&client, name.path(), &reference, digest)?;
    let resolved_digest = top.digest.clone();
    let shown = match digest {
        Some(d) => format!("{}@{d}", name.repository()),
        None => name.familiar(),
    };
    let from_index = is_index_media_type(&top.media_type);
    let fetched = if from_index {
        let index: Index = parse(&client, &shown, &top.bytes)?;
        let chosen = choose_platform(&index, options.platform.as_ref(), &shown)?;
        let manifest = fetch_manifest(
            &client,
            name.path(),
            &chosen.digest.to_string(),
            Some(&chosen.digest),
        )?;
        if is_index_media_type(&manifest.media_type) {
            return Err(RegistryError::BadDocument {
                host: client.host().to_string(),
                what: format!("the manifest for {shown}"),
                reason: "an index names another index as a platform's image".to_string(),
            });
        }
        manifest
    } else {
        top
    };
    let manifest: Manifest = parse(&client, &shown, &fetched.bytes)?;
    let mut seen = std::collections::BTreeSet::new();
    let missing: Vec<&Descriptor> = std::iter::once(&manifest.config)
        .chain(&manifest.layers)
        .filter(|d| seen.insert(d.digest.clone()))
        .filter(|d| {
            let have = store.has_blob(&d.digest);
            if have {
                progress.event(TransferEvent::Exists {
                    digest: d.digest.clone(),
                });
            }
            !have
        })
        .collect();
    in_parallel(&missing, WORKERS, |d| {
        fetch_blob(&client, store, name.path(), d, progress)
    })?;
    // A single manifest pulled with --platform must be for that platform (one chosen from an
    // index is taken for the platform the index names, as docker does).
    if let Some(wanted) = options.platform.as_ref().filter(|_| !from_index) {
        let config: crate::oci::ImageConfig =
            serde_json::from_slice(&store.read_blob(&manifest.config.digest)?).map_err(|e| {
                StoreError::BadJson {
                    what: format!("the config of {shown}"),
                    error: e,
                }
            })?;
        let have = config.platform();
        if !platform_matches(&have, wanted) {
            return Err(RegistryError::NoPlatform {
                reference: shown,
                wanted: platform_text(wanted),
                available: platform_text(&have),
            });
        }
    }
    // The manifest was verified when fetched; its blobs are all in; now it may go in.
    let stored = store.put_blob(&fetched.bytes)?;
    if stored != fetched.digest {
        return Err(StoreError::DigestMismatch {
            what: format!("the manifest of {shown}"),
            expected: fetched.digest,
            actual: stored,
        }
        .into());
    }
    let tags = if digest.is_some() {
        Vec::new()
    } else {
        vec![name.clone()]
    };
    let image = store.register_image(&stored, &tags)?;
    Ok(Pulled {
        image,
        resolved_digest,
        fetched: missing.len(),
    })
}

fn parse<T: serde::de::DeserializeOwned>(client: &Client, shown: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| RegistryError::BadDocument {
        host: client.host().to_string(),
        what: format!("the manifest of {shown}"),
        reason: e.to_string(),
    })
}

/// `GET /v2/<path>/manifests/<reference>`, verified: against `expected` when given, else
/// against the registry's `Docker-Content-Digest` when it sends one.
pub(crate) fn fetch_manifest(
    client: &Client,
    path: &str,
    reference: &str,
    expected: Option<&Digest>,
) -> Result<Fetched> {
    let what = format!("manifest {path}:{reference}");
    client.retrying(
        &what,
        |_, _| {},
        || {
            let response = client.send(
                "GET",
                &format!("/v2/{path}/manifests/{reference}"),
                &[("Accept", MANIFEST_ACCEPT)],
                &Body::Empty,
                &what,
            )?;
            let content_type = response
                .header("Content-Type")
                .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
            let header_digest = response
                .header("Docker-Content-Digest")
                .and_then(|d| d.parse::<Digest>().ok());
            let mut bytes = Vec::new();
            response
                .into_reader()
                .take(MANIFEST_LIMIT + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| RegistryError::Unreachable {
                    host: client.host().to_string(),
                    message: format!("reading {what}: {e}"),
                })?;
            if bytes.len() as u64 > MANIFEST_LIMIT {
                return Err(RegistryError::BadDocument {
                    host: client.host().to_string(),
                    what: what.clone(),
                    reason: format!("it is larger than {MANIFEST_LIMIT} bytes"),
                });
            }
            let digest = Digest::of_bytes(&bytes);
            if let Some(want) = expected.or(header_digest.as_ref()) {
                if *want != digest {
                    return Err(RegistryError::DigestMismatch {
                        host: client.host().to_string(),
                        what: what.clone(),
                        expected: want.clone(),
                        actual: digest,
                    });
                }
            }
            let probe: Probe =
                serde_json::from_slice(&bytes).map_err(|e| RegistryError::BadDocument {
                    host: client.host().to_string(),
                    what: what.clone(),
                    reason: e.to_string(),
                })?;
            let media_type = probe
                .media_type
                .or(content_type)
                .filter(|m| known_manifest_type(m))
                .unwrap_or_else(|| {
                    // OCI documents may omit mediaType: an index has `manifests`.
                    if probe.manifests.is_some() {
                        MEDIA_TYPE_OCI_INDEX.to_string()
                    } else {
                        MEDIA_TYPE_OCI_MANIFEST.to_string()
                    }
                });
            Ok(Fetched {
                bytes,
                digest,
                media_type,
            })
        },
    )
}

fn known_manifest_type(m: &str) -> bool {
    [
        MEDIA_TYPE_OCI_INDEX,
        MEDIA_TYPE_OCI_MANIFEST,
        MEDIA_TYPE_DOCKER_MANIFEST,
        MEDIA_TYPE_DOCKER_MANIFEST_LIST,
    ]
    .contains(&m)
}

/// `os/arch[/variant]`.
pub(crate) fn platform_text(p: &Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

/// Same os and architecture, and the same variant when `wanted` names one.
fn platform_matches(have: &Platform, wanted: &Platform) -> bool {
    have.matches(wanted)
        && wanted
            .variant
            .as_ref()
            .is_none_or(|v| have.variant.as_ref() == Some(v))
}

fn choose_platform<'i>(
    index: &'i Index,
    wanted: Option<&Platform>,
    shown: &str,
) -> Result<&'i Descriptor> {
    let host = Platform {
        variant: None,
        ..Platform::host()
    };
    let wanted = wanted.unwrap_or(&host);
    let images: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| !is_index_media_type(&d.media_type))
        .collect();
    images
        .iter()
        .copied()
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| platform_matches(p, wanted))
        })
        .ok_or_else(|| RegistryError::NoPlatform {
            reference: shown.to_string(),
            wanted: platform_text(wanted),
            available: images
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .filter(|p| p.os != "unknown")
                .map(platform_text)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// `GET` of a small blob (at most `limit` bytes) into memory, verified against `desc`;
/// retried like any download.
pub(crate) fn fetch_small_blob(
    client: &Client,
    path: &str,
    desc: &Descriptor,
    limit: u64,
) -> Result<Vec<u8>> {
    let what = format!("blob {}", desc.digest);
    if desc.size > limit {
        return Err(RegistryError::BadDocument {
            host: client.host().to_string(),
            what,
            reason: format!("it is larger than {limit} bytes"),
        });
    }
    client.retrying(
        &what,
        |_, _| {},
        || {
            let response = client.send(
                "GET",
                &format!("/v2/{path}/blobs/{}", desc.digest),
                &[],
                &Body::Empty,
                &what,
            )?;
            let mut bytes = Vec::new();
            response
                .into_reader()
                .take(desc.size.saturating_add(1))
                .read_to_end(&mut bytes)
                .map_err(|e| RegistryError::Unreachable {
                    host: client.host().to_string(),
                    message: format!("reading {what}: {e}"),
                })?;
            let actual = Digest::of_bytes(&bytes);
            if actual != desc.digest || bytes.len() as u64 != desc.size {
                return Err(RegistryError::DigestMismatch {
                    host: client.host().to_string(),
                    what: what.clone(),
                    expected: desc.digest.clone(),
                    actual,
                });
            }
            Ok(bytes)
        },
    )
}

/// Downloads one blob into the store, verified; retried from the start on failure (the
/// staged file of a failed attempt is dropped, so nothing partial remains).
pub(crate) fn fetch_blob(
    client: &Client,
    store: &Store,
    path: &str,
    desc: &Descriptor,
    progress: &dyn TransferProgress,
) -> Result<()> {
    let what = format!("blob {}", desc.digest);
    progress.event(TransferEvent::Start {
        digest: desc.digest.clone(),
        size: desc.size,
    });
    client.retrying(
        &what,
        |attempt, e| {
            progress.event(TransferEvent::Retry {
                digest: desc.digest.clone(),
                attempt,
                error: e.to_string(),
            })
        },
        || {
            let response = client.send(
                "GET",
                &format!("/v2/{path}/blobs/{}", desc.digest),
                &[],
                &Body::Empty,
                &what,
            )?;
            let mut writer = store.blob_writer()?;
            let mut reader = response.into_reader().take(desc.size.saturating_add(1));
            let mut buf = vec![0u8; 256 * 1024];
            let mut reported = 0u64;
            loop {
                let n = reader
                    .read(&mut buf)
                    .map_err(|e| RegistryError::Unreachable {
                        host: client.host().to_string(),
                        message: format!("reading {what}: {e}"),
                    })?;
                if n == 0 {
                    break;
                }
                let chunk = buf.get(..n).unwrap_or_default();
                writer.write_all(chunk).map_err(|e| {
                    RegistryError::Store(StoreError::Io {
                        action: "write",
                        path: store.root().join("tmp"),
                        error: e,
                    })
                })?;
                if writer.size() - reported >= 1 << 20 {
                    reported = writer.size();
                    progress.event(TransferEvent::Bytes {
                        digest: desc.digest.clone(),
                        done: reported,
                    });
                }
            }
            if writer.size() != desc.size {
                let got = writer.size();
                // Dropping the writer removes the staged bytes.
                drop(writer);
                return Err(RegistryError::Unreachable {
                    host: client.host().to_string(),
                    message: format!("{what}: got {got} bytes, the manifest says {}", desc.size),
                });
            }
            match writer.commit(Some(&desc.digest)) {
                Ok(_) => Ok(()),
                Err(StoreError::DigestMismatch {
                    expected, actual, ..
                }) => Err(RegistryError::DigestMismatch {
                    host: client.host().to_string(),
                    what: what.clone(),
                    expected,
                    actual,
                }),
                Err(e) => Err(e.into()),
            }
        },
    )?;
    progress.event(TransferEvent::Done {
        digest: desc.digest.clone(),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(os: &str, arch: &str, variant: Option<&str>) -> Descriptor {
        let mut d = Descriptor::new(
            MEDIA_TYPE_OCI_MANIFEST,
            Digest::of_bytes(format!("{os}{arch}{variant:?}").as_bytes()),
            1,
        );
        d.platform = Some(Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(str::to_string),
            ..Platform::default()
        });
        d
    }

    fn platform(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(str::to_string),
            ..Platform::default()
        }
    }

    #[test]
    fn picks_the_platform_asked_for() {
        let index = Index::new(vec![
            desc("linux", "amd64", None),
            desc("linux", "arm", Some("v6")),
            desc("linux", "arm", Some("v7")),
            desc("unknown", "unknown", None),
        ]);
        let pick = |p: Platform| choose_platform(&index, Some(&p), "x").map(|d| d.digest.clone());
        assert_eq!(
            pick(platform("linux", "arm", Some("v7"))).unwrap(),
            index.manifests[2].digest
        );
        assert_eq!(
            pick(platform("linux", "arm", None)).unwrap(),
            index.manifests[1].digest
        );
        assert_eq!(
            pick(platform("linux", "amd64", None)).unwrap(),
            index.manifests[0].digest
        );
        let err = pick(platform("linux", "s390x", None))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("linux/amd64, linux/arm/v6, linux/arm/v7"),
            "{err}"
        );
        assert!(!err.contains("unknown/"), "{err}");
    }
}
