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
}

impl Real for f32 {
    #[inline(always)]
    fn lit(x: f64) -> Self {
        x as f32
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
}
