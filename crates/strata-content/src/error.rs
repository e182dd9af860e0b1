use std::io;
use std::path::PathBuf;

use strata_types::{Digest, ErrorKind, PathIoError};

/// What can go wrong in the content store. Each variant names the blob, ingest or path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContentError {
    #[error("blob {0} not found")]
    NotFound(Digest),
    #[error("blob {0} already exists")]
    AlreadyExists(Digest),
    #[error("ingest {0:?} not found")]
    IngestNotFound(String),
    #[error("ingest {0:?} is being written by another process")]
    IngestLocked(String),
    #[error("invalid ingest ref {0:?}: must be 1 to 1024 bytes")]
    InvalidRef(String),
    #[error("ingest {ingest:?}: size mismatch: expected {expected} bytes, got at least {actual}")]
    TooLarge {
        ingest: String,
        expected: u64,
        actual: u64,
    },
    #[error(
        "commit ingest {ingest:?}: truncated: expected {expected} bytes, got {actual}; \
         the partial data is kept, write the rest to resume"
    )]
    Truncated {
        ingest: String,
        expected: u64,
        actual: u64,
    },
    #[error("commit ingest {ingest:?}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        ingest: String,
        expected: u64,
        actual: u64,
    },
    #[error("commit ingest {ingest:?}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        ingest: String,
        expected: Digest,
        actual: Digest,
    },
    #[error(transparent)]
    Io(#[from] PathIoError),
}

impl ContentError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ContentError::NotFound(_) | ContentError::IngestNotFound(_) => ErrorKind::NotFound,
            ContentError::AlreadyExists(_) => ErrorKind::AlreadyExists,
            ContentError::IngestLocked(_) => ErrorKind::Unavailable,
            ContentError::InvalidRef(_) => ErrorKind::InvalidArgument,
            ContentError::TooLarge { .. }
            | ContentError::Truncated { .. }
            | ContentError::SizeMismatch { .. }
            | ContentError::DigestMismatch { .. } => ErrorKind::DataMismatch,
            ContentError::Io(e) => e.kind(),
        }
    }

    /// A `map_err` adapter: an I/O failure to `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let at = PathIoError::at(op, path);
        move |source| ContentError::Io(at(source))
    }
}
