//! Prints the SHA-256 throughput of the hasher strata uses, in MB/s, over MIB mebibytes
//! hashed in memory (argument, default 1024). Used by bench/run.sh.
use std::time::Instant;

use sha2::Digest as _;
use strata_types::Sha256;

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1024);
    let chunk = vec![0x5au8; 1 << 20];
    let mut h = Sha256::new();
    h.update(&chunk); // warm up
    let start = Instant::now();
    for _ in 0..mib {
        h.update(&chunk);
    }
    let out = h.finalize();
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(out);
    println!("{:.0}", (mib as f64) * 1.048576 / secs);
}
