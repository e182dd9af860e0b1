use std::path::PathBuf;

use strata_content::ContentError;
use strata_types::ErrorKind;

/// What can go wrong in the metadata layer. Variants name the record involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    #[error("open metadata database {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "metadata database {} has schema version {found}, newer than the {supported} this strata \
         knows: upgrade strata",
        path.display()
    )]
    SchemaTooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("metadata database: {op}")]
    Database {
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{what} {id} already exists")]
    AlreadyExists { what: &'static str, id: String },
    #[error("{what} {id}: {reason}")]
    FailedPrecondition {
        what: &'static str,
        id: String,
        reason: String,
    },
    /// The blob's record is kept but its file was let go (`--discard-compressed`): its bytes
    /// must be brought back (re-fetched or rebuilt) before they can be read.
    #[error(
        "blob {digest} was discarded after its layer was unpacked (--discard-compressed, \
         or a layer migrated from Docker): push and save bring it back themselves; to unpack \
         it again, pull the image again"
    )]
    Discarded { digest: strata_types::Digest },
    #[error("metadata database holds an invalid {what} {value:?}: run `strata fsck`")]
    Corrupt { what: &'static str, value: String },
    #[error(transparent)]
    Content(#[from] ContentError),
}

impl MetaError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            MetaError::NotFound { .. } | MetaError::Discarded { .. } => ErrorKind::NotFound,
            MetaError::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            MetaError::FailedPrecondition { .. } | MetaError::SchemaTooNew { .. } => {
                ErrorKind::FailedPrecondition
            }
            MetaError::Content(e) => e.kind(),
            MetaError::Open { source, .. } | MetaError::Database { source, .. } => {
                match source.sqlite_error_code() {
                    Some(
                        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked,
                    ) => ErrorKind::Unavailable,
                    Some(rusqlite::ErrorCode::PermissionDenied | rusqlite::ErrorCode::ReadOnly) => {
                        ErrorKind::PermissionDenied
                    }
                    _ => ErrorKind::Internal,
                }
            }
            MetaError::Corrupt { .. } => ErrorKind::Internal,
        }
    }

    /// SQLite's "database or disk is full" (or, on open, no room to size its shared-memory
    /// file): the filesystem under the database has no room.
    pub fn is_disk_full(&self) -> bool {
        match self {
            MetaError::Open { source, .. } | MetaError::Database { source, .. } => match source {
                rusqlite::Error::SqliteFailure(e, _) => {
                    e.code == rusqlite::ErrorCode::DiskFull
                        || e.extended_code == rusqlite::ffi::SQLITE_IOERR_SHMSIZE
                }
                _ => false,
            },
            _ => false,
        }
    }

    pub(crate) fn db(op: &'static str) -> impl FnOnce(rusqlite::Error) -> MetaError {
        move |source| MetaError::Database { op, source }
    }
}
