//! Cache keys, spec v1 (docs/cache-keys.md is the normative text; keep the two in step).
//!
//! key(node) = blake3( canonical_json({"v": 1, "op": <op JSON>, "inputs": [<input keys>],
//!                                     "content": <context content digest or null>}) )
//! where canonical JSON has object keys sorted bytewise, no insignificant whitespace, and
//! serde_json's string escaping. Node ids, line numbers and host paths never enter a key.

use std::fmt;

use serde::{Serialize, Serializer};

/// A 32-byte blake3 cache key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Key(pub [u8; 32]);

pub const SPEC_VERSION: u64 = 1;

impl Key {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
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

/// The key of a node from its op (as JSON), its inputs' keys, and for context selections the
/// digest of the selected content.
pub fn node_key(op: &serde_json::Value, inputs: &[Key], content: Option<&Key>) -> Key {
    let doc = serde_json::json!({
        "v": SPEC_VERSION,
        "op": op,
        "inputs": inputs.iter().map(Key::to_hex).collect::<Vec<_>>(),
        "content": content.map(Key::to_hex),
    });
    // serde_json's Value keeps objects in a BTreeMap (no preserve_order feature), so this
    // serialization is canonical: sorted keys, compact.
    let bytes = serde_json::to_vec(&doc).unwrap_or_default();
    Key(*blake3::hash(&bytes).as_bytes())
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
