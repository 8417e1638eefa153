//! The async runtime `synod server` and `synod bench` run on.

use anyhow::{Context, Result};

/// A tokio runtime of `threads` workers, or with 0 one that runs everything on the calling
/// thread: on this 2-core machine one thread spent less CPU per request than a worker per core,
/// in the server and in the load generator alike (docs/performance.md).
pub fn build(threads: usize) -> Result<tokio::runtime::Runtime> {
    match threads {
        0 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    }
    .context("cannot start the async runtime")
}
