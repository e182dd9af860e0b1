//! Containers: an image plus its own copy-on-write writable layer, run by an OCI runtime.
//!
//! A container is a record in the metadata database ([`strata_metadata::ContainerRecord`]),
//! an *active* snapshot keyed by the container's id on the image's top chainID (its writable
//! layer), and a directory under the store root that is its OCI bundle and its state (laid
//! out by [`strata_runtime`]). The record pins the image and the snapshot: `rmi` refuses and
//! garbage collection keeps both while the container exists.
//!
//! ```text
//! <root>/containers/<id>/     bundle + state (see strata_runtime)
//! <root>/runtime/<name>/      the OCI runtime's own state (runc --root)
//! ```

use std::path::{Path, PathBuf};

use strata_metadata::{ContainerRecord, MetaError, Tx};
use strata_types::ErrorKind;

/// Container errors, with Docker's wording where scripts match it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContainerError {
    #[error("No such container: {0}")]
    NotFound(String),
    #[error("multiple containers found with provided prefix: {0}")]
    Ambiguous(String),
    #[error(transparent)]
    Meta(#[from] MetaError),
}

impl ContainerError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ContainerError::NotFound(_) | ContainerError::Ambiguous(_) => ErrorKind::NotFound,
            ContainerError::Meta(e) => e.kind(),
        }
    }
}

/// The directory of container `id`: its OCI bundle and state.
pub fn dir(root: &Path, id: &str) -> PathBuf {
    root.join("containers").join(id)
}

/// The container `arg` names, as Docker resolves it: a full id, a name (with or without a
/// leading `/`), else a unique id prefix.
pub fn lookup(tx: &Tx<'_>, arg: &str) -> Result<ContainerRecord, ContainerError> {
    if let Some(c) = tx.container(arg)? {
        return Ok(c);
    }
    if let Some(c) = tx.container_by_name(arg.strip_prefix('/').unwrap_or(arg))? {
        return Ok(c);
    }
    let hex = !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_hexdigit());
    if hex {
        let mut found = tx.containers()?.into_iter().filter(|c| c.id.starts_with(arg));
        if let Some(c) = found.next() {
            return match found.next() {
                None => Ok(c),
                Some(_) => Err(ContainerError::Ambiguous(arg.to_owned())),
            };
        }
    }
    Err(ContainerError::NotFound(arg.to_owned()))
}
