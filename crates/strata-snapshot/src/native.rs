//! native: every active snapshot is a full copy of its parent (the vfs of this world). Slow
//! and large, works on any filesystem; where the filesystem can share extents (`FICLONE`:
//! btrfs, XFS, bcachefs) the copy is a reflink and costs little.
//!
//! Mounts are bind mounts of the snapshot's `fs/`. A view binds its parent's `fs/` read-only
//! instead of copying it: a committed snapshot never changes, and it cannot be removed while
//! the view stands on it.

use std::path::{Path, PathBuf};

use crate::engine::Backend;
use crate::error::FsError;
use crate::{ApplyTarget, Mount, SnapshotKind, copy, fsutil};

#[derive(Debug)]
pub(crate) struct Native;

impl Backend for Native {
    fn name(&self) -> &'static str {
        "native"
    }

    fn create(&self, dir: &Path, kind: SnapshotKind, parents: &[PathBuf]) -> Result<(), FsError> {
        let fs = dir.join("fs");
        match (kind, parents.first()) {
            (SnapshotKind::Active, Some(parent)) => copy::copy_tree(parent, &fs),
            _ => fsutil::mkdir(&fs, 0o755),
        }
    }

    fn mounts(&self, dir: &Path, kind: SnapshotKind, parents: &[PathBuf]) -> Vec<Mount> {
        vec![bind_mount(dir, kind, parents)]
    }

    fn apply_target(&self, dir: &Path, _parents: &[PathBuf]) -> ApplyTarget {
        full_copy_target(dir)
    }
}

/// The mount of a snapshot that is a full tree (native, btrfs).
pub(crate) fn bind_mount(dir: &Path, kind: SnapshotKind, parents: &[PathBuf]) -> Mount {
    match (kind, parents.first()) {
        (SnapshotKind::View, Some(parent)) => Mount::bind(parent, true),
        (SnapshotKind::View, None) => Mount::bind(dir.join("fs"), true),
        _ => Mount::bind(dir.join("fs"), false),
    }
}

pub(crate) fn full_copy_target(dir: &Path) -> ApplyTarget {
    ApplyTarget {
        dir: dir.join("fs"),
        overlay_whiteouts: false,
        lowers: Vec::new(),
        synced: false,
    }
}
