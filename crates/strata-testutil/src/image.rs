//! Deterministic in-memory images: layers, configs, manifests and indexes.
//!
//! Everything here is a pure function of its input: tar headers carry a fixed
//! mtime ([`LAYER_MTIME`]), uid/gid 0 unless [`LayerBuilder::owner`] says
//! otherwise, empty user/group names; entries are written in insertion order;
//! gzip uses a zero header mtime and zstd a fixed level; JSON is serialized
//! compactly from `serde_json::Value` (sorted object keys). The same input
//! therefore always gives the same bytes and digests.

use std::io::Write;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// mtime of every generated tar entry: 2024-01-01T00:00:00Z.
pub const LAYER_MTIME: u64 = 1_704_067_200;
/// `created` timestamp of every generated config and history entry.
pub const CREATED: &str = "2024-01-01T00:00:00Z";

/// OCI media types.
pub mod media {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// Not part of the Docker spec; containerd's name for it.
    pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
    pub const IN_TOTO: &str = "application/vnd.in-toto+json";
}
use media::*;

/// `"sha256:<hex>"` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Layer compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// A content-addressed blob with its media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub media_type: String,
    /// `"sha256:<hex>"`.
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    /// A blob over `bytes`; the digest is computed.
    pub fn new(media_type: impl Into<String>, bytes: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.into(),
            digest: sha256_digest(&bytes),
            bytes,
        }
    }

    /// A blob holding `value` serialized compactly.
    pub fn json(media_type: impl Into<String>, value: &Value) -> Blob {
        Blob::new(media_type, value.to_string().into_bytes())
    }

    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// The OCI descriptor `{"mediaType", "digest", "size"}` of this blob.
    pub fn descriptor(&self) -> Value {
        json!({
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size(),
        })
    }

    /// The blob parsed as JSON (for manifests and configs), `None` if it is not.
    pub fn as_json(&self) -> Option<Value> {
        serde_json::from_slice(&self.bytes).ok()
    }
}

/// A built layer: the (possibly compressed) blob and the digest of the
/// uncompressed tar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub blob: Blob,
    /// `"sha256:<hex>"` of the uncompressed tar.
    pub diff_id: String,
}

impl Layer {
    /// A layer over an existing uncompressed tar stream (e.g. crafted by hand),
    /// compressed as asked, with OCI media types.
    pub fn from_tar(tar: Vec<u8>, c: Compression) -> Layer {
        let diff_id = sha256_digest(&tar);
        let (media_type, bytes) = match c {
            Compression::None => (OCI_LAYER, tar),
            Compression::Gzip => (OCI_LAYER_GZIP, gzip(&tar)),
            Compression::Zstd => (OCI_LAYER_ZSTD, zstd(&tar)),
        };
        Layer {
            blob: Blob::new(media_type, bytes),
            diff_id,
        }
    }
}

// Compressing into a Vec cannot fail (the only errors would come from the
// writer); an `expect` documents that instead of threading a Result through
// otherwise infallible builders.
#[allow(clippy::expect_used)]
fn gzip(data: &[u8]) -> Vec<u8> {
    // GzEncoder writes a header with mtime 0 and no file name: deterministic.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("gzip into memory");
    enc.finish().expect("gzip into memory")
}

#[allow(clippy::expect_used)]
fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(data, 3).expect("zstd into memory")
}

#[derive(Debug, Clone)]
enum Entry {
    /// A regular entry written by this crate (long names get GNU headers).
    Normal {
        kind: tar::EntryType,
        path: String,
        link: Option<String>,
        data: Vec<u8>,
        mode: u32,
        uid: u64,
        gid: u64,
    },
    /// A header written verbatim, followed by `data` padded to 512 bytes.
    Raw {
        header: Box<tar::Header>,
        data: Vec<u8>,
    },
}

/// Builds one layer tar, entries in insertion order.
///
/// Paths given to [`dir`](Self::dir), [`file`](Self::file),
/// [`symlink`](Self::symlink), [`hardlink`](Self::hardlink),
/// [`whiteout`](Self::whiteout) and [`opaque`](Self::opaque) lose any leading
/// `/`; directories get a trailing `/`. Names (and link targets) longer than
/// 100 bytes are written with GNU long-name entries. Nothing is validated:
/// `..` components, duplicates and the like are written as given. For
/// arbitrary headers (bad types, absolute names, broken checksums...) use
/// [`raw_entry`](Self::raw_entry).
#[derive(Debug, Clone, Default)]
pub struct LayerBuilder {
    entries: Vec<Entry>,
    uid: u64,
    gid: u64,
}

fn rel(path: &str) -> String {
    path.trim_start_matches('/').to_string()
}

impl LayerBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(
        mut self,
        kind: tar::EntryType,
        path: String,
        link: Option<String>,
        data: Vec<u8>,
        mode: u32,
    ) -> Self {
        self.entries.push(Entry::Normal {
            kind,
            path,
            link,
            data,
            mode,
            uid: self.uid,
            gid: self.gid,
        });
        self
    }

    /// A directory entry `path/`.
    pub fn dir(self, path: &str, mode: u32) -> Self {
        let mut p = rel(path);
        if !p.is_empty() && !p.ends_with('/') {
            p.push('/');
        }
        self.push(tar::EntryType::Directory, p, None, Vec::new(), mode)
    }

    /// A regular file.
    pub fn file(self, path: &str, contents: &[u8], mode: u32) -> Self {
        self.push(
            tar::EntryType::Regular,
            rel(path),
            None,
            contents.to_vec(),
            mode,
        )
    }

    /// A symlink `path -> target` (target written verbatim), mode 0777.
    pub fn symlink(self, path: &str, target: &str) -> Self {
        self.push(
            tar::EntryType::Symlink,
            rel(path),
            Some(target.to_string()),
            Vec::new(),
            0o777,
        )
    }

    /// A hard link `path` to the archive member `target` (leading `/`
    /// stripped), mode 0644.
    pub fn hardlink(self, path: &str, target: &str) -> Self {
        self.push(
            tar::EntryType::Link,
            rel(path),
            Some(rel(target)),
            Vec::new(),
            0o644,
        )
    }

    /// An OCI/AUFS whiteout for `path`: an empty file `<dir>/.wh.<name>`.
    pub fn whiteout(self, path: &str) -> Self {
        let p = rel(path);
        let p = p.trim_end_matches('/');
        let name = match p.rsplit_once('/') {
            Some((dir, base)) => format!("{dir}/.wh.{base}"),
            None => format!(".wh.{p}"),
        };
        self.push(tar::EntryType::Regular, name, None, Vec::new(), 0o644)
    }

    /// An opaque-directory marker: an empty file `<dir>/.wh..wh..opq`
    /// (`dir` empty or `/` means the layer root).
    pub fn opaque(self, dir: &str) -> Self {
        let d = rel(dir);
        let d = d.trim_end_matches('/');
        let name = if d.is_empty() {
            ".wh..wh..opq".to_string()
        } else {
            format!("{d}/.wh..wh..opq")
        };
        self.push(tar::EntryType::Regular, name, None, Vec::new(), 0o644)
    }

    /// uid/gid for the entries added after this call (default 0/0).
    pub fn owner(mut self, uid: u64, gid: u64) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }

    /// Appends `header` **verbatim** (its name, type, size and checksum are
    /// not touched: call `set_size`/`set_cksum` yourself, or start from
    /// [`raw_header`]) followed by `data` zero-padded to a 512-byte boundary.
    /// For hostile-layer tests.
    pub fn raw_entry(mut self, header: tar::Header, data: Vec<u8>) -> Self {
        self.entries.push(Entry::Raw {
            header: Box::new(header),
            data,
        });
        self
    }

    /// The uncompressed tar stream (ends with two zero blocks).
    pub fn tar_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for e in &self.entries {
            match e {
                Entry::Normal {
                    kind,
                    path,
                    link,
                    data,
                    mode,
                    uid,
                    gid,
                } => {
                    if path.len() > 100 {
                        gnu_long(&mut out, tar::EntryType::GNULongName, path.as_bytes());
                    }
                    if let Some(l) = link
                        && l.len() > 100
                    {
                        gnu_long(&mut out, tar::EntryType::GNULongLink, l.as_bytes());
                    }
                    let mut h = tar::Header::new_gnu();
                    set_name(&mut h, path.as_bytes());
                    if let Some(l) = link {
                        set_link(&mut h, l.as_bytes());
                    }
                    h.set_entry_type(*kind);
                    h.set_mode(*mode);
                    h.set_uid(*uid);
                    h.set_gid(*gid);
                    h.set_mtime(LAYER_MTIME);
                    h.set_size(data.len() as u64);
                    h.set_cksum();
                    block(&mut out, h.as_bytes(), data);
                }
                Entry::Raw { header, data } => block(&mut out, header.as_bytes(), data),
            }
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    /// The layer, compressed as asked, with OCI media types
    /// ([`ImageBuilder::docker_media_types`] maps them to Docker's).
    pub fn build(&self, c: Compression) -> Layer {
        Layer::from_tar(self.tar_bytes(), c)
    }
}

/// A GNU header for a raw entry: `name` copied as-is into the 100-byte name
/// field (truncated beyond that; no validation at all, so `../x`, `/etc/x`
/// or non-UTF-8 bytes are fine), the given type and size, mode 0644, uid/gid
/// 0, mtime [`LAYER_MTIME`], valid checksum. Tweak it further (then call
/// `set_cksum` again) and pass it to [`LayerBuilder::raw_entry`].
pub fn raw_header(name: &[u8], kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    set_name(&mut h, name);
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(LAYER_MTIME);
    h.set_size(size);
    h.set_cksum();
    h
}

fn set_name(h: &mut tar::Header, name: &[u8]) {
    let field = &mut h.as_old_mut().name;
    field.fill(0);
    let n = name.len().min(field.len());
    field[..n].copy_from_slice(&name[..n]);
}

fn set_link(h: &mut tar::Header, name: &[u8]) {
    let field = &mut h.as_old_mut().linkname;
    field.fill(0);
    let n = name.len().min(field.len());
    field[..n].copy_from_slice(&name[..n]);
}

fn gnu_long(out: &mut Vec<u8>, kind: tar::EntryType, value: &[u8]) {
    let mut data = value.to_vec();
    data.push(0);
    let mut h = tar::Header::new_gnu();
    set_name(&mut h, b"././@LongLink");
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(data.len() as u64);
    h.set_cksum();
    block(out, h.as_bytes(), &data);
}

fn block(out: &mut Vec<u8>, header: &[u8; 512], data: &[u8]) {
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    let rem = out.len() % 512;
    if rem != 0 {
        out.resize(out.len() + 512 - rem, 0);
    }
}

/// A single-platform image: manifest, config and layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub manifest: Blob,
    pub config: Blob,
    pub layers: Vec<Layer>,
}

impl Image {
    /// The manifest digest.
    pub fn digest(&self) -> &str {
        &self.manifest.digest
    }

    /// Config blob then layer blobs: everything the manifest references.
    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.config).chain(self.layers.iter().map(|l| &l.blob))
    }

    /// The OCI platform object (`architecture`, `os`, `variant` if any) read
    /// back from the config; `None` if the config is not a JSON object.
    pub fn platform(&self) -> Option<Value> {
        let cfg = self.config.as_json()?;
        let cfg = cfg.as_object()?;
        let mut p = serde_json::Map::new();
        for key in ["architecture", "os", "os.version", "variant"] {
            if let Some(v) = cfg.get(key) {
                p.insert(key.to_string(), v.clone());
            }
        }
        Some(Value::Object(p))
    }
}

/// Builds an [`Image`]; linux/amd64 and OCI media types by default.
#[derive(Debug, Clone)]
pub struct ImageBuilder {
    os: String,
    arch: String,
    variant: Option<String>,
    docker: bool,
    layers: Vec<Layer>,
    config: Value,
    history: Vec<String>,
    annotations: serde_json::Map<String, Value>,
}

impl Default for ImageBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageBuilder {
    /// linux/amd64, OCI media types, no layers, config `{"config": {}}`.
    pub fn new() -> Self {
        ImageBuilder {
            os: "linux".into(),
            arch: "amd64".into(),
            variant: None,
            docker: false,
            layers: Vec::new(),
            config: json!({ "config": {} }),
            history: Vec::new(),
            annotations: serde_json::Map::new(),
        }
    }

    /// The platform written into the config (`os`, `architecture`, `variant`).
    pub fn platform(mut self, os: &str, arch: &str, variant: Option<&str>) -> Self {
        self.os = os.into();
        self.arch = arch.into();
        self.variant = variant.map(Into::into);
        self
    }

    /// Docker schema2 manifest/config/layer media types instead of OCI (layer
    /// media types are mapped: tar, tar.gzip, and containerd's tar.zstd).
    pub fn docker_media_types(mut self) -> Self {
        self.docker = true;
        self
    }

    /// Appends a layer.
    pub fn layer(mut self, l: Layer) -> Self {
        self.layers.push(l);
        self
    }

    /// Edits the config JSON **document** (the whole image config, so the
    /// runtime settings live under `"config"`: `c["config"]["Env"] = json!([...])`,
    /// `Cmd`, `Entrypoint`, `WorkingDir`, `User`, ...).
    ///
    /// Edits are applied right away; at [`build`](Self::build) the generated
    /// top-level fields (`created`, `architecture`, `os`, `variant`, `rootfs`,
    /// `history`) are only filled in when absent, so an edit that sets one of
    /// them wins (e.g. bogus `rootfs.diff_ids` for hostile tests).
    pub fn config(mut self, f: impl FnOnce(&mut Value)) -> Self {
        f(&mut self.config);
        self
    }

    /// Adds a history entry; entries pair with layers in order. Layers
    /// without one get `"strata-testutil layer N"`; surplus entries are
    /// marked `empty_layer`.
    pub fn history(mut self, created_by: &str) -> Self {
        self.history.push(created_by.into());
        self
    }

    /// Adds a manifest annotation (emitted only when any is set).
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations
            .insert(key.into(), Value::String(value.into()));
        self
    }

    /// Builds config and manifest. The config gets `rootfs.diff_ids` = the
    /// layers' diff_ids, history, `created` = [`CREATED`] (unless edited).
    pub fn build(self) -> Image {
        let mut config = self.config;
        // (A config edit that replaced the document with a non-object is kept as is.)
        if let Some(obj) = config.as_object_mut() {
            obj.entry("created").or_insert_with(|| CREATED.into());
            obj.entry("architecture")
                .or_insert_with(|| self.arch.clone().into());
            obj.entry("os").or_insert_with(|| self.os.clone().into());
            if let Some(v) = &self.variant {
                obj.entry("variant").or_insert_with(|| v.clone().into());
            }
            obj.entry("rootfs").or_insert_with(|| {
                json!({
                    "type": "layers",
                    "diff_ids": self.layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
                })
            });
            obj.entry("history").or_insert_with(|| {
                let n = self.layers.len().max(self.history.len());
                Value::Array(
                    (0..n)
                        .map(|i| {
                            let by = self
                                .history
                                .get(i)
                                .cloned()
                                .unwrap_or_else(|| format!("strata-testutil layer {i}"));
                            let mut h = json!({ "created": CREATED, "created_by": by });
                            if i >= self.layers.len() {
                                h["empty_layer"] = Value::Bool(true);
                            }
                            h
                        })
                        .collect(),
                )
            });
        }

        let (manifest_type, config_type) = if self.docker {
            (DOCKER_MANIFEST, DOCKER_CONFIG)
        } else {
            (OCI_MANIFEST, OCI_CONFIG)
        };
        let config = Blob::json(config_type, &config);
        let layers: Vec<Layer> = self
            .layers
            .into_iter()
            .map(|mut l| {
                if self.docker {
                    l.blob.media_type = to_docker_layer_type(&l.blob.media_type).to_string();
                }
                l
            })
            .collect();
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": config.descriptor(),
            "layers": layers.iter().map(|l| l.blob.descriptor()).collect::<Vec<_>>(),
        });
        if !self.annotations.is_empty() {
            manifest["annotations"] = Value::Object(self.annotations);
        }
        Image {
            manifest: Blob::json(manifest_type, &manifest),
            config,
            layers,
        }
    }
}

fn to_docker_layer_type(oci: &str) -> &str {
    match oci {
        OCI_LAYER => DOCKER_LAYER,
        OCI_LAYER_GZIP => DOCKER_LAYER_GZIP,
        OCI_LAYER_ZSTD => DOCKER_LAYER_ZSTD,
        other => other,
    }
}

/// An index plus the images it references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub index: Blob,
    pub images: Vec<Image>,
    pub attestations: Vec<Image>,
}

impl Index {
    /// The index digest.
    pub fn digest(&self) -> &str {
        &self.index.digest
    }
}

/// An OCI index over `images` (each entry with the platform read from its
/// config), plus, when `attest_for` is `Some(i)`, a BuildKit-style attestation
/// manifest for `images[i]`, listed after the images: platform
/// `unknown/unknown`, annotations `vnd.docker.reference.type:
/// attestation-manifest` and `vnd.docker.reference.digest: <manifest digest
/// of images[i]>`, one layer of media type `application/vnd.in-toto+json`
/// holding an SPDX in-toto statement whose subject is that manifest.
///
/// # Panics
/// If `attest_for` is out of range for `images` (a bug in the calling test).
pub fn build_index(images: Vec<Image>, attest_for: Option<usize>) -> Index {
    let mut manifests: Vec<Value> = images
        .iter()
        .map(|img| {
            let mut d = img.manifest.descriptor();
            if let Some(p) = img.platform() {
                d["platform"] = p;
            }
            d
        })
        .collect();

    let mut attestations = Vec::new();
    if let Some(i) = attest_for {
        let Some(target) = images.get(i) else {
            panic!(
                "build_index: attest_for = {i} but only {} images were given",
                images.len()
            );
        };
        let att = attestation_for(target);
        let mut d = att.manifest.descriptor();
        d["annotations"] = json!({
            "vnd.docker.reference.digest": target.digest(),
            "vnd.docker.reference.type": "attestation-manifest",
        });
        d["platform"] = json!({ "architecture": "unknown", "os": "unknown" });
        manifests.push(d);
        attestations.push(att);
    }

    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    });
    Index {
        index: Blob::json(OCI_INDEX, &index),
        images,
        attestations,
    }
}

fn attestation_for(target: &Image) -> Image {
    let hex = target
        .digest()
        .strip_prefix("sha256:")
        .unwrap_or(target.digest())
        .to_string();
    let platform = target
        .platform()
        .map(|p| {
            let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let mut out = format!("{}/{}", s("os"), s("architecture"));
            if !s("variant").is_empty() {
                out = format!("{out}/{}", s("variant"));
            }
            out.replace('/', "%2F")
        })
        .unwrap_or_default();
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://spdx.dev/Document",
        "subject": [{
            "name": format!("pkg:docker/strata-testutil/image@latest?platform={platform}"),
            "digest": { "sha256": hex },
        }],
        "predicate": {
            "spdxVersion": "SPDX-2.3",
            "dataLicense": "CC0-1.0",
            "SPDXID": "SPDXRef-DOCUMENT",
            "name": "sbom",
            "documentNamespace": format!("https://example.invalid/strata-testutil/sbom-{hex}"),
            "creationInfo": {
                "created": CREATED,
                "creators": ["Tool: strata-testutil"],
            },
            "packages": [],
        },
    });
    let layer_blob = Blob::json(IN_TOTO, &statement);
    let layer = Layer {
        diff_id: layer_blob.digest.clone(),
        blob: layer_blob,
    };
    let config = Blob::json(
        OCI_CONFIG,
        &json!({
            "architecture": "unknown",
            "os": "unknown",
            "config": {},
            "rootfs": { "type": "layers", "diff_ids": [layer.diff_id] },
        }),
    );
    let mut layer_desc = layer.blob.descriptor();
    layer_desc["annotations"] = json!({ "in-toto.io/predicate-type": "https://spdx.dev/Document" });
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer_desc],
    });
    Image {
        manifest: Blob::json(OCI_MANIFEST, &manifest),
        config,
        layers: vec![layer],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample() -> LayerBuilder {
        LayerBuilder::new()
            .dir("etc", 0o755)
            .file("/etc/hostname", b"strata\n", 0o644)
            .symlink("etc/localtime", "/usr/share/zoneinfo/UTC")
            .hardlink("etc/hostname2", "etc/hostname")
            .owner(1000, 1001)
            .file(&format!("deep/{}", "x".repeat(150)), b"long", 0o600)
            .symlink("ln", &format!("/{}", "y".repeat(150)))
            .whiteout("var/cache")
            .opaque("usr/lib/")
    }

    #[test]
    fn same_layer_same_digest() {
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let a = sample().build(c);
            let b = sample().build(c);
            assert_eq!(a, b);
            assert_eq!(a.blob.digest, sha256_digest(&a.blob.bytes));
        }
        let none = sample().build(Compression::None);
        let gz = sample().build(Compression::Gzip);
        let zs = sample().build(Compression::Zstd);
        assert_eq!(none.diff_id, gz.diff_id);
        assert_eq!(none.diff_id, zs.diff_id);
        assert_eq!(none.diff_id, none.blob.digest);
        assert_ne!(none.blob.digest, gz.blob.digest);
        assert_eq!(gz.blob.media_type, OCI_LAYER_GZIP);
        assert_eq!(zs.blob.media_type, OCI_LAYER_ZSTD);
    }

    #[test]
    fn same_image_same_digest() {
        let mk = || {
            ImageBuilder::new()
                .layer(sample().build(Compression::Gzip))
                .config(|c| c["config"]["Env"] = json!(["A=1"]))
                .history("RUN thing")
                .build()
        };
        assert_eq!(mk(), mk());
    }

    #[test]
    fn tar_reads_back() -> anyhow::Result<()> {
        let layer = sample().build(Compression::Gzip);
        let mut tar_bytes = Vec::new();
        flate2::read::GzDecoder::new(&layer.blob.bytes[..]).read_to_end(&mut tar_bytes)?;
        assert_eq!(sha256_digest(&tar_bytes), layer.diff_id);
        let mut ar = tar::Archive::new(&tar_bytes[..]);
        let mut seen = Vec::new();
        for e in ar.entries()? {
            let mut e = e?;
            let path = e.path()?.to_string_lossy().into_owned();
            let link = e.link_name()?.map(|l| l.to_string_lossy().into_owned());
            let h = e.header();
            let (uid, gid, mtime, kind) = (h.uid()?, h.gid()?, h.mtime()?, h.entry_type());
            let mut data = Vec::new();
            e.read_to_end(&mut data)?;
            seen.push((path, link, uid, gid, mtime, kind, data));
        }
        let names: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
        let long = format!("deep/{}", "x".repeat(150));
        assert_eq!(
            names,
            [
                "etc/",
                "etc/hostname",
                "etc/localtime",
                "etc/hostname2",
                long.as_str(),
                "ln",
                "var/.wh.cache",
                "usr/lib/.wh..wh..opq"
            ]
        );
        assert!(seen.iter().all(|s| s.4 == LAYER_MTIME));
        assert_eq!((seen[1].2, seen[1].3), (0, 0));
        assert_eq!((seen[4].2, seen[4].3), (1000, 1001));
        assert_eq!(seen[4].6, b"long");
        assert_eq!(seen[1].6, b"strata\n");
        assert_eq!(seen[2].1.as_deref(), Some("/usr/share/zoneinfo/UTC"));
        assert_eq!(seen[2].5, tar::EntryType::Symlink);
        assert_eq!(seen[3].1.as_deref(), Some("etc/hostname"));
        assert_eq!(seen[3].5, tar::EntryType::Link);
        assert_eq!(seen[5].1, Some(format!("/{}", "y".repeat(150))));
        assert_eq!(seen[0].5, tar::EntryType::Directory);
        Ok(())
    }

    #[test]
    fn zstd_reads_back() -> anyhow::Result<()> {
        let layer = sample().build(Compression::Zstd);
        let tar_bytes = zstd::stream::decode_all(&layer.blob.bytes[..])?;
        assert_eq!(sha256_digest(&tar_bytes), layer.diff_id);
        Ok(())
    }

    #[test]
    fn raw_entries_written_verbatim() -> anyhow::Result<()> {
        let data = b"evil".to_vec();
        let h = raw_header(
            b"../../etc/passwd",
            tar::EntryType::Regular,
            data.len() as u64,
        );
        let tar_bytes = LayerBuilder::new().raw_entry(h, data).tar_bytes();
        assert_eq!(&tar_bytes[..16], b"../../etc/passwd");
        let mut ar = tar::Archive::new(&tar_bytes[..]);
        let mut n = 0;
        for e in ar.entries()? {
            let e = e?;
            assert_eq!(&*e.path_bytes(), b"../../etc/passwd");
            assert_eq!(e.size(), 4);
            n += 1;
        }
        assert_eq!(n, 1);
        Ok(())
    }

    #[test]
    fn image_config_and_manifest() -> anyhow::Result<()> {
        let l1 = LayerBuilder::new()
            .file("a", b"1", 0o644)
            .build(Compression::Gzip);
        let l2 = LayerBuilder::new()
            .file("b", b"2", 0o644)
            .build(Compression::None);
        let img = ImageBuilder::new()
            .platform("linux", "arm64", Some("v8"))
            .layer(l1.clone())
            .layer(l2.clone())
            .history("ADD a")
            .config(|c| c["config"]["Cmd"] = json!(["/bin/sh"]))
            .build();
        let cfg = img
            .config
            .as_json()
            .ok_or_else(|| anyhow::anyhow!("config json"))?;
        assert_eq!(cfg["rootfs"]["diff_ids"], json!([l1.diff_id, l2.diff_id]));
        assert_eq!(cfg["architecture"], "arm64");
        assert_eq!(cfg["variant"], "v8");
        assert_eq!(cfg["created"], CREATED);
        assert_eq!(cfg["config"]["Cmd"], json!(["/bin/sh"]));
        assert_eq!(cfg["history"][0]["created_by"], "ADD a");
        assert_eq!(cfg["history"].as_array().map(Vec::len), Some(2));
        let m = img
            .manifest
            .as_json()
            .ok_or_else(|| anyhow::anyhow!("manifest json"))?;
        assert_eq!(m["mediaType"], OCI_MANIFEST);
        assert_eq!(m["config"]["digest"], img.config.digest.as_str());
        assert_eq!(m["layers"][1]["mediaType"], OCI_LAYER);
        assert_eq!(
            img.platform(),
            Some(json!({"architecture":"arm64","os":"linux","variant":"v8"}))
        );

        let d = ImageBuilder::new()
            .docker_media_types()
            .layer(l1)
            .layer(l2)
            .build();
        let m = d
            .manifest
            .as_json()
            .ok_or_else(|| anyhow::anyhow!("manifest json"))?;
        assert_eq!(d.manifest.media_type, DOCKER_MANIFEST);
        assert_eq!(m["mediaType"], DOCKER_MANIFEST);
        assert_eq!(m["config"]["mediaType"], DOCKER_CONFIG);
        assert_eq!(m["layers"][0]["mediaType"], DOCKER_LAYER_GZIP);
        assert_eq!(m["layers"][1]["mediaType"], DOCKER_LAYER);

        // Config edits win over generated fields.
        let bogus = ImageBuilder::new()
            .layer(LayerBuilder::new().build(Compression::None))
            .config(|c| c["rootfs"] = json!({"type": "layers", "diff_ids": []}))
            .build();
        let cfg = bogus
            .config
            .as_json()
            .ok_or_else(|| anyhow::anyhow!("config json"))?;
        assert_eq!(cfg["rootfs"]["diff_ids"], json!([]));
        Ok(())
    }

    #[test]
    fn index_with_attestation() -> anyhow::Result<()> {
        let a = ImageBuilder::new().build();
        let b = ImageBuilder::new()
            .platform("linux", "arm64", Some("v8"))
            .build();
        let idx = build_index(vec![a.clone(), b.clone()], Some(1));
        assert_eq!(idx.attestations.len(), 1);
        let j = idx
            .index
            .as_json()
            .ok_or_else(|| anyhow::anyhow!("index json"))?;
        assert_eq!(j["mediaType"], OCI_INDEX);
        let m = j["manifests"]
            .as_array()
            .ok_or_else(|| anyhow::anyhow!("manifests"))?;
        assert_eq!(m.len(), 3);
        assert_eq!(m[0]["digest"], a.digest());
        assert_eq!(
            m[0]["platform"],
            json!({"architecture":"amd64","os":"linux"})
        );
        assert_eq!(m[1]["platform"]["variant"], "v8");
        assert_eq!(m[2]["digest"], idx.attestations[0].digest());
        assert_eq!(
            m[2]["platform"],
            json!({"architecture":"unknown","os":"unknown"})
        );
        assert_eq!(
            m[2]["annotations"]["vnd.docker.reference.digest"],
            b.digest()
        );
        assert_eq!(
            m[2]["annotations"]["vnd.docker.reference.type"],
            "attestation-manifest"
        );
        let att = &idx.attestations[0];
        assert_eq!(att.layers[0].blob.media_type, IN_TOTO);
        let stmt = att.layers[0]
            .blob
            .as_json()
            .ok_or_else(|| anyhow::anyhow!("stmt"))?;
        assert_eq!(
            format!(
                "sha256:{}",
                stmt["subject"][0]["digest"]["sha256"]
                    .as_str()
                    .unwrap_or("")
            ),
            b.digest()
        );
        assert_eq!(build_index(vec![a, b], Some(1)), idx);
        Ok(())
    }
}
