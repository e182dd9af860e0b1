//! Bringing discarded layer blobs back for `push` and `save`: re-fetched from a repository
//! their `containerd.io/distribution.source.*` labels name, else rebuilt from a snapshot of
//! the layer and its tar split and compressed again. A rebuilt blob has a new digest, so the
//! manifest that names it (and the index that names that) is rewritten and stored as new
//! content; the local image is left as it is, and the caller says what changed.

use std::io::{self, Write};

use futures_util::StreamExt as _;
use serde_json::Value;
use sha2::Digest as _;
use strata_archive::rebuild_layer;
use strata_content::{ContentError, WriterOptions};
use strata_metadata::{ContentStore, Labels, LeaseGuard, MetaError};
use strata_remote::media::{Compression, is_index, is_manifest, layer_compression};
use strata_remote::{Reference, Remote};
use strata_snapshot::Snapshotter;
use strata_types::oci::{ImageConfig, Manifest};
use strata_types::{Descriptor, Digest, Sha256, chain_id};

use super::split_of;
use crate::push::label_host;
use crate::store::Store;
use crate::unpack::read_json;

/// Why a discarded layer could not be brought back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    #[error(
        "layer {digest} was discarded after unpacking and cannot be brought back: {}",
        reasons.join("; ")
    )]
    Unrecoverable {
        digest: Digest,
        reasons: Vec<String>,
    },
    #[error("{what} {digest}")]
    Read {
        what: &'static str,
        digest: Digest,
        #[source]
        source: Box<crate::unpack::UnpackError>,
    },
    #[error(transparent)]
    Store(#[from] MetaError),
}

impl RestoreError {
    pub fn kind(&self) -> strata_types::ErrorKind {
        match self {
            RestoreError::Unrecoverable { .. } => strata_types::ErrorKind::Unavailable,
            RestoreError::Read { source, .. } => source.kind(),
            RestoreError::Store(e) => e.kind(),
        }
    }
}

/// Why one source could not give a discarded layer back (one of the reasons of
/// [`RestoreError::Unrecoverable`]). Each says its cause itself: the text goes into a list.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("no registry client")]
    NoClient,
    #[error("{0}")]
    Reference(Box<strata_remote::RemoteError>),
    #[error("{0}")]
    Store(MetaError),
    #[error("{}", chain(&**.0))]
    Remote(Box<strata_remote::RemoteError>),
    #[error("{0}")]
    Write(io::Error),
}

impl FetchError {
    fn remote(e: strata_remote::RemoteError) -> FetchError {
        FetchError::Remote(Box::new(e))
    }

    /// The registry is unreachable: not worth asking again for another repository or layer.
    fn unreachable(&self) -> bool {
        matches!(self, FetchError::Remote(e) if e.kind() == strata_types::ErrorKind::Unavailable)
    }
}

/// `e` and its causes on one line, as the CLI prints an error.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// A layer rebuilt under a new digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    pub old: Digest,
    pub new: Digest,
    /// Why it was not re-fetched.
    pub why: String,
}

/// Brings back what one push or save needs; [`finish`](Restorer::finish) lets the
/// re-fetched blobs go again.
pub struct Restorer<'a> {
    store: &'a Store,
    lease: &'a LeaseGuard,
    /// Registries (with their ports) the caller knows of, tried for a source label's host.
    registries: Vec<String>,
    /// No blob of the store is discarded: nothing to do.
    idle: bool,
    remote: Option<(Remote, tokio::runtime::Runtime)>,
    sn: Option<Box<dyn Snapshotter>>,
    /// Registries that could not be reached: not asked again.
    unreachable: std::collections::HashSet<String>,
    /// Blobs re-fetched under their own digest.
    pub fetched: Vec<Digest>,
    pub rebuilt: Vec<Rebuilt>,
    /// Discarded blobs the caller does not need back (the destination has them).
    skip: std::collections::HashSet<Digest>,
}

impl std::fmt::Debug for Restorer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restorer")
            .field("fetched", &self.fetched)
            .field("rebuilt", &self.rebuilt)
            .finish_non_exhaustive()
    }
}

impl<'a> Restorer<'a> {
    /// `registries`: where the caller is going (tried first for a source host it shares).
    pub fn new(
        store: &'a Store,
        lease: &'a LeaseGuard,
        mut registries: Vec<String>,
    ) -> Restorer<'a> {
        // A store that never discarded has nothing to look for (push and save of every image
        // pass here): one query instead of walking each image.
        let idle = !store
            .db()
            .read(|tx| tx.any_blob_discarded())
            .unwrap_or_else(|e| {
                tracing::debug!("discarded blobs: {e}");
                true
            });
        // Source labels name hosts without ports (containerd's convention); the registries of
        // the store's image names say which ports to try.
        let names = match idle {
            true => Vec::new(),
            false => store.db().read(|tx| tx.images()).unwrap_or_else(|e| {
                tracing::debug!("image names: {e}");
                Vec::new()
            }),
        };
        for rec in names {
            if let Ok(r) = Reference::parse(&rec.name)
                && !registries.iter().any(|g| g == r.registry())
            {
                registries.push(r.registry().to_owned());
            }
        }
        Restorer {
            store,
            lease,
            registries,
            idle,
            remote: None,
            sn: None,
            unreachable: Default::default(),
            fetched: Vec::new(),
            rebuilt: Vec::new(),
            skip: Default::default(),
        }
    }

    /// Leaves these discarded blobs discarded: the caller will not read them (a push whose
    /// destination has them already, or mounted them).
    pub fn skip(&mut self, digests: impl IntoIterator<Item = Digest>) {
        self.skip.extend(digests);
    }

    /// The discarded layers under `target` (every present manifest of an index).
    pub fn discarded_layers(&self, target: &Descriptor) -> Result<Vec<Descriptor>, RestoreError> {
        if self.idle {
            return Ok(Vec::new());
        }
        let present = |d: &Digest| -> Result<Option<bool>, RestoreError> {
            Ok(self
                .content()
                .db()
                .read(|tx| tx.blob(d))?
                .map(|b| b.discarded))
        };
        let mut manifests = Vec::new();
        if is_index(&target.media_type) && present(&target.digest)? == Some(false) {
            let index = self.json("index", target)?;
            for entry in index["manifests"].as_array().into_iter().flatten() {
                if let Ok(d) = serde_json::from_value::<Descriptor>(entry.clone())
                    && is_manifest(&d.media_type)
                    && present(&d.digest)? == Some(false)
                {
                    manifests.push(d);
                }
            }
        } else if is_manifest(&target.media_type) && present(&target.digest)? == Some(false) {
            manifests.push(target.clone());
        }
        let mut out: Vec<Descriptor> = Vec::new();
        for m in manifests {
            let Ok(manifest) = serde_json::from_value::<Manifest>(self.json("manifest", &m)?)
            else {
                continue;
            };
            for l in manifest.layers {
                if present(&l.digest)? == Some(true) && !out.iter().any(|o| o.digest == l.digest) {
                    out.push(l);
                }
            }
        }
        Ok(out)
    }

    fn content(&self) -> &'a ContentStore {
        self.store.content()
    }

    /// Makes every discarded layer under `target` readable; returns the descriptor to export
    /// in its place (`target` itself unless a layer had to be rebuilt).
    pub fn image(&mut self, target: &Descriptor) -> Result<Descriptor, RestoreError> {
        if self.idle {
            return Ok(target.clone());
        }
        let Some(rec) = self.content().db().read(|tx| tx.blob(&target.digest))? else {
            return Ok(target.clone());
        };
        if rec.discarded {
            return Ok(target.clone());
        }
        let new = if is_manifest(&target.media_type) {
            self.manifest(target)?
        } else if is_index(&target.media_type) {
            self.index(target)?
        } else {
            None
        };
        Ok(new.unwrap_or_else(|| target.clone()))
    }

    /// Lets the blobs brought back under their own digest go again (their splits are still
    /// recorded). Best effort: a blob that stays is only bytes.
    pub fn finish(self) {
        for d in &self.fetched {
            if let Err(e) = self.content().discard(d, &Labels::new()) {
                tracing::warn!("discard {d} again: {e}");
            }
        }
    }

    fn json(&self, what: &'static str, desc: &Descriptor) -> Result<Value, RestoreError> {
        let (value, _): (Value, _) =
            read_json(self.content(), what, desc).map_err(|source| RestoreError::Read {
                what,
                digest: desc.digest.clone(),
                source: Box::new(source),
            })?;
        Ok(value)
    }

    fn index(&mut self, desc: &Descriptor) -> Result<Option<Descriptor>, RestoreError> {
        let mut index = self.json("index", desc)?;
        let mut changed = false;
        let entries = index
            .get_mut("manifests")
            .and_then(Value::as_array_mut)
            .map(std::mem::take)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(entries.len());
        for mut entry in entries {
            if let Ok(d) = serde_json::from_value::<Descriptor>(entry.clone())
                && is_manifest(&d.media_type)
                && self.content().db().read(|tx| tx.blob(&d.digest))?.is_some()
                && let Some(new) = self.manifest(&d)?
            {
                entry["digest"] = Value::String(new.digest.to_string());
                entry["size"] = Value::from(new.size);
                changed = true;
            }
            out.push(entry);
        }
        index["manifests"] = Value::Array(out);
        if !changed {
            return Ok(None);
        }
        let manifests = index["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m.get("digest")?.as_str()?.parse().ok())
            .collect::<Vec<Digest>>();
        let labels = crate::gc::index_labels(&manifests);
        self.store_json(&desc.media_type, &index, &labels).map(Some)
    }

    fn manifest(&mut self, desc: &Descriptor) -> Result<Option<Descriptor>, RestoreError> {
        let mut value = self.json("manifest", desc)?;
        let Ok(manifest) = serde_json::from_value::<Manifest>(value.clone()) else {
            return Ok(None);
        };
        let mut diff_ids: Option<Vec<Digest>> = None;
        let mut changed = false;
        for (i, layer) in manifest.layers.iter().enumerate() {
            let discarded = self
                .content()
                .db()
                .read(|tx| tx.blob(&layer.digest))?
                .is_some_and(|b| b.discarded);
            if !discarded || self.skip.contains(&layer.digest) {
                continue;
            }
            let fetch_errors = match self.fetch(layer) {
                Ok(()) => {
                    self.fetched.push(layer.digest.clone());
                    continue;
                }
                Err(reasons) => reasons,
            };
            if diff_ids.is_none() {
                let config: ImageConfig = serde_json::from_value(
                    self.json("config", &manifest.config)?,
                )
                .map_err(|e| RestoreError::Unrecoverable {
                    digest: layer.digest.clone(),
                    reasons: vec![format!("image config does not parse: {e}")],
                })?;
                diff_ids = Some(config.rootfs.diff_ids);
            }
            let ids = diff_ids.as_deref().unwrap_or_default();
            let new = self.rebuild(layer, ids, i).map_err(|e| {
                let mut reasons = fetch_errors.clone();
                reasons.push(e);
                RestoreError::Unrecoverable {
                    digest: layer.digest.clone(),
                    reasons,
                }
            })?;
            if new.digest == layer.digest {
                // Compressed again to the very same bytes (an uncompressed layer always is):
                // nothing to rewrite, and the blob goes again afterwards like a fetched one.
                self.fetched.push(layer.digest.clone());
                continue;
            }
            self.rebuilt.push(Rebuilt {
                old: layer.digest.clone(),
                new: new.digest.clone(),
                why: fetch_errors.join("; "),
            });
            value["layers"][i]["digest"] = Value::String(new.digest.to_string());
            value["layers"][i]["size"] = Value::from(new.size);
            changed = true;
        }
        if !changed {
            return Ok(None);
        }
        let Ok(rewritten) = serde_json::from_value::<Manifest>(value.clone()) else {
            return Ok(None);
        };
        let labels = crate::gc::manifest_labels(&rewritten);
        self.store_json(&desc.media_type, &value, &labels).map(Some)
    }

    fn store_json(
        &self,
        media_type: &str,
        value: &Value,
        labels: &Labels,
    ) -> Result<Descriptor, RestoreError> {
        let bytes = serde_json::to_vec(value).map_err(|e| {
            MetaError::Content(ContentError::Io(strata_types::PathIoError::new(
                "encode rewritten manifest",
                std::path::PathBuf::new(),
                io::Error::other(e),
            )))
        })?;
        let digest = super::put(self.content(), &bytes, Some(self.lease))?;
        self.content().update_labels(&digest, labels)?;
        Ok(Descriptor::new(media_type, digest, bytes.len() as u64))
    }

    /// Re-fetches `layer` from a repository its labels name; the reasons each try failed.
    fn fetch(&mut self, layer: &Descriptor) -> Result<(), Vec<String>> {
        let labels = self
            .content()
            .info(&layer.digest)
            .map_err(|e| vec![e.to_string()])?
            .labels;
        let mut sources = Vec::new();
        for (key, repos) in &labels {
            let Some(host) = strata_types::labels::distribution_source_host(key) else {
                continue;
            };
            let mut registries: Vec<&str> = self
                .registries
                .iter()
                .map(String::as_str)
                .filter(|r| label_host(r) == host)
                .collect();
            if !registries.contains(&host) {
                registries.push(host);
            }
            for registry in registries {
                for repo in strata_types::labels::source_repos(repos) {
                    sources.push(format!("{registry}/{repo}"));
                }
            }
        }
        if sources.is_empty() {
            return Err(vec!["no source repository is recorded for it".into()]);
        }
        if self.remote.is_none() {
            // A source is one way back among two: a dead one fails fast, the rebuild follows.
            let opts = strata_remote::RemoteOptions {
                retries: 1,
                ..crate::runtime::store_options(self.store).unwrap_or_default()
            };
            let remote = crate::runtime::remote_with(opts).map_err(|e| vec![e.to_string()])?;
            let rt = crate::runtime::runtime().map_err(|e| vec![e.to_string()])?;
            self.remote = Some((remote, rt));
        }
        let mut reasons = Vec::new();
        for source in sources {
            let registry = source.split('/').next().unwrap_or_default().to_owned();
            if self.unreachable.contains(&registry) {
                continue;
            }
            match self.fetch_from(&source, layer) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    if e.unreachable() {
                        self.unreachable.insert(registry.clone());
                        reasons.push(format!("{registry} is unreachable"));
                    } else {
                        reasons.push(format!("fetch from {source}: {e}"));
                    }
                }
            }
        }
        Err(reasons)
    }

    /// Fetches `layer` from `source` into the store.
    fn fetch_from(&self, source: &str, layer: &Descriptor) -> Result<(), FetchError> {
        let Some((remote, rt)) = &self.remote else {
            return Err(FetchError::NoClient);
        };
        let r = Reference::parse(source).map_err(|e| FetchError::Reference(Box::new(e)))?;
        let opts = WriterOptions {
            expected: Some(layer.digest.clone()),
            total: Some(layer.size),
            wait: true,
        };
        let r#ref = format!("restore-{}", layer.digest.hex());
        let content = self.content();
        let mut w = match content.writer(&r#ref, opts, Some(self.lease.id())) {
            Ok(w) => w,
            Err(MetaError::Content(ContentError::AlreadyExists(_))) => return Ok(()),
            Err(e) => return Err(FetchError::Store(e)),
        };
        let streamed: Result<(), FetchError> = rt.block_on(async {
            let mut stream = remote
                .fetch_blob(&r, layer, 0)
                .await
                .map_err(FetchError::remote)?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(FetchError::remote)?;
                w.write_all(&chunk).map_err(FetchError::Write)?;
            }
            Ok(())
        });
        if let Err(e) = streamed {
            let _ = content.abort(&r#ref);
            return Err(e);
        }
        content
            .commit(
                w,
                Some(layer.size),
                Some(&layer.digest),
                &Labels::new(),
                Some(self.lease.id()),
            )
            .map_err(FetchError::Store)?;
        Ok(())
    }

    /// Rebuilds layer `i` from the snapshot of its chain and its split, compressed as its
    /// media type says; returns the new blob's descriptor.
    fn rebuild(
        &mut self,
        layer: &Descriptor,
        diff_ids: &[Digest],
        i: usize,
    ) -> Result<Descriptor, String> {
        let content = self.content();
        let (Some(diff_id), Some(chain)) = (diff_ids.get(i), diff_ids.get(..=i).and_then(chain_id))
        else {
            return Err("the image config lists fewer diffIDs than layers".into());
        };
        let (split_digest, split) = split_of(content, &layer.digest)
            .map_err(|e| format!("read its tar split: {e}"))?
            .ok_or("no tar split is recorded for it")?;
        if self.sn.is_none() {
            self.sn = Some(self.store.snapshotter().map_err(|e| e.to_string())?);
        }
        let Some(sn) = &self.sn else {
            return Err("no snapshotter".into());
        };
        let tree = sn
            .layer_dir(&chain.to_string())
            .map_err(|e| format!("its unpacked snapshot: {e}"))?;
        let compression = layer_compression(&layer.media_type).unwrap_or(Compression::Gzip);
        let opts = WriterOptions {
            expected: None,
            total: None,
            wait: true,
        };
        let r#ref = format!("rebuild-{}-{}", layer.digest.hex(), crate::unique_suffix());
        let w = content
            .writer(&r#ref, opts, Some(self.lease.id()))
            .map_err(|e| e.to_string())?;
        let out = match compression {
            Compression::None => Encoder::None(w),
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                w,
                flate2::Compression::default(),
            )),
            Compression::Zstd => {
                Encoder::Zstd(zstd::stream::write::Encoder::new(w, 3).map_err(|e| e.to_string())?)
            }
        };
        let mut tee = HashTee {
            hasher: Sha256::new(),
            out,
        };
        let rebuilt = rebuild_layer(&split, &tree, &mut tee)
            .map_err(|e| format!("rebuild: {}", strata_types::ErrorChain(&e)));
        let HashTee { hasher, out } = tee;
        let actual = Digest::from_hasher(hasher);
        let w = out.finish().map_err(|e| format!("compress: {e}"));
        let result = rebuilt.and_then(|_| {
            if actual == *diff_id {
                Ok(())
            } else {
                Err(format!(
                    "its snapshot rebuilds to {actual}, not its diffID {diff_id}"
                ))
            }
        });
        let w = match (result, w) {
            (Ok(()), Ok(w)) => w,
            (Err(e), _) | (_, Err(e)) => {
                let _ = content.abort(&r#ref);
                return Err(e);
            }
        };
        // The new blob carries the split too: it can be discarded again like the old one.
        let labels = Labels::from([(
            strata_types::labels::SPLIT.to_owned(),
            split_digest.to_string(),
        )]);
        let committed = content
            .commit(w, None, None, &labels, Some(self.lease.id()))
            .map_err(|e| e.to_string())?;
        let size = content
            .info(&committed.digest)
            .map_err(|e| e.to_string())?
            .size;
        Ok(Descriptor::new(
            layer.media_type.clone(),
            committed.digest,
            size,
        ))
    }
}

/// A rebuilt layer's way into the content store, compressed as its media type says.
enum Encoder {
    None(strata_content::Writer),
    Gzip(flate2::write::GzEncoder<strata_content::Writer>),
    Zstd(zstd::stream::write::Encoder<'static, strata_content::Writer>),
}

impl Encoder {
    /// Writes the compressor's trailer; the ingest writer comes back, to commit.
    fn finish(self) -> io::Result<strata_content::Writer> {
        match self {
            Encoder::None(w) => Ok(w),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl Write for Encoder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

/// Hashes what goes through (the uncompressed layer) on its way to the compressor.
struct HashTee {
    hasher: Sha256,
    out: Encoder,
}

impl Write for HashTee {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
