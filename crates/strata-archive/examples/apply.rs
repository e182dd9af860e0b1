//! Applies a layer blob to a directory and prints what it found and how long it took.
//!
//! ```text
//! cargo run --release -p strata-archive --example apply -- BLOB DEST [delete|overlay]
//! ```
//!
//! Used by `bench/apply-bench.sh` to compare with `tar -xzf` and `pigz -dc | tar -x`.

use std::fs::File;
use std::path::Path;
use std::time::Instant;

use strata_archive::{ApplyOptions, WhiteoutMode, apply_layer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(blob), Some(dest)) = (args.get(1), args.get(2)) else {
        return Err("usage: apply BLOB DEST [delete|overlay]".into());
    };
    let mode = match args.get(3).map(String::as_str) {
        Some("overlay") => WhiteoutMode::Overlay,
        _ => WhiteoutMode::Delete,
    };
    let opts = ApplyOptions::new(blob.clone(), mode);
    let start = Instant::now();
    let stats = apply_layer(File::open(blob)?, Path::new(dest), &opts)?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} entries, {} -> {} bytes ({}), diffID {} in {secs:.3}s ({:.0} MB/s uncompressed)",
        stats.entries,
        stats.compressed_bytes,
        stats.uncompressed_bytes,
        stats.compression,
        stats.diff_id,
        stats.uncompressed_bytes as f64 / secs / 1e6
    );
    Ok(())
}
