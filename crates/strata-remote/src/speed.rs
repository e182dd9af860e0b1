//! The low-speed limit: a response body that arrives at under `limit` bytes per second,
//! averaged over `time`, is given up (curl's `--speed-limit`/`--speed-time`), so a server that
//! trickles cannot hold a pull for ever while still sending a byte often enough to beat the
//! read timeout.
//!
//! Only the time spent waiting for the server counts: a reader that is slow itself (an unpack
//! catching up, a full pipe) never trips it.
//!
//! Uploads get the same limit through [`UploadWatch`]: the HTTP client pulls a request body as
//! the connection takes it, so the time a body waits to be pulled again is time spent waiting
//! for the server, and a registry that stops reading is given up instead of holding a push
//! until the read timeout.

use std::sync::{Arc, Mutex};
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

/// The low-speed limit over one request body at a time (see the module doc).
#[derive(Debug, Clone)]
pub(crate) struct UploadWatch {
    limit: u64,
    window: Duration,
    state: Arc<Mutex<WatchState>>,
}

#[derive(Debug)]
struct WatchState {
    speed: LowSpeed,
    /// Since when the body has waited to be pulled; `None` while it reads its own data.
    waiting_since: Option<Instant>,
    /// The body is all sent: the answer's wait is the read timeout's business.
    done: bool,
}

/// How often a watched upload is looked at.
const WATCH_TICK: Duration = Duration::from_millis(250);

impl UploadWatch {
    /// `limit` bytes/s over `window`; either zero disables it.
    pub(crate) fn new(limit: u64, window: Duration) -> UploadWatch {
        UploadWatch {
            limit,
            window,
            state: Arc::new(Mutex::new(WatchState {
                speed: LowSpeed::new(limit, window),
                waiting_since: Some(Instant::now()),
                done: false,
            })),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut WatchState) -> T) -> Option<T> {
        self.state.lock().ok().map(|mut st| f(&mut st))
    }

    /// A new body starts (each send of a request makes its body anew).
    pub(crate) fn restart(&self) {
        let (limit, window) = (self.limit, self.window);
        self.with(|st| {
            st.speed = LowSpeed::new(limit, window);
            st.waiting_since = Some(Instant::now());
            st.done = false;
        });
    }

    /// The body is pulled again: its wait for the server ends.
    pub(crate) fn pulled(&self) {
        self.with(|st| {
            if let Some(t) = st.waiting_since.take() {
                st.speed.waited += t.elapsed();
            }
        });
    }

    /// The body handed over `n` bytes and waits to be pulled again.
    pub(crate) fn sent(&self, n: usize) {
        self.with(|st| {
            st.speed.bytes += n as u64;
            st.waiting_since = Some(Instant::now());
        });
    }

    /// The body is all sent.
    pub(crate) fn finished(&self) {
        self.with(|st| st.done = true);
    }

    /// Resolves with (limit, seconds) once the body has stayed under the limit for a whole
    /// window; never when the limit is off.
    pub(crate) async fn stalled(&self) -> (u64, u64) {
        if self.limit == 0 || self.window.is_zero() {
            return std::future::pending().await;
        }
        loop {
            tokio::time::sleep(WATCH_TICK).await;
            let verdict = self.with(|st| {
                if st.done {
                    return Ok(());
                }
                if let Some(t) = st.waiting_since.as_mut() {
                    st.speed.waited += t.elapsed();
                    *t = Instant::now();
                }
                st.speed.check()
            });
            if let Some(Err(ChunkError::Stalled { limit, seconds })) = verdict {
                return (limit, seconds);
            }
        }
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

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    }

    #[test]
    fn an_upload_the_server_stops_taking_stalls_after_a_window() {
        let w = UploadWatch::new(100, Duration::from_secs(1));
        w.pulled();
        w.sent(50);
        // Never pulled again: the server stopped reading.
        let start = Instant::now();
        assert_eq!(rt().block_on(w.stalled()), (100, 1));
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(3),
            "{took:?}"
        );
    }

    #[test]
    fn time_spent_reading_the_data_or_waiting_for_the_answer_does_not_count() {
        let w = UploadWatch::new(100, Duration::from_secs(1));
        w.pulled(); // reading its own data from here on
        let limit = Duration::from_millis(2500);
        let stalled = rt().block_on(async { tokio::time::timeout(limit, w.stalled()).await });
        assert!(stalled.is_err(), "the body's own reads never trip it");
        w.sent(10);
        w.finished();
        let stalled = rt().block_on(async { tokio::time::timeout(limit, w.stalled()).await });
        assert!(stalled.is_err(), "a body all sent never trips it");
    }
}
