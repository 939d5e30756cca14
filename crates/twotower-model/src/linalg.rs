//! Matrix products `C ← α·A·B + β·C` on ndarray arrays of any strides,
//! through `matrixmultiply` ([`ndarray::linalg::general_mat_mul`]).
//!
//! Threading is explicit: the CLI pins `matrixmultiply`'s own pool to one
//! thread (`MATMUL_NUM_THREADS=1`) and parallelism comes from rayon one
//! level up — the user and item towers run side by side, the loss splits its
//! rows over the threads ([`crate::loss`]), evaluation splits users — so the
//! cores are never oversubscribed. (The `gemm` crate measured no faster on
//! these shapes and allocates more per call.) A program using this library
//! with a rayon pool of more than one thread should set
//! `MATMUL_NUM_THREADS=1` before its first product, as the CLI does; without
//! it results are the same, only the cores are oversubscribed.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayBase, Data, DataMut, Ix2};

use crate::real::Real;

/// `C ← α·A·B + β·C` on the calling thread (on `matrixmultiply`'s pool when
/// `MATMUL_NUM_THREADS` > 1).
///
/// # Shapes
/// `a`: `[m × k]`, `b`: `[k × n]`, `c`: `[m × n]`; any strides.
///
/// # Panics
/// On a shape mismatch.
pub fn gemm<F, SA, SB, SC>(
    alpha: F,
    a: &ArrayBase<SA, Ix2>,
    b: &ArrayBase<SB, Ix2>,
    beta: F,
    c: &mut ArrayBase<SC, Ix2>,
) where
    F: Real,
    SA: Data<Elem = F>,
    SB: Data<Elem = F>,
    SC: DataMut<Elem = F>,
{
    general_mat_mul(alpha, a, b, beta, c);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr2, Array2};

    #[test]
    fn gemm_by_hand_with_transposed_operand() {
        // 2·[1 2; 3 4]·[5; 6] + 10·[1; 1] = 2·[17; 39] + [10; 10] = [44; 88]
        let a = arr2(&[[1.0f64, 2.0], [3.0, 4.0]]);
        let b = arr2(&[[5.0f64], [6.0]]);
        let mut c = arr2(&[[1.0f64], [1.0]]);
        gemm(2.0, &a, &b, 10.0, &mut c);
        assert_eq!(c, arr2(&[[44.0], [88.0]]));
        // Aᵀ as a strided view: [1 3; 2 4]·[5; 6] = [23; 34]
        let mut c = Array2::<f64>::zeros((2, 1));
        gemm(1.0, &a.t(), &b, 0.0, &mut c);
        assert_eq!(c, arr2(&[[23.0], [34.0]]));
    }
}
