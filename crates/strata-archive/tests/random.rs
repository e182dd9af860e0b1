//! Seeded random hostile layers (the stable-Rust stand-in for the fuzz target, which uses the
//! same generator): thousands of layers with random names, types, link targets (`..`, `/`,
//! the real outside path, symlink chains), whiteouts and garbage headers, applied in both
//! modes. Nothing outside the directory being written may change, and apply must not panic.
//!
//! `STRATA_RANDOM_CASES` overrides the number of cases (default 3000).

mod layergen;

#[test]
fn random_layers_never_escape_the_root() {
    let cases: u64 = std::env::var("STRATA_RANDOM_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let overlay = strata_testutil::require_root("overlay whiteouts are device nodes");
    for seed in 0..cases {
        let data = layergen::random_bytes(seed, 600);
        let r = std::panic::catch_unwind(|| layergen::check(&data, overlay));
        assert!(r.is_ok(), "seed {seed} failed");
    }
}
