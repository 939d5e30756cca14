//! Dense layers: linear, ReLU, row-wise L2 normalization (GRADIENTS.md).
//!
//! Every function writes into caller-owned buffers so that a training step
//! allocates nothing; matrix products go through
//! [`ndarray::linalg::general_mat_mul`] (the `matrixmultiply` GEMM, threaded).

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Axis, Zip};
use rand::Rng;

use crate::real::Real;

/// ε of the L2 normalization: `n = max(‖x‖, ε)`.
pub const L2_EPS: f64 = 1e-12;

/// A fully connected layer `Y = X W + b`.
///
/// # Shapes
/// `w`: `[in × out]`, `b`: `[out]`; inputs `X`: `[B × in]`, outputs `[B × out]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Linear<F> {
    /// Weights `[in × out]`.
    pub w: Array2<F>,
    /// Bias `[out]`.
    pub b: Array1<F>,
}

/// The gradient of a [`Linear`] layer, same shapes as the layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearGrad<F> {
    /// `dL/dW`, `[in × out]`.
    pub dw: Array2<F>,
    /// `dL/db`, `[out]`.
    pub db: Array1<F>,
}

impl<F: Real> LinearGrad<F> {
    /// A zero gradient for a layer of `inp → out`.
    pub fn zeros(inp: usize, out: usize) -> Self {
        Self {
            dw: Array2::zeros((inp, out)),
            db: Array1::zeros(out),
        }
    }

    /// Sets every entry to zero.
    pub fn zero(&mut self) {
        self.dw.fill(F::zero());
        self.db.fill(F::zero());
    }
}

impl<F: Real> Linear<F> {
    /// A zero layer `inp → out`.
    pub fn zeros(inp: usize, out: usize) -> Self {
        Self {
            w: Array2::zeros((inp, out)),
            b: Array1::zeros(out),
        }
    }

    /// He (Kaiming) uniform initialization for a layer followed by ReLU:
    /// `W ~ U(−a, a)`, `a = √(6 / in)`; bias 0 (He et al. 2015).
    pub fn he_uniform(inp: usize, out: usize, rng: &mut impl Rng) -> Self {
        Self::uniform(inp, out, (6.0 / inp as f64).sqrt(), rng)
    }

    /// Glorot (Xavier) uniform initialization: `W ~ U(−a, a)`,
    /// `a = √(6 / (in + out))`; bias 0 (Glorot & Bengio 2010).
    pub fn glorot_uniform(inp: usize, out: usize, rng: &mut impl Rng) -> Self {
        Self::uniform(inp, out, (6.0 / (inp + out) as f64).sqrt(), rng)
    }

    fn uniform(inp: usize, out: usize, a: f64, rng: &mut impl Rng) -> Self {
        let w = Array2::from_shape_simple_fn((inp, out), || F::lit(rng.gen_range(-a..a)));
        Self {
            w,
            b: Array1::zeros(out),
        }
    }

    /// Input width.
    pub fn in_dim(&self) -> usize {
        self.w.nrows()
    }

    /// Output width.
    pub fn out_dim(&self) -> usize {
        self.w.ncols()
    }

    /// Forward `Y = X W + b` (overwrites `y`).
    ///
    /// # Shapes
    /// `x`: `[B × in]`, `y`: `[B × out]`.
    ///
    /// # Panics
    /// On shape mismatch.
    pub fn forward(&self, x: ArrayView2<F>, mut y: ArrayViewMut2<F>) {
        assert_eq!(x.ncols(), self.in_dim(), "Linear::forward: x width");
        assert_eq!(
            y.dim(),
            (x.nrows(), self.out_dim()),
            "Linear::forward: y shape"
        );
        let b = self.b.as_slice().expect("bias is contiguous");
        for mut row in y.outer_iter_mut() {
            match row.as_slice_mut() {
                Some(r) => r.copy_from_slice(b),
                None => row.assign(&self.b),
            }
        }
        crate::linalg::gemm(F::one(), &x, &self.w, F::one(), &mut y);
    }

    /// Backward: `dW += Xᵀ dY`, `db += Σ_b dY[b]` (accumulated into `grad`),
    /// and, when `dx` is given, `dX = dY Wᵀ` (overwritten).
    ///
    /// # Shapes
    /// `x`: `[B × in]` (the forward input), `dy`: `[B × out]`, `dx`: `[B × in]`.
    ///
    /// # Panics
    /// On shape mismatch.
    pub fn backward(
        &self,
        x: ArrayView2<F>,
        dy: ArrayView2<F>,
        dx: Option<ArrayViewMut2<F>>,
        grad: &mut LinearGrad<F>,
    ) {
        assert_eq!(x.ncols(), self.in_dim(), "Linear::backward: x width");
        assert_eq!(
            dy.dim(),
            (x.nrows(), self.out_dim()),
            "Linear::backward: dy shape"
        );
        assert_eq!(grad.dw.dim(), self.w.dim(), "Linear::backward: dw shape");
        crate::linalg::gemm(F::one(), &x.t(), &dy, F::one(), &mut grad.dw);
        let db = grad.db.as_slice_mut().expect("db is contiguous");
        match dy.as_slice() {
            Some(all) => {
                for row in all.chunks_exact(db.len().max(1)) {
                    for (a, &g) in db.iter_mut().zip(row) {
                        *a += g;
                    }
                }
            }
            None => {
                for row in dy.outer_iter() {
                    for (a, &g) in db.iter_mut().zip(row.iter()) {
                        *a += g;
                    }
                }
            }
        }
        if let Some(mut dx) = dx {
            assert_eq!(dx.dim(), x.dim(), "Linear::backward: dx shape");
            crate::linalg::gemm(F::one(), &dy, &self.w.t(), F::zero(), &mut dx);
        }
    }
}

/// ReLU in place: `x ← max(x, 0)` (NaN propagates).
pub fn relu_forward<F: Real>(mut x: ArrayViewMut2<F>) {
    let relu = |v: &mut F| {
        // NaN stays NaN (a diverged model must show a non-finite loss).
        // An unconditional store of a select: branch-free, vectorizes.
        *v = if *v < F::zero() { F::zero() } else { *v };
    };
    match x.as_slice_mut() {
        Some(s) => s.iter_mut().for_each(relu),
        None => x.iter_mut().for_each(relu),
    }
}

/// ReLU backward in place: `dX = dY ⊙ 1[X > 0]`, using the ReLU *output*
/// `y` (`y > 0` exactly where `x > 0`).
///
/// # Shapes
/// `y`, `dy`: same shape.
pub fn relu_backward<F: Real>(y: ArrayView2<F>, mut dy: ArrayViewMut2<F>) {
    assert_eq!(y.dim(), dy.dim(), "relu_backward: shapes");
    // Branch-free (the sign of an activation is a coin flip for the branch
    // predictor): an unconditional store of a select vectorizes.
    let mask = |d: &mut F, v: F| *d = if v > F::zero() { *d } else { F::zero() };
    match (dy.as_slice_mut(), y.as_slice()) {
        (Some(d), Some(y)) => d.iter_mut().zip(y).for_each(|(d, &v)| mask(d, v)),
        _ => Zip::from(&mut dy).and(&y).for_each(|d, &v| mask(d, v)),
    }
}

/// Row-wise L2 normalization: `y_b = x_b / n_b`, `n_b = max(‖x_b‖, ε)`,
/// ε = [`L2_EPS`]. Writes `y` and the norms `n_b` (kept for backward).
/// Non-contiguous views take a slower path that copies each row.
///
/// # Shapes
/// `x`, `y`: `[B × d]`; `norms`: `B`.
pub fn l2_normalize_forward<F: Real>(x: ArrayView2<F>, mut y: ArrayViewMut2<F>, norms: &mut [F]) {
    assert_eq!(x.dim(), y.dim(), "l2_normalize_forward: shapes");
    assert_eq!(norms.len(), x.nrows(), "l2_normalize_forward: norms len");
    let eps = F::lit(L2_EPS);
    let row = |xr: &[F], yr: &mut [F], n: &mut F| {
        let nn = xr.iter().map(|&v| v * v).sum::<F>().sqrt().max(eps);
        *n = nn;
        let inv = F::one() / nn;
        for (a, &v) in yr.iter_mut().zip(xr) {
            *a = v * inv;
        }
    };
    let d = x.ncols().max(1);
    if let (Some(xs), Some(ys)) = (x.as_slice(), y.as_slice_mut()) {
        for ((xr, yr), n) in xs
            .chunks_exact(d)
            .zip(ys.chunks_exact_mut(d))
            .zip(norms.iter_mut())
        {
            row(xr, yr, n);
        }
        return;
    }
    for ((xr, mut yr), n) in x.outer_iter().zip(y.outer_iter_mut()).zip(norms.iter_mut()) {
        let xr = xr.to_vec();
        let mut tmp = vec![F::zero(); xr.len()];
        row(&xr, &mut tmp, n);
        yr.assign(&ndarray::ArrayView1::from(&tmp[..]));
    }
}

/// L2 normalization backward: `dx_b = (dy_b − y_b (y_bᵀ dy_b)) / n_b`
/// (overwrites `dx`; `dx` and `dy` may not alias — use
/// [`l2_normalize_backward_inplace`] for that).
///
/// # Shapes
/// `y`, `dy`, `dx`: `[B × d]`; `norms`: `B` (from the forward pass).
pub fn l2_normalize_backward<F: Real>(
    y: ArrayView2<F>,
    norms: &[F],
    dy: ArrayView2<F>,
    mut dx: ArrayViewMut2<F>,
) {
    dx.assign(&dy);
    l2_normalize_backward_inplace(y, norms, dx);
}

/// [`l2_normalize_backward`] with `dy` given in `d` and replaced by `dx`.
/// Non-contiguous views take a slower path that copies each row.
pub fn l2_normalize_backward_inplace<F: Real>(
    y: ArrayView2<F>,
    norms: &[F],
    mut d: ArrayViewMut2<F>,
) {
    assert_eq!(y.dim(), d.dim(), "l2_normalize_backward: shapes");
    assert_eq!(norms.len(), y.nrows(), "l2_normalize_backward: norms len");
    let row = |yr: &[F], dr: &mut [F], n: F| {
        let dot: F = yr.iter().zip(dr.iter()).map(|(&a, &b)| a * b).sum();
        let inv = F::one() / n;
        for (g, &v) in dr.iter_mut().zip(yr) {
            *g = (*g - v * dot) * inv;
        }
    };
    let w = y.ncols().max(1);
    if let (Some(ys), Some(ds)) = (y.as_slice(), d.as_slice_mut()) {
        for ((yr, dr), &n) in ys.chunks_exact(w).zip(ds.chunks_exact_mut(w)).zip(norms) {
            row(yr, dr, n);
        }
        return;
    }
    for ((yr, mut dr), &n) in y.outer_iter().zip(d.axis_iter_mut(Axis(0))).zip(norms) {
        let yv = yr.to_vec();
        let mut dv = dr.to_vec();
        row(&yv, &mut dv, n);
        dr.assign(&ndarray::ArrayView1::from(&dv[..]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn linear_forward_backward_small() {
        // W = [[1,2],[3,4],[5,6]], b = [1,-1], X = [[1,0,1],[0,1,0]]
        // Y = [[1+5+1, 2+6-1], [3+1, 4-1]] = [[7,7],[4,3]]
        let l = Linear {
            w: array![[1., 2.], [3., 4.], [5., 6.]],
            b: array![1., -1.],
        };
        let x = array![[1., 0., 1.], [0., 1., 0.]];
        let mut y = Array2::zeros((2, 2));
        l.forward(x.view(), y.view_mut());
        assert_eq!(y, array![[7., 7.], [4., 3.]]);
        // dY = [[1,0],[0,1]]: dX = dY Wᵀ = [[1,3,5],[2,4,6]]; dW = Xᵀ dY = [[1,0],[0,1],[1,0]]; db = [1,1]
        let dy = array![[1., 0.], [0., 1.]];
        let mut dx = Array2::zeros((2, 3));
        let mut g = LinearGrad::zeros(3, 2);
        l.backward(x.view(), dy.view(), Some(dx.view_mut()), &mut g);
        assert_eq!(dx, array![[1., 3., 5.], [2., 4., 6.]]);
        assert_eq!(g.dw, array![[1., 0.], [0., 1.], [1., 0.]]);
        assert_eq!(g.db, array![1., 1.]);
        // accumulates
        l.backward(x.view(), dy.view(), None, &mut g);
        assert_eq!(g.db, array![2., 2.]);
    }

    #[test]
    fn l2_normalize_3_4_5() {
        let x = array![[3., 4.], [0., 0.]];
        let mut y = Array2::zeros((2, 2));
        let mut n = [0.0; 2];
        l2_normalize_forward(x.view(), y.view_mut(), &mut n);
        assert!((y[[0, 0]] - 0.6f64).abs() < 1e-15 && (y[[0, 1]] - 0.8f64).abs() < 1e-15);
        assert_eq!(y.row(1).to_vec(), vec![0.0, 0.0]);
        assert_eq!(n, [5.0, 1e-12]);
        // dy = [1,0]: dx = ([1,0] - [.6,.8]·.6)/5 = [.64, -.48]/5 = [.128, -.096]
        let mut dx = Array2::zeros((2, 2));
        l2_normalize_backward(
            y.view(),
            &n,
            array![[1., 0.], [0., 0.]].view(),
            dx.view_mut(),
        );
        assert!((dx[[0, 0]] - 0.128f64).abs() < 1e-15 && (dx[[0, 1]] + 0.096f64).abs() < 1e-15);
    }

    #[test]
    fn relu_masks_nonpositive() {
        let mut x = array![[-1., 0., 2.]];
        relu_forward(x.view_mut());
        assert_eq!(x, array![[0., 0., 2.]]);
        let mut d = array![[5., 6., 7.]];
        relu_backward(x.view(), d.view_mut());
        assert_eq!(d, array![[0., 0., 7.]]);
    }

    #[test]
    fn l2_strided_views_match_contiguous() {
        use ndarray::s;
        let wide = array![[3., 4., 9.], [1., -2., 9.], [0., 5., 9.]];
        let x = wide.slice(s![.., ..2]);
        let xc = x.to_owned();
        let (mut y1, mut y2) = (Array2::zeros((3, 2)), Array2::<f64>::zeros((3, 4)));
        let (mut n1, mut n2) = ([0.0; 3], [0.0; 3]);
        l2_normalize_forward(xc.view(), y1.view_mut(), &mut n1);
        l2_normalize_forward(x, y2.slice_mut(s![.., 1..3]), &mut n2);
        assert_eq!(n1, n2);
        assert_eq!(y1, y2.slice(s![.., 1..3]));
        let dy = array![[1., 2.], [3., -1.], [0.5, 0.5]];
        let mut d1 = dy.clone();
        let mut d2 = Array2::<f64>::zeros((3, 4));
        d2.slice_mut(s![.., 1..3]).assign(&dy);
        l2_normalize_backward_inplace(y1.view(), &n1, d1.view_mut());
        l2_normalize_backward_inplace(y2.slice(s![.., 1..3]), &n2, d2.slice_mut(s![.., 1..3]));
        assert_eq!(d1, d2.slice(s![.., 1..3]));
        // row 0: y = [.6, .8], n = 5, dy = [1, 2]: yᵀdy = 2.2 → dx = ([1,2] − 2.2·[.6,.8])/5 = [−0.064, 0.048]
        assert!((d1[[0, 0]] + 0.064).abs() < 1e-12 && (d1[[0, 1]] - 0.048).abs() < 1e-12);
    }
}
