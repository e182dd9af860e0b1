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
//! Every method is synchronous and may block on disk, the network or a container. Registry
//! calls (pull, push) run on one small tokio runtime the engine makes on first use and keeps
//! ([`Engine::network`]); no runtime is needed on the calling thread, and the methods must
//! not be called from inside one's async tasks (they block). The store is safe to
//! use from several processes at once (SQLite with WAL, per-container locks); an `Engine`
//! is `Send` and `Sync`, and its methods may be called from several threads.
//!
//! The engine prints nothing: progress goes to a [`Progress`] the caller passes, and
//! outcomes are returned as values.

mod containers;
mod images;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;

use strata_metadata::ContainerRecord;
use strata_remote::RemoteError;
use strata_snapshot::Snapshotter;
use strata_types::ErrorKind;

use crate::containers::ContainerError;
use crate::df::DfError;
use crate::gc::GcError;
use crate::images::ImageError;
use crate::pull::PullError;
use crate::store::{Store, StoreError};

pub use containers::{PruneReport, PullPolicy};

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
    /// How long the leases that protect unfinished work (a pull, load, import, migrate,
    /// create or commit) last if their process dies; `None`: each operation's default.
    pub lease_expiry: Option<std::time::Duration>,
    /// Write each layer back to disk before its commit is recorded (the default): `false`
    /// makes pulls faster, and lets a power loss leave layers recorded but empty.
    pub sync_commits: bool,
    /// Per-registry host configuration (containerd's `hosts.toml` layout); `None`:
    /// `/etc/strata/certs.d` when it exists.
    pub hosts_dir: Option<PathBuf>,
}

impl EngineOptions {
    /// A store at `root` on overlayfs, with `strata` from the `PATH` as the monitor.
    pub fn new(root: impl Into<PathBuf>) -> EngineOptions {
        EngineOptions {
            root: root.into(),
            snapshotter: "overlayfs".to_owned(),
            monitor_exe: PathBuf::from("strata"),
            lease_expiry: None,
            sync_commits: true,
            hosts_dir: None,
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
    #[error(transparent)]
    Push(#[from] crate::push::PushError),
    #[error("start the network runtime")]
    Network(#[source] std::io::Error),
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
            EngineError::Push(e) => e.kind(),
            EngineError::Network(_) => ErrorKind::Internal,
        }
    }
}

/// An open store with its snapshotter: the entry point of the library.
pub struct Engine {
    store: Store,
    /// Opened on first use: what needs no snapshots (content, images, settings) works even
    /// where the snapshotter cannot (btrfs off a btrfs filesystem).
    snapshotter: OnceLock<Box<dyn Snapshotter>>,
    /// The tokio runtime every registry call runs on, made on first use.
    network: OnceLock<tokio::runtime::Runtime>,
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
        let store = Store::open(&opts.root, &opts.snapshotter)?
            .with_lease_expiry(opts.lease_expiry)
            .with_sync_commits(opts.sync_commits)
            .with_hosts_dir(opts.hosts_dir.clone());
        Ok(Engine {
            store,
            snapshotter: OnceLock::new(),
            network: OnceLock::new(),
            opts,
        })
    }

    /// The store, for the operations not yet on the engine itself.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The program that runs as a container's monitor ([`EngineOptions::monitor_exe`]).
    pub fn monitor_exe(&self) -> &std::path::Path {
        &self.opts.monitor_exe
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

    /// The runtime registry calls run on (two worker threads), shared by pull and push.
    pub fn network(&self) -> Result<&tokio::runtime::Runtime, EngineError> {
        if let Some(rt) = self.network.get() {
            return Ok(rt);
        }
        let rt = crate::runtime::runtime().map_err(EngineError::Network)?;
        Ok(self.network.get_or_init(|| rt))
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
