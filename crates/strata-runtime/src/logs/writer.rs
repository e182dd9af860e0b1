//! Writing the log: one entry per line of output, rotated by size as Docker's json-file.
//!
//! Rotation (with `max-size`): once the file holds `max-size` bytes, the next entry goes to a
//! new file. With `max-file` N ≥ 2 the old ones shift (`.1` → `.2` …, the oldest beyond N-1
//! dropped) and the current one becomes `.1` (gzipped to `.1.gz` with `compress`, the
//! uncompressed copy removed only once the compressed one is complete); with N = 1 it is
//! replaced. The current file is always a new inode, which is how a following reader notices.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::config::{JsonFileOptions, LogDriver};
use super::{Entry, MAX_LINE, Stream, create_log_file, rfc3339_nanos, rotated};

/// Appends a container's output to its log, a line per entry.
#[derive(Debug)]
pub struct LogWriter {
    /// None: the `none` driver, output dropped.
    file: Option<JsonFile>,
    pending: [Vec<u8>; 2],
}

#[derive(Debug)]
struct JsonFile {
    path: PathBuf,
    file: File,
    opts: JsonFileOptions,
    /// Bytes in `file`, `buf` included.
    size: u64,
    /// Entries of one `write`, written at once.
    buf: Vec<u8>,
}

impl LogWriter {
    pub fn open(path: &Path, driver: &LogDriver) -> io::Result<LogWriter> {
        let file = match driver {
            LogDriver::None => None,
            LogDriver::JsonFile(opts) => {
                let file = create_log_file(path, false)?;
                let size = file.metadata()?.len();
                Some(JsonFile {
                    path: path.to_owned(),
                    file,
                    opts: *opts,
                    size,
                    buf: Vec::new(),
                })
            }
        };
        Ok(LogWriter {
            file,
            pending: [Vec::new(), Vec::new()],
        })
    }

    /// Takes `bytes` of `stream`; complete lines are written now.
    pub fn write(&mut self, stream: Stream, bytes: &[u8]) -> io::Result<()> {
        let Some(json) = &mut self.file else {
            return Ok(());
        };
        let i = stream as usize;
        self.pending[i].extend_from_slice(bytes);
        let mut start = 0;
        let buf = &self.pending[i];
        let result = loop {
            let rest = &buf[start..];
            let cut = match rest.iter().position(|&b| b == b'\n') {
                Some(n) => n + 1,
                None if rest.len() >= MAX_LINE => MAX_LINE,
                None => break Ok(()),
            };
            if let Err(e) = json.entry(stream, &rest[..cut]) {
                break Err(e);
            }
            start += cut;
        };
        self.pending[i].drain(..start);
        result.and_then(|()| json.write_buf())
    }

    /// Writes what is left of each stream (output that ended without a newline).
    pub fn flush(&mut self) -> io::Result<()> {
        let Some(json) = &mut self.file else {
            return Ok(());
        };
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = std::mem::take(&mut self.pending[stream as usize]);
            if !rest.is_empty() {
                json.entry(stream, &rest)?;
            }
        }
        json.write_buf()
    }
}

impl JsonFile {
    /// Adds one entry, rotating first when the file is full (so a file is at most
    /// `max-size` plus one entry, as Docker's).
    fn entry(&mut self, stream: Stream, bytes: &[u8]) -> io::Result<()> {
        if self.opts.max_size.is_some_and(|max| self.size >= max) {
            self.write_buf()?;
            self.rotate()?;
        }
        let e = Entry {
            log: String::from_utf8_lossy(bytes).into_owned(),
            stream,
            time: rfc3339_nanos(SystemTime::now()),
        };
        let before = self.buf.len();
        serde_json::to_writer(&mut self.buf, &e).map_err(io::Error::other)?;
        self.buf.push(b'\n');
        self.size += (self.buf.len() - before) as u64;
        Ok(())
    }

    fn write_buf(&mut self) -> io::Result<()> {
        let result = self.file.write_all(&self.buf);
        if result.is_err() {
            // What did not fit is lost (a full disk), and not counted.
            self.size = self.file.metadata().map_or(self.size, |m| m.len());
        }
        self.buf.clear();
        result
    }

    fn rotate(&mut self) -> io::Result<()> {
        let n = self.opts.max_file;
        if n >= 2 {
            let ext = if self.opts.compress { ".gz" } else { "" };
            remove_if_exists(&rotated(&self.path, n - 1, ext))?;
            for i in (2..n).rev() {
                rename_if_exists(
                    &rotated(&self.path, i - 1, ext),
                    &rotated(&self.path, i, ext),
                )?;
            }
            let first = rotated(&self.path, 1, "");
            fs::rename(&self.path, &first)?;
            if self.opts.compress {
                compress(&first, &rotated(&self.path, 1, ".gz"))?;
            }
        } else {
            remove_if_exists(&self.path)?;
        }
        self.file = create_log_file(&self.path, true)?;
        self.size = 0;
        Ok(())
    }
}

/// Gzips `from` into `to` (through a temporary file), then removes `from`: a reader always
/// finds one whole copy.
fn compress(from: &Path, to: &Path) -> io::Result<()> {
    let tmp = to.with_extension("gz.tmp");
    let mut src = File::open(from)?;
    let mut gz =
        flate2::write::GzEncoder::new(create_log_file(&tmp, true)?, flate2::Compression::fast());
    io::copy(&mut src, &mut gz)?;
    gz.finish()?;
    fs::rename(&tmp, to)?;
    fs::remove_file(from)
}

fn remove_if_exists(p: &Path) -> io::Result<()> {
    match fs::remove_file(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn rename_if_exists(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
