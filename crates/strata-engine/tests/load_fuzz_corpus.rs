//! The seed corpus of the `load_archive` fuzz target (`fuzz/`, nightly only), replayed on
//! stable through the same call: `strata_engine::load::load` of a byte stream. Every seed must come
//! back as a value (never a panic); the well-formed archives load, and everything cut short,
//! malformed or hostile is refused with a typed error and leaves no image.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use strata_engine::load::{LoadOptions, LoadSource, load};
use strata_engine::store::Store;
use strata_types::{ErrorKind, Matcher};

/// The seeds that are well-formed archives of one image each.
const VALID: &[&str] = &[
    "oci-valid.tar",
    "oci-valid.tar.gz",
    "oci-valid.tar.zst",
    "docker-legacy.tar",
    "docker-and-oci.tar",
];

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/load_archive")
}

#[test]
fn every_seed_loads_or_is_refused_without_a_panic() {
    if !strata_testutil::require_root("unpacking a layer sets its files' owners") {
        return;
    }
    let mut seeds: Vec<PathBuf> = std::fs::read_dir(corpus())
        .expect("fuzz/corpus/load_archive")
        .map(|e| e.unwrap().path())
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 20, "the corpus is there: {seeds:?}");
    for name in VALID {
        assert!(seeds.iter().any(|s| s.ends_with(name)), "{name} is a seed");
    }
    for seed in &seeds {
        let name = seed.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(seed).unwrap();
        // A store per seed: blobs one seed loaded must not make another's missing ones appear.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("root"), "native").unwrap();
        let sn = store.snapshotter().unwrap();
        let opts = LoadOptions {
            base_name: None,
            platform: Matcher::host(),
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            load(&store, &*sn, LoadSource::Stream(&mut &data[..]), &opts)
        }));
        let result = result.unwrap_or_else(|_| panic!("{name}: load panicked"));
        let images = store.db().read(|tx| tx.images()).unwrap();
        if VALID.contains(&name.as_str()) {
            let loaded = result.unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert_eq!(loaded.len(), 1, "{name}: {loaded:?}");
            assert!(loaded[0].top.is_some(), "{name}: unpacked");
            assert_eq!(images.len(), 1, "{name}: named");
        } else {
            let e = match result {
                Ok(loaded) => panic!("{name}: loaded {loaded:?}"),
                Err(e) => e,
            };
            assert_ne!(e.kind(), ErrorKind::Internal, "{name}: {e:#}");
            assert!(images.is_empty(), "{name}: a refused load names nothing");
        }
    }
}
