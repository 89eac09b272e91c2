//! Throughput of the front end over the conformance corpus: parse + lower (all stages, no
//! context), in MB/s of Dockerfile text. A benchmark, not a test:
//!     KILN_CONFORMANCE_CORPUS=../shared/corpus cargo bench -p kiln-compiler --bench corpus
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use kiln_compiler::dockerfile::lower::lower_all_stages;
use kiln_compiler::plan::BuildOptions;

fn main() {
    let Ok(root) = std::env::var("KILN_CONFORMANCE_CORPUS") else {
        eprintln!("set KILN_CONFORMANCE_CORPUS to the corpus directory");
        return;
    };
    let mut files = Vec::new();
    for dir in ["real", "buildkit-testfiles", "buildkit-testfiles-negative"] {
        for entry in walkdir::WalkDir::new(std::path::Path::new(&root).join(dir)) {
            let Ok(entry) = entry else { continue };
            let p = entry.path();
            let is_df = dir == "real" || p.file_name().is_some_and(|n| n == "Dockerfile");
            if entry.file_type().is_file() && is_df {
                if let Ok(bytes) = std::fs::read(p) {
                    files.push(String::from_utf8_lossy(&bytes).into_owned());
                }
            }
        }
    }
    let bytes: usize = files.iter().map(String::len).sum();
    let opts = BuildOptions::default();
    let rounds: usize = std::env::var("KILN_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let start = Instant::now();
    for _ in 0..rounds {
        for text in &files {
            let _ = std::hint::black_box(kiln_compiler::syntax::parse(text));
        }
    }
    let parse_secs = start.elapsed().as_secs_f64();
    let (mut parsed, mut lowered) = (0usize, 0usize);
    let start = Instant::now();
    for _ in 0..rounds {
        for text in &files {
            if let Ok(tree) = kiln_compiler::syntax::parse(text) {
                parsed += 1;
                if lower_all_stages(&tree, text, &opts).is_ok() {
                    lowered += 1;
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let mb = (bytes * rounds) as f64 / 1e6;
    println!(
        "{} files, {:.2} MB of text x {rounds}: {:.1} MB/s parse alone, {:.1} MB/s parse+lower ({} parsed, {} lowered per round)",
        files.len(),
        bytes as f64 / 1e6,
        mb / parse_secs,
        mb / secs,
        parsed / rounds,
        lowered / rounds
    );
}
