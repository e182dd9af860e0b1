//! The container log in Docker's `json-file` format: one JSON object per line,
//! `{"log":"hello\n","stream":"stdout","time":"2026-11-23T23:35:14.123456789Z"}`. A line
//! longer than 16 KiB, or output cut off without a newline, is written as it comes (no
//! newline in `log`), as Docker does.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::runc::RuntimeError;

/// Docker's buffer: a longer line is split.
const MAX_LINE: usize = 16 * 1024;

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

/// Appends a stream's bytes to the log, a line per entry.
#[derive(Debug)]
pub struct LogWriter {
    file: File,
    pending: [Vec<u8>; 2],
}

impl LogWriter {
    pub fn open(path: &Path) -> io::Result<LogWriter> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(crate::files::LOG)
            .open(path)?;
        Ok(LogWriter {
            file,
            pending: [Vec::new(), Vec::new()],
        })
    }

    /// Takes `bytes` of `stream`; complete lines are written now.
    pub fn write(&mut self, stream: Stream, bytes: &[u8]) -> io::Result<()> {
        let i = stream as usize;
        self.pending[i].extend_from_slice(bytes);
        loop {
            let buf = &self.pending[i];
            let cut = match buf.iter().position(|&b| b == b'\n') {
                Some(n) => n + 1,
                None if buf.len() >= MAX_LINE => MAX_LINE,
                None => return Ok(()),
            };
            let line: Vec<u8> = self.pending[i].drain(..cut).collect();
            self.entry(stream, &line)?;
        }
    }

    /// Writes what is left of each stream (output that ended without a newline).
    pub fn flush(&mut self) -> io::Result<()> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = std::mem::take(&mut self.pending[stream as usize]);
            if !rest.is_empty() {
                self.entry(stream, &rest)?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, stream: Stream, bytes: &[u8]) -> io::Result<()> {
        let e = Entry {
            log: String::from_utf8_lossy(bytes).into_owned(),
            stream,
            time: rfc3339_nanos(SystemTime::now()),
        };
        let mut line = serde_json::to_vec(&e).map_err(io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)
    }
}

/// `logs` options.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub follow: bool,
    pub timestamps: bool,
    /// The last N lines only.
    pub tail: Option<usize>,
}

/// Writes the log's stdout entries to `out` and stderr entries to `err`. With `follow`,
/// keeps reading until the container's monitor (see [`crate::state::monitor_alive`] on
/// `dir`) is gone and the file is drained.
pub fn copy_logs(
    path: &Path,
    dir: &Path,
    opts: &LogOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), RuntimeError> {
    let io_err = |source| RuntimeError::Io {
        what: "read log",
        path: path.to_owned(),
        source,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        // Never started (or started before its log existed): nothing to show yet.
        Err(e) if e.kind() == io::ErrorKind::NotFound && !crate::state::monitor_alive(dir) => {
            return Ok(());
        }
        Err(e) => return Err(io_err(e)),
    };
    let mut reader = BufReader::new(file);
    let mut emit = |line: &str| -> io::Result<()> {
        let Ok(e) = serde_json::from_str::<Entry>(line) else {
            return Ok(());
        };
        let w: &mut dyn Write = match e.stream {
            Stream::Stdout => out,
            Stream::Stderr => err,
        };
        if opts.timestamps {
            write!(w, "{} ", e.time)?;
        }
        w.write_all(e.log.as_bytes())?;
        w.flush()
    };
    if let Some(n) = opts.tail {
        let mut all = Vec::new();
        let mut line = String::new();
        while reader.read_line(&mut line).map_err(io_err)? > 0 {
            if line.ends_with('\n') {
                all.push(std::mem::take(&mut line));
            } else {
                break;
            }
        }
        let pos = reader.stream_position().map_err(io_err)? - line.len() as u64;
        for l in &all[all.len().saturating_sub(n)..] {
            emit(l).map_err(io_err)?;
        }
        reader.seek(SeekFrom::Start(pos)).map_err(io_err)?;
    }
    let mut line = String::new();
    loop {
        let alive = opts.follow && crate::state::monitor_alive(dir);
        let n = reader.read_line(&mut line).map_err(io_err)?;
        if n > 0 && line.ends_with('\n') {
            emit(&line).map_err(io_err)?;
            line.clear();
            continue;
        }
        if !alive {
            // The monitor is gone; what it wrote before going is all there is.
            if !line.is_empty() {
                emit(&line).map_err(io_err)?;
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
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
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = UNIX_EPOCH + Duration::new(1_795_045_514, 123_456_789);
        assert_eq!(rfc3339_nanos(t), "2026-11-18T23:45:14.123456789Z");
        assert_eq!(rfc3339_nanos(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn lines_split_by_stream_and_tail() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("c-json.log");
        let mut w = LogWriter::open(&path).unwrap();
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
        let (mut out, mut err) = (Vec::new(), Vec::new());
        copy_logs(&path, t.path(), &LogOptions::default(), &mut out, &mut err).unwrap();
        assert_eq!(
            (out.as_slice(), err.as_slice()),
            (&b"one\ntwo\nthree"[..], &b"oops\n"[..])
        );
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let opts = LogOptions {
            tail: Some(2),
            ..Default::default()
        };
        copy_logs(&path, t.path(), &opts, &mut out, &mut err).unwrap();
        assert_eq!(out, b"two\nthree");
        assert!(err.is_empty());
    }
}
