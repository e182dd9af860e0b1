//! Stores with hand-made images, for the unit tests of the parts that read them (gc, df).
#![allow(clippy::unwrap_used)]

use std::io::Write;

use strata_content::WriterOptions;
use strata_metadata::Labels;
use strata_snapshot::Snapshotter;
use strata_types::{Descriptor, Digest, chain_id};

use crate::store::Store;

pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// An empty store on the native snapshotter.
pub fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), "native").unwrap();
    (dir, store)
}

/// Stores `data` (if not there yet) with no labels, as stores written before the GC labels hold their blobs.
pub fn put(store: &Store, media_type: &str, data: &[u8]) -> Descriptor {
    let digest = Digest::sha256_of(data);
    let desc = Descriptor::new(media_type, digest.clone(), data.len() as u64);
    if store.content().info(&digest).is_ok() {
        return desc;
    }
    let opts = WriterOptions {
        expected: Some(digest.clone()),
        total: Some(data.len() as u64),
        wait: true,
    };
    let mut w = store
        .content()
        .writer(&format!("test-{digest}"), opts, None)
        .unwrap();
    w.write_all(data).unwrap();
    store
        .content()
        .commit(w, None, Some(&digest), &Labels::new(), None)
        .unwrap();
    desc
}

pub fn json(v: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

pub fn desc_json(d: &Descriptor) -> serde_json::Value {
    serde_json::json!({"mediaType": d.media_type, "digest": d.digest.to_string(), "size": d.size})
}

/// A committed snapshot `name` on `parent`, holding one file whose content is `name`.
pub fn snapshot(sn: &dyn Snapshotter, name: &str, parent: Option<&str>, labels: &Labels) {
    let key = format!("make-{name}");
    sn.prepare(&key, parent, &Labels::new()).unwrap();
    std::fs::write(sn.apply_target(&key).unwrap().dir.join("f"), name).unwrap();
    sn.commit(name, &key, labels).unwrap();
}

/// The manifest of an image whose layers are `layers` (their blobs are the bytes, their
/// diffIDs the digests of the bytes too), unpacked into snapshots when `unpack`.
pub fn image(store: &Store, sn: &dyn Snapshotter, layers: &[&[u8]], unpack: bool) -> Descriptor {
    let diff_ids: Vec<Digest> = layers.iter().map(|l| Digest::sha256_of(l)).collect();
    let blobs: Vec<Descriptor> = layers.iter().map(|l| put(store, LAYER, l)).collect();
    let config = put(
        store,
        CONFIG,
        &json(serde_json::json!({
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(Digest::to_string).collect::<Vec<_>>()},
        })),
    );
    if unpack {
        let mut parent: Option<String> = None;
        for n in 1..=diff_ids.len() {
            let chain = chain_id(&diff_ids[..n]).unwrap().to_string();
            if sn.stat(&chain).is_err() {
                snapshot(sn, &chain, parent.as_deref(), &Labels::new());
            }
            parent = Some(chain);
        }
    }
    put(
        store,
        MANIFEST,
        &json(serde_json::json!({
            "schemaVersion": 2, "config": desc_json(&config),
            "layers": blobs.iter().map(desc_json).collect::<Vec<_>>(),
        })),
    )
}
