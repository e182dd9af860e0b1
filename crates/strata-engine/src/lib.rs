//! strata-engine: a container image store as a library.
//!
//! [`Engine`] is the entry point: [`Engine::open`] takes [`EngineOptions`] (values, never
//! environment variables) and offers typed methods by concern — images (pull, push, remove,
//! prune, garbage collection, disk usage) and containers (create with a [`PullPolicy`], start, wait,
//! remove, prune). Its module doc draws the parts and the threading model. Underneath,
//! [`store::Store`] opens a store root (metadata database, content store, snapshotters) and the
//! flows are built on it; those not yet on [`Engine`] (load, save, import, migrate,
//! commit, export, copy, volumes, fsck) are reached through their modules. The `strata` command
//! line (crate `strata-cli`) is a thin Docker-shaped client; the engine prints nothing and
//! parses no command line.
//!
//! ```text
//! <root>/                  --root, $STRATA_ROOT, default /var/lib/strata
//! ├── metadata.db          strata-metadata: what is live, labels, leases, records
//! ├── metadata.db-wal      (SQLite write-ahead log)
//! ├── reserved-space       space given back when the disk is full (see [`space`])
//! └── content/             strata-content: blobs/sha256/<hex>, ingest/<hash(ref)>/
//! ```

#![forbid(unsafe_code)]

pub mod containers;
pub mod df;
pub mod discard;
mod engine;
pub mod fsck;
pub mod gc;
pub mod images;
pub mod import;
pub mod load;
pub mod migrate;
pub mod pull;
pub mod push;
pub mod runtime;
pub mod save;
pub mod space;
pub mod store;
#[cfg(test)]
mod test_store;
pub mod unpack;
pub mod volumes;

pub use engine::{Engine, EngineError, EngineOptions, PruneReport, PullPolicy, monitor_args};
pub use strata_types::unique_suffix;
