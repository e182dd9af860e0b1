//! `migrate`: the images of Docker's classic overlay2 store, brought into strata without the
//! network and without touching the source.
//!
//! ```text
//! DockerStore::open(/var/lib/docker)      read only: names, configs, layers (source.rs)
//!   │ check_threshold                     refuse: containers, too many images, too many bytes
//!   ▼
//! per image, per layer not yet here       (layer.rs)
//!   tar-split.json.gz + overlay2/<cache-id>/diff ─► exact layer tar ─► apply ─► snapshot
//!   diffID checked; the layer blob (uncompressed, digest = diffID) recorded discarded with
//!   the tar split that rebuilds it
//! config blob (digest = the Docker image ID), OCI manifest naming it and the layers
//! names recorded in one transaction; each record keeps the Docker ID (strata_types::labels::DOCKER_IMAGE_ID)
//! ```
//!
//! Each image is recorded as soon as its layers are in, so a migration stopped half way keeps
//! what it finished, and running it again goes on where it stopped (layers present are
//! skipped). A lease protects the unfinished image's layers meanwhile.

mod layer;
mod source;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use strata_remote::media::{OCI_CONFIG, OCI_LAYER, OCI_MANIFEST};

use strata_archive::{ArchiveError, Reused};
use strata_metadata::{Labels, LeaseGuard, MetaError};
use strata_remote::Reference;
use strata_snapshot::Snapshotter;
use strata_types::oci::Manifest;
use strata_types::{Descriptor, Digest, ErrorKind};

pub use source::{DockerStore, SourceImage, SourceLayer};

use crate::images::{dangling_name, set_image_name};
use crate::store::Store;
use crate::unpack::UnpackError;

/// How long the migration's lease protects an unfinished image's layers if the process dies.
const MIGRATE_LEASE: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    #[error("{}: not a Docker data root to migrate from: {reason}", dir.display())]
    NotADockerStore { dir: PathBuf, reason: String },
    #[error("{}: {reason}", path.display())]
    BadSource { path: PathBuf, reason: String },
    #[error("read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("refusing to migrate: {0}")]
    Refused(Refusal),
    #[error("layer {chain_id}: rebuild its tar from Docker's tar-split.json.gz and diff directory")]
    Rebuild {
        chain_id: Digest,
        #[source]
        source: Box<ArchiveError>,
    },
    #[error(transparent)]
    Unpack(Box<UnpackError>),
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// Why `--threshold` refused a migration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    #[error(
        "{} has {count} container{}, and a threshold migrates only a store without containers \
         (remove them with `docker rm`, or migrate without --threshold)",
        root.display(),
        if *count == 1 { "" } else { "s" }
    )]
    Containers { root: PathBuf, count: usize },
    #[error("{} has {count} images, more than the threshold of {max}", root.display())]
    Images {
        root: PathBuf,
        count: usize,
        max: u64,
    },
    #[error(
        "{} has {} of layers, more than the threshold of {}",
        root.display(),
        strata_types::human_size(*bytes),
        strata_types::human_size(*max)
    )]
    LayerBytes { root: PathBuf, bytes: u64, max: u64 },
}

impl MigrateError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            MigrateError::NotADockerStore { .. } => ErrorKind::InvalidArgument,
            MigrateError::BadSource { .. } => ErrorKind::DataMismatch,
            MigrateError::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
                _ => ErrorKind::Unavailable,
            },
            MigrateError::Refused(_) => ErrorKind::FailedPrecondition,
            MigrateError::Rebuild { source, .. } => source.kind(),
            MigrateError::Unpack(e) => e.kind(),
            MigrateError::Meta(e) => e.kind(),
        }
    }

    fn io(path: &Path, source: std::io::Error) -> MigrateError {
        MigrateError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// The rebuild stopped because the applier stopped reading (its error is the one to
    /// report).
    fn is_broken_pipe(&self) -> bool {
        matches!(self, MigrateError::Rebuild { source, .. }
            if matches!(&**source, ArchiveError::Write { source } if source.kind() == std::io::ErrorKind::BrokenPipe))
    }
}

impl From<UnpackError> for MigrateError {
    fn from(e: UnpackError) -> Self {
        MigrateError::Unpack(Box::new(e))
    }
}

/// `--threshold`: at most this many images, or this many bytes of layers (Docker's
/// `DOCKER_MIGRATE_SNAPSHOTTER_THRESHOLD` takes the same two forms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threshold {
    Images(u64),
    Bytes(u64),
}

impl FromStr for Threshold {
    type Err = String;

    /// A plain number counts images; a number with a unit counts bytes: `b`, `k`/`kb`, `m`/
    /// `mb`, `g`/`gb`, `t`/`tb` are powers of 1000 (as Docker's `units.FromHumanSize`), `kib`,
    /// `mib`, `gib`, `tib` powers of 1024; case and a space before the unit do not matter.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let bad = || format!("{s:?}: want a number of images (10) or a size (20GB, 512MiB)");
        if unit.is_empty() {
            return number.parse().map(Threshold::Images).map_err(|_| bad());
        }
        let value: f64 = number.parse().map_err(|_| bad())?;
        let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
            "b" => 1.0,
            "k" | "kb" => 1e3,
            "m" | "mb" => 1e6,
            "g" | "gb" => 1e9,
            "t" | "tb" => 1e12,
            "kib" => 1024.0,
            "mib" => 1024.0 * 1024.0,
            "gib" => 1024.0 * 1024.0 * 1024.0,
            "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
            _ => return Err(bad()),
        };
        let bytes = value * scale;
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
            return Err(bad());
        }
        Ok(Threshold::Bytes(bytes as u64))
    }
}

/// Refuses a migration the threshold does not allow: any container in the source, or more
/// images (or bytes of layers) than it says.
pub fn check_threshold(src: &DockerStore, threshold: Threshold) -> Result<(), MigrateError> {
    let root = src.root.clone();
    let refusal = if src.containers > 0 {
        Refusal::Containers {
            root,
            count: src.containers,
        }
    } else {
        match threshold {
            Threshold::Images(max) if src.images.len() as u64 > max => Refusal::Images {
                root,
                count: src.images.len(),
                max,
            },
            Threshold::Bytes(max) if src.layer_bytes() > max => Refusal::LayerBytes {
                root,
                bytes: src.layer_bytes(),
                max,
            },
            _ => return Ok(()),
        }
    };
    Err(MigrateError::Refused(refusal))
}

/// What would happen to one image (`--dry-run`), or what happened.
#[derive(Debug, Clone)]
pub struct Planned {
    pub id: Digest,
    /// Familiar names; empty for a dangling image.
    pub names: Vec<String>,
    pub layers: usize,
    /// Layers strata has already (snapshot and blob): skipped.
    pub present: usize,
    /// Unpacked bytes of the layers to bring in.
    pub size: u64,
}

/// What `migrate` would do, image by image, without doing it.
pub fn plan(
    store: &Store,
    sn: &dyn Snapshotter,
    src: &DockerStore,
) -> Result<Vec<Planned>, MigrateError> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for image in &src.images {
        let mut planned = Planned {
            id: image.id.clone(),
            names: image.names.iter().map(Reference::familiar).collect(),
            layers: image.chain.len(),
            present: 0,
            size: 0,
        };
        for chain in &image.chain {
            if layer::present(store.content(), sn, &src.layers[chain]).is_some() {
                planned.present += 1;
            } else if seen.insert(chain.clone()) {
                planned.size += src.layers[chain].size;
            }
        }
        out.push(planned);
    }
    Ok(out)
}

/// One image migrated.
#[derive(Debug, Clone)]
pub struct Migrated {
    pub id: Digest,
    pub names: Vec<Reference>,
    /// The manifest strata made for it.
    pub target: Descriptor,
    /// Layers brought in now (the others were here already).
    pub new_layers: usize,
    /// Files of those layers cloned or hardlinked from the source rather than copied.
    pub reused: Reused,
}

/// Migrates every image of `src` into `store`, calling `done` after each. With `reuse`,
/// layer files are cloned (reflink) or hardlinked from the source where the filesystem and
/// their metadata allow; without, every file is copied.
pub fn migrate(
    store: &Store,
    sn: &dyn Snapshotter,
    src: &DockerStore,
    reuse: bool,
    mut done: impl FnMut(&Migrated),
) -> Result<Vec<Migrated>, MigrateError> {
    let content = store.content();
    let lease = crate::gc::lease(store.db(), "migrate", store.lease_expiry(MIGRATE_LEASE))?;
    let mut sizes: HashMap<Digest, u64> = HashMap::new();
    let mut out = Vec::new();
    let result = (|| {
        for image in &src.images {
            let mut new_layers = 0;
            let mut reused = Reused::default();
            let mut layers = Vec::new();
            for chain in &image.chain {
                let layer = &src.layers[chain];
                let size = match sizes.get(chain) {
                    Some(s) => *s,
                    None => {
                        let done = layer::import_layer(content, sn, layer, &lease, reuse)?;
                        new_layers += usize::from(done.new);
                        reused += done.reused;
                        sizes.insert(chain.clone(), done.size);
                        done.size
                    }
                };
                layers.push(Descriptor::new(OCI_LAYER, layer.diff_id.clone(), size));
            }
            let target = record_image(store, sn.name(), image, layers, &lease)?;
            let migrated = Migrated {
                id: image.id.clone(),
                names: image.names.clone(),
                target,
                new_layers,
                reused,
            };
            done(&migrated);
            out.push(migrated);
        }
        Ok(())
    })();
    // Recorded images hold what they need now; the rest is for garbage collection.
    drop(lease);
    result.map(|()| out)
}

/// Writes the image's config and a manifest for it, and records its names (or a dangling
/// record) with its Docker ID; returns the manifest's descriptor.
fn record_image(
    store: &Store,
    snapshotter: &str,
    image: &SourceImage,
    layers: Vec<Descriptor>,
    lease: &LeaseGuard,
) -> Result<Descriptor, MigrateError> {
    let content = store.content();
    let config_digest = crate::discard::put(content, &image.config, Some(lease))?;
    let manifest = Manifest {
        media_type: Some(OCI_MANIFEST.to_owned()),
        config: Descriptor::new(OCI_CONFIG, config_digest, image.config.len() as u64),
        layers,
        annotations: Default::default(),
    };
    let bytes = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": manifest.config,
        "layers": manifest.layers,
    }))
    .unwrap_or_default();
    let digest = crate::discard::put(content, &bytes, Some(lease))?;
    let top = image.chain.last();
    let config_labels = crate::gc::config_labels(snapshotter, top);
    if !config_labels.is_empty() {
        content.update_labels(&manifest.config.digest, &config_labels)?;
    }
    content.update_labels(&digest, &crate::gc::manifest_labels(&manifest))?;
    let target = Descriptor::new(OCI_MANIFEST, digest, bytes.len() as u64);
    let id_label = Labels::from([(
        strata_types::labels::DOCKER_IMAGE_ID.to_owned(),
        image.id.to_string(),
    )]);
    store.db().write(|tx| {
        let mut names: Vec<String> = image.names.iter().map(ToString::to_string).collect();
        if names.is_empty() && tx.images_by_target(&target.digest)?.is_empty() {
            names.push(dangling_name(&target.digest));
        }
        for name in &names {
            set_image_name(tx, name, &target)?;
            tx.put_image(name, &target, &id_label)?;
        }
        Ok(())
    })?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_count_images_or_bytes() {
        let t = |s: &str| s.parse::<Threshold>();
        assert_eq!(t("0"), Ok(Threshold::Images(0)));
        assert_eq!(t("25"), Ok(Threshold::Images(25)));
        assert_eq!(t("20GB"), Ok(Threshold::Bytes(20_000_000_000)));
        assert_eq!(t("1.5 gb"), Ok(Threshold::Bytes(1_500_000_000)));
        assert_eq!(t("10k"), Ok(Threshold::Bytes(10_000)));
        assert_eq!(t("512MiB"), Ok(Threshold::Bytes(512 << 20)));
        assert_eq!(t("7b"), Ok(Threshold::Bytes(7)));
        for bad in ["", "x", "1.5", "10XB", "-3", "1e3GB", "GB"] {
            assert!(t(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_threshold_refuses_with_a_typed_reason() {
        let mut src = DockerStore {
            root: "/var/lib/docker".into(),
            images: Vec::new(),
            layers: Default::default(),
            containers: 1,
        };
        let err = check_threshold(&src, Threshold::Images(5)).unwrap_err();
        assert!(matches!(
            &err,
            MigrateError::Refused(Refusal::Containers { count: 1, .. })
        ));
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        assert_eq!(
            err.to_string(),
            "refusing to migrate: /var/lib/docker has 1 container, and a threshold migrates \
             only a store without containers (remove them with `docker rm`, or migrate without \
             --threshold)"
        );
        src.containers = 0;
        assert!(check_threshold(&src, Threshold::Images(0)).is_ok());
        assert!(check_threshold(&src, Threshold::Bytes(0)).is_ok());
    }
}
