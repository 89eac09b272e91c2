//! Reading image tarballs.

use super::*;

/// A file-system entry of an image's final file system (after all layers and whiteouts).
/// Modification times are left out on purpose: they are policy, not content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsEntry {
    pub kind: FsKind,
    /// Permission bits with setuid, setgid and sticky (`& 0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// sha256 of a regular file's content.
    pub sha256: Option<String>,
    pub size: u64,
    /// Symlink target.
    pub link: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    File,
    Dir,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
}

impl fmt::Display for FsEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} mode {:o} owner {}:{}",
            self.kind, self.mode, self.uid, self.gid
        )?;
        if let Some(h) = &self.sha256 {
            write!(f, " size {} sha256 {}", self.size, &h[..12])?;
        }
        if let Some(l) = &self.link {
            write!(f, " -> {l}")?;
        }
        Ok(())
    }
}

/// Paths (relative, no leading `/` or `./`, no trailing `/`) to entries.
pub type FsTree = BTreeMap<String, FsEntry>;

/// One image out of a `docker save` / `kiln save` tarball.
pub struct SavedImage {
    /// The manifest.json entry.
    pub manifest: Value,
    /// The config blob, parsed.
    pub config: Value,
    pub config_bytes: Vec<u8>,
    /// The layer blobs as stored in the tarball (maybe compressed), in order.
    pub layer_blobs: Vec<Vec<u8>>,
}

/// Every regular file of an outer tarball by normalized name, with symlinks resolved
/// (docker 20.10 writes a repeated layer as a symlink to the first copy).
pub struct OuterTar {
    files: HashMap<String, Vec<u8>>,
    links: HashMap<String, String>,
    pub names: Vec<String>,
}

pub fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

impl OuterTar {
    pub fn read(path: &Path) -> OuterTar {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        OuterTar::from_bytes(&bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> OuterTar {
        let mut files = HashMap::new();
        let mut links = HashMap::new();
        let mut names = Vec::new();
        let mut ar = tar::Archive::new(bytes);
        for entry in ar.entries().expect("outer tar entries") {
            let mut entry = entry.expect("outer tar entry");
            let name = normalize(&entry.path().expect("entry path").to_string_lossy());
            names.push(name.clone());
            match entry.header().entry_type() {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry
                        .link_name()
                        .expect("link name")
                        .expect("link target")
                        .to_string_lossy()
                        .into_owned();
                    let resolved = if entry.header().entry_type() == tar::EntryType::Symlink {
                        let parent = name.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
                        normalize(&format!("{parent}/{target}"))
                    } else {
                        normalize(&target)
                    };
                    links.insert(name, resolved);
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let mut data = Vec::new();
                    entry.read_to_end(&mut data).expect("read outer entry");
                    files.insert(name, data);
                }
                _ => {}
            }
        }
        OuterTar {
            files,
            links,
            names,
        }
    }

    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let mut name = normalize(name);
        for _ in 0..16 {
            if let Some(d) = self.files.get(&name) {
                return Some(d);
            }
            name = self.links.get(&name)?.clone();
        }
        None
    }

    pub fn json(&self, name: &str) -> Value {
        let bytes = self
            .get(name)
            .unwrap_or_else(|| panic!("tarball has no {name}"));
        serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
    }

    /// The images manifest.json lists.
    pub fn images(&self) -> Vec<SavedImage> {
        let manifest = self.json("manifest.json");
        let list = manifest
            .as_array()
            .unwrap_or_else(|| panic!("manifest.json is not an array: {manifest}"));
        list.iter()
            .map(|m| {
                let cfg_name = m["Config"]
                    .as_str()
                    .unwrap_or_else(|| panic!("manifest entry without Config: {m}"));
                let config_bytes = self
                    .get(cfg_name)
                    .unwrap_or_else(|| panic!("config {cfg_name} missing"))
                    .to_vec();
                let config = serde_json::from_slice(&config_bytes)
                    .unwrap_or_else(|e| panic!("config {cfg_name} is not JSON: {e}"));
                let layer_blobs = m["Layers"]
                    .as_array()
                    .unwrap_or_else(|| panic!("manifest entry without Layers: {m}"))
                    .iter()
                    .map(|l| {
                        let n = l.as_str().expect("layer name is a string");
                        self.get(n)
                            .unwrap_or_else(|| panic!("layer {n} missing"))
                            .to_vec()
                    })
                    .collect();
                SavedImage {
                    manifest: m.clone(),
                    config,
                    config_bytes,
                    layer_blobs,
                }
            })
            .collect()
    }
}

/// The single image of a saved tarball.
pub fn read_saved_image(path: &Path) -> SavedImage {
    let mut images = OuterTar::read(path).images();
    assert_eq!(
        images.len(),
        1,
        "{} should hold exactly one image",
        path.display()
    );
    images.remove(0)
}

/// A layer blob decompressed (gzip by its magic number; plain tar otherwise).
pub fn uncompressed(blob: &[u8]) -> Vec<u8> {
    if blob.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(blob)
            .read_to_end(&mut out)
            .expect("gunzip layer");
        out
    } else if blob.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        panic!("zstd layers are not readable by the test helpers");
    } else {
        blob.to_vec()
    }
}

impl SavedImage {
    /// The uncompressed layers, in order.
    pub fn layers(&self) -> Vec<Vec<u8>> {
        self.layer_blobs.iter().map(|b| uncompressed(b)).collect()
    }

    /// `rootfs.diff_ids` of the config.
    pub fn diff_ids(&self) -> Vec<String> {
        self.config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|d| d.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The image ID: sha256 of the config blob.
    pub fn id(&self) -> String {
        format!("sha256:{}", sha256_hex(&self.config_bytes))
    }

    /// The final file system: layers applied in order with whiteouts.
    pub fn fs(&self) -> FsTree {
        let mut tree = FsTree::new();
        for layer in self.layers() {
            apply_layer(&mut tree, &layer);
        }
        tree
    }

    /// The runtime config fields the tests compare.
    pub fn runtime_config(&self) -> RuntimeConfig {
        RuntimeConfig::from_config(&self.config)
    }
}

/// Apply one uncompressed layer tar to a tree: first its whiteouts (they hide lower layers
/// only), then its entries. Missing parent directories appear as 0755 root directories, as
/// a container runtime unpacking the layer would create them.
pub fn apply_layer(tree: &mut FsTree, layer: &[u8]) {
    struct Item {
        path: String,
        kind: tar::EntryType,
        mode: u32,
        uid: u64,
        gid: u64,
        data: Vec<u8>,
        link: Option<String>,
    }
    let mut items = Vec::new();
    let mut ar = tar::Archive::new(layer);
    for entry in ar.entries().expect("layer entries") {
        let mut entry = entry.expect("layer entry");
        let path = normalize(&entry.path().expect("path").to_string_lossy());
        let h = entry.header();
        let kind = h.entry_type();
        let mode = h.mode().expect("mode") & 0o7777;
        let uid = h.uid().expect("uid");
        let gid = h.gid().expect("gid");
        let link = entry
            .link_name()
            .expect("link name")
            .map(|l| l.to_string_lossy().into_owned());
        let mut data = Vec::new();
        if kind == tar::EntryType::Regular || kind == tar::EntryType::Continuous {
            entry.read_to_end(&mut data).expect("read layer file");
        }
        items.push(Item {
            path,
            kind,
            mode,
            uid,
            gid,
            data,
            link,
        });
    }
    for it in &items {
        let (parent, base) = match it.path.rsplit_once('/') {
            Some((p, b)) => (p.to_string(), b),
            None => (String::new(), it.path.as_str()),
        };
        if base == ".wh..wh..opq" {
            let prefix = if parent.is_empty() {
                String::new()
            } else {
                format!("{parent}/")
            };
            tree.retain(|k, _| !(k.starts_with(&prefix) && k.len() > prefix.len()));
        } else if let Some(hidden) = base.strip_prefix(".wh.") {
            let victim = if parent.is_empty() {
                hidden.to_string()
            } else {
                format!("{parent}/{hidden}")
            };
            let under = format!("{victim}/");
            tree.retain(|k, _| k != &victim && !k.starts_with(&under));
        }
    }
    for it in items {
        if it.path.is_empty() {
            continue; // the root directory itself: its metadata is the runtime's business
        }
        let base = it.path.rsplit('/').next().unwrap_or("");
        if base.starts_with(".wh.") {
            continue;
        }
        let mut parent = it.path.as_str();
        while let Some((p, _)) = parent.rsplit_once('/') {
            tree.entry(p.to_string()).or_insert(FsEntry {
                kind: FsKind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                sha256: None,
                size: 0,
                link: None,
            });
            parent = p;
        }
        let entry = match it.kind {
            tar::EntryType::Link => {
                let target = normalize(it.link.as_deref().unwrap_or_default());
                tree.get(&target)
                    .cloned()
                    .unwrap_or_else(|| panic!("hardlink {} to missing {target}", it.path))
            }
            k => {
                let kind = match k {
                    tar::EntryType::Directory => FsKind::Dir,
                    tar::EntryType::Symlink => FsKind::Symlink,
                    tar::EntryType::Char => FsKind::CharDevice,
                    tar::EntryType::Block => FsKind::BlockDevice,
                    tar::EntryType::Fifo => FsKind::Fifo,
                    tar::EntryType::Regular | tar::EntryType::Continuous => FsKind::File,
                    other => panic!("unexpected entry type {other:?} at {}", it.path),
                };
                FsEntry {
                    kind,
                    mode: it.mode,
                    uid: it.uid,
                    gid: it.gid,
                    sha256: (kind == FsKind::File).then(|| sha256_hex(&it.data)),
                    size: it.data.len() as u64,
                    link: if kind == FsKind::Symlink {
                        it.link
                    } else {
                        None
                    },
                }
            }
        };
        // A directory entry over an existing directory replaces its metadata only.
        if entry.kind != FsKind::Dir {
            let under = format!("{}/", it.path);
            tree.retain(|k, _| !k.starts_with(&under));
        }
        tree.insert(it.path, entry);
    }
}

/// Lines describing how two trees differ (empty when equal).
pub fn diff_trees(left_name: &str, left: &FsTree, right_name: &str, right: &FsTree) -> Vec<String> {
    let mut out = Vec::new();
    for (path, l) in left {
        match right.get(path) {
            None => out.push(format!("/{path}: only in {left_name} ({l})")),
            Some(r) if r != l => out.push(format!(
                "/{path}: {left_name} has {l}, {right_name} has {r}"
            )),
            Some(_) => {}
        }
    }
    for (path, r) in right {
        if !left.contains_key(path) {
            out.push(format!("/{path}: only in {right_name} ({r})"));
        }
    }
    out
}

/// The fields of an image config's `config` object that decide how a container runs.
pub const RUNTIME_FIELDS: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "StopSignal",
    "Healthcheck",
    "Shell",
    "OnBuild",
];

/// Those fields; a `null` field counts as absent (docker writes some as null, kiln omits
/// them), and so does an empty string for WorkingDir/User/StopSignal (docker 20.10 writes
/// `"WorkingDir": ""`, which means the same as none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig(pub BTreeMap<String, Value>);

impl RuntimeConfig {
    pub fn from_config(config: &Value) -> RuntimeConfig {
        let mut map = BTreeMap::new();
        let c = &config["config"];
        for f in RUNTIME_FIELDS {
            let v = &c[*f];
            let absent = v.is_null() || (v.as_str() == Some(""));
            if !absent {
                map.insert(f.to_string(), v.clone());
            }
        }
        RuntimeConfig(map)
    }

    pub fn get(&self, field: &str) -> Option<&Value> {
        self.0.get(field)
    }
}

/// Lines describing how two runtime configs differ.
pub fn diff_configs(
    left_name: &str,
    left: &RuntimeConfig,
    right_name: &str,
    right: &RuntimeConfig,
) -> Vec<String> {
    let mut out = Vec::new();
    for f in RUNTIME_FIELDS {
        let l = left.get(f);
        let r = right.get(f);
        if l != r {
            let show = |v: Option<&Value>| v.map(|v| v.to_string()).unwrap_or("(none)".into());
            out.push(format!(
                "config.{f}: {left_name} has {}, {right_name} has {}",
                show(l),
                show(r)
            ));
        }
    }
    out
}

/// Groups of paths (sorted, two or more each) that are hard links of one file in an image's
/// final file system. Hard links exist only within a layer; a later layer that rewrites one
/// name takes it out of its group (a copy-up), and whiteouts remove names.
pub fn hardlink_groups(layers: &[Vec<u8>]) -> std::collections::BTreeSet<Vec<String>> {
    let mut node: BTreeMap<String, u64> = BTreeMap::new();
    let mut next = 0u64;
    for layer in layers {
        let mut ar = tar::Archive::new(layer.as_slice());
        let mut items = Vec::new();
        for entry in ar.entries().expect("layer entries") {
            let entry = entry.expect("layer entry");
            let path = normalize(&entry.path().expect("path").to_string_lossy());
            let kind = entry.header().entry_type();
            let link = entry
                .link_name()
                .expect("link name")
                .map(|l| normalize(&l.to_string_lossy()));
            items.push((path, kind, link));
        }
        for (path, _, _) in &items {
            let (parent, base) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
            let prefix = if parent.is_empty() {
                String::new()
            } else {
                format!("{parent}/")
            };
            if base == ".wh..wh..opq" {
                node.retain(|k, _| !(k.starts_with(&prefix) && k.len() > prefix.len()));
            } else if let Some(hidden) = base.strip_prefix(".wh.") {
                let victim = format!("{prefix}{hidden}");
                let under = format!("{victim}/");
                node.retain(|k, _| k != &victim && !k.starts_with(&under));
            }
        }
        for (path, kind, link) in items {
            if path.rsplit('/').next().unwrap_or("").starts_with(".wh.") {
                continue;
            }
            match kind {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    next += 1;
                    node.insert(path, next);
                }
                tar::EntryType::Link => {
                    let target = link.unwrap_or_default();
                    let id = *node
                        .get(&target)
                        .unwrap_or_else(|| panic!("hardlink {path} to missing {target}"));
                    node.insert(path, id);
                }
                tar::EntryType::Directory => {}
                _ => {
                    node.remove(&path);
                }
            }
        }
    }
    let mut by_node: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (path, id) in node {
        by_node.entry(id).or_default().push(path);
    }
    by_node.into_values().filter(|g| g.len() > 1).collect()
}

/// One `history` entry's comparable fields: `created_by` (absent counts as "") and
/// `empty_layer` (absent counts as false).
pub fn history_fields(config: &Value) -> Vec<(String, bool)> {
    config["history"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|h| {
                    (
                        h["created_by"].as_str().unwrap_or_default().to_string(),
                        h["empty_layer"].as_bool().unwrap_or(false),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Everything the differential tests compare between two saved images: the final file
/// trees, the hard-link groups, the runtime config, the number of layers, and the history
/// entries (`created_by`, `empty_layer`) after each side's first `skip_left`/`skip_right`
/// entries (those of a base image, which each tool records its own way on import).
pub fn diff_images(
    left_name: &str,
    left: &SavedImage,
    skip_left: usize,
    right_name: &str,
    right: &SavedImage,
    skip_right: usize,
) -> Vec<String> {
    let mut out = diff_trees(left_name, &left.fs(), right_name, &right.fs());
    let (lg, rg) = (
        hardlink_groups(&left.layers()),
        hardlink_groups(&right.layers()),
    );
    for g in lg.difference(&rg) {
        out.push(format!("hardlink group {g:?}: only in {left_name}"));
    }
    for g in rg.difference(&lg) {
        out.push(format!("hardlink group {g:?}: only in {right_name}"));
    }
    out.extend(diff_configs(
        left_name,
        &left.runtime_config(),
        right_name,
        &right.runtime_config(),
    ));
    let (ln, rn) = (left.diff_ids().len(), right.diff_ids().len());
    if ln != rn {
        out.push(format!(
            "layers: {left_name} has {ln}, {right_name} has {rn}"
        ));
    }
    let lh: Vec<_> = history_fields(&left.config)
        .into_iter()
        .skip(skip_left)
        .collect();
    let rh: Vec<_> = history_fields(&right.config)
        .into_iter()
        .skip(skip_right)
        .collect();
    for i in 0..lh.len().max(rh.len()) {
        let show = |e: Option<&(String, bool)>| match e {
            Some((c, empty)) => format!("{c:?} empty_layer={empty}"),
            None => "(none)".to_string(),
        };
        if lh.get(i) != rh.get(i) {
            out.push(format!(
                "history[+{i}]: {left_name} has {}, {right_name} has {}",
                show(lh.get(i)),
                show(rh.get(i))
            ));
        }
    }
    out
}
