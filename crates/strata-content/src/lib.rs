//! The local content store: blobs named by their digest, written through resumable ingests.
//!
//! This crate owns the files; which blobs are *live* (and their labels) is the metadata
//! database's business (`strata-metadata`), as containerd's metadata store wraps its local one.
//!
//! ```text
//! <root>/content/
//! ├── blobs/sha256/<hex>          committed blobs, mode 0400, never rewritten
//! └── ingest/<sha256(ref)>/       one in-progress write, keyed by the caller's ref
//!     ├── ref                     the ref itself (the directory name is its hash)
//!     ├── total                   expected size, when the writer knew it
//!     └── data                    bytes so far; flock(LOCK_EX) held by the writing process
//! ```
//!
//! Directories are 0700 and ingest files 0600, whatever the umask: only the store's owner
//! reads content (an image's layers may hold secrets; nothing here is for other users).
//!
//! A write goes: [`LocalStore::writer`] opens (or resumes) the ingest, the caller writes, and
//! [`Writer::commit`] checks size and digest, fsyncs the data, renames it into `blobs/` with
//! `RENAME_NOREPLACE` and fsyncs `blobs/sha256`. A blob that does not verify is never visible.
//! A process killed mid-write leaves the ingest behind; the next writer for the same ref
//! re-hashes what is there and continues at its end. Two processes writing the same ref take
//! turns on the data file's lock; two writing the same digest under different refs race to the
//! rename, and the loser gets [`ContentError::AlreadyExists`].

#![forbid(unsafe_code)]

mod error;
mod ingest;
mod store;

pub use error::ContentError;
pub use ingest::{BLOB_MODE, IngestStatus, Writer, WriterOptions};
pub use store::{Blob, BlobInfo, LocalStore};
