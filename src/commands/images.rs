//! images, inspect, history, tag, rmi, prune (and `kiln image ...`, the same commands),
//! version: looking after the store's images.
//! Tables and human-readable sizes and ages follow `docker images` / `docker history`.
//! A multi-platform index is one row of `kiln images` (its ID is the index digest, its age the
//! host platform's image's, its size every platform's layers); `inspect` shows the host
//! platform's image with the index beside it.
use std::path::PathBuf;
use std::time::SystemTime;

use kiln_runtime::image::{ImageName, ImageRef};
use kiln_runtime::oci::{time, Digest, History, Platform};
use kiln_runtime::store::{Store, Stored, StoredIndex};
use serde_json::json;

use super::transfer::open_store;
use crate::cli::{HistoryArgs, ImageCommand, ImagesArgs, InspectArgs, PruneArgs, RmiArgs, TagArgs};

/// `kiln image ls|inspect|rm|tag|prune|history`: docker's management spellings of the
/// image commands (`image inspect` looks at images only, as docker's does).
pub fn image(root: Option<PathBuf>, c: ImageCommand) -> miette::Result<()> {
    match c {
        ImageCommand::Ls(a) => images(root, a),
        ImageCommand::Inspect(a) => inspect_image(root, a),
        ImageCommand::Rm(a) => rmi(root, a),
        ImageCommand::Tag(a) => tag(root, a),
        ImageCommand::Prune(a) => prune(root, a),
        ImageCommand::History(a) => history(root, a),
    }
}

/// The commit kiln was built from, when the build could ask git (`build.rs`).
const GIT_COMMIT: Option<&str> = option_env!("KILN_GIT_COMMIT");

/// `kiln version`: the Client section of `docker version`, the fields kiln has.
pub fn version() -> miette::Result<()> {
    let platform = kiln_compiler::platform::host();
    println!("Client:");
    println!(" {:<19}{}", "Version:", env!("CARGO_PKG_VERSION"));
    if let Some(commit) = GIT_COMMIT.filter(|c| !c.is_empty()) {
        println!(" {:<19}{commit}", "Git commit:");
    }
    println!(
        " {:<19}{}/{}",
        "OS/Arch:", platform.os, platform.architecture
    );
    Ok(())
}

/// Docker's size format: decimal units, three significant digits (`1.99MB`, `117MB`, `0B`).
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit + 1 < UNITS.len() {
        size /= 1000.0;
        unit += 1;
    }
    let int_digits = if size < 1.0 {
        1
    } else {
        (size.log10().floor() as i32 + 1).max(1)
    };
    let decimals = (3 - int_digits).max(0) as usize;
    let mut text = format!("{size:.decimals$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{}", UNITS.get(unit).copied().unwrap_or("B"))
}

/// Docker's age format (`About an hour ago`, `3 days ago`, `56 years ago`).
fn human_age(created: Option<&str>, now: i64) -> String {
    let Some(then) = created.and_then(time::parse_rfc3339) else {
        return "N/A".to_string();
    };
    format!("{} ago", human_duration(now - then))
}

/// Docker's duration format (go-units' HumanDuration: `Less than a second`, `5 seconds`,
/// `About a minute`, `3 days`), for ages, `Up ...` and `Exited (0) ... ago`.
pub(crate) fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (minutes, hours) = (secs / 60, secs / 3600);
    let text = if secs < 1 {
        "Less than a second".to_string()
    } else if secs == 1 {
        "1 second".to_string()
    } else if secs < 60 {
        format!("{secs} seconds")
    } else if minutes == 1 {
        "About a minute".to_string()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".to_string()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours / 24 / 365)
    };
    text
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Prints rows as docker's tabwriter does: each column as wide as its widest cell plus three
/// spaces (at least ten), the last column unpadded.
pub(crate) fn print_table(rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count() + 3)
                .max()
                .unwrap_or(0)
                .max(10)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let width = widths.get(c).copied().unwrap_or(0);
                line.push_str(&format!("{cell:<width$}"));
            }
        }
        println!("{}", line.trim_end());
    }
}

fn created_secs(created: Option<&str>) -> i64 {
    created.and_then(time::parse_rfc3339).unwrap_or(i64::MIN)
}

/// One entry of `kiln images`: an image, or an index.
struct Listed {
    id: Digest,
    created: Option<String>,
    size: u64,
    tags: Vec<ImageName>,
}

/// An index as listed: the host platform's creation time (none when it has no image for this
/// machine) and the size of every distinct layer of its platforms.
fn list_index(store: &Store, index: StoredIndex) -> miette::Result<Listed> {
    let created = store
        .index_image(&index, &Platform::host_default())
        .ok()
        .and_then(|i| i.config.created);
    let mut layers = std::collections::BTreeMap::new();
    for (_, manifest) in store.index_manifests(&index)? {
        for l in manifest.layers {
            layers.insert(l.digest, l.size);
        }
    }
    Ok(Listed {
        id: index.digest,
        created,
        size: layers.values().sum(),
        tags: index.tags,
    })
}

pub fn images(root: Option<PathBuf>, a: ImagesArgs) -> miette::Result<()> {
    let store = open_store(root)?;
    let mut images: Vec<Listed> = store
        .images()?
        .into_iter()
        .map(|i| Listed {
            id: i.id().clone(),
            size: i.size(),
            created: i.config.created,
            tags: i.tags,
        })
        .collect();
    for index in store.indexes()? {
        images.push(list_index(&store, index)?);
    }
    images.sort_by(|x, y| {
        created_secs(y.created.as_deref())
            .cmp(&created_secs(x.created.as_deref()))
            .then_with(|| x.tags.cmp(&y.tags))
    });
    if a.quiet {
        let mut seen = std::collections::BTreeSet::new();
        for image in &images {
            if seen.insert(image.id.clone()) {
                println!("{}", image.id.short());
            }
        }
        return Ok(());
    }
    let now = now();
    let mut rows = vec![["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
        .map(String::from)
        .to_vec()];
    for image in &images {
        let tail = [
            image.id.short().to_string(),
            human_age(image.created.as_deref(), now),
            human_size(image.size),
        ];
        if image.tags.is_empty() {
            rows.push(
                ["<none>".to_string(), "<none>".to_string()]
                    .into_iter()
                    .chain(tail.clone())
                    .collect(),
            );
        }
        for tag in &image.tags {
            rows.push(
                [tag.repository(), tag.tag().to_string()]
                    .into_iter()
                    .chain(tail.clone())
                    .collect(),
            );
        }
    }
    print_table(&rows);
    Ok(())
}

pub fn inspect(root: Option<PathBuf>, a: InspectArgs) -> miette::Result<()> {
    let store = open_store(root)?;
    print_objects(&a.names, a.format.as_deref(), |name| {
        object_json(&store, name)
    })
}

/// `kiln image inspect`: images only.
fn inspect_image(root: Option<PathBuf>, a: InspectArgs) -> miette::Result<()> {
    let store = open_store(root)?;
    print_objects(&a.names, a.format.as_deref(), |name| {
        image_json(&store, name)
    })
}

/// `inspect`'s output for every name (of every kind: containers, images, volumes, networks):
/// one JSON array of the objects, or each object through `--format`. As docker: a name that
/// finds nothing is reported and the others still printed, and the command then fails.
pub(crate) fn print_objects(
    names: &[String],
    format: Option<&str>,
    find: impl Fn(&str) -> miette::Result<serde_json::Value>,
) -> miette::Result<()> {
    let format = match format {
        Some(f) => Some(super::template::Format::parse(f)?),
        None => None,
    };
    let (mut found, mut missing) = (Vec::new(), 0);
    for name in names {
        match find(name) {
            Ok(v) => found.push(v),
            Err(e) if names.len() == 1 => return Err(e),
            Err(e) => {
                eprintln!("{e:?}");
                missing += 1;
            }
        }
    }
    match &format {
        Some(f) => {
            for v in &found {
                println!("{}", f.render(v)?);
            }
        }
        None => {
            let text = serde_json::to_string_pretty(&found)
                .map_err(|e| miette::miette!("cannot print JSON: {e}"))?;
            println!("{text}");
        }
    }
    if missing > 0 {
        miette::bail!("{missing} of {} names found nothing", names.len());
    }
    Ok(())
}

/// As `docker inspect`: a container of that name or ID first, else an image, else a volume,
/// else a network.
fn object_json(store: &Store, name: &str) -> miette::Result<serde_json::Value> {
    if let Ok(record) = kiln_runtime::container::find(store, name) {
        return Ok(super::containers::inspect_json(store, &record));
    }
    let image_missing = match ImageRef::parse(name) {
        Ok(r) => store.lookup(&r).is_err(),
        Err(_) => true,
    };
    if image_missing {
        if let Ok(v) = kiln_runtime::container::volume::inspect(store, name) {
            return Ok(super::run::volume_json(&v));
        }
        if let Ok(n) = super::network::network_json(store, name) {
            return Ok(n);
        }
    }
    image_json(store, name)
}

fn image_json(store: &Store, name: &str) -> miette::Result<serde_json::Value> {
    let (image, index) = match store.lookup(&ImageRef::parse(name)?)? {
        Stored::Image(image) => (*image, None),
        Stored::Index(index) => (
            store.index_image(&index, &Platform::host_default())?,
            Some(index),
        ),
    };
    let layers: Vec<_> = image
        .manifest
        .layers
        .iter()
        .zip(&image.config.rootfs.diff_ids)
        .map(|(l, diff_id)| json!({"Digest": l.digest, "DiffID": diff_id, "MediaType": l.media_type, "Size": l.size}))
        .collect();
    let mut out = json!({
        "Id": image.id(),
        "RepoTags": image.tags.iter().map(ImageName::familiar).collect::<Vec<_>>(),
        "ManifestDigest": image.manifest_digest,
        "ManifestSize": image.manifest_size,
        "Created": image.config.created,
        "Architecture": image.config.architecture,
        "Os": image.config.os,
        "Size": image.size(),
        "Config": image.config.config,
        "RootFS": {"Type": image.config.rootfs.kind, "Layers": image.config.rootfs.diff_ids},
        "History": image.config.history,
        "Layers": layers,
        "Manifest": image.manifest,
    });
    if let (Some(variant), Some(obj)) = (&image.config.variant, out.as_object_mut()) {
        obj.insert("Variant".to_string(), json!(variant));
    }
    if let (Some(index), Some(obj)) = (&index, out.as_object_mut()) {
        obj.insert(
            "Index".to_string(),
            json!({
                "Digest": index.digest,
                "MediaType": index.media_type,
                "Size": index.size,
                "Manifests": index.index.manifests,
            }),
        );
    }
    Ok(out)
}

/// `…`-shortened text of at most `max` characters, as docker truncates CREATED BY.
fn ellipsis(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

pub fn history(root: Option<PathBuf>, a: HistoryArgs) -> miette::Result<()> {
    let store = open_store(root)?;
    let image = store.image(&a.image)?;
    let now = now();
    // Non-empty history entries match the layers one to one, bottom first.
    let mut layer_sizes = image.manifest.layers.iter().map(|l| l.size);
    let sized: Vec<(&History, u64)> = image
        .config
        .history
        .iter()
        .map(|h| {
            (
                h,
                if h.empty_layer {
                    0
                } else {
                    layer_sizes.next().unwrap_or(0)
                },
            )
        })
        .collect();
    let mut rows = vec![["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
        .map(String::from)
        .to_vec()];
    for (i, (h, size)) in sized.iter().rev().enumerate() {
        let id = if i == 0 {
            if a.no_trunc {
                image.id().to_string()
            } else {
                image.id().short().to_string()
            }
        } else {
            "<missing>".to_string()
        };
        let created_by = h.created_by.clone().unwrap_or_default();
        let created_by = if a.no_trunc {
            created_by
        } else {
            ellipsis(&created_by, 45)
        };
        rows.push(vec![
            id,
            human_age(h.created.as_deref(), now),
            created_by,
            human_size(*size),
            h.comment.clone().unwrap_or_default(),
        ]);
    }
    print_table(&rows);
    Ok(())
}

pub fn tag(root: Option<PathBuf>, a: TagArgs) -> miette::Result<()> {
    let target = ImageName::parse(&a.target)?;
    let store = open_store(root)?;
    store.tag(&a.source, &target)?;
    Ok(())
}

pub fn rmi(root: Option<PathBuf>, a: RmiArgs) -> miette::Result<()> {
    let store = open_store(root)?;
    let mut failures = Vec::new();
    for reference in &a.images {
        if let Err(e) = remove_image(&store, reference, a.force) {
            failures.push(e);
        }
    }
    match failures.len() {
        0 => Ok(()),
        1 => Err(failures.remove(0)),
        n => {
            for f in failures.iter().take(n - 1) {
                eprintln!("{f:?}");
            }
            Err(failures.remove(n - 1))
        }
    }
}

/// `rmi` of one reference, as docker's: an image containers use (stopped or running) keeps
/// its last reference unless forced; forced, its tags go but the image stays, untagged,
/// while a container uses it (and by ID not at all while one runs). `-f` of an image with
/// several tags named by ID removes every tag.
fn remove_image(store: &Store, reference: &str, force: bool) -> miette::Result<()> {
    let print = |removed: &kiln_runtime::store::Removed| {
        for tag in &removed.untagged {
            println!("Untagged: {}", tag.familiar());
        }
        if let Some(id) = &removed.deleted {
            println!("Deleted: {id}");
        }
    };
    let parsed = ImageRef::parse(reference)?;
    if let Ok(Stored::Image(image)) = store.lookup(&parsed) {
        let users: Vec<_> = kiln_runtime::container::list(store)?
            .into_iter()
            .filter(|r| &r.image_id == image.id())
            .collect();
        let by_name = ImageName::parse(reference)
            .ok()
            .filter(|n| image.tags.contains(n));
        let last_reference = by_name.is_none() || image.tags.len() <= 1;
        if let (Some(user), true) = (users.first(), last_reference) {
            let (id, container) = (image.id().short().to_string(), &user.id[..12]);
            if !force {
                miette::bail!(
                    help = "remove the container first, or untag with kiln rmi -f (the image stays while a container uses it)",
                    "conflict: unable to remove repository reference {reference:?} (must force) - container {container} is using its referenced image {id}"
                );
            }
            if let (None, Some(running)) = (&by_name, users.iter().find(|r| r.held())) {
                miette::bail!(
                    "conflict: unable to delete {id} (cannot be forced) - image is being used by running container {}",
                    &running.id[..12]
                );
            }
            let untag: Vec<ImageName> = match by_name {
                Some(n) => vec![n],
                None => image.tags.clone(),
            };
            for name in &untag {
                store.remove_ref(name)?;
                println!("Untagged: {}", name.familiar());
            }
            // Still the image of a container: it stays in the index, untagged.
            store.register_image(&image.manifest_digest, &[])?;
            return Ok(());
        }
        if force && by_name.is_none() && image.tags.len() > 1 {
            for name in &image.tags {
                print(&store.remove(&name.to_string())?);
            }
            return Ok(());
        }
    }
    print(&store.remove(reference)?);
    Ok(())
}

/// `90d`, or a Go duration (`12h`, `30m`, `0s`).
fn parse_age(s: &str) -> miette::Result<std::time::Duration> {
    let nanos = match s.strip_suffix('d').map(str::parse::<u64>) {
        Some(Ok(days)) => Some(u128::from(days) * 86_400 * 1_000_000_000),
        _ => kiln_compiler::dockerfile::lower::parse_go_duration(s)
            .filter(|n| *n >= 0)
            .map(|n| n as u128),
    };
    match nanos {
        Some(n) => Ok(std::time::Duration::from_nanos(
            u64::try_from(n).unwrap_or(u64::MAX),
        )),
        None => miette::bail!(
            help = "write a number of days (90d) or a duration such as 12h, 30m or 0s",
            "invalid --records-max-age {s:?}"
        ),
    }
}

pub fn prune(root: Option<PathBuf>, a: PruneArgs) -> miette::Result<()> {
    let options = kiln_runtime::store::PruneOptions {
        record_max_age: parse_age(&a.records_max_age)?,
    };
    let store = open_store(root)?;
    let report = store.prune_with(&options)?;
    println!(
        "Deleted {} blob{} and {} cache entr{}",
        report.blobs_removed,
        if report.blobs_removed == 1 { "" } else { "s" },
        report.cache_entries_removed,
        if report.cache_entries_removed == 1 {
            "y"
        } else {
            "ies"
        },
    );
    if report.records.records + report.records.chunks > 0 {
        println!(
            "Deleted {} build record{} and {} listing chunk{}",
            report.records.records,
            if report.records.records == 1 { "" } else { "s" },
            report.records.chunks,
            if report.records.chunks == 1 { "" } else { "s" },
        );
    }
    println!("Total reclaimed space: {}", human_size(report.bytes_freed));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ages() {
        assert_eq!(parse_age("2d").unwrap().as_secs(), 2 * 86400);
        assert_eq!(parse_age("12h").unwrap().as_secs(), 12 * 3600);
        assert_eq!(parse_age("0s").unwrap().as_secs(), 0);
        assert!(parse_age("x").is_err());
    }

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1986560), "1.99MB");
        assert_eq!(human_size(117_000_000), "117MB");
        assert_eq!(human_size(4_000), "4kB");
        assert_eq!(human_size(1_250_000_000), "1.25GB");
        assert_eq!(human_size(12_340), "12.3kB");
    }

    #[test]
    fn ages_like_docker() {
        let now = 1_800_000_000;
        let at = |secs: i64| time::format_rfc3339(now - secs);
        assert_eq!(human_age(Some(&at(0)), now), "Less than a second ago");
        assert_eq!(human_age(Some(&at(30)), now), "30 seconds ago");
        assert_eq!(human_age(Some(&at(90)), now), "About a minute ago");
        assert_eq!(human_age(Some(&at(3 * 3600)), now), "3 hours ago");
        assert_eq!(human_age(Some(&at(5 * 86400)), now), "5 days ago");
        assert_eq!(human_age(Some("1970-01-01T00:00:00Z"), now), "57 years ago");
        assert_eq!(human_age(None, now), "N/A");
    }

    #[test]
    fn ellipsis_like_docker() {
        assert_eq!(ellipsis("short", 45), "short");
        assert_eq!(ellipsis(&"x".repeat(50), 45).chars().count(), 45);
    }
}
