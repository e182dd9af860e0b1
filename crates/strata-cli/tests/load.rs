//! `strata load` of OCI layouts (directories and tar archives) built in memory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Strata, image};
use strata_testutil::{LayoutEntry, build_index, tar_dir, write_layout};

fn images_count(s: &Strata) -> String {
    s.ok(&["info", "--format", "{{.Images}}"]).trim().to_owned()
}

#[test]
fn loads_named_images_from_a_directory_and_unpacks_them() {
    if !strata_testutil::require_root("unpacks layers with owners and whiteouts") {
        return;
    }
    let s = Strata::new();
    let dir = tempfile::tempdir().unwrap();
    let a = image("amd64", "a");
    let b = image("amd64", "b");
    write_layout(
        dir.path(),
        &[
            ("docker.io/library/alpha:1", LayoutEntry::Image(&a)),
            ("2", LayoutEntry::Image(&b)),
        ],
    )
    .unwrap();
    let out = s.ok(&[
        "load",
        "-i",
        dir.path().to_str().unwrap(),
        "--base-name",
        "example.com/beta",
    ]);
    assert_eq!(
        out,
        "Loaded image: alpha:1\nLoaded image: example.com/beta:2\n"
    );
    assert_eq!(images_count(&s), "2");
    // Two images × two layers, no shared layer: four committed snapshots.
    assert_eq!(
        s.ok(&["snapshot", "ls", "-q", "--filter", "kind=committed"])
            .lines()
            .count(),
        4
    );
    // Loading again changes nothing and unpacks nothing new.
    s.ok(&[
        "load",
        "-q",
        "-i",
        dir.path().to_str().unwrap(),
        "--base-name",
        "example.com/beta",
    ]);
    assert_eq!(s.ok(&["snapshot", "ls", "-q"]).lines().count(), 4);
}

#[test]
fn loads_a_tar_from_stdin() {
    if !strata_testutil::require_root("unpacks layers with owners and whiteouts") {
        return;
    }
    let s = Strata::new();
    let dir = tempfile::tempdir().unwrap();
    let a = image("amd64", "a");
    write_layout(
        dir.path(),
        &[("docker.io/library/alpha:1", LayoutEntry::Image(&a))],
    )
    .unwrap();
    let out = s.ok_input(&["load"], &tar_dir(dir.path()).unwrap());
    assert_eq!(out, "Loaded image: alpha:1\n");
}

#[test]
fn multi_platform_index_unpacks_the_host_variant_only() {
    if !strata_testutil::require_root("unpacks layers with owners and whiteouts") {
        return;
    }
    let index = build_index(vec![image("amd64", "x86"), image("arm64", "arm")], Some(0));
    let dir = tempfile::tempdir().unwrap();
    write_layout(
        dir.path(),
        &[("docker.io/library/multi:1", LayoutEntry::Index(&index))],
    )
    .unwrap();

    let s = Strata::new();
    assert_eq!(
        s.ok(&["load", "-i", dir.path().to_str().unwrap()]),
        "Loaded image: multi:1\n"
    );
    assert_eq!(
        images_count(&s),
        "1",
        "the attestation is not an image of its own"
    );
    let chains = s.ok(&["snapshot", "ls", "-q"]);
    assert_eq!(
        chains.lines().count(),
        2,
        "only the amd64 variant's two layers: {chains}"
    );

    let s = Strata::new();
    s.ok(&[
        "load",
        "--platform",
        "linux/arm64",
        "-i",
        dir.path().to_str().unwrap(),
    ]);
    let arm = s.ok(&["snapshot", "ls", "-q"]);
    assert_eq!(arm.lines().count(), 2);
    assert_ne!(arm, chains, "a different variant, different layers");
}

#[test]
fn a_blob_that_does_not_match_its_name_loads_nothing() {
    let s = Strata::new();
    let dir = tempfile::tempdir().unwrap();
    let a = image("amd64", "a");
    write_layout(
        dir.path(),
        &[("docker.io/library/alpha:1", LayoutEntry::Image(&a))],
    )
    .unwrap();
    let victim = &a.layers[0].blob.digest;
    let path = dir
        .path()
        .join("blobs/sha256")
        .join(victim.strip_prefix("sha256:").unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let err = s.fails(&["load", "-i", dir.path().to_str().unwrap()], b"");
    assert!(
        err.contains("digest mismatch") && err.contains(victim.as_str()),
        "{err}"
    );
    assert_eq!(images_count(&s), "0");
    assert!(!s.content_digests().contains(victim));
}

#[test]
fn missing_blob_and_not_a_layout_are_clear_errors() {
    let s = Strata::new();
    let dir = tempfile::tempdir().unwrap();
    let a = image("amd64", "a");
    write_layout(
        dir.path(),
        &[("docker.io/library/alpha:1", LayoutEntry::Image(&a))],
    )
    .unwrap();
    std::fs::remove_file(
        dir.path()
            .join("blobs/sha256")
            .join(a.manifest.digest.strip_prefix("sha256:").unwrap()),
    )
    .unwrap();
    let err = s.fails(&["load", "-i", dir.path().to_str().unwrap()], b"");
    assert!(err.contains("which the layout does not contain"), "{err}");

    let err = s.fails(
        &["load"],
        b"this is not a tar archive at all, just some text",
    );
    assert!(err.contains("load"), "{err}");
    assert_eq!(images_count(&s), "0");
}

#[test]
fn an_oversized_index_is_refused_before_reading() {
    let s = Strata::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
    std::fs::write(dir.path().join("index.json"), vec![b' '; (4 << 20) + 1]).unwrap();
    let err = s.fails(&["load", "-i", dir.path().to_str().unwrap()], b"");
    assert!(
        err.contains("index.json is larger than the 4194304 bytes allowed"),
        "{err}"
    );
    let tar = strata_testutil::tar_dir(dir.path()).unwrap();
    let err = s.fails(&["load"], &tar);
    assert!(
        err.contains("stdin: index.json is larger than the 4194304 bytes allowed"),
        "{err}"
    );
    assert_eq!(images_count(&s), "0");
}
