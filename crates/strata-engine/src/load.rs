//! `load`: images from an OCI image layout — a directory, or a tar of one as `docker save`
//! (Docker 25+), `skopeo copy oci-archive:` and `ctr images export` write it — or from Docker's
//! legacy archive (`manifest.json` with Config / RepoTags / Layers, no `index.json`: `docker
//! save` before 25, `skopeo copy docker-archive:`). A tar may be gzip- or zstd-compressed
//! (detected from its first bytes).
//!
//! Every `blobs/sha256/<hex>` entry is ingested verified against the digest its path names (a
//! mismatch fails the load), under a lease that protects it until the one transaction that
//! records the image names. Any other file is written to an ingest keyed by its path, since a
//! tar is read once and `manifest.json` may come after the layers; once the archive is read,
//! the files a legacy `manifest.json` names are committed under the digest computed while
//! they were written (for an uncompressed layer that is also its diffID), a manifest is
//! synthesized for each image (OCI media types), and the other ingests are dropped. Each
//! image's manifest for this host's platform is then unpacked into snapshots, and only when
//! all of that succeeded are the names recorded, in one transaction: a failed load leaves no
//! image. An image without a name is recorded as dangling (`moby-dangling@<digest>`), as
//! Docker does. Entry names in the tar are never used as paths on disk.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;
use strata_remote::media::{OCI_CONFIG, OCI_LAYER, OCI_MANIFEST};

use strata_content::{ContentError, Writer, WriterOptions};
use strata_metadata::{ContentStore, Labels, LeaseGuard, LeaseResource, MetaError};
use strata_remote::Reference;
use strata_remote::media::{is_index, is_manifest};
use strata_snapshot::Snapshotter;
use strata_types::oci::{ImageConfig, Index, Manifest};
use strata_types::{Descriptor, Digest, ErrorKind, Matcher};

use crate::store::Store;
use crate::unpack::{MAX_JSON_BLOB, UnpackError, read_json, unpack};

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// How long a load's lease protects what it wrote if the process dies before recording
/// ([`Store::with_lease_expiry`] overrides it).
const LOAD_LEASE: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{source_name}: not a readable tar archive")]
    Tar {
        source_name: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}: neither an OCI image layout (index.json) nor a Docker archive (manifest.json)")]
    NotALayout(String),
    #[error("{0}: manifest.json is larger than the {MAX_JSON_BLOB} bytes allowed")]
    ManifestTooLarge(String),
    #[error("{source_name}: manifest.json")]
    DockerManifest {
        source_name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{source_name}: manifest.json names {path:?}, which is not a path inside the archive")]
    BadPath { source_name: String, path: String },
    #[error("{source_name}: manifest.json names {path:?}, which the archive does not contain")]
    MissingPath { source_name: String, path: String },
    #[error("{0}: index.json is larger than the {MAX_JSON_BLOB} bytes allowed")]
    IndexTooLarge(String),
    #[error("{source_name}: blob {entry:?}")]
    Blob {
        source_name: String,
        entry: String,
        #[source]
        source: Box<MetaError>,
    },
    #[error("{source_name}: entry {entry:?} is not a valid blob name (blobs/sha256/<64 hex>)")]
    BadBlobName { source_name: String, entry: String },
    #[error("{source_name}: index.json")]
    Index {
        source_name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{source_name}: index.json names blob {digest}, which the layout does not contain")]
    Missing { source_name: String, digest: Digest },
    #[error("{source_name}: {name:?} is not a valid image name")]
    Name {
        source_name: String,
        name: String,
        #[source]
        source: Box<strata_remote::RemoteError>,
    },
    #[error("{name}: no manifest for platform {platform} in its index")]
    NoPlatform { name: String, platform: String },
    #[error("{name}: media type {media_type:?} is neither a manifest nor an index")]
    MediaType { name: String, media_type: String },
    #[error("{name}")]
    Unpack {
        name: String,
        #[source]
        source: UnpackError,
    },
    #[error(transparent)]
    Meta(#[from] MetaError),
}

impl LoadError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            LoadError::Blob { source, .. } => source.kind(),
            LoadError::Meta(source) => source.kind(),
            LoadError::Unpack { source, .. } => source.kind(),
            LoadError::Io { .. } => ErrorKind::Internal,
            _ => ErrorKind::InvalidArgument,
        }
    }
}

/// One image the load recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The full name, or `None` for an image the layout does not name.
    pub name: Option<Reference>,
    pub target: Descriptor,
    /// The image's top snapshot (chainID), when it was unpacked.
    pub top: Option<Digest>,
}

#[derive(Debug)]
pub struct LoadOptions<'a> {
    /// Name for layout entries whose `ref.name` is only a tag: `BASE:TAG` (as `ctr images
    /// import --base-name`).
    pub base_name: Option<&'a str>,
    pub platform: Matcher,
}

/// Where a load reads from.
pub enum LoadSource<'a> {
    /// A layout directory, or a tar file of one.
    Path(&'a Path),
    /// A tar stream (stdin).
    Stream(&'a mut dyn Read),
}

impl std::fmt::Debug for LoadSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadSource::Path(p) => f.debug_tuple("Path").field(p).finish(),
            LoadSource::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// Loads the layout from `source` into the store and unpacks each image for `opts.platform`.
pub fn load(
    store: &Store,
    sn: &dyn Snapshotter,
    source: LoadSource<'_>,
    opts: &LoadOptions<'_>,
) -> Result<Vec<Loaded>, LoadError> {
    let (content, db) = (store.content(), store.db());
    let source_name = match &source {
        LoadSource::Path(p) => p.display().to_string(),
        LoadSource::Stream(_) => "stdin".to_owned(),
    };
    let lease = crate::gc::lease(db, "load", store.lease_expiry(LOAD_LEASE))?;
    // The lease ends as it goes, after this: recorded images then hold what they need, and
    // the rest is for garbage collection.
    load_leased(content, db, sn, source, &source_name, &lease, opts)
}

fn load_leased(
    content: &ContentStore,
    db: &strata_metadata::Db,
    sn: &dyn Snapshotter,
    source: LoadSource<'_>,
    source_name: &str,
    lease: &LeaseGuard,
    opts: &LoadOptions<'_>,
) -> Result<Vec<Loaded>, LoadError> {
    let read = match source {
        LoadSource::Path(path) => {
            let io = |source| LoadError::Io {
                path: path.to_owned(),
                source,
            };
            if fs::metadata(path).map_err(io)?.is_dir() {
                Archive {
                    index: read_layout_dir(content, path, source_name, lease)?,
                    ..Archive::default()
                }
            } else {
                read_archive(content, File::open(path).map_err(io)?, source_name, lease)?
            }
        }
        LoadSource::Stream(r) => read_archive(content, r, source_name, lease)?,
    };
    let Archive {
        index: index_bytes,
        docker_manifest,
        mut files,
    } = read;
    let result = match (index_bytes, docker_manifest) {
        (Some(index_bytes), _) => layout_images(content, &index_bytes, source_name, opts.base_name),
        (None, Some(manifest)) => legacy_images(content, &manifest, &mut files, source_name, lease),
        (None, None) => Err(LoadError::NotALayout(source_name.to_owned())),
    };
    // Files no manifest named are not kept.
    for (_, file) in files.drain() {
        if let FileState::Pending(writer, _) = file {
            let r#ref = writer.ingest_ref().to_owned();
            drop(writer);
            if let Err(e) = content.abort(&r#ref) {
                tracing::debug!("drop ingest {ref}: {e}");
            }
        }
    }
    let mut images = result?;
    // The garbage collector's edges, as a pull sets them: index → manifests → config, layers.
    for image in &images {
        label_tree(content, &image.target, 0).map_err(|source| LoadError::Blob {
            source_name: source_name.to_owned(),
            entry: image.target.digest.to_string(),
            source: Box::new(source),
        })?;
    }

    // Unpack first, name last: a load that fails leaves no image behind.
    for image in &mut images {
        let display = image
            .name
            .as_ref()
            .map_or_else(|| image.target.digest.to_string(), Reference::familiar);
        let unpack_err = |source| LoadError::Unpack {
            name: display.clone(),
            source,
        };
        let manifest_desc = platform_manifest(content, &image.target, &opts.platform, &display)?;
        let (manifest, _): (Manifest, _) =
            read_json(content, "manifest", &manifest_desc).map_err(unpack_err)?;
        let (config, _): (ImageConfig, _) =
            read_json(content, "config", &manifest.config).map_err(unpack_err)?;
        let unpacked = unpack(content, sn, &manifest, &config, Some(lease)).map_err(unpack_err)?;
        image.top = unpacked.chain_ids.last().cloned();
        let labels = crate::gc::config_labels(sn.name(), image.top.as_ref());
        if !labels.is_empty() {
            content.update_labels(&manifest.config.digest, &labels)?;
        }
    }
    db.write(|tx| {
        for image in &images {
            if let Some(name) = &image.name {
                crate::images::set_image_name(tx, &name.to_string(), &image.target)?;
            }
        }
        // An image without a name stays as Docker keeps one: dangling, listed by `images -a`.
        for image in images.iter().filter(|i| i.name.is_none()) {
            if tx.images_by_target(&image.target.digest)?.is_empty() {
                let dangling = crate::images::dangling_name(&image.target.digest);
                crate::images::set_image_name(tx, &dangling, &image.target)?;
            }
        }
        Ok(())
    })?;
    Ok(images)
}

/// The images an OCI layout's `index.json` names; their blobs must all be in the store.
fn layout_images(
    content: &ContentStore,
    index_bytes: &[u8],
    source_name: &str,
    base_name: Option<&str>,
) -> Result<Vec<Loaded>, LoadError> {
    let index: Index = serde_json::from_slice(index_bytes).map_err(|source| LoadError::Index {
        source_name: source_name.to_owned(),
        source,
    })?;
    let mut images = Vec::new();
    for entry in &index.manifests {
        let desc = &entry.descriptor;
        if !content.local().exists(&desc.digest) {
            return Err(LoadError::Missing {
                source_name: source_name.to_owned(),
                digest: desc.digest.clone(),
            });
        }
        let name = image_name(&desc.annotations, base_name)
            .map(|n| parse_name(&n, source_name))
            .transpose()?;
        images.push(Loaded {
            name,
            target: desc.clone(),
            top: None,
        });
    }
    Ok(images)
}

fn parse_name(name: &str, source_name: &str) -> Result<Reference, LoadError> {
    Reference::parse(name).map_err(|source| LoadError::Name {
        source_name: source_name.to_owned(),
        name: name.to_owned(),
        source: Box::new(source),
    })
}

/// One entry of Docker's `manifest.json`.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LegacyEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

/// The images of a Docker archive: for each `manifest.json` entry, its config and layers are
/// committed from the archive's files, and an OCI manifest naming them is synthesized and
/// stored; one [`Loaded`] per RepoTag (or one without a name).
fn legacy_images(
    content: &ContentStore,
    manifest_bytes: &[u8],
    files: &mut HashMap<String, FileState>,
    source_name: &str,
    lease: &LeaseGuard,
) -> Result<Vec<Loaded>, LoadError> {
    let entries: Vec<LegacyEntry> =
        serde_json::from_slice(manifest_bytes).map_err(|source| LoadError::DockerManifest {
            source_name: source_name.to_owned(),
            source,
        })?;
    let mut images = Vec::new();
    for entry in &entries {
        // Names first: a bad one fails before anything is committed.
        let names = entry
            .repo_tags
            .iter()
            .flatten()
            .map(|n| parse_name(n, source_name))
            .collect::<Result<Vec<_>, _>>()?;
        let (config_digest, config_size) =
            archive_file(content, files, &entry.config, source_name, lease)?;
        let mut layers = Vec::new();
        for path in &entry.layers {
            let (digest, size) = archive_file(content, files, path, source_name, lease)?;
            let media_type = match layer_compression(content, &digest, path, source_name)? {
                strata_archive::Compression::None => OCI_LAYER.to_owned(),
                c => format!("{OCI_LAYER}+{}", c.name()),
            };
            layers.push(serde_json::json!({
                "mediaType": media_type,
                "digest": digest,
                "size": size,
            }));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size },
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest).unwrap_or_default();
        let digest = Digest::sha256_of(&bytes);
        ingest(
            content,
            bytes.as_slice(),
            &digest,
            bytes.len() as u64,
            "manifest.json",
            source_name,
            lease,
        )?;
        let target = Descriptor::new(OCI_MANIFEST, digest, bytes.len() as u64);
        if names.is_empty() {
            images.push(Loaded {
                name: None,
                target,
                top: None,
            });
        } else {
            for name in names {
                images.push(Loaded {
                    name: Some(name),
                    target: target.clone(),
                    top: None,
                });
            }
        }
    }
    Ok(images)
}

/// The compression of a stored layer blob, from its first bytes.
fn layer_compression(
    content: &ContentStore,
    digest: &Digest,
    path: &str,
    source_name: &str,
) -> Result<strata_archive::Compression, LoadError> {
    let blob_err = |source| LoadError::Blob {
        source_name: source_name.to_owned(),
        entry: path.to_owned(),
        source: Box::new(source),
    };
    let mut blob = content.reader(digest).map_err(blob_err)?;
    let mut head = Vec::with_capacity(8);
    (&mut blob)
        .take(8)
        .read_to_end(&mut head)
        .map_err(|source| LoadError::Tar {
            source_name: source_name.to_owned(),
            source,
        })?;
    Ok(strata_archive::detect_compression(&head))
}

/// A path named by `manifest.json`, as the tar names its entries: relative, no `.` or `..`
/// components; `None` when it points outside the archive.
fn archive_path(path: &str) -> Option<String> {
    if path.starts_with('/') {
        return None;
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// The blob an archive file became: committed now (digest computed while it was written) if
/// it was still an ingest.
fn archive_file(
    content: &ContentStore,
    files: &mut HashMap<String, FileState>,
    path: &str,
    source_name: &str,
    lease: &LeaseGuard,
) -> Result<(Digest, u64), LoadError> {
    let key = archive_path(path).ok_or_else(|| LoadError::BadPath {
        source_name: source_name.to_owned(),
        path: path.to_owned(),
    })?;
    let missing = || LoadError::MissingPath {
        source_name: source_name.to_owned(),
        path: path.to_owned(),
    };
    match files.remove(&key).ok_or_else(missing)? {
        FileState::Blob(digest, size) => {
            files.insert(key, FileState::Blob(digest.clone(), size));
            Ok((digest, size))
        }
        FileState::Pending(writer, size) => {
            let committed = content
                .commit(writer, Some(size), None, &Labels::new(), Some(lease.id()))
                .map_err(|source| LoadError::Blob {
                    source_name: source_name.to_owned(),
                    entry: key.clone(),
                    source: Box::new(source),
                })?;
            files.insert(key, FileState::Blob(committed.digest.clone(), size));
            Ok((committed.digest, size))
        }
    }
}

/// Sets the garbage-collection labels on `desc` and, for an index, on the manifests below it
/// that the layout holds.
fn label_tree(content: &ContentStore, desc: &Descriptor, depth: usize) -> Result<(), MetaError> {
    let present = |d: &Digest| content.info(d).is_ok();
    if depth > 8 || !present(&desc.digest) {
        return Ok(());
    }
    let labels = if is_index(&desc.media_type) {
        let Ok((index, _)) = read_json::<Index>(content, "index", desc) else {
            return Ok(());
        };
        for entry in &index.manifests {
            label_tree(content, &entry.descriptor, depth + 1)?;
        }
        crate::gc::index_labels(index.manifests.iter().map(|e| &e.descriptor.digest))
    } else if is_manifest(&desc.media_type) {
        let Ok((manifest, _)) = read_json::<Manifest>(content, "manifest", desc) else {
            return Ok(());
        };
        crate::gc::manifest_labels(&manifest)
    } else {
        return Ok(());
    };
    content.update_labels(&desc.digest, &labels)?;
    Ok(())
}

/// The name an index.json entry gives its image, if any.
fn image_name(
    annotations: &std::collections::BTreeMap<String, String>,
    base: Option<&str>,
) -> Option<String> {
    if let Some(n) = annotations.get(CONTAINERD_NAME) {
        return Some(n.clone());
    }
    let r = annotations.get(REF_NAME)?;
    // A bare tag ("latest") names an image only together with a base name.
    if r.contains('/') || r.contains(':') && !r.starts_with(':') {
        return Some(r.clone());
    }
    base.map(|b| format!("{b}:{r}"))
}

/// The manifest to unpack: the target itself, or the best match for `platform` in its index.
fn platform_manifest(
    content: &ContentStore,
    target: &Descriptor,
    platform: &Matcher,
    name: &str,
) -> Result<Descriptor, LoadError> {
    if !is_manifest(&target.media_type) && !is_index(&target.media_type) {
        return Err(LoadError::MediaType {
            name: name.to_owned(),
            media_type: target.media_type.clone(),
        });
    }
    crate::images::platform_manifest(content, target, platform)
        .map_err(|source| LoadError::Unpack {
            name: name.to_owned(),
            source,
        })?
        .ok_or_else(|| LoadError::NoPlatform {
            name: name.to_owned(),
            platform: format!("{platform:?}"),
        })
}

fn blob_digest(entry: &str, source_name: &str) -> Result<Digest, LoadError> {
    entry
        .trim_start_matches("./")
        .strip_prefix("blobs/sha256/")
        .and_then(|hex| Digest::from_sha256_hex(hex).ok())
        .ok_or_else(|| LoadError::BadBlobName {
            source_name: source_name.to_owned(),
            entry: entry.to_owned(),
        })
}

/// Ingests one blob, verified against `digest` and `size`.
fn ingest(
    content: &ContentStore,
    mut src: impl Read,
    digest: &Digest,
    size: u64,
    entry: &str,
    source_name: &str,
    lease: &LeaseGuard,
) -> Result<(), LoadError> {
    let blob_err = |source| LoadError::Blob {
        source_name: source_name.to_owned(),
        entry: entry.to_owned(),
        source: Box::new(source),
    };
    let opts = WriterOptions {
        expected: Some(digest.clone()),
        total: Some(size),
        wait: true,
    };
    let mut writer = match content.writer(&format!("load-{digest}"), opts, Some(lease.id())) {
        Ok(w) => w,
        Err(MetaError::Content(ContentError::AlreadyExists(_))) => {
            // Still protect it until the images are recorded.
            lease.add(&LeaseResource::Content(digest.clone()))?;
            return Ok(());
        }
        Err(e) => return Err(blob_err(e)),
    };
    if writer.offset() > 0 {
        // A leftover from an interrupted load: start over, the source is not resumable here.
        writer.truncate().map_err(|e| blob_err(e.into()))?;
    }
    writer.copy_from(&mut src).map_err(|e| blob_err(e.into()))?;
    content
        .commit(
            writer,
            Some(size),
            Some(digest),
            &Labels::new(),
            Some(lease.id()),
        )
        .map_err(blob_err)?;
    Ok(())
}

fn read_layout_dir(
    content: &ContentStore,
    dir: &Path,
    source_name: &str,
    lease: &LeaseGuard,
) -> Result<Option<Vec<u8>>, LoadError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| LoadError::Io { path, source }
    };
    let index_path = dir.join("index.json");
    if !index_path.exists() {
        return Ok(None);
    }
    let blobs = dir.join("blobs/sha256");
    for entry in fs::read_dir(&blobs).map_err(io(&blobs))? {
        let entry = entry.map_err(io(&blobs))?;
        let name = format!("blobs/sha256/{}", entry.file_name().to_string_lossy());
        let digest = blob_digest(&name, source_name)?;
        // Never follow a symlink out of the layout.
        let meta = fs::symlink_metadata(entry.path()).map_err(io(&entry.path()))?;
        if !meta.is_file() {
            return Err(LoadError::BadBlobName {
                source_name: source_name.to_owned(),
                entry: name,
            });
        }
        let file = File::open(entry.path()).map_err(io(&entry.path()))?;
        ingest(
            content,
            file,
            &digest,
            meta.len(),
            &name,
            source_name,
            lease,
        )?;
    }
    let meta = fs::metadata(&index_path).map_err(io(&index_path))?;
    if meta.len() > MAX_JSON_BLOB {
        return Err(LoadError::IndexTooLarge(source_name.to_owned()));
    }
    fs::read(&index_path).map(Some).map_err(io(&index_path))
}

/// What a tar archive held.
#[derive(Default)]
struct Archive {
    /// `index.json`: an OCI layout.
    index: Option<Vec<u8>>,
    /// Docker's `manifest.json`.
    docker_manifest: Option<Vec<u8>>,
    /// Every other regular file, by its normalized entry name.
    files: HashMap<String, FileState>,
}

/// A file of the archive: a blob in the store, or an uncommitted ingest of its bytes.
enum FileState {
    Blob(Digest, u64),
    Pending(Writer, u64),
}

/// Reads a tar archive (plain, gzip or zstd), ingesting `blobs/sha256/<hex>` entries verified
/// against their names and every other file into an ingest of its own.
fn read_archive(
    content: &ContentStore,
    file: impl Read,
    source_name: &str,
    lease: &LeaseGuard,
) -> Result<Archive, LoadError> {
    let io = |source| LoadError::Tar {
        source_name: source_name.to_owned(),
        source,
    };
    let (_, plain) =
        strata_archive::decompress(io::BufReader::with_capacity(1 << 20, file)).map_err(io)?;
    let mut archive = tar::Archive::new(plain);
    let mut out = Archive::default();
    let small = |entry: &mut tar::Entry<'_, _>, too_large: LoadError| {
        if entry.size() > MAX_JSON_BLOB {
            return Err(too_large);
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(io)?;
        Ok(bytes)
    };
    for entry in archive.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(name) = archive_path(&raw) else {
            continue;
        };
        match name.as_str() {
            "index.json" => {
                let too_large = LoadError::IndexTooLarge(source_name.to_owned());
                out.index = Some(small(&mut entry, too_large)?);
            }
            "manifest.json" => {
                let too_large = LoadError::ManifestTooLarge(source_name.to_owned());
                out.docker_manifest = Some(small(&mut entry, too_large)?);
            }
            "oci-layout" | "repositories" => {}
            _ if name.starts_with("blobs/") => {
                let digest = blob_digest(&name, source_name)?;
                let size = entry.size();
                ingest(
                    content,
                    &mut entry,
                    &digest,
                    size,
                    &name,
                    source_name,
                    lease,
                )?;
                out.files.insert(name, FileState::Blob(digest, size));
            }
            _ => {
                // A name given twice: the last entry wins, as when a tar is extracted.
                if let Some(FileState::Pending(old, _)) = out.files.remove(&name) {
                    let old_ref = old.ingest_ref().to_owned();
                    drop(old);
                    let _ = content.abort(&old_ref);
                }
                let size = entry.size();
                let blob_err = |source| LoadError::Blob {
                    source_name: source_name.to_owned(),
                    entry: name.clone(),
                    source: Box::new(source),
                };
                let r#ref = format!(
                    "load-{}-{}",
                    lease.id().trim_start_matches("load/"),
                    Digest::sha256_of(name.as_bytes()).hex()
                );
                let opts = WriterOptions {
                    expected: None,
                    total: Some(size),
                    wait: false,
                };
                let mut writer = content
                    .writer(&r#ref, opts, Some(lease.id()))
                    .map_err(blob_err)?;
                if writer.offset() > 0 {
                    writer.truncate().map_err(|e| blob_err(e.into()))?;
                }
                writer
                    .copy_from(&mut entry)
                    .map_err(|e| blob_err(e.into()))?;
                out.files.insert(name, FileState::Pending(writer, size));
            }
        }
    }
    Ok(out)
}
