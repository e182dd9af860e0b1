//! Opening a store root: the composition of the metadata database and the content store.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustix::fs::{Access, access};
use strata_content::LocalStore;
use strata_metadata::{ContentStore, Db, MetaError};
use strata_snapshot::{SnapshotError, Snapshotter};
use strata_types::ErrorKind;

pub use strata_snapshot::SNAPSHOTTERS;

mod modes;

pub const DEFAULT_ROOT: &str = "/var/lib/strata";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot create store root {}{}", path.display(), hint(source))]
    CreateRoot {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("store root {} is not writable{}", path.display(), hint(source))]
    RootNotWritable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unknown snapshotter {0:?} (known: {known})", known = SNAPSHOTTERS.join(", "))]
    UnknownSnapshotter(String),
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

impl StoreError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::CreateRoot { source, .. } | StoreError::RootNotWritable { source, .. }
                if source.kind() == io::ErrorKind::PermissionDenied =>
            {
                ErrorKind::PermissionDenied
            }
            StoreError::UnknownSnapshotter(_) => ErrorKind::InvalidArgument,
            StoreError::Meta(e) => e.kind(),
            StoreError::Snapshot(e) => e.kind(),
            _ => ErrorKind::Internal,
        }
    }
}

fn hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            " (run as root, or pass --root DIR or set STRATA_ROOT to a directory you own)"
        }
        _ => "",
    }
}

/// An open store.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    snapshotter: String,
    db: Arc<Db>,
    content: ContentStore,
    /// How long the leases of pull, load, import, migrate, create and commit last, instead
    /// of each one's default.
    lease_expiry: Option<Duration>,
    /// Whether each layer is written back to disk before its commit is recorded.
    sync_commits: bool,
    /// Per-registry host configuration; `None`: [`crate::runtime::default_hosts_dir`].
    hosts_dir: Option<PathBuf>,
}

impl Store {
    /// Opens the store at `root`, creating it if needed; a root other users can reach is
    /// closed first (see [`modes`]).
    pub fn open(root: &Path, snapshotter: &str) -> Result<Store, StoreError> {
        if !SNAPSHOTTERS.contains(&snapshotter) {
            return Err(StoreError::UnknownSnapshotter(snapshotter.to_owned()));
        }
        prepare_root(root)?;
        let db = Arc::new(crate::space::open_db(root)?);
        let local = LocalStore::open(root.join("content")).map_err(MetaError::from)?;
        Ok(Store {
            root: root.to_owned(),
            snapshotter: snapshotter.to_owned(),
            content: ContentStore::new(db.clone(), local),
            db,
            lease_expiry: None,
            sync_commits: true,
            hosts_dir: None,
        })
    }

    /// The store with snapshot commits synced (the default) or not: unsynced, pulls are
    /// faster at the price of layers a power loss can leave recorded but empty (see
    /// docs/ARCHITECTURE.md, "Power loss").
    pub fn with_sync_commits(mut self, sync: bool) -> Store {
        self.sync_commits = sync;
        self
    }

    /// The store with registry host configuration (containerd's `hosts.toml` layout, see
    /// [`strata_remote::hosts`]) read from `dir`; `None`: the default.
    pub fn with_hosts_dir(mut self, dir: Option<PathBuf>) -> Store {
        self.hosts_dir = dir;
        self
    }

    /// Where registry host configuration is read from, if anywhere.
    pub fn hosts_dir(&self) -> Option<PathBuf> {
        self.hosts_dir
            .clone()
            .or_else(crate::runtime::default_hosts_dir)
    }

    /// The store with every lease that protects an unfinished pull, load, import, migrate,
    /// create or commit lasting `expiry` (`None`: each operation's default).
    pub fn with_lease_expiry(mut self, expiry: Option<Duration>) -> Store {
        self.lease_expiry = expiry;
        self
    }

    /// How long the lease of an operation whose default is `default` lasts (see
    /// [`Store::with_lease_expiry`]).
    pub fn lease_expiry(&self, default: Duration) -> Duration {
        self.lease_expiry.unwrap_or(default)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The name of the snapshotter this store uses (`--snapshotter`).
    pub fn snapshotter_name(&self) -> &str {
        &self.snapshotter
    }

    /// Opens the snapshotter. Separate from [`Store::open`] so that commands that do not touch
    /// snapshots work even where the snapshotter cannot (btrfs off a btrfs filesystem).
    pub fn snapshotter(&self) -> Result<Box<dyn Snapshotter>, StoreError> {
        let opts = strata_snapshot::Options {
            sync_commits: self.sync_commits,
        };
        Ok(strata_snapshot::open_with(
            &self.snapshotter,
            &self.root,
            self.db.clone(),
            &opts,
        )?)
    }

    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    /// The store's `discard-compressed` setting (see [`crate::discard`]).
    pub fn discard_compressed(&self) -> Result<bool, MetaError> {
        let value = self.db.read(|tx| tx.setting(crate::discard::SETTING))?;
        Ok(crate::discard::setting_enabled(value.as_deref()))
    }
}

fn prepare_root(root: &Path) -> Result<(), StoreError> {
    let create = |source| StoreError::CreateRoot {
        path: root.to_owned(),
        source,
    };
    let existing = match fs::metadata(root) {
        Ok(m) if m.is_dir() => Some(m.mode() & 0o7777),
        Ok(_) => return Err(create(io::Error::from(io::ErrorKind::NotADirectory))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = root.parent() {
                fs::create_dir_all(parent).map_err(create)?;
            }
            match fs::DirBuilder::new().mode(modes::ROOT_MODE).create(root) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(create(e)),
                _ => {}
            }
            fs::set_permissions(root, fs::Permissions::from_mode(modes::ROOT_MODE))
                .map_err(create)?;
            None
        }
        Err(e) => return Err(create(e)),
    };
    access(root, Access::WRITE_OK | Access::EXEC_OK).map_err(|e| StoreError::RootNotWritable {
        path: root.to_owned(),
        source: e.into(),
    })?;
    if existing.is_some_and(|mode| mode != modes::ROOT_MODE) {
        tighten(root);
    }
    Ok(())
}

/// Closes a root other users can reach (one made by an older strata, or by hand), saying so
/// once for a store that holds anything. A failure is a warning, and the next command tries
/// again: the store itself still works.
fn tighten(root: &Path) {
    let had_store = root.join("metadata.db").exists();
    match modes::tighten(root) {
        Ok(()) if had_store => tracing::warn!(
            "tightened the permissions of the store at {}: it is now closed to other users \
             (directories 0700, files 0600)",
            root.display()
        ),
        Ok(()) => {}
        Err(e) => tracing::warn!(
            "store {} is open to other users and could not be closed: {e} (run strata as the \
             store's owner, or chmod 0700 it)",
            root.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_root_and_rejects_unknown_snapshotter() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("a/b");
        let store = Store::open(&root, "overlayfs").unwrap();
        assert!(store.root().join("metadata.db").exists());
        assert_eq!(
            fs::metadata(&root).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let err = Store::open(&root, "zfs").unwrap_err();
        assert!(
            err.to_string().contains("known: overlayfs, native, btrfs"),
            "{err}"
        );
    }

    #[test]
    fn root_that_is_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, b"").unwrap();
        let err = Store::open(&file, "overlayfs").unwrap_err();
        assert!(
            err.to_string().starts_with("cannot create store root"),
            "{err}"
        );
    }
}
