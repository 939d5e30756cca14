//! Optimizers (GRADIENTS.md "Optimizers"): sparse row-wise updates of the
//! embedding tables, Adam/AdamW for the dense weights.
//!
//! - Sparse Adagrad (Duchi et al. 2011), touched rows only:
//!   `G[r] += g²`, `E[r] −= lr · g / (√G[r] + ε)`; row-wise variant (one
//!   accumulator per row, as TorchRec's row-wise Adagrad): `G_r += mean(g²)`.
//! - Lazy Adam (Kingma & Ba 2015; TensorFlow's LazyAdam), touched rows only:
//!   `m = β1 m + (1−β1) g`, `v = β2 v + (1−β2) g²`,
//!   `E −= lr · m̂ / (√v̂ + ε)` with `m̂ = m/(1−β1^t)`, `v̂ = v/(1−β2^t)` and `t`
//!   the global step. Rows absent from the batch keep `E`, `m`, `v` bit-identical.
//! - Dense: Adam, or AdamW with decoupled weight decay (Loshchilov & Hutter
//!   2019: `p ← p − lr·λ·p` before the Adam update), applied to the MLP
//!   weight matrices only (not to biases, mask vectors or embeddings).
//!
//! A row occurring several times in a batch has one summed gradient in its
//! [`SparseGrad`](crate::embedding::SparseGrad), so it is updated once.
//! Optional clipping scales every gradient by `min(1, c / ‖g‖)` with `‖g‖`
//! the global norm over all of them.
//! A step costs O(touched rows · dim + dense parameters), never O(vocabulary).
//!
//! # Files
//! - `mod.rs`: the hyper-parameters — [`SparseOptimizerKind`],
//!   [`OptimConfig`] and [`StepParams`], those of one update.
//! - `sparse.rs`: [`SparseOptimizer`], the state of one embedding table and
//!   its Adagrad (element- or row-wise) or lazy Adam update of the touched rows.
//! - `dense.rs`: [`DenseAdam`], Adam/AdamW of one dense tensor.
//! - `clip.rs`: the global-norm clipping factor `min(1, c / ‖g‖)`.
//! - `optimizer.rs`: [`Optimizer`], a sparse or dense state per tensor of a
//!   [`TwoTower`](crate::model::TwoTower) and the step that updates them
//!   all; the state tensors' names for checkpoints; [`OptimTimes`] and
//!   [`state_bytes`].

mod clip;
mod dense;
mod optimizer;
mod sparse;

pub use dense::DenseAdam;
pub use optimizer::{state_bytes, OptimTimes, Optimizer};
pub use sparse::SparseOptimizer;

use crate::real::Real;

/// Which sparse optimizer updates the embedding tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SparseOptimizerKind {
    /// Adagrad; `row_wise` keeps one accumulator per row instead of per element.
    Adagrad {
        /// One accumulator per row (`G_r += mean(g²)`).
        row_wise: bool,
    },
    /// Lazy Adam (moments of touched rows only; bias correction from the global step).
    Adam,
}

impl From<crate::config::SparseOptimizer> for SparseOptimizerKind {
    /// The optimizer `train.sparse_optimizer` names.
    fn from(c: crate::config::SparseOptimizer) -> Self {
        use crate::config::SparseOptimizer as C;
        match c {
            C::Adam => Self::Adam,
            C::Adagrad => Self::Adagrad { row_wise: false },
            C::AdagradRowwise => Self::Adagrad { row_wise: true },
        }
    }
}

/// Optimizer hyper-parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimConfig {
    /// Sparse optimizer of the embedding tables.
    pub sparse: SparseOptimizerKind,
    /// Learning rate of the embedding tables.
    pub sparse_lr: f64,
    /// Learning rate of the dense weights (MLP, learned mask vectors).
    pub dense_lr: f64,
    /// Decoupled (AdamW) weight decay λ of the MLP weight matrices; 0 = Adam.
    pub weight_decay: f64,
    /// Adam β1 (sparse Adam and dense).
    pub beta1: f64,
    /// Adam β2 (sparse Adam and dense).
    pub beta2: f64,
    /// ε of Adam and Adagrad denominators.
    pub eps: f64,
    /// Initial value of the Adagrad accumulators.
    pub adagrad_initial_accumulator: f64,
    /// Clip by global gradient norm to this value (`None`: no clipping).
    pub clip_grad_norm: Option<f64>,
}

impl Default for OptimConfig {
    /// Adagrad (element-wise) at lr 0.05 for embeddings, Adam at lr 1e-3 for
    /// the MLP, no weight decay, β = (0.9, 0.999), ε = 1e-8, accumulators
    /// start at 0, no clipping.
    fn default() -> Self {
        Self {
            sparse: SparseOptimizerKind::Adagrad { row_wise: false },
            sparse_lr: 0.05,
            dense_lr: 1e-3,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            adagrad_initial_accumulator: 0.0,
            clip_grad_norm: None,
        }
    }
}

/// Hyper-parameters of one sparse or dense update, in the scalar type.
#[derive(Clone, Copy, Debug)]
pub struct StepParams<F> {
    /// Learning rate.
    pub lr: F,
    /// β1 (Adam).
    pub beta1: F,
    /// β2 (Adam).
    pub beta2: F,
    /// ε.
    pub eps: F,
    /// Decoupled weight decay λ (dense only).
    pub weight_decay: F,
    /// Factor applied to every gradient (global-norm clipping), 1 = none.
    pub grad_scale: F,
    /// Global step `t ≥ 1` (bias correction).
    pub t: u64,
}

impl<F: Real> StepParams<F> {
    fn bias_corrections(&self) -> (F, F) {
        let t = self.t.min(i32::MAX as u64) as i32;
        (F::one() - self.beta1.powi(t), F::one() - self.beta2.powi(t))
    }
}

/// Helpers the tests of several files share.
#[cfg(test)]
mod test_util {
    use super::StepParams;
    use crate::model::TwoTower;
    use crate::tower::{FeatureSpec, MaskEmbedding, TowerSpec};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Adam's defaults (β = (0.9, 0.999), ε = 1e-8), no decay, no clipping.
    pub(super) fn params(lr: f64, t: u64) -> StepParams<f64> {
        StepParams {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            grad_scale: 1.0,
            t,
        }
    }

    /// A two-tower model of one 10×2 table, layers 2→3→2 and a learned mask
    /// vector per tower.
    pub(super) fn tiny() -> TwoTower<f32> {
        let spec = |n: &str| TowerSpec {
            features: vec![FeatureSpec {
                name: n.into(),
                vocab_size: 10,
                dim: 2,
            }],
            hidden: vec![3],
            out_dim: 2,
            mask_embedding: MaskEmbedding::Learned,
        };
        TwoTower::new(spec("u"), spec("i"), &mut ChaCha8Rng::seed_from_u64(1)).unwrap()
    }
}
