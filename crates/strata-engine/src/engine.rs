//! [`Engine`]: the store, its snapshotter, the registry client and the container monitor
//! behind one typed API, for programs that embed strata (the `strata` command line is one).
//!
//! ```text
//! Engine::open(EngineOptions) ─┬─ Store        metadata.db + content/ (crate::store)
//!                              ├─ Snapshotter  snapshots/<name>/ (strata-snapshot)
//!                              └─ monitor      the `strata` binary, re-run as the hidden
//!                                              `container-monitor ID` for each started
//!                                              container (the daemonless shim)
//! ```
//!
//! # Threads and async
//!
//! Every method is synchronous and may block on disk, the network or a container. A pull
//! makes its own small tokio runtime for the registry client and drops it when it returns;
//! no runtime is needed, or may be running, on the calling thread. The store is safe to
//! use from several processes at once (SQLite with WAL, per-container locks); an `Engine`
//! is `Send` and `Sync`, and its methods may be called from several threads.
//!
//! The engine prints nothing: progress goes to a [`Progress`] the caller passes, and
//! outcomes are returned as values.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;

use strata_metadata::ContainerRecord;
use strata_remote::{Reference, RemoteError};
use strata_snapshot::Snapshotter;
use strata_types::ErrorKind;

use crate::containers::create::{self, CreateOptions};
use crate::containers::lifecycle::{self, Started};
use crate::containers::{self, ContainerError};
use crate::df::{self, DfError, ImagesUsage};
use crate::gc::{self, Collected, GcError, GcOptions};
use crate::images::{self, ImageError, Removal};
use crate::pull::{self, Progress, PullError, PullOptions, Pulled};
use crate::store::{Store, StoreError};

/// How to open an [`Engine`]. Values only: the engine reads no environment variable (the
/// command line maps `STRATA_ROOT` and the others onto these).
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// The store's root directory (created if missing).
    pub root: PathBuf,
    /// `overlayfs`, `native` or `btrfs`.
    pub snapshotter: String,
    /// The program a detached container's monitor runs: the `strata` binary (found on the
    /// `PATH` when not a path).
    pub monitor_exe: PathBuf,
}

impl EngineOptions {
    /// A store at `root` on overlayfs, with `strata` from the `PATH` as the monitor.
    pub fn new(root: impl Into<PathBuf>) -> EngineOptions {
        EngineOptions {
            root: root.into(),
            snapshotter: "overlayfs".to_owned(),
            monitor_exe: PathBuf::from("strata"),
        }
    }
}

/// Everything an engine operation can fail with; [`EngineError::kind`] classifies it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pull(#[from] PullError),
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Gc(#[from] GcError),
    #[error(transparent)]
    Df(#[from] DfError),
    #[error(transparent)]
    Remote(#[from] Box<RemoteError>),
    #[error(transparent)]
    Meta(#[from] strata_metadata::MetaError),
}

impl EngineError {
    /// What kind of failure this is (not found, invalid argument, unavailable, ...).
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::Store(e) => e.kind(),
            EngineError::Pull(e) => e.kind(),
            EngineError::Container(e) => e.kind(),
            EngineError::Image(e) => e.kind(),
            EngineError::Gc(e) => e.kind(),
            EngineError::Df(_) => ErrorKind::Internal,
            EngineError::Remote(e) => e.kind(),
            EngineError::Meta(e) => e.kind(),
        }
    }
}

/// An open store with its snapshotter: the entry point of the library.
pub struct Engine {
    store: Store,
    /// Opened on first use: what needs no snapshots (content, images, settings) works even
    /// where the snapshotter cannot (btrfs off a btrfs filesystem).
    snapshotter: OnceLock<Box<dyn Snapshotter>>,
    opts: EngineOptions,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.store)
            .field("snapshotter", &self.store.snapshotter_name())
            .field("opts", &self.opts)
            .finish()
    }
}

impl Engine {
    /// Opens (creating if needed) the store; its snapshotter is opened when first needed.
    pub fn open(opts: EngineOptions) -> Result<Engine, EngineError> {
        let store = Store::open(&opts.root, &opts.snapshotter)?;
        Ok(Engine {
            store,
            snapshotter: OnceLock::new(),
            opts,
        })
    }

    /// The store, for the operations not yet on the engine itself.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The snapshotter containers and unpacked layers live in.
    pub fn snapshotter(&self) -> Result<&dyn Snapshotter, EngineError> {
        if let Some(sn) = self.snapshotter.get() {
            return Ok(sn.as_ref());
        }
        // Two threads may both open it; one is kept, which is harmless.
        let sn = self.store.snapshotter()?;
        Ok(self.snapshotter.get_or_init(|| sn).as_ref())
    }

    /// Pulls `reference` (`busybox`, `registry:5000/app:1`, `name@sha256:…`) and unpacks it;
    /// credentials come from Docker's `config.json`, limits from the store's settings.
    pub fn pull(
        &self,
        reference: &str,
        opts: &PullOptions,
        progress: &dyn Progress,
    ) -> Result<Pulled, EngineError> {
        let reference = Reference::parse(reference).map_err(Box::new)?;
        let remote = crate::runtime::remote_with(crate::runtime::store_options(&self.store)?)?;
        let sn = self.snapshotter()?;
        Ok(pull::pull(
            &self.store,
            sn,
            &remote,
            &reference,
            opts,
            progress,
        )?)
    }

    /// Creates a container from an image in the store (`opts.image`); returns its record.
    /// [`ContainerError::ImageNotFound`] means: pull it first.
    pub fn create_container(&self, opts: &CreateOptions) -> Result<ContainerRecord, EngineError> {
        let sn = self.snapshotter()?;
        let image = create::image_for_container(&self.store, sn, &opts.image)?;
        Ok(create::create(&self.store, sn, &image, opts)?)
    }

    /// The container named or identified (a unique id prefix will do) by `container`.
    pub fn container(&self, container: &str) -> Result<ContainerRecord, EngineError> {
        let found = self
            .store
            .db()
            .read(|tx| Ok(containers::lookup(tx, container)))?;
        Ok(found?)
    }

    /// Starts a created or exited container under its own monitor process and returns once
    /// it runs, with the pid of its monitor.
    pub fn start(&self, container: &str) -> Result<i32, EngineError> {
        let record = self.container(container)?;
        let args = monitor_args(&self.store, &record, false);
        let sn = self.snapshotter()?;
        match lifecycle::start(
            &self.store,
            sn,
            &record,
            false,
            &self.opts.monitor_exe,
            &args,
        )? {
            Started::Detached(pid) => Ok(pid),
            Started::Exited(_) => Err(ContainerError::NotRunning(record.name).into()),
        }
    }

    /// Waits for the container to exit and returns its exit code.
    pub fn wait(&self, container: &str) -> Result<i32, EngineError> {
        let record = self.container(container)?;
        Ok(lifecycle::wait(&self.store, self.snapshotter()?, &record)?)
    }

    /// Removes a container: a running one only with `force` (killed first); `volumes` also
    /// removes its anonymous volumes.
    pub fn remove_container(
        &self,
        container: &str,
        force: bool,
        volumes: bool,
    ) -> Result<(), EngineError> {
        let record = self.container(container)?;
        Ok(lifecycle::remove(
            &self.store,
            self.snapshotter()?,
            &record,
            force,
            volumes,
        )?)
    }

    /// The path of a container's json-file log (Docker's `<id>-json.log`).
    pub fn log_path(&self, record: &ContainerRecord) -> PathBuf {
        lifecycle::log_path(self.store.root(), &record.id)
    }

    /// Removes an image name (or, by id, the image), as `rmi`; the content and snapshots
    /// only it used are freed by [`Engine::collect_garbage`].
    pub fn remove_image(&self, image: &str, force: bool) -> Result<Vec<Removal>, EngineError> {
        Ok(images::write(self.store.db(), |tx| {
            images::remove(tx, image, force)
        })?)
    }

    /// Frees what no image, container or lease needs any more.
    pub fn collect_garbage(&self, opts: &GcOptions) -> Result<Collected, EngineError> {
        Ok(gc::collect(&self.store, opts)?)
    }

    /// What the images take on disk, shared and unique (`system df`).
    pub fn images_usage(&self) -> Result<ImagesUsage, EngineError> {
        Ok(df::images_usage(&self.store, Some(self.snapshotter()?))?)
    }
}

/// The arguments that make the `strata` binary the monitor of `record` (its hidden
/// `container-monitor` command); `exec` for an `exec -d` process in it.
pub fn monitor_args(store: &Store, record: &ContainerRecord, exec: bool) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "--root".into(),
        store.root().into(),
        "--snapshotter".into(),
        record.snapshotter.clone().into(),
        "container-monitor".into(),
    ];
    if exec {
        args.push("--exec".into());
    }
    args.push(record.id.clone().into());
    args
}
