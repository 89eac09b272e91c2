//! Build records: for one build of a target, every plan node's key and the inputs of that
//! key, so a later build can say why a key changed (`explain`).
//!
//! Owns the record model (`BuildRecord`, `NodeRecord`), making one from a [`Plan`], and the
//! context listing chunks: a context selection's entries, in the key's record format
//! (`ContextIndex::write_record`), cut into chunks at content-defined boundaries (after an
//! entry whose path hashes to 0 modulo [`CHUNK_DIVISOR`]), so two listings that differ in one
//! file share every other chunk. Chunks are named by the blake3 of their bytes.
//! Must not: read or write files (the runtime's store keeps records and chunks).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Node, Op, Plan};
use crate::context::ContextIndex;

/// The record format's version.
pub const RECORD_VERSION: u32 = 1;

/// A chunk ends after an entry whose path's FNV-1a hash is 0 modulo this: chunks of about
/// this many entries.
pub const CHUNK_DIVISOR: u64 = 256;

/// No chunk holds more entries than this (bounds a chunk when no path ends one).
pub const CHUNK_MAX_ENTRIES: usize = 4096;

/// One build of one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildRecord {
    pub v: u32,
    /// What identifies "the same target" ([`target_id`]).
    pub target: String,
    /// When the build finished, seconds since 1970 (for `kiln prune` and display only).
    pub built_at: u64,
    /// The built image's manifest digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// One per plan node, in plan order (index = node id).
    pub nodes: Vec<NodeRecord>,
}

/// One plan node and the inputs of its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The cache key, 64 hex digits.
    pub key: String,
    /// The op's kind: `scratch`, `base_image`, `context`, `copy`, `mkdir`, `run`, `config`,
    /// `image`.
    pub kind: String,
    pub stage: String,
    pub line: usize,
    /// The instruction as written.
    pub text: String,
    /// Input node ids (their keys are the parent keys).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<usize>,
    /// The build arguments the definition read: (name, resolved value).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<(String, String)>,
    /// The op's definition as the key encodes it (steps, config and context nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<serde_json::Value>,
    /// For a base image: the reference and the manifest digest it resolved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseRecord>,
    /// For a context selection: its listing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<ListingRecord>,
    /// For a step (copy, mkdir, run): whether this build took it from the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseRecord {
    pub reference: String,
    pub digest: Option<String>,
}

/// A context selection's entries, as the chunks that hold them, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingRecord {
    pub entries: usize,
    /// blake3 (hex) of each chunk's bytes.
    pub chunks: Vec<String>,
}

/// One entry of a listing chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingEntry {
    pub path: String,
    pub kind: String,
    /// Octal, as written in the record.
    pub mode: String,
    pub link: String,
    /// 64 hex digits of blake3 over the content, empty for non-files.
    pub hash: String,
}

impl NodeRecord {
    /// Copy, mkdir and run: the nodes the builder runs or takes from the cache.
    pub fn is_step(&self) -> bool {
        matches!(self.kind.as_str(), "copy" | "mkdir" | "run")
    }
}

/// The identity of a target: the Dockerfile (its absolute path, or `-` and the context for
/// standard input) and the `--target` stage (empty for the last stage).
pub fn target_id(dockerfile: &str, target: Option<&str>) -> String {
    ["dockerfile=", dockerfile, "\ntarget=", target.unwrap_or("")].concat()
}

/// A record of `plan` and the listing chunks it names (digest -> bytes). `cached` and
/// `image` are filled in once the build ran. A context node whose key is a context node's
/// key in `previous` (the target's last record, whose chunks the store keeps) has the same
/// entries, so its listing is taken from there: an unchanged context is not listed again,
/// and its chunks are not among those returned.
pub fn from_plan(
    plan: &Plan,
    target: String,
    built_at: u64,
    previous: Option<&BuildRecord>,
) -> (BuildRecord, BTreeMap<String, Vec<u8>>) {
    let known: std::collections::HashMap<&str, &ListingRecord> = previous
        .into_iter()
        .flat_map(|r| r.nodes.iter())
        .filter_map(|n| Some((n.key.as_str(), n.context.as_ref()?)))
        .collect();
    let mut chunks = BTreeMap::new();
    let nodes = plan
        .nodes
        .iter()
        .map(|n| node_record(n, &plan.context, &known, &mut chunks))
        .collect();
    (
        BuildRecord {
            v: RECORD_VERSION,
            target,
            built_at,
            image: None,
            nodes,
        },
        chunks,
    )
}

fn op_kind(op: &Op) -> &'static str {
    match op {
        Op::Scratch => "scratch",
        Op::BaseImage { .. } => "base_image",
        Op::Context(_) => "context",
        Op::Copy(_) => "copy",
        Op::Mkdir { .. } => "mkdir",
        Op::Run(_) => "run",
        Op::Config { .. } => "config",
        Op::Image(_) => "image",
    }
}

fn node_record(
    n: &Node,
    context: &ContextIndex,
    known: &std::collections::HashMap<&str, &ListingRecord>,
    chunks: &mut BTreeMap<String, Vec<u8>>,
) -> NodeRecord {
    let kind = op_kind(&n.op);
    let key = n.key.to_hex();
    let (op, base, listing) = match &n.op {
        Op::BaseImage {
            reference, digest, ..
        } => (
            None,
            Some(BaseRecord {
                reference: reference.clone(),
                digest: digest.clone(),
            }),
            None,
        ),
        Op::Context(sel) => (
            serde_json::to_value(&n.op).ok(),
            None,
            Some(match known.get(key.as_str()) {
                Some(l) => (*l).clone(),
                None => listing(context, &sel.files, chunks),
            }),
        ),
        Op::Scratch | Op::Image(_) => (None, None, None),
        _ => (serde_json::to_value(&n.op).ok(), None, None),
    };
    NodeRecord {
        key,
        kind: kind.to_string(),
        stage: n.origin.stage.clone(),
        line: n.origin.line,
        text: n.origin.text.clone(),
        inputs: n.inputs.iter().map(|i| i.0).collect(),
        args: n.args.clone(),
        op,
        base,
        context: listing,
        cached: None,
    }
}

/// FNV-1a, 64 bits: cheap and fixed, which is all a chunk boundary needs.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The chunks of a selection's listing (added to `chunks`), in order.
pub fn listing(
    context: &ContextIndex,
    which: &[usize],
    chunks: &mut BTreeMap<String, Vec<u8>>,
) -> ListingRecord {
    let sorted = crate::context::sorted_unique(which);
    let mut names = Vec::new();
    let mut chunk = Vec::new();
    let mut in_chunk = 0;
    let mut close = |chunk: &mut Vec<u8>, names: &mut Vec<String>| {
        let digest = blake3::hash(chunk).to_hex().to_string();
        names.push(digest.clone());
        chunks
            .entry(digest)
            .or_insert_with(|| std::mem::take(chunk));
        chunk.clear();
    };
    for &i in &sorted {
        context.write_record(i, &mut chunk);
        in_chunk += 1;
        let ends = fnv1a(context.files[i].path.as_bytes()).is_multiple_of(CHUNK_DIVISOR);
        if ends || in_chunk == CHUNK_MAX_ENTRIES {
            close(&mut chunk, &mut names);
            in_chunk = 0;
        }
    }
    if in_chunk > 0 {
        close(&mut chunk, &mut names);
    }
    ListingRecord {
        entries: sorted.len(),
        chunks: names,
    }
}

/// The entries of one chunk, or None when its bytes are not a listing.
pub fn parse_chunk(bytes: &[u8]) -> Option<Vec<ListingEntry>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    let field = |rest: &mut &[u8]| -> Option<String> {
        let end = rest.iter().position(|&b| b == 0)?;
        let s = std::str::from_utf8(&rest[..end]).ok()?.to_string();
        *rest = &rest[end + 1..];
        Some(s)
    };
    while !rest.is_empty() {
        let path = field(&mut rest)?;
        let kind = field(&mut rest)?;
        let mode = field(&mut rest)?;
        let link = field(&mut rest)?;
        // The hash is 64 hex digits or nothing, then the newline.
        let end = rest.iter().position(|&b| b == b'\n')?;
        let hash = std::str::from_utf8(&rest[..end]).ok()?.to_string();
        if !(hash.is_empty() || hash.len() == 64) {
            return None;
        }
        rest = &rest[end + 1..];
        out.push(ListingEntry {
            path,
            kind,
            mode,
            link,
            hash,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ContextFile;
    use crate::copy::SourceKind;

    fn index(n: usize, changed: Option<usize>) -> ContextIndex {
        let mut idx = ContextIndex::default();
        for i in 0..n {
            let mut hash = [0u8; 32];
            hash[..8].copy_from_slice(&(i as u64).to_le_bytes());
            if Some(i) == changed {
                hash[31] = 1;
            }
            idx.files.push(ContextFile {
                path: format!("dir/file-{i:05}\nodd"),
                kind: SourceKind::File,
                mode: 0o644,
                size: 1,
                link_target: None,
                hash: Some(hash),
                stat: Default::default(),
            });
        }
        idx
    }

    #[test]
    fn chunks_round_trip_and_one_change_touches_one_chunk() {
        let a = index(5000, None);
        let b = index(5000, Some(2500));
        let all: Vec<usize> = (0..5000).collect();
        let (mut ca, mut cb) = (BTreeMap::new(), BTreeMap::new());
        let la = listing(&a, &all, &mut ca);
        let lb = listing(&b, &all, &mut cb);
        assert_eq!(la.entries, 5000);
        assert!(la.chunks.len() > 5, "{} chunks", la.chunks.len());
        let differing = la
            .chunks
            .iter()
            .zip(&lb.chunks)
            .filter(|(x, y)| x != y)
            .count();
        assert_eq!(la.chunks.len(), lb.chunks.len());
        assert_eq!(differing, 1);
        let entries: Vec<ListingEntry> = la
            .chunks
            .iter()
            .flat_map(|c| parse_chunk(&ca[c]).unwrap())
            .collect();
        assert_eq!(entries.len(), 5000);
        assert_eq!(entries[7].path, "dir/file-00007\nodd");
        assert_eq!(entries[7].mode, "644");
        assert_eq!(entries[7].hash.len(), 64);
    }

    #[test]
    fn a_bad_chunk_is_refused() {
        assert!(parse_chunk(b"a\0file\x00644\0\0abc\n").is_none());
        assert!(parse_chunk(b"a\0file").is_none());
        assert_eq!(parse_chunk(b"").unwrap(), vec![]);
    }
}
