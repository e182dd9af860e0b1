#![allow(clippy::unwrap_used)]

use super::*;

use strata_types::chain_id;
use strata_types::labels;

use crate::test_store::{CONFIG, INDEX, LAYER, MANIFEST, desc_json, json, put, snapshot, store};
use std::io::Write;

use strata_content::WriterOptions;

fn keys(store: &Store) -> Vec<String> {
    let mut k: Vec<String> = store
        .db()
        .read(|tx| tx.snapshots("native"))
        .unwrap()
        .into_iter()
        .map(|s| s.key)
        .collect();
    k.sort();
    k
}

#[test]
fn unlabelled_images_are_parsed_and_what_nothing_reaches_goes() {
    let (_d, store) = store();
    let sn = store.snapshotter().unwrap();
    let diff_ids = [Digest::sha256_of(b"l1"), Digest::sha256_of(b"l2")];
    let chains: Vec<Digest> = (1..=2).map(|i| chain_id(&diff_ids[..i]).unwrap()).collect();
    let layer = put(&store, LAYER, b"layer bytes");
    let config = put(
        &store,
        CONFIG,
        &json(
            serde_json::json!({"rootfs": {"type": "layers", "diff_ids": [diff_ids[0].to_string(), diff_ids[1].to_string()]}}),
        ),
    );
    let manifest = put(
        &store,
        MANIFEST,
        &json(
            serde_json::json!({"schemaVersion": 2, "config": desc_json(&config), "layers": [desc_json(&layer)]}),
        ),
    );
    let index = put(
        &store,
        INDEX,
        &json(serde_json::json!({"schemaVersion": 2, "manifests": [desc_json(&manifest)]})),
    );
    let stray = put(&store, LAYER, b"nobody's");
    snapshot(&*sn, &chains[0].to_string(), None, &Labels::new());
    snapshot(
        &*sn,
        &chains[1].to_string(),
        Some(&chains[0].to_string()),
        &Labels::new(),
    );
    snapshot(&*sn, "orphan-base", None, &Labels::new());
    snapshot(&*sn, "orphan-top", Some("orphan-base"), &Labels::new());
    // Roots by label, and an edge from a labelled blob.
    let pinned = put(&store, LAYER, b"pinned");
    let root = Labels::from([
        (labels::GC_ROOT.to_owned(), "1".to_owned()),
        (
            SnapshotEdge::new("native").key().unwrap(),
            "kept".to_owned(),
        ),
    ]);
    store
        .content()
        .update_labels(&pinned.digest, &root)
        .unwrap();
    snapshot(&*sn, "kept", None, &Labels::new());
    store
        .db()
        .write(|tx| tx.put_image("example.com/x:1", &index, &Labels::new()))
        .unwrap();

    let collected = collect(&store, &GcOptions::default()).unwrap();
    let removed: Vec<&Digest> = collected.blobs.iter().map(|b| &b.digest).collect();
    assert_eq!(removed, [&stray.digest]);
    assert!(!store.content().local().exists(&stray.digest));
    let mut gone: Vec<&str> = collected.snapshots.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(gone, ["orphan-top", "orphan-base"], "children first");
    gone.sort();
    let mut expected = vec![
        chains[0].to_string(),
        chains[1].to_string(),
        "kept".to_owned(),
    ];
    expected.sort();
    assert_eq!(keys(&store), expected);
    assert_eq!(
        collected.reclaimed(),
        8 + collected.snapshots.iter().map(|s| s.size).sum::<u64>()
    );
    assert!(collected.snapshots.iter().all(|s| s.size > 0));
    // The removed snapshots' directories are gone too.
    assert_eq!(
        std::fs::read_dir(store.root().join("snapshots/native"))
            .unwrap()
            .count(),
        3
    );

    // Without its name, the whole image goes; a second run finds nothing.
    store
        .db()
        .write(|tx| tx.delete_image("example.com/x:1"))
        .unwrap();
    let collected = collect(&store, &GcOptions::default()).unwrap();
    assert_eq!(collected.blobs.len(), 4);
    assert_eq!(keys(&store), ["kept"]);
    assert_eq!(
        collect(&store, &GcOptions::default()).unwrap(),
        Collected::default()
    );
}

#[test]
fn leases_protect_until_they_expire_and_idle_ingests_go_after_the_grace() {
    let (_d, store) = store();
    let sn = store.snapshotter().unwrap();
    let blob = put(&store, LAYER, b"leased blob");
    snapshot(&*sn, "leased-snap", None, &Labels::new());
    let soon = SystemTime::now() + Duration::from_secs(3600);
    store
        .db()
        .write(|tx| {
            tx.create_lease("live", Some(soon), &Labels::new())?;
            tx.create_lease(
                "old",
                Some(SystemTime::now() - Duration::from_secs(1)),
                &Labels::new(),
            )?;
            for lease in ["live", "old"] {
                tx.add_lease_resource(lease, &LeaseResource::Content(blob.digest.clone()))?;
                tx.add_lease_resource(
                    lease,
                    &LeaseResource::Snapshot {
                        snapshotter: "native".into(),
                        key: "leased-snap".into(),
                    },
                )?;
            }
            Ok(())
        })
        .unwrap();
    // Three ingests: one held by the live lease, one by the expired one, one by none.
    for (r, lease) in [
        ("held", Some("live")),
        ("expired", Some("old")),
        ("loose", None),
    ] {
        let mut w = store
            .content()
            .writer(r, WriterOptions::default(), lease)
            .unwrap();
        w.write_all(b"partial").unwrap();
    }
    let collected = collect(&store, &GcOptions::default()).unwrap();
    assert_eq!(collected.leases, ["old"]);
    assert!(collected.blobs.is_empty() && collected.snapshots.is_empty());
    let refs: Vec<&str> = collected.ingests.iter().map(|i| i.r#ref.as_str()).collect();
    assert_eq!(refs, ["expired"]);
    assert_eq!(collected.reclaimed(), 7);

    // A grace of zero takes the loose ingest; the held one stays while its lease lives.
    let opts = GcOptions {
        ingest_grace: Duration::ZERO,
        ..GcOptions::default()
    };
    let refs: Vec<String> = collect(&store, &opts)
        .unwrap()
        .ingests
        .into_iter()
        .map(|i| i.r#ref)
        .collect();
    assert_eq!(refs, ["loose"]);
    store.db().write(|tx| tx.delete_lease("live")).unwrap();
    let collected = collect(&store, &opts).unwrap();
    assert_eq!(collected.ingests.len(), 1);
    assert_eq!(collected.blobs.len(), 1);
    assert_eq!(collected.snapshots.len(), 1);
    assert!(store.content().ingests().unwrap().is_empty());
}

#[test]
fn a_dead_process_lease_pins_nothing_but_its_resumable_ingest() {
    let (_d, store) = store();
    let sn = store.snapshotter().unwrap();
    let blob = put(&store, LAYER, b"a dead pull's blob");
    snapshot(&*sn, "dead-snap", None, &Labels::new());
    snapshot(&*sn, "live-snap", None, &Labels::new());
    // The same pid with another start time: a process that is gone (its pid reused).
    let mut dead = owner_labels();
    dead.insert(labels::OWNER_START.into(), "1".into());
    let soon = SystemTime::now() + Duration::from_secs(3600);
    store
        .db()
        .write(|tx| {
            tx.create_lease("pull/dead", Some(soon), &dead)?;
            tx.create_lease("pull/live", Some(soon), &owner_labels())?;
            tx.add_lease_resource("pull/dead", &LeaseResource::Content(blob.digest.clone()))?;
            for (lease, key) in [("pull/dead", "dead-snap"), ("pull/live", "live-snap")] {
                let snap = LeaseResource::Snapshot {
                    snapshotter: "native".into(),
                    key: key.into(),
                };
                tx.add_lease_resource(lease, &snap)?;
            }
            Ok(())
        })
        .unwrap();
    let mut w = store
        .content()
        .writer("pull-partial", WriterOptions::default(), Some("pull/dead"))
        .unwrap();
    w.write_all(b"partial").unwrap();
    drop(w);

    // Not a day later: now. The partial download stays for the next pull, and its lease with it.
    let left: Vec<LeaseResource> = leftovers(&store)
        .unwrap()
        .into_iter()
        .map(|(lease, r)| {
            assert_eq!(lease.id, "pull/dead");
            r
        })
        .collect();
    assert_eq!(left.len(), 3, "{left:?}");
    let collected = collect(&store, &GcOptions::default()).unwrap();
    assert_eq!(collected.blobs.len(), 1);
    let removed: Vec<&str> = collected.snapshots.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(removed, ["dead-snap"]);
    assert!(collected.ingests.is_empty() && collected.leases.is_empty());
    assert_eq!(keys(&store), ["live-snap"]);

    // An explicit cleanup takes the partial download and ends the lease.
    let collected = collect(&store, &GcOptions::free_everything()).unwrap();
    assert_eq!(collected.ingests.len(), 1);
    assert_eq!(collected.leases, ["pull/dead"]);
    assert_eq!(keys(&store), ["live-snap"]);
    assert!(leftovers(&store).unwrap().is_empty());
}

/// An unlabelled image: index → manifest → config (diff_ids) and a layer.
fn unlabelled_image(store: &Store) -> [strata_types::Descriptor; 4] {
    let layer = put(store, LAYER, b"old layer");
    let config = put(
        store,
        CONFIG,
        &json(serde_json::json!({"rootfs": {"type": "layers", "diff_ids": []}})),
    );
    let manifest = put(
        store,
        MANIFEST,
        &json(
            serde_json::json!({"schemaVersion": 2, "config": desc_json(&config), "layers": [desc_json(&layer)]}),
        ),
    );
    let index = put(
        store,
        INDEX,
        &json(serde_json::json!({"schemaVersion": 2, "manifests": [desc_json(&manifest)]})),
    );
    [index, manifest, config, layer]
}

fn blob_records(store: &Store) -> usize {
    store.db().read(|tx| tx.blobs()).unwrap().len()
}

#[test]
fn the_write_transaction_parses_no_blob_and_keeps_what_a_writer_referenced_meanwhile() {
    let (_d, store) = store();
    let [index, manifest, config, _layer] = unlabelled_image(&store);
    let stray = put(&store, LAYER, b"nobody's");
    // The image is named after the read transaction's mark: its blobs are in no cache.
    store
        .db()
        .write(|tx| tx.put_image("example.com/old:1", &index, &Labels::new()))
        .unwrap();
    let mut parsed = Parsed::default();
    let attempt = |parsed: &mut Parsed, last: bool| {
        store
            .db()
            .write(|tx| sweep(tx, &store, &GcOptions::default(), parsed, last))
            .unwrap()
    };
    // Each attempt reports the next unlabelled blob it cannot follow and removes nothing.
    for expected in [&index, &manifest, &config] {
        match attempt(&mut parsed, false) {
            Sweep::Unparsed(d) => assert_eq!(d, std::slice::from_ref(&expected.digest)),
            Sweep::Done(_) => panic!("swept without knowing what {} keeps", expected.digest),
        }
        assert_eq!(blob_records(&store), 5);
        // What a read transaction's mark parses.
        parsed.read(&store, &expected.digest);
    }
    match attempt(&mut parsed, false) {
        Sweep::Done(swept) => {
            let removed: Vec<&Digest> = swept.collected.blobs.iter().map(|b| &b.digest).collect();
            assert_eq!(removed, [&stray.digest]);
        }
        Sweep::Unparsed(d) => panic!("{d:?}"),
    }
    assert_eq!(blob_records(&store), 4);
}

#[test]
fn a_last_attempt_that_cannot_follow_a_blob_keeps_every_blob_and_snapshot() {
    let (_d, store) = store();
    let sn = store.snapshotter().unwrap();
    let [index, ..] = unlabelled_image(&store);
    put(&store, LAYER, b"nobody's");
    snapshot(&*sn, "orphan", None, &Labels::new());
    store
        .db()
        .write(|tx| {
            tx.put_image("example.com/old:1", &index, &Labels::new())?;
            tx.create_lease(
                "old",
                Some(SystemTime::now() - Duration::from_secs(1)),
                &Labels::new(),
            )
        })
        .unwrap();
    let swept = store
        .db()
        .write(|tx| {
            sweep(
                tx,
                &store,
                &GcOptions::default(),
                &mut Parsed::default(),
                true,
            )
        })
        .unwrap();
    let Sweep::Done(swept) = swept else {
        panic!("the last attempt sweeps");
    };
    assert!(swept.collected.blobs.is_empty() && swept.snapshots.is_empty());
    // Leases that are over still go: they keep nothing.
    assert_eq!(swept.collected.leases, ["old"]);
    assert_eq!(blob_records(&store), 5);
    assert_eq!(keys(&store), ["orphan"]);
}
