//! The low-speed limit: a response body that arrives at under `limit` bytes per second,
//! averaged over `time`, is given up (curl's `--speed-limit`/`--speed-time`), so a server that
//! trickles cannot hold a pull for ever while still sending a byte often enough to beat the
//! read timeout.
//!
//! Only the time spent waiting for the server counts: a reader that is slow itself (an unpack
//! catching up, a full pipe) never trips it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Response;

/// Why a body read stopped.
#[derive(Debug)]
pub(crate) enum ChunkError {
    Http(reqwest::Error),
    /// Under the limit for a whole window.
    Stalled {
        limit: u64,
        seconds: u64,
    },
}

/// The limit and what one body has done in the current window.
#[derive(Debug, Clone)]
pub(crate) struct LowSpeed {
    limit: u64,
    window: Duration,
    waited: Duration,
    bytes: u64,
}

impl LowSpeed {
    /// `limit` bytes/s over `window`; either zero disables it.
    pub(crate) fn new(limit: u64, window: Duration) -> LowSpeed {
        LowSpeed {
            limit,
            window,
            waited: Duration::ZERO,
            bytes: 0,
        }
    }

    fn enabled(&self) -> bool {
        self.limit > 0 && !self.window.is_zero()
    }

    /// The next chunk of `resp`, or [`ChunkError::Stalled`].
    pub(crate) async fn chunk(&mut self, resp: &mut Response) -> Result<Option<Bytes>, ChunkError> {
        if !self.enabled() {
            return resp.chunk().await.map_err(ChunkError::Http);
        }
        loop {
            let left = self.window.saturating_sub(self.waited);
            let start = Instant::now();
            // `chunk` is cancel-safe: a chunk not yet returned stays in the body.
            let got = tokio::time::timeout(left, resp.chunk()).await;
            self.waited += start.elapsed();
            match got {
                Ok(Ok(Some(chunk))) => {
                    self.bytes += chunk.len() as u64;
                    self.check()?;
                    return Ok(Some(chunk));
                }
                Ok(Ok(None)) => return Ok(None),
                Ok(Err(e)) => return Err(ChunkError::Http(e)),
                Err(_) => {
                    self.waited = self.waited.max(self.window);
                    self.check()?;
                }
            }
        }
    }

    /// At the end of a window: too few bytes is a stall, else a new window starts.
    fn check(&mut self) -> Result<(), ChunkError> {
        if self.waited < self.window {
            return Ok(());
        }
        let needed = (self.limit as f64 * self.window.as_secs_f64()) as u64;
        if self.bytes < needed {
            return Err(ChunkError::Stalled {
                limit: self.limit,
                seconds: self.window.as_secs().max(1),
            });
        }
        self.waited = Duration::ZERO;
        self.bytes = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_under_the_limit_is_a_stall() {
        let mut s = LowSpeed::new(100, Duration::from_secs(2));
        s.bytes = 150;
        s.waited = Duration::from_secs(1);
        assert!(s.check().is_ok(), "the window is not over yet");
        s.waited = Duration::from_secs(2);
        assert!(matches!(
            s.check(),
            Err(ChunkError::Stalled {
                limit: 100,
                seconds: 2
            })
        ));
        s.bytes = 200;
        assert!(s.check().is_ok());
        assert_eq!((s.bytes, s.waited), (0, Duration::ZERO), "a new window");
        assert!(!LowSpeed::new(0, Duration::from_secs(1)).enabled());
        assert!(!LowSpeed::new(1, Duration::ZERO).enabled());
    }
}
