//! Matrix products: `C ← α·A·B + β·C` through `matrixmultiply` (via
//! [`ndarray::linalg::general_mat_mul`]), either on the calling thread
//! ([`gemm`]) or split by output rows over rayon's pool ([`par_gemm`]).
//!
//! Threading is explicit: the CLI pins `matrixmultiply`'s own pool to one
//! thread (`MATMUL_NUM_THREADS=1`) and parallelism comes from rayon, so the
//! user and item towers can run side by side (each product on one thread)
//! while the large score-matrix products of the loss split across all
//! threads, without oversubscribing the cores. Row splitting never splits
//! the inner dimension, so each output element is the same dot product in
//! the same order whatever the thread count: results are bit-identical.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, Axis};

use crate::real::Real;

/// Below this many multiply-adds (`m·k·n`) a product is not split.
const PAR_MIN_MACS: usize = 1 << 21;

/// Smallest row block a split produces.
const MIN_ROWS: usize = 32;

/// `C ← α·A·B + β·C` on the calling thread.
///
/// # Shapes
/// `a`: `[m × k]`, `b`: `[k × n]`, `c`: `[m × n]`; any strides.
///
/// # Panics
/// On a shape mismatch.
pub fn gemm<F: Real>(
    alpha: F,
    a: &ArrayView2<F>,
    b: &ArrayView2<F>,
    beta: F,
    c: &mut ArrayViewMut2<F>,
) {
    general_mat_mul(alpha, a, b, beta, c);
}

/// `C ← α·A·B + β·C` with the rows of `C` (and `A`) split into blocks
/// computed in parallel on rayon's pool (one block per thread, recursively
/// halved with `rayon::join`; no allocation). Small products run on the
/// calling thread.
///
/// # Shapes
/// As [`gemm`].
///
/// # Panics
/// On a shape mismatch.
pub fn par_gemm<F: Real>(
    alpha: F,
    a: &ArrayView2<F>,
    b: &ArrayView2<F>,
    beta: F,
    c: &mut ArrayViewMut2<F>,
) {
    assert_eq!(a.nrows(), c.nrows(), "par_gemm: rows of A and C");
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    let threads = rayon::current_num_threads();
    if threads <= 1 || m * k * n < PAR_MIN_MACS || m < 2 * MIN_ROWS {
        return gemm(alpha, a, b, beta, c);
    }
    let blocks = threads.min(m / MIN_ROWS).max(1);
    split(alpha, a.view(), b, beta, c.view_mut(), blocks);
}

fn split<F: Real>(
    alpha: F,
    a: ArrayView2<F>,
    b: &ArrayView2<F>,
    beta: F,
    mut c: ArrayViewMut2<F>,
    blocks: usize,
) {
    if blocks <= 1 {
        return general_mat_mul(alpha, &a, b, beta, &mut c);
    }
    let left = blocks / 2;
    let mid = a.nrows() * left / blocks;
    let (a0, a1) = a.split_at(Axis(0), mid);
    let (c0, c1) = c.split_at(Axis(0), mid);
    rayon::join(
        || split(alpha, a0, b, beta, c0, left),
        || split(alpha, a1, b, beta, c1, blocks - left),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn par_gemm_equals_gemm_bit_for_bit() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let a = Array2::from_shape_fn((301, 70), |(i, j)| {
            ((i * 31 + j * 7) % 13) as f32 * 0.37 - 2.0
        });
        let b = Array2::from_shape_fn((70, 150), |(i, j)| {
            ((i * 5 + j * 11) % 17) as f32 * 0.21 - 1.5
        });
        let c0 = Array2::from_shape_fn((301, 150), |(i, j)| (i + j) as f32 * 0.01);
        let mut want = c0.clone();
        gemm(0.5, &a.view(), &b.view(), 2.0, &mut want.view_mut());
        let mut got = c0.clone();
        pool.install(|| par_gemm(0.5, &a.view(), &b.view(), 2.0, &mut got.view_mut()));
        assert_eq!(got, want);
        // a transposed operand (strided view), as in dV = dSᵀ U
        let at = a.t().to_owned();
        let mut want = Array2::<f32>::zeros((70, 70));
        gemm(1.0, &at.view(), &a.view(), 0.0, &mut want.view_mut());
        let mut got = Array2::<f32>::zeros((70, 70));
        pool.install(|| par_gemm(1.0, &a.t(), &a.view(), 0.0, &mut got.view_mut()));
        assert_eq!(got, want);
        // by hand: [1 2; 3 4]·[5; 6] = [17; 39]
        let a = ndarray::arr2(&[[1.0f64, 2.0], [3.0, 4.0]]);
        let b = ndarray::arr2(&[[5.0f64], [6.0]]);
        let mut c = Array2::<f64>::zeros((2, 1));
        par_gemm(1.0, &a.view(), &b.view(), 0.0, &mut c.view_mut());
        assert_eq!(c, ndarray::arr2(&[[17.0], [39.0]]));
    }
}
