//! What a push sends, decided from the store alone (and, for an index with platforms absent
//! locally, from what the registry holds).

use crate::unpack::read_json;
use std::collections::HashSet;
use std::path::PathBuf;
use strata_metadata::ContentStore;
use strata_remote::Reference;
use strata_remote::media::{is_distributable, is_index, is_manifest};
use strata_types::is_attestation;
use strata_types::oci::{ImageConfig, Index, Manifest};
use strata_types::{Descriptor, Digest, Matcher, Platform};

use super::*;

/// A blob to send.
#[derive(Debug, Clone)]
pub(super) struct BlobJob {
    pub(super) desc: Descriptor,
    pub(super) path: PathBuf,
    /// Another repository of the target registry known to hold the blob.
    pub(super) mount_from: Option<String>,
}

/// Everything a push sends, decided before the first request.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) target: Descriptor,
    /// Manifests and indexes to `PUT`, children first; the last is `target`.
    pub(super) documents: Vec<(Descriptor, Vec<u8>)>,
    pub(super) blobs: Vec<BlobJob>,
    pub(super) index: Option<Descriptor>,
    pub(super) missing: Vec<String>,
}

/// What to send: decided from the store alone, or also on what the registry holds.
#[derive(Debug)]
pub(super) enum Choice {
    Plan(Plan),
    /// An index with manifests absent locally: all of it if the registry holds every manifest
    /// in `absent` already (a push back to where it came from), else `fallback`.
    IfRegistryHas {
        absent: Vec<Digest>,
        whole: Box<Plan>,
        fallback: Result<Plan, PushError>,
    },
}

impl Choice {
    pub(super) fn decide(self, registry_has_absent: bool) -> Result<Plan, PushError> {
        match self {
            Choice::Plan(p) => Ok(p),
            Choice::IfRegistryHas { whole, .. } if registry_has_absent => Ok(*whole),
            Choice::IfRegistryHas { fallback, .. } => fallback,
        }
    }
}

impl Plan {
    /// Every blob, manifest and index the plan sends.
    pub(super) fn digests(&self) -> impl Iterator<Item = &Digest> {
        self.blobs
            .iter()
            .map(|b| &b.desc.digest)
            .chain(self.documents.iter().map(|(d, _)| &d.digest))
    }
}

pub(super) fn read_index(
    content: &ContentStore,
    name: &str,
    desc: &Descriptor,
) -> Result<(Index, Vec<u8>), PushError> {
    read_json(content, "index", desc).map_err(|source| PushError::Read {
        name: name.to_owned(),
        source,
    })
}

/// A manifest or index and what it needs, as far as it is present locally.
#[derive(Debug, Default)]
pub(super) struct Part {
    pub(super) documents: Vec<(Descriptor, Vec<u8>)>,
    pub(super) blobs: Vec<Descriptor>,
    /// The first thing it needs that is not present locally.
    pub(super) absent: Option<Digest>,
}

impl Part {
    fn absent(digest: &Digest) -> Part {
        Part {
            absent: Some(digest.clone()),
            ..Part::default()
        }
    }

    fn add(&mut self, other: Part) {
        self.documents.extend(other.documents);
        self.blobs.extend(other.blobs);
        if self.absent.is_none() {
            self.absent = other.absent;
        }
    }
}

/// Reads `desc` and everything under it that is present.
pub(super) fn walk(
    content: &ContentStore,
    name: &str,
    desc: &Descriptor,
) -> Result<Part, PushError> {
    if !present(content, &desc.digest)? {
        return Ok(Part::absent(&desc.digest));
    }
    let read = |source| PushError::Read {
        name: name.to_owned(),
        source,
    };
    let mut part = Part::default();
    if is_manifest(&desc.media_type) {
        let (manifest, bytes): (Manifest, _) =
            read_json(content, "manifest", desc).map_err(read)?;
        let needed = std::iter::once(&manifest.config)
            .chain(&manifest.layers)
            .filter(|b| is_distributable(&b.media_type));
        for blob in needed {
            if present(content, &blob.digest)? {
                part.blobs.push(blob.clone());
            } else if part.absent.is_none() {
                part.absent = Some(blob.digest.clone());
            }
        }
        part.documents.push((desc.clone(), bytes));
    } else if is_index(&desc.media_type) {
        let (index, bytes) = read_index(content, name, desc)?;
        for entry in &index.manifests {
            part.add(walk(content, name, &entry.descriptor)?);
        }
        part.documents.push((desc.clone(), bytes));
    } else {
        return Err(PushError::MediaType {
            name: name.to_owned(),
            digest: desc.digest.clone(),
            media_type: desc.media_type.clone(),
        });
    }
    Ok(part)
}

/// The platform a single-image manifest's config says it is for.
pub(super) fn config_platform(
    content: &ContentStore,
    name: &str,
    manifest: &Descriptor,
) -> Result<Platform, PushError> {
    let read = |source| PushError::Read {
        name: name.to_owned(),
        source,
    };
    let (m, _): (Manifest, _) = read_json(content, "manifest", manifest).map_err(read)?;
    let (c, _): (ImageConfig, _) = read_json(content, "config", &m.config).map_err(read)?;
    Ok(Platform::new(&c.os, &c.architecture, c.variant.as_deref()))
}

pub(super) fn platform_name(p: Option<&Platform>) -> String {
    p.map_or_else(|| "unknown".to_owned(), |p| p.normalize().to_string())
}

/// Decides what to send for `target` (see the module documentation).
pub(super) fn plan(
    content: &ContentStore,
    name: &str,
    target: &Descriptor,
    platform: Option<&Platform>,
    dest: &Reference,
) -> Result<Choice, PushError> {
    let missing_err = |digest: Digest| PushError::Missing {
        name: name.to_owned(),
        digest,
    };
    if !is_index(&target.media_type) {
        let part = walk(content, name, target)?;
        if let Some(d) = part.absent {
            return Err(missing_err(d));
        }
        if let Some(p) = platform {
            let own = config_platform(content, name, target)?;
            if !Matcher::exact(p).matches(&own) {
                return Err(PushError::NoPlatform {
                    name: name.to_owned(),
                    platform: platform_name(Some(p)),
                    available: vec![platform_name(Some(&own))],
                });
            }
        }
        return finish(content, dest, target.clone(), part, None, Vec::new()).map(Choice::Plan);
    }
    if !present(content, &target.digest)? {
        return Err(missing_err(target.digest.clone()));
    }
    let (index, index_bytes) = read_index(content, name, target)?;
    let mut parts = Vec::with_capacity(index.manifests.len());
    for entry in &index.manifests {
        parts.push(walk(content, name, &entry.descriptor)?);
    }
    let missing: Vec<String> = index
        .manifests
        .iter()
        .zip(&parts)
        .filter(|(_, p)| p.absent.is_some())
        .map(|(e, _)| {
            if is_attestation(&e.descriptor.annotations) {
                format!("attestation {}", e.descriptor.digest.short())
            } else {
                platform_name(e.platform.as_ref())
            }
        })
        .collect();
    if platform.is_none() && missing.is_empty() {
        let part = walk(content, name, target)?;
        return finish(content, dest, target.clone(), part, None, Vec::new()).map(Choice::Plan);
    }
    if platform.is_some() {
        return one_platform(
            content, name, dest, target, &index, parts, platform, missing,
        )
        .map(Choice::Plan);
    }
    // The whole index if the registry has what is absent here: what is present, then it.
    let absent = index
        .manifests
        .iter()
        .zip(&parts)
        .filter(|(_, p)| p.absent.is_some())
        .map(|(e, _)| e.descriptor.digest.clone())
        .collect();
    let mut whole = Part::default();
    for p in parts.iter().filter(|p| p.absent.is_none()) {
        whole.documents.extend(p.documents.iter().cloned());
        whole.blobs.extend(p.blobs.iter().cloned());
    }
    whole.documents.push((target.clone(), index_bytes));
    let whole = finish(content, dest, target.clone(), whole, None, missing.clone())?;
    Ok(Choice::IfRegistryHas {
        absent,
        whole: Box::new(whole),
        fallback: one_platform(content, name, dest, target, &index, parts, None, missing),
    })
}

/// One platform's manifest of `index` instead of the index: `platform`'s, or without one the
/// only one present or else the host's (as Docker decides).
#[allow(clippy::too_many_arguments)]
pub(super) fn one_platform(
    content: &ContentStore,
    name: &str,
    dest: &Reference,
    target: &Descriptor,
    index: &Index,
    mut parts: Vec<Part>,
    platform: Option<&Platform>,
    missing: Vec<String>,
) -> Result<Plan, PushError> {
    let missing_err = |digest: Digest| PushError::Missing {
        name: name.to_owned(),
        digest,
    };
    let complete: Vec<usize> = (0..parts.len())
        .filter(|&i| {
            parts[i].absent.is_none() && is_manifest(&index.manifests[i].descriptor.media_type)
        })
        .collect();
    let present_names = |entries: &[usize]| -> Vec<String> {
        entries
            .iter()
            .filter(|&&i| !is_attestation(&index.manifests[i].descriptor.annotations))
            .map(|&i| platform_name(index.manifests[i].platform.as_ref()))
            .collect()
    };
    let matcher = match platform {
        Some(p) => Matcher::exact(p),
        None => Matcher::host(),
    };
    let ranked = matcher.order(complete.iter().map(|&i| {
        (
            index.manifests[i].platform.as_ref(),
            &index.manifests[i].descriptor.annotations,
        )
    }));
    let candidates = present_names(&complete);
    let chosen = match (platform, ranked.first(), candidates.len()) {
        (_, Some(&best), _) => complete[best],
        (None, None, 1) => complete
            .iter()
            .copied()
            .find(|&i| !is_attestation(&index.manifests[i].descriptor.annotations))
            .ok_or_else(|| missing_err(target.digest.clone()))?,
        (Some(p), None, _) => {
            return Err(PushError::NoPlatform {
                name: name.to_owned(),
                platform: platform_name(Some(p)),
                available: candidates,
            });
        }
        (None, None, 0) => {
            return Err(PushError::NoPlatform {
                name: name.to_owned(),
                platform: "any".to_owned(),
                available: candidates,
            });
        }
        (None, None, _) => {
            return Err(PushError::Ambiguous {
                name: name.to_owned(),
                index: target.digest.clone(),
                missing,
                present: candidates,
            });
        }
    };
    let entry = &index.manifests[chosen];
    let mut chosen_desc = entry.descriptor.clone();
    // The index entry's annotations describe the entry, not the manifest.
    chosen_desc.annotations.clear();
    let part = std::mem::take(&mut parts[chosen]);
    let replaced = platform.is_none().then(|| target.clone());
    let missing = if platform.is_none() {
        missing
    } else {
        Vec::new()
    };
    finish(content, dest, chosen_desc, part, replaced, missing)
}

/// Deduplicates a part's blobs and documents and finds where each blob can be mounted from.
pub(super) fn finish(
    content: &ContentStore,
    dest: &Reference,
    target: Descriptor,
    part: Part,
    index: Option<Descriptor>,
    missing: Vec<String>,
) -> Result<Plan, PushError> {
    let mut seen = HashSet::new();
    let mut blobs = Vec::new();
    for desc in part.blobs {
        if !seen.insert(desc.digest.clone()) {
            continue;
        }
        let labels = content
            .db()
            .read(|tx| tx.blob(&desc.digest))?
            .map(|b| b.labels)
            .unwrap_or_default();
        blobs.push(BlobJob {
            path: content.local().blob_path(&desc.digest),
            mount_from: mount_sources(&labels, dest.registry(), dest.repository())
                .into_iter()
                .next(),
            desc,
        });
    }
    let mut documents = Vec::new();
    let mut seen = HashSet::new();
    for (desc, bytes) in part.documents {
        if seen.insert(desc.digest.clone()) {
            documents.push((desc, bytes));
        }
    }
    Ok(Plan {
        target,
        documents,
        blobs,
        index,
        missing,
    })
}
