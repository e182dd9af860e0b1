//! The crate's error type. Apply errors name the layer (the caller's [`ApplyOptions::layer`],
//! typically the layer digest) and the tar entry; diff errors name the path.
//!
//! [`ApplyOptions::layer`]: crate::ApplyOptions::layer

use std::io;
use std::path::PathBuf;

use strata_types::ErrorKind;

/// What can go wrong applying or diffing a layer.
///
/// `entry` fields hold the entry name as it appears in the tar (lossily decoded to UTF-8), or
/// a placeholder in angle brackets (`<header>`, `<end of archive>`) when the failure happened
/// between entries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The destination directory cannot be opened.
    #[error("open destination {}", path.display())]
    Destination {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The compressed stream could not be read from the caller's reader.
    #[error("layer {layer}: read layer stream")]
    Read {
        layer: String,
        #[source]
        source: io::Error,
    },
    /// The compressed stream does not decompress.
    #[error("layer {layer}: decompress {compression} stream at entry {entry:?}")]
    Decompress {
        layer: String,
        entry: String,
        compression: &'static str,
        #[source]
        source: io::Error,
    },
    /// The stream starts with the magic bytes of a format OCI layers do not use.
    #[error("layer {layer}: unsupported compression {format} (only gzip and zstd layers exist)")]
    UnsupportedCompression { layer: String, format: &'static str },
    /// The tar stream ends in the middle of a header or of an entry's data.
    #[error("layer {layer}: truncated tar: stream ends inside entry {entry:?}")]
    Truncated { layer: String, entry: String },
    /// A header does not parse: bad checksum, bad numeric field, malformed PAX record...
    #[error("layer {layer}: corrupt tar header for entry {entry:?}: {reason}")]
    CorruptHeader {
        layer: String,
        entry: String,
        reason: String,
    },
    /// A configured [`Limits`](crate::Limits) bound was crossed (decompression bomb).
    #[error("layer {layer}: entry {entry:?}: {limit} exceeds the limit of {max}")]
    LimitExceeded {
        layer: String,
        entry: String,
        limit: &'static str,
        max: u64,
    },
    /// The entry's name, link target or whiteout is refused by the safety rules (see the crate
    /// doc and HOSTILE.md).
    #[error("layer {layer}: unsafe entry {entry:?}: {reason}")]
    UnsafeEntry {
        layer: String,
        entry: String,
        reason: &'static str,
    },
    /// A hardlink's target exists nowhere: not earlier in the layer, nor in a lower layer.
    #[error("layer {layer}: hardlink {entry:?}: target {target:?} not found")]
    HardlinkTarget {
        layer: String,
        entry: String,
        target: String,
    },
    /// A device node (or overlay whiteout) needs privilege the process lacks.
    #[error("layer {layer}: entry {entry:?}: creating {what} needs root")]
    NeedsRoot {
        layer: String,
        entry: String,
        what: &'static str,
    },
    /// An entry type or tar feature strata does not implement.
    #[error("layer {layer}: entry {entry:?}: unsupported {what}")]
    Unsupported {
        layer: String,
        entry: String,
        what: String,
    },
    /// A filesystem operation on an entry failed.
    #[error("layer {layer}: entry {entry:?}: {op}")]
    Apply {
        layer: String,
        entry: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// Less than [`ApplyOptions::min_free`](crate::ApplyOptions::min_free) is left free on
    /// the destination's filesystem: the apply stopped before filling it.
    #[error(
        "layer {layer}: entry {entry:?}: stopped unpacking: {} free on the filesystem, less \
         than the {} to keep free",
        mib(*free),
        mib(*min_free)
    )]
    NoSpace {
        layer: String,
        entry: String,
        free: u64,
        min_free: u64,
    },
    /// A filesystem operation failed while walking a tree to diff.
    #[error("diff: {op} {}", path.display())]
    Walk {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file changed size while it was being read into the diff.
    #[error("diff: {} changed while being read: expected {expected} bytes", path.display())]
    Changed { path: PathBuf, expected: u64 },
    /// A tar split (see [`rebuild_layer`](crate::rebuild_layer)) cannot be read.
    #[error("tar split: {reason}")]
    Split { reason: String },
    /// Writing the diff tar to the caller's writer failed.
    #[error("diff: write layer tar")]
    Write {
        #[source]
        source: io::Error,
    },
}

impl ArchiveError {
    /// The class of the failure, for callers matching across crates.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ArchiveError::Destination { source, .. }
            | ArchiveError::Apply { source, .. }
            | ArchiveError::Walk { source, .. } => io_kind(source),
            ArchiveError::Read { .. } | ArchiveError::Write { .. } => ErrorKind::Unavailable,
            ArchiveError::Decompress { .. }
            | ArchiveError::Truncated { .. }
            | ArchiveError::CorruptHeader { .. }
            | ArchiveError::Split { .. } => ErrorKind::DataMismatch,
            ArchiveError::UnsupportedCompression { .. }
            | ArchiveError::LimitExceeded { .. }
            | ArchiveError::UnsafeEntry { .. }
            | ArchiveError::HardlinkTarget { .. }
            | ArchiveError::Unsupported { .. } => ErrorKind::InvalidArgument,
            ArchiveError::NeedsRoot { .. } => ErrorKind::PermissionDenied,
            ArchiveError::Changed { .. } | ArchiveError::NoSpace { .. } => {
                ErrorKind::FailedPrecondition
            }
        }
    }

    /// The entry the error is about, when it is about one.
    pub fn entry(&self) -> Option<&str> {
        match self {
            ArchiveError::Decompress { entry, .. }
            | ArchiveError::Truncated { entry, .. }
            | ArchiveError::CorruptHeader { entry, .. }
            | ArchiveError::LimitExceeded { entry, .. }
            | ArchiveError::UnsafeEntry { entry, .. }
            | ArchiveError::HardlinkTarget { entry, .. }
            | ArchiveError::NeedsRoot { entry, .. }
            | ArchiveError::Unsupported { entry, .. }
            | ArchiveError::Apply { entry, .. }
            | ArchiveError::NoSpace { entry, .. } => Some(entry),
            _ => None,
        }
    }
}

/// Bytes as MiB with one decimal, for messages.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

fn io_kind(e: &io::Error) -> ErrorKind {
    match e.kind() {
        io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
        io::ErrorKind::NotFound => ErrorKind::NotFound,
        io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
        _ => ErrorKind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_layer_and_entry_without_repeating_the_source() {
        let e = ArchiveError::Apply {
            layer: "sha256:ab".into(),
            entry: "etc/passwd".into(),
            op: "create file",
            source: io::Error::from_raw_os_error(libc::ENOSPC),
        };
        let msg = e.to_string();
        assert_eq!(msg, "layer sha256:ab: entry \"etc/passwd\": create file");
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert_eq!(e.entry(), Some("etc/passwd"));
        let e = ArchiveError::UnsafeEntry {
            layer: "l".into(),
            entry: "../x".into(),
            reason: "name climbs out of the root with ..",
        };
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("\"../x\""));
    }
}
