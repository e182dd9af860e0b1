//! Docker's classic overlay2 store, read and never written: the images, their names and
//! their layers, as the data root (`/var/lib/docker`) lays them out.
//!
//! ```text
//! image/overlay2/repositories.json                  {"Repositories":{repo:{"repo:tag": image ID}}}
//! image/overlay2/imagedb/content/sha256/<id>        the image config; <id> is its sha256
//! image/overlay2/imagedb/metadata/sha256/<id>/parent  the image it was built from (if any)
//! image/overlay2/layerdb/sha256/<chainID>/diff      the layer's diffID
//!                                        /parent    the parent chainID (absent at the bottom)
//!                                        /cache-id  the layer's directory under overlay2/
//!                                        /size      its unpacked bytes
//!                                        /tar-split.json.gz   the tar's headers and padding
//! overlay2/<cache-id>/diff/                         the layer's files (overlay whiteouts)
//! containers/<id>/                                  one per container
//! ```
//!
//! Everything read is checked: a config's digest against its file name, each layer's `diff`
//! against the config's diffIDs, cache IDs against path tricks; small files are read with a
//! bound. The layer's exact tar is rebuilt later from `tar-split.json.gz` and the `diff`
//! directory, and its diffID checked then.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use strata_remote::Reference;
use strata_types::oci::ImageConfig;
use strata_types::{Digest, chain_id};

use super::MigrateError;
use crate::unpack::MAX_JSON_BLOB;

/// `repositories.json` may name many images, but not this many bytes of them.
const MAX_REPOSITORIES: u64 = 64 << 20;
/// `diff`, `parent`, `cache-id`, `size`: one line each.
const MAX_SMALL_FILE: u64 = 4096;

/// One image of the source store.
#[derive(Debug, Clone)]
pub struct SourceImage {
    /// The Docker image ID: the digest of its config.
    pub id: Digest,
    pub config: Vec<u8>,
    pub diff_ids: Vec<Digest>,
    /// Its tags (`repositories.json`), normalized; empty for a dangling image.
    pub names: Vec<Reference>,
    /// The chainID of each layer, bottom first.
    pub chain: Vec<Digest>,
}

/// One layer of the source store.
#[derive(Debug, Clone)]
pub struct SourceLayer {
    pub chain_id: Digest,
    pub diff_id: Digest,
    pub parent: Option<Digest>,
    /// Its unpacked bytes, as Docker counted them.
    pub size: u64,
    /// `overlay2/<cache-id>/diff`.
    pub diff_dir: PathBuf,
    /// `layerdb/sha256/<chainID>/tar-split.json.gz`.
    pub tar_split: PathBuf,
}

/// What a Docker data root holds, as far as migration cares.
#[derive(Debug, Clone)]
pub struct DockerStore {
    pub root: PathBuf,
    /// Tagged images, then dangling ones that no other image was built from, by ID.
    pub images: Vec<SourceImage>,
    /// Every layer the images use, by chainID.
    pub layers: BTreeMap<Digest, SourceLayer>,
    /// Containers in `containers/` (they are not migrated).
    pub containers: usize,
}

impl DockerStore {
    /// Reads the store at `root` (a Docker data root such as `/var/lib/docker`).
    pub fn open(root: &Path) -> Result<DockerStore, MigrateError> {
        let image_root = root.join("image");
        let driver_root = image_root.join("overlay2");
        if !driver_root.is_dir() {
            let others = fs::read_dir(&image_root)
                .map(|rd| {
                    rd.filter_map(Result::ok)
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            let reason = if others.is_empty() {
                "it has no image/overlay2 directory".to_owned()
            } else {
                format!(
                    "its images use the {} storage driver; only overlay2 can be migrated",
                    others.join(", ")
                )
            };
            return Err(MigrateError::NotADockerStore {
                dir: root.to_owned(),
                reason,
            });
        }
        let tags = read_repositories(&driver_root.join("repositories.json"))?;
        let content_dir = driver_root.join("imagedb/content/sha256");
        let mut ids = BTreeSet::new();
        for entry in read_dir_if_exists(&content_dir)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            // Docker writes through temporary files; only a full hex name is an image.
            if let Ok(id) = format!("sha256:{name}").parse::<Digest>() {
                ids.insert(id);
            }
        }
        // Dangling images that are the parent of another (the steps of a classic build) are
        // part of their children; only tips are worth an image record.
        let mut parents = BTreeSet::new();
        for id in &ids {
            let path = driver_root
                .join("imagedb/metadata/sha256")
                .join(id.hex())
                .join("parent");
            if let Some(parent) = read_small_if_exists(&path)? {
                parents.insert(parse_digest(&path, &parent)?);
            }
        }
        let mut store = DockerStore {
            root: root.to_owned(),
            images: Vec::new(),
            layers: BTreeMap::new(),
            containers: count_dir(&root.join("containers"))?,
        };
        for (id, names) in &tags {
            // Docker shows no such image either: a name left behind, not worth stopping for.
            if !ids.contains(id) {
                let names: Vec<String> = names.iter().map(Reference::familiar).collect();
                tracing::warn!(
                    "{}: {} name image {id}, which imagedb does not hold: left out",
                    driver_root.join("repositories.json").display(),
                    names.join(", ")
                );
            }
        }
        for id in ids {
            let names = tags.get(&id).cloned().unwrap_or_default();
            if names.is_empty() && parents.contains(&id) {
                continue;
            }
            let image = store.read_image(&content_dir, id, names)?;
            store.images.push(image);
        }
        // Tagged images first, in name order; then dangling ones, by ID.
        store
            .images
            .sort_by_key(|i| (i.names.is_empty(), i.names.first().map(Reference::familiar)));
        Ok(store)
    }

    /// The bytes of every layer the images use, unpacked (what a size threshold counts).
    pub fn layer_bytes(&self) -> u64 {
        self.layers.values().map(|l| l.size).sum()
    }

    fn read_image(
        &mut self,
        content_dir: &Path,
        id: Digest,
        names: Vec<Reference>,
    ) -> Result<SourceImage, MigrateError> {
        let path = content_dir.join(id.hex());
        let config = read_bounded(&path, MAX_JSON_BLOB)?;
        let actual = Digest::sha256_of(&config);
        if actual != id {
            return Err(MigrateError::BadSource {
                path,
                reason: format!("its content has digest {actual}, not the name it is stored under"),
            });
        }
        let parsed: ImageConfig =
            serde_json::from_slice(&config).map_err(|e| MigrateError::BadSource {
                path: path.clone(),
                reason: format!("not an image config: {e}"),
            })?;
        let diff_ids = parsed.rootfs.diff_ids;
        let mut chain = Vec::new();
        let mut parent: Option<Digest> = None;
        for i in 0..diff_ids.len() {
            let Some(chain_id) = chain_id(&diff_ids[..=i]) else {
                continue;
            };
            if !self.layers.contains_key(&chain_id) {
                let layer = self.read_layer(&chain_id, &diff_ids[i], parent.as_ref())?;
                self.layers.insert(chain_id.clone(), layer);
            }
            chain.push(chain_id.clone());
            parent = Some(chain_id);
        }
        Ok(SourceImage {
            id,
            config,
            diff_ids,
            names,
            chain,
        })
    }

    fn read_layer(
        &self,
        chain_id: &Digest,
        diff_id: &Digest,
        parent: Option<&Digest>,
    ) -> Result<SourceLayer, MigrateError> {
        let dir = self
            .root
            .join("image/overlay2/layerdb/sha256")
            .join(chain_id.hex());
        let bad = |file: &str, reason: String| MigrateError::BadSource {
            path: dir.join(file),
            reason,
        };
        let diff_path = dir.join("diff");
        let recorded = parse_digest(&diff_path, &read_small(&diff_path)?)?;
        if recorded != *diff_id {
            return Err(bad(
                "diff",
                format!("says {recorded}, but the image config says {diff_id}"),
            ));
        }
        let parent_path = dir.join("parent");
        let recorded_parent = match read_small_if_exists(&parent_path)? {
            Some(p) => Some(parse_digest(&parent_path, &p)?),
            None => None,
        };
        if recorded_parent.as_ref() != parent {
            return Err(bad(
                "parent",
                format!(
                    "says {}, but the image's layers say {}",
                    recorded_parent.map_or_else(|| "none".to_owned(), |p| p.to_string()),
                    parent.map_or_else(|| "none".to_owned(), ToString::to_string)
                ),
            ));
        }
        let cache_id = read_small(&dir.join("cache-id"))?;
        // The cache ID names a directory under overlay2/: nothing but a plain name will do.
        if cache_id.is_empty()
            || !cache_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad(
                "cache-id",
                format!("{cache_id:?} is not a layer directory name"),
            ));
        }
        let size_path = dir.join("size");
        let size = match read_small_if_exists(&size_path)? {
            Some(s) => s
                .parse::<u64>()
                .map_err(|_| bad("size", format!("{s:?} is not a number")))?,
            None => 0,
        };
        let tar_split = dir.join("tar-split.json.gz");
        if !tar_split.is_file() {
            return Err(bad(
                "tar-split.json.gz",
                "is missing: the exact layer cannot be rebuilt without it".to_owned(),
            ));
        }
        let diff_dir = self.root.join("overlay2").join(&cache_id).join("diff");
        if !diff_dir.is_dir() {
            return Err(MigrateError::BadSource {
                path: diff_dir,
                reason: format!("layer {chain_id}'s files are missing"),
            });
        }
        Ok(SourceLayer {
            chain_id: chain_id.clone(),
            diff_id: diff_id.clone(),
            parent: parent.cloned(),
            size,
            diff_dir,
            tar_split,
        })
    }
}

/// `repositories.json` as image ID → tags (digest references are left out: they name a
/// registry manifest the migrated image does not have).
fn read_repositories(path: &Path) -> Result<BTreeMap<Digest, Vec<Reference>>, MigrateError> {
    #[derive(serde::Deserialize)]
    struct Repositories {
        #[serde(rename = "Repositories", default)]
        repositories: BTreeMap<String, BTreeMap<String, String>>,
    }
    let mut out: BTreeMap<Digest, Vec<Reference>> = BTreeMap::new();
    let Some(bytes) = if_exists(read_bounded(path, MAX_REPOSITORIES))? else {
        return Ok(out);
    };
    let repos: Repositories =
        serde_json::from_slice(&bytes).map_err(|e| MigrateError::BadSource {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    for refs in repos.repositories.values() {
        for (name, id) in refs {
            if name.contains('@') {
                continue;
            }
            let bad = |reason: String| MigrateError::BadSource {
                path: path.to_owned(),
                reason,
            };
            let reference =
                Reference::parse(name).map_err(|e| bad(format!("name {name:?}: {e}")))?;
            let id: Digest = id
                .parse()
                .map_err(|_| bad(format!("{name} names {id:?}, not an image ID")))?;
            out.entry(id).or_default().push(reference);
        }
    }
    for names in out.values_mut() {
        names.sort_by_key(Reference::familiar);
        names.dedup_by_key(|r| r.to_string());
    }
    Ok(out)
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> MigrateError + '_ {
    move |source| MigrateError::Io {
        path: path.to_owned(),
        source,
    }
}

fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, MigrateError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|f| f.take(max + 1).read_to_end(&mut bytes))
        .map_err(io_err(path))?;
    if bytes.len() as u64 > max {
        return Err(MigrateError::BadSource {
            path: path.to_owned(),
            reason: format!("larger than the {max} bytes allowed"),
        });
    }
    Ok(bytes)
}

fn read_small(path: &Path) -> Result<String, MigrateError> {
    let bytes = read_bounded(path, MAX_SMALL_FILE)?;
    String::from_utf8(bytes)
        .map(|s| s.trim().to_owned())
        .map_err(|_| MigrateError::BadSource {
            path: path.to_owned(),
            reason: "not text".to_owned(),
        })
}

fn read_small_if_exists(path: &Path) -> Result<Option<String>, MigrateError> {
    if_exists(read_small(path))
}

/// A read whose file may be absent: absent is `None`, any other failure stays one.
fn if_exists<T>(read: Result<T, MigrateError>) -> Result<Option<T>, MigrateError> {
    match read {
        Ok(v) => Ok(Some(v)),
        Err(MigrateError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn parse_digest(path: &Path, s: &str) -> Result<Digest, MigrateError> {
    s.parse().map_err(|_| MigrateError::BadSource {
        path: path.to_owned(),
        reason: format!("{s:?} is not a sha256 digest"),
    })
}

fn read_dir_if_exists(dir: &Path) -> Result<Vec<fs::DirEntry>, MigrateError> {
    match fs::read_dir(dir) {
        Ok(rd) => rd.collect::<Result<_, _>>().map_err(io_err(dir)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_err(dir)(e)),
    }
}

fn count_dir(dir: &Path) -> Result<usize, MigrateError> {
    Ok(read_dir_if_exists(dir)?
        .iter()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .count())
}
