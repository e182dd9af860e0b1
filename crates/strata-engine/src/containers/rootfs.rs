//! The container's root filesystem: its writable snapshot mounted at `<dir>/rootfs` while
//! it runs, or briefly for `create` (users, volume content) and for commands that read it.

use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, StatxAttributes, StatxFlags, statx};
use strata_metadata::ContainerRecord;
use strata_mount::UnmountFlags;
use strata_snapshot::Snapshotter;

use super::{ContainerError, dir};
use crate::store::Store;

/// `<dir>/rootfs`.
pub fn path(store: &Store, id: &str) -> PathBuf {
    dir(store.root(), id).join("rootfs")
}

/// True when `path` is the root of a mount (statx's `STATX_ATTR_MOUNT_ROOT`).
pub fn is_mounted(path: &Path) -> bool {
    statx(
        rustix::fs::CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS,
    )
    .is_ok_and(|s| {
        s.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT)
            && s.stx_attributes.contains(StatxAttributes::MOUNT_ROOT)
    })
}

/// Mounts the container's writable snapshot at `<dir>/rootfs` unless it is mounted already.
pub fn mount(
    store: &Store,
    sn: &dyn Snapshotter,
    record: &ContainerRecord,
) -> Result<PathBuf, ContainerError> {
    let target = path(store, &record.id);
    if is_mounted(&target) {
        return Ok(target);
    }
    let key = record
        .snapshot_key
        .as_deref()
        .ok_or_else(|| ContainerError::NoSnapshot(record.id.clone()))?;
    let mounts = sn.mounts(key)?;
    strata_runtime::files::private_dir(&target)
        .map_err(|e| ContainerError::io("create rootfs", e))?;
    strata_mount::mount_all(&mounts, &target)?;
    Ok(target)
}

/// Unmounts `<dir>/rootfs` (everything stacked there) and the read-only binds staged for
/// the run ([`super::ro_binds`]); nothing mounted is fine.
pub fn unmount(root: &Path, id: &str) -> Result<(), ContainerError> {
    let target = dir(root, id).join("rootfs");
    let rootfs = strata_mount::unmount_all(&target, UnmountFlags::NONE)
        .or_else(|_| strata_mount::unmount_all(&target, UnmountFlags::DETACH));
    super::ro_binds::unstage(root, id)?;
    Ok(rootfs?)
}

/// Runs `f` on the container's mounted root filesystem: the running container's own mount,
/// or one made for `f` and removed after it.
pub fn with_rootfs<T>(
    store: &Store,
    sn: &dyn Snapshotter,
    record: &ContainerRecord,
    f: impl FnOnce(&Path) -> T,
) -> Result<T, ContainerError> {
    let target = path(store, &record.id);
    if is_mounted(&target) {
        return Ok(f(&target));
    }
    let target = mount(store, sn, record)?;
    let out = f(&target);
    unmount(store.root(), &record.id)?;
    Ok(out)
}
