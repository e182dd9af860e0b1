//! `save`: images of the store as a tar archive in the format Docker 25+ writes — an OCI image
//! layout (`oci-layout`, `index.json`, `blobs/sha256/<hex>`) that also carries Docker's
//! `manifest.json` and `repositories`, so that `docker load`, `skopeo copy docker-archive:` and
//! OCI tools (`skopeo copy oci-archive:`, `ctr images import`) all read it.
//!
//! ```text
//! blobs/                   directory entries first, then every blob once, by name
//! blobs/sha256/<hex>       indexes, manifests, configs, layers: streamed from the content store
//! index.json               one entry per (image, name): io.containerd.image.name = full name,
//!                          org.opencontainers.image.ref.name = tag (containerd's exporter)
//! manifest.json            [{"Config","RepoTags","Layers"}]: per image, one platform's manifest
//! oci-layout               {"imageLayoutVersion":"1.0.0"}
//! repositories             {"busybox":{"latest":"<hex of the top layer>"}}
//! ```
//!
//! Blobs are never re-serialized: an index or manifest goes out byte for byte, so every digest
//! in the archive is the store's. A multi-platform index keeps its index and attestations, and
//! only the platforms whose manifest, config and layers are all present locally are written
//! ([`Saved::missing`] names the others), as Docker's exporter with `WithSkipMissing`. Images
//! are resolved as Docker does: `name:tag` saves that name, a name without tag every tag of the
//! repository, an ID or `name@digest` the image without a name.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};
use std::time::Duration;
use strata_remote::media::OCI_INDEX;

use serde::Serialize;
use strata_metadata::{ContentStore, LeaseGuard, LeaseResource, MetaError};
use strata_remote::Reference;
use strata_remote::media::{is_distributable, is_index, is_manifest};
use strata_types::oci::{ImageConfig, Index, IndexEntry, Manifest};
use strata_types::{Descriptor, Digest, ErrorKind, Matcher, Platform, is_attestation};

use crate::images::{self, ImageError, is_dangling};
use crate::store::Store;
use crate::unpack::{UnpackError, read_json};

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// How long a save's lease protects what it reads if the process dies.
const SAVE_LEASE: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaveError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{name}: blob {digest} is not present locally")]
    Missing { name: String, digest: Digest },
    #[error("{name}: none of its platforms is present locally")]
    NothingPresent { name: String },
    #[error("{name}: no manifest for platform {platform} present locally")]
    NoPlatform { name: String, platform: String },
    #[error("{name}: media type {media_type:?} is neither a manifest nor an index")]
    MediaType { name: String, media_type: String },
    #[error("{name}")]
    Read {
        name: String,
        #[source]
        source: UnpackError,
    },
    #[error("blob {digest}: the store holds {actual} bytes, its descriptor says {expected}")]
    Size {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("write archive")]
    Write(#[source] io::Error),
    #[error("{name}")]
    Restore {
        name: String,
        #[source]
        source: Box<crate::discard::RestoreError>,
    },
    #[error(transparent)]
    Meta(#[from] MetaError),
}

impl SaveError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SaveError::Image(e) => e.kind(),
            SaveError::Missing { .. }
            | SaveError::NothingPresent { .. }
            | SaveError::NoPlatform { .. } => ErrorKind::NotFound,
            SaveError::MediaType { .. } => ErrorKind::InvalidArgument,
            SaveError::Read { source, .. } => source.kind(),
            SaveError::Size { .. } => ErrorKind::DataMismatch,
            SaveError::Write(_) => ErrorKind::Internal,
            SaveError::Restore { source, .. } => source.kind(),
            SaveError::Meta(e) => e.kind(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct SaveOptions {
    /// Save only this platform's manifest of a multi-platform image (Docker's `--platform`).
    pub platform: Option<Platform>,
}

/// What a save wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Saved {
    /// The images (familiar name, or ID) and the platforms of their index left out because
    /// they are not (completely) present locally.
    pub missing: Vec<(String, Vec<String>)>,
    /// Blobs written.
    pub blobs: usize,
    /// Discarded layers that could not be re-fetched, rebuilt under new digests: the archive
    /// holds rewritten manifests for their images.
    pub rebuilt: Vec<crate::discard::Rebuilt>,
}

/// One image to save: its target and the name it goes under (none for an ID).
#[derive(Debug, Clone)]
struct Export {
    target: IndexEntry,
    name: Option<Reference>,
    display: String,
}

/// One `manifest.json` entry.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

/// Writes the images `args` name to `out` as a tar archive.
pub fn save(
    store: &Store,
    args: &[String],
    opts: &SaveOptions,
    out: &mut dyn Write,
) -> Result<Saved, SaveError> {
    let content = store.content();
    let mut exports = Vec::new();
    for arg in args {
        exports.extend(resolve(store, arg)?);
    }
    if let Some(platform) = &opts.platform {
        for export in &mut exports {
            export.target = pick_platform(content, export, platform)?;
        }
    }
    let lease = crate::gc::lease(store.db(), "save", SAVE_LEASE)?;
    // Discarded layers come back first (from a registry the images' names point at, else
    // rebuilt); the archive then names what was brought back.
    let registries = exports
        .iter()
        .filter_map(|e| e.name.as_ref().map(|n| n.registry().to_owned()))
        .collect();
    let mut restorer = crate::discard::Restorer::new(store, &lease, registries);
    let mut restored = Ok(());
    for export in &mut exports {
        match restorer.image(&export.target.descriptor) {
            Ok(d) => {
                export.target.descriptor.digest = d.digest;
                export.target.descriptor.size = d.size;
            }
            Err(source) => {
                restored = Err(SaveError::Restore {
                    name: export.display.clone(),
                    source: Box::new(source),
                });
                break;
            }
        }
    }
    let result = restored.and_then(|()| save_leased(content, &exports, &lease, out));
    let rebuilt = std::mem::take(&mut restorer.rebuilt);
    restorer.finish();
    drop(lease);
    let mut saved = result?;
    saved.rebuilt = rebuilt;
    Ok(saved)
}

fn save_leased(
    content: &ContentStore,
    exports: &[Export],
    lease: &LeaseGuard,
    out: &mut dyn Write,
) -> Result<Saved, SaveError> {
    let mut saved = Saved::default();
    // Blob name → descriptor; a BTreeMap, so the archive is sorted and each blob once.
    let mut blobs: BTreeMap<String, Descriptor> = BTreeMap::new();
    let mut index_entries = Vec::new();
    // manifest.json: one entry per manifest digest, names gathered in order.
    let mut docker: Vec<(Digest, DockerManifest)> = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut walked: HashMap<Digest, Option<Descriptor>> = HashMap::new();

    for export in exports {
        let target = &export.target.descriptor;
        let read_err = |source| SaveError::Read {
            name: export.display.clone(),
            source,
        };
        let chosen = match walked.get(&target.digest) {
            Some(chosen) => chosen.clone(),
            None => {
                let chosen = if is_manifest(&target.media_type) {
                    add_manifest(content, target, &mut blobs, &export.display)?;
                    Some(target.clone())
                } else if is_index(&target.media_type) {
                    let (chosen, missing) =
                        add_index(content, target, &mut blobs, &export.display)?;
                    if !missing.is_empty() {
                        saved.missing.push((export.display.clone(), missing));
                    }
                    Some(chosen)
                } else {
                    return Err(SaveError::MediaType {
                        name: export.display.clone(),
                        media_type: target.media_type.clone(),
                    });
                };
                walked.insert(target.digest.clone(), chosen.clone());
                chosen
            }
        };
        let mut entry = export.target.clone();
        entry.descriptor.annotations.remove(CONTAINERD_NAME);
        entry.descriptor.annotations.remove(REF_NAME);
        if let Some(name) = &export.name {
            entry
                .descriptor
                .annotations
                .insert(CONTAINERD_NAME.to_owned(), name.to_string());
            entry.descriptor.annotations.insert(
                REF_NAME.to_owned(),
                name.tag().unwrap_or_default().to_owned(),
            );
        }
        index_entries.push(entry);

        let Some(chosen) = chosen else { continue };
        let (manifest, _): (Manifest, _) =
            read_json(content, "manifest", &chosen).map_err(read_err)?;
        let pos = match docker.iter().position(|(d, _)| *d == chosen.digest) {
            Some(pos) => pos,
            None => {
                docker.push((
                    chosen.digest.clone(),
                    DockerManifest {
                        config: blob_name(&manifest.config.digest),
                        repo_tags: Vec::new(),
                        layers: manifest
                            .layers
                            .iter()
                            .map(|l| blob_name(&l.digest))
                            .collect(),
                    },
                ));
                docker.len() - 1
            }
        };
        if let Some(name) = &export.name {
            let familiar = name.familiar();
            if !docker[pos].1.repo_tags.contains(&familiar) {
                docker[pos].1.repo_tags.push(familiar);
            }
            if let (Some(tag), Some(top)) = (name.tag(), manifest.layers.last()) {
                repositories
                    .entry(name.familiar_name())
                    .or_default()
                    .insert(tag.to_owned(), top.digest.hex().to_owned());
            }
        }
    }

    lease.add_all(
        blobs
            .values()
            .map(|desc| LeaseResource::Content(desc.digest.clone())),
    )?;

    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": index_entries,
    });
    let docker: Vec<DockerManifest> = docker.into_iter().map(|(_, m)| m).collect();
    let mut files: Vec<(&str, Vec<u8>)> = vec![
        ("index.json", json(&index)),
        ("manifest.json", json(&docker)),
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
    ];
    if !repositories.is_empty() {
        files.push(("repositories", json(&repositories)));
    }

    let mut tar = tar::Builder::new(out);
    let werr = SaveError::Write;
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut h = header(tar::EntryType::Directory, 0, 0o755);
        tar.append_data(&mut h, dir, io::empty()).map_err(werr)?;
    }
    for (name, desc) in &blobs {
        let blob = content.reader(&desc.digest)?;
        if blob.size() != desc.size {
            return Err(SaveError::Size {
                digest: desc.digest.clone(),
                expected: desc.size,
                actual: blob.size(),
            });
        }
        let mut h = header(tar::EntryType::Regular, desc.size, 0o444);
        let mut counted = Counted {
            inner: blob.take(desc.size),
            n: 0,
        };
        tar.append_data(&mut h, name, &mut counted).map_err(werr)?;
        if counted.n != desc.size {
            return Err(SaveError::Size {
                digest: desc.digest.clone(),
                expected: desc.size,
                actual: counted.n,
            });
        }
        saved.blobs += 1;
    }
    for (name, bytes) in &files {
        let mut h = header(tar::EntryType::Regular, bytes.len() as u64, 0o644);
        tar.append_data(&mut h, name, bytes.as_slice())
            .map_err(werr)?;
    }
    let out = tar.into_inner().map_err(werr)?;
    out.flush().map_err(werr)?;
    Ok(saved)
}

/// JSON bytes (serde_json cannot fail on these types: string keys, no floats).
fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// A reader that counts what it gave.
struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn blob_name(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// Adds a manifest, its config and its distributable layers; all must be present.
fn add_manifest(
    content: &ContentStore,
    desc: &Descriptor,
    blobs: &mut BTreeMap<String, Descriptor>,
    name: &str,
) -> Result<(), SaveError> {
    match manifest_blobs(content, desc, name)? {
        Ok(list) => {
            for d in list {
                blobs.insert(blob_name(&d.digest), d);
            }
            Ok(())
        }
        Err(digest) => Err(SaveError::Missing {
            name: name.to_owned(),
            digest,
        }),
    }
}

/// The blobs of a manifest (itself, config, distributable layers), or the first one missing.
fn manifest_blobs(
    content: &ContentStore,
    desc: &Descriptor,
    name: &str,
) -> Result<Result<Vec<Descriptor>, Digest>, SaveError> {
    if !content.local().exists(&desc.digest) || content.info(&desc.digest).is_err() {
        return Ok(Err(desc.digest.clone()));
    }
    let (manifest, _): (Manifest, _) =
        read_json(content, "manifest", desc).map_err(|source| SaveError::Read {
            name: name.to_owned(),
            source,
        })?;
    let mut list = vec![strip(desc), strip(&manifest.config)];
    list.extend(
        manifest
            .layers
            .iter()
            .filter(|l| is_distributable(&l.media_type))
            .map(strip),
    );
    for d in &list[1..] {
        if content.info(&d.digest).is_err() {
            return Ok(Err(d.digest.clone()));
        }
    }
    Ok(Ok(list))
}

fn strip(d: &Descriptor) -> Descriptor {
    Descriptor::new(d.media_type.clone(), d.digest.clone(), d.size)
}

/// Adds an index and every manifest of it whose blobs are all present. Returns the manifest
/// for `manifest.json` (the host's platform, else the best present) and the platforms missing.
fn add_index(
    content: &ContentStore,
    desc: &Descriptor,
    blobs: &mut BTreeMap<String, Descriptor>,
    name: &str,
) -> Result<(Descriptor, Vec<String>), SaveError> {
    if content.info(&desc.digest).is_err() {
        return Err(SaveError::Missing {
            name: name.to_owned(),
            digest: desc.digest.clone(),
        });
    }
    let (index, _): (Index, _) =
        read_json(content, "index", desc).map_err(|source| SaveError::Read {
            name: name.to_owned(),
            source,
        })?;
    blobs.insert(blob_name(&desc.digest), strip(desc));
    let mut missing = Vec::new();
    let mut present = Vec::new();
    for (i, entry) in index.manifests.iter().enumerate() {
        let d = &entry.descriptor;
        if !is_manifest(&d.media_type) {
            // A nested index or an artifact: kept when present, not walked.
            if content.info(&d.digest).is_ok() {
                blobs.insert(blob_name(&d.digest), strip(d));
            }
            continue;
        }
        match manifest_blobs(content, d, name)? {
            Ok(list) => {
                for b in list {
                    blobs.insert(blob_name(&b.digest), b);
                }
                present.push(i);
            }
            Err(_) if is_attestation(&d.annotations) => {}
            Err(_) => missing.push(
                entry
                    .platform
                    .as_ref()
                    .map_or_else(|| d.digest.to_string(), |p| p.normalize().to_string()),
            ),
        }
    }
    let candidates = |m: &Matcher| {
        m.order(present.iter().map(|&i| {
            (
                index.manifests[i].platform.as_ref(),
                &index.manifests[i].descriptor.annotations,
            )
        }))
        .first()
        .map(|&k| index.manifests[present[k]].descriptor.clone())
    };
    let chosen = candidates(&Matcher::host())
        .or_else(|| candidates(&Matcher::all()))
        .ok_or_else(|| SaveError::NothingPresent {
            name: name.to_owned(),
        })?;
    Ok((chosen, missing))
}

/// `--platform`: the image's manifest for `platform` (it must be present).
fn pick_platform(
    content: &ContentStore,
    export: &Export,
    platform: &Platform,
) -> Result<IndexEntry, SaveError> {
    let target = &export.target.descriptor;
    let name = &export.display;
    let read_err = |source| SaveError::Read {
        name: name.clone(),
        source,
    };
    let no_platform = || SaveError::NoPlatform {
        name: name.clone(),
        platform: platform.to_string(),
    };
    let matcher = Matcher::only(platform);
    if is_manifest(&target.media_type) {
        let (manifest, _): (Manifest, _) =
            read_json(content, "manifest", target).map_err(read_err)?;
        let (config, _): (ImageConfig, _) =
            read_json(content, "config", &manifest.config).map_err(read_err)?;
        let own = Platform::new(&config.os, &config.architecture, config.variant.as_deref());
        if !matcher.matches(&own) {
            return Err(no_platform());
        }
        return Ok(export.target.clone());
    }
    if !is_index(&target.media_type) {
        return Err(SaveError::MediaType {
            name: name.clone(),
            media_type: target.media_type.clone(),
        });
    }
    let (index, _): (Index, _) = read_json(content, "index", target).map_err(read_err)?;
    let order = matcher.order(
        index
            .manifests
            .iter()
            .map(|e| (e.platform.as_ref(), &e.descriptor.annotations)),
    );
    for i in order {
        let entry = &index.manifests[i];
        if is_manifest(&entry.descriptor.media_type)
            && manifest_blobs(content, &entry.descriptor, name)?.is_ok()
        {
            return Ok(entry.clone());
        }
    }
    Err(no_platform())
}

/// What one IMAGE argument saves, as Docker's `save`: a name with a tag is that image under
/// that name; a name without tag every tag of the repository; an ID or `name@digest` the
/// image without a name.
fn resolve(store: &Store, arg: &str) -> Result<Vec<Export>, SaveError> {
    let db = store.db();
    let entry = |desc: &Descriptor| IndexEntry {
        descriptor: desc.clone(),
        platform: None,
    };
    let resolved = db.read(|tx| Ok(images::resolve(tx, arg)))?;
    let by_digest = arg.contains('@');
    if let Ok(r) = &resolved
        && (r.by_id || by_digest)
    {
        let target = r.target();
        return Ok(vec![Export {
            target: entry(target),
            name: None,
            display: target.digest.to_string(),
        }]);
    }
    if !by_digest && !has_tag(arg) {
        let reference = Reference::parse(arg).map_err(|_| ImageError::NotFound(arg.to_owned()))?;
        let mut out = Vec::new();
        for rec in db.read(|tx| tx.images())? {
            if is_dangling(&rec) {
                continue;
            }
            let Ok(r) = Reference::parse(&rec.name) else {
                continue;
            };
            if r.name() == reference.name() && r.tag().is_some() && r.digest().is_none() {
                out.push(Export {
                    target: entry(&rec.target),
                    display: r.familiar(),
                    name: Some(r),
                });
            }
        }
        if out.is_empty() {
            return Err(ImageError::NotFound(reference.familiar()).into());
        }
        return Ok(out);
    }
    let r = resolved?;
    let rec = &r.named[0];
    let name = Reference::parse(&rec.name).ok();
    Ok(vec![Export {
        target: entry(&rec.target),
        display: name
            .as_ref()
            .map_or_else(|| rec.name.clone(), Reference::familiar),
        name,
    }])
}

/// Whether a name argument carries a tag (`:` in its last path component).
fn has_tag(arg: &str) -> bool {
    let last = arg.rsplit('/').next().unwrap_or(arg);
    last.contains(':')
}
