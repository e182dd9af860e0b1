//! The container log in Docker's `json-file` format: one JSON object per line,
//! `{"log":"hello\n","stream":"stdout","time":"2026-11-23T23:35:14.123456789Z"}`. A line
//! longer than 16 KiB, or output cut off without a newline, is written as it comes (no
//! newline in `log`), as Docker does. Every line costs an entry, so short lines make a log
//! much larger than the output (`yes` prints 2 bytes a line, its log is ~36 times that, in
//! Docker as here): `max-size`/`max-file` bound it ([`config`], rotation in [`writer`]),
//! and [`reader`] reads the rotated files back as one log.
//!
//! ```text
//! <id>-json.log          the file being written
//! <id>-json.log.1[.gz]   the one before (gzipped with compress=true)
//! <id>-json.log.N-1      the oldest kept (max-file N)
//! ```

pub mod config;
pub mod reader;
pub mod writer;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use config::{JsonFileOptions, LogConfig, LogDriver, LogOptError};
pub use reader::{LogOptions, copy_logs};
pub use writer::LogWriter;

/// Docker's buffer: a longer line is split.
const MAX_LINE: usize = 16 * 1024;

/// The mode of every log file (current, rotated, compressed), as Docker's json-file.
pub const LOG_FILE_MODE: u32 = crate::files::LOG;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    log: String,
    stream: Stream,
    time: String,
}

/// Opens a log file for appending (creating it with [`LOG_FILE_MODE`]); `truncate` empties it.
fn create_log_file(path: &Path, truncate: bool) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(LOG_FILE_MODE)
        .open(path)
        .and_then(|f| {
            if truncate {
                f.set_len(0)?;
            }
            Ok(f)
        })
}

/// The `k`th rotated file of the log at `path`, with `ext` (`""` or `".gz"`).
fn rotated(path: &Path, k: u32, ext: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{k}{ext}"));
    PathBuf::from(name)
}

/// Every file of the log at `path` that exists, oldest first (rotated ones, then `path`),
/// with whether it is gzipped. A rotated file present both ways (mid-compression) is
/// listed once, uncompressed.
pub fn log_files(path: &Path) -> Vec<(PathBuf, bool)> {
    let (Some(dir), Some(base)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let mut found: Vec<(u32, bool)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(rest) = name
                .to_str()
                .and_then(|n| n.strip_prefix(base))
                .and_then(|r| r.strip_prefix('.'))
            else {
                continue;
            };
            let (num, gz) = match rest.strip_suffix(".gz") {
                Some(n) => (n, true),
                None => (rest, false),
            };
            if let Ok(k) = num.parse::<u32>()
                && k > 0
                && num.bytes().all(|b| b.is_ascii_digit())
            {
                found.push((k, gz));
            }
        }
    }
    // Oldest (highest number) first; uncompressed before compressed of the same number.
    found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    found.dedup_by_key(|(k, _)| *k);
    let mut files: Vec<(PathBuf, bool)> = found
        .into_iter()
        .map(|(k, gz)| (rotated(path, k, if gz { ".gz" } else { "" }), gz))
        .collect();
    if path.exists() {
        files.push((path.to_owned(), false));
    }
    files
}

/// Bytes on disk of the log at `path`, rotated files included.
pub fn log_size(path: &Path) -> u64 {
    log_files(path)
        .iter()
        .filter_map(|(p, _)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// RFC 3339 with nanoseconds in UTC, as Docker's log timestamps.
pub fn rfc3339_nanos(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = UNIX_EPOCH + Duration::new(1_795_045_514, 123_456_789);
        assert_eq!(rfc3339_nanos(t), "2026-11-18T23:45:14.123456789Z");
        assert_eq!(rfc3339_nanos(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
    }

    fn json_file(max_size: Option<u64>, max_file: u32, compress: bool) -> LogDriver {
        LogDriver::JsonFile(JsonFileOptions {
            max_size,
            max_file,
            compress,
        })
    }

    /// (stdout, stderr) of `copy_logs` with `opts`.
    fn read(path: &Path, opts: &LogOptions) -> (String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        copy_logs(path, path.parent().unwrap(), opts, &mut out, &mut err).unwrap();
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    fn tail(n: usize) -> LogOptions {
        LogOptions {
            tail: Some(n),
            ..Default::default()
        }
    }

    fn numbered(range: std::ops::Range<usize>) -> String {
        range.map(|i| format!("line-{i:05}\n")).collect()
    }

    #[test]
    fn lines_split_by_stream_and_tail() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("c-json.log");
        let mut w = LogWriter::open(&path, &json_file(None, 1, false)).unwrap();
        w.write(Stream::Stdout, b"one\ntw").unwrap();
        w.write(Stream::Stderr, b"oops\n").unwrap();
        w.write(Stream::Stdout, b"o\nthree").unwrap();
        w.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(
            text.lines()
                .next()
                .unwrap()
                .starts_with(r#"{"log":"one\n","stream":"stdout","time":""#)
        );
        assert_eq!(
            read(&path, &LogOptions::default()),
            ("one\ntwo\nthree".into(), "oops\n".into())
        );
        assert_eq!(read(&path, &tail(2)), ("two\nthree".into(), String::new()));
    }

    #[test]
    fn one_entry_per_line_however_the_output_is_cut() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("c-json.log");
        let mut w = LogWriter::open(&path, &json_file(None, 1, false)).unwrap();
        let out = numbered(0..300);
        for chunk in out.as_bytes().chunks(7) {
            w.write(Stream::Stdout, chunk).unwrap();
        }
        w.write(Stream::Stdout, &[b'x'; MAX_LINE + 10]).unwrap();
        w.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        // 300 lines, then the long line in two entries (16 KiB, then the rest at the end).
        assert_eq!(text.lines().count(), 302);
        let (o, _) = read(&path, &LogOptions::default());
        assert_eq!(o.len(), out.len() + MAX_LINE + 10);
        assert!(o.starts_with(&out));
    }

    #[test]
    fn rotation_keeps_max_file_files_of_max_size_and_reads_them_in_order() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("c-json.log");
        let mut w = LogWriter::open(&path, &json_file(Some(2000), 3, false)).unwrap();
        let out = numbered(0..1000);
        for chunk in out.as_bytes().chunks(333) {
            w.write(Stream::Stdout, chunk).unwrap();
        }
        w.flush().unwrap();
        let files = log_files(&path);
        let names: Vec<String> = files
            .iter()
            .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["c-json.log.2", "c-json.log.1", "c-json.log"]);
        let entry = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .len()
            + 1;
        for (p, _) in &files {
            let len = std::fs::metadata(p).unwrap().len();
            assert!(len < 2000 + entry as u64, "{} is {len} bytes", p.display());
        }
        assert_eq!(
            log_size(&path),
            files
                .iter()
                .map(|(p, _)| std::fs::metadata(p).unwrap().len())
                .sum::<u64>()
        );
        // What is kept is the newest output, in order, ending with the last line.
        let (all, _) = read(&path, &LogOptions::default());
        assert!(all.lines().count() > 2 * 2000 / entry, "{all}");
        assert!(out.ends_with(&all), "not a suffix of the output:\n{all}");
        // --tail reaches into the rotated files.
        let kept = std::fs::read_to_string(&path).unwrap().lines().count();
        assert_eq!(
            read(&path, &tail(kept + 3)).0,
            numbered(1000 - kept - 3..1000)
        );
        assert_eq!(read(&path, &tail(1)).0, "line-00999\n");
    }

    #[test]
    fn max_file_one_replaces_the_file() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("c-json.log");
        let mut w = LogWriter::open(&path, &json_file(Some(1000), 1, false)).unwrap();
        w.write(Stream::Stdout, numbered(0..100).as_bytes())
            .unwrap();
        assert_eq!(log_files(&path).len(), 1);
        assert!(std::fs::metadata(&path).unwrap().len() < 1100);
        let (all, _) = read(&path, &LogOptions::default());
        assert!(all.ends_with("line-00099\n"), "{all}");
    }

    #[test]
    fn compressed_rotations_are_gzip_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("c-json.log");
        let mut w = LogWriter::open(&path, &json_file(Some(1000), 3, true)).unwrap();
        let out = numbered(0..200);
        w.write(Stream::Stdout, out.as_bytes()).unwrap();
        let files = log_files(&path);
        assert_eq!(
            files.iter().map(|(_, gz)| *gz).collect::<Vec<_>>(),
            [true, true, false]
        );
        for (p, gz) in &files {
            let bytes = std::fs::read(p).unwrap();
            assert_eq!(*gz, bytes.starts_with(&[0x1f, 0x8b]), "{}", p.display());
            let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, LOG_FILE_MODE & !0o022, "{}", p.display());
        }
        assert!(!t.path().join("c-json.log.1").exists());
        let (all, _) = read(&path, &LogOptions::default());
        assert!(all.lines().count() > 20 && out.ends_with(&all), "{all}");
    }

    #[test]
    fn since_and_until_filter_by_entry_time() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("c-json.log");
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s);
        let lines: String = (0..5)
            .map(|i| {
                format!(
                    "{{\"log\":\"{i}\\n\",\"stream\":\"stdout\",\"time\":\"{}\"}}\n",
                    rfc3339_nanos(at(i))
                )
            })
            .collect();
        std::fs::write(&path, lines).unwrap();
        let opts = LogOptions {
            since: Some(at(1)),
            until: Some(at(3)),
            ..Default::default()
        };
        assert_eq!(read(&path, &opts).0, "1\n2\n3\n");
        let opts = LogOptions {
            since: Some(at(2)),
            tail: Some(1),
            ..Default::default()
        };
        assert_eq!(read(&path, &opts).0, "4\n");
    }

    #[test]
    fn following_reads_on_across_rotations() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("c-json.log");
        let lock = crate::state::lock_for_monitor(t.path()).unwrap();
        let out = numbered(0..600);
        let writer = {
            let (path, out) = (path.clone(), out.clone());
            std::thread::spawn(move || {
                let mut w = LogWriter::open(&path, &json_file(Some(3000), 5, false)).unwrap();
                for chunk in out.as_bytes().chunks(11 * 10) {
                    w.write(Stream::Stdout, chunk).unwrap();
                    std::thread::sleep(Duration::from_millis(15));
                }
                drop(lock);
            })
        };
        let opts = LogOptions {
            follow: true,
            ..Default::default()
        };
        let (followed, _) = read(&path, &opts);
        writer.join().unwrap();
        assert!(log_files(&path).len() > 2, "no rotation happened");
        assert_eq!(followed, out);
    }
}
