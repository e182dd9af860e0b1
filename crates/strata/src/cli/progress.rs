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

use crate::pull::{LayerState, Progress};

/// How often a terminal display redraws for byte counts alone.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub struct PullDisplay {
    tty: bool,
    state: Mutex<Display>,
}

#[derive(Debug)]
struct Display {
    order: Vec<Digest>,
    lines: HashMap<Digest, Line>,
    /// Lines printed in the redrawn block so far.
    drawn: usize,
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
    pub fn new(tty: bool) -> PullDisplay {
        PullDisplay {
            tty,
            state: Mutex::new(Display {
                order: Vec::new(),
                lines: HashMap::new(),
                drawn: 0,
                last_draw: Instant::now(),
            }),
        }
    }

    /// Draws the final state of every line (a terminal display may be behind).
    pub fn finish(&self) {
        if let Ok(mut d) = self.state.lock()
            && self.tty
        {
            d.redraw();
        }
    }
}

impl Progress for PullDisplay {
    fn resolved(&self, reference: &Reference, digest: &Digest) {
        let object = reference
            .tag()
            .map_or_else(|| digest.to_string(), str::to_owned);
        // Docker names the repository by its path, without the registry.
        println!("{object}: Pulling from {}", reference.repository());
    }

    fn layer(&self, digest: &Digest, state: LayerState, current: u64, total: u64) {
        let Ok(mut d) = self.state.lock() else {
            return;
        };
        let now = Instant::now();
        let line = d.lines.entry(digest.clone()).or_insert_with(|| Line {
            state,
            current,
            total,
            started: None,
        });
        let changed = line.state != state;
        if state == LayerState::Downloading && line.started.is_none() {
            line.started = Some((now, current));
        }
        line.state = state;
        line.current = current;
        line.total = total;
        let text = line.text();
        if !d.order.contains(digest) {
            d.order.push(digest.clone());
            if !self.tty {
                print_plain(digest, &text);
            }
        } else if !self.tty && changed && state != LayerState::Downloading {
            print_plain(digest, &text);
        }
        if self.tty && (changed || now.duration_since(d.last_draw) >= REDRAW_EVERY) {
            d.redraw();
        }
    }
}

fn print_plain(digest: &Digest, text: &str) {
    println!("{}: {text}", short(digest));
}

fn short(d: &Digest) -> &str {
    d.hex().get(..12).unwrap_or(d.hex())
}

impl Display {
    fn redraw(&mut self) {
        let mut out = io::stdout().lock();
        let mut buf = String::new();
        if self.drawn > 0 {
            buf.push_str(&format!("\x1b[{}A", self.drawn));
        }
        for digest in &self.order {
            if let Some(line) = self.lines.get(digest) {
                buf.push_str(&format!("\x1b[2K{}: {}\n", short(digest), line.text()));
            }
        }
        // A closed stdout is the pull's business, not the display's.
        let _ = out.write_all(buf.as_bytes()).and_then(|()| out.flush());
        self.drawn = self.order.len();
        self.last_draw = Instant::now();
    }
}

impl Line {
    fn text(&self) -> String {
        match self.state {
            LayerState::Waiting => "Waiting".to_owned(),
            LayerState::Downloading => {
                let mut s = format!(
                    "Downloading {} {}/{}",
                    bar(self.current, self.total),
                    human_size(self.current),
                    human_size(self.total)
                );
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

/// Docker's 50-column bar: `[=====>      ]`.
fn bar(current: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    let filled = (current.min(total) * WIDTH).checked_div(total).unwrap_or(0) as usize;
    let mut s = String::with_capacity(WIDTH as usize + 2);
    s.push('[');
    s.push_str(&"=".repeat(filled.saturating_sub(1)));
    if filled > 0 {
        s.push(if filled as u64 == WIDTH { '=' } else { '>' });
    }
    s.push_str(&" ".repeat(WIDTH as usize - filled));
    s.push(']');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_fill_like_dockers() {
        assert_eq!(bar(0, 100), format!("[{}]", " ".repeat(50)));
        assert_eq!(
            bar(50, 100),
            format!("[{}>{}]", "=".repeat(24), " ".repeat(25))
        );
        assert_eq!(bar(100, 100), format!("[{}]", "=".repeat(50)));
        assert_eq!(bar(5, 0), format!("[{}]", " ".repeat(50)));
    }
}
