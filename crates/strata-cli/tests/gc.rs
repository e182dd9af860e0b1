//! Garbage collection through `rmi` and `image prune`, against the real registry: what two
//! images share stays, an interrupted pull's leftovers stay under its lease and go once it
//! expires, and a collector looping beside pulls never breaks one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use common::{Strata, chains};
use strata_engine::gc::{GcOptions, collect};
use strata_engine::store::Store;
use strata_format::human_size;
use strata_testutil::{
    Compression, Image, ImageBuilder, Layer, LayerBuilder, Registry, push_image,
};

fn gate() -> Option<Registry> {
    if !strata_testutil::require_root("unpacks layers with their owners")
        || !strata_testutil::require_tool("docker-registry")
    {
        return None;
    }
    Some(Registry::start().unwrap())
}

fn base_layer() -> Layer {
    LayerBuilder::new()
        .dir("etc", 0o755)
        .file("etc/os-release", b"ID=shared\n", 0o644)
        .file("base.bin", &common::pseudo_random(256 << 10, 1), 0o644)
        .build(Compression::Gzip)
}

/// An image on the shared base, with a top layer of its own (`size` random bytes).
fn on_base(base: &Layer, name: &str, size: usize, seed: u64) -> Image {
    ImageBuilder::new()
        .platform("linux", "amd64", None)
        .layer(base.clone())
        .layer(
            LayerBuilder::new()
                .file(name, &common::pseudo_random(size, seed), 0o644)
                .build(Compression::Gzip),
        )
        .build()
}

/// The digests of the blob files on disk.
fn blob_files(root: &Path) -> BTreeSet<String> {
    match fs::read_dir(root.join("content/blobs/sha256")) {
        Ok(dir) => dir
            .map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    match fs::read_dir(dir) {
        Ok(d) => d.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

fn snapshot_keys(s: &Strata) -> BTreeSet<String> {
    s.snapshot_keys().into_iter().collect()
}

fn blob_digests(img: &Image) -> BTreeSet<String> {
    img.blobs()
        .map(|b| b.digest.clone())
        .chain([img.digest().to_owned()])
        .collect()
}

fn file_size(root: &Path, digest: &str) -> u64 {
    fs::metadata(
        root.join("content/blobs/sha256")
            .join(&digest["sha256:".len()..]),
    )
    .unwrap()
    .len()
}

fn reclaimed_line(out: &str) -> String {
    out.lines()
        .find(|l| l.starts_with("Total reclaimed space: "))
        .unwrap_or_else(|| panic!("{out}"))
        .to_owned()
}

#[test]
fn rmi_frees_what_no_other_image_uses() {
    let Some(reg) = gate() else { return };
    let base = base_layer();
    let (a, b) = (
        on_base(&base, "a.bin", 300 << 10, 2),
        on_base(&base, "b.bin", 200 << 10, 3),
    );
    push_image(&reg.url(), "demo/a", "v1", &a).unwrap();
    push_image(&reg.url(), "demo/b", "v1", &b).unwrap();
    let s = Strata::new();
    let (name_a, name_b) = (
        format!("{}/demo/a:v1", reg.addr()),
        format!("{}/demo/b:v1", reg.addr()),
    );
    s.ok(&["pull", "-q", &name_a]);
    s.ok(&["pull", "-q", &name_b]);
    let (ca, cb) = (chains(&a), chains(&b));
    assert_eq!(ca[0], cb[0], "the base is shared");
    let root = s.root();
    let (blobs_a, blobs_b) = (blob_digests(&a), blob_digests(&b));
    let only_a: BTreeSet<String> = blobs_a.difference(&blobs_b).cloned().collect();
    assert_eq!(only_a.len(), 3, "manifest, config, top layer");

    let store = Store::open(&root, "overlayfs").unwrap();
    let sn = store.snapshotter().unwrap();

    let out = s.ok(&["rmi", &name_a]);
    let familiar_a = format!("{}/demo/a:v1", reg.addr());
    assert_eq!(
        out,
        format!(
            "Untagged: {familiar_a}\nDeleted: {}\nDeleted: {}\n",
            a.digest(),
            ca[1]
        )
    );
    let files = blob_files(&root);
    assert!(
        files.is_disjoint(&only_a),
        "A's own blobs are gone: {files:?}"
    );
    assert!(files.is_superset(&blobs_b), "B's blobs stay: {files:?}");
    assert_eq!(files, blobs_b);
    let listed: BTreeSet<String> = s.content_digests().into_iter().collect();
    assert_eq!(listed, blobs_b);
    assert_eq!(snapshot_keys(&s), cb.iter().cloned().collect());

    // B still unpacks into a working root filesystem.
    let mnt = tempfile::tempdir().unwrap();
    let target = mnt.path().to_str().unwrap();
    s.ok(&["snapshot", "view", "--target", target, "look", &cb[1]]);
    assert_eq!(
        fs::read(mnt.path().join("etc/os-release")).unwrap(),
        b"ID=shared\n"
    );
    assert_eq!(
        fs::metadata(mnt.path().join("b.bin")).unwrap().len(),
        200 << 10
    );
    s.ok(&["snapshot", "unmount", target]);
    s.ok(&["snapshot", "rm", "look"]);

    // The same collection through the library reports exactly what it freed: pull A again,
    // remove its name, collect.
    s.ok(&["pull", "-q", &name_a]);
    // The figures, from the store itself: A's own blob files and its top snapshot's usage.
    let expected: u64 =
        only_a.iter().map(|d| file_size(&root, d)).sum::<u64>() + sn.usage(&ca[1]).unwrap().size;
    strata_engine::images::write(store.db(), |tx| {
        strata_engine::images::remove(tx, &format!("{}/demo/a:v1", reg.addr()), false)
    })
    .unwrap();
    let collected = collect(&store, &GcOptions::default()).unwrap();
    let removed: BTreeSet<String> = collected
        .blobs
        .iter()
        .map(|b| b.digest.to_string())
        .collect();
    assert_eq!(removed, only_a);
    assert!(collected.blobs.iter().all(|b| b.file_deleted));
    assert_eq!(collected.removed_layers().collect::<Vec<_>>(), [&ca[1]]);
    assert_eq!(collected.reclaimed(), expected);

    // The last image: everything goes, and prune has nothing left to do.
    let expected_b: u64 = blobs_b.iter().map(|d| file_size(&root, d)).sum::<u64>()
        + cb.iter().map(|c| sn.usage(c).unwrap().size).sum::<u64>();
    let out = s.ok(&["image", "prune", "-a", "-f"]);
    assert!(
        out.starts_with(&format!(
            "Deleted Images:\nuntagged: {}/demo/b:v1\ndeleted: {}\ndeleted: {}\ndeleted: {}\n\n",
            reg.addr(),
            b.digest(),
            cb[1],
            cb[0]
        )),
        "{out}"
    );
    assert_eq!(
        reclaimed_line(&out),
        format!("Total reclaimed space: {}", human_size(expected_b))
    );
    assert!(s.content_digests().is_empty());
    assert!(blob_files(&root).is_empty());
    assert!(snapshot_keys(&s).is_empty());
    assert!(entries(&root.join("snapshots/overlayfs")).is_empty());
    assert_eq!(
        s.ok(&["image", "prune", "-f"]),
        "Total reclaimed space: 0B\n"
    );
}

/// Starts a pull of a big one-layer image and kills it once its ingest holds some bytes.
fn kill_mid_pull(s: &Strata, name: &str) {
    let mut child = s.cmd(&["pull", "-q", name]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let active = s.ok(&["content", "active"]);
        if active.lines().skip(1).any(|l| !l.contains(" 0B ")) || Instant::now() > deadline {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the pull finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

fn big_image() -> Image {
    ImageBuilder::new()
        .layer(
            LayerBuilder::new()
                .file("big", &common::pseudo_random(96 << 20, 9), 0o644)
                .build(Compression::None),
        )
        .build()
}

#[test]
fn an_interrupted_pull_keeps_its_download_under_its_lease_then_it_is_reclaimed() {
    let Some(reg) = gate() else { return };
    let img = big_image();
    push_image(&reg.url(), "demo/big", "latest", &img).unwrap();
    let name = format!("{}/demo/big", reg.addr());
    let s = Strata::new();
    let root = s.root();
    kill_mid_pull(&s, &name);

    let store = Store::open(&root, "overlayfs").unwrap();
    let leases = store.db().read(|tx| tx.leases()).unwrap();
    assert_eq!(leases.len(), 1, "{leases:?}");
    let ingests = store.content().ingests().unwrap();
    assert_eq!(ingests.len(), 1, "{ingests:?}");
    let keys = snapshot_keys(&s);
    assert!(
        !keys.is_empty() && keys.iter().all(|k| k.starts_with("extract-")),
        "{keys:?}"
    );

    // The pull's process is dead: its lease no longer pins the half-unpacked snapshots, which
    // prune takes at once; the partial download stays, resumable, until the lease expires.
    s.ok(&["image", "prune", "-f"]);
    assert_eq!(store.content().ingests().unwrap(), ingests);
    assert!(snapshot_keys(&s).is_empty());

    // The lease expires: the next prune reclaims the rest.
    let expected = ingests.iter().map(|i| i.offset).sum::<u64>();
    assert!(expected > 0);
    store
        .db()
        .write(|tx| {
            tx.renew_lease(
                &leases[0].id,
                Some(SystemTime::now() - Duration::from_secs(1)),
            )
        })
        .unwrap();
    let out = s.ok(&["image", "prune", "-f"]);
    assert_eq!(
        out,
        format!("Total reclaimed space: {}\n", human_size(expected))
    );
    assert!(store.content().ingests().unwrap().is_empty());
    assert!(entries(&root.join("content/ingest")).is_empty());
    assert!(snapshot_keys(&s).is_empty());
    assert!(entries(&root.join("snapshots/overlayfs")).is_empty());
    assert!(store.db().read(|tx| tx.leases()).unwrap().is_empty());
    assert!(blob_files(&root).is_empty());

    // With a short lease set for the pull, waiting is enough.
    let s = Strata::new().env("STRATA_LEASE_EXPIRY", Path::new("1s"));
    kill_mid_pull(&s, &name);
    assert!(!snapshot_keys(&s).is_empty());
    std::thread::sleep(Duration::from_millis(1100));
    let err = s.fails(&["system", "prune"], b"n\n");
    assert!(err.contains("system prune has been cancelled"), "{err}");
    assert!(!snapshot_keys(&s).is_empty());
    let out = s.ok_input(&["system", "prune"], b"y\n");
    assert!(
        out.starts_with(
            "WARNING! This will remove:\n  - all stopped containers\n  - all dangling images\n"
        ),
        "{out}"
    );
    assert!(!out.ends_with("Total reclaimed space: 0B\n"), "{out}");
    assert!(snapshot_keys(&s).is_empty());
    assert!(entries(&s.root().join("content/ingest")).is_empty());
    // The pull still works afterwards.
    s.ok(&["pull", "-q", &name]);
    assert_eq!(snapshot_keys(&s), chains(&img).into_iter().collect());
}

#[test]
fn a_collector_looping_beside_pulls_never_breaks_them() {
    let Some(reg) = gate() else { return };
    let base = base_layer();
    let keep = on_base(&base, "keep.bin", 64 << 10, 4);
    let churn = on_base(&base, "churn.bin", 8 << 20, 5);
    push_image(&reg.url(), "demo/keep", "v1", &keep).unwrap();
    push_image(&reg.url(), "demo/churn", "v1", &churn).unwrap();
    let (keep_name, churn_name) = (
        format!("{}/demo/keep:v1", reg.addr()),
        format!("{}/demo/churn:v1", reg.addr()),
    );
    let s = Strata::new();
    let stop = AtomicBool::new(false);
    let collections = std::thread::scope(|scope| {
        let collector = scope.spawn(|| {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                s.ok(&["image", "prune", "-f"]);
                n += 1;
            }
            n
        });
        s.ok(&["pull", "-q", &keep_name]);
        for _ in 0..4 {
            s.ok(&["pull", "-q", &churn_name]);
            s.ok(&["rmi", &churn_name]);
        }
        s.ok(&["pull", "-q", &churn_name]);
        stop.store(true, Ordering::Relaxed);
        collector.join().unwrap()
    });
    assert!(collections > 0);

    let root = s.root();
    let store = Store::open(&root, "overlayfs").unwrap();
    assert_eq!(store.db().integrity_check().unwrap(), ["ok"]);
    // Every image's blobs are recorded and on disk, every layer unpacked.
    let files = blob_files(&root);
    let listed: BTreeSet<String> = s.content_digests().into_iter().collect();
    for img in [&keep, &churn] {
        for d in blob_digests(img) {
            assert!(files.contains(&d) && listed.contains(&d), "{d} missing");
        }
    }
    let keys = snapshot_keys(&s);
    for c in chains(&keep).into_iter().chain(chains(&churn)) {
        assert!(keys.contains(&c), "{c} missing: {keys:?}");
    }
    // Nothing else is left once the last collection ran: records and files agree.
    s.ok(&["image", "prune", "-f"]);
    let expected: BTreeSet<String> = blob_digests(&keep)
        .union(&blob_digests(&churn))
        .cloned()
        .collect();
    assert_eq!(blob_files(&root), expected);
    assert_eq!(
        s.content_digests().into_iter().collect::<BTreeSet<_>>(),
        expected
    );
    let all_chains: BTreeSet<String> = chains(&keep).into_iter().chain(chains(&churn)).collect();
    assert_eq!(snapshot_keys(&s), all_chains);
    assert_eq!(
        entries(&root.join("snapshots/overlayfs")).len(),
        all_chains.len()
    );
}
