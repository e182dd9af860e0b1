use std::io;
use std::path::PathBuf;

use strata_types::{ErrorKind, PathIoError};

/// What can go wrong mounting or unmounting. Each variant names the mount kind and target.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MountError {
    /// A mount system call failed; `detail` is what the kernel logged for the filesystem
    /// context (overlay explains a bad layer there), or empty.
    #[error("mount {kind}{} on {}{}", from_part(kind, from), target.display(), kernel_says(detail))]
    Mount {
        kind: String,
        from: PathBuf,
        target: PathBuf,
        detail: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "mount {kind} on {}: {len} bytes of options do not fit mount(2)'s {max}, and this \
         kernel cannot take overlay layers one by one (lowerdir+ needs Linux 6.8)",
        target.display()
    )]
    OptionsTooLong {
        kind: String,
        target: PathBuf,
        len: usize,
        max: usize,
    },
    #[error("mount {kind} on {}: invalid option {option:?}: {reason}", target.display())]
    InvalidOption {
        kind: String,
        target: PathBuf,
        option: String,
        reason: &'static str,
    },
    #[error("unmount {}", target.display())]
    Unmount {
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Io(PathIoError),
}

/// The source, unless it only repeats the kind (`overlay` from `overlay`).
fn from_part(kind: &str, from: &std::path::Path) -> String {
    if from.as_os_str() == kind {
        String::new()
    } else {
        format!(" {}", from.display())
    }
}

fn kernel_says(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

impl MountError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            MountError::Mount { source, .. } | MountError::Unmount { source, .. } => {
                io_kind(source)
            }
            MountError::Io(e) => io_kind(&e.source),
            MountError::OptionsTooLong { .. } | MountError::InvalidOption { .. } => {
                ErrorKind::InvalidArgument
            }
        }
    }
}

fn io_kind(e: &io::Error) -> ErrorKind {
    match e.raw_os_error() {
        Some(libc_errno) if libc_errno == rustix::io::Errno::PERM.raw_os_error() => {
            ErrorKind::PermissionDenied
        }
        Some(libc_errno) if libc_errno == rustix::io::Errno::BUSY.raw_os_error() => {
            ErrorKind::Unavailable
        }
        _ => match e.kind() {
            io::ErrorKind::InvalidInput => ErrorKind::InvalidArgument,
            _ => ErrorKind::from_io(e),
        },
    }
}
