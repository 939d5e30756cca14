//! Small shared helpers: atomic file writes ([`atomic_write`],
//! [`atomic_write_bytes`], from the model crate's `util`) and the size of
//! the thread pool ([`set_threads`]).

pub use twotower_model::util::*;

/// Sizes rayon's global pool to `threads` (0 = the number of CPUs), the one
/// source of parallelism: matrixmultiply's own GEMM pool is pinned to one
/// thread (unless `MATMUL_NUM_THREADS` is set), and products are split over
/// rayon where that pays (`twotower::linalg`), so the towers can run side by
/// side without oversubscribing the cores. A second call in the same process
/// leaves the pool as the first sized it. Shared by the CLI and the Python
/// binding, so both train with the same parallel set-up.
pub fn set_threads(threads: usize) {
    let n = if threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        threads
    };
    if std::env::var_os("MATMUL_NUM_THREADS").is_none() {
        std::env::set_var("MATMUL_NUM_THREADS", "1");
    }
    // Ignore "already initialised" (a second call in the same process).
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
}
