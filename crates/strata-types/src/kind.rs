/// The class of a failure, independent of which part of the store raised it.
///
/// Each library crate's error type has a `kind()` returning one of these, the way containerd's
/// `errdefs` classify gRPC and library errors alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The object asked for does not exist.
    NotFound,
    /// The object to create exists already.
    AlreadyExists,
    /// The request is malformed (bad digest, bad name, unsupported algorithm).
    InvalidArgument,
    /// The state of the store does not allow the operation (in use, has children, locked).
    FailedPrecondition,
    /// Data did not verify (digest or size mismatch, truncated stream).
    DataMismatch,
    /// The operation needs a privilege the process lacks.
    PermissionDenied,
    /// A resource is busy or unreachable; retrying later may succeed.
    Unavailable,
    /// Anything else: an I/O or database failure.
    Internal,
}

impl ErrorKind {
    /// The class of an OS error: missing, not allowed, or anything else (internal). Crates
    /// whose operations give other errors a meaning (EBUSY for a mount) match those first.
    pub fn from_io(e: &std::io::Error) -> ErrorKind {
        match e.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            _ => ErrorKind::Internal,
        }
    }
}
