//! OCI image layouts on disk (and as tar archives) from in-memory images, as `docker save`,
//! `skopeo copy oci:` and `ctr images export` write them: for `load` tests.

use std::fs;
use std::path::Path;

use anyhow::Context;
use serde_json::json;

use crate::{Blob, Image, Index};

/// What a layout's `index.json` points at.
#[derive(Debug, Clone, Copy)]
pub enum LayoutEntry<'a> {
    Image(&'a Image),
    Index(&'a Index),
}

impl LayoutEntry<'_> {
    fn top(&self) -> &Blob {
        match self {
            LayoutEntry::Image(i) => &i.manifest,
            LayoutEntry::Index(i) => &i.index,
        }
    }

    fn blobs(&self) -> Vec<&Blob> {
        match self {
            LayoutEntry::Image(i) => std::iter::once(&i.manifest).chain(i.blobs()).collect(),
            LayoutEntry::Index(x) => std::iter::once(&x.index)
                .chain(
                    x.images
                        .iter()
                        .chain(&x.attestations)
                        .flat_map(|i| std::iter::once(&i.manifest).chain(i.blobs())),
                )
                .collect(),
        }
    }
}

/// Writes an OCI layout at `dir`: `oci-layout`, `blobs/sha256/<hex>`, and `index.json` with
/// one entry per `(ref name, entry)`; a ref name is stored as
/// `org.opencontainers.image.ref.name` (omitted when empty).
pub fn write_layout(dir: &Path, entries: &[(&str, LayoutEntry<'_>)]) -> anyhow::Result<()> {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).with_context(|| format!("create {}", blobs.display()))?;
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut manifests = Vec::new();
    for (name, entry) in entries {
        for blob in entry.blobs() {
            let hex = blob
                .digest
                .strip_prefix("sha256:")
                .context("sha256 digest")?;
            fs::write(blobs.join(hex), &blob.bytes)?;
        }
        let mut desc = entry.top().descriptor();
        if !name.is_empty() {
            desc["annotations"] = json!({ "org.opencontainers.image.ref.name": name });
        }
        manifests.push(desc);
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    fs::write(dir.join("index.json"), index.to_string())?;
    Ok(())
}

/// The layout at `dir` as an (uncompressed) tar archive, entries in sorted order.
pub fn tar_dir(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    builder.follow_symlinks(false);
    builder
        .append_dir_all(".", dir)
        .with_context(|| format!("tar {}", dir.display()))?;
    Ok(builder.into_inner()?)
}
