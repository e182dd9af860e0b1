//! The realistic corpus (../shared/corpus: debootstrap-built Debian images) unpacks, on every
//! snapshotter, into exactly the tree `umoci unpack` makes of the same image.
//!
//! The corpus is built by `.ci/run` (`build.sh rootfs images`) into `$STRATA_CORPUS_DIR`
//! (default /var/tmp/strata-corpus); without it the test skips, or fails under
//! `STRATA_TEST_REQUIRE_ROOT=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Strata;
use serde_json::Value;
use strata_types::Digest;

/// (layout name, tag) pairs of the corpus; `multi` is an index of amd64, arm64 and an
/// attestation, of which load unpacks the host's (amd64) variant.
const IMAGES: &[(&str, &str)] = &[
    ("debian-base", "latest"),
    ("python", "latest"),
    ("smallfiles", "latest"),
    ("multi", "latest"),
];

fn read_json(layout: &Path, digest: &str) -> Value {
    let hex = digest.strip_prefix("sha256:").unwrap();
    serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()).unwrap()
}

/// The chainID of the image tagged `tag` in `layout`: the snapshot its top layer becomes.
fn top_chain(layout: &Path, tag: &str) -> String {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap();
    let mut manifest = read_json(layout, entry["digest"].as_str().unwrap());
    if manifest.get("manifests").is_some() {
        let amd64 = manifest["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == "amd64")
            .unwrap()
            .clone();
        manifest = read_json(layout, amd64["digest"].as_str().unwrap());
    }
    let config = read_json(layout, manifest["config"]["digest"].as_str().unwrap());
    let diff_ids: Vec<Digest> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().parse().unwrap())
        .collect();
    strata_types::chain_id(&diff_ids).unwrap().to_string()
}

fn umoci_unpack(layout: &Path, tag: &str, bundle: &Path) {
    let out = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:{tag}", layout.display()))
        .arg(bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How the image gets into the store.
enum Via<'a> {
    Load,
    /// `skopeo copy` into this registry, then `strata pull`.
    Pull(&'a strata_testutil::Registry),
}

fn compare(s: &Strata, snapshotter: &str, corpus: &Path, via: Via<'_>) {
    let mnt = tempfile::tempdir().unwrap();
    let target = mnt.path().to_str().unwrap();
    for (name, tag) in IMAGES {
        let layout = corpus.join("oci").join(name);
        match via {
            Via::Load => {
                let out = s.ok(&[
                    "--snapshotter",
                    snapshotter,
                    "load",
                    "-i",
                    layout.to_str().unwrap(),
                    "--base-name",
                    &format!("corpus/{name}"),
                ]);
                assert!(
                    out.contains(&format!("Loaded image: corpus/{name}:{tag}")),
                    "{out}"
                );
            }
            Via::Pull(reg) => {
                let dest = format!("{}/corpus/{name}:{tag}", reg.addr());
                let copied = Command::new("skopeo")
                    .args([
                        "--insecure-policy",
                        "copy",
                        "-q",
                        "--all",
                        "--dest-tls-verify=false",
                    ])
                    .arg(format!("oci:{}:{tag}", layout.display()))
                    .arg(format!("docker://{dest}"))
                    .output()
                    .unwrap();
                assert!(
                    copied.status.success(),
                    "{}",
                    String::from_utf8_lossy(&copied.stderr)
                );
                let out = s.ok(&["--snapshotter", snapshotter, "pull", "-q", &dest]);
                assert_eq!(out, format!("{dest}\n"));
            }
        }
        let top = top_chain(&layout, tag);
        let view = format!("check-{name}");
        s.ok(&[
            "--snapshotter",
            snapshotter,
            "snapshot",
            "view",
            "--target",
            target,
            &view,
            &top,
        ]);
        let bundle = tempfile::tempdir().unwrap();
        if *name == "multi" {
            // umoci 0.4 cannot pick a platform from an index. The corpus builds multi's amd64
            // variant from the debian-base layer: prove that, then compare with that image.
            let base = corpus.join("oci/debian-base");
            assert_eq!(
                top,
                top_chain(&base, "latest"),
                "multi/amd64 is debian-base"
            );
            umoci_unpack(&base, "latest", &bundle.path().join("b"));
        } else {
            umoci_unpack(&layout, tag, &bundle.path().join("b"));
        }
        strata_testutil::assert_same_tree(
            mnt.path(),
            &bundle.path().join("b/rootfs"),
            &["security.selinux"],
        );
        s.ok(&["--snapshotter", snapshotter, "snapshot", "unmount", target]);
        s.ok(&["--snapshotter", snapshotter, "snapshot", "rm", &view]);
    }
}

fn gate() -> Option<PathBuf> {
    if !strata_testutil::require_root("unpacks layers with their owners and mounts views")
        || !strata_testutil::require_tool("umoci")
    {
        return None;
    }
    common::corpus_dir()
}

#[test]
fn overlayfs_matches_umoci() {
    let Some(corpus) = gate() else { return };
    compare(&Strata::new(), "overlayfs", &corpus, Via::Load);
}

#[test]
fn native_matches_umoci() {
    let Some(corpus) = gate() else { return };
    compare(&Strata::new(), "native", &corpus, Via::Load);
}

fn registry_gate() -> Option<(PathBuf, strata_testutil::Registry)> {
    let corpus = gate()?;
    if !strata_testutil::require_tool("skopeo") || !strata_testutil::require_tool("docker-registry")
    {
        return None;
    }
    Some((corpus, strata_testutil::Registry::start().unwrap()))
}

/// Pulled from a registry with compressed layers discarded (the store setting), layers
/// unpack as they download (overlayfs: all at once) and every real layer's tar split
/// rebuilds it exactly (or its blob would stay); then `system df` accounts for the corpus as
/// `du` does, shared layers once, the store is within 5% of the unpacked size, and a save
/// without the registry rebuilds the layers with their diffIDs intact.
#[test]
fn overlayfs_pull_matches_umoci() {
    let Some((corpus, reg)) = registry_gate() else {
        return;
    };
    let s = Strata::new();
    s.ok(&["system", "settings", "discard-compressed", "true"]);
    compare(&s, "overlayfs", &corpus, Via::Pull(&reg));
    df_matches_du(&s);
    no_double_storage(&s, &corpus, reg);
}

fn no_double_storage(s: &Strata, corpus: &Path, reg: strata_testutil::Registry) {
    let rows: Vec<Value> = s
        .ok(&["system", "df", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let content = common::bytes(rows[0]["ContentSize"].as_str().unwrap());
    let unpacked = common::bytes(rows[0]["UnpackedSize"].as_str().unwrap());
    let ratio = (content + unpacked) / unpacked;
    eprintln!("corpus store with compressed layers discarded: {ratio:.4}× the unpacked size");
    assert!(ratio <= 1.05, "store is {ratio:.3}× the unpacked size");
    let python = format!("{}/corpus/python:latest", reg.addr());
    drop(reg);
    let tar = s.scratch("out").join("python.tar");
    let out = s
        .cmd(&["save", "-o", tar.to_str().unwrap(), &python])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("rebuilt from its unpacked snapshot"), "{err}");
    let archive = format!("oci-archive:{}", tar.display());
    let config: Value =
        serde_json::from_slice(&common::skopeo(&["inspect", "--config", &archive])).unwrap();
    let layout = corpus.join("oci/python");
    let original: Value = {
        let idx: Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        let manifest = read_json(&layout, idx["manifests"][0]["digest"].as_str().unwrap());
        read_json(&layout, manifest["config"]["digest"].as_str().unwrap())
    };
    assert_eq!(config["rootfs"]["diff_ids"], original["rootfs"]["diff_ids"]);
    s.ok(&["fsck"]);
}

fn df_matches_du(s: &Strata) {
    let rows: Vec<Value> = s
        .ok(&["system", "df", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let on_disk =
        common::du(&s.root().join("content/blobs")) + common::du(&s.root().join("snapshots"));
    let shown = common::bytes(rows[0]["Size"].as_str().unwrap());
    let off = (shown - on_disk as f64).abs() / on_disk as f64;
    assert!(
        off < 0.01,
        "system df says {shown} bytes, du {on_disk} ({:.2}% off)",
        off * 100.0
    );
    let df = common::DfVerbose::of(s);
    let verbose = &df.0;
    let image = |repo: &str| df.image(repo);
    // multi's amd64 variant is debian-base's layer, and python is built on it: all three
    // share it, and its bytes count once in the total.
    let base = image("corpus/debian-base");
    let python = image("corpus/python");
    let shared = common::bytes(base["SharedSize"].as_str().unwrap());
    assert!(
        shared > 0.9 * common::bytes(base["Size"].as_str().unwrap()),
        "{base}"
    );
    assert!(
        common::bytes(python["SharedSize"].as_str().unwrap()) >= shared * 0.99,
        "{python}"
    );
    let sum: f64 = verbose["Images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| common::bytes(i["Size"].as_str().unwrap()))
        .sum();
    assert!(
        shown < sum - shared,
        "shared layers count once: {shown} vs {sum}"
    );
}

#[test]
fn native_pull_matches_umoci() {
    let Some((corpus, reg)) = registry_gate() else {
        return;
    };
    compare(&Strata::new(), "native", &corpus, Via::Pull(&reg));
}

#[test]
fn btrfs_matches_umoci() {
    let Some(corpus) = gate() else { return };
    if !strata_testutil::require_tool("mkfs.btrfs") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let fs = strata_testutil::LoopBtrfs::create(t.path(), 4 << 30).unwrap();
    let s = Strata::on_root(fs.path().join("root"));
    compare(&s, "btrfs", &corpus, Via::Load);
    drop(s);
}
