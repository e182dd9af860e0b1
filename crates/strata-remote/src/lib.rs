//! strata's registry client: the OCI distribution API (what `docker pull` and `docker push`
//! speak), on reqwest and tokio. This crate is the store's async island; everything else is
//! synchronous and calls in through a runtime.
//!
//! ```text
//! Reference::parse("ubuntu")             docker.io/library/ubuntu:latest      reference.rs
//!        │
//! Remote::resolve ── HEAD/GET /v2/<name>/manifests/<tag>  → Descriptor + host  resolve.rs
//! Remote::fetch_manifest  GET …/manifests/<digest>         → verified bytes     resolve.rs
//! Remote::fetch_blob      GET …/blobs/<digest> (Range)     → BlobStream         fetch.rs
//! Remote::blob_exists / push_blob / push_manifest                               push.rs
//! Remote::login / store_credentials / erase_credentials                         login.rs
//!        │
//!  every request: hosts (mirrors, TLS, plain HTTP) → credentials → token flow → retries
//!                 hosts.rs, tls.rs                    credentials.rs  auth.rs    client.rs
//! ```
//!
//! - **Hosts** ([`hosts`]): per-registry configuration in containerd's `hosts.toml` layout:
//!   mirrors tried in order, then the upstream; CAs, client certificates, `skip_verify`,
//!   plain HTTP; Docker Hub's API lives at `registry-1.docker.io`; `localhost` and
//!   `127.0.0.1` speak plain HTTP.
//! - **Authentication** ([`auth`], [`credentials`]): anonymous, Basic, and the Bearer token
//!   flow with tokens cached per host and scope; credentials from Docker's `config.json`
//!   and `docker-credential-*` helpers.
//! - **Verification**: nothing a registry sends is trusted. Manifests are bounded to 4 MiB
//!   before they are read; manifests and blobs are checked against the descriptor's size and
//!   digest while they stream (see [`fetch`]).
//! - **Failures** are retried where that can help (dropped connections, `5xx`, `429`) with
//!   exponential backoff, and broken-off downloads and uploads resume where they stopped.
//!   A body that trickles (under [`RemoteOptions::low_speed_limit`] bytes/s for
//!   [`RemoteOptions::low_speed_time`]) fails with [`RemoteError::Stalled`] instead of
//!   holding the operation for ever.
//!   Errors are [`RemoteError`]s that name the reference, and map to
//!   [`strata_types::ErrorKind`].
//!
//! Manifests are returned as the registry's bytes, never re-serialized: their digest is their
//! identity. Parsing them is the caller's business; [`media`] classifies media types.

#![forbid(unsafe_code)]

pub mod auth;
mod client;
pub mod credentials;
mod error;
pub mod fetch;
pub mod hosts;
mod login;
pub mod media;
pub mod push;
mod reference;
mod resolve;
mod speed;
mod tls;

pub use client::{DEFAULT_LOW_SPEED_LIMIT, DEFAULT_LOW_SPEED_TIME, Remote, RemoteOptions};
pub use credentials::Credential;
pub use error::RemoteError;
pub use fetch::BlobStream;
pub use hosts::{Capabilities, RegistryHost};
pub use push::{BlobPushed, BlobSource};
pub use reference::{DEFAULT_TAG, DOCKER_HUB, Reference};
pub use resolve::MAX_MANIFEST_SIZE;
