//! Resumable writes into the store. See the crate doc for the layout and the protocol.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::SystemTime;

use rustix::fs::{Mode, RenameFlags, fchmod, renameat_with};
use sha2::Digest as _;
use strata_types::{Digest, Sha256};

use crate::{ContentError, LocalStore};

const MAX_REF_LEN: usize = 1024;
/// Ingest files: the owner's only, like everything in the store.
const FILE_MODE: u32 = 0o600;
/// Committed blobs: never written again, read by the owner only.
pub const BLOB_MODE: u32 = 0o400;
/// Copy and hash in chunks of this size: large enough that channel traffic is noise.
const CHUNK: usize = 1 << 20;
/// Ask the kernel to start writing back every this many bytes, so that the final fsync finds
/// little left to do and the disk works while we are still reading and hashing.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// How to open a writer.
#[derive(Debug, Clone, Default)]
pub struct WriterOptions {
    /// The digest the caller expects. If that blob is committed already, `writer` returns
    /// [`ContentError::AlreadyExists`] without touching anything.
    pub expected: Option<Digest>,
    /// The size the caller expects. Writing past it fails at once; a leftover ingest longer
    /// than it is discarded on resume.
    pub total: Option<u64>,
    /// Wait for another process writing the same ref instead of failing with
    /// [`ContentError::IngestLocked`].
    pub wait: bool,
}

/// An ingest in progress, as listed by [`LocalStore::ingests`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestStatus {
    pub r#ref: String,
    pub offset: u64,
    pub total: Option<u64>,
    pub started: SystemTime,
    pub updated: SystemTime,
}

/// An open ingest. Write to it, then [`commit`](Writer::commit). Dropping it without commit
/// keeps the data for a later writer of the same ref to resume.
#[derive(Debug)]
pub struct Writer {
    store: LocalStore,
    ingest: String,
    dir: PathBuf,
    /// The data file; holding it open holds the ingest's lock.
    file: File,
    hasher: Sha256,
    offset: u64,
    total: Option<u64>,
    /// Offset up to which writeback has been requested.
    flushed: u64,
}

impl LocalStore {
    fn ingest_dir(&self, r#ref: &str) -> PathBuf {
        self.ingest_root()
            .join(Digest::sha256_of(r#ref.as_bytes()).hex())
    }

    /// Opens the ingest `ref`, creating it or resuming it at the end of its data.
    pub fn writer(&self, r#ref: &str, opts: WriterOptions) -> Result<Writer, ContentError> {
        if r#ref.is_empty() || r#ref.len() > MAX_REF_LEN {
            return Err(ContentError::InvalidRef(r#ref.to_owned()));
        }
        let dir = self.ingest_dir(r#ref);
        loop {
            if let Some(expected) = &opts.expected
                && self.exists(expected)
            {
                return Err(ContentError::AlreadyExists(expected.clone()));
            }
            crate::store::private_dir(&dir).map_err(ContentError::io("create ingest", &dir))?;
            let data = dir.join("data");
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(FILE_MODE)
                .open(&data)
                .map_err(ContentError::io("open ingest", &data))?;
            lock(&file, r#ref, opts.wait, &data)?;
            // While we waited, the holder may have committed (renaming this very inode into
            // blobs/) or aborted. Only the file still at `data` is the ingest.
            if !same_file(&file, &data) {
                continue;
            }
            write_small(&dir.join("ref"), r#ref.as_bytes())?;
            if let Some(total) = opts.total {
                write_small(&dir.join("total"), total.to_string().as_bytes())?;
            }
            let mut writer = Writer {
                store: self.clone(),
                ingest: r#ref.to_owned(),
                dir,
                file,
                hasher: Sha256::new(),
                offset: 0,
                total: opts.total,
                flushed: 0,
            };
            writer.resume()?;
            return Ok(writer);
        }
    }

    /// The ingests on disk, whether or not a process is writing them.
    pub fn ingests(&self) -> Result<Vec<IngestStatus>, ContentError> {
        let root = self.ingest_root();
        let mut out = Vec::new();
        for entry in fs::read_dir(&root).map_err(ContentError::io("read directory", &root))? {
            let dir = entry
                .map_err(ContentError::io("read directory", &root))?
                .path();
            // Half-created or half-removed ingests have no ref file yet or any more.
            if let Some(status) = ingest_status(&dir) {
                out.push(status);
            }
        }
        out.sort_by(|a, b| a.r#ref.cmp(&b.r#ref));
        Ok(out)
    }

    /// The status of one ingest.
    pub fn ingest(&self, r#ref: &str) -> Result<IngestStatus, ContentError> {
        ingest_status(&self.ingest_dir(r#ref))
            .ok_or_else(|| ContentError::IngestNotFound(r#ref.to_owned()))
    }

    /// Discards an ingest. Fails with [`ContentError::IngestLocked`] while a process writes it.
    pub fn abort(&self, r#ref: &str) -> Result<(), ContentError> {
        let dir = self.ingest_dir(r#ref);
        let data = dir.join("data");
        let file = match File::open(&data) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ContentError::IngestNotFound(r#ref.to_owned()));
            }
            Err(e) => return Err(ContentError::io("open ingest", &data)(e)),
        };
        lock(&file, r#ref, false, &data)?;
        remove_ingest_dir(&dir)
    }
}

fn ingest_status(dir: &Path) -> Option<IngestStatus> {
    let r#ref = fs::read_to_string(dir.join("ref")).ok()?;
    let meta = fs::metadata(dir.join("data")).ok()?;
    let total = fs::read_to_string(dir.join("total"))
        .ok()
        .and_then(|t| t.trim().parse().ok());
    let started = fs::metadata(dir.join("ref"))
        .and_then(|m| m.modified())
        .ok()?;
    Some(IngestStatus {
        r#ref,
        offset: meta.len(),
        total,
        started,
        updated: meta.modified().unwrap_or(started),
    })
}

fn lock(file: &File, r#ref: &str, wait: bool, path: &Path) -> Result<(), ContentError> {
    if wait {
        return file.lock().map_err(ContentError::io("lock ingest", path));
    }
    file.try_lock().map_err(|e| match e {
        fs::TryLockError::WouldBlock => ContentError::IngestLocked(r#ref.to_owned()),
        fs::TryLockError::Error(e) => ContentError::io("lock ingest", path)(e),
    })
}

fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn write_small(path: &Path, contents: &[u8]) -> Result<(), ContentError> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)
        .and_then(|mut f| f.write_all(contents))
        .map_err(ContentError::io("write", path))
}

fn remove_ingest_dir(dir: &Path) -> Result<(), ContentError> {
    // Remove the ref file first so that listings skip the directory from then on.
    for name in ["ref", "total", "data"] {
        let p = dir.join(name);
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(ContentError::io("remove ingest", &p)(e)),
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ContentError::io("remove ingest", dir)(e)),
    }
}

impl Writer {
    /// Re-hashes the data a previous writer left and positions at its end.
    fn resume(&mut self) -> Result<(), ContentError> {
        let data = self.dir.join("data");
        let len = self
            .file
            .metadata()
            .map_err(ContentError::io("stat ingest", &data))?
            .len();
        if self.total.is_some_and(|t| len > t) {
            tracing::warn!(ingest = %self.ingest, len, "ingest longer than expected; restarting it");
            self.file
                .set_len(0)
                .map_err(ContentError::io("truncate ingest", &data))?;
            return Ok(());
        }
        if len > 0 {
            tracing::debug!(ingest = %self.ingest, offset = len, "resuming ingest");
            self.file
                .seek(SeekFrom::Start(0))
                .map_err(ContentError::io("read ingest", &data))?;
            let mut file = &self.file;
            hash_stream(&mut file, len, &mut self.hasher)
                .map_err(ContentError::io("read ingest", &data))?;
        }
        self.file
            .seek(SeekFrom::Start(len))
            .map_err(ContentError::io("seek ingest", &data))?;
        self.offset = len;
        self.flushed = len;
        Ok(())
    }

    /// The ref this writer writes.
    pub fn ingest_ref(&self) -> &str {
        &self.ingest
    }

    /// Bytes in the ingest so far (where a resumed writer starts).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The digest of the bytes so far.
    pub fn digest(&self) -> Digest {
        Digest::from_hasher(self.hasher.clone())
    }

    /// Starts the ingest over from zero bytes.
    pub fn truncate(&mut self) -> Result<(), ContentError> {
        let data = self.dir.join("data");
        self.file
            .set_len(0)
            .map_err(ContentError::io("truncate ingest", &data))?;
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(ContentError::io("seek ingest", &data))?;
        self.hasher = Sha256::new();
        self.offset = 0;
        self.flushed = 0;
        Ok(())
    }

    fn check_room(&self, n: usize) -> Result<(), ContentError> {
        match self.total {
            Some(total) if self.offset + n as u64 > total => Err(ContentError::TooLarge {
                ingest: self.ingest.clone(),
                expected: total,
                actual: self.offset + n as u64,
            }),
            _ => Ok(()),
        }
    }

    /// A second handle on the data written so far, from its first byte: for a caller that
    /// resumes an ingest and needs its whole stream (an unpacker reads the saved prefix, then
    /// the rest from the network).
    pub fn read_back(&self) -> Result<io::Take<File>, ContentError> {
        let data = self.dir.join("data");
        let file = File::open(&data).map_err(ContentError::io("reopen ingest", &data))?;
        Ok(file.take(self.offset))
    }

    /// Appends `buf`, hashing it.
    pub fn write_chunk(&mut self, buf: &[u8]) -> Result<(), ContentError> {
        self.check_room(buf.len())?;
        self.write_unhashed(buf)?;
        self.hasher.update(buf);
        Ok(())
    }

    fn write_unhashed(&mut self, buf: &[u8]) -> Result<(), ContentError> {
        let data = self.dir.join("data");
        self.file
            .write_all(buf)
            .map_err(ContentError::io("write ingest", &data))?;
        self.offset += buf.len() as u64;
        if self.offset - self.flushed >= WRITEBACK_EVERY {
            // Advisory: a failure only costs the overlap, never data, since commit fsyncs.
            let _ = strata_fs::start_writeback(
                self.file.as_fd(),
                self.flushed,
                self.offset - self.flushed,
            );
            self.flushed = self.offset;
        }
        Ok(())
    }

    /// Copies `src` to its end into the ingest. Hashing runs on a second thread beside the
    /// writes, so that on a machine with SHA-NI the copy costs what the write costs.
    /// Returns the number of bytes copied.
    pub fn copy_from(&mut self, src: &mut dyn Read) -> Result<u64, ContentError> {
        let start = self.offset;
        let (to_hasher, hasher_in) = mpsc::sync_channel::<Vec<u8>>(4);
        let (to_reader, free) = mpsc::sync_channel::<Vec<u8>>(6);
        for _ in 0..6 {
            // Cannot fail: the receiver is alive and the channel has room for all six.
            let _ = to_reader.send(vec![0; CHUNK]);
        }
        let mut hasher = std::mem::take(&mut self.hasher);
        let result = std::thread::scope(|s| {
            let hashing = s.spawn(move || {
                for buf in hasher_in {
                    hasher.update(&buf);
                    if to_reader.send(buf).is_err() {
                        break;
                    }
                }
                hasher
            });
            let copied = self.pump(src, &free, to_hasher);
            // `pump` dropped the sender, so the hasher ends once it has drained the queue.
            let hasher = hashing.join();
            (copied, hasher)
        });
        match result {
            (copied, Ok(hasher)) => {
                self.hasher = hasher;
                copied.map(|()| self.offset - start)
            }
            (_, Err(panic)) => std::panic::resume_unwind(panic),
        }
    }

    fn pump(
        &mut self,
        src: &mut dyn Read,
        free: &mpsc::Receiver<Vec<u8>>,
        to_hasher: mpsc::SyncSender<Vec<u8>>,
    ) -> Result<(), ContentError> {
        loop {
            let Ok(mut buf) = free.recv() else {
                return Ok(());
            };
            buf.resize(CHUNK, 0);
            let n = read_full(src, &mut buf).map_err(|source| {
                ContentError::Io(strata_types::PathIoError::new(
                    "read input for ingest",
                    PathBuf::from(&self.ingest),
                    source,
                ))
            })?;
            if n == 0 {
                return Ok(());
            }
            buf.truncate(n);
            self.check_room(n)?;
            self.write_unhashed(&buf)?;
            if to_hasher.send(buf).is_err() {
                return Ok(());
            }
        }
    }

    /// Verifies and publishes the data. `size` and `expected`, when given, must match what was
    /// written; on a digest or oversize mismatch the ingest is discarded, on a short write
    /// ([`ContentError::Truncated`]) it is kept to be resumed.
    ///
    /// Returns the digest. If the blob already exists (another writer won the race), the
    /// ingest is removed and [`ContentError::AlreadyExists`] returned.
    pub fn commit(
        self,
        size: Option<u64>,
        expected: Option<&Digest>,
    ) -> Result<Digest, ContentError> {
        let ingest = self.ingest.clone();
        match size {
            Some(size) if self.offset < size => {
                return Err(ContentError::Truncated {
                    ingest,
                    expected: size,
                    actual: self.offset,
                });
            }
            Some(size) if self.offset > size => {
                let actual = self.offset;
                self.discard()?;
                return Err(ContentError::SizeMismatch {
                    ingest,
                    expected: size,
                    actual,
                });
            }
            _ => {}
        }
        let actual = self.digest();
        if let Some(expected) = expected
            && *expected != actual
        {
            let expected = expected.clone();
            self.discard()?;
            return Err(ContentError::DigestMismatch {
                ingest,
                expected,
                actual,
            });
        }
        let data = self.dir.join("data");
        self.file
            .sync_all()
            .map_err(ContentError::io("fsync ingest", &data))?;
        fchmod(&self.file, Mode::from_raw_mode(BLOB_MODE))
            .map_err(|e| ContentError::io("chmod ingest", &data)(e.into()))?;
        let target = self.store.blob_path(&actual);
        match renameat_with(
            rustix::fs::CWD,
            &data,
            rustix::fs::CWD,
            &target,
            RenameFlags::NOREPLACE,
        ) {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST) => {
                self.discard()?;
                return Err(ContentError::AlreadyExists(actual));
            }
            Err(e) => return Err(ContentError::io("commit blob to", &target)(e.into())),
        }
        let blobs = self.store.blobs_dir();
        File::open(&blobs)
            .and_then(|d| d.sync_all())
            .map_err(ContentError::io("fsync directory", &blobs))?;
        remove_ingest_dir(&self.dir)?;
        Ok(actual)
    }

    fn discard(self) -> Result<(), ContentError> {
        remove_ingest_dir(&self.dir)
    }
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_chunk(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn read_full(src: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn hash_stream(src: &mut dyn Read, len: u64, hasher: &mut Sha256) -> io::Result<()> {
    let mut buf = vec![0; CHUNK];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = read_full(src, &mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "ingest shrank while resuming",
            ));
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(())
}
