//! Small shared helpers: atomic file writes ([`atomic_write`],
//! [`atomic_write_bytes`], from the model crate's `util`) and PNG images.

use std::io;
use std::path::Path;

pub use twotower_model::util::*;

/// Writes an 8-bit RGB image (`rgb`: `width × height × 3` bytes, row-major)
/// as a PNG, atomically (see [`atomic_write`]).
///
/// # Errors
/// The I/O error, or the encoder's error wrapped as [`io::Error::other`].
pub fn atomic_write_rgb_png(path: &Path, width: u32, height: u32, rgb: &[u8]) -> io::Result<()> {
    atomic_write(path, |wr| {
        let mut enc = png::Encoder::new(wr, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(io::Error::other)?;
        writer.write_image_data(rgb).map_err(io::Error::other)?;
        writer.finish().map_err(io::Error::other)
    })
}

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
