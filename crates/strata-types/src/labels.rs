//! The label vocabulary: every label key strata writes or reads, built and parsed here only.
//!
//! containerd's keys, which its garbage collector and `ctr` understand the same way:
//! - [`GC_ROOT`]: the object is a root.
//! - `containerd.io/gc.ref.content[.name|/name]` = digest ([`ContentEdge`]): the object keeps
//!   that blob. strata names an index's manifests `.m.N`, a manifest's config `.config` and
//!   layers `.l.N`, a discarded layer's tar split `.strata.split`.
//! - `containerd.io/gc.ref.snapshot.<snapshotter>[/name]` = key ([`SnapshotEdge`]): the object
//!   keeps that snapshot.
//! - `containerd.io/distribution.source.<host>` = `repo[,repo…]`: the repositories of a
//!   registry that hold the blob.
//!
//! strata's own keys: [`IMAGE_ID`], [`VOLUMES`], [`DOCKER_IMAGE_ID`] and the lease owner's
//! [`OWNER_PID`], [`OWNER_START`], [`OWNER_BOOT`], [`OWNER_PIDNS`]. Container labels under
//! [`INTERNAL_PREFIX`] are strata's and hidden from users.

/// Any object carrying this label is a garbage-collection root.
pub const GC_ROOT: &str = "containerd.io/gc.root";
/// The content reference prefix; a key is it alone or it followed by `.name` or `/name`.
const GC_REF_CONTENT: &str = "containerd.io/gc.ref.content";
/// The snapshot reference prefix, followed by the snapshotter's name.
const GC_REF_SNAPSHOT: &str = "containerd.io/gc.ref.snapshot.";
/// The distribution source prefix, followed by the registry host.
const DISTRIBUTION_SOURCE: &str = "containerd.io/distribution.source.";
/// The edge from a discarded layer blob to its tar split (the key of [`ContentEdge::Split`]).
pub const SPLIT: &str = "containerd.io/gc.ref.content.strata.split";

/// On a container: the digest of the image it was created from.
pub const IMAGE_ID: &str = "strata.image.id";
/// On a container: a JSON array of the names of the volumes it mounts.
pub const VOLUMES: &str = "strata.volumes";
/// On an image record: the image ID Docker gave it (migrated images).
pub const DOCKER_IMAGE_ID: &str = "io.strata.docker.image-id";
/// On a lease: its owner's process id.
pub const OWNER_PID: &str = "strata.owner.pid";
/// On a lease: when its owner started, in clock ticks after boot (`/proc/PID/stat` field 22).
pub const OWNER_START: &str = "strata.owner.start";
/// On a lease: `/proc/sys/kernel/random/boot_id` when it was made.
pub const OWNER_BOOT: &str = "strata.owner.boot";
/// On a lease: its owner's pid namespace (`/proc/self/ns/pid`).
pub const OWNER_PIDNS: &str = "strata.owner.pidns";
/// Container labels with this prefix are strata's own bookkeeping, not the user's.
pub const INTERNAL_PREFIX: &str = "strata.";

/// Whether a container label is strata's own (hidden from `ps`, `inspect`).
pub fn is_internal(key: &str) -> bool {
    key.starts_with(INTERNAL_PREFIX)
}

/// What a `containerd.io/gc.ref.content…` key names (its value is the digest kept).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ContentEdge {
    /// `containerd.io/gc.ref.content`
    Plain,
    /// `.m.N`: an index's Nth manifest.
    Manifest(usize),
    /// `.config`: a manifest's config.
    Config,
    /// `.l.N`: a manifest's Nth layer.
    Layer(usize),
    /// `.strata.split`: a discarded layer's tar split.
    Split,
    /// Any other name, with its leading `.` or `/` (another tool's edge).
    Other(String),
}

impl ContentEdge {
    /// The label key.
    pub fn key(&self) -> String {
        match self {
            ContentEdge::Plain => GC_REF_CONTENT.to_owned(),
            ContentEdge::Manifest(i) => format!("{GC_REF_CONTENT}.m.{i}"),
            ContentEdge::Config => format!("{GC_REF_CONTENT}.config"),
            ContentEdge::Layer(i) => format!("{GC_REF_CONTENT}.l.{i}"),
            ContentEdge::Split => SPLIT.to_owned(),
            ContentEdge::Other(rest) => format!("{GC_REF_CONTENT}{rest}"),
        }
    }

    /// The edge a key names; `None` when it is not a content reference (including keys that
    /// only start like one, `containerd.io/gc.ref.contents`).
    pub fn parse(key: &str) -> Option<ContentEdge> {
        let rest = key.strip_prefix(GC_REF_CONTENT)?;
        if rest.is_empty() {
            return Some(ContentEdge::Plain);
        }
        if !rest.starts_with(['.', '/']) {
            return None;
        }
        let edge = match rest {
            ".config" => ContentEdge::Config,
            ".strata.split" => ContentEdge::Split,
            _ => {
                if let Some(i) = rest.strip_prefix(".m.").and_then(index) {
                    ContentEdge::Manifest(i)
                } else if let Some(i) = rest.strip_prefix(".l.").and_then(index) {
                    ContentEdge::Layer(i)
                } else {
                    ContentEdge::Other(rest.to_owned())
                }
            }
        };
        Some(edge)
    }
}

/// A decimal index as containerd writes it: digits only, no sign, no leading zero.
fn index(s: &str) -> Option<usize> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

/// What a `containerd.io/gc.ref.snapshot.<snapshotter>[/name]` key names (its value is the
/// snapshot key kept).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SnapshotEdge<'a> {
    pub snapshotter: &'a str,
    pub name: Option<&'a str>,
}

impl<'a> SnapshotEdge<'a> {
    /// The edge to a snapshot of `snapshotter`, unnamed (one per object).
    pub fn new(snapshotter: &'a str) -> SnapshotEdge<'a> {
        SnapshotEdge {
            snapshotter,
            name: None,
        }
    }

    /// The label key; `None` when the snapshotter's name is empty or holds a `/` (the key
    /// would not parse back to it).
    pub fn key(&self) -> Option<String> {
        if self.snapshotter.is_empty() || self.snapshotter.contains('/') {
            return None;
        }
        Some(match self.name {
            Some(name) => format!("{GC_REF_SNAPSHOT}{}/{name}", self.snapshotter),
            None => format!("{GC_REF_SNAPSHOT}{}", self.snapshotter),
        })
    }

    /// The edge a key names; `None` when it is not a snapshot reference or names no
    /// snapshotter.
    pub fn parse(key: &'a str) -> Option<SnapshotEdge<'a>> {
        let rest = key.strip_prefix(GC_REF_SNAPSHOT)?;
        let (snapshotter, name) = match rest.split_once('/') {
            Some((sn, name)) => (sn, Some(name)),
            None => (rest, None),
        };
        (!snapshotter.is_empty()).then_some(SnapshotEdge { snapshotter, name })
    }
}

/// A garbage-collection reference label, of either kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GcRef<'a> {
    Content(ContentEdge),
    Snapshot(SnapshotEdge<'a>),
}

impl GcRef<'_> {
    /// The reference a key names, if it is one.
    pub fn parse(key: &str) -> Option<GcRef<'_>> {
        ContentEdge::parse(key)
            .map(GcRef::Content)
            .or_else(|| SnapshotEdge::parse(key).map(GcRef::Snapshot))
    }
}

/// The `containerd.io/distribution.source.<host>` key (containerd keys it by host, without
/// the port: see the caller).
pub fn distribution_source_key(host: &str) -> String {
    format!("{DISTRIBUTION_SOURCE}{host}")
}

/// The host a distribution source key names; `None` for other keys and an empty host.
pub fn distribution_source_host(key: &str) -> Option<&str> {
    key.strip_prefix(DISTRIBUTION_SOURCE)
        .filter(|h| !h.is_empty())
}

/// The repositories a distribution source value lists (`repo[,repo…]`), blanks skipped.
pub fn source_repos(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests;
