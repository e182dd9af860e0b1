//! Pull progress as Docker shows it: on a terminal, one line per layer redrawn in place
//! (state, a bar, bytes, speed); otherwise one plain line per state change, for logs.
//!
//! Written here rather than with a progress-bar crate: Docker's display is a list of
//! `id: status` lines rewritten with two ANSI sequences (cursor up, clear line), and its
//! non-terminal form is plain lines — neither is a progress bar.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use strata_format::human_size;
use strata_remote::Reference;
use strata_types::Digest;

use strata_engine::pull::{LayerState, Progress};

/// How often a terminal display redraws for byte counts alone.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

/// Docker's terminal display: `id: status` rows, redrawn in place.
#[derive(Debug, Default)]
pub(super) struct Rows {
    rows: Vec<(String, String)>,
    /// How many rows the terminal shows now.
    printed: usize,
    /// Drawn on stderr (a pull made by `run`, whose stdout is the container's).
    pub(super) stderr: bool,
}

/// Writes `text` to stdout, or stderr; a closed stream ends nothing here (the command's final
/// lines report it).
fn emit(stderr: bool, text: &str) {
    let _ = if stderr {
        let mut e = io::stderr().lock();
        e.write_all(text.as_bytes()).and_then(|()| e.flush())
    } else {
        let mut o = io::stdout().lock();
        o.write_all(text.as_bytes()).and_then(|()| o.flush())
    };
}

impl Rows {
    /// Sets the status of row `id`, adding the row the first time.
    pub(super) fn set(&mut self, id: &str, status: String) {
        match self.rows.iter_mut().find(|(i, _)| i == id) {
            Some(row) => row.1 = status,
            None => self.rows.push((id.to_owned(), status)),
        }
    }

    /// Redraws every row over the previous drawing.
    pub(super) fn draw(&mut self) {
        let mut text = String::new();
        if self.printed > 0 {
            text.push_str(&format!("\x1b[{}A", self.printed));
        }
        for (id, status) in &self.rows {
            text.push_str(&format!("\r\x1b[2K{id}: {status}\n"));
        }
        self.printed = self.rows.len();
        emit(self.stderr, &text);
    }
}

/// Docker's progress bar: `[=====>     ]  1.23MB/4.56MB`, 50 characters wide.
pub(super) fn bar(current: u64, total: u64) -> String {
    let numbers = format!("{:>8}/{}", human_size(current), human_size(total));
    if total == 0 {
        return numbers;
    }
    let filled = ((current.min(total) as f64 / total as f64 * 100.0) as usize / 2).min(50);
    format!(
        "[{}>{}] {numbers}",
        "=".repeat(filled),
        " ".repeat(50 - filled)
    )
}

/// The first 12 hex digits of a digest: how Docker names a layer in progress output.
pub(super) fn short(d: &Digest) -> &str {
    d.hex().get(..12).unwrap_or(d.hex())
}

/// A pull's display: on a terminal [`Rows`] redrawn at most every 100 ms (and at each change
/// of state); otherwise one plain line per change of state.
#[derive(Debug)]
pub struct PullDisplay {
    tty: bool,
    state: Mutex<Display>,
}

#[derive(Debug)]
struct Display {
    rows: Rows,
    lines: HashMap<Digest, Line>,
    last_draw: Instant,
}

#[derive(Debug)]
struct Line {
    state: LayerState,
    current: u64,
    total: u64,
    /// When bytes started arriving, and from which offset (a resumed download).
    started: Option<(Instant, u64)>,
}

impl PullDisplay {
    /// A display on stdout, or on stderr when `stderr`.
    pub fn on(tty: bool, stderr: bool) -> PullDisplay {
        PullDisplay {
            tty,
            state: Mutex::new(Display {
                rows: Rows {
                    stderr,
                    ..Rows::default()
                },
                lines: HashMap::new(),
                last_draw: Instant::now(),
            }),
        }
    }

    /// Draws the final state of every line (a terminal display may be behind).
    pub fn finish(&self) {
        if let Ok(mut d) = self.state.lock()
            && self.tty
        {
            d.rows.draw();
        }
    }
}

impl Progress for PullDisplay {
    fn resolved(&self, reference: &Reference, digest: &Digest) {
        let object = reference
            .tag()
            .map_or_else(|| digest.to_string(), str::to_owned);
        // Docker names the repository by its path, without the registry.
        let stderr = self.state.lock().is_ok_and(|d| d.rows.stderr);
        emit(
            stderr,
            &format!("{object}: Pulling from {}\n", reference.repository()),
        );
    }

    fn layer(&self, digest: &Digest, state: LayerState, current: u64, total: u64) {
        let Ok(mut d) = self.state.lock() else {
            return;
        };
        let now = Instant::now();
        let first = !d.lines.contains_key(digest);
        let line = d.lines.entry(digest.clone()).or_insert_with(|| Line {
            state,
            current,
            total,
            started: None,
        });
        let changed = first || line.state != state;
        if state == LayerState::Downloading && line.started.is_none() {
            line.started = Some((now, current));
        }
        line.state = state;
        line.current = current;
        line.total = total;
        let text = line.text();
        if !self.tty {
            if changed && state != LayerState::Downloading {
                emit(d.rows.stderr, &format!("{}: {text}\n", short(digest)));
            }
            return;
        }
        d.rows.set(short(digest), text);
        if changed || now.duration_since(d.last_draw) >= REDRAW_EVERY {
            d.rows.draw();
            d.last_draw = now;
        }
    }
}

impl Line {
    fn text(&self) -> String {
        match self.state {
            LayerState::Waiting => "Waiting".to_owned(),
            LayerState::Downloading => {
                let mut s = format!("Downloading {}", bar(self.current, self.total));
                if let Some((at, from)) = self.started {
                    let secs = at.elapsed().as_secs_f64();
                    if secs > 0.2 {
                        let rate = (self.current.saturating_sub(from)) as f64 / secs;
                        s.push_str(&format!("  {}/s", human_size(rate as u64)));
                    }
                }
                s
            }
            LayerState::Extracting => "Extracting".to_owned(),
            LayerState::Verifying => "Verifying Checksum".to_owned(),
            LayerState::Done => "Pull complete".to_owned(),
            LayerState::Exists => "Already exists".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_fill_as_docker_s() {
        assert_eq!(
            bar(0, 2_000_000),
            format!("[>{}]       0B/2MB", " ".repeat(50))
        );
        assert_eq!(
            bar(1_000_000, 2_000_000),
            format!("[{}>{}]      1MB/2MB", "=".repeat(25), " ".repeat(25))
        );
        assert_eq!(
            bar(3_000_000, 2_000_000),
            format!("[{}>]      3MB/2MB", "=".repeat(50))
        );
        assert_eq!(bar(5, 0), "      5B/0B");
    }
}
