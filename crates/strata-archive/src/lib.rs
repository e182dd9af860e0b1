//! Layer tars: unpacking an image layer into a snapshot, and turning a changed snapshot back
//! into a layer.
//!
//! # Apply
//!
//! [`apply_layer`] takes the layer blob as it comes from the registry or the content store
//! (gzip, zstd or plain tar — found from the magic bytes by [`detect_compression`], never from
//! the media type) and unpacks it into a directory in one streaming pass, computing the
//! layer's diffID (sha256 of the uncompressed tar) on the way. Decompression, hashing and
//! file creation run on three threads connected by bounded queues of 1 MiB chunks; file data
//! is written straight from those chunks.
//!
//! Every tar entry type a layer uses is supported: regular files (GNU sparse files keep their
//! holes), directories, symlinks, hardlinks, character and block devices and fifos (these need
//! root), owners, modes with setuid/setgid/sticky bits, mtimes and atimes with nanoseconds,
//! xattrs from PAX `SCHILY.xattr.*` records (file capabilities included; `trusted.*` and
//! `user.overlay.*` are filtered, see below), PAX and GNU long names and link names.
//!
//! # Whiteouts
//!
//! A layer deletes a lower file `d/NAME` with an empty entry `d/.wh.NAME`, and hides all of a
//! lower directory `d` with `d/.wh..wh..opq`. What that means on disk depends on the
//! snapshotter, chosen with [`WhiteoutMode`]:
//!
//! - [`WhiteoutMode::Overlay`]: the layer is unpacked into its own, initially empty, overlayfs
//!   layer directory and whiteouts become what overlayfs reads as whiteouts (a 0/0 character
//!   device, the `trusted.overlay.opaque=y` xattr). Layers of one image can unpack in parallel.
//!   [`ApplyOptions::lowers`] lets hardlinks reach files of lower layers.
//! - [`WhiteoutMode::Delete`]: the layer is applied onto a full copy of its parent (native and
//!   btrfs snapshotters) and whiteouts delete.
//!
//! # Safety
//!
//! A layer is hostile until its diffID has been checked — and the diffID is only known once
//! the whole layer has been unpacked, so unpacking itself must be safe. The rules:
//!
//! - **Nothing outside the destination changes**, whatever the entries and their order. Every
//!   entry's parent directory is opened with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
//!   | RESOLVE_NO_XDEV)` relative to the destination, so symlinks — absolute, relative,
//!   chained, created earlier in the same layer or by a previous layer — resolve as if the
//!   destination were `/`. The final component is then created, replaced or changed with
//!   `*at` calls that never follow it (`O_EXCL|O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`), so an entry
//!   replacing a symlink replaces the symlink and never writes, chmods or chowns its target.
//! - **Names** lose leading `/` and `./`; `..` is resolved lexically, and a name that would
//!   climb above the root is refused, as are names with NUL bytes. Hardlink targets follow the
//!   same rules, resolve inside the root, and must not be directories. Symlink targets are
//!   stored verbatim (they are data; they only matter when resolved, which is always inside a
//!   root).
//! - **Whiteouts** naming nothing (`.wh.`, `.wh..`, `.wh...`) are refused; whiteouts reached
//!   through a symlinked directory act inside the root.
//! - **Metadata a layer must not forge** is filtered: every `trusted.*` xattr (which includes
//!   overlayfs's `trusted.overlay.*`: opaque, redirect, metacopy, origin...) and
//!   `user.overlay.*` (overlayfs's namespace under `userxattr`).
//! - **Sizes are bounded before reading** ([`Limits`]): uncompressed bytes, entry count, entry
//!   size, and the size of PAX/GNU extension records (8 MiB) which are held in memory.
//! - **Malformed tars** (bad checksums, truncation, absurd numeric fields) fail with an error
//!   naming the layer and the entry.
//!
//! An error leaves the destination partly applied; the snapshotter throws the snapshot away.
//! HOSTILE.md beside this crate lists the hostile layers the test suite applies and what each
//! one does.
//!
//! # Tar split
//!
//! With [`ApplyOptions::record_split`] the applier keeps the layer's tar framing (headers,
//! padding, everything but the data of the files it wrote) so that [`rebuild_layer`] can write
//! the exact uncompressed layer again from the unpacked tree: what lets strata drop a layer's
//! compressed blob. [`rebuild_docker_layer`] does the same from Docker's own
//! `tar-split.json.gz`, and [`docker_split_from`] writes that format (see `split.rs` and
//! `docker_split.rs`).
//!
//! # Diff
//!
//! [`diff_overlay_upper`] (an overlayfs upper directory), [`diff_trees`] (two full trees) and
//! [`tar_tree`] (one whole tree: `export`) write a deterministic OCI layer tar of a change: entries in depth-first order with names
//! sorted bytewise, ustar headers with PAX records for long names and xattrs, numeric owners
//! and no user or group names, whole-second mtimes, whiteouts as empty regular files with
//! every field zero, hardlinks as link entries to the first path of the inode. The same
//! change always gives the same bytes and so the same diffID, and applying a tar written in
//! that canonical form then diffing the result gives it back byte for byte.

mod apply;
mod compression;
mod diff;
mod docker_split;
mod error;
mod limits;
mod path;
mod prefetch;
mod root;
mod split;
mod stream;
mod sys;
mod tarstream;

pub use apply::{ApplyOptions, ApplyStats, RecordedSplit, Reused, WhiteoutMode, apply_layer};
pub use compression::{Compression, decompress, detect_compression};
pub use diff::{DiffStats, diff_overlay_upper, diff_trees, tar_tree};
pub use docker_split::{docker_split_from, rebuild_docker_layer, rebuild_docker_layer_prefetched};
pub use error::ArchiveError;
pub use limits::Limits;
pub use split::{rebuild_layer, split_diff_id};
