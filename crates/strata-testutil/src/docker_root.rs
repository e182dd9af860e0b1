//! A Docker Engine data root with the classic overlay2 storage driver, written from in-memory
//! images the way dockerd lays one out after `docker load`: the fixture for `strata migrate`
//! (dockerd does not run on every test machine).
//!
//! Written here independently of strata's own tar code, from the layout dockerd uses:
//! `image/overlay2/{repositories.json, imagedb/content/sha256/<id>,
//! layerdb/sha256/<chainID>/{diff,parent,cache-id,size,tar-split.json.gz}}`, and
//! `overlay2/<cache-id>/{diff/,link,lower,work/}` with `overlay2/l/<link>` symlinks. Layer
//! files are unpacked with the `tar` crate, whiteouts made overlay whiteouts (0/0 character
//! devices, `trusted.overlay.opaque`) as dockerd's overlay2 driver does, so this needs root.
//! `tar-split.json.gz` lists every tar entry as tar-split does: a type-2 segment with the raw
//! bytes before the entry's data, then a type-1 entry with its name, size and crc64-ISO.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::symlink;
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::image::Image;

/// Writes `images` (each with its names, e.g. `["busybox:latest"]`; none for a dangling one)
/// into the Docker data root `root`, and `containers` container directories.
pub fn write_docker_root(
    root: &Path,
    images: &[(&[&str], &Image)],
    containers: usize,
) -> anyhow::Result<()> {
    let driver = root.join("image/overlay2");
    fs::create_dir_all(driver.join("imagedb/content/sha256"))?;
    fs::create_dir_all(driver.join("imagedb/metadata/sha256"))?;
    fs::create_dir_all(driver.join("layerdb/sha256"))?;
    fs::create_dir_all(root.join("overlay2/l"))?;
    fs::create_dir_all(root.join("containers"))?;
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (names, image) in images {
        let id = format!("sha256:{}", hex(&Sha256::digest(&image.config.bytes)));
        fs::write(
            driver.join("imagedb/content/sha256").join(&id[7..]),
            &image.config.bytes,
        )?;
        for name in *names {
            let repo = name.rsplit_once(':').map_or(*name, |(r, _)| r);
            repositories
                .entry(repo.to_owned())
                .or_default()
                .insert((*name).to_owned(), id.clone());
        }
        let mut chain: Option<String> = None;
        let mut lower: Vec<String> = Vec::new();
        for layer in &image.layers {
            let tar = uncompressed(&layer.blob.bytes)?;
            let diff_id = format!("sha256:{}", hex(&Sha256::digest(&tar)));
            anyhow::ensure!(diff_id == layer.diff_id, "layer diffID");
            let chain_id = match &chain {
                None => diff_id.clone(),
                Some(parent) => format!(
                    "sha256:{}",
                    hex(&Sha256::digest(format!("{parent} {diff_id}").as_bytes()))
                ),
            };
            let link = short_link(&chain_id);
            let layer_dir = driver.join("layerdb/sha256").join(&chain_id[7..]);
            if !layer_dir.exists() {
                // dockerd names layer directories randomly; any name unrelated to the IDs.
                let cache_id = hex(&Sha256::digest(format!("cache {chain_id}").as_bytes()));
                let cache = root.join("overlay2").join(&cache_id);
                fs::create_dir_all(cache.join("work"))?;
                let size = unpack(&tar, &cache.join("diff"))?;
                fs::write(cache.join("link"), &link)?;
                if !lower.is_empty() {
                    fs::write(cache.join("lower"), lower.join(":"))?;
                }
                symlink(
                    format!("../{cache_id}/diff"),
                    root.join("overlay2/l").join(&link),
                )?;
                fs::create_dir_all(&layer_dir)?;
                fs::write(layer_dir.join("diff"), &diff_id)?;
                if let Some(parent) = &chain {
                    fs::write(layer_dir.join("parent"), parent)?;
                }
                fs::write(layer_dir.join("cache-id"), &cache_id)?;
                fs::write(layer_dir.join("size"), size.to_string())?;
                fs::write(layer_dir.join("tar-split.json.gz"), tar_split(&tar)?)?;
            }
            lower.insert(0, format!("l/{link}"));
            chain = Some(chain_id);
        }
    }
    for i in 0..containers {
        let id = hex(&Sha256::digest(format!("container {i}").as_bytes()));
        fs::create_dir_all(root.join("containers").join(&id))?;
        fs::write(
            root.join("containers").join(&id).join("config.v2.json"),
            json!({ "ID": id }).to_string(),
        )?;
    }
    let repositories = json!({ "Repositories": repositories });
    fs::write(driver.join("repositories.json"), repositories.to_string())?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// dockerd's 26-character link names, here derived from the chain.
fn short_link(chain_id: &str) -> String {
    hex(&Sha256::digest(chain_id.as_bytes()))[..26].to_ascii_uppercase()
}

fn uncompressed(blob: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    if blob.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(blob).read_to_end(&mut out)?;
    } else if blob.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::stream::read::Decoder::new(blob)?.read_to_end(&mut out)?;
    } else {
        out = blob.to_vec();
    }
    Ok(out)
}

/// Unpacks `tar` into `dir` as dockerd's overlay2 driver does; returns the bytes of file
/// data (the layer's `size`).
fn unpack(tar: &[u8], dir: &Path) -> anyhow::Result<u64> {
    fs::create_dir_all(dir)?;
    let mut archive = tar::Archive::new(tar);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_preserve_ownerships(true);
    archive.set_unpack_xattrs(true);
    let mut size = 0;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = dir.join(path.parent().unwrap_or(Path::new("")));
        if name == ".wh..wh..opq" {
            fs::create_dir_all(&parent)?;
            rustix::fs::setxattr(
                &parent,
                "trusted.overlay.opaque",
                b"y",
                rustix::fs::XattrFlags::empty(),
            )
            .context("set trusted.overlay.opaque (needs root)")?;
        } else if let Some(hidden) = name.strip_prefix(".wh.") {
            fs::create_dir_all(&parent)?;
            rustix::fs::mknodat(
                rustix::fs::CWD,
                parent.join(hidden),
                rustix::fs::FileType::CharacterDevice,
                rustix::fs::Mode::empty(),
                rustix::fs::makedev(0, 0),
            )
            .context("make an overlay whiteout (needs root)")?;
        } else {
            size += entry.size();
            if !entry.unpack_in(dir)? {
                bail!("tar entry {} escapes the layer", path.display());
            }
        }
    }
    Ok(size)
}

/// tar-split's `tar-split.json.gz` for `tar`.
fn tar_split(tar: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut position = 0u64;
    let mut cursor = 0usize;
    let mut emit = |gz: &mut flate2::write::GzEncoder<Vec<u8>>, mut v: Value| {
        v["position"] = json!(position);
        position += 1;
        writeln!(gz, "{v}")
    };
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries()? {
        let entry = entry?;
        let start = usize::try_from(entry.raw_file_position())?;
        let size = usize::try_from(entry.size())?;
        emit(
            &mut gz,
            json!({ "type": 2, "payload": base64(&tar[cursor..start]) }),
        )?;
        let name = String::from_utf8(entry.path_bytes().into_owned())
            .context("a test layer's names are UTF-8")?;
        emit(
            &mut gz,
            json!({
                "type": 1,
                "name": name,
                "size": size,
                "payload": base64(&crc64_iso(&tar[start..start + size]).to_be_bytes()),
            }),
        )?;
        cursor = start + size;
    }
    emit(
        &mut gz,
        json!({ "type": 2, "payload": base64(&tar[cursor..]) }),
    )?;
    Ok(gz.finish()?)
}

/// Go's `crc64.Checksum(data, crc64.MakeTable(crc64.ISO))`.
fn crc64_iso(data: &[u8]) -> u64 {
    const POLY: u64 = 0xD800_0000_0000_0000;
    let mut crc = !0u64;
    for &b in data {
        crc ^= u64::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_and_base64_match_their_references() {
        // Go: crc64.Checksum([]byte("123456789"), crc64.MakeTable(crc64.ISO)).
        assert_eq!(crc64_iso(b"123456789"), 0xb909_56c7_75a4_1001);
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
