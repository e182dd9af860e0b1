//! `strata-testutil`: the harness every end-to-end test of strata uses.
//!
//! This crate is a **dev-dependency only**; nothing in it is meant for
//! production code. It provides these building blocks:
//!
//! * [`Registry`] ([`registry`] module) — starts a real CNCF distribution
//!   registry (Debian's `docker-registry` binary) on a free loopback port,
//!   with its own throw-away storage, and stops it again on drop.
//! * [`require_root`] / [`require_tool`] / [`skip`] ([`root`] module) — gating
//!   helpers: a test that needs root, an external tool or anything else it lacks
//!   returns early with a printed `SKIPPED` line, unless `STRATA_TEST_REQUIRE_ROOT=1`
//!   is set (as in CI), in which case the missing prerequisite is a hard failure.
//! * [`LayerBuilder`], [`ImageBuilder`], [`build_index`] ([`image`] module) —
//!   deterministic in-memory OCI / Docker schema2 images: same input, same
//!   bytes, same digests (fixed mtimes, uid/gid 0 unless asked otherwise,
//!   deterministic JSON and compression).
//! * [`scan_tree`], [`assert_same_tree`] ([`tree`] module) — compare two
//!   directory trees file by file (type, mode, owner, content, links, xattrs).
//! * [`push_image`], [`push_index`], [`push_blob`] ([`push`] module) — a
//!   minimal distribution-API client over plain HTTP to put those images into
//!   a registry, independently of strata's own client.
//! * [`Proxy`], [`Server`] ([`proxy`] module) — a fault-injecting HTTP proxy
//!   in front of a registry (error statuses, bodies cut or truncated, a
//!   flipped byte, an oversized manifest), logging every request; async, or
//!   on its own runtime with [`Proxy::start_blocking`].
//! * [`write_docker_root`] ([`docker_root`] module) — a Docker data root with the
//!   classic overlay2 driver, written from in-memory images as dockerd lays one out
//!   (`strata migrate` fixtures); [`Dockerd`] ([`dockerd`] module) — a real dockerd
//!   on a data root of its own, where Debian's `docker.io` is installed.
//!
//! ```no_run
//! use strata_testutil::{require_tool, Compression, ImageBuilder, LayerBuilder, Registry};
//!
//! # fn main() -> anyhow::Result<()> {
//! if !require_tool("docker-registry") {
//!     return Ok(());
//! }
//! let reg = Registry::start()?;
//! let layer = LayerBuilder::new()
//!     .dir("etc", 0o755)
//!     .file("etc/hostname", b"strata\n", 0o644)
//!     .build(Compression::Gzip);
//! let image = ImageBuilder::new()
//!     .layer(layer)
//!     .config(|c| c["config"]["Cmd"] = serde_json::json!(["/bin/sh"]))
//!     .build();
//! strata_testutil::push_image(&reg.url(), "library/test", "latest", &image)?;
//! # Ok(())
//! # }
//! ```

pub mod btrfs;
pub mod busybox;
pub mod docker_root;
pub mod dockerd;
pub mod image;
pub mod layout;
pub mod proxy;
pub mod push;
pub mod registry;
pub mod root;
pub mod tree;

pub use btrfs::LoopBtrfs;
pub use busybox::busybox_layer;
pub use docker_root::write_docker_root;
pub use dockerd::Dockerd;
pub use image::{
    Blob, CREATED, Compression, Image, ImageBuilder, Index, LAYER_MTIME, Layer, LayerBuilder,
    build_index, media, raw_header, sha256_digest,
};
pub use layout::{LayoutEntry, tar_dir, write_layout};
pub use proxy::{Faults, Logged, Proxy, ProxyHandle, Server};
pub use push::{push_blob, push_image, push_index, push_manifest};
pub use registry::{Registry, TEST_PASSWORD, TEST_USER};
pub use root::{find_tool, require_root, require_tool, skip, strict};
pub use tree::{TreeEntry, assert_same_tree, scan_tree, tree_differences};
