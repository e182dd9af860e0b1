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

pub mod changes;
pub mod commit;
pub mod config;
pub mod copy;
pub mod create;
pub mod export;
pub mod lifecycle;
pub mod list;
pub mod logs;
pub mod names;
pub mod ro_binds;
pub mod rootfs;

use std::path::{Path, PathBuf};

use strata_metadata::{ContainerRecord, MetaError, Tx};
use strata_types::ErrorKind;

use crate::unpack::UnpackError;

/// Container errors, with Docker's wording where scripts match it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContainerError {
    #[error("No such container: {0}")]
    NotFound(String),
    #[error("multiple containers found with provided prefix: {0}")]
    Ambiguous(String),
    #[error("No such image: {0}")]
    ImageNotFound(String),
    #[error("image {0} has no manifest for this machine's platform in the store")]
    PlatformMissing(String),
    #[error("image {name}")]
    Image {
        name: String,
        #[source]
        source: Box<UnpackError>,
    },
    #[error("Invalid container name ({0}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName(String),
    #[error("Conflict. The container name \"/{0}\" is already in use: {1}")]
    NameInUse(String, String),
    #[error("container {0} has no writable layer")]
    NoSnapshot(String),
    #[error("container {0} is already running")]
    AlreadyRunning(String),
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error(
        "cannot remove container \"/{0}\": container is running: stop the container before removing or force remove"
    )]
    RemoveRunning(String),
    #[error(
        "read-only mounts must be recursively read-only, and neither the OCI runtime ({0}: it \
         lists no \"rro\" mount option) nor this kernel (it has no mount_setattr) can make them \
         so: use runc 1.1 or later, or Linux 5.12 or later"
    )]
    NoRecursiveReadOnly(String),
    #[error("commit: {0}")]
    Commit(String),
    #[error("{0}")]
    Copy(String),
    #[error("{what}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Spec(#[from] strata_runtime::spec::SpecError),
    #[error(transparent)]
    LogOpt(#[from] strata_runtime::logs::LogOptError),
    #[error(transparent)]
    Volume(#[from] crate::volumes::VolumeError),
    #[error(transparent)]
    Runtime(#[from] strata_runtime::runc::RuntimeError),
    #[error(transparent)]
    Snapshot(#[from] strata_snapshot::SnapshotError),
    #[error(transparent)]
    Mount(#[from] strata_mount::MountError),
    #[error(transparent)]
    Meta(#[from] MetaError),
}

impl ContainerError {
    pub(crate) fn io(what: &'static str, source: std::io::Error) -> ContainerError {
        ContainerError::Io { what, source }
    }

    pub(crate) fn image(name: &str, source: UnpackError) -> ContainerError {
        ContainerError::Image {
            name: name.to_owned(),
            source: Box::new(source),
        }
    }
}

impl ContainerError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ContainerError::NotFound(_)
            | ContainerError::Ambiguous(_)
            | ContainerError::ImageNotFound(_)
            | ContainerError::PlatformMissing(_)
            | ContainerError::NoSnapshot(_) => ErrorKind::NotFound,
            ContainerError::InvalidName(_) | ContainerError::LogOpt(_) => {
                ErrorKind::InvalidArgument
            }
            ContainerError::NameInUse(..) => ErrorKind::AlreadyExists,
            ContainerError::AlreadyRunning(_)
            | ContainerError::NotRunning(_)
            | ContainerError::RemoveRunning(_)
            | ContainerError::NoRecursiveReadOnly(_) => ErrorKind::FailedPrecondition,
            ContainerError::Image { source, .. } => source.kind(),
            ContainerError::Volume(e) => e.kind(),
            ContainerError::Copy(_) => ErrorKind::InvalidArgument,
            ContainerError::Snapshot(e) => e.kind(),
            ContainerError::Mount(e) => e.kind(),
            ContainerError::Meta(e) => e.kind(),
            _ => ErrorKind::Internal,
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
        let mut found = tx
            .containers()?
            .into_iter()
            .filter(|c| c.id.starts_with(arg));
        if let Some(c) = found.next() {
            return match found.next() {
                None => Ok(c),
                Some(_) => Err(ContainerError::Ambiguous(arg.to_owned())),
            };
        }
    }
    Err(ContainerError::NotFound(arg.to_owned()))
}
