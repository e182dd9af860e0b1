//! `export`: the container's root filesystem, flattened into one tar (the image's layers and
//! the writable layer merged, whiteouts applied), as `docker export` writes it. A running
//! container is read as it runs (not paused, as Docker), safely: see `strata_archive::tar_tree`.

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
    // The whole tree, read through directory fds: a running container that swaps a
    // directory for a symlink meanwhile gets the symlink exported, never what it points at.
    let stats = rootfs::with_rootfs(store, sn, record, |root| strata_archive::tar_tree(root, w))?
        .map_err(|e| {
        ContainerError::io("export the root filesystem", std::io::Error::other(e))
    })?;
    Ok(stats.bytes)
}
