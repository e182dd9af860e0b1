//! strata: a container image store.
//!
//! This crate is where the parts meet: [`store::Store`] opens a store root (metadata database,
//! content store, and — as they land — snapshotters), the flows (pull, run, save, ...) are
//! built on it, and [`cli`] is the thin Docker-shaped command line over them.
//!
//! ```text
//! <root>/                  --root, $STRATA_ROOT, default /var/lib/strata
//! ├── metadata.db          strata-metadata: what is live, labels, leases, records
//! ├── metadata.db-wal      (SQLite write-ahead log)
//! ├── reserved-space       space given back when the disk is full (see [`space`])
//! └── content/             strata-content: blobs/sha256/<hex>, ingest/<hash(ref)>/
//! ```

#![forbid(unsafe_code)]

pub mod cli;
pub mod containers;
pub mod df;
pub mod discard;
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

pub use strata_types::unique_suffix;
