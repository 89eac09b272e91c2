//! `kiln pull`: a manifest (choosing the platform from an index or manifest list), its config
//! and layers from a registry into the store, layers in parallel; with `--all-platforms`, an
//! index whole (its exact bytes, every child manifest and their blobs).
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
use crate::store::{Store, StoreError, Stored};

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
    /// Keep an index whole: the index's exact bytes and every child manifest with its blobs
    /// (`--all-platforms`). A reference to a single manifest is pulled as usual.
    pub all_platforms: bool,
}

/// The result of a pull.
#[derive(Debug)]
pub struct Pulled {
    /// What the tag (or digest) now names in the store: the image, or the whole index.
    pub stored: Stored,
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
    let tags = if digest.is_some() {
        Vec::new()
    } else {
        vec![name.clone()]
    };
    if from_index && options.all_platforms {
        return pull_index(store, &client, name, &top, &shown, &tags, progress);
    }
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
    let fetched_blobs = fetch_missing(
        &client,
        store,
        name.path(),
        std::iter::once(&manifest.config).chain(&manifest.layers),
        progress,
    )?;
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
        if !have.satisfies(wanted) {
            return Err(RegistryError::NoPlatform {
                reference: shown,
                wanted: wanted.text(),
                available: have.text(),
            });
        }
    }
    // The manifest was verified when fetched; its blobs are all in; now it may go in.
    put_verified(store, &fetched.bytes, &fetched.digest, &shown)?;
    let image = store.register_image(&fetched.digest, &tags)?;
    Ok(Pulled {
        stored: Stored::Image(Box::new(image)),
        resolved_digest,
        fetched: fetched_blobs,
    })
}

/// Fetches the blobs of `blobs` the store lacks (each once, [`WORKERS`] at a time); returns
/// how many it fetched.
fn fetch_missing<'d>(
    client: &Client,
    store: &Store,
    path: &str,
    blobs: impl Iterator<Item = &'d Descriptor>,
    progress: &dyn TransferProgress,
) -> Result<usize> {
    let mut seen = std::collections::BTreeSet::new();
    let missing: Vec<&Descriptor> = blobs
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
        fetch_blob(client, store, path, d, progress)
    })?;
    Ok(missing.len())
}

/// `--all-platforms` of an index: every child manifest (verified against the index's
/// descriptor), every child's blobs, then the children's and the index's exact bytes, and
/// last the index under `tags`.
fn pull_index(
    store: &Store,
    client: &Client,
    name: &ImageName,
    top: &Fetched,
    shown: &str,
    tags: &[crate::image::ImageName],
    progress: &dyn TransferProgress,
) -> Result<Pulled> {
    let index: Index = parse(client, shown, &top.bytes)?;
    let mut children = Vec::new();
    for child in &index.manifests {
        let bad = |reason: String| RegistryError::BadDocument {
            host: client.host().to_string(),
            what: format!("the index of {shown}"),
            reason,
        };
        if is_index_media_type(&child.media_type) {
            return Err(bad(format!(
                "it names another index ({}); nested indexes are not kept",
                child.digest
            )));
        }
        let fetched = fetch_manifest(
            client,
            name.path(),
            &child.digest.to_string(),
            Some(&child.digest),
        )?;
        if fetched.bytes.len() as u64 != child.size || is_index_media_type(&fetched.media_type) {
            return Err(bad(format!(
                "its entry {} does not describe the manifest the registry has",
                child.digest
            )));
        }
        let manifest: Manifest = parse(client, shown, &fetched.bytes)?;
        children.push((fetched, manifest));
    }
    let fetched_blobs = fetch_missing(
        client,
        store,
        name.path(),
        children
            .iter()
            .flat_map(|(_, m)| std::iter::once(&m.config).chain(&m.layers)),
        progress,
    )?;
    // Every blob is in: the verified manifests and the index may go in, index last.
    for (fetched, _) in &children {
        put_verified(store, &fetched.bytes, &fetched.digest, shown)?;
    }
    put_verified(store, &top.bytes, &top.digest, shown)?;
    let stored = store.register_index(&top.digest, tags)?;
    Ok(Pulled {
        stored: Stored::Index(stored),
        resolved_digest: top.digest.clone(),
        fetched: fetched_blobs,
    })
}

/// Stores bytes already verified as `digest` (and checks the store agrees).
fn put_verified(store: &Store, bytes: &[u8], digest: &Digest, shown: &str) -> Result<()> {
    let stored = store.put_blob(bytes)?;
    if stored != *digest {
        return Err(StoreError::DigestMismatch {
            what: format!("a manifest of {shown}"),
            expected: digest.clone(),
            actual: stored,
        }
        .into());
    }
    Ok(())
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

fn choose_platform<'i>(
    index: &'i Index,
    wanted: Option<&Platform>,
    shown: &str,
) -> Result<&'i Descriptor> {
    let host = Platform::host_default();
    let wanted = wanted.unwrap_or(&host);
    index
        .manifest_for(wanted)
        .ok_or_else(|| RegistryError::NoPlatform {
            reference: shown.to_string(),
            wanted: wanted.text(),
            available: index.platforms_text(),
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
