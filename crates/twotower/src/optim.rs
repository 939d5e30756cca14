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
//! [`SparseGrad`], so it is updated once. Optional clipping scales every
//! gradient by `min(1, c / ‖g‖)` with `‖g‖` the global norm over all of them.
//! A step costs O(touched rows · dim + dense parameters), never O(vocabulary).

use std::time::{Duration, Instant};

use crate::embedding::{prefetch_row, EmbeddingTable, SparseGrad};

/// Rows prefetched ahead of the one being updated.
const PREFETCH_AHEAD: usize = 4;
use crate::model::{ModelGrads, TwoTower};
use crate::real::Real;
use crate::tower::{Tower, TowerGrads};

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
    fn named(&self) -> Vec<(&'static str, Vec<usize>, &[F])> {
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

    fn state_mut(&mut self, suffix: &str) -> Option<&mut [F]> {
        match (self.kind, suffix) {
            (SparseOptimizerKind::Adagrad { .. }, "acc") | (SparseOptimizerKind::Adam, "m") => {
                Some(&mut self.s1)
            }
            (SparseOptimizerKind::Adam, "v") => Some(&mut self.s2),
            _ => None,
        }
    }
}

/// Adam / AdamW state of one dense tensor (`m`, `v`, same length as the tensor).
#[derive(Clone, Debug, PartialEq)]
pub struct DenseAdam<F> {
    /// First moment.
    pub m: Vec<F>,
    /// Second moment.
    pub v: Vec<F>,
}

impl<F: Real> DenseAdam<F> {
    /// Zero moments for a tensor of `n` values.
    pub fn new(n: usize) -> Self {
        Self {
            m: vec![F::zero(); n],
            v: vec![F::zero(); n],
        }
    }

    /// One Adam(W) update of `param` with gradient `grad · p.grad_scale`:
    /// `param ← param − lr·λ·param` (when λ > 0), then the bias-corrected
    /// Adam update.
    ///
    /// # Panics
    /// If `param`, `grad` and the state differ in length.
    pub fn step(&mut self, param: &mut [F], grad: &[F], p: &StepParams<F>) {
        assert_eq!(param.len(), self.m.len(), "DenseAdam: param length");
        assert_eq!(grad.len(), self.m.len(), "DenseAdam: grad length");
        let (bc1, bc2) = p.bias_corrections();
        let (lr_c1, inv_bc2) = (p.lr / bc1, F::one() / bc2);
        let decay = F::one() - p.lr * p.weight_decay;
        let (one_m_b1, one_m_b2) = (F::one() - p.beta1, F::one() - p.beta2);
        let wd = p.weight_decay > F::zero();
        for (((x, m), v), &g) in param.iter_mut().zip(&mut self.m).zip(&mut self.v).zip(grad) {
            let g = g * p.grad_scale;
            if wd {
                *x *= decay;
            }
            *m = p.beta1 * *m + one_m_b1 * g;
            *v = p.beta2 * *v + one_m_b2 * g * g;
            *x -= lr_c1 * *m / ((*v * inv_bc2).sqrt() + p.eps);
        }
    }
}

/// The optimizer state of one tower.
#[derive(Clone, Debug, PartialEq)]
struct TowerState<F> {
    /// Feature names of the tower (state tensor names).
    features: Vec<String>,
    tables: Vec<SparseOptimizer<F>>,
    w: Vec<DenseAdam<F>>,
    b: Vec<DenseAdam<F>>,
    /// Per feature; zero-length for a tower without learned mask vectors.
    masks: Vec<DenseAdam<F>>,
}

impl<F: Real> TowerState<F> {
    fn new(tower: &Tower<F>, cfg: &OptimConfig) -> Self {
        Self {
            features: tower.spec.features.iter().map(|f| f.name.clone()).collect(),
            tables: tower
                .tables
                .iter()
                .map(|t| {
                    SparseOptimizer::new(cfg.sparse, t.rows, t.dim, cfg.adagrad_initial_accumulator)
                })
                .collect(),
            w: tower
                .layers
                .iter()
                .map(|l| DenseAdam::new(l.w.len()))
                .collect(),
            b: tower
                .layers
                .iter()
                .map(|l| DenseAdam::new(l.b.len()))
                .collect(),
            masks: tower
                .mask_vectors
                .iter()
                .map(|m| DenseAdam::new(m.len()))
                .collect(),
        }
    }

    fn step_sparse(&mut self, tower: &mut Tower<F>, grads: &TowerGrads<F>, sparse: &StepParams<F>) {
        assert_eq!(
            grads.tables.len(),
            tower.tables.len(),
            "Optimizer: gradients do not match the model"
        );
        for ((st, table), g) in self
            .tables
            .iter_mut()
            .zip(&mut tower.tables)
            .zip(&grads.tables)
        {
            st.step(table, g, sparse);
        }
    }

    fn step_dense(&mut self, tower: &mut Tower<F>, grads: &TowerGrads<F>, dense: &StepParams<F>) {
        let no_decay = StepParams {
            weight_decay: F::zero(),
            ..*dense
        };
        for (l, (layer, g)) in tower.layers.iter_mut().zip(&grads.layers).enumerate() {
            self.w[l].step(
                layer.w.as_slice_mut().expect("standard layout"),
                g.dw.as_slice().expect("standard layout"),
                dense,
            );
            self.b[l].step(
                layer.b.as_slice_mut().expect("standard layout"),
                g.db.as_slice().expect("standard layout"),
                &no_decay,
            );
        }
        for ((st, m), g) in self
            .masks
            .iter_mut()
            .zip(&mut tower.mask_vectors)
            .zip(&grads.mask_vectors)
        {
            if !m.is_empty() {
                st.step(m, g, &no_decay);
            }
        }
    }

    fn named<'a>(&'a self, prefix: &str, out: &mut Vec<(String, Vec<usize>, &'a [F])>) {
        for (f, st) in self.features.iter().zip(&self.tables) {
            for (suffix, shape, data) in st.named() {
                out.push((format!("{prefix}.emb.{f}.{suffix}"), shape, data));
            }
        }
        for (f, st) in self.features.iter().zip(&self.masks) {
            if !st.m.is_empty() {
                out.push((format!("{prefix}.mask.{f}.m"), vec![st.m.len()], &st.m[..]));
                out.push((format!("{prefix}.mask.{f}.v"), vec![st.v.len()], &st.v[..]));
            }
        }
        for (i, (w, b)) in self.w.iter().zip(&self.b).enumerate() {
            out.push((format!("{prefix}.mlp.{i}.w.m"), vec![w.m.len()], &w.m[..]));
            out.push((format!("{prefix}.mlp.{i}.w.v"), vec![w.v.len()], &w.v[..]));
            out.push((format!("{prefix}.mlp.{i}.b.m"), vec![b.m.len()], &b.m[..]));
            out.push((format!("{prefix}.mlp.{i}.b.v"), vec![b.v.len()], &b.v[..]));
        }
    }

    fn state_mut(&mut self, name: &str) -> Option<&mut [F]> {
        if let Some(rest) = name.strip_prefix("emb.") {
            let (feat, suffix) = rest.rsplit_once('.')?;
            let i = self.features.iter().position(|f| f == feat)?;
            return self.tables[i].state_mut(suffix);
        }
        if let Some(rest) = name.strip_prefix("mask.") {
            let (feat, suffix) = rest.rsplit_once('.')?;
            let i = self.features.iter().position(|f| f == feat)?;
            let st = &mut self.masks[i];
            if st.m.is_empty() {
                return None;
            }
            return dense_state(st, suffix);
        }
        let rest = name.strip_prefix("mlp.")?;
        let mut parts = rest.split('.');
        let i: usize = parts.next()?.parse().ok()?;
        let which = parts.next()?;
        let suffix = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let st = match which {
            "w" => self.w.get_mut(i)?,
            "b" => self.b.get_mut(i)?,
            _ => return None,
        };
        dense_state(st, suffix)
    }
}

fn dense_state<'a, F>(st: &'a mut DenseAdam<F>, suffix: &str) -> Option<&'a mut [F]> {
    match suffix {
        "m" => Some(&mut st.m[..]),
        "v" => Some(&mut st.v[..]),
        _ => None,
    }
}

/// The optimizer of a [`TwoTower`]: a [`SparseOptimizer`] per embedding table
/// and a [`DenseAdam`] per dense tensor, plus the global step counter.
#[derive(Clone, Debug, PartialEq)]
pub struct Optimizer<F> {
    /// Hyper-parameters; may be changed between steps (e.g. a learning-rate
    /// schedule), except `sparse`, which fixes the state layout at creation.
    pub config: OptimConfig,
    user: TowerState<F>,
    item: TowerState<F>,
    /// The step counter as four 16-bit limbs (little-endian), each exactly
    /// representable in f32, so that it checkpoints as the tensor `step`.
    step_limbs: [F; 4],
    /// Wall-clock time of the sparse and dense updates, accumulated over
    /// steps (not part of the state: never checkpointed).
    pub times: OptimTimes,
}

/// Time spent in [`Optimizer::step`], split into the sparse embedding-row
/// updates and the dense tensor updates, accumulated over steps.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OptimTimes {
    /// Row-wise updates of the touched embedding rows (both towers).
    pub sparse: Duration,
    /// Adam/AdamW updates of the MLP weights, biases and mask vectors.
    pub dense: Duration,
}

/// Bytes of optimizer state that [`Optimizer::new`] allocates for `model`
/// (f32: 4 bytes a value): per embedding table Adam `2·rows·dim`, Adagrad
/// `rows·dim` (row-wise: `rows`); per dense tensor Adam `2·len`. Known
/// before the allocation, so a run can refuse a model the machine cannot
/// hold before it starts.
pub fn state_bytes<F: Real>(model: &TwoTower<F>, cfg: &OptimConfig) -> u64 {
    let per_table = |rows: usize, dim: usize| -> u64 {
        let values = match cfg.sparse {
            SparseOptimizerKind::Adam => 2 * rows * dim,
            SparseOptimizerKind::Adagrad { row_wise: false } => rows * dim,
            SparseOptimizerKind::Adagrad { row_wise: true } => rows,
        };
        values as u64
    };
    let mut values = 0u64;
    for tower in [&model.user, &model.item] {
        values += tower
            .tables
            .iter()
            .map(|t| per_table(t.rows, t.dim))
            .sum::<u64>();
        let dense: usize = tower
            .layers
            .iter()
            .map(|l| l.w.len() + l.b.len())
            .sum::<usize>()
            + tower.mask_vectors.iter().map(|m| m.len()).sum::<usize>();
        values += 2 * dense as u64;
    }
    values * std::mem::size_of::<F>() as u64
}

impl<F: Real> Optimizer<F> {
    /// Fresh state for `model` (allocates O(parameters) once: Adagrad one
    /// accumulator per element or row, Adam two moments per element).
    pub fn new(model: &TwoTower<F>, cfg: &OptimConfig) -> Self {
        Self {
            config: cfg.clone(),
            user: TowerState::new(&model.user, cfg),
            item: TowerState::new(&model.item, cfg),
            step_limbs: [F::zero(); 4],
            times: OptimTimes::default(),
        }
    }

    /// Steps taken so far (`t` of the next bias correction is this + 1).
    pub fn step_count(&self) -> u64 {
        self.step_limbs
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_f64() as u64 & 0xFFFF) << (16 * i))
            .sum()
    }

    /// Sets the step counter (restoring a checkpoint).
    pub fn set_step_count(&mut self, t: u64) {
        for (i, l) in self.step_limbs.iter_mut().enumerate() {
            *l = F::lit(((t >> (16 * i)) & 0xFFFF) as f64);
        }
    }

    /// One update of every parameter from `grads` (as left by
    /// [`TwoTower::loss_and_grads`]): increments the step counter, computes the
    /// clipping factor `min(1, c/‖g‖)` when `clip_grad_norm = Some(c)`, then
    /// updates the touched embedding rows and every dense tensor.
    ///
    /// # Panics
    /// If `model` or `grads` are not shaped like the model this optimizer
    /// was created for.
    pub fn step(&mut self, model: &mut TwoTower<F>, grads: &ModelGrads<F>) {
        let t = self.step_count() + 1;
        self.set_step_count(t);
        let c = &self.config;
        let scale = match c.clip_grad_norm {
            Some(max) => {
                let n = grads.global_norm();
                if n > max && n > 0.0 {
                    max / n
                } else {
                    1.0
                }
            }
            None => 1.0,
        };
        let sparse = StepParams {
            lr: F::lit(c.sparse_lr),
            beta1: F::lit(c.beta1),
            beta2: F::lit(c.beta2),
            eps: F::lit(c.eps),
            weight_decay: F::zero(),
            grad_scale: F::lit(scale),
            t,
        };
        let dense = StepParams {
            lr: F::lit(c.dense_lr),
            weight_decay: F::lit(c.weight_decay),
            ..sparse
        };
        // The two towers share nothing: update them on two threads, the
        // sparse embedding rows first, then the dense tensors (timed apart).
        let (us, is) = (&mut self.user, &mut self.item);
        let (um, im) = (&mut model.user, &mut model.item);
        let t0 = Instant::now();
        rayon::join(
            || us.step_sparse(um, &grads.user, &sparse),
            || is.step_sparse(im, &grads.item, &sparse),
        );
        let t1 = Instant::now();
        rayon::join(
            || us.step_dense(um, &grads.user, &dense),
            || is.step_dense(im, &grads.item, &dense),
        );
        let t2 = Instant::now();
        self.times.sparse += t1 - t0;
        self.times.dense += t2 - t1;
    }

    /// Every state tensor as `(name, shape, values)` for checkpoints: `step`
    /// `[4]` (the step counter as 16-bit limbs, see [`Optimizer::step_count`]),
    /// then per tower (`user`, `item`): `<tower>.emb.<feature>.acc` (Adagrad;
    /// `[rows × dim]`, or `[rows]` row-wise) or `.m`/`.v` (Adam, `[rows × dim]`),
    /// `<tower>.mask.<feature>.m/.v` (learned masks, `[dim]`),
    /// `<tower>.mlp.<i>.w.m/.v` and `<tower>.mlp.<i>.b.m/.v` (flat, `[len]`).
    pub fn named_state(&self) -> Vec<(String, Vec<usize>, &[F])> {
        let mut v: Vec<(String, Vec<usize>, &[F])> =
            vec![("step".to_string(), vec![4], &self.step_limbs[..])];
        self.user.named("user", &mut v);
        self.item.named("item", &mut v);
        v
    }

    /// The state tensor `name` of [`Optimizer::named_state`], mutable, or
    /// `None` for an unknown name. Writing `step` sets the step counter.
    pub fn state_mut(&mut self, name: &str) -> Option<&mut [F]> {
        if name == "step" {
            return Some(&mut self.step_limbs[..]);
        }
        if let Some(rest) = name.strip_prefix("user.") {
            self.user.state_mut(rest)
        } else if let Some(rest) = name.strip_prefix("item.") {
            self.item.state_mut(rest)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedding::embedding_bag_backward;
    use crate::tower::{FeatureSpec, MaskEmbedding, TowerSpec};
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const ROWS: usize = 6;
    const DIM: usize = 2;

    fn params(lr: f64, t: u64) -> StepParams<f64> {
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

    #[test]
    fn adamw_first_step_by_hand() {
        // p = 1, g = 0.5, lr = 0.1, λ = 0.01: first Adam step has m̂ = g, v̂ = g²,
        // p ← 1·(1 − 0.1·0.01) − 0.1·0.5/(0.5 + 1e-8) = 0.999 − 0.099999998 = 0.899000002
        let mut st = DenseAdam::<f64>::new(1);
        let mut p = [1.0];
        st.step(
            &mut p,
            &[0.5],
            &StepParams {
                weight_decay: 0.01,
                ..params(0.1, 1)
            },
        );
        assert!((p[0] - 0.899000002).abs() < 1e-9, "{}", p[0]);
        // Adam without decay: 1 − 0.099999998 = 0.900000002
        let mut st = DenseAdam::<f64>::new(1);
        let mut p = [1.0];
        st.step(&mut p, &[0.5], &params(0.1, 1));
        assert!((p[0] - 0.900000002).abs() < 1e-9, "{}", p[0]);
    }

    fn tiny() -> TwoTower<f32> {
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

    #[test]
    fn clipping_scales_gradients_to_the_global_norm() {
        // One gradient entry of 3 and one of 4: global norm 5, clip 1 → scale 0.2.
        // Adagrad (acc0 = 1, lr 1, ε 0): effective g = 0.6 → E −= 0.6/√(1 + 0.36) = 0.514495755
        let mut model = tiny();
        let cfg = OptimConfig {
            sparse_lr: 1.0,
            eps: 0.0,
            adagrad_initial_accumulator: 1.0,
            clip_grad_norm: Some(1.0),
            ..OptimConfig::default()
        };
        let mut opt = Optimizer::new(&model, &cfg);
        let mut grads = ModelGrads::new(&model);
        grads.user.tables[0].row_mut(4)[0] = 3.0;
        grads.item.layers[0].db[1] = 4.0;
        assert!((grads.global_norm() - 5.0).abs() < 1e-12);
        let before = model.user.tables[0].row(4)[0];
        let before_other = model.user.tables[0].row(5).to_vec();
        opt.step(&mut model, &grads);
        let moved = before - model.user.tables[0].row(4)[0];
        assert!((f64::from(moved) - 0.514495755).abs() < 1e-6, "{moved}");
        assert_eq!(model.user.tables[0].row(5), &before_other[..]);
        assert_eq!(opt.step_count(), 1);
    }

    #[test]
    fn named_state_round_trips_and_step_counter_is_exact() {
        let model = tiny();
        for sparse in [
            SparseOptimizerKind::Adam,
            SparseOptimizerKind::Adagrad { row_wise: true },
        ] {
            let mut opt = Optimizer::new(
                &model,
                &OptimConfig {
                    sparse,
                    ..OptimConfig::default()
                },
            );
            opt.set_step_count(123_456_789_012);
            assert_eq!(opt.step_count(), 123_456_789_012);
            let names: Vec<(String, Vec<usize>)> = opt
                .named_state()
                .into_iter()
                .map(|(n, s, _)| (n, s))
                .collect();
            assert_eq!(names[0], ("step".to_string(), vec![4]));
            let expect_emb = match sparse {
                SparseOptimizerKind::Adam => vec![
                    ("user.emb.u.m".to_string(), vec![10, 2]),
                    ("user.emb.u.v".to_string(), vec![10, 2]),
                ],
                _ => vec![("user.emb.u.acc".to_string(), vec![10])],
            };
            assert_eq!(names[1..1 + expect_emb.len()], expect_emb[..]);
            assert!(names.iter().any(|(n, _)| n == "item.mask.i.v"));
            assert!(names.iter().any(|(n, _)| n == "item.mlp.1.b.m"));
            // Copy every state tensor into a fresh optimizer: identical.
            let mut fresh = Optimizer::new(
                &model,
                &OptimConfig {
                    sparse,
                    ..OptimConfig::default()
                },
            );
            let saved: Vec<(String, Vec<f32>)> = opt
                .named_state()
                .into_iter()
                .map(|(n, _, d)| (n, d.to_vec()))
                .collect();
            for (n, d) in &saved {
                fresh
                    .state_mut(n)
                    .unwrap_or_else(|| panic!("{n}"))
                    .copy_from_slice(d);
            }
            assert_eq!(fresh, opt);
            assert!(fresh.state_mut("user.emb.nope.m").is_none());
            assert!(fresh.state_mut("user.mlp.0.w.x").is_none());
        }
    }

    #[test]
    fn state_bytes_is_what_new_allocates() {
        // tiny(): per tower one 10×2 table, layers 2→3→2 (w 6 + b 3, w 6 + b 2
        // = 17 dense values), one learned mask vector of 2: dense 19.
        let model = tiny();
        for (sparse, table_values) in [
            (SparseOptimizerKind::Adam, 2 * 10 * 2),
            (SparseOptimizerKind::Adagrad { row_wise: false }, 10 * 2),
            (SparseOptimizerKind::Adagrad { row_wise: true }, 10),
        ] {
            let cfg = OptimConfig {
                sparse,
                ..OptimConfig::default()
            };
            let opt = Optimizer::new(&model, &cfg);
            // every state tensor but the 4-limb step counter
            let allocated: usize = opt
                .named_state()
                .iter()
                .filter(|(n, _, _)| n != "step")
                .map(|(_, _, d)| d.len())
                .sum();
            let want = 2 * (table_values + 2 * 19);
            assert_eq!(allocated, want, "{sparse:?}");
            assert_eq!(state_bytes(&model, &cfg), 4 * want as u64, "{sparse:?}");
        }
    }
}
