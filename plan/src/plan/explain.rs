//! Why a step's key changed: the comparison of two build records of one target.
//!
//! Owns matching the steps of the earlier build to this one's (per stage, by aligning the
//! instruction texts, so an inserted or removed instruction does not shift the rest), and for
//! each step whose key differs, the inputs that differ: the instruction, a build argument,
//! the op's definition (the same text, e.g. another SOURCE_DATE_EPOCH), a base image digest,
//! a parent step, or context files (path, old and new content hash). Metadata-only parents
//! (ENV, LABEL, ARG ...) are looked through to what changed them. Rendering as text.
//! Must not: read anything: the caller hands in both records and the listing chunks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;

use serde::Serialize;

use super::record::{parse_chunk, BuildRecord, ListingEntry, ListingRecord, NodeRecord};

/// How many changed context files a reason lists (then "and N more").
pub const MAX_FILES: usize = 20;

/// One reason a step was not taken from the cache.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// There is no earlier build of this target in the store.
    FirstBuild,
    /// The earlier build had no step that matches this one.
    NewStep,
    /// The instruction's text changed.
    Instruction { old: String, new: String },
    /// A build argument the step reads changed (None: unset).
    BuildArg {
        name: String,
        old: Option<String>,
        new: Option<String>,
    },
    /// The same text, another definition: one field of the op as the key encodes it.
    Definition {
        field: String,
        old: serde_json::Value,
        new: serde_json::Value,
    },
    /// A base image resolved to another manifest (or the reference changed).
    BaseImage {
        old_reference: String,
        new_reference: String,
        old_digest: Option<String>,
        new_digest: Option<String>,
    },
    /// Context files changed: the first [`MAX_FILES`], and how many more.
    ContextFiles { files: Vec<FileChange>, more: usize },
    /// The context changed, but the earlier listing is no longer in the store.
    ContextUnknown,
    /// A parent step (one the builder runs) has a new key.
    ParentStep {
        id: usize,
        stage: String,
        text: String,
    },
    /// A metadata-only parent (ENV, LABEL, ARG ...) changed, for these reasons.
    Through {
        id: usize,
        line: usize,
        text: String,
        because: Vec<Reason>,
    },
    /// The key is the earlier build's: its cached result is gone, or the cache was not used.
    SameKey,
    /// The key changed, yet no recorded input did (an earlier kiln's record).
    KeyOnly,
}

/// A context entry that differs (None: absent on that side).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    pub path: String,
    pub old: Option<EntryState>,
    pub new: Option<EntryState>,
}

/// What the key covers of one context entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryState {
    pub kind: String,
    pub mode: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub link: String,
    /// blake3 of the content (files), 64 hex digits.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hash: String,
}

impl From<&ListingEntry> for EntryState {
    fn from(e: &ListingEntry) -> Self {
        EntryState {
            kind: e.kind.clone(),
            mode: e.mode.clone(),
            link: e.link.clone(),
            hash: e.hash.clone(),
        }
    }
}

/// Listing chunks by digest (both records' chunks that differ between them).
pub type Chunks<'a> = &'a dyn Fn(&str) -> Option<Vec<u8>>;

/// The chunks of `old` that `new` does not have: all a comparison may need to load besides
/// the new build's own.
pub fn chunks_to_load(old: &BuildRecord, new: &BuildRecord) -> Vec<String> {
    let have: HashSet<&str> = new
        .nodes
        .iter()
        .filter_map(|n| n.context.as_ref())
        .flat_map(|l| l.chunks.iter().map(String::as_str))
        .collect();
    let mut out: Vec<String> = old
        .nodes
        .iter()
        .filter_map(|n| n.context.as_ref())
        .flat_map(|l| l.chunks.iter())
        .filter(|c| !have.contains(c.as_str()))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

/// For every step of `new` (by node id): why its key is not the one the matching step of
/// `old` had, or [`Reason::SameKey`] when it is.
pub fn explain(
    old: Option<&BuildRecord>,
    new: &BuildRecord,
    chunks: Chunks<'_>,
) -> BTreeMap<usize, Vec<Reason>> {
    let steps = new.nodes.iter().enumerate().filter(|(_, n)| n.is_step());
    let Some(old) = old else {
        return steps.map(|(i, _)| (i, vec![Reason::FirstBuild])).collect();
    };
    let matched = match_nodes(old, new);
    let mut cmp = Comparer {
        old,
        new,
        chunks,
        memo: HashMap::new(),
    };
    steps
        .map(|(i, _)| {
            let reasons = match matched.get(&i) {
                Some(&o) => cmp.reasons(i, o),
                None => vec![Reason::NewStep],
            };
            (i, reasons)
        })
        .collect()
}

/// Steps and metadata nodes of `new` paired with `old`'s: per stage, the instruction texts
/// aligned (a replaced run of instructions pairs up in order).
fn match_nodes(old: &BuildRecord, new: &BuildRecord) -> HashMap<usize, usize> {
    fn by_stage(r: &BuildRecord) -> BTreeMap<&str, Vec<usize>> {
        let mut out: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, n) in r.nodes.iter().enumerate() {
            if n.is_step() || n.kind == "config" {
                out.entry(n.stage.as_str()).or_default().push(i);
            }
        }
        out
    }
    let (old_stages, new_stages) = (by_stage(old), by_stage(new));
    let mut out = HashMap::new();
    for (stage, new_ids) in &new_stages {
        let Some(old_ids) = old_stages.get(stage) else {
            continue;
        };
        let text = |r: &BuildRecord, ids: &[usize]| -> Vec<String> {
            ids.iter().map(|&i| r.nodes[i].text.clone()).collect()
        };
        let (a, b) = (text(old, old_ids), text(new, new_ids));
        for op in similar::capture_diff_slices(similar::Algorithm::Myers, &a, &b) {
            match op {
                similar::DiffOp::Equal {
                    old_index,
                    new_index,
                    len,
                } => {
                    for k in 0..len {
                        out.insert(new_ids[new_index + k], old_ids[old_index + k]);
                    }
                }
                similar::DiffOp::Replace {
                    old_index,
                    old_len,
                    new_index,
                    new_len,
                } => {
                    for k in 0..old_len.min(new_len) {
                        out.insert(new_ids[new_index + k], old_ids[old_index + k]);
                    }
                }
                similar::DiffOp::Delete { .. } | similar::DiffOp::Insert { .. } => {}
            }
        }
    }
    out
}

struct Comparer<'a> {
    old: &'a BuildRecord,
    new: &'a BuildRecord,
    chunks: Chunks<'a>,
    memo: HashMap<(usize, usize), Vec<Reason>>,
}

impl Comparer<'_> {
    fn reasons(&mut self, n: usize, o: usize) -> Vec<Reason> {
        if let Some(r) = self.memo.get(&(n, o)) {
            return r.clone();
        }
        let r = self.compute(n, o);
        self.memo.insert((n, o), r.clone());
        r
    }

    fn compute(&mut self, n: usize, o: usize) -> Vec<Reason> {
        let (nn, on) = (&self.new.nodes[n], &self.old.nodes[o]);
        if nn.key == on.key {
            return vec![Reason::SameKey];
        }
        let mut out = Vec::new();
        match (nn.kind.as_str(), &nn.base, &on.base) {
            ("base_image", Some(nb), Some(ob)) => {
                out.extend(arg_changes(on, nn));
                if nb != ob {
                    out.push(Reason::BaseImage {
                        old_reference: ob.reference.clone(),
                        new_reference: nb.reference.clone(),
                        old_digest: ob.digest.clone(),
                        new_digest: nb.digest.clone(),
                    });
                }
                return or_key_only(out);
            }
            ("context", ..) => {
                out.extend(arg_changes(on, nn));
                if out.is_empty() {
                    out.extend(definition_changes(on, nn));
                }
                if let (Some(nl), Some(ol)) = (&nn.context, &on.context) {
                    out.extend(self.listing_changes(ol, nl));
                }
                return or_key_only(out);
            }
            _ => {}
        }
        if nn.kind != on.kind || nn.text != on.text {
            return vec![Reason::Instruction {
                old: on.text.clone(),
                new: nn.text.clone(),
            }];
        }
        out.extend(arg_changes(on, nn));
        if out.is_empty() {
            out.extend(definition_changes(on, nn));
        }
        if nn.inputs.len() == on.inputs.len() {
            let pairs: Vec<(usize, usize)> = nn
                .inputs
                .iter()
                .copied()
                .zip(on.inputs.iter().copied())
                .collect();
            for (ni, oi) in pairs {
                let (np, op) = (&self.new.nodes[ni], &self.old.nodes[oi]);
                if np.key == op.key {
                    continue;
                }
                if np.is_step() {
                    out.push(Reason::ParentStep {
                        id: ni,
                        stage: np.stage.clone(),
                        text: np.text.clone(),
                    });
                } else if np.kind == "config" {
                    let (line, text) = (np.line, np.text.clone());
                    let because = self.reasons(ni, oi);
                    out.push(Reason::Through {
                        id: ni,
                        line,
                        text,
                        because,
                    });
                } else {
                    out.extend(self.reasons(ni, oi));
                }
            }
        }
        or_key_only(out)
    }

    /// The entries of a listing's chunks that are not in `skip` (in order).
    fn entries(&self, l: &ListingRecord, skip: &HashSet<&str>) -> Option<Vec<ListingEntry>> {
        let mut out = Vec::new();
        for c in l.chunks.iter().filter(|c| !skip.contains(c.as_str())) {
            out.extend(parse_chunk(&(self.chunks)(c)?)?);
        }
        Some(out)
    }

    fn listing_changes(&self, old: &ListingRecord, new: &ListingRecord) -> Vec<Reason> {
        if old == new {
            return Vec::new();
        }
        // Chunks in both listings hold the same entries on both sides.
        let a: HashSet<&str> = old.chunks.iter().map(String::as_str).collect();
        let b: HashSet<&str> = new.chunks.iter().map(String::as_str).collect();
        let shared: HashSet<&str> = a.intersection(&b).copied().collect();
        let (Some(olds), Some(news)) = (self.entries(old, &shared), self.entries(new, &shared))
        else {
            return vec![Reason::ContextUnknown];
        };
        let mut files = Vec::new();
        let mut total = 0;
        let (mut i, mut j) = (0, 0);
        while i < olds.len() || j < news.len() {
            let change = match (olds.get(i), news.get(j)) {
                (Some(x), Some(y)) if x.path == y.path => {
                    i += 1;
                    j += 1;
                    (x != y).then(|| FileChange {
                        path: x.path.clone(),
                        old: Some(x.into()),
                        new: Some(y.into()),
                    })
                }
                (Some(x), Some(y)) if x.path.as_bytes() < y.path.as_bytes() => {
                    i += 1;
                    Some(FileChange {
                        path: x.path.clone(),
                        old: Some(x.into()),
                        new: None,
                    })
                }
                (_, Some(y)) => {
                    j += 1;
                    Some(FileChange {
                        path: y.path.clone(),
                        old: None,
                        new: Some(y.into()),
                    })
                }
                (Some(x), None) => {
                    i += 1;
                    Some(FileChange {
                        path: x.path.clone(),
                        old: Some(x.into()),
                        new: None,
                    })
                }
                (None, None) => None,
            };
            if let Some(c) = change {
                total += 1;
                if files.len() < MAX_FILES {
                    files.push(c);
                }
            }
        }
        if total == 0 {
            return Vec::new();
        }
        vec![Reason::ContextFiles {
            more: total - files.len(),
            files,
        }]
    }
}

fn or_key_only(out: Vec<Reason>) -> Vec<Reason> {
    if out.is_empty() {
        vec![Reason::KeyOnly]
    } else {
        out
    }
}

/// Build arguments read by either node whose values differ.
fn arg_changes(old: &NodeRecord, new: &NodeRecord) -> Vec<Reason> {
    let get = |r: &NodeRecord, name: &str| {
        r.args
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut names: Vec<&str> = new.args.iter().map(|(k, _)| k.as_str()).collect();
    for (k, _) in &old.args {
        if !names.contains(&k.as_str()) {
            names.push(k);
        }
    }
    names
        .into_iter()
        .filter_map(|name| {
            let (o, n) = (get(old, name), get(new, name));
            (o != n).then(|| Reason::BuildArg {
                name: name.to_string(),
                old: o,
                new: n,
            })
        })
        .collect()
}

/// The members of the op's definition that differ.
fn definition_changes(old: &NodeRecord, new: &NodeRecord) -> Vec<Reason> {
    let def = |r: &NodeRecord| {
        r.op.as_ref()
            .and_then(|op| op.get("definition"))
            .and_then(|d| d.as_object())
            .cloned()
            .unwrap_or_default()
    };
    let (a, b) = (def(old), def(new));
    let mut fields: Vec<&String> = b.keys().collect();
    fields.extend(a.keys().filter(|k| !b.contains_key(*k)));
    fields
        .into_iter()
        .filter_map(|f| {
            let (o, n) = (a.get(f), b.get(f));
            (o != n).then(|| Reason::Definition {
                field: f.clone(),
                old: o.cloned().unwrap_or(serde_json::Value::Null),
                new: n.cloned().unwrap_or(serde_json::Value::Null),
            })
        })
        .collect()
}

/// The first 12 hex digits of a hash or digest (after any `sha256:`).
fn short(h: &str) -> String {
    let (prefix, hex) = h.split_once(':').unwrap_or(("", h));
    let cut: String = hex.chars().take(12).collect();
    if prefix.is_empty() {
        cut
    } else {
        [prefix, ":", &cut].concat()
    }
}

fn quoted(v: &Option<String>) -> String {
    match v {
        Some(v) => format!("{v:?}"),
        None => "(unset)".into(),
    }
}

/// A JSON value on one line, cut to 80 characters.
fn brief(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        let cut: String = s.chars().take(79).collect();
        cut + "…"
    } else {
        s
    }
}

fn state(s: &Option<EntryState>) -> String {
    match s {
        None => "absent".into(),
        Some(e) if e.kind == "file" => short(&e.hash),
        Some(e) if e.kind == "symlink" => format!("symlink to {}", e.link),
        Some(e) => e.kind.clone(),
    }
}

fn file_line(c: &FileChange) -> String {
    let mut line = format!("{}: {} -> {}", c.path, state(&c.old), state(&c.new));
    if let (Some(o), Some(n)) = (&c.old, &c.new) {
        if o.mode != n.mode {
            let _ = write!(line, " (mode {} -> {})", o.mode, n.mode);
        }
    }
    line
}

/// One reason as text lines (the first is the reason, later ones its details).
pub fn render(reason: &Reason) -> Vec<String> {
    match reason {
        Reason::FirstBuild => vec!["no earlier build of this target in this store".into()],
        Reason::NewStep => vec!["a new step: the earlier build had none like it".into()],
        Reason::Instruction { old, new } => {
            vec![format!("the instruction changed: `{old}` -> `{new}`")]
        }
        Reason::BuildArg { name, old, new } => vec![format!(
            "build arg {name} changed: {} -> {}",
            quoted(old),
            quoted(new)
        )],
        Reason::Definition { field, old, new } => {
            let hint = if field == "mtime" || field == "created" {
                " (SOURCE_DATE_EPOCH)"
            } else {
                ""
            };
            vec![format!(
                "its {field} changed{hint}: {} -> {}",
                brief(old),
                brief(new)
            )]
        }
        Reason::BaseImage {
            old_reference,
            new_reference,
            old_digest,
            new_digest,
        } => {
            let d = |d: &Option<String>| d.as_deref().map_or("(not in the store)".into(), short);
            if old_reference == new_reference {
                vec![format!(
                    "base image {new_reference} changed: {} -> {}",
                    d(old_digest),
                    d(new_digest)
                )]
            } else {
                vec![format!(
                    "base image changed: {old_reference} ({}) -> {new_reference} ({})",
                    d(old_digest),
                    d(new_digest)
                )]
            }
        }
        Reason::ContextFiles { files, more } => {
            let total = files.len() + more;
            let mut out = vec![format!(
                "context file{} changed ({total}):",
                if total == 1 { "" } else { "s" }
            )];
            out.extend(files.iter().map(|c| format!("  {}", file_line(c))));
            if *more > 0 {
                out.push(format!("  and {more} more"));
            }
            out
        }
        Reason::ContextUnknown => {
            vec!["context files changed (the earlier listing is no longer in the store)".into()]
        }
        Reason::ParentStep { id, stage, text } => {
            vec![format!("parent step #{id} [{stage}] {text} changed")]
        }
        Reason::Through {
            id,
            line,
            text,
            because,
        } => {
            let mut out = Vec::new();
            for r in because {
                let mut lines = render(r);
                if let Some(first) = lines.first_mut() {
                    if !matches!(r, Reason::Through { .. }) {
                        let _ = write!(first, " (through #{id} {text}, line {line})");
                    }
                }
                out.extend(lines);
            }
            out
        }
        Reason::SameKey => vec![
            "its key is unchanged, but its result was not in the cache (--no-cache, a pruned \
             cache, or an ADD of a URL without --checksum, which is always fetched again)"
                .into(),
        ],
        Reason::KeyOnly => vec![
            "its key changed, but none of its recorded inputs did (the earlier build was made \
             by another kiln version)"
                .into(),
        ],
    }
}

/// All reasons of a step as text lines.
pub fn render_all(reasons: &[Reason]) -> Vec<String> {
    reasons.iter().flat_map(render).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::record::{BaseRecord, RECORD_VERSION};

    fn node(kind: &str, stage: &str, text: &str, key: &str, inputs: &[usize]) -> NodeRecord {
        NodeRecord {
            key: key.into(),
            kind: kind.into(),
            stage: stage.into(),
            line: 1,
            text: text.into(),
            inputs: inputs.to_vec(),
            args: vec![],
            op: None,
            base: None,
            context: None,
            cached: None,
        }
    }

    fn record(nodes: Vec<NodeRecord>) -> BuildRecord {
        BuildRecord {
            v: RECORD_VERSION,
            target: "t".into(),
            built_at: 0,
            image: None,
            nodes,
        }
    }

    fn base(key: &str, digest: &str) -> NodeRecord {
        let mut n = node("base_image", "s", "FROM b", key, &[]);
        n.base = Some(BaseRecord {
            reference: "b:1".into(),
            digest: Some(digest.into()),
        });
        n
    }

    fn chunk(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (p, h) in entries {
            out.extend_from_slice(format!("{p}\0file\x00644\0\0{}\n", h.repeat(64)).as_bytes());
        }
        out
    }

    fn context(key: &str, chunks: &[&str]) -> NodeRecord {
        let mut n = node("context", "s", "COPY . /", key, &[]);
        n.context = Some(ListingRecord {
            entries: 0,
            chunks: chunks.iter().map(|c| c.to_string()).collect(),
        });
        n
    }

    fn no_chunks(_: &str) -> Option<Vec<u8>> {
        None
    }

    #[test]
    fn the_first_build_has_no_earlier_build() {
        let new = record(vec![
            base("b", "sha256:1"),
            node("run", "s", "RUN x", "k", &[0]),
        ]);
        let r = explain(None, &new, &no_chunks);
        assert_eq!(r[&1], vec![Reason::FirstBuild]);
        assert_eq!(r.len(), 1, "only steps are explained");
    }

    #[test]
    fn a_changed_instruction_and_its_child() {
        let old = record(vec![
            base("b", "sha256:1"),
            node("run", "s", "RUN a", "k1", &[0]),
            node("run", "s", "RUN c", "k2", &[1]),
        ]);
        let new = record(vec![
            base("b", "sha256:1"),
            node("run", "s", "RUN b", "n1", &[0]),
            node("run", "s", "RUN c", "n2", &[1]),
        ]);
        let r = explain(Some(&old), &new, &no_chunks);
        assert_eq!(
            r[&1],
            vec![Reason::Instruction {
                old: "RUN a".into(),
                new: "RUN b".into()
            }]
        );
        assert_eq!(
            r[&2],
            vec![Reason::ParentStep {
                id: 1,
                stage: "s".into(),
                text: "RUN b".into()
            }]
        );
    }

    #[test]
    fn an_inserted_step_does_not_shift_the_others() {
        let old = record(vec![
            base("b", "sha256:1"),
            node("run", "s", "RUN a", "k1", &[0]),
            node("run", "s", "RUN c", "k2", &[1]),
        ]);
        let new = record(vec![
            base("b", "sha256:1"),
            node("run", "s", "RUN a", "k1", &[0]),
            node("run", "s", "RUN new", "n2", &[1]),
            node("run", "s", "RUN c", "n3", &[2]),
        ]);
        let r = explain(Some(&old), &new, &no_chunks);
        assert_eq!(r[&1], vec![Reason::SameKey]);
        assert_eq!(r[&2], vec![Reason::NewStep]);
        assert!(matches!(&r[&3][..], [Reason::ParentStep { id: 2, .. }]));
    }

    #[test]
    fn a_build_arg_through_a_label() {
        let mut label_old = node("config", "s", "LABEL v=$V", "l1", &[0]);
        label_old.args = vec![("V".into(), "1".into())];
        let mut label_new = label_old.clone();
        label_new.key = "l2".into();
        label_new.args = vec![("V".into(), "2".into())];
        let old = record(vec![
            base("b", "sha256:1"),
            label_old,
            node("mkdir", "s", "WORKDIR /x", "w1", &[1]),
        ]);
        let new = record(vec![
            base("b", "sha256:1"),
            label_new,
            node("mkdir", "s", "WORKDIR /x", "w2", &[1]),
        ]);
        let r = explain(Some(&old), &new, &no_chunks);
        let want = Reason::BuildArg {
            name: "V".into(),
            old: Some("1".into()),
            new: Some("2".into()),
        };
        assert_eq!(
            r[&2],
            vec![Reason::Through {
                id: 1,
                line: 1,
                text: "LABEL v=$V".into(),
                because: vec![want]
            }]
        );
        let text = render_all(&r[&2]).join("\n");
        assert!(
            text.contains("build arg V changed: \"1\" -> \"2\""),
            "{text}"
        );
        assert!(text.contains("through #1 LABEL v=$V"), "{text}");
    }

    #[test]
    fn a_retagged_base() {
        let old = record(vec![
            base("b1", "sha256:aaaa"),
            node("copy", "s", "COPY a /", "c1", &[0]),
        ]);
        let new = record(vec![
            base("b2", "sha256:bbbb"),
            node("copy", "s", "COPY a /", "c2", &[0]),
        ]);
        let r = explain(Some(&old), &new, &no_chunks);
        assert_eq!(
            r[&1],
            vec![Reason::BaseImage {
                old_reference: "b:1".into(),
                new_reference: "b:1".into(),
                old_digest: Some("sha256:aaaa".into()),
                new_digest: Some("sha256:bbbb".into()),
            }]
        );
    }

    #[test]
    fn context_files_are_listed_from_the_chunks_that_differ() {
        let shared = chunk(&[("a", "1"), ("b", "1")]);
        let old_tail = chunk(&[("c", "1"), ("d", "1")]);
        let mut names = Vec::new();
        for i in 0..25 {
            names.push(format!("e{i:02}"));
        }
        let mut tail: Vec<(&str, &str)> = vec![("c", "2")];
        tail.extend(names.iter().map(|n| (n.as_str(), "3")));
        let new_tail = chunk(&tail);
        let store: HashMap<&str, Vec<u8>> = [("S", shared), ("O", old_tail), ("N", new_tail)]
            .into_iter()
            .collect();
        let get = |d: &str| store.get(d).cloned();
        let old = record(vec![
            base("b", "sha256:1"),
            context("x1", &["S", "O"]),
            node("copy", "s", "COPY . /", "c1", &[0, 1]),
        ]);
        let new = record(vec![
            base("b", "sha256:1"),
            context("x2", &["S", "N"]),
            node("copy", "s", "COPY . /", "c2", &[0, 1]),
        ]);
        let r = explain(Some(&old), &new, &get);
        let [Reason::ContextFiles { files, more }] = &r[&2][..] else {
            panic!("{:?}", r[&2]);
        };
        // c changed, d removed, e00..e24 added: 27 in all.
        assert_eq!(files.len(), MAX_FILES);
        assert_eq!(*more, 7);
        assert_eq!(files[0].path, "c");
        assert_eq!(files[0].old.as_ref().unwrap().hash, "1".repeat(64));
        assert_eq!(files[0].new.as_ref().unwrap().hash, "2".repeat(64));
        assert_eq!(files[1].path, "d");
        assert!(files[1].new.is_none());
        assert!(files[2].old.is_none());
        let text = render_all(&r[&2]);
        assert_eq!(text[0], "context files changed (27):");
        assert_eq!(text[1], "  c: 111111111111 -> 222222222222");
        assert_eq!(text.last().unwrap(), "  and 7 more");
        // Without the earlier chunks the reason says so.
        assert_eq!(
            explain(Some(&old), &new, &no_chunks)[&2],
            vec![Reason::ContextUnknown]
        );
    }

    #[test]
    fn the_same_text_with_another_definition_names_the_field() {
        let mut a = node("copy", "s", "COPY a /", "c1", &[0]);
        a.op = Some(serde_json::json!({"kind": "copy", "definition": {"dest": "/", "mtime": 0}}));
        let mut b = a.clone();
        b.key = "c2".into();
        b.op = Some(serde_json::json!({"kind": "copy", "definition": {"dest": "/", "mtime": 5}}));
        let old = record(vec![base("b", "sha256:1"), a]);
        let new = record(vec![base("b", "sha256:1"), b]);
        let r = explain(Some(&old), &new, &no_chunks);
        assert_eq!(
            r[&1],
            vec![Reason::Definition {
                field: "mtime".into(),
                old: 0.into(),
                new: 5.into()
            }]
        );
        assert!(render_all(&r[&1])[0].contains("SOURCE_DATE_EPOCH"));
    }
}
