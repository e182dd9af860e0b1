//! Cross-checks the harness against independent tools: images built here and
//! pushed to the real registry must be accepted by skopeo (and umoci).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use strata_testutil::{
    Compression, Image, ImageBuilder, LayerBuilder, Registry, build_index, push_image, push_index,
    require_tool, sha256_digest,
};

fn tools() -> bool {
    require_tool("docker-registry") && require_tool("skopeo")
}

fn skopeo(args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .context("running skopeo")?;
    if !out.status.success() {
        bail!(
            "skopeo {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

fn inspect_raw(reg: &Registry, reference: &str) -> anyhow::Result<Vec<u8>> {
    skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{}/{reference}", reg.addr()),
    ])
}

/// `index.json` of an OCI layout, and the digest it lists for `tag`.
fn layout_digest(dir: &Path, tag: &str) -> anyhow::Result<String> {
    let index: Value = serde_json::from_slice(&std::fs::read(dir.join("index.json"))?)?;
    let manifests = index["manifests"]
        .as_array()
        .context("index.json without manifests")?;
    manifests
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .and_then(|m| m["digest"].as_str())
        .map(str::to_string)
        .with_context(|| format!("tag {tag} not in {index}"))
}

fn mixed_image() -> Image {
    let base = LayerBuilder::new()
        .dir("bin", 0o755)
        .dir("etc", 0o755)
        .file("etc/hostname", b"strata\n", 0o644)
        .file("bin/tool", b"#!/bin/sh\necho hi\n", 0o755)
        .symlink("bin/sh", "/bin/busybox")
        .hardlink("bin/tool2", "bin/tool")
        .dir("var/cache", 0o755)
        .file("var/cache/x", b"x", 0o600)
        .build(Compression::Gzip);
    let upper = LayerBuilder::new()
        .owner(1000, 1000)
        .dir("home/user", 0o700)
        .file("home/user/.profile", b"export A=1\n", 0o644)
        .whiteout("etc/hostname")
        .opaque("var/cache")
        .build(Compression::Zstd);
    let long = LayerBuilder::new()
        .dir("opt", 0o755)
        .file(&format!("opt/{}", "n".repeat(180)), b"long name", 0o644)
        .build(Compression::None);
    ImageBuilder::new()
        .layer(base)
        .layer(upper)
        .layer(long)
        .history("ADD base")
        .history("RUN useradd user")
        .history("COPY long /opt")
        .config(|c| {
            c["config"]["Env"] = json!(["PATH=/usr/bin:/bin", "A=1"]);
            c["config"]["Cmd"] = json!(["/bin/sh"]);
            c["config"]["WorkingDir"] = json!("/home/user");
            c["config"]["User"] = json!("1000:1000");
        })
        .build()
}

#[test]
fn pushed_image_is_accepted_by_skopeo() -> anyhow::Result<()> {
    if !tools() {
        return Ok(());
    }
    let reg = Registry::start()?;
    let image = mixed_image();
    push_image(&reg.url(), "strata/mixed", "v1", &image)?;
    // Pushing again is a no-op for blobs and rewrites the tag.
    push_image(&reg.url(), "strata/mixed", "v1", &image)?;

    let raw = inspect_raw(&reg, "strata/mixed:v1")?;
    assert_eq!(sha256_digest(&raw), image.manifest.digest);
    assert_eq!(raw, image.manifest.bytes);

    // Config as skopeo sees it.
    let cfg: Value = serde_json::from_slice(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--config",
        &format!("docker://{}/strata/mixed:v1", reg.addr()),
    ])?)?;
    assert_eq!(cfg["config"]["User"], "1000:1000");

    let dir = tempfile::tempdir()?;
    let layout = dir.path().join("layout");
    // skopeo compresses uncompressed layers on their way into an OCI layout
    // unless told not to.
    skopeo(&[
        "copy",
        "--preserve-digests",
        "--dest-oci-accept-uncompressed-layers",
        "--src-tls-verify=false",
        &format!("docker://{}/strata/mixed:v1", reg.addr()),
        &format!("oci:{}:v1", layout.display()),
    ])?;
    assert_eq!(layout_digest(&layout, "v1")?, image.manifest.digest);
    for blob in image.blobs() {
        let hex = blob.digest.trim_start_matches("sha256:");
        let stored = std::fs::read(layout.join("blobs/sha256").join(hex))?;
        assert_eq!(stored, blob.bytes, "blob {} differs", blob.digest);
    }
    Ok(())
}

#[test]
fn pushed_docker_image_is_accepted_by_skopeo() -> anyhow::Result<()> {
    if !tools() {
        return Ok(());
    }
    let reg = Registry::start()?;
    let image = ImageBuilder::new()
        .docker_media_types()
        .layer(
            LayerBuilder::new()
                .file("a", b"a", 0o644)
                .build(Compression::Gzip),
        )
        .layer(LayerBuilder::new().whiteout("a").build(Compression::None))
        .build();
    push_image(&reg.url(), "docker/img", "latest", &image)?;
    // And by digest.
    push_image(&reg.url(), "docker/img", image.digest(), &image)?;
    let raw = inspect_raw(&reg, "docker/img:latest")?;
    assert_eq!(raw, image.manifest.bytes);
    let raw = inspect_raw(&reg, &format!("docker/img@{}", image.digest()))?;
    assert_eq!(raw, image.manifest.bytes);

    // Into a docker-archive-free destination that keeps the Docker types.
    let dir = tempfile::tempdir()?;
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/docker/img:latest", reg.addr()),
        &format!("dir:{}", dir.path().join("d").display()),
    ])?;
    let copied = std::fs::read(dir.path().join("d/manifest.json"))?;
    assert_eq!(copied, image.manifest.bytes);
    // And converted to OCI.
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/docker/img:latest", reg.addr()),
        &format!("oci:{}:latest", dir.path().join("o").display()),
    ])?;
    Ok(())
}

#[test]
fn pushed_index_with_attestation_is_accepted_by_skopeo() -> anyhow::Result<()> {
    if !tools() {
        return Ok(());
    }
    let reg = Registry::start()?;
    let layer = LayerBuilder::new()
        .file("hello", b"world", 0o644)
        .build(Compression::Gzip);
    let amd64 = ImageBuilder::new().layer(layer.clone()).build();
    let arm64 = ImageBuilder::new()
        .platform("linux", "arm64", Some("v8"))
        .layer(layer)
        .layer(
            LayerBuilder::new()
                .file("arm", b"64", 0o644)
                .build(Compression::Zstd),
        )
        .build();
    let index = build_index(vec![amd64, arm64], Some(0));
    push_index(&reg.url(), "strata/multi", "v1", &index)?;

    let raw = inspect_raw(&reg, "strata/multi:v1")?;
    assert_eq!(raw, index.index.bytes);
    assert_eq!(sha256_digest(&raw), index.index.digest);
    for img in index.images.iter().chain(&index.attestations) {
        let raw = inspect_raw(&reg, &format!("strata/multi@{}", img.digest()))?;
        assert_eq!(raw, img.manifest.bytes);
    }

    let dir = tempfile::tempdir()?;
    let layout = dir.path().join("layout");
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        &format!("docker://{}/strata/multi:v1", reg.addr()),
        &format!("oci:{}:v1", layout.display()),
    ])?;
    assert_eq!(layout_digest(&layout, "v1")?, index.index.digest);
    let blobs = layout.join("blobs/sha256");
    for img in index.images.iter().chain(&index.attestations) {
        for blob in std::iter::once(&img.manifest).chain(img.blobs()) {
            let hex = blob.digest.trim_start_matches("sha256:");
            assert!(blobs.join(hex).is_file(), "{} not copied", blob.digest);
        }
    }
    Ok(())
}

#[test]
fn umoci_unpacks_a_pushed_image() -> anyhow::Result<()> {
    if !tools() || !require_tool("umoci") || !strata_testutil::require_root("umoci unpack") {
        return Ok(());
    }
    let reg = Registry::start()?;
    let image = ImageBuilder::new()
        .layer(
            LayerBuilder::new()
                .dir("etc", 0o755)
                .file("etc/a", b"a", 0o644)
                .file("etc/b", b"b", 0o644)
                .symlink("etc/c", "a")
                .build(Compression::Gzip),
        )
        .layer(
            LayerBuilder::new()
                .whiteout("etc/b")
                .file("etc/d", b"d", 0o600)
                .build(Compression::Gzip),
        )
        .build();
    push_image(&reg.url(), "u/img", "t", &image)?;
    let dir = tempfile::tempdir()?;
    let layout = dir.path().join("layout");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/u/img:t", reg.addr()),
        &format!("oci:{}:t", layout.display()),
    ])?;
    let bundle = dir.path().join("bundle");
    let out = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:t", layout.display()))
        .arg(&bundle)
        .output()?;
    if !out.status.success() {
        bail!("umoci unpack: {}", String::from_utf8_lossy(&out.stderr));
    }
    let rootfs = bundle.join("rootfs");
    assert_eq!(std::fs::read(rootfs.join("etc/a"))?, b"a");
    assert!(!rootfs.join("etc/b").exists());
    assert_eq!(std::fs::read_link(rootfs.join("etc/c"))?, Path::new("a"));
    assert_eq!(std::fs::read(rootfs.join("etc/d"))?, b"d");
    Ok(())
}
