//! The `kiln parse --json` shape: one object per instruction mirroring BuildKit's parse tree.
