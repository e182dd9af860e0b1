//! The conformance suite on overlayfs, and the shapes of its mounts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;

use std::path::Path;

use strata_snapshot::Labels;

fn env(needs_root: bool) -> Option<conformance::Env> {
    if needs_root && !strata_testutil::require_root("mounts overlayfs") {
        return None;
    }
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().to_owned();
    Some(conformance::Env::new("overlayfs", &dir, vec![Box::new(t)]))
}

conformance::suite!(env);

#[test]
fn mount_shapes() {
    let env = env(false).unwrap();
    let sn = &*env.sn;
    let none = Labels::new();
    let m = sn.prepare("a", None, &none).unwrap();
    assert_eq!((m.len(), m[0].kind.as_str()), (1, "bind"));
    assert_eq!(m[0].options, ["rw", "rbind"]);
    assert!(m[0].source.ends_with("fs"));
    sn.commit("c1", "a", &none).unwrap();
    sn.prepare("b", Some("c1"), &none).unwrap();
    sn.commit("c2", "b", &none).unwrap();

    let m = sn.prepare("top", Some("c2"), &none).unwrap();
    assert_eq!(m[0].kind, "overlay");
    let opts = &m[0].options;
    assert!(opts.contains(&"index=off".to_owned()), "{opts:?}");
    assert!(
        opts.iter()
            .any(|o| o.starts_with("upperdir=") && o.ends_with("/fs"))
    );
    assert!(
        opts.iter()
            .any(|o| o.starts_with("workdir=") && o.ends_with("/work"))
    );
    let lowers = m[0].lowerdirs();
    assert_eq!(lowers.len(), 2);
    // Topmost first: c2's directory, then c1's.
    let c1_dir = sn.apply_target("top").unwrap().lowers;
    assert_eq!(lowers, c1_dir);
    assert!(!m[0].is_readonly());

    let v1 = sn.view("v1", Some("c1"), &none).unwrap();
    assert_eq!((v1[0].kind.as_str(), v1[0].is_readonly()), ("bind", true));
    assert_eq!(v1[0].source, lowers[1]);
    let v2 = sn.view("v2", Some("c2"), &none).unwrap();
    assert_eq!(
        (v2[0].kind.as_str(), v2[0].is_readonly()),
        ("overlay", true)
    );
    assert_eq!(v2[0].lowerdirs(), lowers);
    assert!(!v2[0].options.iter().any(|o| o.starts_with("upperdir=")));
    let v0 = sn.view("v0", None, &none).unwrap();
    assert_eq!((v0[0].kind.as_str(), v0[0].is_readonly()), ("bind", true));

    // Directories are named by record id under <root>/snapshots/overlayfs.
    let base = env.snapshots_dir();
    for l in &lowers {
        let id_dir = l.parent().unwrap();
        assert_eq!(id_dir.parent().unwrap(), base);
        let id: i64 = id_dir
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(id > 0);
        assert!(Path::new(&l).is_dir());
    }
}

#[test]
fn unknown_snapshotter_is_an_invalid_argument() {
    let t = tempfile::tempdir().unwrap();
    let db = strata_metadata::Db::open(&t.path().join("m.db")).unwrap();
    let err = match strata_snapshot::open("zfs", t.path(), std::sync::Arc::new(db)) {
        Err(e) => e,
        Ok(_) => panic!("zfs is not a snapshotter"),
    };
    assert_eq!(err.kind(), strata_types::ErrorKind::InvalidArgument);
    assert!(
        err.to_string().contains("unknown snapshotter \"zfs\""),
        "{err}"
    );
}

/// A process killed while it had an active snapshot mounted (as `create` mounts the init
/// layer) leaves the overlay behind; removing the snapshot takes it down, with the private
/// directory strata made for it.
#[test]
fn removing_a_snapshot_detaches_a_mount_a_killed_process_left() {
    let Some(env) = env(true) else { return };
    let sn = &*env.sn;
    let none = Labels::new();
    sn.prepare("base", None, &none).unwrap();
    sn.commit("c1", "base", &none).unwrap();
    let m = sn.prepare("init", Some("c1"), &none).unwrap();
    assert_eq!(m[0].kind, "overlay");
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("strata-mount-1-0-0");
    let point = dir.join("root");
    std::fs::create_dir_all(&point).unwrap();
    strata_mount::mount_all(&m, &point).unwrap();
    let mounted = |p: &Path| {
        strata_mount::mountinfo::mounts()
            .iter()
            .any(|e| e.point == p)
    };
    assert!(mounted(&point));
    sn.remove("init").unwrap();
    assert!(!mounted(&point), "the leftover mount is detached");
    assert!(!dir.exists(), "its private directory is removed");
    // A mount that only reads a snapshot is not touched: c1 cannot be removed while a child
    // exists, and a view's mount of it stays.
    let v = sn.view("v", Some("c1"), &none).unwrap();
    let point = parent.path().join("view");
    std::fs::create_dir_all(&point).unwrap();
    strata_mount::mount_all(&v, &point).unwrap();
    sn.remove("v").unwrap();
    assert!(
        mounted(&point),
        "a bind of a committed layer is not the removed snapshot's"
    );
    strata_mount::unmount(&point, strata_mount::UnmountFlags::DETACH).unwrap();
}
