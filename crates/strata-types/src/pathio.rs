//! The one shape of an I/O failure on a named path, shared by the crates' error enums (each
//! wraps it in its own `Io` variant) instead of a copy of the same three fields in each.

use std::io;
use std::path::PathBuf;

use crate::ErrorKind;

/// What was being done (`op`: "open", "write ingest"), on which path, and the OS's error.
/// Displays as `op path`; the OS error is its source.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}", path.display())]
pub struct PathIoError {
    pub op: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl PathIoError {
    pub fn new(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> PathIoError {
        PathIoError {
            op,
            path: path.into(),
            source,
        }
    }

    /// A `map_err` adapter: `.map_err(PathIoError::at("read", &path))`.
    pub fn at(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> PathIoError {
        let path = path.into();
        move |source| PathIoError { op, path, source }
    }

    /// The class of the OS error (see [`ErrorKind::from_io`]).
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::from_io(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_op_and_path_with_the_os_error_as_source() {
        let e = PathIoError::at("open", "/x/y")(io::Error::from(io::ErrorKind::NotFound));
        assert_eq!(e.to_string(), "open /x/y");
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(
            source,
            Some(io::Error::from(io::ErrorKind::NotFound).to_string())
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let denied = PathIoError::new("write", "/z", io::Error::from_raw_os_error(13));
        assert_eq!(denied.kind(), ErrorKind::PermissionDenied);
        let full = PathIoError::new("write", "/z", io::Error::from_raw_os_error(28));
        assert_eq!(full.kind(), ErrorKind::Internal);
    }
}
