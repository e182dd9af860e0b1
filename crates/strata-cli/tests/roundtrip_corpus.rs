//! The corpus round trip of issue 4's acceptance: each image (the multi-platform index with its
//! attestation too) copied into the registry with skopeo, pulled with strata (every platform),
//! pushed back to another repository with strata, and copied out again with skopeo — the same
//! manifest bytes and the same blobs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Strata;

fn corpus() -> Option<PathBuf> {
    if !strata_testutil::require_root("unpacks layers with their owners")
        || !strata_testutil::require_tool("skopeo")
        || !strata_testutil::require_tool("docker-registry")
    {
        return None;
    }
    common::corpus_dir()
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The blob digests in an OCI layout directory.
fn blobs(layout: &Path) -> BTreeSet<String> {
    std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
        .collect()
}

#[test]
fn corpus_round_trips_through_strata_byte_identical() {
    let Some(corpus) = corpus() else { return };
    let reg = strata_testutil::Registry::start().unwrap();
    let s = Strata::new();
    for name in ["debian-base", "python", "smallfiles", "multi"] {
        let src = format!("{}/corpus/{name}:latest", reg.addr());
        let dst = format!("{}/copy/{name}:latest", reg.addr());
        let layout = corpus.join("oci").join(name);
        skopeo(&[
            "copy",
            "-q",
            "--all",
            "--dest-tls-verify=false",
            &format!("oci:{}:latest", layout.display()),
            &format!("docker://{src}"),
        ]);
        s.ok(&["pull", "-q", "--all-platforms", &src]);
        s.ok(&["tag", &src, &dst]);
        let pushed = s.ok(&["push", &dst]);
        // Every blob is in the registry already, in the repository it was pulled from.
        assert!(!pushed.contains(": Pushed"), "{pushed}");
        assert!(pushed.contains("Mounted from corpus/"), "{pushed}");

        let raw = |r: &str| {
            skopeo(&[
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{r}"),
            ])
        };
        assert_eq!(raw(&src), raw(&dst), "{name}: the same top manifest bytes");
        let out = tempfile::tempdir().unwrap();
        skopeo(&[
            "copy",
            "-q",
            "--all",
            "--src-tls-verify=false",
            &format!("docker://{dst}"),
            &format!("oci:{}:latest", out.path().display()),
        ]);
        let original = tempfile::tempdir().unwrap();
        skopeo(&[
            "copy",
            "-q",
            "--all",
            "--src-tls-verify=false",
            &format!("docker://{src}"),
            &format!("oci:{}:latest", original.path().display()),
        ]);
        assert_eq!(
            blobs(out.path()),
            blobs(original.path()),
            "{name}: the same blobs"
        );
    }
}
