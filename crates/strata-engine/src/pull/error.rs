//! What can go wrong in a pull. Every message names what failed: the reference, the blob.

use strata_metadata::MetaError;
use strata_remote::RemoteError;
use strata_types::{Digest, ErrorKind};

use crate::unpack::UnpackError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PullError {
    #[error("start the network runtime")]
    Runtime(#[source] std::io::Error),
    /// The registry said no, or could not be reached; the message names the reference.
    #[error(transparent)]
    Remote(Box<RemoteError>),
    #[error("{reference}: media type {media_type:?} is neither an image manifest nor an index")]
    MediaType {
        reference: String,
        media_type: String,
    },
    #[error(
        "{reference}: no matching manifest for {wanted} in the manifest list entries (available: {})",
        if available.is_empty() { "none".to_owned() } else { available.join(", ") }
    )]
    NoPlatform {
        reference: String,
        wanted: String,
        available: Vec<String>,
    },
    #[error(
        "image with reference {reference} was found but does not match the specified platform: wanted {wanted}, actual: {actual}"
    )]
    PlatformMismatch {
        reference: String,
        wanted: String,
        actual: String,
    },
    /// Storing a blob failed (a digest or size mismatch is reported here, by the store).
    #[error("store blob {digest}")]
    Store {
        digest: Digest,
        #[source]
        source: Box<MetaError>,
    },
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error(transparent)]
    Meta(#[from] MetaError),
}

impl PullError {
    pub(crate) fn remote(e: RemoteError) -> PullError {
        PullError::Remote(Box::new(e))
    }

    pub(crate) fn store(digest: &Digest) -> impl Fn(MetaError) -> PullError + '_ {
        move |source| PullError::Store {
            digest: digest.clone(),
            source: Box::new(source),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            PullError::Runtime(_) => ErrorKind::Internal,
            PullError::Remote(e) => e.kind(),
            PullError::Store { source, .. } => source.kind(),
            PullError::Unpack(e) => e.kind(),
            PullError::Meta(e) => e.kind(),
            PullError::NoPlatform { .. } | PullError::PlatformMismatch { .. } => {
                ErrorKind::NotFound
            }
            PullError::MediaType { .. } => ErrorKind::InvalidArgument,
        }
    }
}
