//! Docker's tar split: the `tar-split.json.gz` its classic layer store keeps beside each layer
//! (`image/overlay2/layerdb/sha256/<chainID>/`), read to rebuild the layer's exact tar from its
//! unpacked directory, and written from a strata split (for fixtures of that store).
//!
//! The format is tar-split's (github.com/vbatts/tar-split, `storage` package): gzip of JSON
//! lines, one per entry, in order:
//!
//! ```text
//! {"type":2,"payload":"<base64 raw tar bytes>","position":0}          a segment: headers, padding
//! {"type":1,"name":"usr/bin/x","size":1234,"payload":"<base64 crc64>","position":1}
//!                                                                      a file's data, read from
//!                                                                      the directory; crc64-ISO
//!                                                                      of it, 8 bytes big-endian
//! ```
//!
//! A name that is not UTF-8 comes as `name_raw` (base64) instead of `name`. Docker writes a
//! type-1 entry for every tar entry, size 0 for those without data; strata writes them for
//! files with data only, which every reader of the format replays the same way.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::error::ArchiveError;
use crate::path::normalize;
use crate::prefetch;
use crate::split::{Record, copy_file, open_tree, read_split};

const FILE: u8 = 1;
const SEGMENT: u8 = 2;
/// A line longer than this is refused (segments are headers and padding: small).
const MAX_LINE: usize = 64 << 20;

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name_raw: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(default)]
    payload: Option<String>,
    position: u64,
}

fn bad(reason: impl Into<String>) -> ArchiveError {
    ArchiveError::Split {
        reason: format!("docker tar-split: {}", reason.into()),
    }
}

/// The entries of a `tar-split.json.gz`, in order, positions and line lengths checked.
struct Entries<R: Read> {
    lines: BufReader<flate2::read::GzDecoder<R>>,
    line: Vec<u8>,
    position: u64,
}

impl<R: Read> Entries<R> {
    fn new(json_gz: R) -> Self {
        Entries {
            lines: BufReader::new(flate2::read::GzDecoder::new(json_gz)),
            line: Vec::new(),
            position: 0,
        }
    }

    fn next_entry(&mut self) -> Result<Option<Entry>, ArchiveError> {
        loop {
            self.line.clear();
            let n = (&mut self.lines)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut self.line)
                .map_err(|e| bad(format!("read: {e}")))?;
            if n == 0 {
                return Ok(None);
            }
            if n > MAX_LINE {
                return Err(bad(format!("a line longer than {MAX_LINE} bytes")));
            }
            if self.line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let entry: Entry = serde_json::from_slice(&self.line)
                .map_err(|e| bad(format!("entry {}: {e}", self.position)))?;
            if entry.position != self.position {
                return Err(bad(format!(
                    "entry at position {} where {} was due",
                    entry.position, self.position
                )));
            }
            self.position += 1;
            return Ok(Some(entry));
        }
    }
}

impl Entry {
    fn payload(&self) -> Result<Vec<u8>, ArchiveError> {
        match &self.payload {
            Some(p) => BASE64
                .decode(p)
                .map_err(|e| bad(format!("entry {}: payload: {e}", self.position))),
            None => Ok(Vec::new()),
        }
    }

    /// The normalized name of a file entry with data; `None` for anything else.
    fn file_name(&self) -> Result<Option<(Vec<u8>, u64)>, ArchiveError> {
        let size = self.size.unwrap_or(0);
        if self.kind != FILE || size == 0 {
            return Ok(None);
        }
        let raw_name = match (&self.name, &self.name_raw) {
            (Some(n), _) => n.as_bytes().to_vec(),
            (None, Some(r)) => BASE64
                .decode(r)
                .map_err(|e| bad(format!("entry {}: name: {e}", self.position)))?,
            (None, None) => return Err(bad(format!("entry {}: no name", self.position))),
        };
        let name = normalize(&raw_name)
            .map_err(|why| bad(format!("entry {}: name: {why}", self.position)))?;
        Ok(Some((name, size)))
    }
}

/// Writes the layer tar that Docker's `tar-split.json.gz` (`json_gz`) describes, reading file
/// data from `tree` (the layer's `diff` directory) and checking each file's crc64 against the
/// split. Returns the bytes written; the caller checks the diffID.
pub fn rebuild_docker_layer(
    json_gz: impl Read,
    tree: &Path,
    out: &mut dyn Write,
) -> Result<u64, ArchiveError> {
    rebuild(json_gz, tree, out, &|| {})
}

/// [`rebuild_docker_layer`] from the split file at `split`, with the files it reads next
/// brought into the page cache by a few threads ahead of it: a cold tree of many small files
/// is read at the disk's queue depth rather than one file at a time.
pub fn rebuild_docker_layer_prefetched(
    split: &Path,
    tree: &Path,
    out: &mut dyn Write,
) -> Result<u64, ArchiveError> {
    let open = || {
        std::fs::File::open(split).map_err(|source| ArchiveError::Walk {
            op: "open tar-split",
            path: split.to_owned(),
            source,
        })
    };
    let main = open()?;
    let ahead = open()?;
    let root = open_tree(tree)?;
    let names = std::iter::from_fn({
        let mut entries = Entries::new(ahead);
        // Damage shows in the main pass, which reads the same entries.
        move || loop {
            match entries.next_entry() {
                Ok(Some(e)) => match e.file_name() {
                    Ok(Some((name, _))) => return Some(name),
                    Ok(None) => {}
                    Err(_) => return None,
                },
                _ => return None,
            }
        }
    });
    prefetch::with_prefetch(&root, names, |progress| {
        rebuild(main, tree, out, &|| progress.advance())
    })
}

/// The rebuild; `file_done` is called after each file's data is written.
fn rebuild(
    json_gz: impl Read,
    tree: &Path,
    out: &mut dyn Write,
    file_done: &dyn Fn(),
) -> Result<u64, ArchiveError> {
    let root = open_tree(tree)?;
    let mut entries = Entries::new(json_gz);
    let mut buf = vec![0u8; 1 << 20];
    let mut written = 0u64;
    while let Some(entry) = entries.next_entry()? {
        match entry.kind {
            SEGMENT => {
                let raw = entry.payload()?;
                out.write_all(&raw)
                    .map_err(|source| ArchiveError::Write { source })?;
                written += raw.len() as u64;
            }
            FILE => {
                let Some((name, size)) = entry.file_name()? else {
                    continue;
                };
                let mut crc = Crc64Writer { crc: !0, out };
                copy_file(&root, tree, &name, &[(0, size)], &mut buf, &mut crc)?;
                file_done();
                let sum = (!crc.crc).to_be_bytes();
                let want = entry.payload()?;
                if !want.is_empty() && want != sum {
                    return Err(bad(format!(
                        "{}: its content is not what the layer held (crc64 differs from the \
                         split's): the layer's files were changed",
                        tree.join(String::from_utf8_lossy(&name).as_ref()).display()
                    )));
                }
                written += size;
            }
            other => {
                return Err(bad(format!(
                    "entry {}: unknown type {other}",
                    entry.position
                )));
            }
        }
    }
    Ok(written)
}

/// Docker's `tar-split.json.gz` for the layer strata recorded as `split` (see
/// [`crate::rebuild_layer`]), file checksums read from `tree`. Sparse files have no form
/// there (tar-split reads a file's data from its start) and are refused.
pub fn docker_split_from(split: &[u8], tree: &Path) -> Result<Vec<u8>, ArchiveError> {
    let root = open_tree(tree)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut position = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    let emit = |gz: &mut flate2::write::GzEncoder<Vec<u8>>, e: Entry| {
        serde_json::to_writer(&mut *gz, &e)
            .map_err(io::Error::other)
            .and_then(|()| gz.write_all(b"\n"))
            .map_err(|source| ArchiveError::Write { source })
    };
    read_split(split, |rec| {
        let entry = match rec {
            Record::Raw(raw) => Entry {
                kind: SEGMENT,
                name: None,
                name_raw: None,
                size: None,
                payload: Some(BASE64.encode(raw)),
                position,
            },
            Record::File { sparse: true, .. } => {
                return Err(bad("a sparse file has no tar-split form"));
            }
            Record::File { name, regions, .. } => {
                let mut crc = Crc64Writer {
                    crc: !0,
                    out: &mut io::sink(),
                };
                let size = copy_file(&root, tree, name, regions, &mut buf, &mut crc)?;
                let (name, name_raw) = match std::str::from_utf8(name) {
                    Ok(n) => (Some(n.to_owned()), None),
                    Err(_) => (None, Some(BASE64.encode(name))),
                };
                Entry {
                    kind: FILE,
                    name,
                    name_raw,
                    size: Some(size),
                    payload: Some(BASE64.encode((!crc.crc).to_be_bytes())),
                    position,
                }
            }
        };
        position += 1;
        emit(&mut gz, entry)
    })?;
    gz.finish().map_err(|source| ArchiveError::Write { source })
}

/// CRC-64 with the ISO polynomial, as Go's `hash/crc64` computes it (reflected, initial and
/// final value all ones), of what goes through to `out`.
struct Crc64Writer<'a> {
    crc: u64,
    out: &'a mut dyn Write,
}

const CRC64_ISO_REFLECTED: u64 = 0xD800_0000_0000_0000;

static CRC64_TABLE: std::sync::LazyLock<[u64; 256]> = std::sync::LazyLock::new(|| {
    let mut table = [0u64; 256];
    for (i, slot) in table.iter_mut().enumerate() {
        let mut crc = i as u64;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ CRC64_ISO_REFLECTED
            } else {
                crc >> 1
            };
        }
        *slot = crc;
    }
    table
});

impl Write for Crc64Writer<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.out.write(data)?;
        let table = &*CRC64_TABLE;
        for &b in &data[..n] {
            self.crc = table[((self.crc ^ u64::from(b)) & 0xff) as usize] ^ (self.crc >> 8);
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crc64(data: &[u8]) -> u64 {
        let mut w = Crc64Writer {
            crc: !0,
            out: &mut io::sink(),
        };
        w.write_all(data).unwrap();
        !w.crc
    }

    /// A split written the way Docker writes it: a type-1 entry for every tar entry (size 0,
    /// no payload, for a directory), names as in the headers, read back exactly.
    #[test]
    fn reads_docker_flavoured_splits() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/f"), b"hi").unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_path("a/").unwrap();
        h.set_size(0);
        h.set_cksum();
        tar.append(&h, &b""[..]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_path("a/f").unwrap();
        h.set_size(2);
        h.set_cksum();
        tar.append(&h, &b"hi"[..]).unwrap();
        let tar = tar.into_inner().unwrap();
        let seg = |pos: u64, b: &[u8]| {
            format!(
                r#"{{"type":2,"payload":"{}","position":{pos}}}"#,
                BASE64.encode(b)
            )
        };
        let lines = [
            seg(0, &tar[..512]),
            r#"{"type":1,"name":"a/","payload":null,"position":1}"#.to_owned(),
            seg(2, &tar[512..1024]),
            format!(
                r#"{{"type":1,"name":"a/f","size":2,"payload":"{}","position":3}}"#,
                BASE64.encode(crc64(b"hi").to_be_bytes())
            ),
            seg(4, &tar[1026..]),
        ];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(lines.join("\n").as_bytes()).unwrap();
        let json = gz.finish().unwrap();
        let mut out = Vec::new();
        rebuild_docker_layer(&json[..], dir.path(), &mut out).unwrap();
        assert!(out == tar);
        // A file that changed is caught by its crc64, even at the same size.
        std::fs::write(dir.path().join("a/f"), b"ho").unwrap();
        let err = rebuild_docker_layer(&json[..], dir.path(), &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("changed"), "{err}");
    }

    #[test]
    fn crc64_iso_matches_go() {
        // Go: crc64.Checksum([]byte("123456789"), crc64.MakeTable(crc64.ISO)).
        assert_eq!(crc64(b"123456789"), 0xb909_56c7_75a4_1001);
        assert_eq!(crc64(b""), 0);
    }
}
