//! Throughput of the layer writer on a large build context, and of sha256 on this machine.
//! A benchmark, not a test: `cargo bench -p kiln-runtime --bench layer_write`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kiln_runtime::layer::{host_entry, write_layer};
use std::io::Write;
use std::time::Instant;

fn main() {
    layer_write();
    sha256_speed();
}

fn layer_write() {
    let tmp = tempfile::tempdir().unwrap();
    let mut chunk = vec![0u8; 1 << 20];
    for (i, b) in chunk.iter_mut().enumerate() {
        *b = (i * 31 % 251) as u8;
    }
    let mut sizes = vec![256usize << 20, 100 << 20, 50 << 20];
    sizes.extend(std::iter::repeat_n(1 << 20, 9));
    let mut entries = Vec::new();
    let mut total = 0u64;
    for (i, size) in sizes.iter().enumerate() {
        let path = tmp.path().join(format!("f{i}"));
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut left = *size;
        while left > 0 {
            let n = left.min(chunk.len());
            f.write_all(&chunk[..n]).unwrap();
            left -= n;
        }
        f.flush().unwrap();
        drop(f);
        total += *size as u64;
        entries.push(
            host_entry(&path, format!("ctx/f{i}"), 0, 0, 0)
                .unwrap()
                .unwrap(),
        );
    }
    // Let the freshly written context reach the disk first, as a real context has.
    nix::unistd::sync();
    let start = Instant::now();
    let to_sink = write_layer(entries.clone(), std::io::sink()).unwrap();
    let sink_secs = start.elapsed().as_secs_f64();
    let out_path = tmp.path().join("layer.tar");
    let start = Instant::now();
    let digest = write_layer(entries, std::fs::File::create(&out_path).unwrap()).unwrap();
    let secs = start.elapsed().as_secs_f64();
    let mib = total as f64 / (1 << 20) as f64;
    println!(
        "wrote {mib:.0} MiB in {secs:.3} s ({:.0} MiB/s); to a sink in {sink_secs:.3} s",
        mib / secs
    );
    assert_eq!(to_sink, digest);
    assert!(digest.size > total);
}

fn sha256_speed() {
    use sha2::Digest;
    let data = vec![7u8; 256 << 20];
    let start = Instant::now();
    let d = sha2::Sha256::digest(&data);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sha256 of 256 MiB in {secs:.3} s ({:.0} MiB/s) {}",
        256.0 / secs,
        hex::encode(d)
    );
}
