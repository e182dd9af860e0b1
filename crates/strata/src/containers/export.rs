//! `export`: the container's root filesystem, flattened into one tar (the image's layers and
//! the writable layer merged, whiteouts applied), as `docker export` writes it.

use std::io::Write;

use strata_metadata::ContainerRecord;
use strata_snapshot::Snapshotter;

use super::{ContainerError, rootfs};
use crate::store::Store;

/// Writes the flattened filesystem of `record` to `w`; returns the bytes written.
pub fn export(
    store: &Store,
    sn: &dyn Snapshotter,
    record: &ContainerRecord,
    w: impl Write,
) -> Result<u64, ContainerError> {
    let empty = tempfile::tempdir_in(store.root())
        .map_err(|e| ContainerError::io("create a temporary directory", e))?;
    let stats = rootfs::with_rootfs(store, sn, record, |root| {
        // Everything of `root` is "new" against an empty tree: a full, deterministic tar.
        strata_archive::diff_trees(empty.path(), root, w)
    })?
    .map_err(|e| ContainerError::io("export the root filesystem", std::io::Error::other(e)))?;
    Ok(stats.bytes)
}
