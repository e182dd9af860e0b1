//! The decompression pipeline: the caller's thread reads and decompresses the layer into
//! large chunks, a hashing thread computes the diffID over them, and the unpacking thread parses
//! the tar straight out of the same chunks (file data is written from them without another
//! copy).
//!
//! ```text
//!  caller's thread            hash thread
//!  read + decompress ──Arc──▶ sha256(chunk)        ──▶ diffID
//!         │
//!         └────────Arc──────▶ unpack thread: tar headers, write(2) from the chunk
//! ```
//!
//! The channels are bounded, so a slow disk slows decompression instead of filling memory.
//! A failure on the producing side (read, decompression, the uncompressed-size limit) travels
//! down the channel in order, so the unpacker reports it naming the entry it was reading.

use std::cell::Cell;
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender};

/// Decompressed bytes are handed on in chunks of this size.
pub(crate) const CHUNK: usize = 1 << 20;
/// Chunks in flight per channel (memory bound: about `QUEUE * CHUNK` per channel).
pub(crate) const QUEUE: usize = 8;

pub(crate) type Chunk = Arc<Vec<u8>>;

/// A failure of the producing side, delivered in stream order.
#[derive(Debug)]
pub(crate) enum StreamError {
    /// The caller's reader failed.
    Read(io::Error),
    /// The decompressor rejected the data.
    Decompress(io::Error),
    /// More decompressed bytes than the limit allows.
    TooLarge { max: u64 },
}

/// A reader that counts what passes through it and remembers whether the underlying reader
/// (rather than a decoder on top of it) failed. The counters are cells the caller keeps, so
/// they can be read while a decoder owns the reader.
#[derive(Debug)]
pub(crate) struct CountingReader<'a, R> {
    inner: R,
    count: &'a Cell<u64>,
    failed: &'a Cell<bool>,
}

impl<'a, R: Read> CountingReader<'a, R> {
    pub(crate) fn new(inner: R, count: &'a Cell<u64>, failed: &'a Cell<bool>) -> Self {
        CountingReader {
            inner,
            count,
            failed,
        }
    }
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.count.set(self.count.get() + n as u64);
                Ok(n)
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.failed.set(true);
                }
                Err(e)
            }
        }
    }
}

/// Reads `decoder` to its end in [`CHUNK`]s, sending each to the hasher and the unpacker.
/// Returns the number of decompressed bytes, or stops early (returning what was produced so
/// far) when the unpacker went away or a failure was sent down the stream.
///
/// `source_failed` tells, after a decoder error, whether the caller's reader caused it.
pub(crate) fn produce(
    decoder: &mut dyn Read,
    source_failed: &dyn Fn() -> bool,
    max_bytes: u64,
    to_unpack: &SyncSender<Result<Chunk, StreamError>>,
    to_hash: &SyncSender<Chunk>,
) -> u64 {
    let mut total = 0u64;
    loop {
        let mut buf = vec![0u8; CHUNK];
        let mut filled = 0;
        let mut failure = None;
        while filled < buf.len() {
            match decoder.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failure = Some(if source_failed() {
                        StreamError::Read(e)
                    } else {
                        StreamError::Decompress(e)
                    });
                    break;
                }
            }
        }
        buf.truncate(filled);
        if total + filled as u64 > max_bytes {
            // Hand on what fits, so the unpacker names the entry that crosses the limit.
            buf.truncate((max_bytes - total) as usize);
            failure = Some(StreamError::TooLarge { max: max_bytes });
        }
        let end = buf.len() < CHUNK || failure.is_some();
        if !buf.is_empty() {
            total += buf.len() as u64;
            let chunk = Arc::new(buf);
            // The hasher only stops when we drop its sender; the unpacker may stop early.
            if to_hash.send(Arc::clone(&chunk)).is_err() || to_unpack.send(Ok(chunk)).is_err() {
                return total;
            }
        }
        if let Some(f) = failure {
            let _ = to_unpack.send(Err(f));
            return total;
        }
        if end {
            return total;
        }
    }
}

/// The unpacking side: bytes out of the chunks, in order, without copying where possible.
#[derive(Debug)]
pub(crate) struct ChunkReader {
    rx: Receiver<Result<Chunk, StreamError>>,
    chunk: Chunk,
    pos: usize,
    /// Bytes consumed so far.
    offset: u64,
    eof: bool,
}

impl ChunkReader {
    pub(crate) fn new(rx: Receiver<Result<Chunk, StreamError>>) -> Self {
        ChunkReader {
            rx,
            chunk: Arc::new(Vec::new()),
            pos: 0,
            offset: 0,
            eof: false,
        }
    }

    /// Bytes consumed so far: the offset in the decompressed stream.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Makes sure unread bytes are buffered; false at the end of the stream.
    fn fill(&mut self) -> Result<bool, StreamError> {
        while self.pos == self.chunk.len() {
            if self.eof {
                return Ok(false);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.eof = true;
                    return Err(e);
                }
                Err(_) => {
                    self.eof = true;
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Up to `max` buffered bytes (at least one unless at the end of the stream). Call
    /// [`consume`](Self::consume) with how many were used.
    pub(crate) fn slice(&mut self, max: u64) -> Result<&[u8], StreamError> {
        if max == 0 || !self.fill()? {
            return Ok(&[]);
        }
        let n = (self.chunk.len() - self.pos).min(usize::try_from(max).unwrap_or(usize::MAX));
        Ok(&self.chunk[self.pos..self.pos + n])
    }

    pub(crate) fn consume(&mut self, n: usize) {
        debug_assert!(self.pos + n <= self.chunk.len());
        self.pos += n;
        self.offset += n as u64;
    }

    /// Fills `buf` as far as the stream goes; returns how many bytes were read.
    pub(crate) fn read_full(&mut self, buf: &mut [u8]) -> Result<usize, StreamError> {
        let mut done = 0;
        while done < buf.len() {
            let s = self.slice((buf.len() - done) as u64)?;
            if s.is_empty() {
                break;
            }
            let n = s.len();
            buf[done..done + n].copy_from_slice(s);
            self.consume(n);
            done += n;
        }
        Ok(done)
    }

    /// Skips up to `n` bytes; returns how many were skipped (fewer at the end of the stream).
    pub(crate) fn skip(&mut self, n: u64) -> Result<u64, StreamError> {
        let mut done = 0;
        while done < n {
            let len = self.slice(n - done)?.len();
            if len == 0 {
                break;
            }
            self.consume(len);
            done += len as u64;
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;

    fn run(data: &[u8], max: u64) -> (Vec<u8>, Option<StreamError>, Vec<u8>) {
        let (tx, rx) = sync_channel(1000);
        let (htx, hrx) = sync_channel(1000);
        let mut src = data;
        produce(&mut src, &|| false, max, &tx, &htx);
        drop((tx, htx));
        let hashed: Vec<u8> = hrx.iter().flat_map(|c| c.to_vec()).collect();
        let mut r = ChunkReader::new(rx);
        let mut out = Vec::new();
        loop {
            match r.slice(100_000) {
                Ok([]) => return (out, None, hashed),
                Ok(s) => {
                    let n = s.len();
                    out.extend_from_slice(s);
                    r.consume(n);
                }
                Err(e) => return (out, Some(e), hashed),
            }
        }
    }

    #[test]
    fn passes_everything_through_in_order() {
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 251) as u8).collect();
        let (out, err, hashed) = run(&data, u64::MAX);
        assert!(err.is_none());
        assert_eq!(out, data);
        assert_eq!(hashed, data);
    }

    #[test]
    fn stops_at_the_limit_after_handing_on_what_fits() {
        let data = vec![7u8; 5000];
        let (out, err, _) = run(&data, 4096);
        assert_eq!(out.len(), 4096);
        assert!(matches!(err, Some(StreamError::TooLarge { max: 4096 })));
    }

    #[test]
    fn read_full_and_skip_cross_chunks() {
        let data: Vec<u8> = (0..CHUNK + 1000).map(|i| (i % 256) as u8).collect();
        let (tx, rx) = sync_channel(10);
        let (htx, _hrx) = sync_channel(10);
        let mut src = &data[..];
        produce(&mut src, &|| false, u64::MAX, &tx, &htx);
        drop(tx);
        let mut r = ChunkReader::new(rx);
        assert_eq!(r.skip(CHUNK as u64 - 10).ok(), Some(CHUNK as u64 - 10));
        let mut buf = [0u8; 20];
        assert_eq!(r.read_full(&mut buf).ok(), Some(20));
        assert_eq!(&buf[..], &data[CHUNK - 10..CHUNK + 10]);
        assert_eq!(r.skip(10_000).ok(), Some(990));
        assert_eq!(r.offset(), data.len() as u64);
    }
}
