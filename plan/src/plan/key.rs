//! Cache keys, spec v1 (docs/cache-keys.md is the normative text; keep the two in step).
//!
//! key(node) = blake3( {"content":<digest or null>,"inputs":[<input keys>],"op":<op>,"v":1} )
//! with the op as compact JSON, members in the order docs/cache-keys.md lists them, maps
//! sorted, serde_json's string escaping. Node ids, line numbers and host paths never enter a
//! key.

use std::fmt;
use std::io::Write;

use serde::{Serialize, Serializer};

/// A 32-byte blake3 cache key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Key(pub [u8; 32]);

pub const SPEC_VERSION: u64 = 1;

impl Key {
    pub fn to_hex(&self) -> String {
        blake3::Hash::from(self.0).to_hex().to_string()
    }
    /// The first 12 hex digits, for humans.
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_string()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.short())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Key {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

/// The key of a node from its op, its inputs' keys, and for context selections the digest
/// of the selected content (a one-off [`KeyEncoder`]; reuse one to key many nodes).
pub fn node_key(op: &impl Serialize, inputs: &[Key], content: Option<&Key>) -> Key {
    KeyEncoder::default().key(op, inputs, content)
}

/// Computes node keys, reusing one buffer for the documents they hash.
#[derive(Debug, Default)]
pub struct KeyEncoder {
    doc: Vec<u8>,
}

impl KeyEncoder {
    /// The key of a node: blake3 over
    /// `{"content":…,"inputs":[…],"op":<op as kiln serializes it>,"v":1}`, written whole
    /// into the reused buffer (no JSON tree is built) and hashed in one call.
    pub fn key(&mut self, op: &impl Serialize, inputs: &[Key], content: Option<&Key>) -> Key {
        let doc = &mut self.doc;
        doc.clear();
        doc.extend_from_slice(b"{\"content\":");
        match content {
            Some(k) => push_quoted_hex(doc, k),
            None => doc.extend_from_slice(b"null"),
        }
        doc.extend_from_slice(b",\"inputs\":[");
        for (i, k) in inputs.iter().enumerate() {
            if i > 0 {
                doc.push(b',');
            }
            push_quoted_hex(doc, k);
        }
        doc.extend_from_slice(b"],\"op\":");
        // Writing into a Vec cannot fail, and every op serializes.
        let _ = serde_json::to_writer(&mut *doc, op);
        let _ = write!(doc, ",\"v\":{SPEC_VERSION}}}");
        Key(*blake3::hash(doc).as_bytes())
    }
}

/// `"<64 hex>"` of a key.
fn push_quoted_hex(doc: &mut Vec<u8>, k: &Key) {
    doc.push(b'"');
    doc.extend_from_slice(blake3::Hash::from(k.0).to_hex().as_bytes());
    doc.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_canonical_over_object_key_order() {
        let a = serde_json::json!({"b": 1, "a": [1, 2]});
        let b: serde_json::Value = serde_json::from_str(r#"{"a":[1,2],"b":1}"#).unwrap();
        assert_eq!(node_key(&a, &[], None), node_key(&b, &[], None));
        assert_ne!(
            node_key(&a, &[Key::default()], None),
            node_key(&a, &[], None)
        );
    }

    #[test]
    fn a_reused_encoder_keys_like_a_fresh_one() {
        let big = serde_json::json!({"kind": "run", "definition": {"argv": ["x".repeat(3000)]}});
        let small = serde_json::json!({"kind": "scratch"});
        let mut enc = KeyEncoder::default();
        let inputs = [Key([7; 32])];
        assert_eq!(enc.key(&big, &inputs, None), node_key(&big, &inputs, None));
        assert_eq!(enc.key(&small, &[], None), node_key(&small, &[], None));
        assert_eq!(
            enc.key(&small, &[], Some(&Key([1; 32]))),
            node_key(&small, &[], Some(&Key([1; 32])))
        );
    }

    #[test]
    fn golden_v1_key() {
        // Pins the v1 encoding: a change here is a cache-key spec change (bump SPEC_VERSION).
        let k = node_key(&serde_json::json!({"kind": "scratch"}), &[], None);
        let doc = r#"{"content":null,"inputs":[],"op":{"kind":"scratch"},"v":1}"#;
        assert_eq!(
            k.to_hex(),
            blake3::hash(doc.as_bytes()).to_hex().to_string()
        );
    }
}
