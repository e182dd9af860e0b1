use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{DirBuilderExt, FileExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use strata_types::Digest;

use crate::ContentError;

/// A content store rooted at `<root>/content`.
#[derive(Debug, Clone)]
pub struct LocalStore {
    pub(crate) root: PathBuf,
}

/// What the filesystem knows of a committed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
    pub created: SystemTime,
}

impl LocalStore {
    /// Opens the store under `dir` (usually `<strata root>/content`), creating its directories.
    pub fn open(dir: impl Into<PathBuf>) -> Result<LocalStore, ContentError> {
        let store = LocalStore { root: dir.into() };
        for d in [store.blobs_dir(), store.ingest_root()] {
            private_dir(&d).map_err(ContentError::io("create directory", &d))?;
        }
        Ok(store)
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join(Digest::ALGORITHM)
    }

    pub(crate) fn ingest_root(&self) -> PathBuf {
        self.root.join("ingest")
    }

    /// Where a committed blob lives. The file may not exist.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    pub fn exists(&self, digest: &Digest) -> bool {
        self.blob_path(digest).exists()
    }

    pub fn info(&self, digest: &Digest) -> Result<BlobInfo, ContentError> {
        let path = self.blob_path(digest);
        let meta = fs::metadata(&path).map_err(|e| not_found_or(e, digest, "stat blob", &path))?;
        Ok(BlobInfo {
            digest: digest.clone(),
            size: meta.len(),
            created: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        })
    }

    /// Every committed blob, in digest order. Files that are not named by a digest are skipped.
    pub fn list(&self) -> Result<Vec<BlobInfo>, ContentError> {
        let dir = self.blobs_dir();
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(ContentError::io("read directory", &dir))? {
            let entry = entry.map_err(ContentError::io("read directory", &dir))?;
            let Some(digest) = entry
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_sha256_hex(n).ok())
            else {
                continue;
            };
            match self.info(&digest) {
                Ok(info) => out.push(info),
                // Deleted between readdir and stat.
                Err(ContentError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    /// Opens a committed blob for sequential or random-access reads.
    pub fn reader(&self, digest: &Digest) -> Result<Blob, ContentError> {
        let path = self.blob_path(digest);
        let file = File::open(&path).map_err(|e| not_found_or(e, digest, "open blob", &path))?;
        let size = file
            .metadata()
            .map_err(ContentError::io("stat blob", &path))?
            .len();
        Ok(Blob { file, size, path })
    }

    /// Removes a committed blob. Readers that already opened it keep reading it.
    pub fn delete(&self, digest: &Digest) -> Result<(), ContentError> {
        let path = self.blob_path(digest);
        fs::remove_file(&path).map_err(|e| not_found_or(e, digest, "remove blob", &path))
    }
}

/// Creates `dir` and its missing parents, closed to other users (mode 0700).
pub(crate) fn private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn not_found_or(e: io::Error, digest: &Digest, op: &'static str, path: &Path) -> ContentError {
    if e.kind() == io::ErrorKind::NotFound {
        ContentError::NotFound(digest.clone())
    } else {
        ContentError::Io(strata_types::PathIoError::new(op, path.to_owned(), e))
    }
}

/// An open committed blob: `Read + Seek`, plus positional reads that do not move the cursor.
#[derive(Debug)]
pub struct Blob {
    file: File,
    size: u64,
    path: PathBuf,
}

impl Blob {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Reads up to `buf.len()` bytes at `offset`; returns 0 at the end of the blob.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize, ContentError> {
        self.file
            .read_at(buf, offset)
            .map_err(ContentError::io("read blob", &self.path))
    }
}

impl Read for Blob {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl Seek for Blob {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}
