//! `kiln push`: an image's blobs and manifest from the store to a registry.
//!
//! Order: `HEAD` of the tag (an unchanged image costs that one request); per blob, in
//! parallel, `HEAD` (skip when present), a cross-repository mount from another repository of
//! the same registry this image is tagged in, else an upload (monolithic up to
//! [`CHUNK`] bytes, chunked `PATCH`es beyond, resumed from the registry's offset after a
//! dropped connection); then `PUT` of the manifest with the exact bytes the store holds, so
//! its digest does not change. Must not: re-encode a manifest or config.

use std::collections::BTreeSet;

use super::transport::{Body, Client};
use super::{in_parallel, RegistryError, RegistryOptions, Result, TransferEvent, TransferProgress};
use crate::image::{ImageName, ImageRef};
use crate::oci::{Descriptor, Digest, MEDIA_TYPE_OCI_MANIFEST};
use crate::store::{Image, Store};

/// Blobs up to this size go up in one `PUT`; larger ones in `PATCH` chunks of this size.
pub const CHUNK: u64 = 64 * 1024 * 1024;

/// The result of a push.
#[derive(Debug)]
pub struct Pushed {
    pub name: ImageName,
    pub digest: Digest,
    pub size: u64,
    /// Blobs uploaded, mounted from another repository, and already present.
    pub uploaded: usize,
    pub mounted: usize,
    pub existed: usize,
}

/// Pushes the store's image tagged `name` to `name`'s registry and repository.
pub fn push(
    store: &Store,
    name: &ImageName,
    registry: &RegistryOptions,
    progress: &dyn TransferProgress,
) -> Result<Pushed> {
    let image = store.resolve(&ImageRef::Name {
        name: name.clone(),
        tag_given: true,
    })?;
    let manifest_bytes = store.read_blob(&image.manifest_digest)?;
    let media_type = image
        .manifest
        .media_type
        .clone()
        .unwrap_or_else(|| MEDIA_TYPE_OCI_MANIFEST.to_string());
    let document = Document {
        bytes: &manifest_bytes,
        digest: &image.manifest_digest,
        media_type: &media_type,
        blobs: std::iter::once(&image.manifest.config)
            .chain(&image.manifest.layers)
            .collect(),
    };
    push_document(
        store,
        name,
        &document,
        &mount_sources(&image, name),
        registry,
        progress,
    )
}

/// A manifest as the store holds it, and the blobs it names (all in the store).
pub(crate) struct Document<'a> {
    pub bytes: &'a [u8],
    pub digest: &'a Digest,
    pub media_type: &'a str,
    pub blobs: Vec<&'a Descriptor>,
}

/// Pushes `document`'s blobs, then the document itself as `name`'s tag (an image's manifest,
/// or the build cache's artifact manifest).
pub(crate) fn push_document(
    store: &Store,
    name: &ImageName,
    document: &Document<'_>,
    mount_sources: &[String],
    registry: &RegistryOptions,
    progress: &dyn TransferProgress,
) -> Result<Pushed> {
    let mut scopes = vec![format!("repository:{}:pull,push", name.path())];
    scopes.extend(mount_sources.iter().map(|s| format!("repository:{s}:pull")));
    let client = Client::connect(name.domain(), registry, None, scopes)?;
    let path = name.path();
    let done = |existed: usize, uploaded: usize, mounted: usize| Pushed {
        name: name.clone(),
        digest: document.digest.clone(),
        size: document.bytes.len() as u64,
        uploaded,
        mounted,
        existed,
    };
    let blobs: Vec<&Descriptor> = {
        let mut seen = BTreeSet::new();
        document
            .blobs
            .iter()
            .copied()
            .filter(|d| seen.insert(d.digest.clone()))
            .collect()
    };
    if remote_manifest_digest(&client, path, name.tag())? == Some(document.digest.clone()) {
        for d in &blobs {
            progress.event(TransferEvent::Exists {
                digest: d.digest.clone(),
            });
        }
        return Ok(done(blobs.len(), 0, 0));
    }
    let outcomes = std::sync::Mutex::new(Vec::new());
    in_parallel(&blobs, super::pull::WORKERS, |d| {
        let outcome = push_blob(&client, store, path, d, mount_sources, progress)?;
        if let Ok(mut o) = outcomes.lock() {
            o.push(outcome);
        }
        Ok(())
    })?;
    let outcomes = outcomes.into_inner().unwrap_or_default();
    let count = |o: Outcome| outcomes.iter().filter(|x| **x == o).count();
    let what = format!("manifest {}", name.familiar());
    let response = client.retrying(
        &what,
        |_, _| {},
        || {
            client.send(
                "PUT",
                &format!("/v2/{path}/manifests/{}", name.tag()),
                &[("Content-Type", document.media_type)],
                &Body::Bytes(document.bytes),
                &what,
            )
        },
    )?;
    if let Some(theirs) = response
        .header("Docker-Content-Digest")
        .and_then(|d| d.parse::<Digest>().ok())
    {
        if theirs != *document.digest {
            return Err(RegistryError::DigestMismatch {
                host: client.host().to_string(),
                what: format!("the stored manifest of {}", name.familiar()),
                expected: document.digest.clone(),
                actual: theirs,
            });
        }
    }
    Ok(done(
        count(Outcome::Existed),
        count(Outcome::Uploaded),
        count(Outcome::Mounted),
    ))
}

/// Other repositories of the same registry this image is tagged in (blobs may be mounted
/// from them).
fn mount_sources(image: &Image, name: &ImageName) -> Vec<String> {
    let mut out: Vec<String> = image
        .tags
        .iter()
        .filter(|t| t.domain() == name.domain() && t.path() != name.path())
        .map(|t| t.path().to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The digest the registry has for `tag`, if any (`HEAD`).
fn remote_manifest_digest(client: &Client, path: &str, tag: &str) -> Result<Option<Digest>> {
    let what = format!("manifest {path}:{tag}");
    let answer = client.retrying(
        &what,
        |_, _| {},
        || match client.send(
            "HEAD",
            &format!("/v2/{path}/manifests/{tag}"),
            &[("Accept", super::pull::MANIFEST_ACCEPT)],
            &Body::Empty,
            &what,
        ) {
            Ok(r) => Ok(r
                .header("Docker-Content-Digest")
                .and_then(|d| d.parse::<Digest>().ok())),
            Err(RegistryError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        },
    )?;
    Ok(answer)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Existed,
    Mounted,
    Uploaded,
}

fn blob_exists(client: &Client, path: &str, digest: &Digest) -> Result<bool> {
    let what = format!("blob {digest}");
    client.retrying(
        &what,
        |_, _| {},
        || match client.send(
            "HEAD",
            &format!("/v2/{path}/blobs/{digest}"),
            &[],
            &Body::Empty,
            &what,
        ) {
            Ok(_) => Ok(true),
            Err(RegistryError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        },
    )
}

/// Starts an upload session (`POST`), asking for a mount from `from` when given. Returns
/// None when the registry mounted the blob, else the upload location.
fn start_upload(
    client: &Client,
    path: &str,
    digest: &Digest,
    from: Option<&str>,
) -> Result<Option<String>> {
    let location = match from {
        Some(from) => format!("/v2/{path}/blobs/uploads/?mount={digest}&from={from}"),
        None => format!("/v2/{path}/blobs/uploads/"),
    };
    let what = format!("starting the upload of blob {digest}");
    let response = client.send("POST", &location, &[], &Body::Bytes(&[]), &what)?;
    if response.status() == 201 {
        return Ok(None);
    }
    response
        .header("Location")
        .map(|l| Some(l.to_string()))
        .ok_or_else(|| RegistryError::BadDocument {
            host: client.host().to_string(),
            what,
            reason: "the answer has no Location header".to_string(),
        })
}

/// `location` with `key=value` added to its query.
fn with_query(client: &Client, location: &str, key: &str, value: &str) -> Result<String> {
    let full = client.url(location)?;
    let mut url = url::Url::parse(&full).map_err(|e| RegistryError::BadDocument {
        host: client.host().to_string(),
        what: format!("the upload location `{location}`"),
        reason: e.to_string(),
    })?;
    url.query_pairs_mut().append_pair(key, value);
    Ok(url.to_string())
}

/// The registry's offset of an upload session (`GET` of the location: `Range: 0-N`).
fn upload_offset(client: &Client, location: &str, what: &str) -> Result<u64> {
    let response = client.send("GET", location, &[], &Body::Empty, what)?;
    Ok(response
        .header("Range")
        .and_then(|r| r.rsplit('-').next())
        .and_then(|end| end.trim().parse::<u64>().ok())
        .map(|end| end + 1)
        .unwrap_or(0))
}

fn push_blob(
    client: &Client,
    store: &Store,
    path: &str,
    desc: &Descriptor,
    mount_sources: &[String],
    progress: &dyn TransferProgress,
) -> Result<Outcome> {
    let digest = &desc.digest;
    if blob_exists(client, path, digest)? {
        progress.event(TransferEvent::Exists {
            digest: digest.clone(),
        });
        return Ok(Outcome::Existed);
    }
    let mut location = None;
    for from in mount_sources {
        match start_upload(client, path, digest, Some(from)) {
            Ok(None) => {
                progress.event(TransferEvent::Mounted {
                    digest: digest.clone(),
                    from: from.clone(),
                });
                return Ok(Outcome::Mounted);
            }
            // Not mountable from there: the registry opened an ordinary upload instead.
            Ok(Some(l)) => {
                location = Some(l);
                break;
            }
            Err(e) if e.is_retryable() => return Err(e),
            Err(_) => continue,
        }
    }
    let blob_path = store.blob_path(digest);
    let size = store.blob_size(digest)?;
    progress.event(TransferEvent::Start {
        digest: digest.clone(),
        size,
    });
    let what = format!("upload of blob {digest}");
    let report = |done: u64| {
        progress.event(TransferEvent::Bytes {
            digest: digest.clone(),
            done,
        })
    };
    // (location, bytes the registry has) of the session in progress, kept across attempts.
    let mut session: Option<(String, u64)> = location.map(|l| (l, 0));
    let mut failed_before = false;
    client.retrying(
        &what,
        |attempt, e| {
            progress.event(TransferEvent::Retry {
                digest: digest.clone(),
                attempt,
                error: e.to_string(),
            })
        },
        || {
            // After a failure, a chunked session resumes where the registry says it is; a
            // monolithic one (or a lost session) starts again.
            if failed_before {
                session = match session.take() {
                    Some((l, _)) if size > CHUNK => upload_offset(client, &l, &what)
                        .ok()
                        .map(|offset| (l, offset)),
                    _ => None,
                };
            }
            failed_before = true;
            let (mut location, mut offset) = match session.take() {
                Some(s) => s,
                None => match start_upload(client, path, digest, None)? {
                    Some(l) => (l, 0),
                    None => return Ok(()),
                },
            };
            if size <= CHUNK {
                let url = with_query(client, &location, "digest", &digest.to_string())?;
                client.send(
                    "PUT",
                    &url,
                    &[("Content-Type", "application/octet-stream")],
                    &Body::File {
                        path: &blob_path,
                        offset: 0,
                        len: size,
                        progress: &report,
                    },
                    &what,
                )?;
                return Ok(());
            }
            while offset < size {
                let len = CHUNK.min(size - offset);
                let range = format!("{offset}-{}", offset + len - 1);
                session = Some((location.clone(), offset));
                let base = offset;
                let chunk_report = |done: u64| report(base + done);
                let response = client.send(
                    "PATCH",
                    &location,
                    &[
                        ("Content-Type", "application/octet-stream"),
                        ("Content-Range", range.as_str()),
                    ],
                    &Body::File {
                        path: &blob_path,
                        offset,
                        len,
                        progress: &chunk_report,
                    },
                    &what,
                )?;
                if let Some(next) = response.header("Location") {
                    location = next.to_string();
                }
                offset += len;
                session = Some((location.clone(), offset));
            }
            let url = with_query(client, &location, "digest", &digest.to_string())?;
            client.send("PUT", &url, &[], &Body::Bytes(&[]), &what)?;
            session = None;
            Ok(())
        },
    )?;
    progress.event(TransferEvent::Done {
        digest: digest.clone(),
    });
    Ok(Outcome::Uploaded)
}
