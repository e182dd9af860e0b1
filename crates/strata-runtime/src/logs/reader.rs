//! Reading the log back (`logs`): the rotated files oldest first, then the current one;
//! `--since`/`--until` filter by entry time, `--tail` keeps the last lines of all of it, and
//! `-f` follows the current file across rotations.
//!
//! Following: at the end of the file it holds, the reader checks whether the log's path now
//! names another file (the writer rotated). The old file gets no more writes once renamed,
//! so the reader drains it, reads any rotated file newer than it (when it fell more than one
//! rotation behind and the file is still there uncompressed), then carries on in the new
//! one. Like Docker's, a reader that falls behind by more than `max-file` rotations loses
//! what was deleted meanwhile.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{Entry, Stream, log_files, rfc3339_nanos};
use crate::runc::RuntimeError;

/// `logs` options.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub follow: bool,
    pub timestamps: bool,
    /// The last N lines only.
    pub tail: Option<usize>,
    /// Entries from this instant on (`--since`).
    pub since: Option<SystemTime>,
    /// Entries up to this instant (`--until`); following stops there.
    pub until: Option<SystemTime>,
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
    let mut p = Printer::new(opts, out, err);
    // The current file first: a rotation while the others are listed then shows as a
    // rotated file with the inode already held, which is skipped.
    let current = open_if_exists(path).map_err(io_err)?;
    let mut held = current.as_ref().map(inode).transpose().map_err(io_err)?;
    for (file, gz) in log_files(path) {
        if file == path {
            continue;
        }
        let Some(f) = open_if_exists(&file).map_err(io_err)? else {
            continue;
        };
        if !gz && held.is_some() && held == Some(inode(&f).map_err(io_err)?) {
            continue;
        }
        p.all(&mut reader_of(f, gz)).map_err(io_err)?;
    }
    let mut reader = current.map(BufReader::new);
    let mut line = String::new();
    if let Some(r) = &mut reader {
        p.complete_lines(r, &mut line).map_err(io_err)?;
    }
    if !opts.follow {
        if !line.is_empty() {
            p.line(&line).map_err(io_err)?;
        }
        return p.end_tail().map_err(io_err);
    }
    p.end_tail().map_err(io_err)?;
    loop {
        let alive = crate::state::monitor_alive(dir);
        if let Some(r) = &mut reader {
            p.complete_lines(r, &mut line).map_err(io_err)?;
        }
        if let Some(next) = moved_on(path, held).map_err(io_err)? {
            // The writer left the file we hold: what it wrote there is all there is.
            if let Some(r) = &mut reader {
                p.complete_lines(r, &mut line).map_err(io_err)?;
            }
            p.line(&std::mem::take(&mut line)).map_err(io_err)?;
            for (file, gz) in newer_than(path, held) {
                if let Some(f) = open_if_exists(&file).map_err(io_err)? {
                    p.all(&mut reader_of(f, gz)).map_err(io_err)?;
                }
            }
            held = Some(inode(&next).map_err(io_err)?);
            reader = Some(BufReader::new(next));
            continue;
        }
        let past_until = opts.until.is_some_and(|u| SystemTime::now() > u);
        if !alive || past_until {
            // The monitor is gone; what it wrote before going is all there is.
            p.line(&line).map_err(io_err)?;
            return p.flush().map_err(io_err);
        }
        p.flush().map_err(io_err)?;
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Where entries go: filtered by time, held back for `--tail`, then written.
struct Printer<'a> {
    timestamps: bool,
    since: Option<String>,
    until: Option<String>,
    /// The last lines, while reading what is there for `--tail`.
    tail: Option<(usize, VecDeque<Entry>)>,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
}

impl<'a> Printer<'a> {
    fn new(opts: &LogOptions, out: &'a mut dyn Write, err: &'a mut dyn Write) -> Printer<'a> {
        Printer {
            timestamps: opts.timestamps,
            // Entries carry fixed-width UTC times, so they compare as strings.
            since: opts.since.map(rfc3339_nanos),
            until: opts.until.map(rfc3339_nanos),
            tail: opts.tail.map(|n| (n, VecDeque::new())),
            out,
            err,
        }
    }

    /// One line of the file; anything that is not an entry is skipped.
    fn line(&mut self, line: &str) -> io::Result<()> {
        let Ok(e) = serde_json::from_str::<Entry>(line) else {
            return Ok(());
        };
        if self.since.as_ref().is_some_and(|s| e.time < *s)
            || self.until.as_ref().is_some_and(|u| e.time > *u)
        {
            return Ok(());
        }
        match &mut self.tail {
            Some((n, kept)) => {
                kept.push_back(e);
                if kept.len() > *n {
                    kept.pop_front();
                }
                Ok(())
            }
            None => self.emit(&e),
        }
    }

    fn emit(&mut self, e: &Entry) -> io::Result<()> {
        let w: &mut dyn Write = match e.stream {
            Stream::Stdout => &mut *self.out,
            Stream::Stderr => &mut *self.err,
        };
        if self.timestamps {
            write!(w, "{} ", e.time)?;
        }
        w.write_all(e.log.as_bytes())
    }

    /// Writes the lines kept for `--tail`; later ones are written as they come.
    fn end_tail(&mut self) -> io::Result<()> {
        if let Some((_, kept)) = self.tail.take() {
            for e in &kept {
                self.emit(e)?;
            }
        }
        self.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.err.flush()
    }

    /// Every line to the end, the last one even without its newline.
    fn all(&mut self, r: &mut dyn BufRead) -> io::Result<()> {
        let mut line = String::new();
        self.complete_lines(r, &mut line)?;
        self.line(&line)
    }

    /// The complete lines up to the end of what is written; a partial last line is left in
    /// `line` for the next call to finish.
    fn complete_lines(&mut self, r: &mut dyn BufRead, line: &mut String) -> io::Result<()> {
        loop {
            let n = r.read_line(line)?;
            if n == 0 || !line.ends_with('\n') {
                return Ok(());
            }
            self.line(line)?;
            line.clear();
        }
    }
}

fn open_if_exists(p: &Path) -> io::Result<Option<File>> {
    match File::open(p) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn inode(f: &File) -> io::Result<(u64, u64)> {
    let m = f.metadata()?;
    Ok((m.dev(), m.ino()))
}

fn reader_of(f: File, gz: bool) -> Box<dyn BufRead> {
    if gz {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(f)))
    } else {
        Box::new(BufReader::new(f))
    }
}

/// The log's current file when it is no longer the one held (none between a rotation's
/// rename and the new file's creation).
fn moved_on(path: &Path, held: Option<(u64, u64)>) -> io::Result<Option<File>> {
    let Some(f) = open_if_exists(path)? else {
        return Ok(None);
    };
    Ok((Some(inode(&f)?) != held).then_some(f))
}

/// The rotated files written after the one held, oldest first: those after it in the list
/// (all of them when nothing was held yet, none when it is gone).
fn newer_than(path: &Path, held: Option<(u64, u64)>) -> Vec<(std::path::PathBuf, bool)> {
    let rotated: Vec<_> = log_files(path)
        .into_iter()
        .filter(|(p, _)| p != path)
        .collect();
    let Some(held) = held else {
        return rotated;
    };
    let at = rotated
        .iter()
        .position(|(p, gz)| !gz && std::fs::metadata(p).is_ok_and(|m| (m.dev(), m.ino()) == held));
    match at {
        Some(i) => rotated[i + 1..].to_vec(),
        None => Vec::new(),
    }
}
