//! Blob records, and the content store as the rest of strata sees it: the local store's files
//! plus the database's word on which blobs exist and what labels they carry.

use std::sync::Arc;
use std::time::SystemTime;

use rusqlite::params;
use strata_content::{Blob, ContentError, IngestStatus, LocalStore, Writer, WriterOptions};
use strata_types::Digest;

use crate::db::{from_nanos, now};
use crate::labels::BLOB_LABELS;
use crate::{Db, Labels, LeaseResource, MetaError, Tx};

/// A live blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRecord {
    pub digest: Digest,
    pub size: u64,
    pub created: SystemTime,
    pub updated: SystemTime,
    pub labels: Labels,
    /// The file was let go after its layer was unpacked (see [`ContentStore::discard`]): the
    /// record stands for bytes that can be brought back, not for bytes on disk.
    pub discarded: bool,
}

/// A blob's size and state, without its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobSize {
    pub digest: Digest,
    pub size: u64,
    /// See [`BlobRecord::discarded`]: no file on disk.
    pub discarded: bool,
}

/// The outcome of a successful commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub digest: Digest,
    /// The blob was in the store already (another writer won, or it was committed earlier).
    pub already_existed: bool,
}

pub(crate) fn parse_digest(s: String) -> Result<Digest, MetaError> {
    s.parse().map_err(|_| MetaError::Corrupt {
        what: "digest",
        value: s,
    })
}

pub(crate) fn to_u64(n: i64, what: &'static str) -> Result<u64, MetaError> {
    u64::try_from(n).map_err(|_| MetaError::Corrupt {
        what,
        value: n.to_string(),
    })
}

impl Tx<'_> {
    pub fn blob(&self, digest: &Digest) -> Result<Option<BlobRecord>, MetaError> {
        let row = self
            .row(
                "SELECT size, created_at, updated_at, discarded_at IS NOT NULL FROM blobs \
                 WHERE digest = ?1",
                [digest.to_string()],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, bool>(3)?,
                    ))
                },
            )
            .map_err(MetaError::db("read blob"))?;
        let Some((size, created, updated, discarded)) = row else {
            return Ok(None);
        };
        Ok(Some(BlobRecord {
            digest: digest.clone(),
            size: to_u64(size, "blob size")?,
            created: from_nanos(created),
            updated: from_nanos(updated),
            labels: self.labels(BLOB_LABELS, &digest.to_string())?,
            discarded,
        }))
    }

    /// Every live blob, in digest order.
    pub fn blobs(&self) -> Result<Vec<BlobRecord>, MetaError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT digest FROM blobs ORDER BY digest")
            .map_err(MetaError::db("list blobs"))?;
        let digests: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(MetaError::db("list blobs"))?;
        let mut out = Vec::with_capacity(digests.len());
        for d in digests {
            if let Some(rec) = self.blob(&parse_digest(d)?)? {
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// Every live blob's digest, size and whether it was discarded, without labels: what
    /// accounting needs, in one query.
    pub fn blob_sizes(&self) -> Result<Vec<BlobSize>, MetaError> {
        let rows: Vec<(String, i64, bool)> = self
            .conn
            .prepare_cached("SELECT digest, size, discarded_at IS NOT NULL FROM blobs")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .map_err(MetaError::db("list blobs"))?;
        rows.into_iter()
            .map(|(d, size, discarded)| {
                Ok(BlobSize {
                    digest: parse_digest(d)?,
                    size: size as u64,
                    discarded,
                })
            })
            .collect()
    }

    /// Every blob carrying label `key`, with the label's value: one query for what accounting
    /// needs of a single label across the store.
    pub fn blobs_labelled(&self, key: &str) -> Result<Vec<(Digest, String)>, MetaError> {
        let rows: Vec<(String, String)> = self
            .conn
            .prepare_cached("SELECT digest, value FROM blob_labels WHERE key = ?1")
            .and_then(|mut s| {
                s.query_map([key], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .map_err(MetaError::db("list blob labels"))?;
        rows.into_iter()
            .map(|(d, v)| Ok((parse_digest(d)?, v)))
            .collect()
    }

    /// Records a committed blob; returns false if it was recorded already. A discarded
    /// blob's record stands for its file again.
    pub fn insert_blob(&self, digest: &Digest, size: u64) -> Result<bool, MetaError> {
        let now = now();
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO blobs (digest, size, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)",
                params![digest.to_string(), size as i64, now],
            )
            .map_err(MetaError::db("record blob"))?;
        if n == 0 {
            self.conn
                .execute(
                    "UPDATE blobs SET discarded_at = NULL, updated_at = ?2 \
                     WHERE digest = ?1 AND discarded_at IS NOT NULL",
                    params![digest.to_string(), now],
                )
                .map_err(MetaError::db("record blob"))?;
        }
        Ok(n == 1)
    }

    /// Records a blob that has no file and never had one here: discarded from the start, its
    /// bytes rebuilt from a snapshot and tar split on demand (a layer migrated from Docker's
    /// store). Returns false, changing nothing, if the blob was recorded already.
    pub fn insert_discarded_blob(&self, digest: &Digest, size: u64) -> Result<bool, MetaError> {
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO blobs (digest, size, created_at, updated_at, discarded_at) \
                 VALUES (?1, ?2, ?3, ?3, ?3)",
                params![digest.to_string(), size as i64, now()],
            )
            .map_err(MetaError::db("record blob"))?;
        Ok(n == 1)
    }

    /// Whether any blob is discarded: what lets push and save skip looking for them.
    pub fn any_blob_discarded(&self) -> Result<bool, MetaError> {
        self.row(
            "SELECT 1 FROM blobs WHERE discarded_at IS NOT NULL LIMIT 1",
            [],
            |_| Ok(()),
        )
        .map(|r| r.is_some())
        .map_err(MetaError::db("list blobs"))
    }

    /// Marks a recorded blob discarded (its file is about to go); returns false if it was
    /// already.
    pub fn mark_blob_discarded(&self, digest: &Digest) -> Result<bool, MetaError> {
        let id = digest.to_string();
        let n = self
            .conn
            .execute(
                "UPDATE blobs SET discarded_at = ?2, updated_at = ?2 \
                 WHERE digest = ?1 AND discarded_at IS NULL",
                params![id, now()],
            )
            .map_err(MetaError::db("discard blob"))?;
        if n == 0 && self.blob(digest)?.is_none() {
            return Err(MetaError::NotFound { what: "blob", id });
        }
        Ok(n == 1)
    }

    /// Forgets a blob; returns false if it was not recorded.
    pub fn delete_blob(&self, digest: &Digest) -> Result<bool, MetaError> {
        let n = self
            .conn
            .execute("DELETE FROM blobs WHERE digest = ?1", [digest.to_string()])
            .map_err(MetaError::db("delete blob"))?;
        Ok(n == 1)
    }

    /// Sets (or, with an empty value, removes) labels on a recorded blob.
    pub fn update_blob_labels(&self, digest: &Digest, labels: &Labels) -> Result<(), MetaError> {
        let id = digest.to_string();
        let n = self
            .conn
            .execute(
                "UPDATE blobs SET updated_at = ?2 WHERE digest = ?1",
                params![id, now()],
            )
            .map_err(MetaError::db("update blob"))?;
        if n == 0 {
            return Err(MetaError::NotFound { what: "blob", id });
        }
        self.update_labels(BLOB_LABELS, &id, labels)
    }
}

/// The content store: files from [`LocalStore`], liveness and labels from the database.
#[derive(Debug, Clone)]
pub struct ContentStore {
    db: Arc<Db>,
    local: LocalStore,
}

impl ContentStore {
    pub fn new(db: Arc<Db>, local: LocalStore) -> ContentStore {
        ContentStore { db, local }
    }

    pub fn local(&self) -> &LocalStore {
        &self.local
    }

    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// Opens or resumes the ingest `ref`. Under a lease, the ingest is added to the lease's
    /// resources first, so garbage collection leaves it alone until the lease ends.
    ///
    /// If `opts.expected` names a blob already in the store, returns
    /// `ContentError::AlreadyExists` (making sure the database records it).
    pub fn writer(
        &self,
        r#ref: &str,
        opts: WriterOptions,
        lease: Option<&str>,
    ) -> Result<Writer, MetaError> {
        if let Some(lease) = lease {
            self.db.write(|tx| {
                tx.add_lease_resource(lease, &LeaseResource::Ingest(r#ref.to_owned()))
            })?;
        }
        let mut attempts = 0;
        loop {
            match self.local.writer(r#ref, opts.clone()) {
                Err(ContentError::AlreadyExists(d)) => {
                    match self.record(&d, None, &Labels::new(), lease) {
                        // Garbage collection removed the file between the two steps: it is
                        // not in the store after all, so write it.
                        Err(MetaError::Content(ContentError::NotFound(_))) if attempts < 3 => {
                            attempts += 1;
                        }
                        Err(e) => return Err(e),
                        Ok(()) => return Err(ContentError::AlreadyExists(d).into()),
                    }
                }
                other => return Ok(other?),
            }
        }
    }

    /// Verifies and commits a writer, then records the blob (with `labels`, and under `lease`)
    /// in one transaction. A blob that already existed is a success.
    pub fn commit(
        &self,
        writer: Writer,
        size: Option<u64>,
        expected: Option<&Digest>,
        labels: &Labels,
        lease: Option<&str>,
    ) -> Result<Committed, MetaError> {
        let r#ref = writer.ingest_ref().to_owned();
        let (digest, already_existed) = match writer.commit(size, expected) {
            Ok(d) => (d, false),
            Err(ContentError::AlreadyExists(d)) => (d, true),
            Err(e) => return Err(e.into()),
        };
        self.record(&digest, Some(&r#ref), labels, lease)?;
        Ok(Committed {
            digest,
            already_existed,
        })
    }

    /// Records a blob whose file is committed, under `lease` if given; the ingest it came from
    /// leaves every lease.
    fn record(
        &self,
        digest: &Digest,
        ingest: Option<&str>,
        labels: &Labels,
        lease: Option<&str>,
    ) -> Result<(), MetaError> {
        self.db.write(|tx| {
            // Checked under the write lock: garbage collection deletes the files of blobs it
            // unrecorded under that lock too, so a blob is never recorded without its file.
            let size = self.local.info(digest)?.size;
            tx.insert_blob(digest, size)?;
            if !labels.is_empty() {
                tx.update_blob_labels(digest, labels)?;
            }
            if let Some(lease) = lease {
                tx.add_lease_resource(lease, &LeaseResource::Content(digest.clone()))?;
            }
            // The ingest is gone; so is any reason for a lease (this one, or that of an
            // earlier, interrupted writer) to hold it.
            if let Some(ingest) = ingest {
                tx.forget_resource(&LeaseResource::Ingest(ingest.to_owned()))?;
            }
            Ok(())
        })
    }

    pub fn info(&self, digest: &Digest) -> Result<BlobRecord, MetaError> {
        self.db
            .read(|tx| tx.blob(digest))?
            .ok_or_else(|| MetaError::NotFound {
                what: "blob",
                id: digest.to_string(),
            })
    }

    pub fn list(&self) -> Result<Vec<BlobRecord>, MetaError> {
        self.db.read(|tx| tx.blobs())
    }

    /// Every live blob's digest, size and state (no labels: cheaper than
    /// [`list`](Self::list)).
    pub fn sizes(&self) -> Result<Vec<BlobSize>, MetaError> {
        self.db.read(|tx| tx.blob_sizes())
    }

    /// Opens a live blob for reading. A discarded blob is [`MetaError::Discarded`].
    pub fn reader(&self, digest: &Digest) -> Result<Blob, MetaError> {
        if self.info(digest)?.discarded {
            return Err(MetaError::Discarded {
                digest: digest.clone(),
            });
        }
        Ok(self.local.reader(digest)?)
    }

    /// Lets a blob's file go while keeping its record, after setting `labels` on it (what
    /// brings the bytes back: a reference to the layer's tar split, the source repository).
    /// The record is marked first, in one transaction with the labels, then the file is
    /// deleted: a crash in between leaves a file `fsck` and garbage collection remove, never
    /// a record claiming a file that is gone. Writing the blob again (a re-fetch) makes the
    /// record stand for its file again. Returns false if the blob was discarded already.
    pub fn discard(&self, digest: &Digest, labels: &Labels) -> Result<bool, MetaError> {
        let marked = self.db.write(|tx| {
            if !labels.is_empty() {
                tx.update_blob_labels(digest, labels)?;
            }
            tx.mark_blob_discarded(digest)
        })?;
        self.delete_discarded_file(digest)?;
        Ok(marked)
    }

    /// Records `digest` (`size` bytes) as discarded from the start, with `labels` (the edge to
    /// its tar split) and under `lease`, in one transaction. A blob recorded already is left
    /// as it is (false): its file, or its own split, serves as well.
    pub fn record_discarded(
        &self,
        digest: &Digest,
        size: u64,
        labels: &Labels,
        lease: Option<&str>,
    ) -> Result<bool, MetaError> {
        self.db.write(|tx| {
            if let Some(lease) = lease {
                tx.add_lease_resource(lease, &LeaseResource::Content(digest.clone()))?;
            }
            if !tx.insert_discarded_blob(digest, size)? {
                return Ok(false);
            }
            if !labels.is_empty() {
                tx.update_blob_labels(digest, labels)?;
            }
            Ok(true)
        })
    }

    /// Deletes the file of a blob whose record says discarded, under the write lock (a writer
    /// bringing the blob back records it under the same lock). For `discard`, and for the
    /// files a crash left behind it.
    pub fn delete_discarded_file(&self, digest: &Digest) -> Result<(), MetaError> {
        self.db.write(|tx| {
            if !tx.blob(digest)?.is_some_and(|b| b.discarded) {
                return Ok(());
            }
            match self.local.delete(digest) {
                Ok(()) | Err(ContentError::NotFound(_)) => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
    }

    /// Removes a blob: first from the database (so it stops being live at once), then its file.
    /// A crash in between leaves an orphan file for `fsck`/GC, never a record without data.
    pub fn delete(&self, digest: &Digest) -> Result<(), MetaError> {
        if !self.db.write(|tx| tx.delete_blob(digest))? {
            return Err(MetaError::NotFound {
                what: "blob",
                id: digest.to_string(),
            });
        }
        match self.local.delete(digest) {
            Ok(()) | Err(ContentError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes the files of those of `digests` that no record names, deciding under the
    /// database's write lock so that a writer re-recording one of them meanwhile (it found the
    /// file and adopts it) either keeps it or finds it gone and writes it again. Returns the
    /// digests whose files were deleted. For garbage collection, after the transaction that
    /// deleted the records.
    pub fn delete_unrecorded_files(&self, digests: &[Digest]) -> Result<Vec<Digest>, MetaError> {
        self.db.write(|tx| {
            let mut deleted = Vec::new();
            for digest in digests {
                if tx.blob(digest)?.is_some() {
                    continue;
                }
                match self.local.delete(digest) {
                    Ok(()) => deleted.push(digest.clone()),
                    Err(ContentError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(deleted)
        })
    }

    pub fn update_labels(&self, digest: &Digest, labels: &Labels) -> Result<BlobRecord, MetaError> {
        self.db.write(|tx| {
            tx.update_blob_labels(digest, labels)?;
            tx.blob(digest)?.ok_or_else(|| MetaError::NotFound {
                what: "blob",
                id: digest.to_string(),
            })
        })
    }

    pub fn ingests(&self) -> Result<Vec<IngestStatus>, MetaError> {
        Ok(self.local.ingests()?)
    }

    /// Discards an ingest and drops it from any lease.
    pub fn abort(&self, r#ref: &str) -> Result<(), MetaError> {
        self.local.abort(r#ref)?;
        self.db
            .write(|tx| tx.forget_resource(&LeaseResource::Ingest(r#ref.to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn store() -> (tempfile::TempDir, ContentStore) {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(&dir.path().join("metadata.db")).unwrap());
        let local = LocalStore::open(dir.path().join("content")).unwrap();
        (dir, ContentStore::new(db, local))
    }

    fn put(store: &ContentStore, data: &[u8], labels: &Labels) -> Committed {
        let digest = Digest::sha256_of(data);
        let opts = WriterOptions {
            expected: Some(digest.clone()),
            total: Some(data.len() as u64),
            wait: true,
        };
        let mut w = store.writer(&format!("put-{digest}"), opts, None).unwrap();
        w.write_all(data).unwrap();
        store
            .commit(w, Some(data.len() as u64), Some(&digest), labels, None)
            .unwrap()
    }

    #[test]
    fn commit_records_blob_and_labels() {
        let (_d, store) = store();
        let labels = Labels::from([("a".to_owned(), "1".to_owned())]);
        let c = put(&store, b"abc", &labels);
        assert!(!c.already_existed);
        let info = store.info(&c.digest).unwrap();
        assert_eq!((info.size, info.labels.clone()), (3, labels));
        assert_eq!(store.list().unwrap(), vec![info]);

        let rec = store
            .update_labels(
                &c.digest,
                &Labels::from([("a".into(), "".into()), ("b".into(), "2".into())]),
            )
            .unwrap();
        assert_eq!(rec.labels, Labels::from([("b".to_owned(), "2".to_owned())]));
    }

    #[test]
    fn existing_file_without_record_is_adopted() {
        let (_d, store) = store();
        let c = put(&store, b"orphan", &Labels::new());
        // Simulate a crash between the file rename and the database transaction.
        store.db.write(|tx| tx.delete_blob(&c.digest)).unwrap();
        assert!(store.info(&c.digest).is_err());
        let opts = WriterOptions {
            expected: Some(c.digest.clone()),
            ..Default::default()
        };
        let err = store.writer("again", opts, None).unwrap_err();
        assert!(
            matches!(err, MetaError::Content(ContentError::AlreadyExists(_))),
            "{err}"
        );
        assert_eq!(store.info(&c.digest).unwrap().size, 6);
    }

    #[test]
    fn delete_removes_record_then_file() {
        let (_d, store) = store();
        let c = put(&store, b"bye", &Labels::new());
        store.delete(&c.digest).unwrap();
        assert!(!store.local.exists(&c.digest));
        assert!(matches!(
            store.delete(&c.digest),
            Err(MetaError::NotFound { .. })
        ));
        assert!(matches!(
            store.reader(&c.digest),
            Err(MetaError::NotFound { .. })
        ));
    }

    #[test]
    fn blob_recorded_discarded_from_the_start() {
        let (_d, store) = store();
        let digest = Digest::sha256_of(b"a layer never stored");
        let labels = Labels::from([("k".to_owned(), "v".to_owned())]);
        assert!(store.record_discarded(&digest, 20, &labels, None).unwrap());
        let info = store.info(&digest).unwrap();
        assert!(info.discarded);
        assert_eq!((info.size, info.labels), (20, labels));
        assert!(matches!(
            store.reader(&digest),
            Err(MetaError::Discarded { .. })
        ));
        // A blob recorded already, with its file, is left alone.
        let c = put(&store, b"present", &Labels::new());
        assert!(
            !store
                .record_discarded(&c.digest, 7, &Labels::new(), None)
                .unwrap()
        );
        assert!(!store.info(&c.digest).unwrap().discarded);
        assert!(store.local.exists(&c.digest));
        // Writing the bytes makes the record stand for its file.
        let again = put(&store, b"a layer never stored", &Labels::new());
        assert_eq!(again.digest, digest);
        assert!(!store.info(&digest).unwrap().discarded);
    }

    #[test]
    fn discarded_blob_keeps_its_record_and_comes_back_when_written_again() {
        let (_d, store) = store();
        let c = put(&store, b"layer bytes", &Labels::new());
        let labels = Labels::from([("k".to_owned(), "v".to_owned())]);
        assert!(store.discard(&c.digest, &labels).unwrap());
        assert!(!store.local.exists(&c.digest));
        let info = store.info(&c.digest).unwrap();
        assert!(info.discarded);
        assert_eq!((info.size, info.labels), (11, labels.clone()));
        let err = store.reader(&c.digest).unwrap_err();
        assert!(matches!(err, MetaError::Discarded { .. }), "{err}");
        assert!(err.to_string().contains("--discard-compressed"), "{err}");
        let sizes = store.sizes().unwrap();
        assert!(sizes[0].discarded);
        assert!(store.db.read(|tx| tx.any_blob_discarded()).unwrap());
        // Discarding twice is harmless; a crash between mark and delete leaves a file that
        // delete_discarded_file removes.
        assert!(!store.discard(&c.digest, &Labels::new()).unwrap());

        let again = put(&store, b"layer bytes", &Labels::new());
        assert!(!again.already_existed);
        let info = store.info(&c.digest).unwrap();
        assert!(!info.discarded);
        assert!(!store.db.read(|tx| tx.any_blob_discarded()).unwrap());
        assert_eq!(info.labels, labels);
        assert!(store.reader(&c.digest).is_ok());
        store.delete_discarded_file(&c.digest).unwrap();
        assert!(store.local.exists(&c.digest), "a present blob's file stays");
    }

    #[test]
    fn lease_tracks_ingest_then_blob() {
        let (_d, store) = store();
        store
            .db
            .write(|tx| tx.create_lease("pull-1", None, &Labels::new()))
            .unwrap();
        let digest = Digest::sha256_of(b"leased");
        let mut w = store
            .writer("leased-ref", WriterOptions::default(), Some("pull-1"))
            .unwrap();
        let res = store.db.read(|tx| tx.lease_resources("pull-1")).unwrap();
        assert_eq!(res, vec![LeaseResource::Ingest("leased-ref".into())]);
        w.write_all(b"leased").unwrap();
        store
            .commit(w, Some(6), Some(&digest), &Labels::new(), Some("pull-1"))
            .unwrap();
        let res = store.db.read(|tx| tx.lease_resources("pull-1")).unwrap();
        assert_eq!(res, vec![LeaseResource::Content(digest)]);
    }
}
