//! [`Optimizer`]: the optimizer of a whole [`TwoTower`] — per tower a
//! [`SparseOptimizer`] per embedding table and a [`DenseAdam`] per dense
//! tensor (MLP weights and biases, learned mask vectors), and the global
//! step counter; the step that updates them all (the two towers on two
//! threads, embedding rows first, then the dense tensors); the state
//! tensors' names for checkpoints; [`state_bytes`], what [`Optimizer::new`]
//! will allocate. A step costs O(touched rows · dim + dense parameters),
//! never O(vocabulary).

use std::time::{Duration, Instant};

use crate::model::{ModelGrads, TwoTower};
use crate::real::Real;
use crate::tower::{Tower, TowerGrads};

use super::clip::clip_scale;
use super::{DenseAdam, OptimConfig, SparseOptimizer, SparseOptimizerKind, StepParams};

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
        let scale = clip_scale(c.clip_grad_norm, grads);
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
    use crate::optim::test_util::tiny;

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
