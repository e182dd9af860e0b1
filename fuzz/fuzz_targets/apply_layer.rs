//! Fuzzes `apply_layer` two ways, chosen by the first input byte:
//!
//! - structured: the rest of the input drives the hostile-layer generator shared with
//!   `crates/strata-archive/tests/random.rs` (one or two layers, both whiteout modes, small
//!   limits), and the check asserts that nothing outside the directory being written changed;
//! - raw: the rest of the input is the layer blob itself (plain, gzip or zstd by its magic),
//!   applied in both modes with small limits; it must not panic or escape either.
//!
//! Run with `cargo +nightly fuzz run apply_layer` from this directory (as root, so overlay
//! mode's device nodes and trusted xattrs are exercised).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/strata-archive/tests/layergen/mod.rs"]
mod layergen;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    if first & 1 == 0 {
        layergen::check(rest, rustix::process::geteuid().is_root());
    } else {
        raw(rest);
    }
});

fn raw(blob: &[u8]) {
    use strata_archive::{ApplyOptions, Limits, WhiteoutMode, apply_layer};
    let Ok(tmp) = tempfile::tempdir() else { return };
    let t = tmp.path();
    if std::fs::create_dir(t.join("dest")).is_err()
        || std::fs::write(t.join("victim"), b"v").is_err()
    {
        return;
    }
    for mode in [WhiteoutMode::Delete, WhiteoutMode::Overlay] {
        let mut o = ApplyOptions::new("fuzz", mode);
        o.limits = Limits {
            max_uncompressed_bytes: 4 << 20,
            max_entries: 256,
            max_entry_size: 1 << 20,
        };
        let before = layergen::snapshot(t, &[t.join("dest")]);
        let _ = apply_layer(blob, &t.join("dest"), &o);
        assert_eq!(before, layergen::snapshot(t, &[t.join("dest")]));
    }
}
