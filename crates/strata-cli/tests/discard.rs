//! No double storage end to end: `pull --discard-compressed` from the real distribution
//! registry keeps only the unpacked layers (plus small tar splits); containers run, `fsck` is
//! clean, `system df` and `du` agree; `push` and `save` bring the compressed layers back,
//! re-fetched from their source or rebuilt when the source is gone (new digests, said so),
//! and what they write reads back with skopeo with the image's diffIDs intact.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Strata, bytes, du, pseudo_random, skopeo};
use serde_json::Value;
use strata_testutil::{
    Compression, ImageBuilder, LayerBuilder, Registry, busybox_layer, push_image, require_root,
    require_tool,
};

/// A registry holding `discard/app:1` (busybox, 4 MB and 2 MB of incompressible data) and a
/// store with its own registry configuration; `None` (skipped) without root or the tools.
fn setup() -> Option<(Registry, Strata, strata_testutil::Image, String)> {
    if !(require_root("unpacks layers with owners, runs a container")
        && require_tool("docker-registry")
        && require_tool("skopeo")
        && require_tool("runc")
        && require_tool("busybox"))
    {
        return None;
    }
    let busybox = busybox_layer()?;
    let reg = Registry::start().expect("starting docker-registry");
    let img = ImageBuilder::new()
        .layer(
            busybox
                .file("data/base.bin", &pseudo_random(4 << 20, 7), 0o644)
                .build(Compression::Gzip),
        )
        .layer(
            LayerBuilder::new()
                .file("app/app.bin", &pseudo_random(2 << 20, 8), 0o644)
                .dir("app/empty", 0o755)
                .symlink("app/link", "app.bin")
                .build(Compression::Gzip),
        )
        .build();
    push_image(&reg.url(), "discard/app", "1", &img).unwrap();
    let s = Strata::new();
    let (docker, hosts) = (s.scratch("docker-config"), s.scratch("hosts"));
    let s = s
        .env("DOCKER_CONFIG", &docker)
        .env("STRATA_HOSTS_DIR", &hosts);
    let name = format!("{}/discard/app:1", reg.addr());
    Some((reg, s, img, name))
}

fn layer_files(s: &Strata, img: &strata_testutil::Image) -> Vec<bool> {
    img.layers
        .iter()
        .map(|l| {
            let hex = l.blob.digest.trim_start_matches("sha256:");
            s.root().join("content/blobs/sha256").join(hex).exists()
        })
        .collect()
}

fn df_images(s: &Strata) -> Value {
    let out = s.ok(&["system", "df", "--format", "json"]);
    serde_json::from_str(out.lines().next().unwrap()).unwrap()
}

#[test]
fn pull_discarding_keeps_only_the_unpacked_layers() {
    let Some((_reg, s, img, name)) = setup() else {
        return;
    };
    let out = s.ok(&["pull", "--discard-compressed", &name]);
    assert!(
        out.contains("Discarded 2 compressed layers after unpacking"),
        "{out}"
    );
    assert_eq!(layer_files(&s, &img), [false, false]);

    // The records stay, marked; the image is complete; containers run from it.
    let ls = s.ok(&["content", "ls"]);
    for l in &img.layers {
        let row = ls
            .lines()
            .find(|r| r.starts_with(&l.blob.digest))
            .unwrap_or_default();
        assert!(row.contains("(discarded)"), "{ls}");
        let info = s.ok(&["content", "info", "-f", "{{.Discarded}}", &l.blob.digest]);
        assert_eq!(info.trim(), "true");
    }
    let images = s.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(images.contains("discard/app:1"), "{images}");
    let run = s.ok(&["run", "--rm", &name, "sh", "-c", "wc -c < /app/link"]);
    assert_eq!(run.trim(), (2 << 20).to_string());
    s.ok(&["fsck"]);

    // Disk: content holds configs, manifests and splits only; df agrees with du.
    let content = du(&s.root().join("content/blobs"));
    assert!(content < 200 << 10, "content still holds {content} bytes");
    let on_disk = content + du(&s.root().join("snapshots"));
    let df = df_images(&s);
    let shown = bytes(df["Size"].as_str().unwrap());
    let off = (shown - on_disk as f64).abs() / on_disk as f64;
    assert!(off < 0.01, "df says {shown}, du {on_disk}");
    assert!(bytes(df["ContentSize"].as_str().unwrap()) < 200e3, "{df}");
    let discarded: u64 = img.layers.iter().map(|l| l.blob.size()).sum();
    let named = bytes(df["DiscardedSize"].as_str().unwrap());
    assert!(
        (named - discarded as f64).abs() < discarded as f64 * 0.01,
        "{df}"
    );
    let table = s.ok(&["system", "df"]);
    assert!(table.contains("discarded"), "{table}");

    // Garbage collection keeps the discarded records and their splits while the image is
    // here; a second pull has nothing to do.
    s.ok(&["system", "prune", "-f"]);
    s.ok(&["fsck"]);
    let again = s.ok(&["pull", &name]);
    assert!(again.contains("Image is up to date"), "{again}");
    assert_eq!(layer_files(&s, &img), [false, false]);

    // Removing the image lets everything go: records, splits, snapshots.
    s.ok(&["rmi", &name]);
    s.ok(&["system", "prune", "-a", "-f"]);
    let left = s.ok(&["content", "ls", "-q"]);
    assert!(left.trim().is_empty(), "{left}");
    s.ok(&["fsck"]);
}

#[test]
fn the_store_setting_discards_and_keep_compressed_overrides_it() {
    let Some((_reg, s, img, name)) = setup() else {
        return;
    };
    assert_eq!(
        s.ok(&["system", "settings", "discard-compressed"]).trim(),
        "false"
    );
    s.ok(&["system", "settings", "discard-compressed", "true"]);
    let listed = s.ok(&["system", "settings"]);
    assert!(listed.contains("discard-compressed   true"), "{listed}");
    let err = s.fails(&["system", "settings", "discard-compressed", "maybe"], b"");
    assert!(err.contains("true or false"), "{err}");
    let err = s.fails(&["system", "settings", "no-such"], b"");
    assert!(err.contains("unknown setting"), "{err}");

    s.ok(&["pull", "--keep-compressed", &name]);
    assert_eq!(layer_files(&s, &img), [true, true]);
    s.ok(&["rmi", &name]);
    s.ok(&["system", "prune", "-a", "-f"]);
    s.ok(&["pull", &name]);
    assert_eq!(layer_files(&s, &img), [false, false]);
    s.ok(&["system", "settings", "discard-compressed", "default"]);
    assert_eq!(
        s.ok(&["system", "settings", "discard-compressed"]).trim(),
        "false"
    );
}

/// What `skopeo inspect --tls-verify=false FLAG TRANSPORT` prints.
fn skopeo_inspect(flag: &str, transport: &str) -> Vec<u8> {
    skopeo(&["inspect", "--tls-verify=false", flag, transport])
}

/// The diffIDs of the image skopeo reads at `transport`.
fn skopeo_diff_ids(transport: &str) -> Vec<String> {
    let config: Value = serde_json::from_slice(&skopeo_inspect("--config", transport)).unwrap();
    config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect()
}

fn diff_ids(img: &strata_testutil::Image) -> Vec<String> {
    img.layers.iter().map(|l| l.diff_id.clone()).collect()
}

/// The digest of the manifest skopeo reads at `transport`.
fn skopeo_digest(transport: &str) -> String {
    strata_testutil::sha256_digest(&skopeo_inspect("--raw", transport))
}

/// Copies `transport` into an OCI directory with skopeo, which checks every blob's digest
/// and size on the way.
fn skopeo_copy_verifies(transport: &str) {
    let dir = tempfile::tempdir().unwrap();
    let dest = format!("oci:{}:x", dir.path().display());
    skopeo(&["copy", "--src-tls-verify=false", transport, &dest]);
}

#[test]
fn push_and_save_refetch_from_the_source_or_rebuild_without_it() {
    let Some((reg, s, img, name)) = setup() else {
        return;
    };
    s.ok(&["pull", "-q", "--discard-compressed", &name]);
    assert_eq!(layer_files(&s, &img), [false, false]);

    // The source is up: push re-fetches, the pushed image is the same, byte for byte.
    let copy = format!("{}/discard/copy:1", reg.addr());
    s.ok(&["tag", &name, &copy]);
    let out = s.cmd(&["push", &copy]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("rebuilt"));
    assert_eq!(skopeo_digest(&format!("docker://{copy}")), img.digest());
    assert_eq!(
        layer_files(&s, &img),
        [false, false],
        "discarded again after"
    );

    // save too: the archive holds the original blobs.
    let tar = s.scratch("out").join("same.tar");
    s.ok(&["save", "-o", tar.to_str().unwrap(), &name]);
    assert_eq!(
        skopeo_digest(&format!("oci-archive:{}", tar.display())),
        img.digest()
    );
    assert_eq!(layer_files(&s, &img), [false, false]);

    // The source is gone: save rebuilds from the snapshots and says so; the archive is a
    // valid image with the same diffIDs under new layer digests.
    drop(reg);
    let tar = s.scratch("out").join("rebuilt.tar");
    let out = s
        .cmd(&["save", "-o", tar.to_str().unwrap(), &name])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // (A layer gzip happens to compress again to the same bytes comes back unchanged.)
    assert!(err.contains("rebuilt from its unpacked snapshot"), "{err}");
    let archive = format!("oci-archive:{}", tar.display());
    assert_ne!(skopeo_digest(&archive), img.digest());
    assert_eq!(skopeo_diff_ids(&archive), diff_ids(&img));
    skopeo_copy_verifies(&archive);
    s.ok(&["fsck"]);

    // A fresh store loads it and runs it.
    let fresh = Strata::new();
    fresh.ok(&["load", "-q", "-i", tar.to_str().unwrap()]);
    let run = fresh.ok(&["run", "--rm", &name, "sh", "-c", "wc -c < /data/base.bin"]);
    assert_eq!(run.trim(), (4 << 20).to_string());

    // push to another registry rebuilds the same way (the rebuilt blobs were kept for
    // garbage collection, or are made again byte for byte).
    let other = Registry::start().unwrap();
    let moved = format!("{}/discard/moved:1", other.addr());
    s.ok(&["tag", &name, &moved]);
    let out = s.cmd(&["push", &moved]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("differs from the local image"), "{err}");
    let remote = format!("docker://{moved}");
    assert_eq!(skopeo_diff_ids(&remote), diff_ids(&img));
    assert_eq!(
        skopeo_digest(&remote),
        skopeo_digest(&archive),
        "deterministic rebuild"
    );
    skopeo_copy_verifies(&remote);
    s.ok(&["system", "prune", "-f"]);
    s.ok(&["fsck"]);
}

#[test]
fn a_layer_that_does_not_rebuild_keeps_its_blob() {
    let Some((reg, s, _img, _name)) = setup() else {
        return;
    };
    // The same path twice in one layer: the first copy's data is gone from the tree, so the
    // split cannot give the layer back and its blob must stay.
    let twice = LayerBuilder::new()
        .file("twice.txt", b"first version", 0o644)
        .file("twice.txt", b"second", 0o644)
        .build(Compression::Gzip);
    let plain = LayerBuilder::new()
        .file("plain.txt", &pseudo_random(1 << 20, 9), 0o644)
        .build(Compression::Gzip);
    let img = ImageBuilder::new().layer(twice).layer(plain).build();
    push_image(&reg.url(), "discard/twice", "1", &img).unwrap();
    let name = format!("{}/discard/twice:1", reg.addr());
    let out = s
        .cmd(&["pull", "--discard-compressed", &name])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("Discarded 1 compressed layer after unpacking"),
        "{stdout}"
    );
    assert!(stderr.contains("keeping the compressed blob"), "{stderr}");
    assert_eq!(layer_files(&s, &img), [true, false]);
    s.ok(&["fsck"]);
}

#[test]
fn push_needs_no_bytes_the_destination_has_or_mounts() {
    let Some((source, s, img, name)) = setup() else {
        return;
    };
    s.ok(&["pull", "-q", "--discard-compressed", &name]);
    let dest = Registry::start().unwrap();
    let push = |tag: &str| {
        let to = format!("{}/{tag}", dest.addr());
        s.ok(&["tag", &name, &to]);
        let out = s.cmd(&["push", &to]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        assert!(!err.contains("rebuilt"), "{tag}: {err}");
        assert_eq!(
            skopeo_digest(&format!("docker://{to}")),
            img.digest(),
            "{tag}"
        );
    };
    // The first push needs the bytes: fetched from the source.
    push("discard/one:1");
    // With the source gone, the destination's own copies are enough: the same repository
    // has them (HEAD), another repository of the registry mounts them.
    drop(source);
    push("discard/one:2");
    push("discard/two:1");
    assert_eq!(layer_files(&s, &img), [false, false]);
}
