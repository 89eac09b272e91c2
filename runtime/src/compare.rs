//! Comparing two images: the one comparison engine behind `kiln diff` and `kiln build --check`.
//!
//! Owns: the config compared field by field (JSON paths such as `config.Env[1]`), the layer
//! stacks compared layer by layer (a pair with equal diff_ids is skipped whole, without
//! reading it), the merged file trees compared path by path (whiteouts applied), the
//! attributes that make two entries differ (type, content, size, mode, owner, mtime, link
//! target, xattrs), a short unified diff for small text files, and which layer wrote each
//! differing path (with the history entry that created that layer).
//!
//! Speed: file contents are never hashed to decide equality. Two files whose bytes are the
//! same range of the same layer (same diff_id, offset and size) are equal unread; files of
//! different sizes differ unread; only the remaining pairs are compared byte for byte (the
//! layer tars mapped into memory), in parallel, and each pair at most once (the layer and merged comparisons share results).
//! Only files found to differ are hashed (sha256), to show their content digests.
//!
//! Must not: change either image or store beyond what reading a layer needs (a layer stored
//! compressed is decompressed into its store once, as every reader of layers does), print,
//! or know where the images came from (refs, tarballs, builds: the callers decide).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use memmap2::Mmap;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::layer::reader::scan_layer_file;
use crate::layer::view::FsView;
use crate::layer::{Entry, EntryKind, LayerError, TarOffset};
use crate::oci::Digest;
use crate::store::{Image, Store, StoreError};

/// Files up to this size that are UTF-8 text get a unified diff.
const TEXT_DIFF_MAX_BYTES: u64 = 16 * 1024;
/// Lines of a unified diff kept (the rest is summarised in one line).
const TEXT_DIFF_MAX_LINES: usize = 40;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CompareError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Layer(#[from] LayerError),
    #[error("cannot read {}: {error}", path.display())]
    #[diagnostic(code(kiln::compare::read))]
    Read { path: PathBuf, error: io::Error },
    #[error("{what} has {layers} layers but its config lists {diff_ids} diff_ids")]
    #[diagnostic(
        code(kiln::compare::layer_count),
        help("the image is inconsistent; load or build it again")
    )]
    LayerCount {
        what: String,
        layers: usize,
        diff_ids: usize,
    },
}

/// One image to compare, and the store that holds its blobs.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    pub store: &'a Store,
    pub image: &'a Image,
}

/// Everything that differs between image A and image B.
#[derive(Debug, Clone, Serialize)]
pub struct ImageDiff {
    pub a: ImageSummary,
    pub b: ImageSummary,
    /// Config fields that differ (`rootfs` excluded: the layers below say it better).
    pub config: Vec<FieldChange>,
    /// Layer pairs by position; `files` is empty for pairs with equal diff_ids.
    pub layers: Vec<LayerDiff>,
    /// Differences of the merged file trees (what a container would see), sorted by path.
    pub files: Vec<FileChange>,
}

impl ImageDiff {
    /// Equal images: same config (which names the same layers by diff_id).
    pub fn is_equal(&self) -> bool {
        self.a.id == self.b.id
            || (self.config.is_empty()
                && self.files.is_empty()
                && self.layers.iter().all(|l| l.equal))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageSummary {
    /// The image ID (config digest).
    pub id: String,
    pub manifest: String,
    pub layers: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    /// A JSON path into the config: `config.Env[1]`, `history[3].created_by`.
    pub field: String,
    /// `None`: the field is absent on that side.
    pub a: Option<Value>,
    pub b: Option<Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerDiff {
    /// Position in both stacks, from the bottom (0).
    pub index: usize,
    pub a: Option<LayerInfo>,
    pub b: Option<LayerInfo>,
    /// Same diff_id on both sides (then the layer was not read).
    pub equal: bool,
    /// The entries of the two layer tars that differ (whiteouts and opaque markers included).
    pub files: Vec<FileChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerInfo {
    pub diff_id: String,
    /// The history entry that created the layer (`created_by`), when the config has one.
    pub created_by: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Only in B.
    Added,
    /// Only in A.
    Removed,
    Changed,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileChange {
    pub path: String,
    pub change: Change,
    pub a: Option<FileState>,
    pub b: Option<FileState>,
    /// The attributes that differ, for `Changed`: `type`, `content`, `size`, `mode`,
    /// `owner`, `mtime`, `link_target`, `xattrs`.
    pub differs: Vec<&'static str>,
    /// A unified diff of the contents, for small text files whose content changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_diff: Option<String>,
    /// The layer (index in its image) that wrote the path on each side (for a removed path
    /// on side B: the layer whose whiteout removed it, when one did).
    pub a_layer: Option<usize>,
    pub b_layer: Option<usize>,
}

/// The state of one path on one side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileState {
    /// `file`, `dir`, `symlink`, `hardlink`, `whiteout`, `opaque`, `char`, `block`, `fifo`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Permission bits in octal, e.g. `0644`.
    pub mode: String,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
    /// Extended attributes, values in hex.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub xattrs: BTreeMap<String, String>,
    /// `sha256:<hex>` of the content; filled in for regular files that differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// Compares image A with image B (see the module docs).
pub fn diff_images(a: Side<'_>, b: Side<'_>) -> Result<ImageDiff, CompareError> {
    let summary = |s: Side<'_>| ImageSummary {
        id: s.image.id().to_string(),
        manifest: s.image.manifest_digest.to_string(),
        layers: s.image.config.rootfs.diff_ids.len(),
    };
    let mut out = ImageDiff {
        a: summary(a),
        b: summary(b),
        config: Vec::new(),
        layers: Vec::new(),
        files: Vec::new(),
    };
    if a.image.id() == b.image.id() {
        return Ok(out);
    }
    out.config = diff_configs(a.image, b.image);
    let stack_a = Stack::open(a, "image A")?;
    let stack_b = Stack::open(b, "image B")?;
    let contents = Contents::new(&stack_a, &stack_b)?;

    let depth = stack_a.layers.len().max(stack_b.layers.len());
    let equal_at = |index: usize| {
        matches!(
            (stack_a.layers.get(index), stack_b.layers.get(index)),
            (Some(x), Some(y)) if x.diff_id == y.diff_id
        )
    };
    // Each tar is scanned once, and only when some layer differs: the layer pairs and the
    // merged views are built from the same scans.
    let any_differs = (0..depth).any(|i| !equal_at(i));
    let (scans_a, scans_b) = if any_differs {
        (stack_a.scan()?, stack_b.scan()?)
    } else {
        (Vec::new(), Vec::new())
    };
    for index in 0..depth {
        let (la, lb) = (stack_a.layers.get(index), stack_b.layers.get(index));
        let equal = equal_at(index);
        let files = if equal {
            Vec::new()
        } else {
            diff_layer_entries(
                la.zip(scans_a.get(index)).map(|(l, s)| (l, s.as_slice())),
                lb.zip(scans_b.get(index)).map(|(l, s)| (l, s.as_slice())),
                index,
                &contents,
            )?
        };
        out.layers.push(LayerDiff {
            index,
            a: la.map(Layer::info),
            b: lb.map(Layer::info),
            equal,
            files,
        });
    }
    if any_differs {
        out.files = diff_merged((&stack_a, scans_a), (&stack_b, scans_b), &contents)?;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Config

fn diff_configs(a: &Image, b: &Image) -> Vec<FieldChange> {
    let as_fields = |image: &Image| {
        let mut fields = BTreeMap::new();
        if let Ok(Value::Object(mut top)) = serde_json::to_value(&image.config) {
            top.remove("rootfs");
            flatten("", &Value::Object(top), &mut fields);
        }
        fields
    };
    let (fa, fb) = (as_fields(a), as_fields(b));
    let mut names: Vec<&String> = fa.keys().chain(fb.keys()).collect();
    names.sort_by(|x, y| field_order(x).cmp(&field_order(y)));
    names.dedup();
    names
        .into_iter()
        .filter(|n| fa.get(*n) != fb.get(*n))
        .map(|n| FieldChange {
            field: n.clone(),
            a: fa.get(n).cloned(),
            b: fb.get(n).cloned(),
        })
        .collect()
}

/// Sort key for field paths: `history[10]` after `history[9]`.
fn field_order(path: &str) -> Vec<Result<u64, &str>> {
    path.split(['.', '[', ']'])
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u64>().map_err(|_| p))
        .collect()
}

/// Leaves of a JSON value by path; empty objects and arrays are leaves themselves.
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&path, v, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Layers

/// One layer of an image: its diff_id, its uncompressed tar and the history entry that made it.
struct Layer {
    diff_id: Digest,
    tar: PathBuf,
    created_by: Option<String>,
}

impl Layer {
    fn info(&self) -> LayerInfo {
        LayerInfo {
            diff_id: self.diff_id.to_string(),
            created_by: self.created_by.clone(),
        }
    }
}

/// An image's layers, lowest first.
struct Stack {
    layers: Vec<Layer>,
}

impl Stack {
    fn open(side: Side<'_>, what: &str) -> Result<Stack, CompareError> {
        let diff_ids = &side.image.config.rootfs.diff_ids;
        if diff_ids.len() != side.image.manifest.layers.len() {
            return Err(CompareError::LayerCount {
                what: what.to_string(),
                layers: side.image.manifest.layers.len(),
                diff_ids: diff_ids.len(),
            });
        }
        // The k-th history entry that is not an empty layer made the k-th layer.
        let mut made_by = side
            .image
            .config
            .history
            .iter()
            .filter(|h| !h.empty_layer)
            .map(|h| h.created_by.clone());
        let layers = diff_ids
            .iter()
            .map(|diff_id| {
                Ok(Layer {
                    diff_id: diff_id.clone(),
                    tar: side.store.uncompressed_layer(diff_id)?,
                    created_by: made_by.next().flatten(),
                })
            })
            .collect::<Result<Vec<_>, CompareError>>()?;
        Ok(Stack { layers })
    }

    /// Every layer's entries, lowest first (layers scanned in parallel).
    fn scan(&self) -> Result<Vec<Vec<Entry<TarOffset>>>, CompareError> {
        self.layers.par_iter().map(|l| scan(&l.tar)).collect()
    }
}

/// For every path some layer has an entry for (whiteouts included), the highest such layer.
fn writers(scans: &[Vec<Entry<TarOffset>>]) -> HashMap<&str, usize> {
    let mut out = HashMap::new();
    for (i, entries) in scans.iter().enumerate() {
        for entry in entries {
            out.insert(entry.path.as_str(), i);
        }
    }
    out
}

fn scan(tar: &Path) -> Result<Vec<Entry<TarOffset>>, CompareError> {
    let file = File::open(tar).map_err(|error| CompareError::Read {
        path: tar.to_path_buf(),
        error,
    })?;
    Ok(scan_layer_file(&file)?)
}

/// Where a file's bytes are: a range of one of the layer tars [`Contents`] holds (by index;
/// two images sharing a layer share its tar, so equal ranges are equal bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Bytes {
    tar: usize,
    offset: u64,
    size: u64,
}

/// The layer tars of both images, mapped into memory, and the results of comparisons
/// already made.
///
/// Mapping, not reading: comparing two large layers byte for byte through `pread` spent as
/// long copying pages out of the page cache as comparing them. Store blobs are never
/// modified in place (they are written under a temporary name and renamed), so a mapping
/// cannot change under the comparison.
struct Contents {
    index: HashMap<PathBuf, usize>,
    tars: Vec<(PathBuf, Mmap)>,
    same: Mutex<HashMap<(Bytes, Bytes), bool>>,
}

impl Contents {
    fn new(a: &Stack, b: &Stack) -> Result<Contents, CompareError> {
        let (mut index, mut tars) = (HashMap::new(), Vec::new());
        for layer in a.layers.iter().chain(&b.layers) {
            if index.contains_key(&layer.tar) {
                continue;
            }
            let read_error = |error| CompareError::Read {
                path: layer.tar.clone(),
                error,
            };
            let file = File::open(&layer.tar).map_err(read_error)?;
            // SAFETY: the store never changes a blob in place (see the type's docs).
            let map = unsafe { Mmap::map(&file) }.map_err(read_error)?;
            index.insert(layer.tar.clone(), tars.len());
            tars.push((layer.tar.clone(), map));
        }
        Ok(Contents {
            index,
            tars,
            same: Mutex::new(HashMap::new()),
        })
    }

    fn bytes(&self, tar: &Path, offset: u64, size: u64) -> Option<Bytes> {
        self.index.get(tar).map(|&tar| Bytes { tar, offset, size })
    }

    /// The bytes of a range, or an error naming the tar when the range runs past its end
    /// (the layer scan refuses such entries, so this is a store that changed underneath).
    fn slice(&self, bytes: &Bytes) -> Result<&[u8], CompareError> {
        let Some((path, map)) = self.tars.get(bytes.tar) else {
            return Ok(&[]);
        };
        usize::try_from(bytes.offset)
            .ok()
            .zip(usize::try_from(bytes.size).ok())
            .and_then(|(start, len)| map.get(start..start.checked_add(len)?))
            .ok_or_else(|| CompareError::Read {
                path: path.clone(),
                error: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{} bytes at offset {} are past the end",
                        bytes.size, bytes.offset
                    ),
                ),
            })
    }

    /// Whether two byte ranges hold the same bytes (see the module docs for the shortcuts).
    fn same(&self, a: &Bytes, b: &Bytes) -> Result<bool, CompareError> {
        if a == b {
            return Ok(true);
        }
        if a.size != b.size {
            return Ok(false);
        }
        let key = (*a, *b);
        if let Some(known) = self.lock().get(&key) {
            return Ok(*known);
        }
        let result = self.slice(a)? == self.slice(b)?;
        self.lock().insert(key, result);
        Ok(result)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Bytes, Bytes), bool>> {
        self.same.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self, bytes: &Bytes) -> Result<Vec<u8>, CompareError> {
        Ok(self.slice(bytes)?.to_vec())
    }

    fn sha256(&self, bytes: &Bytes) -> Result<String, CompareError> {
        let digest = Sha256::digest(self.slice(bytes)?);
        Ok(format!("sha256:{}", hex::encode(digest)))
    }
}

// ---------------------------------------------------------------------------------------
// Entries: one comparable form for layer entries and merged-view entries.

#[derive(Debug, Clone)]
struct Item {
    state: FileState,
    bytes: Option<Bytes>,
}

fn octal(mode: u32) -> String {
    format!("{mode:04o}")
}

fn hex_xattrs(xattrs: &[(String, Vec<u8>)]) -> BTreeMap<String, String> {
    xattrs
        .iter()
        .map(|(k, v)| (k.clone(), hex::encode(v)))
        .collect()
}

/// One entry as compared: its attributes, and where its bytes are (`locate` gives the tar
/// and the offset of a file's data, wherever the entry was read from).
fn item_of<'e, D>(
    entry: &'e Entry<D>,
    locate: impl Fn(&'e D) -> (&'e Path, u64),
    contents: &Contents,
) -> Item {
    let (kind, size, link_target, bytes) = match &entry.kind {
        EntryKind::Dir => ("dir", None, None, None),
        EntryKind::File { size, source } => {
            let (tar, offset) = locate(source);
            (
                "file",
                Some(*size),
                None,
                contents.bytes(tar, offset, *size),
            )
        }
        EntryKind::Symlink { target } => ("symlink", None, Some(target.clone()), None),
        EntryKind::Hardlink { target } => ("hardlink", None, Some(target.clone()), None),
        EntryKind::Whiteout => ("whiteout", None, None, None),
        EntryKind::OpaqueDir => ("opaque", None, None, None),
        EntryKind::CharDevice { major, minor } => {
            ("char", None, Some(format!("{major}:{minor}")), None)
        }
        EntryKind::BlockDevice { major, minor } => {
            ("block", None, Some(format!("{major}:{minor}")), None)
        }
        EntryKind::Fifo => ("fifo", None, None, None),
    };
    Item {
        state: FileState {
            kind,
            size,
            mode: octal(entry.mode),
            uid: entry.uid,
            gid: entry.gid,
            mtime: entry.mtime,
            link_target,
            xattrs: hex_xattrs(&entry.xattrs),
            content: None,
        },
        bytes,
    }
}

/// The attributes in which `a` and `b` differ, content compared last (and only when needed).
fn differences(a: &Item, b: &Item, contents: &Contents) -> Result<Vec<&'static str>, CompareError> {
    let (x, y) = (&a.state, &b.state);
    let mut out = Vec::new();
    if x.kind != y.kind {
        out.push("type");
    }
    if let (Some(ba), Some(bb)) = (&a.bytes, &b.bytes) {
        if !contents.same(ba, bb)? {
            out.push("content");
        }
    }
    if x.size != y.size {
        out.push("size");
    }
    if x.mode != y.mode {
        out.push("mode");
    }
    if (x.uid, x.gid) != (y.uid, y.gid) {
        out.push("owner");
    }
    if x.mtime != y.mtime {
        out.push("mtime");
    }
    if x.link_target != y.link_target {
        out.push("link_target");
    }
    if x.xattrs != y.xattrs {
        out.push("xattrs");
    }
    Ok(out)
}

/// A differing path, with where each side's bytes are (files only).
type Found = (FileChange, Option<Bytes>, Option<Bytes>);

/// Joins two sorted maps of items into the list of changes (comparing pairs in parallel).
fn join_changes(
    a: BTreeMap<String, Item>,
    mut b: BTreeMap<String, Item>,
    contents: &Contents,
) -> Result<Vec<Found>, CompareError> {
    let mut pairs: Vec<(String, Option<Item>, Option<Item>)> = Vec::new();
    for (path, item) in a {
        let other = b.remove(&path);
        pairs.push((path, Some(item), other));
    }
    for (path, item) in b {
        pairs.push((path, None, Some(item)));
    }
    let compared: Vec<Option<Found>> = pairs
        .into_par_iter()
        .map(|(path, ia, ib)| {
            let (change, differs) = match (&ia, &ib) {
                (Some(x), Some(y)) => {
                    let d = differences(x, y, contents)?;
                    if d.is_empty() {
                        return Ok(None);
                    }
                    (Change::Changed, d)
                }
                (Some(_), None) => (Change::Removed, Vec::new()),
                _ => (Change::Added, Vec::new()),
            };
            let bytes_a = ia.as_ref().and_then(|i| i.bytes);
            let bytes_b = ib.as_ref().and_then(|i| i.bytes);
            Ok(Some((
                FileChange {
                    path,
                    change,
                    a: ia.map(|i| i.state),
                    b: ib.map(|i| i.state),
                    differs,
                    text_diff: None,
                    a_layer: None,
                    b_layer: None,
                },
                bytes_a,
                bytes_b,
            )))
        })
        .collect::<Result<_, CompareError>>()?;
    let mut out: Vec<_> = compared.into_iter().flatten().collect();
    out.sort_by(|x, y| x.0.path.cmp(&y.0.path));
    Ok(out)
}

/// Content digests of the regular files of differing entries, and a text diff where small.
fn describe(found: Vec<Found>, contents: &Contents) -> Result<Vec<FileChange>, CompareError> {
    found
        .into_par_iter()
        .map(|(mut change, ba, bb)| {
            if let (Some(state), Some(bytes)) = (change.a.as_mut(), &ba) {
                state.content = Some(contents.sha256(bytes)?);
            }
            if let (Some(state), Some(bytes)) = (change.b.as_mut(), &bb) {
                state.content = Some(contents.sha256(bytes)?);
            }
            if change.differs.contains(&"content") {
                if let (Some(x), Some(y)) = (&ba, &bb) {
                    change.text_diff = text_diff(&change.path, x, y, contents)?;
                }
            }
            Ok(change)
        })
        .collect()
}

fn text_diff(
    path: &str,
    a: &Bytes,
    b: &Bytes,
    contents: &Contents,
) -> Result<Option<String>, CompareError> {
    if a.size > TEXT_DIFF_MAX_BYTES || b.size > TEXT_DIFF_MAX_BYTES {
        return Ok(None);
    }
    let (da, db) = (contents.read(a)?, contents.read(b)?);
    let (Ok(ta), Ok(tb)) = (std::str::from_utf8(&da), std::str::from_utf8(&db)) else {
        return Ok(None);
    };
    if ta.contains('\0') || tb.contains('\0') {
        return Ok(None);
    }
    let diff = similar::TextDiff::from_lines(ta, tb);
    let text = diff
        .unified_diff()
        .context_radius(2)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string();
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= TEXT_DIFF_MAX_LINES {
        return Ok(Some(text));
    }
    let mut kept = lines[..TEXT_DIFF_MAX_LINES].join("\n");
    kept.push_str(&format!(
        "\n... {} more lines\n",
        lines.len() - TEXT_DIFF_MAX_LINES
    ));
    Ok(Some(kept))
}

/// The differing entries of one pair of layers (either may be missing), from their scans.
fn diff_layer_entries(
    a: Option<(&Layer, &[Entry<TarOffset>])>,
    b: Option<(&Layer, &[Entry<TarOffset>])>,
    index: usize,
    contents: &Contents,
) -> Result<Vec<FileChange>, CompareError> {
    let items = |side: Option<(&Layer, &[Entry<TarOffset>])>| -> BTreeMap<String, Item> {
        let mut out = BTreeMap::new();
        if let Some((layer, entries)) = side {
            for entry in entries {
                let key = match entry.kind {
                    // An opaque marker and its directory's own entry share a path.
                    EntryKind::OpaqueDir => format!("{}/.wh..wh..opq", entry.path),
                    _ => entry.path.clone(),
                };
                out.insert(
                    key,
                    item_of(entry, |o| (layer.tar.as_path(), o.0), contents),
                );
            }
        }
        out
    };
    let found = join_changes(items(a), items(b), contents)?;
    let mut changes = describe(found, contents)?;
    for c in &mut changes {
        c.a_layer = c.a.as_ref().map(|_| index);
        c.b_layer = c.b.as_ref().map(|_| index);
    }
    Ok(changes)
}

/// The differences of the merged trees, each attributed to the layers that wrote it.
fn diff_merged(
    (a, scans_a): (&Stack, Vec<Vec<Entry<TarOffset>>>),
    (b, scans_b): (&Stack, Vec<Vec<Entry<TarOffset>>>),
    contents: &Contents,
) -> Result<Vec<FileChange>, CompareError> {
    let (wa, wb) = (writers(&scans_a), writers(&scans_b));
    let view = |stack: &Stack, scans: &[Vec<Entry<TarOffset>>]| {
        FsView::from_scanned(
            stack
                .layers
                .iter()
                .map(|l| l.tar.as_path())
                .zip(scans.iter().cloned()),
        )
    };
    let (view_a, view_b) = (view(a, &scans_a)?, view(b, &scans_b)?);
    let items = |view: &FsView| -> BTreeMap<String, Item> {
        view.walk("")
            .map(|e| {
                (
                    e.path.clone(),
                    item_of(e, |d| (&*d.tar, d.offset), contents),
                )
            })
            .collect()
    };
    let found = join_changes(items(&view_a), items(&view_b), contents)?;
    let mut changes = describe(found, contents)?;
    for c in &mut changes {
        c.a_layer = wa.get(c.path.as_str()).copied();
        c.b_layer = wb.get(c.path.as_str()).copied();
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_names_nested_fields_and_array_items() {
        let v = serde_json::json!({"config": {"Env": ["A=1", "B=2"], "Labels": {"x": "y"}}, "os": "linux", "e": {}});
        let mut out = BTreeMap::new();
        flatten("", &v, &mut out);
        let keys: Vec<&str> = out.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "config.Env[0]",
                "config.Env[1]",
                "config.Labels.x",
                "e",
                "os"
            ]
        );
    }

    #[test]
    fn field_order_sorts_indexes_numerically() {
        let mut v = vec!["history[10].x", "history[9].x", "architecture"];
        v.sort_by(|x, y| field_order(x).cmp(&field_order(y)));
        assert_eq!(v, ["architecture", "history[9].x", "history[10].x"]);
    }
}
