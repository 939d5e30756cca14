//! [`SparseOptimizer`]: the optimizer state of one embedding table and its
//! update of the rows a batch touched, and only those (GRADIENTS.md
//! "Optimizers"):
//!
//! - Adagrad (Duchi et al. 2011): `G[r] += g²`, `E[r] −= lr · g / (√G[r] + ε)`;
//!   row-wise variant (one accumulator per row, as TorchRec's row-wise
//!   Adagrad): `G_r += mean(g²)`.
//! - Lazy Adam (Kingma & Ba 2015; TensorFlow's LazyAdam): moments of the
//!   touched rows only, bias correction from the global step. Rows absent
//!   from the batch keep `E`, `m`, `v` bit-identical.
//!
//! A row occurring several times in a batch has one summed gradient in its
//! [`SparseGrad`], so it is updated once.

use crate::embedding::{prefetch_row, EmbeddingTable, SparseGrad};
use crate::real::Real;

use super::{SparseOptimizerKind, StepParams};

/// Rows prefetched ahead of the one being updated.
const PREFETCH_AHEAD: usize = 4;

/// A vector of `n` copies of `x`, every element written now. `vec![0.0; n]`
/// would map lazily zeroed pages whose first touch (a page fault each) would
/// then land in the training steps that first update a row; large tables
/// pay that once here instead.
/// Large ones are backed by transparent huge pages where the OS allows
/// (see `embedding::with_capacity_huge`).
fn filled<F: Copy>(n: usize, x: F) -> Vec<F> {
    crate::embedding::filled_huge(n, x)
}

/// Optimizer state of one embedding table.
///
/// # Shapes
/// Adagrad: `s1` = accumulator `G`, `[rows × dim]` (or `[rows]` row-wise),
/// `s2` empty. Adam: `s1` = first moment `m`, `s2` = second moment `v`, both
/// `[rows × dim]`.
#[derive(Clone, Debug, PartialEq)]
pub struct SparseOptimizer<F> {
    /// The update rule.
    pub kind: SparseOptimizerKind,
    /// Table rows.
    pub rows: usize,
    /// Table dimension.
    pub dim: usize,
    /// Adagrad accumulator, or Adam first moment.
    pub s1: Vec<F>,
    /// Adam second moment (empty for Adagrad).
    pub s2: Vec<F>,
}

impl<F: Real> SparseOptimizer<F> {
    /// Fresh state for a `[rows × dim]` table (Adagrad accumulators at
    /// `initial_accumulator`, Adam moments 0).
    pub fn new(
        kind: SparseOptimizerKind,
        rows: usize,
        dim: usize,
        initial_accumulator: f64,
    ) -> Self {
        let init = F::lit(initial_accumulator);
        let (s1, s2) = match kind {
            SparseOptimizerKind::Adagrad { row_wise: false } => {
                (filled(rows * dim, init), Vec::new())
            }
            SparseOptimizerKind::Adagrad { row_wise: true } => (filled(rows, init), Vec::new()),
            SparseOptimizerKind::Adam => {
                (filled(rows * dim, F::zero()), filled(rows * dim, F::zero()))
            }
        };
        Self {
            kind,
            rows,
            dim,
            s1,
            s2,
        }
    }

    /// Updates the rows of `table` present in `grad` (each once, with its
    /// summed gradient times `p.grad_scale`); every other row and its state
    /// are left untouched.
    ///
    /// # Panics
    /// If `table` or `grad` do not match this state's shape, or a gradient
    /// row is out of range.
    pub fn step(&mut self, table: &mut EmbeddingTable<F>, grad: &SparseGrad<F>, p: &StepParams<F>) {
        assert_eq!(
            (table.rows, table.dim),
            (self.rows, self.dim),
            "SparseOptimizer: table shape"
        );
        assert_eq!(grad.dim, self.dim, "SparseOptimizer: gradient dim");
        let dim = self.dim;
        let scale = p.grad_scale;
        match self.kind {
            SparseOptimizerKind::Adagrad { row_wise: false } => {
                for (k, (r, g)) in grad.iter().enumerate() {
                    if let Some(&ahead) = grad.rows.get(k + PREFETCH_AHEAD) {
                        let start = ahead as usize * dim;
                        prefetch_row(&table.data, start, dim);
                        prefetch_row(&self.s1, start, dim);
                    }
                    let r = r as usize;
                    let e = &mut table.data[r * dim..(r + 1) * dim];
                    let acc = &mut self.s1[r * dim..(r + 1) * dim];
                    for ((e, a), &g) in e.iter_mut().zip(acc.iter_mut()).zip(g) {
                        let g = g * scale;
                        *a += g * g;
                        *e -= p.lr * g / (a.sqrt() + p.eps);
                    }
                }
            }
            SparseOptimizerKind::Adagrad { row_wise: true } => {
                let inv_dim = F::one() / F::from_usize(dim).expect("dim");
                for (r, g) in grad.iter() {
                    let r = r as usize;
                    let e = &mut table.data[r * dim..(r + 1) * dim];
                    let mean_sq = g.iter().map(|&g| (g * scale) * (g * scale)).sum::<F>() * inv_dim;
                    let a = &mut self.s1[r];
                    *a += mean_sq;
                    let step = p.lr / (a.sqrt() + p.eps);
                    for (e, &g) in e.iter_mut().zip(g) {
                        *e -= step * (g * scale);
                    }
                }
            }
            SparseOptimizerKind::Adam => {
                let (bc1, bc2) = p.bias_corrections();
                let (lr_c1, inv_bc2) = (p.lr / bc1, F::one() / bc2);
                let (one_m_b1, one_m_b2) = (F::one() - p.beta1, F::one() - p.beta2);
                for (k, (r, g)) in grad.iter().enumerate() {
                    // rows come in random order: fetch a few rows ahead
                    if let Some(&ahead) = grad.rows.get(k + PREFETCH_AHEAD) {
                        let start = ahead as usize * dim;
                        prefetch_row(&table.data, start, dim);
                        prefetch_row(&self.s1, start, dim);
                        prefetch_row(&self.s2, start, dim);
                    }
                    let r = r as usize;
                    let range = r * dim..(r + 1) * dim;
                    let e = &mut table.data[range.clone()];
                    let m = &mut self.s1[range.clone()];
                    let v = &mut self.s2[range];
                    for (((e, m), v), &g) in e.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g)
                    {
                        let g = g * scale;
                        *m = p.beta1 * *m + one_m_b1 * g;
                        *v = p.beta2 * *v + one_m_b2 * g * g;
                        *e -= lr_c1 * *m / ((*v * inv_bc2).sqrt() + p.eps);
                    }
                }
            }
        }
    }

    /// `(suffix, shape, values)` of the state: Adagrad `acc`, Adam `m` and `v`.
    pub(super) fn named(&self) -> Vec<(&'static str, Vec<usize>, &[F])> {
        match self.kind {
            SparseOptimizerKind::Adagrad { row_wise: false } => {
                vec![("acc", vec![self.rows, self.dim], &self.s1[..])]
            }
            SparseOptimizerKind::Adagrad { row_wise: true } => {
                vec![("acc", vec![self.rows], &self.s1[..])]
            }
            SparseOptimizerKind::Adam => vec![
                ("m", vec![self.rows, self.dim], &self.s1[..]),
                ("v", vec![self.rows, self.dim], &self.s2[..]),
            ],
        }
    }

    pub(super) fn state_mut(&mut self, suffix: &str) -> Option<&mut [F]> {
        match (self.kind, suffix) {
            (SparseOptimizerKind::Adagrad { .. }, "acc") | (SparseOptimizerKind::Adam, "m") => {
                Some(&mut self.s1)
            }
            (SparseOptimizerKind::Adam, "v") => Some(&mut self.s2),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedding::embedding_bag_backward;
    use crate::optim::test_util::params;
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const ROWS: usize = 6;
    const DIM: usize = 2;

    /// Bags [3, 3] and [1]: row 3 occurs twice (its gradient is the sum of
    /// both occurrences' shares), row 1 once, rows 0, 2, 4, 5 untouched.
    fn step_grad(rng: &mut ChaCha8Rng) -> (SparseGrad<f64>, Vec<f64>) {
        let dout = Array2::from_shape_simple_fn((2, DIM), || rng.gen_range(-1.0..1.0));
        let mut g = SparseGrad::new(DIM);
        embedding_bag_backward(&[0, 2, 3], &[3, 3, 1], &[], dout.view(), &mut g, None);
        assert_eq!(g.len(), 2);
        let mut dense = vec![0.0; ROWS * DIM];
        // Reference dense gradient: row 3 gets dout_0/2 twice = dout_0, row 1 gets dout_1.
        for k in 0..DIM {
            dense[3 * DIM + k] = dout[[0, k]];
            dense[DIM + k] = dout[[1, k]];
        }
        (g, dense)
    }

    fn touched(r: usize) -> bool {
        r == 1 || r == 3
    }

    fn check_against_reference(
        kind: SparseOptimizerKind,
        reference: impl Fn(&mut [f64], &mut [f64], &mut [f64], &[f64], u64),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut table = EmbeddingTable::<f64>::normal(ROWS, DIM, 1.0, &mut rng);
        let init = table.clone();
        let mut opt = SparseOptimizer::new(kind, ROWS, DIM, 0.1);
        let init_state = opt.clone();
        // Dense reference state (s1, s2) over all rows.
        let mut e = table.data.clone();
        let (mut s1, mut s2) = (opt.s1.clone(), vec![0.0; ROWS * DIM]);
        for t in 1..=3 {
            let (g, dense) = step_grad(&mut rng);
            opt.step(&mut table, &g, &params(0.05, t));
            reference(&mut e, &mut s1, &mut s2, &dense, t);
        }
        for r in 0..ROWS {
            let (a, b) = (table.row(r), &e[r * DIM..(r + 1) * DIM]);
            if touched(r) {
                for (x, y) in a.iter().zip(b) {
                    assert!((x - y).abs() < 1e-14, "{kind:?} row {r}: {x} vs {y}");
                }
                assert_ne!(a, init.row(r));
            } else {
                // Untouched rows and their state: bit-identical.
                assert_eq!(a, init.row(r), "{kind:?} row {r} moved");
                match kind {
                    SparseOptimizerKind::Adagrad { row_wise: true } => {
                        assert_eq!(opt.s1[r], init_state.s1[r])
                    }
                    _ => {
                        assert_eq!(
                            opt.s1[r * DIM..(r + 1) * DIM],
                            init_state.s1[r * DIM..(r + 1) * DIM]
                        );
                        if !opt.s2.is_empty() {
                            assert_eq!(
                                opt.s2[r * DIM..(r + 1) * DIM],
                                init_state.s2[r * DIM..(r + 1) * DIM]
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn sparse_adagrad_matches_dense_adagrad() {
        // Dense Adagrad over every row (untouched rows have g = 0, so they do not move).
        check_against_reference(
            SparseOptimizerKind::Adagrad { row_wise: false },
            |e, acc, _, g, _| {
                for i in 0..e.len() {
                    acc[i] += g[i] * g[i];
                    e[i] -= 0.05 * g[i] / (acc[i].sqrt() + 1e-8);
                }
            },
        );
    }

    #[test]
    fn sparse_rowwise_adagrad_matches_dense_rowwise() {
        check_against_reference(
            SparseOptimizerKind::Adagrad { row_wise: true },
            |e, acc, _, g, _| {
                for r in 0..ROWS {
                    let gr = &g[r * DIM..(r + 1) * DIM];
                    if gr.iter().all(|&x| x == 0.0) {
                        continue;
                    }
                    acc[r] += gr.iter().map(|x| x * x).sum::<f64>() / DIM as f64;
                    for k in 0..DIM {
                        e[r * DIM + k] -= 0.05 * gr[k] / (acc[r].sqrt() + 1e-8);
                    }
                }
            },
        );
    }

    #[test]
    fn lazy_adam_matches_dense_adam_on_touched_rows() {
        // Dense Adam on the rows touched at every step (the same rows each step,
        // so lazy and dense Adam agree on them); untouched rows skipped.
        check_against_reference(SparseOptimizerKind::Adam, |e, m, v, g, t| {
            for i in 0..e.len() {
                if !touched(i / DIM) {
                    continue;
                }
                m[i] = 0.9 * m[i] + 0.1 * g[i];
                v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
                let mh = m[i] / (1.0 - 0.9f64.powi(t as i32));
                let vh = v[i] / (1.0 - 0.999f64.powi(t as i32));
                e[i] -= 0.05 * mh / (vh.sqrt() + 1e-8);
            }
        });
    }

    #[test]
    fn repeated_row_is_updated_once_with_summed_gradient() {
        // Row 3 twice with gradient 1 each (accumulator starts at 0.1, lr 0.5):
        // once with the sum: G = 0.1 + 2² = 4.1, E = 0 − 0.5·2/√4.1 = −0.493864798
        // (twice separately would give G = 2.1, E = −0.5/√1.1 − 0.5/√2.1 = −0.821761...)
        let mut table = EmbeddingTable::<f64>::zeros(5, 1);
        let mut opt =
            SparseOptimizer::new(SparseOptimizerKind::Adagrad { row_wise: false }, 5, 1, 0.1);
        let mut g = SparseGrad::new(1);
        let dout = Array2::from_elem((2, 1), 1.0);
        embedding_bag_backward(&[0, 1, 2], &[3, 3], &[], dout.view(), &mut g, None);
        opt.step(
            &mut table,
            &g,
            &StepParams {
                eps: 0.0,
                ..params(0.5, 1)
            },
        );
        assert!(
            (table.data[3] + 0.493864798).abs() < 1e-9,
            "{}",
            table.data[3]
        );
        assert!((opt.s1[3] - 4.1).abs() < 1e-12);
        assert_eq!(table.data.iter().filter(|&&x| x != 0.0).count(), 1);
    }
}
