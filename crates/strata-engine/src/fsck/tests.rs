#![allow(clippy::unwrap_used)]

use strata_metadata::Labels;

use super::*;
use crate::test_store::{image, put, snapshot, store};

fn subjects(r: &Report, s: Severity) -> Vec<String> {
    let mut v: Vec<String> = r
        .findings
        .iter()
        .filter(|f| f.severity == s)
        .map(|f| f.subject.clone())
        .collect();
    v.sort();
    v
}

const CHECK: FsckOptions = FsckOptions {
    repair: false,
    verify_content: false,
};
const REPAIR: FsckOptions = FsckOptions {
    repair: true,
    verify_content: false,
};

/// A store holding one image of two unpacked layers, `example.com/x:1`.
fn store_with_image() -> (
    tempfile::TempDir,
    Store,
    Box<dyn strata_snapshot::Snapshotter>,
) {
    let (d, store) = store();
    let sn = store.snapshotter().unwrap();
    let m = image(&store, &*sn, &[b"base", b"top"], true);
    store
        .db()
        .write(|tx| tx.put_image("example.com/x:1", &m, &Labels::new()))
        .unwrap();
    (d, store, sn)
}

#[test]
fn a_consistent_store_has_nothing_to_report() {
    let (_d, store, _sn) = store_with_image();
    let verify = FsckOptions {
        repair: false,
        verify_content: true,
    };
    let report = fsck(&store, &verify).unwrap();
    assert_eq!(report.findings, [], "{report:?}");
    assert!(report.checked >= 6, "{report:?}");
}

#[test]
fn orphans_and_broken_records_are_found_and_repaired() {
    let (_d, store, sn) = store_with_image();
    let local = store.content().local();
    // A blob file no record names (a crash between a record's deletion and its file's).
    let orphan = strata_types::Digest::sha256_of(b"orphan");
    std::fs::write(local.blob_path(&orphan), b"orphan").unwrap();
    // A recorded blob whose file is gone, one whose bytes rotted (same size).
    let lost = put(&store, crate::test_store::LAYER, b"lost");
    std::fs::remove_file(local.blob_path(&lost.digest)).unwrap();
    let rotten = strata_types::Digest::sha256_of(b"top");
    std::fs::write(local.blob_path(&rotten), b"tOp").unwrap();
    // A snapshot directory without a record, and a layer whose tree vanished (with a child).
    let sn_dir = store.root().join("snapshots/native");
    std::fs::create_dir_all(sn_dir.join("99999/fs")).unwrap();
    snapshot(&*sn, "gone", None, &Labels::new());
    snapshot(&*sn, "on-gone", Some("gone"), &Labels::new());
    let id = store
        .db()
        .read(|tx| Ok(tx.snapshot("native", "gone")?.unwrap().id))
        .unwrap();
    std::fs::rename(
        sn_dir.join(id.to_string()).join("fs"),
        sn_dir.join(id.to_string()).join("elsewhere"),
    )
    .unwrap();
    // A container directory without a record.
    let stray = store.root().join("containers").join("f".repeat(64));
    std::fs::create_dir_all(&stray).unwrap();

    let report = fsck(&store, &CHECK).unwrap();
    assert_eq!(
        subjects(&report, Severity::Problem),
        [
            format!("blob {}", lost.digest),
            "snapshot native/gone".to_owned()
        ]
    );
    let mut orphans = vec![
        format!("blob {orphan}"),
        sn_dir.join("99999").display().to_string(),
        stray.display().to_string(),
    ];
    orphans.sort();
    assert_eq!(subjects(&report, Severity::Orphan), orphans);
    assert!(report.findings.iter().all(|f| f.repaired.is_none()));
    assert_eq!(report.unresolved_problems(), 2);
    assert!(local.exists(&orphan), "a check alone changes nothing");

    // Rot shows only when content is verified.
    let verify = FsckOptions {
        repair: false,
        verify_content: true,
    };
    let report = fsck(&store, &verify).unwrap();
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.subject == format!("blob {rotten}") && f.detail.contains("does not match")),
        "{report:?}"
    );

    let repair = FsckOptions {
        repair: true,
        verify_content: true,
    };
    let report = fsck(&store, &repair).unwrap();
    assert_eq!(report.unresolved_problems(), 0, "{report:?}");
    assert!(
        report.findings.iter().all(|f| f.repaired.is_some()),
        "{report:?}"
    );
    assert!(!local.exists(&orphan) && !stray.exists());
    assert!(store.content().info(&lost.digest).is_err());
    assert!(
        store.content().info(&rotten).is_err(),
        "the rotten blob is to be fetched again"
    );
    assert!(sn.stat("gone").is_err() && sn.stat("on-gone").is_err());
    // Repaired: a second pass finds nothing.
    assert_eq!(fsck(&store, &REPAIR).unwrap().findings, []);
}

#[test]
fn a_repair_leaves_what_a_container_uses() {
    let (_d, store) = store();
    let sn = store.snapshotter().unwrap();
    snapshot(&*sn, "layer", None, &Labels::new());
    sn.prepare("container-rw", Some("layer"), &Labels::new())
        .unwrap();
    store
        .db()
        .write(|tx| {
            let now = SystemTime::now();
            tx.insert_container(&strata_metadata::ContainerRecord {
                id: "c".repeat(64),
                name: "user".into(),
                image: "x".into(),
                snapshotter: "native".into(),
                snapshot_key: Some("container-rw".into()),
                runtime: "runc".into(),
                created: now,
                updated: now,
                labels: Labels::new(),
            })?;
            Ok(())
        })
        .unwrap();
    let id = store
        .db()
        .read(|tx| Ok(tx.snapshot("native", "layer")?.unwrap().id))
        .unwrap();
    let dir = store.root().join("snapshots/native").join(id.to_string());
    std::fs::rename(dir.join("fs"), dir.join("elsewhere")).unwrap();
    let report = fsck(&store, &REPAIR).unwrap();
    // The layer is broken, but the container's snapshot stands on it: left, and said.
    assert_eq!(report.unresolved_problems(), 1, "{report:?}");
    assert!(sn.stat("layer").is_ok());
    // The container itself, without a bundle, is an interrupted create: removed.
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.subject == "container user" && f.repaired.is_some()),
        "{report:?}"
    );
    assert!(store.db().read(|tx| tx.containers()).unwrap().is_empty());
}
