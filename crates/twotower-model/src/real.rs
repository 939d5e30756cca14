//! The scalar type the hand-written math is generic over.
//!
//! Training runs in `f32`; the gradient checks (GRADIENTS.md: central finite
//! differences, relative error < 1e-4) run the *same* code in `f64`, so the
//! checks test the real implementation rather than a copy of it.

use std::fmt::Debug;
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

use ndarray::{LinalgScalar, ScalarOperand};
use num_traits::{Float, FromPrimitive};

/// A floating-point scalar usable by every operation of this crate:
/// implemented for `f32` (training) and `f64` (gradient checks).
pub trait Real:
    LinalgScalar
    + ScalarOperand
    + Float
    + FromPrimitive
    + Sum
    + Default
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Send
    + Sync
    + Debug
    + 'static
{
    /// Converts an `f64` constant (rounding to nearest for `f32`).
    fn lit(x: f64) -> Self;
    /// Widens to `f64` (exact for both implementations).
    fn as_f64(self) -> f64;
    /// Narrows to `f32` (rounding to nearest for `f64`), for inference output.
    fn as_f32(self) -> f32;

    /// `x[j] ← exp(x[j] − shift)` for every element, returning `Σ_j x[j]`.
    /// Inputs must satisfy `x[j] ≤ shift` (a softmax row minus its max);
    /// `−∞` maps to exactly 0.
    ///
    /// `f64` uses the libm `exp`; `f32` a branch-free, vectorizable
    /// Cephes-style `expf` (range reduction by `ln 2`, degree-5 polynomial,
    /// relative error < 2e-7; arguments below −87 flush to 0, i.e. terms
    /// < 2e-38 of a sum ≥ 1 are dropped).
    fn exp_shift_sum(x: &mut [Self], shift: Self) -> Self;

    /// `max_j x[j]` (−∞ for an empty slice), vectorizable.
    fn max_of(x: &[Self]) -> Self;
}

/// Lanes of the manual vectorization (partial accumulators).
const LANES: usize = 8;

#[inline(always)]
fn expf_poly(x: f32) -> f32 {
    // exp(x) = 2^n · exp(r), n = round(x / ln 2), r = x − n ln 2 (two-part ln 2).
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    // Adding 1.5·2^23 rounds to nearest and leaves n in the low mantissa bits
    // (no floor call, so the loop vectorizes on any x86-64).
    const ROUND: f32 = 12_582_912.0;
    let xc = if x < -87.0 { -87.0 } else { x }; // NaN stays NaN
    let k = xc * LOG2E + ROUND;
    let n = k - ROUND;
    let n_i = (k.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let r = xc - n * C1 - n * C2;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n by building the exponent bits (n ∈ [−126, 0] here).
    let scale = f32::from_bits((n_i.wrapping_add(127) as u32) << 23);
    if x < -87.0 {
        0.0
    } else {
        y * scale
    }
}

#[inline(always)]
fn exp_shift_sum_f32(x: &mut [f32], shift: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut chunks = x.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for k in 0..LANES {
            let e = expf_poly(c[k] - shift);
            c[k] = e;
            acc[k] += e;
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for v in chunks.into_remainder() {
        let e = expf_poly(*v - shift);
        *v = e;
        sum += e;
    }
    sum
}

/// [`exp_shift_sum_f32`] with AVX2 + FMA intrinsics (8 lanes); the same
/// algorithm, with fused multiply-adds. NaN inputs stay NaN (so a broken
/// score matrix gives a non-finite loss, never a silently finite one).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_shift_sum_f32_avx2(x: &mut [f32], shift: f32) -> f32 {
    use std::arch::x86_64::*;
    let n = x.len();
    let ptr = x.as_mut_ptr();
    let vshift = _mm256_set1_ps(shift);
    let lo = _mm256_set1_ps(-87.0);
    let log2e = _mm256_set1_ps(std::f32::consts::LOG2_E);
    let round = _mm256_set1_ps(12_582_912.0);
    let c1 = _mm256_set1_ps(0.693_359_4);
    let c2 = _mm256_set1_ps(-2.121_944_4e-4);
    let one = _mm256_set1_ps(1.0);
    let coef = [
        1.398_199_9e-3f32,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ];
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, so the 8 lanes at ptr + i are inside `x`.
        let p = ptr.add(i);
        let v = _mm256_sub_ps(_mm256_loadu_ps(p), vshift);
        let xc = _mm256_max_ps(lo, v); // NaN in v → NaN
        let k = _mm256_fmadd_ps(xc, log2e, round);
        let nf = _mm256_sub_ps(k, round);
        let ni = _mm256_sub_epi32(_mm256_castps_si256(k), _mm256_set1_epi32(0x4B40_0000));
        let r = _mm256_fnmadd_ps(nf, c1, xc);
        let r = _mm256_fnmadd_ps(nf, c2, r);
        let mut q = _mm256_set1_ps(1.987_569_1e-4);
        for c in coef {
            q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(c));
        }
        let y = _mm256_add_ps(_mm256_fmadd_ps(q, _mm256_mul_ps(r, r), r), one);
        let scale = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
            ni,
            _mm256_set1_epi32(127),
        )));
        // Keep lanes with !(v < −87) (NaN kept); the others are exactly 0.
        let keep = _mm256_cmp_ps::<_CMP_NLT_UQ>(v, lo);
        let e = _mm256_and_ps(_mm256_mul_ps(y, scale), keep);
        _mm256_storeu_ps(p, e);
        acc = _mm256_add_ps(acc, e);
        i += 8;
    }
    let mut lanes = [0.0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), acc);
    let mut sum: f32 = lanes.iter().sum();
    for v in &mut x[i..] {
        let e = expf_poly(*v - shift);
        *v = e;
        sum += e;
    }
    sum
}

impl Real for f32 {
    #[inline(always)]
    fn lit(x: f64) -> Self {
        x as f32
    }
    fn exp_shift_sum(x: &mut [Self], shift: Self) -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: both target features were just detected on this CPU.
            return unsafe { exp_shift_sum_f32_avx2(x, shift) };
        }
        exp_shift_sum_f32(x, shift)
    }
    fn max_of(x: &[Self]) -> Self {
        let mut acc = [f32::NEG_INFINITY; LANES];
        let mut chunks = x.chunks_exact(LANES);
        for c in &mut chunks {
            for k in 0..LANES {
                acc[k] = if c[k] > acc[k] { c[k] } else { acc[k] };
            }
        }
        let m = chunks
            .remainder()
            .iter()
            .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
        acc.iter().fold(m, |m, &v| if v > m { v } else { m })
    }
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn as_f32(self) -> f32 {
        self
    }
}

impl Real for f64 {
    #[inline(always)]
    fn lit(x: f64) -> Self {
        x
    }
    fn exp_shift_sum(x: &mut [Self], shift: Self) -> Self {
        let mut sum = 0.0;
        for v in x.iter_mut() {
            let e = (*v - shift).exp();
            *v = e;
            sum += e;
        }
        sum
    }
    fn max_of(x: &[Self]) -> Self {
        x.iter()
            .fold(f64::NEG_INFINITY, |m, &v| if v > m { v } else { m })
    }
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn as_f32(self) -> f32 {
        self as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip() {
        assert_eq!(<f32 as Real>::lit(0.1), 0.1f32);
        assert_eq!(<f64 as Real>::lit(0.1), 0.1f64);
        assert_eq!(0.5f32.as_f64(), 0.5);
        assert_eq!(0.1f64.as_f32(), 0.1f32);
    }

    #[test]
    fn fast_expf_is_accurate_and_flushes_minus_infinity() {
        // Every 1e-3 step of [−100, 0] (with the shift applied) against f64 exp.
        let mut xs: Vec<f32> = (0..=100_000).map(|i| -(i as f32) * 1e-3 + 1.5).collect();
        xs.push(f32::NEG_INFINITY);
        let orig = xs.clone();
        let sum = f32::exp_shift_sum(&mut xs, 1.5);
        let mut exact_sum = 0.0f64;
        for (&x, &e) in orig.iter().zip(&xs) {
            let want = ((x as f64) - 1.5).exp();
            exact_sum += if x - 1.5 < -87.0 { 0.0 } else { want };
            if x - 1.5 >= -87.0 {
                assert!(
                    ((e as f64) - want).abs() <= 2e-7 * want,
                    "exp({}) = {e} vs {want}",
                    x - 1.5
                );
            } else {
                assert_eq!(e, 0.0);
            }
        }
        assert_eq!(*xs.last().unwrap(), 0.0);
        assert!(((sum as f64) - exact_sum).abs() < 1e-5 * exact_sum);
        // The portable path gives the same values as the dispatched one.
        let mut ys = orig.clone();
        let sum2 = exp_shift_sum_f32(&mut ys, 1.5);
        assert!((sum2 - sum).abs() <= 1e-6 * sum);
        for (a, b) in ys.iter().zip(&xs) {
            assert!((a - b).abs() <= 4e-7 * b.abs(), "{a} vs {b}");
        }
        // NaN propagates (a broken score row must not give a finite loss).
        let mut nan = [0.0f32, f32::NAN, -1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0];
        assert!(f32::exp_shift_sum(&mut nan.clone(), 0.0).is_nan());
        assert!(exp_shift_sum_f32(&mut nan, 0.0).is_nan());
        // exp(0) = 1 exactly, exp(−ln 2) = 0.5
        let mut v = [0.0f32, -std::f32::consts::LN_2];
        f32::exp_shift_sum(&mut v, 0.0);
        assert_eq!(v[0], 1.0);
        assert!((v[1] - 0.5).abs() < 1e-7);
    }

    #[test]
    fn max_of_matches_fold() {
        let v: Vec<f32> = (0..37).map(|i| ((i * 7919) % 101) as f32 - 50.0).collect();
        assert_eq!(f32::max_of(&v), 50.0);
        assert_eq!(f64::max_of(&[-1.0, f64::NEG_INFINITY, -0.5]), -0.5);
        assert_eq!(f32::max_of(&[]), f32::NEG_INFINITY);
    }
}
