//! strata's shared vocabulary: the values every part of the store passes around, with no I/O.
//!
//! - [`Digest`]: a content address (`sha256:<64 hex>`); sha256 is the only algorithm the store
//!   accepts, as containerd's local store does in practice.
//! - [`Descriptor`]: what points at a blob (media type, digest, size), as in the OCI image spec.
//! - [`chain_id`]: the name of a stack of unpacked layers.
//! - [`ErrorKind`]: the small set of error classes (containerd's `errdefs`) every crate's typed
//!   error maps onto, so callers can match across crates without string comparison;
//!   [`ErrorKind::from_io`] classes an OS error, [`PathIoError`] is an I/O failure on a path.
//! - [`labels`]: every label key strata writes or reads (containerd's GC and distribution
//!   labels, strata's own), built and parsed in one place.
//! - [`parse_size`]: human sizes (`512m`) under Docker's decimal or binary unit rule;
//!   [`parse_duration`]: Go durations (`1h30m`); [`human_size`] and the other printers: sizes
//!   and durations as Docker prints them; [`ErrorChain`]: an error and its causes on one line.
//! - [`unique_suffix`]: names no other process uses (leases, temporary keys).

#![forbid(unsafe_code)]

mod chain;
mod descriptor;
mod digest;
pub mod gofloat;
mod human;
mod kind;
pub mod labels;
pub mod oci;
mod pathio;
mod platform;
mod unique;
mod units;

pub use chain::ErrorChain;
pub use descriptor::Descriptor;
pub use digest::{Digest, DigestError, Sha256, chain_id};
pub use human::{ago, ago_at, bytes_size, human_duration, human_size, human_size_with_precision};
pub use kind::ErrorKind;
pub use pathio::PathIoError;
pub use platform::{
    ATTESTATION_MANIFEST, Matcher, Platform, PlatformError, REFERENCE_TYPE_ANNOTATION,
    is_attestation,
};
pub use unique::unique_suffix;
pub use units::{SizeError, SizeUnits, parse_duration, parse_size};
