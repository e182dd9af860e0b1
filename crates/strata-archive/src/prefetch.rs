//! Warming the page cache ahead of a reader that reads many files one after the other, in an
//! order known in advance (a layer rebuilt from its tar split).
//!
//! Read one at a time, a cold tree of small files costs a disk round trip per inode and per
//! file; a few threads that open the next files and ask for their data
//! (`POSIX_FADV_WILLNEED`, which starts the reads and returns) keep several requests in
//! flight, and the reader then finds the data cached. They stay at most [`AHEAD`] files in
//! front of the reader, so a big layer does not push its own beginning out of the cache, and
//! stop when the reader is done. Nothing here is needed for correctness: a file the
//! prefetchers miss (or cannot open) is simply read cold.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rustix::fs::{Advice, OFlags};

/// How many files the prefetchers may be in front of the reader.
const AHEAD: usize = 512;
/// Threads opening files and starting their reads.
const WORKERS: usize = 8;

/// The reader's side: how far it got.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    consumed: AtomicUsize,
    done: AtomicBool,
}

impl Progress {
    /// The reader finished one more file of the order.
    pub(crate) fn advance(&self) {
        self.consumed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs `read` while threads prefetch `names` (paths inside `root`, in the order `read` will
/// read them; `read` calls [`Progress::advance`] after each).
pub(crate) fn with_prefetch<T>(
    root: &OwnedFd,
    names: impl Iterator<Item = Vec<u8>> + Send,
    read: impl FnOnce(&Progress) -> T,
) -> T {
    let progress = Progress::default();
    thread::scope(|s| {
        let (tx, rx) = sync_channel::<Vec<u8>>(WORKERS * 2);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..WORKERS {
            let rx = Arc::clone(&rx);
            s.spawn(move || warm(root, &rx));
        }
        let progress = &progress;
        s.spawn(move || {
            for (i, name) in names.enumerate() {
                while i > progress.consumed.load(Ordering::Relaxed) + AHEAD {
                    if progress.done.load(Ordering::Relaxed) {
                        return;
                    }
                    thread::sleep(Duration::from_millis(1));
                }
                if progress.done.load(Ordering::Relaxed) || tx.send(name).is_err() {
                    return;
                }
            }
        });
        let out = read(progress);
        progress.done.store(true, Ordering::Relaxed);
        out
    })
}

/// A worker: open each file it is handed and start reading all of it.
fn warm(root: &OwnedFd, rx: &Mutex<Receiver<Vec<u8>>>) {
    loop {
        let name = match rx.lock() {
            Ok(rx) => match rx.recv() {
                Ok(name) => name,
                Err(_) => return,
            },
            Err(_) => return,
        };
        if let Ok(fd) = crate::sys::openat2_in_root(
            root.as_fd(),
            &name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        ) {
            let _ = rustix::fs::fadvise(&fd, 0, None, Advice::WillNeed);
        }
    }
}
