//! The async runtime the registry client runs on. strata is synchronous; the flows that talk
//! to a registry (pull, push, login) start one of these at their edge and block on it.

/// A multi-threaded runtime with two workers: enough to keep several downloads moving while
/// other threads unpack (the CPU work of a pull is decompression, not networking).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("strata-net")
        .enable_all()
        .build()
}
