use std::io;
use std::path::PathBuf;

use strata_metadata::MetaError;
use strata_types::ErrorKind;

/// What can go wrong in a snapshotter. Variants name the snapshot key (or the path).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// A metadata operation failed; its error says how (not found, exists, has children, ...).
    #[error("{op} snapshot {key}")]
    Metadata {
        op: &'static str,
        key: String,
        #[source]
        source: Box<MetaError>,
    },
    #[error("{op} snapshot {key}: not found")]
    NotFound { op: &'static str, key: String },
    #[error("{op} snapshot {key}: {reason}")]
    FailedPrecondition {
        op: &'static str,
        key: String,
        reason: String,
    },
    #[error("{op} snapshot {key:?}: {reason}")]
    InvalidArgument {
        op: &'static str,
        key: String,
        reason: &'static str,
    },
    #[error("{op} snapshot {key}: {what} {}", path.display())]
    Io {
        op: &'static str,
        key: String,
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("snapshot cleanup: {what} {}", path.display())]
    Cleanup {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("open {name} snapshotter: {what} {}", path.display())]
    Open {
        name: &'static str,
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "open btrfs snapshotter: {} is not on a btrfs filesystem (filesystem magic {magic:#x}); \
         mount one there or choose another snapshotter",
        path.display()
    )]
    NotBtrfs { path: PathBuf, magic: u64 },
    #[error("unknown snapshotter {name:?} (known: overlayfs, native, btrfs)")]
    UnknownSnapshotter { name: String },
}

impl SnapshotError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SnapshotError::Metadata { source, .. } => source.kind(),
            SnapshotError::NotFound { .. } => ErrorKind::NotFound,
            SnapshotError::FailedPrecondition { .. } | SnapshotError::NotBtrfs { .. } => {
                ErrorKind::FailedPrecondition
            }
            SnapshotError::InvalidArgument { .. } | SnapshotError::UnknownSnapshotter { .. } => {
                ErrorKind::InvalidArgument
            }
            SnapshotError::Io { source, .. }
            | SnapshotError::Cleanup { source, .. }
            | SnapshotError::Open { source, .. } => match source.kind() {
                io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
                io::ErrorKind::NotFound => ErrorKind::NotFound,
                _ => ErrorKind::Internal,
            },
        }
    }
}

/// A filesystem step that failed, before the engine adds which snapshot it was for.
#[derive(Debug)]
pub(crate) struct FsError {
    pub what: &'static str,
    pub path: PathBuf,
    pub source: io::Error,
}

impl FsError {
    pub fn new(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> FsError {
        FsError {
            what,
            path: path.into(),
            source,
        }
    }

    /// `map_err` helper: `.map_err(FsError::at("copy", &path))`.
    pub fn at(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> FsError {
        let path = path.into();
        move |source| FsError { what, path, source }
    }

    pub fn for_snapshot(self, op: &'static str, key: &str) -> SnapshotError {
        SnapshotError::Io {
            op,
            key: key.to_owned(),
            what: self.what,
            path: self.path,
            source: self.source,
        }
    }

    pub fn for_cleanup(self) -> SnapshotError {
        SnapshotError::Cleanup {
            what: self.what,
            path: self.path,
            source: self.source,
        }
    }
}
