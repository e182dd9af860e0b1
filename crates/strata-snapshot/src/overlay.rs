//! overlayfs: one directory per layer, stacked at mount time.
//!
//! - active, no parent: a read-write bind mount of its own `fs/`.
//! - active on parents: `overlay` with `lowerdir=` the parents (topmost first), `upperdir=`
//!   its `fs/`, `workdir=` its `work/`, `index=off`.
//! - view, no parent: a read-only bind mount of its own (empty) `fs/`; on one parent: a
//!   read-only bind mount of the parent's `fs/`; on more: a read-only overlay of lowerdirs.
//!
//! Stacks of any depth the kernel allows (500 layers) mount: `strata-mount` passes layers
//! one by one through the new mount API rather than in one page-limited options string.
//! `userxattr` is not set: strata runs as root, and overlay's `trusted.*` xattrs are what the
//! unpacker writes for opaque directories.

use std::path::{Path, PathBuf};

use crate::engine::Backend;
use crate::error::FsError;
use crate::fsutil;
use crate::{ApplyTarget, Mount, SnapshotKind};

#[derive(Debug)]
pub(crate) struct Overlay;

impl Backend for Overlay {
    fn name(&self) -> &'static str {
        "overlayfs"
    }

    fn create(&self, dir: &Path, kind: SnapshotKind, parents: &[PathBuf]) -> Result<(), FsError> {
        let fs = dir.join("fs");
        fsutil::mkdir(&fs, 0o755)?;
        self.rebased(dir, parents)?;
        if kind == SnapshotKind::Active {
            // overlayfs's own scratch: nobody else's business (0700, as Docker's overlay2).
            fsutil::mkdir(&dir.join("work"), 0o700)?;
        }
        Ok(())
    }

    fn mounts(&self, dir: &Path, kind: SnapshotKind, parents: &[PathBuf]) -> Vec<Mount> {
        let fs = dir.join("fs");
        let mount = match (kind, parents) {
            (SnapshotKind::View, []) => Mount::bind(fs, true),
            (SnapshotKind::View, [only]) => Mount::bind(only, true),
            (SnapshotKind::View, _) => Mount::overlay(parents, None),
            (_, []) => Mount::bind(fs, false),
            (_, _) => Mount::overlay(parents, Some((&fs, &dir.join("work")))),
        };
        vec![mount]
    }

    /// A layer is its own directory, stacked only at mount time: it may be filled before its
    /// parent exists and moved onto it afterwards.
    fn can_rebase(&self) -> bool {
        true
    }

    fn rebased(&self, dir: &Path, parents: &[PathBuf]) -> Result<(), FsError> {
        if let Some(top) = parents.first() {
            // The merged root takes the upper dir's owner and mode (layers never set the
            // root: the applier ignores its entry).
            fsutil::copy_owner_and_mode(top, &dir.join("fs"))?;
        }
        Ok(())
    }

    fn apply_target(&self, dir: &Path, parents: &[PathBuf]) -> ApplyTarget {
        ApplyTarget {
            dir: dir.join("fs"),
            overlay_whiteouts: true,
            lowers: parents.to_vec(),
            synced: false,
        }
    }
}
