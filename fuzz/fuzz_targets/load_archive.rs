//! `strata load` of an arbitrary byte stream: the archive reader (plain, gzip or zstd tar;
//! OCI layout or Docker legacy archive), the JSON it parses, the blobs it ingests and the
//! layers it unpacks. Any outcome but a panic is fine: the input is hostile.
//!
//! Seeds: `fuzz/corpus/load_archive/` (made by `fuzz/make_corpus.py`), replayed on stable by
//! `crates/strata-engine/tests/load_fuzz_corpus.rs`. Run with `cargo +nightly fuzz run load_archive`
//! from `fuzz/`, as root (unpacking sets owners).

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use strata_engine::load::{LoadOptions, LoadSource, load};
use strata_engine::store::Store;
use strata_types::Matcher;

/// One store for the whole run (a store per input would measure `mkdir`, not the reader).
fn store() -> &'static (tempfile::TempDir, Store) {
    static STORE: OnceLock<(tempfile::TempDir, Store)> = OnceLock::new();
    STORE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = Store::open(&dir.path().join("root"), "native").expect("a store");
        (dir, store)
    })
}

fuzz_target!(|data: &[u8]| {
    let (_, store) = store();
    let sn = store.snapshotter().expect("the native snapshotter");
    let opts = LoadOptions {
        base_name: None,
        platform: Matcher::host(),
    };
    let _ = load(store, &*sn, LoadSource::Stream(&mut &data[..]), &opts);
});
