//! Read-only binds on a runtime without `rro` (runc 1.0, others): strata makes them
//! recursively read-only itself.
//!
//! `create` points each read-only bind of the spec at `<dir>/ro-binds/<n>` and records the
//! real sources in container.json ([`ContainerConfig::staged_ro_binds`]). Each `start`
//! mounts there a copy of the source's mount tree, read-only at every level
//! ([`strata_mount::bind_read_only_recursive`]) — at start, not at create, because the mounts
//! under a source change between runs and none survive a reboot — and the runtime binds the
//! copy `ro`. The copies are detached wherever the root filesystem is unmounted
//! ([`super::rootfs::unmount`]). A kernel without `mount_setattr` (before 5.12) and a runtime
//! without `rro` cannot do either: such binds are refused, never mounted writable.
//!
//! [`ContainerConfig::staged_ro_binds`]: super::config::ContainerConfig::staged_ro_binds

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use strata_mount::UnmountFlags;
use strata_runtime::spec::{self, BindAccess, BindMount};

use super::{ContainerError, dir};
use crate::store::Store;

/// `<dir>/ro-binds/<n>`: where the n-th staged bind is mounted while the container runs.
pub fn staged_path(root: &Path, id: &str, n: usize) -> PathBuf {
    staged_dir(root, id).join(n.to_string())
}

fn staged_dir(root: &Path, id: &str) -> PathBuf {
    dir(root, id).join("ro-binds")
}

/// Makes `mounts` (the spec's binds of container `id`) recursively read-only on `runtime`:
/// unchanged when the runtime knows `rro`; else each read-only bind is pointed at its staged
/// path and its source returned, in order, for [`stage`].
pub fn plan(
    store: &Store,
    runtime: &str,
    id: &str,
    mounts: &mut [BindMount],
) -> Result<Vec<PathBuf>, ContainerError> {
    if !mounts.iter().any(|m| m.access == BindAccess::ReadOnly) {
        return Ok(Vec::new());
    }
    let rt = super::lifecycle::runtime_for(store.root(), runtime)?;
    if rt
        .mount_options()?
        .iter()
        .any(|o| o == spec::RECURSIVE_READ_ONLY)
    {
        return Ok(Vec::new());
    }
    if !strata_mount::can_bind_read_only_recursive() {
        let version = rt.version().unwrap_or_default();
        return Err(ContainerError::NoRecursiveReadOnly(
            format!("{runtime} {version}").trim().to_owned(),
        ));
    }
    tracing::debug!("runtime {runtime} has no rro: staging read-only binds");
    let mut sources = Vec::new();
    for m in mounts
        .iter_mut()
        .filter(|m| m.access == BindAccess::ReadOnly)
    {
        let staged = staged_path(store.root(), id, sources.len());
        sources.push(std::mem::replace(&mut m.source, staged));
        m.access = BindAccess::ReadOnlyStaged;
    }
    Ok(sources)
}

/// Mounts the recursively read-only copy of each of `sources` at its staged path, after
/// detaching whatever an earlier run left there. On failure nothing stays mounted.
pub fn stage(root: &Path, id: &str, sources: &[PathBuf]) -> Result<(), ContainerError> {
    unstage(root, id)?;
    if sources.is_empty() {
        return Ok(());
    }
    strata_runtime::files::private_dir(&staged_dir(root, id))
        .map_err(|e| ContainerError::io("create the staged read-only binds' directory", e))?;
    let staged = sources.iter().enumerate().try_for_each(|(n, source)| {
        let target = staged_path(root, id, n);
        mount_point(&target, source)
            .map_err(|e| ContainerError::io("create a read-only bind's mount point", e))?;
        strata_mount::bind_read_only_recursive(source, &target)?;
        Ok(())
    });
    if staged.is_err()
        && let Err(e) = unstage(root, id)
    {
        tracing::warn!("container {id}: {e}");
    }
    staged
}

/// An empty directory at `target`, or an empty file when `source` is not a directory (the
/// kind may have changed since the last run). A missing source gets a directory: the mount
/// then fails naming the source.
fn mount_point(target: &Path, source: &Path) -> io::Result<()> {
    // Only an empty directory or a file of ours goes: nothing is mounted here any more.
    match fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => fs::remove_dir(target)?,
        Ok(_) => fs::remove_file(target)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if fs::metadata(source).is_ok_and(|m| !m.is_dir()) {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(target)
            .map(drop)
    } else {
        fs::create_dir(target)
    }
}

/// Detaches every staged copy of container `id`; none staged is fine.
pub fn unstage(root: &Path, id: &str) -> Result<(), ContainerError> {
    let entries = match fs::read_dir(staged_dir(root, id)) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ContainerError::io("read the staged read-only binds", e)),
    };
    for entry in entries {
        let path = entry
            .map_err(|e| ContainerError::io("read the staged read-only binds", e))?
            .path();
        strata_mount::unmount_all(&path, UnmountFlags::DETACH)?;
    }
    Ok(())
}
