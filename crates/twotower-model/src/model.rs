//! The two-tower model and its joint loss `L = L_main + α · L_self`
//! (GRADIENTS.md "Joint loss"; Yi et al. 2019 for the main task, Yao et al.
//! 2021 for the self-supervised item-tower task).
//!
//! One call of [`TwoTower::loss_and_grads`] runs: user tower and item tower
//! forward → in-batch softmax (logQ, accidental hits, mixed negatives,
//! weights) → both towers backward; then, with an SSL batch, the item tower
//! forward on both augmented views → InfoNCE → item tower backward on both
//! views scaled by α. The item tower's gradient is the sum of its three
//! passes. Buffers live in a [`Workspace`] and [`ModelGrads`]; the steady
//! state allocates nothing.

use std::time::{Duration, Instant};

use ndarray::{ArrayView2, ArrayViewMut2};
use rand::Rng;

use crate::loss::{
    ensure_len, in_batch_softmax, info_nce, info_nce_symmetric, CellMask, SoftmaxWorkspace,
};
use crate::real::Real;
use crate::tower::{SpecError, Tower, TowerBatch, TowerCache, TowerGrads, TowerSpec};

/// A user tower and an item tower; a (user, item) score is the dot product
/// (= cosine) of their outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct TwoTower<F> {
    /// The user (query) tower.
    pub user: Tower<F>,
    /// The item (candidate) tower.
    pub item: Tower<F>,
    /// A user-tower feature that reads an item-tower table instead of its
    /// own (the history feature sharing the item-id table), or `None`.
    pub shared: Option<SharedTable>,
}

/// A user-tower feature whose embedding table is an item-tower feature's
/// table (`model.history.share_item_table`): one set of rows, trained by
/// both towers. The user tower keeps a 1-row placeholder table for it;
/// [`TwoTower::loss_and_grads`] moves that feature's gradient into the item
/// table's, so the optimizer updates each shared row once with the sum of
/// both towers' gradients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedTable {
    /// Index of the feature in the user tower.
    pub user_feature: usize,
    /// Index of the feature in the item tower whose table it reads.
    pub item_feature: usize,
}

/// The main-task batch.
///
/// # Shapes
/// `users`: `B` rows; `items`: `C = B + M` rows — row i's positive is item row
/// i, followed by `M` mixed negatives; `item_ids`: `C` (catalog index of each
/// candidate, for the accidental-hit test); `log_q`: `C` (`log p_j`) or empty
/// (no logQ correction); `weights`: `B` or empty (all 1); `mask_offsets`:
/// `B + 1` or empty, `mask_cols`: the false-negative cells of each row (see
/// [`CellMask`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MainBatch<F> {
    /// User-tower input, `B` rows.
    pub users: TowerBatch,
    /// Item-tower input, `C ≥ B` rows.
    pub items: TowerBatch,
    /// Catalog index of each candidate, `C`.
    pub item_ids: Vec<u32>,
    /// `log p_j` of each candidate (not divided by τ), `C`, or empty.
    pub log_q: Vec<F>,
    /// Example weights, `B`, or empty.
    pub weights: Vec<F>,
    /// False-negative mask, CSR row offsets (`B + 1`), or empty for none.
    pub mask_offsets: Vec<u32>,
    /// False-negative mask: the masked columns of each row.
    pub mask_cols: Vec<u32>,
}

/// The self-supervised batch: two augmented views of the same `m` items
/// (row i of `view1` and of `view2` are the same item).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SslBatch {
    /// First view, `m` rows.
    pub view1: TowerBatch,
    /// Second view, `m` rows.
    pub view2: TowerBatch,
}

/// Loss hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossConfig<F> {
    /// Temperature τ of the in-batch softmax (> 0).
    pub temperature: F,
    /// Mask accidental hits (candidate j ≠ i with the same item as row i).
    pub mask_accidental_hits: bool,
    /// Temperature τ_ssl of InfoNCE (> 0).
    pub ssl_temperature: F,
    /// Weight α of the SSL loss.
    pub ssl_weight: F,
    /// Stop-gradient on SSL view 2 (`ssl.stop_gradient`): view 2's vectors
    /// are InfoNCE's fixed targets, only view 1's pass is backpropagated
    /// (a stop-gradient target as in BYOL, Grill et al. 2020, and SimSiam,
    /// Chen & He 2021, here with InfoNCE's negatives). With cold-start views
    /// the rows only the whole item reads (its id row) get no SSL gradient;
    /// the shared content rows and MLP still do, through view 1. With
    /// `ssl_symmetric` both directions stop at view 2.
    pub ssl_stop_gradient: bool,
    /// Symmetric InfoNCE (`ssl.symmetric`): [`info_nce_symmetric`], the mean
    /// of the view 1 → view 2 and view 2 → view 1 losses (CLIP's loss,
    /// Radford et al. 2021), instead of the one-directional [`info_nce`].
    pub ssl_symmetric: bool,
}

/// Loss values of one step (f64 for logging).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossParts {
    /// `L_main` (in-batch softmax).
    pub main: f64,
    /// `L_self` (InfoNCE, unweighted; 0 without an SSL batch).
    pub ssl: f64,
    /// `L_main + α · L_self`.
    pub total: f64,
}

/// Wall-clock time spent in each phase of [`TwoTower::loss_and_grads`],
/// accumulated over calls (reset with [`StepTimes::reset`]). Two
/// `Instant::now()` reads per phase: cheap enough to be always on.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepTimes {
    /// User and item tower forward passes of the main batch.
    pub forward: Duration,
    /// In-batch softmax (scores, log-sum-exp, score gradients).
    pub loss: Duration,
    /// User and item tower backward passes of the main batch.
    pub backward: Duration,
    /// The SSL task: both views forward, InfoNCE, both views backward.
    pub ssl: Duration,
    /// Number of calls accumulated.
    pub calls: u64,
}

impl StepTimes {
    /// Zeroes every phase.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

/// Reusable buffers of a training step (activations, score matrix, output
/// gradients). Grows to the largest batch seen, never shrinks.
#[derive(Clone, Debug, Default)]
pub struct Workspace<F> {
    /// Time per phase, accumulated over calls.
    pub times: StepTimes,
    /// User tower activations.
    pub user: TowerCache<F>,
    /// Item tower activations of the main pass.
    pub item: TowerCache<F>,
    /// Item tower activations of SSL view 1.
    pub ssl1: TowerCache<F>,
    /// Item tower activations of SSL view 2.
    pub ssl2: TowerCache<F>,
    /// Score matrices.
    pub softmax: SoftmaxWorkspace<F>,
    du: Vec<F>,
    dv: Vec<F>,
    dz1: Vec<F>,
    dz2: Vec<F>,
}

/// Gradients of both towers.
#[derive(Clone, Debug)]
pub struct ModelGrads<F> {
    /// User tower gradients.
    pub user: TowerGrads<F>,
    /// Item tower gradients.
    pub item: TowerGrads<F>,
}

impl<F: Real> ModelGrads<F> {
    /// Zero gradients shaped like `model`.
    pub fn new(model: &TwoTower<F>) -> Self {
        Self {
            user: TowerGrads::new(&model.user),
            item: TowerGrads::new(&model.item),
        }
    }

    /// Resets every gradient (keeps capacity).
    pub fn zero(&mut self) {
        self.user.zero();
        self.item.zero();
    }

    /// Global gradient norm `√(Σ g²)` over every gradient value, in f64.
    pub fn global_norm(&self) -> f64 {
        (self.user.sum_sq() + self.item.sum_sq()).sqrt()
    }
}

impl<F: Real> TwoTower<F> {
    /// A freshly initialized model (user tower first, then item tower, from
    /// the same rng: deterministic for a seeded rng).
    ///
    /// # Errors
    /// The first invalid spec ([`TowerSpec::validate`]), or
    /// [`SpecError::OutDimMismatch`].
    pub fn new(user: TowerSpec, item: TowerSpec, rng: &mut impl Rng) -> Result<Self, SpecError> {
        if user.out_dim != item.out_dim {
            // Scores are dot products: both towers must agree.
            return Err(SpecError::OutDimMismatch {
                user: user.out_dim,
                item: item.out_dim,
            });
        }
        Ok(Self {
            user: Tower::try_new(user, rng)?,
            item: Tower::try_new(item, rng)?,
            shared: None,
        })
    }

    /// The user tower's shared-table override for [`Tower::forward_with`].
    pub fn user_shared(&self) -> Option<(usize, &crate::embedding::EmbeddingTable<F>)> {
        self.shared
            .map(|s| (s.user_feature, &self.item.tables[s.item_feature]))
    }

    /// User vectors of `entities` ([`Tower::encode`] through the shared table, if any).
    ///
    /// # Shapes
    /// As [`Tower::encode`]: `out` `[N × out_dim]`.
    pub fn encode_users(
        &self,
        columns: &[crate::tower::FeatureColumn],
        entities: &[u32],
        out: &mut ndarray::Array2<f32>,
    ) {
        self.user
            .encode_with(columns, entities, out, self.user_shared());
    }

    /// Joint loss and gradients of one step: zeroes `grads`, then computes
    /// `L = L_main + α · L_self` and accumulates `dL/dθ` for both towers.
    ///
    /// `L_main` is [`in_batch_softmax`] over `main` with `cfg.temperature`
    /// and `cfg.mask_accidental_hits`; `L_self` is the one-directional
    /// [`info_nce`] between the two views of `ssl` at `cfg.ssl_temperature`
    /// ([`info_nce_symmetric`] with `cfg.ssl_symmetric`; 0 when `ssl` is
    /// `None`). The item tower receives
    /// `dL_main + α · dL_self` from its three passes (two with
    /// `cfg.ssl_stop_gradient`: view 2 is then a constant target).
    ///
    /// # Panics
    /// On inconsistent shapes (see [`MainBatch`], [`in_batch_softmax`]) or
    /// SSL views of different sizes.
    pub fn loss_and_grads(
        &self,
        main: &MainBatch<F>,
        ssl: Option<&SslBatch>,
        cfg: &LossConfig<F>,
        ws: &mut Workspace<F>,
        grads: &mut ModelGrads<F>,
    ) -> LossParts {
        grads.zero();
        let b = main.users.len();
        let c = main.items.len();
        let d = self.user.spec.out_dim;
        assert_eq!(
            d, self.item.spec.out_dim,
            "user and item towers differ in out_dim"
        );

        let t0 = Instant::now();
        {
            let (wu, wi) = (&mut ws.user, &mut ws.item);
            let shared = self.user_shared();
            rayon::join(
                || self.user.forward_with(&main.users, wu, shared),
                || self.item.forward(&main.items, wi),
            );
        }
        let t1 = Instant::now();
        let du =
            ArrayViewMut2::from_shape((b, d), ensure_len(&mut ws.du, b * d)).expect("du shape");
        let dv =
            ArrayViewMut2::from_shape((c, d), ensure_len(&mut ws.dv, c * d)).expect("dv shape");
        let l_main = in_batch_softmax(
            ws.user.output(),
            ws.item.output(),
            &main.item_ids,
            &main.log_q,
            &main.weights,
            cfg.temperature,
            cfg.mask_accidental_hits,
            CellMask {
                offsets: &main.mask_offsets,
                cols: &main.mask_cols,
            },
            du,
            dv,
            &mut ws.softmax,
        );
        let t2 = Instant::now();
        let du = ArrayView2::from_shape((b, d), &ws.du[..b * d]).expect("du shape");
        let dv = ArrayView2::from_shape((c, d), &ws.dv[..c * d]).expect("dv shape");
        {
            let (wu, wi) = (&mut ws.user, &mut ws.item);
            let (gu, gi) = (&mut grads.user, &mut grads.item);
            rayon::join(
                || self.user.backward(&main.users, wu, du, gu),
                || self.item.backward(&main.items, wi, dv, gi),
            );
            if let Some(sh) = self.shared {
                // the user tower's gradient of the shared feature belongs to
                // the item table's rows: sum it in, leave nothing behind
                let (from, to) = (
                    &mut grads.user.tables[sh.user_feature],
                    &mut grads.item.tables[sh.item_feature],
                );
                for (r, g) in from.iter() {
                    for (a, &x) in to.row_mut(r).iter_mut().zip(g) {
                        *a += x;
                    }
                }
                from.clear();
            }
        }
        let t3 = Instant::now();

        let mut l_ssl = 0.0;
        if let Some(ssl) = ssl {
            let m = ssl.view1.len();
            assert_eq!(ssl.view2.len(), m, "SSL views differ in size");
            {
                let (w1, w2) = (&mut ws.ssl1, &mut ws.ssl2);
                rayon::join(
                    || self.item.forward(&ssl.view1, w1),
                    || self.item.forward(&ssl.view2, w2),
                );
            }
            let mut dz1 = ArrayViewMut2::from_shape((m, d), ensure_len(&mut ws.dz1, m * d))
                .expect("dz shape");
            let mut dz2 = ArrayViewMut2::from_shape((m, d), ensure_len(&mut ws.dz2, m * d))
                .expect("dz shape");
            let nce = if cfg.ssl_symmetric {
                info_nce_symmetric
            } else {
                info_nce
            };
            l_ssl = nce(
                ws.ssl1.output(),
                ws.ssl2.output(),
                cfg.ssl_temperature,
                dz1.view_mut(),
                dz2.view_mut(),
                &mut ws.softmax,
            )
            .as_f64();
            dz1.mapv_inplace(|g| g * cfg.ssl_weight);
            if !cfg.ssl_stop_gradient {
                // view 2's gradient is read only by its backward pass
                dz2.mapv_inplace(|g| g * cfg.ssl_weight);
            }
            let dz1 = ArrayView2::from_shape((m, d), &ws.dz1[..m * d]).expect("dz shape");
            let dz2 = ArrayView2::from_shape((m, d), &ws.dz2[..m * d]).expect("dz shape");
            self.item
                .backward(&ssl.view1, &mut ws.ssl1, dz1, &mut grads.item);
            if !cfg.ssl_stop_gradient {
                self.item
                    .backward(&ssl.view2, &mut ws.ssl2, dz2, &mut grads.item);
            }
        }
        let t4 = Instant::now();
        let times = &mut ws.times;
        times.forward += t1 - t0;
        times.loss += t2 - t1;
        times.backward += t3 - t2;
        if ssl.is_some() {
            times.ssl += t4 - t3;
        }
        times.calls += 1;
        let l_main = l_main.as_f64();
        LossParts {
            main: l_main,
            ssl: l_ssl,
            total: l_main + cfg.ssl_weight.as_f64() * l_ssl,
        }
    }

    /// Every parameter tensor as `(name, shape, values)`, user tower first:
    /// `user.emb.<feature>` `[vocab × dim]`, `user.mask.<feature>` `[dim]`
    /// (learned mask only), `user.mlp.<i>.w` `[in × out]`, `user.mlp.<i>.b`
    /// `[out]`, then the same with `item.`. Values are row-major.
    pub fn named_tensors(&self) -> Vec<(String, Vec<usize>, &[F])> {
        let mut v = self.user.named_tensors("user");
        v.extend(self.item.named_tensors("item"));
        v
    }

    /// The tensor `name` of [`TwoTower::named_tensors`], mutable, or `None`
    /// for an unknown name.
    pub fn tensor_mut(&mut self, name: &str) -> Option<&mut [F]> {
        if let Some(rest) = name.strip_prefix("user.") {
            self.user.tensor_mut(rest)
        } else if let Some(rest) = name.strip_prefix("item.") {
            self.item.tensor_mut(rest)
        } else {
            None
        }
    }
}
