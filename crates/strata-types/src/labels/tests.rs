#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn content_edges_round_trip() {
    for edge in [
        ContentEdge::Plain,
        ContentEdge::Manifest(0),
        ContentEdge::Manifest(12),
        ContentEdge::Config,
        ContentEdge::Layer(3),
        ContentEdge::Split,
        ContentEdge::Other(".sbom".into()),
        ContentEdge::Other("/tool/x".into()),
        // Not strata's index form: kept as another tool's edge, byte for byte.
        ContentEdge::Other(".m.01".into()),
        ContentEdge::Other(".m.x".into()),
    ] {
        assert_eq!(
            ContentEdge::parse(&edge.key()),
            Some(edge.clone()),
            "{edge:?}"
        );
    }
    assert_eq!(
        ContentEdge::Manifest(2).key(),
        "containerd.io/gc.ref.content.m.2"
    );
    assert_eq!(
        ContentEdge::Layer(1).key(),
        "containerd.io/gc.ref.content.l.1"
    );
    assert_eq!(
        ContentEdge::Config.key(),
        "containerd.io/gc.ref.content.config"
    );
    assert_eq!(ContentEdge::Split.key(), SPLIT);
    assert_eq!(
        ContentEdge::parse("containerd.io/gc.ref.content.m.7"),
        Some(ContentEdge::Manifest(7))
    );
}

#[test]
fn malformed_content_keys_are_refused() {
    for key in [
        "containerd.io/gc.ref.contents",
        "containerd.io/gc.ref.contentm.1",
        "containerd.io/gc.ref.conten",
        "containerd.io/gc.ref.snapshot.native",
        "io.containerd.gc.ref.content",
        "",
    ] {
        assert_eq!(ContentEdge::parse(key), None, "{key}");
    }
    // Only canonical indexes are strata's edges.
    for key in [
        ".m.",
        ".m.-1",
        ".m.+1",
        ".m.01",
        ".l.1a",
        ".l.99999999999999999999999",
    ] {
        let parsed = ContentEdge::parse(&format!("containerd.io/gc.ref.content{key}"));
        assert_eq!(parsed, Some(ContentEdge::Other(key.into())), "{key}");
    }
}

#[test]
fn snapshot_edges_round_trip_and_malformed_keys_are_refused() {
    for edge in [
        SnapshotEdge::new("overlayfs"),
        SnapshotEdge {
            snapshotter: "native",
            name: Some("top"),
        },
        SnapshotEdge {
            snapshotter: "btrfs",
            name: Some("a/b"),
        },
    ] {
        let key = edge.key().unwrap();
        assert_eq!(SnapshotEdge::parse(&key), Some(edge.clone()), "{key}");
    }
    assert_eq!(
        SnapshotEdge::new("native").key().unwrap(),
        "containerd.io/gc.ref.snapshot.native"
    );
    // A key that would not parse back is not built.
    assert_eq!(SnapshotEdge::new("").key(), None);
    assert_eq!(SnapshotEdge::new("a/b").key(), None);
    for key in [
        "containerd.io/gc.ref.snapshot.",
        "containerd.io/gc.ref.snapshot./name",
        "containerd.io/gc.ref.snapshot",
        "containerd.io/gc.ref.snapshotnative",
        "containerd.io/gc.ref.content",
    ] {
        assert_eq!(SnapshotEdge::parse(key), None, "{key}");
    }
}

#[test]
fn gc_refs_parse_either_kind() {
    assert_eq!(
        GcRef::parse("containerd.io/gc.ref.content.l.0"),
        Some(GcRef::Content(ContentEdge::Layer(0)))
    );
    assert_eq!(
        GcRef::parse("containerd.io/gc.ref.snapshot.native/x"),
        Some(GcRef::Snapshot(SnapshotEdge {
            snapshotter: "native",
            name: Some("x")
        }))
    );
    for key in [
        GC_ROOT,
        "containerd.io/gc.ref.contents",
        "strata.image.id",
        "containerd.io/distribution.source.docker.io",
    ] {
        assert_eq!(GcRef::parse(key), None, "{key}");
    }
}

#[test]
fn distribution_sources_round_trip() {
    for host in ["docker.io", "127.0.0.1", "[::1]"] {
        let key = distribution_source_key(host);
        assert_eq!(distribution_source_host(&key), Some(host));
    }
    assert_eq!(
        distribution_source_key("docker.io"),
        "containerd.io/distribution.source.docker.io"
    );
    for key in [
        "containerd.io/distribution.source.",
        "containerd.io/distribution.source",
        "containerd.io/distribution.sourcedocker.io",
        GC_ROOT,
    ] {
        assert_eq!(distribution_source_host(key), None, "{key}");
    }
    let repos: Vec<&str> = source_repos(" a/b, ,c ,").collect();
    assert_eq!(repos, ["a/b", "c"]);
}

#[test]
fn strata_keys_are_internal_and_user_keys_are_not() {
    for key in [
        IMAGE_ID,
        VOLUMES,
        OWNER_PID,
        OWNER_START,
        OWNER_BOOT,
        OWNER_PIDNS,
    ] {
        assert!(is_internal(key), "{key}");
    }
    for key in ["com.example.app", "stratagem", GC_ROOT] {
        assert!(!is_internal(key), "{key}");
    }
}
