//! Image names, as Docker's containerd image store keeps them: one record per name
//! (`docker.io/library/busybox:latest`) pointing at a target descriptor (an index or a
//! manifest), whose digest is the image's ID.
//!
//! An image that loses its last name (re-tagged, re-pulled, or `rmi` of a name while a
//! container uses it) is kept as a *dangling* record named `moby-dangling@<digest>`, the name
//! Docker uses, so that it still lists as `<none>:<none>` and can be removed by ID. Giving the
//! target a name again removes that record. [`set_image_name`] is the one way names are
//! recorded (load, pull, tag); [`resolve`] turns what a user typed (a name, a full or short
//! ID, `name@digest`) into records; [`remove`] is `rmi`. None of this frees disk space:
//! removing what no record needs any more is garbage collection.

mod filter;
mod summary;

pub use filter::{glob_match, reference_matches};

pub use summary::{ImageSummary, ManifestKind, ManifestSummary, Sizer, platform_manifest};

use std::collections::HashMap;

use strata_metadata::{ContainerRecord, Db, ImageRecord, Labels, MetaError, Tx};
use strata_remote::Reference;
use strata_types::{Descriptor, Digest, ErrorKind};

use crate::unpack::UnpackError;

/// The name prefix of dangling image records (Docker's).
pub const DANGLING_PREFIX: &str = "moby-dangling@";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// Docker's wording, so that scripts matching it keep working.
    #[error("No such image: {0}")]
    NotFound(String),
    #[error("{0}: ambiguous image ID prefix: it matches more than one image")]
    Ambiguous(String),
    #[error("conflict: unable to delete {reference} (must be forced) - {reason}")]
    Conflict { reference: String, reason: String },
    #[error("{name}")]
    Read {
        name: String,
        #[source]
        source: UnpackError,
    },
    #[error(transparent)]
    Meta(#[from] MetaError),
}

impl ImageError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ImageError::NotFound(_) | ImageError::Ambiguous(_) => ErrorKind::NotFound,
            ImageError::Conflict { .. } => ErrorKind::FailedPrecondition,
            ImageError::Read { source, .. } => source.kind(),
            ImageError::Meta(e) => e.kind(),
        }
    }
}

/// Records `target` under `name`, or as a dangling image when there is none.
pub fn name_or_dangle(
    tx: &Tx<'_>,
    name: Option<&Reference>,
    target: &Descriptor,
) -> Result<ImageRecord, MetaError> {
    let n = match name {
        Some(n) => n.to_string(),
        None => dangling_name(&target.digest),
    };
    set_image_name(tx, &n, target)
}

/// The record name of `digest`'s dangling image.
pub fn dangling_name(digest: &Digest) -> String {
    format!("{DANGLING_PREFIX}{digest}")
}

/// Whether `rec` is a dangling record (an image without a name).
pub fn is_dangling(rec: &ImageRecord) -> bool {
    rec.name == dangling_name(&rec.target.digest)
}

/// The name as Docker prints it (`busybox:latest`), or the record name if it does not parse.
pub fn familiar(name: &str) -> String {
    Reference::parse(name).map_or_else(|_| name.to_owned(), |r| r.familiar())
}

// A migrated image keeps the Docker image ID (the config digest: IDs in Docker's classic
// store) in a label on every record of its target; strata's own IDs are target digests, as in
// Docker's containerd image store.
use strata_types::labels::DOCKER_IMAGE_ID;

/// The image ID of a record: its target's digest, or the Docker image ID a migrated image
/// keeps ([`DOCKER_IMAGE_ID`]).
pub fn image_id(rec: &ImageRecord) -> Digest {
    rec.labels
        .get(DOCKER_IMAGE_ID)
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| rec.target.digest.clone())
}

/// Docker's short ID: 12 hex digits, no algorithm.
pub fn short_id(digest: &Digest) -> &str {
    &digest.hex()[..12]
}

/// Points `name` at `target`. When the name pointed elsewhere and was the last name of its
/// old target, that target stays as a dangling image; a dangling record of `target` is
/// removed, since it has a name now.
pub fn set_image_name(
    tx: &Tx<'_>,
    name: &str,
    target: &Descriptor,
) -> Result<ImageRecord, MetaError> {
    let old = tx.image(name)?;
    if let Some(old) = &old
        && old.target.digest != target.digest
        && tx.images_by_target(&old.target.digest)?.len() == 1
    {
        tx.put_image(&dangling_name(&old.target.digest), &old.target, &old.labels)?;
    }
    let mut labels = Labels::new();
    if let Some(old) = old {
        labels = old.labels;
        if old.target.digest != target.digest {
            // An empty value removes the label: the old target's ID is not this one's.
            labels.insert(DOCKER_IMAGE_ID.to_owned(), String::new());
        }
    }
    // The Docker ID is the target's: a new name of a migrated image shows it too.
    if let Some(id) = tx
        .images_by_target(&target.digest)?
        .into_iter()
        .find_map(|r| r.labels.get(DOCKER_IMAGE_ID).cloned())
    {
        labels.insert(DOCKER_IMAGE_ID.to_owned(), id);
    }
    let rec = tx.put_image(name, target, &labels)?;
    let dangling = dangling_name(&target.digest);
    if name != dangling && tx.image(&dangling)?.is_some() {
        tx.delete_image(&dangling)?;
    }
    Ok(rec)
}

/// What an image argument resolved to.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The records the argument names: one for `name:tag`, the repository's names of the
    /// target for `name@digest`, every record of the target for an ID.
    pub named: Vec<ImageRecord>,
    /// Every record of the target (names and dangling record).
    pub all: Vec<ImageRecord>,
    /// The argument was an ID (full, short, `sha256:…`, or a dangling record's name).
    pub by_id: bool,
}

impl Resolved {
    pub fn target(&self) -> &Descriptor {
        &self.all[0].target
    }

    /// The names of the target, dangling record left out.
    pub fn names(&self) -> impl Iterator<Item = &ImageRecord> {
        self.all.iter().filter(|r| !is_dangling(r))
    }
}

/// `4` to `64` lower-case hex digits, optionally after `sha256:`: what may be an image ID.
fn id_prefix(arg: &str) -> Option<&str> {
    let hex = arg.strip_prefix("sha256:").unwrap_or(arg);
    ((4..=64).contains(&hex.len()) && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then_some(hex)
}

/// Resolves an image argument as Docker does: `name@digest` (the target, in that
/// repository), then a name (`busybox` is `docker.io/library/busybox:latest`), then a unique
/// prefix of an image ID.
pub fn resolve(tx: &Tx<'_>, arg: &str) -> Result<Resolved, ImageError> {
    let not_found = || {
        ImageError::NotFound(
            Reference::parse(arg).map_or_else(|_| arg.to_owned(), |r| r.familiar()),
        )
    };
    let by_target = |digest: &Digest, by_id: bool| -> Result<Resolved, ImageError> {
        let all = tx.images_by_target(digest)?;
        if all.is_empty() {
            return Err(not_found());
        }
        let named = if by_id { all.clone() } else { Vec::new() };
        Ok(Resolved { named, all, by_id })
    };
    if let Some(digest) = arg.strip_prefix(DANGLING_PREFIX) {
        let digest: Digest = digest.parse().map_err(|_| not_found())?;
        return by_target(&digest, true);
    }
    if arg.contains('@') {
        let reference = Reference::parse(arg).map_err(|_| not_found())?;
        let Some(digest) = reference.digest() else {
            return Err(not_found());
        };
        let mut resolved = by_target(digest, false)?;
        resolved.named = resolved
            .names()
            .filter(|r| Reference::parse(&r.name).is_ok_and(|n| n.name() == reference.name()))
            .cloned()
            .collect();
        if resolved.named.is_empty() {
            return Err(not_found());
        }
        return Ok(resolved);
    }
    if let Ok(reference) = Reference::parse(arg)
        && let Some(rec) = tx.image(&reference.to_string())?
    {
        let mut resolved = by_target(&rec.target.digest, false)?;
        resolved.named = vec![rec];
        return Ok(resolved);
    }
    let Some(prefix) = id_prefix(arg) else {
        return Err(not_found());
    };
    let mut target: Option<Digest> = None;
    for rec in tx.images()? {
        if rec.target.digest.hex().starts_with(prefix) || image_id(&rec).hex().starts_with(prefix) {
            match &target {
                Some(t) if *t != rec.target.digest => {
                    return Err(ImageError::Ambiguous(arg.to_owned()));
                }
                _ => target = Some(rec.target.digest),
            }
        }
    }
    match target {
        Some(t) => by_target(&t, true),
        None => Err(not_found()),
    }
}

/// One line of `rmi` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// A name was removed (familiar form).
    Untagged(String),
    /// The image's last record was removed (its ID).
    Deleted(Digest),
}

/// The image target container `c` uses: the one recorded at create, else what its image
/// argument resolves to now (containers made before the record existed).
fn container_target(tx: &Tx<'_>, c: &ContainerRecord) -> Result<Option<Digest>, MetaError> {
    if let Some(id) = c.labels.get(strata_types::labels::IMAGE_ID) {
        return Ok(id.parse().ok());
    }
    match resolve(tx, &c.image) {
        Ok(r) => Ok(Some(r.target().digest.clone())),
        Err(ImageError::NotFound(_) | ImageError::Ambiguous(_)) => Ok(None),
        Err(ImageError::Meta(e)) => Err(e),
        Err(e) => {
            tracing::debug!("container {}: {e}", c.id);
            Ok(None)
        }
    }
}

/// The containers that use the target `digest`.
pub fn containers_using(tx: &Tx<'_>, digest: &Digest) -> Result<Vec<String>, MetaError> {
    let mut ids = Vec::new();
    for c in tx.containers()? {
        if container_target(tx, &c)?.as_ref() == Some(digest) {
            ids.push(c.id);
        }
    }
    Ok(ids)
}

/// Every image record, and how many containers use each target.
pub fn records_and_users(
    tx: &Tx<'_>,
) -> Result<(Vec<ImageRecord>, HashMap<Digest, usize>), MetaError> {
    let mut users = HashMap::new();
    for c in tx.containers()? {
        if let Some(target) = container_target(tx, &c)? {
            *users.entry(target).or_insert(0) += 1;
        }
    }
    Ok((tx.images()?, users))
}

/// `rmi`: removes what `arg` names, as Docker with the containerd image store does.
///
/// - A name (`busybox`, `name@digest`) of an image that has other names: those names are
///   untagged, nothing more.
/// - The last name of an image: untagged and the image deleted, unless a container uses it
///   (refused; with `force` the name goes and the image stays, dangling).
/// - An ID: every name and the image are removed; refused without `force` when the image
///   has several names or a container uses it.
pub fn remove(tx: &Tx<'_>, arg: &str, force: bool) -> Result<Vec<Removal>, ImageError> {
    let resolved = resolve(tx, arg)?;
    let target = resolved.target().clone();
    let id = image_id(&resolved.all[0]);
    let names: Vec<&ImageRecord> = resolved.names().collect();
    let untag = |recs: &[&ImageRecord], out: &mut Vec<Removal>| -> Result<(), MetaError> {
        for rec in recs {
            tx.delete_image(&rec.name)?;
            if !is_dangling(rec) {
                out.push(Removal::Untagged(familiar(&rec.name)));
            }
        }
        Ok(())
    };
    let mut out = Vec::new();
    if !resolved.by_id && resolved.named.len() < names.len() {
        untag(&resolved.named.iter().collect::<Vec<_>>(), &mut out)?;
        return Ok(out);
    }
    let users = containers_using(tx, &target.digest)?;
    if let Some(user) = users.first() {
        let user = &user[..user.len().min(12)];
        if !force {
            return Err(if resolved.by_id {
                ImageError::Conflict {
                    reference: short_id(&id).to_owned(),
                    reason: format!("image is being used by stopped container {user}"),
                }
            } else {
                ImageError::Conflict {
                    reference: familiar(&resolved.named[0].name),
                    reason: format!(
                        "container {user} is using its referenced image {}",
                        short_id(&id)
                    ),
                }
            });
        }
        if !resolved.by_id {
            // Forced: the name goes, the image stays (dangling) for its container.
            tx.put_image(&dangling_name(&target.digest), &target, &names[0].labels)?;
            untag(&resolved.named.iter().collect::<Vec<_>>(), &mut out)?;
            return Ok(out);
        }
    }
    if resolved.by_id && names.len() > 1 && !force {
        return Err(ImageError::Conflict {
            reference: short_id(&id).to_owned(),
            reason: "image is referenced in multiple repositories".to_owned(),
        });
    }
    untag(&resolved.all.iter().collect::<Vec<_>>(), &mut out)?;
    out.push(Removal::Deleted(id));
    Ok(out)
}

/// Runs `f` in one write transaction; an error of any kind rolls it back.
pub fn write<T>(
    db: &Db,
    f: impl FnOnce(&Tx<'_>) -> Result<T, ImageError>,
) -> Result<T, ImageError> {
    let mut failure = None;
    let result = db.write(|tx| {
        f(tx).map_err(|e| match e {
            ImageError::Meta(m) => m,
            other => {
                failure = Some(other);
                // Only to roll back: replaced by `failure` below.
                MetaError::FailedPrecondition {
                    what: "image",
                    id: String::new(),
                    reason: "rolled back".to_owned(),
                }
            }
        })
    });
    match (result, failure) {
        (Ok(v), _) => Ok(v),
        (Err(_), Some(e)) => Err(e),
        (Err(e), None) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests;
