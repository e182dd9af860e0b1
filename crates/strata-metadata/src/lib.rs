//! The metadata database: everything about the store that is not file content.
//!
//! One SQLite file, `<root>/metadata.db`, in WAL mode with `synchronous=FULL`. Several `strata`
//! processes open it at once with no daemon between them: readers never block, writers take
//! turns (`BEGIN IMMEDIATE`, waiting up to a minute on a busy database), and a transaction
//! interrupted by `kill -9` or power loss is rolled back on the next open. The filesystem holds
//! data; this database says what is live. With a [`Reserve`], a write transaction first gives
//! the reserve's space back when the disk is nearly full, so that cleanup still commits.
//!
//! ```text
//! images           name PK → target descriptor (media_type, digest, size), created_at, updated_at
//! image_labels     (name, key) → value
//! blobs            digest PK → size, created_at, updated_at,      committed content that is live
//!                  discarded_at (set: file let go, bytes recoverable)
//! blob_labels      (digest, key) → value                          GC refs, source registry, ...
//! snapshots        id PK (never reused: names directories), (snapshotter, key) unique,
//!                  kind active|view|committed, parent key (RESTRICT: no removing a parent)
//! snapshot_labels  (snapshot id, key) → value
//! containers       id PK (64 hex), name unique, image, snapshotter, snapshot_key, runtime
//! container_labels (container id, key) → value
//! leases           id PK → created_at, expires_at (NULL: until deleted)
//! lease_labels     (lease id, key) → value
//! lease_resources  (lease id, kind content|ingest|snapshot, resource id)
//! volumes          name PK → driver, anonymous, options (JSON), created_at
//! volume_labels    (volume name, key) → value
//! snapshot_usage   snapshot id PK → size, inodes                 measured once, at commit
//! settings         key PK → value                                 the store's settings
//! ```
//!
//! An operation holds its lease as a [`LeaseGuard`], which deletes it on every path out.
//!
//! Times are integer nanoseconds since the Unix epoch. The schema version is SQLite's
//! `user_version`; [`schema`] holds the migrations, applied in order inside one write
//! transaction by whichever process opens the database first after an upgrade.

#![forbid(unsafe_code)]

mod containers;
mod content;
mod db;
mod error;
mod images;
mod labels;
mod lease_guard;
mod leases;
pub mod reserve;
pub mod schema;
mod settings;
mod snapshots;
mod volumes;

pub use containers::ContainerRecord;
pub use content::{BlobRecord, BlobSize, Committed, ContentStore};
pub use db::{Db, Tx};
pub use error::MetaError;
pub use images::ImageRecord;
pub use labels::Labels;
pub use lease_guard::LeaseGuard;
pub use leases::{Lease, LeaseResource};
pub use reserve::Reserve;
pub use snapshots::{SnapshotKind, SnapshotRecord};
pub use volumes::VolumeRecord;
