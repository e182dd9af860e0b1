//! `strata content`: ingest, resume after kill -9, verification failures, concurrency.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Strata, pseudo_random};
use serde_json::Value;

#[test]
fn ingest_get_info_label_rm() {
    let s = Strata::new();
    let data = b"{\"hello\":\"strata\"}".to_vec();
    let digest = s.ingest(&data);
    assert_eq!(s.content_digests(), vec![digest.clone()]);
    let out = s.cmd(&["content", "get", &digest]).output().unwrap();
    assert_eq!(out.stdout, data);

    assert_eq!(
        s.ok(&["content", "label", &digest, "a=1", "b=2"]).trim(),
        "a=1,b=2"
    );
    assert_eq!(s.ok(&["content", "label", &digest, "a="]).trim(), "b=2");
    let info: Value = serde_json::from_str(&s.ok(&["content", "info", &digest])).unwrap();
    assert_eq!(info[0]["Size"], data.len());
    assert_eq!(info[0]["Labels"]["b"], "2");

    // Ingesting what is already there succeeds and changes nothing.
    assert_eq!(s.ingest(&data), digest);
    assert_eq!(s.ok(&["content", "rm", &digest]).trim(), digest);
    assert!(s.content_digests().is_empty());
    let err = s.fails(&["content", "rm", &digest], b"");
    assert!(err.contains(&format!("blob {digest} not found")), "{err}");
    let err = s.fails(&["content", "get", &digest], b"");
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn kill_9_mid_stream_then_resume_from_saved_offset() {
    let s = Strata::new();
    let data = pseudo_random(16 << 20, 1);
    let half = 8 << 20;
    let digest = strata_testutil::sha256_digest(&data);
    let size = data.len().to_string();
    let args = ["content", "ingest", "--expected", &digest, "--size", &size];

    let mut child = s.spawn_quiet(&args);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&data[..half]).unwrap();
    // Wait until the first half is on disk, with the pipe still open.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let active: Vec<Value> = s
            .ok(&["content", "active", "--format", "json"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if active.len() == 1 && active[0]["Offset"] == half {
            assert_eq!(active[0]["Ref"], digest.as_str());
            assert_eq!(active[0]["Total"], data.len());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ingest never reached offset {half}: {active:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    drop(stdin);
    assert!(
        s.content_digests().is_empty(),
        "a killed ingest publishes nothing"
    );

    // Second run: the first half of its input is garbage. Only a resume that keeps the saved
    // bytes and skips that part of the input can produce the expected digest.
    let mut input = vec![0u8; half];
    input.extend_from_slice(&data[half..]);
    let out = s.run_input(&args, &input);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "resume failed: {stderr}");
    assert!(
        stderr.contains(&format!("resuming ingest {digest} at offset {half}")),
        "{stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), digest);
    assert_eq!(
        s.cmd(&["content", "get", &digest]).output().unwrap().stdout,
        data
    );
    assert!(s.ok(&["content", "active", "-q"]).is_empty());
}

#[test]
fn bad_input_is_refused_and_nothing_becomes_visible() {
    let s = Strata::new();
    let hello = strata_testutil::sha256_digest(b"hello");
    let other = strata_testutil::sha256_digest(b"other");

    // Wrong digest.
    let err = s.fails(
        &["content", "ingest", "--expected", &other, "--size", "5"],
        b"hello",
    );
    assert!(
        err.contains("digest mismatch") && err.contains(&other) && err.contains(&hello),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    // Wrong size: more data than declared.
    let err = s.fails(
        &["content", "ingest", "--expected", &hello, "--size", "3"],
        b"hello",
    );
    assert!(
        err.contains("size mismatch: expected 3 bytes, got at least 5"),
        "{err}"
    );
    // Truncated: less data than declared. Kept, to be resumed.
    let err = s.fails(
        &["content", "ingest", "--expected", &hello, "--size", "5"],
        b"hel",
    );
    assert!(err.contains("truncated: expected 5 bytes, got 3"), "{err}");
    // Unsupported and malformed digests.
    let err = s.fails(&["content", "ingest", "--expected", "sha512:abcd"], b"x");
    assert!(err.contains("unsupported digest algorithm"), "{err}");
    let err = s.fails(&["content", "get", "sha256:1234"], b"");
    assert!(err.contains("invalid digest"), "{err}");

    assert!(s.content_digests().is_empty());
    assert_eq!(
        s.ok(&["content", "active", "-q"]).trim(),
        hello,
        "only the truncated ingest remains"
    );
    // The store is still usable, and the truncated ingest completes.
    let out = s.run_input(
        &["content", "ingest", "--expected", &hello, "--size", "5"],
        b"hello",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.content_digests(), vec![hello]);
    assert!(s.ok(&["content", "active", "-q"]).is_empty());
}

#[test]
fn eight_processes_ingest_overlapping_sets() {
    let s = Arc::new(Strata::new());
    let blobs: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..12)
            .map(|i| pseudo_random((1 << 20) + i * 4099, i as u64))
            .collect(),
    );
    s.ok(&["info"]); // create the store first so all workers race on the same state
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let s = s.clone();
            let blobs = blobs.clone();
            std::thread::spawn(move || {
                // Each worker takes six blobs starting at a different place: every blob is
                // ingested by four workers, often at the same moment.
                for k in 0..6 {
                    let data = &blobs[(w * 3 + k) % blobs.len()];
                    s.ingest(data);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    let mut want: Vec<String> = blobs
        .iter()
        .map(|b| strata_testutil::sha256_digest(b))
        .collect();
    want.sort();
    assert_eq!(s.content_digests(), want);
    let files = std::fs::read_dir(s.root().join("content/blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(files, 12, "every blob stored once");
    assert!(s.ok(&["content", "active", "-q"]).is_empty());
    for (i, d) in want.iter().enumerate() {
        let out = s.cmd(&["content", "get", d]).output().unwrap();
        assert_eq!(
            &strata_testutil::sha256_digest(&out.stdout),
            d,
            "blob {i} reads back"
        );
    }
    let db = strata_metadata::Db::open(&s.root().join("metadata.db")).unwrap();
    assert_eq!(db.integrity_check().unwrap(), vec!["ok".to_owned()]);
    assert!(
        db.read(|tx| tx.leases()).unwrap().is_empty(),
        "every ingest lease ended"
    );
}
