#![allow(clippy::unwrap_used)]

use std::time::SystemTime;

use strata_metadata::{ContainerRecord, Labels};
use strata_types::chain_id;

use super::*;
use crate::test_store::{INDEX, desc_json, image, json, put, snapshot, store};

#[test]
fn shared_layers_count_once_and_what_no_image_reaches_is_apart() {
    let (_d, store) = store();
    let sn = store.snapshotter().unwrap();
    let a = image(&store, &*sn, &[b"base layer", b"a top"], true);
    let b_manifest = image(&store, &*sn, &[b"base layer", b"b top, larger"], true);
    let b = put(
        &store,
        INDEX,
        &json(serde_json::json!({"schemaVersion": 2, "manifests": [desc_json(&b_manifest)]})),
    );
    // A blob and a layer no image reaches, as an interrupted pull leaves them.
    put(&store, crate::test_store::LAYER, b"stray");
    let orphan = Digest::sha256_of(b"orphan").to_string();
    snapshot(&*sn, &orphan, None, &Labels::new());
    store
        .db()
        .write(|tx| {
            tx.put_image("example.com/a:1", &a, &Labels::new())?;
            tx.put_image("example.com/b:1", &b, &Labels::new())?;
            tx.put_image("example.com/b:2", &b, &Labels::new())?;
            let now = SystemTime::now();
            tx.insert_container(&ContainerRecord {
                id: "c".repeat(64),
                name: "user".into(),
                image: "example.com/a:1".into(),
                snapshotter: "native".into(),
                snapshot_key: None,
                runtime: "runc".into(),
                created: now,
                updated: now,
                labels: Labels::from([(
                    strata_types::labels::IMAGE_ID.to_owned(),
                    a.digest.to_string(),
                )]),
            })?;
            Ok(())
        })
        .unwrap();

    let usage = images_usage(&store, Some(&*sn)).unwrap();
    let blob = |d: &[u8]| Digest::sha256_of(d);
    let size_of = |d: &Digest| store.content().info(d).unwrap().size;
    let layer = |diff_ids: &[Digest]| {
        sn.usage(&chain_id(diff_ids).unwrap().to_string())
            .unwrap()
            .size
    };
    let (base, a_top, b_top) = (blob(b"base layer"), blob(b"a top"), blob(b"b top, larger"));
    let base_layer = layer(std::slice::from_ref(&base));
    let a_layer = layer(&[base.clone(), a_top.clone()]);
    let b_layer = layer(&[base.clone(), b_top.clone()]);
    let find = |d: &Digest| {
        usage
            .images
            .iter()
            .find(|i| i.summary.target.digest == *d)
            .unwrap()
    };
    let (ia, ib) = (find(&a.digest), find(&b.digest));
    assert_eq!(usage.images.len(), 2);
    assert_eq!(ib.records.len(), 2, "one image, two names");
    assert_eq!((ia.containers, ib.containers), (1, 0));
    assert_eq!(usage.active(), 1);

    let shared = size_of(&base) + base_layer;
    assert_eq!(ia.shared_size, shared);
    assert_eq!(ib.shared_size, shared);
    let a_blobs: u64 = ia.summary.content_size();
    assert_eq!(ia.size, a_blobs + base_layer + a_layer);
    assert_eq!(ia.unique_size(), a_blobs - size_of(&base) + a_layer);
    // The index blob is the image's too.
    assert_eq!(
        ib.size,
        b.size + ib.summary.content_size() + base_layer + b_layer
    );

    // Shared bytes once in the totals.
    assert_eq!(
        usage.total.content,
        ia.summary.content_size() + ib.summary.content_size() + b.size - size_of(&base)
    );
    assert_eq!(usage.total.unpacked, base_layer + a_layer + b_layer);
    assert_eq!(
        usage.reclaimable,
        ib.unique_size(),
        "A is in use, B alone frees its own"
    );
    assert_eq!(
        usage.unreferenced,
        Split {
            content: 5,
            unpacked: sn.usage(&orphan).unwrap().size,
        }
    );
    assert!(usage.unreferenced.unpacked > 0);
}
