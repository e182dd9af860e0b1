//! What `ps` shows: each container's record, settings, state and sizes.
//!
//! SIZE is Docker's storage-driver definition: the bytes of the files in the writable layer
//! (apparent sizes, directories not counted, a hardlinked inode once), so `printf hello >
//! /out.txt` makes it `5B`; the virtual size adds the image's unpacked size (the disk usage of
//! its layer snapshots, the figure `images` shows).

use std::collections::{HashMap, HashSet};
use std::os::fd::AsFd;
use std::path::Path;

use strata_metadata::ContainerRecord;
use strata_runtime::state::ContainerState;
use strata_snapshot::Snapshotter;

use super::config::ContainerConfig;
use super::lifecycle::reconcile;
use super::{ContainerError, dir};
use crate::store::Store;

/// One container for `ps`/`inspect`.
#[derive(Debug, Clone)]
pub struct ContainerSummary {
    pub record: ContainerRecord,
    /// Missing only for a container whose `create` was interrupted.
    pub config: Option<ContainerConfig>,
    pub state: ContainerState,
}

/// Every container, oldest first, with stale state cleaned up.
pub fn list(store: &Store, sn: &dyn Snapshotter) -> Result<Vec<ContainerSummary>, ContainerError> {
    let records = store.db().read(|tx| tx.containers())?;
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        out.push(summary(store, sn, record)?);
    }
    Ok(out)
}

/// One container's summary.
pub fn summary(
    store: &Store,
    sn: &dyn Snapshotter,
    record: ContainerRecord,
) -> Result<ContainerSummary, ContainerError> {
    let state = reconcile(store, sn, &record)?;
    let config = ContainerConfig::read(&dir(store.root(), &record.id)).ok();
    Ok(ContainerSummary {
        record,
        config,
        state,
    })
}

/// Sizes of containers, sharing the image sizes between them.
#[derive(Debug, Default)]
pub struct Sizes {
    layers: HashMap<String, u64>,
}

impl Sizes {
    /// (size of the writable layer, virtual size) of the container.
    pub fn of(&mut self, sn: &dyn Snapshotter, record: &ContainerRecord) -> (u64, u64) {
        let Some(key) = &record.snapshot_key else {
            return (0, 0);
        };
        let rw = writable_size(sn, key).unwrap_or_else(|e| {
            tracing::debug!("size of {key}: {e}");
            0
        });
        let mut image = 0;
        let mut parent = sn.stat(key).ok().and_then(|i| i.parent);
        // The init layer (mount points) is the container's, not the image's.
        if parent.as_deref() == Some(super::create::init_name(&record.id).as_str()) {
            parent = parent.and_then(|p| sn.stat(&p).ok()).and_then(|i| i.parent);
        }
        while let Some(p) = parent {
            image += *self
                .layers
                .entry(p.clone())
                .or_insert_with(|| sn.usage(&p).map(|u| u.size).unwrap_or(0));
            parent = sn.stat(&p).ok().and_then(|i| i.parent);
        }
        (rw, rw + image)
    }
}

/// The bytes of the files in an active snapshot's own layer.
pub fn writable_size(sn: &dyn Snapshotter, key: &str) -> Result<u64, ContainerError> {
    let mounts = sn.mounts(key)?;
    let upper = mounts.iter().find_map(|m| {
        m.options
            .iter()
            .find_map(|o| o.strip_prefix("upperdir=").map(std::path::PathBuf::from))
    });
    match upper {
        Some(upper) => {
            apparent_size(&upper).map_err(|e| ContainerError::io("measure the writable layer", e))
        }
        // native, btrfs: the writable layer is a full tree; its own bytes are the changes.
        None => super::changes::changed_size(sn, key),
    }
}

/// Sum of the sizes of everything but directories under `root`, each inode once. Walks
/// through directory fds: a writable layer can be deeper than `PATH_MAX`.
pub fn apparent_size(root: &Path) -> std::io::Result<u64> {
    let top = strata_fs::open_dir(root)?;
    let mut seen = HashSet::new();
    let mut total = 0;
    strata_fs::walk(top.as_fd(), |m| {
        if strata_fs::file_type(m) == rustix::fs::FileType::Directory {
            return true;
        }
        if m.st_nlink < 2 || seen.insert((m.st_dev, m.st_ino)) {
            total += u64::try_from(m.st_size).unwrap_or(0);
        }
        false
    })?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn apparent_size_counts_files_once_and_not_directories() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("a/b")).unwrap();
        fs::write(t.path().join("out.txt"), b"hello").unwrap();
        fs::write(t.path().join("a/b/f"), vec![0u8; 1000]).unwrap();
        fs::hard_link(t.path().join("a/b/f"), t.path().join("a/link")).unwrap();
        std::os::unix::fs::symlink("out.txt", t.path().join("sym")).unwrap();
        assert_eq!(
            apparent_size(t.path()).unwrap(),
            5 + 1000 + "out.txt".len() as u64
        );
    }
}
