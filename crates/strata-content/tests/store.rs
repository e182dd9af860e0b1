//! Behaviour of the local content store through its public interface.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::time::Duration;

use strata_content::{ContentError, LocalStore, WriterOptions};
use strata_types::Digest;

fn store() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path().join("content")).unwrap();
    (dir, store)
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn opts(expected: &Digest, total: u64) -> WriterOptions {
    WriterOptions {
        expected: Some(expected.clone()),
        total: Some(total),
        wait: false,
    }
}

#[test]
fn write_commit_read_list_delete() {
    let (_d, store) = store();
    let data = b"hello, strata".to_vec();
    let digest = Digest::sha256_of(&data);
    let mut w = store
        .writer("r1", opts(&digest, data.len() as u64))
        .unwrap();
    w.write_all(&data).unwrap();
    assert_eq!(w.digest(), digest);
    assert_eq!(
        w.commit(Some(data.len() as u64), Some(&digest)).unwrap(),
        digest
    );

    let info = store.info(&digest).unwrap();
    assert_eq!(info.size, data.len() as u64);
    let mut got = Vec::new();
    store
        .reader(&digest)
        .unwrap()
        .read_to_end(&mut got)
        .unwrap();
    assert_eq!(got, data);
    let mut buf = [0u8; 6];
    assert_eq!(
        store.reader(&digest).unwrap().read_at(&mut buf, 7).unwrap(),
        6
    );
    assert_eq!(&buf, b"strata");
    assert_eq!(store.list().unwrap().len(), 1);
    assert!(
        store.ingests().unwrap().is_empty(),
        "commit removes the ingest"
    );

    store.delete(&digest).unwrap();
    assert!(matches!(
        store.info(&digest),
        Err(ContentError::NotFound(_))
    ));
    assert!(matches!(
        store.delete(&digest),
        Err(ContentError::NotFound(_))
    ));
}

#[test]
fn resume_continues_at_the_saved_offset() {
    let (_d, store) = store();
    let data = pseudo_random(3 << 20, 7);
    let digest = Digest::sha256_of(&data);
    let mut w = store
        .writer("resume", opts(&digest, data.len() as u64))
        .unwrap();
    w.write_all(&data[..1_000_000]).unwrap();
    drop(w); // as if the process died

    let status = store.ingest("resume").unwrap();
    assert_eq!(status.offset, 1_000_000);
    assert_eq!(status.total, Some(data.len() as u64));

    let mut w = store
        .writer("resume", opts(&digest, data.len() as u64))
        .unwrap();
    assert_eq!(w.offset(), 1_000_000);
    w.copy_from(&mut &data[1_000_000..]).unwrap();
    assert_eq!(
        w.commit(Some(data.len() as u64), Some(&digest)).unwrap(),
        digest
    );
}

#[test]
fn digest_mismatch_discards_and_publishes_nothing() {
    let (_d, store) = store();
    let wrong = Digest::sha256_of(b"something else");
    let mut w = store.writer("bad", opts(&wrong, 5)).unwrap();
    w.write_all(b"hello").unwrap();
    let err = w.commit(Some(5), Some(&wrong)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ContentError::DigestMismatch { .. }), "{msg}");
    assert!(
        msg.contains(&wrong.to_string()) && msg.contains(&Digest::sha256_of(b"hello").to_string()),
        "{msg}"
    );
    assert!(store.list().unwrap().is_empty());
    assert!(
        store.ingests().unwrap().is_empty(),
        "bad data is not kept for resume"
    );
}

#[test]
fn truncated_input_is_kept_for_resume() {
    let (_d, store) = store();
    let digest = Digest::sha256_of(b"hello world");
    let mut w = store.writer("short", opts(&digest, 11)).unwrap();
    w.write_all(b"hello").unwrap();
    let err = w.commit(Some(11), Some(&digest)).unwrap_err();
    assert!(
        matches!(
            err,
            ContentError::Truncated {
                expected: 11,
                actual: 5,
                ..
            }
        ),
        "{err}"
    );
    assert!(store.list().unwrap().is_empty());
    let mut w = store.writer("short", opts(&digest, 11)).unwrap();
    assert_eq!(w.offset(), 5);
    w.write_all(b" world").unwrap();
    w.commit(Some(11), Some(&digest)).unwrap();
}

#[test]
fn writing_past_the_expected_size_fails_at_once() {
    let (_d, store) = store();
    let digest = Digest::sha256_of(b"abc");
    let mut w = store.writer("big", opts(&digest, 3)).unwrap();
    let err = w.write_chunk(b"abcd").unwrap_err();
    assert!(
        matches!(err, ContentError::TooLarge { expected: 3, .. }),
        "{err}"
    );
    let err = w.copy_from(&mut &b"abcd"[..]).unwrap_err();
    assert!(
        matches!(err, ContentError::TooLarge { expected: 3, .. }),
        "{err}"
    );
}

#[test]
fn leftover_longer_than_expected_restarts() {
    let (_d, store) = store();
    let mut w = store.writer("long", WriterOptions::default()).unwrap();
    w.write_all(b"0123456789").unwrap();
    drop(w);
    let digest = Digest::sha256_of(b"abc");
    let mut w = store.writer("long", opts(&digest, 3)).unwrap();
    assert_eq!(w.offset(), 0);
    w.write_all(b"abc").unwrap();
    w.commit(Some(3), Some(&digest)).unwrap();
}

#[test]
fn existing_blob_short_circuits_and_races_resolve() {
    let (_d, store) = store();
    let digest = Digest::sha256_of(b"same");
    let mut a = store.writer("a", WriterOptions::default()).unwrap();
    let mut b = store.writer("b", WriterOptions::default()).unwrap();
    a.write_all(b"same").unwrap();
    b.write_all(b"same").unwrap();
    a.commit(Some(4), Some(&digest)).unwrap();
    assert!(matches!(
        b.commit(Some(4), Some(&digest)),
        Err(ContentError::AlreadyExists(_))
    ));
    assert!(store.ingests().unwrap().is_empty());
    assert!(matches!(
        store.writer("c", opts(&digest, 4)),
        Err(ContentError::AlreadyExists(_))
    ));
}

#[test]
fn one_writer_per_ref() {
    let (_d, store) = store();
    let digest = Digest::sha256_of(b"locked");
    let mut w = store.writer("lock", opts(&digest, 6)).unwrap();
    assert!(matches!(
        store.writer("lock", opts(&digest, 6)),
        Err(ContentError::IngestLocked(_))
    ));
    assert!(matches!(
        store.abort("lock"),
        Err(ContentError::IngestLocked(_))
    ));

    let waiter = {
        let store = store.clone();
        let digest = digest.clone();
        std::thread::spawn(move || {
            store.writer(
                "lock",
                WriterOptions {
                    wait: true,
                    ..opts(&digest, 6)
                },
            )
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    w.write_all(b"locked").unwrap();
    w.commit(Some(6), Some(&digest)).unwrap();
    // The waiter must not end up writing into the inode that just became the blob.
    let got = waiter.join().unwrap();
    assert!(
        matches!(got, Err(ContentError::AlreadyExists(_))),
        "{got:?}"
    );
    let mut data = Vec::new();
    store
        .reader(&digest)
        .unwrap()
        .read_to_end(&mut data)
        .unwrap();
    assert_eq!(data, b"locked");
}

#[test]
fn abort_removes_the_ingest() {
    let (_d, store) = store();
    let mut w = store.writer("gone", WriterOptions::default()).unwrap();
    w.write_all(b"partial").unwrap();
    drop(w);
    store.abort("gone").unwrap();
    assert!(matches!(
        store.ingest("gone"),
        Err(ContentError::IngestNotFound(_))
    ));
    assert!(matches!(
        store.abort("gone"),
        Err(ContentError::IngestNotFound(_))
    ));
}

#[test]
fn copy_from_hashes_large_streams() {
    let (_d, store) = store();
    let data = pseudo_random((5 << 20) + 123, 99);
    let digest = Digest::sha256_of(&data);
    let mut w = store.writer("copy", WriterOptions::default()).unwrap();
    // A reader that returns odd-sized short reads.
    struct Dribble<'a>(&'a [u8]);
    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(70_001);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    assert_eq!(w.copy_from(&mut Dribble(&data)).unwrap(), data.len() as u64);
    assert_eq!(w.commit(None, None).unwrap(), digest);
    assert_eq!(store.info(&digest).unwrap().size, data.len() as u64);
}

#[test]
fn invalid_refs_are_refused() {
    let (_d, store) = store();
    assert!(matches!(
        store.writer("", WriterOptions::default()),
        Err(ContentError::InvalidRef(_))
    ));
    let long = "x".repeat(2000);
    assert!(matches!(
        store.writer(&long, WriterOptions::default()),
        Err(ContentError::InvalidRef(_))
    ));
}
