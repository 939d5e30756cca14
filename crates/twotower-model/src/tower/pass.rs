//! The forward and backward passes of a tower: [`Tower::forward`] keeps
//! every activation backward needs in a [`TowerCache`];
//! [`Tower::backward`] accumulates into [`TowerGrads`] (sparse per embedding
//! table, dense per layer), so that the item tower can take the main pass
//! and the two SSL passes into the same gradient. All buffers grow to the
//! largest batch seen and are then reused: a steady-state step allocates
//! nothing.

use ndarray::{s, ArrayView2, ArrayViewMut2};

use crate::embedding::{
    embedding_bag_backward, embedding_bag_forward, weighted_bag_backward, weighted_bag_forward,
    EmbeddingTable, SparseGrad,
};
use crate::layers::{
    l2_normalize_backward_inplace, l2_normalize_forward, relu_backward, relu_forward, LinearGrad,
};
use crate::loss::ensure_len;
use crate::real::Real;

use super::{MaskEmbedding, Tower, TowerBatch};

/// Activations of one forward pass, kept for backward, and backward scratch.
/// Reused across steps (grows to the largest batch, never shrinks).
#[derive(Clone, Debug, Default)]
pub struct TowerCache<F> {
    batch: usize,
    in_dim: usize,
    out_dim: usize,
    /// Concatenated bags `[B × in_dim]`.
    x0: Vec<F>,
    /// Per layer output `[B × width]`: post-ReLU for hidden layers, pre-norm for the last.
    acts: Vec<Vec<F>>,
    widths: Vec<usize>,
    /// Normalized output `[B × out_dim]`.
    out: Vec<F>,
    /// Row norms before normalization `[B]`.
    norms: Vec<F>,
    /// Backward scratch `[B × max width]` (two, ping-pong) and `[B × in_dim]`.
    da: Vec<F>,
    db: Vec<F>,
    dx0: Vec<F>,
}

impl<F: Real> TowerCache<F> {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tower output of the last forward pass.
    ///
    /// # Shapes
    /// `[B × out_dim]`, rows unit-norm (or zero when the pre-norm row was 0).
    pub fn output(&self) -> ArrayView2<'_, F> {
        ArrayView2::from_shape(
            (self.batch, self.out_dim),
            &self.out[..self.batch * self.out_dim],
        )
        .expect("cache shape")
    }

    /// Rows of the last forward pass.
    pub fn batch_len(&self) -> usize {
        self.batch
    }
}

/// Gradients of a tower: sparse per embedding table, dense per layer and
/// learned mask vector. Accumulated by [`Tower::backward`]; [`TowerGrads::zero`]
/// resets them in O(batch + dense parameters).
#[derive(Clone, Debug)]
pub struct TowerGrads<F> {
    /// One sparse gradient per feature table.
    pub tables: Vec<SparseGrad<F>>,
    /// Per feature: gradient of the learned mask vector (`dim`), or empty.
    pub mask_vectors: Vec<Vec<F>>,
    /// Per layer: `dW`, `db`.
    pub layers: Vec<LinearGrad<F>>,
}

impl<F: Real> TowerGrads<F> {
    /// Zero gradients shaped like `tower`.
    pub fn new(tower: &Tower<F>) -> Self {
        Self {
            tables: tower
                .tables
                .iter()
                .map(|t| SparseGrad::new(t.dim))
                .collect(),
            mask_vectors: tower
                .mask_vectors
                .iter()
                .map(|m| vec![F::zero(); m.len()])
                .collect(),
            layers: tower
                .layers
                .iter()
                .map(|l| LinearGrad::zeros(l.in_dim(), l.out_dim()))
                .collect(),
        }
    }

    /// Resets every gradient to zero (sparse ones to no rows), keeping capacity.
    pub fn zero(&mut self) {
        for t in &mut self.tables {
            t.clear();
        }
        for m in &mut self.mask_vectors {
            m.fill(F::zero());
        }
        for l in &mut self.layers {
            l.zero();
        }
    }

    /// Σ g² over every gradient value, in f64 (for global-norm clipping).
    pub fn sum_sq(&self) -> f64 {
        let sq = |s: &[F]| s.iter().map(|&g| g.as_f64() * g.as_f64()).sum::<f64>();
        self.tables.iter().map(|t| t.sum_sq()).sum::<f64>()
            + self.mask_vectors.iter().map(|m| sq(m)).sum::<f64>()
            + self
                .layers
                .iter()
                .map(|l| {
                    sq(l.dw.as_slice().expect("standard layout"))
                        + sq(l.db.as_slice().expect("standard layout"))
                })
                .sum::<f64>()
    }
}

impl<F: Real> Tower<F> {
    fn mask_vector(&self, f: usize) -> Option<&[F]> {
        match self.spec.mask_embedding {
            MaskEmbedding::Learned => Some(&self.mask_vectors[f]),
            MaskEmbedding::Zero => None,
        }
    }

    /// Forward pass of `batch`; the output is [`TowerCache::output`] and the
    /// activations stay in `cache` for [`Tower::backward`].
    ///
    /// # Shapes
    /// `batch`: `B ≥ 1` rows, one [`BatchFeature`](super::BatchFeature) per
    /// feature; output `[B × out_dim]`.
    ///
    /// # Panics
    /// On a batch with the wrong number of features, inconsistent offsets or
    /// an id out of range of its table.
    pub fn forward(&self, batch: &TowerBatch, cache: &mut TowerCache<F>) {
        self.forward_with(batch, cache, None);
    }

    /// [`Tower::forward`] with feature `f`'s table replaced by `shared =
    /// Some((f, table))`: the user tower's history feature reading the item
    /// tower's id table (`model.history.share_item_table`). Its gradient still
    /// lands in this tower's `grads.tables[f]`; the caller moves it to the
    /// owner ([`crate::model::TwoTower`]).
    ///
    /// # Panics
    /// As [`Tower::forward`], and if the shared table's dim differs from the spec's.
    pub fn forward_with(
        &self,
        batch: &TowerBatch,
        cache: &mut TowerCache<F>,
        shared: Option<(usize, &EmbeddingTable<F>)>,
    ) {
        assert_eq!(
            batch.features.len(),
            self.spec.features.len(),
            "Tower::forward: batch has {} features, the tower {}",
            batch.features.len(),
            self.spec.features.len()
        );
        let b = batch.len();
        let in_dim = self.spec.input_dim();
        let out_dim = self.spec.out_dim;
        cache.batch = b;
        cache.in_dim = in_dim;
        cache.out_dim = out_dim;
        cache.widths.clear();
        cache.widths.extend(self.layers.iter().map(|l| l.out_dim()));
        if cache.acts.len() < self.layers.len() {
            cache.acts.resize_with(self.layers.len(), Vec::new);
        }

        // Embedding bags → column blocks of x0.
        let mut x0 = ArrayViewMut2::from_shape((b, in_dim), ensure_len(&mut cache.x0, b * in_dim))
            .expect("x0 shape");
        let mut off = 0;
        for (f, (feat, own)) in batch.features.iter().zip(&self.tables).enumerate() {
            assert_eq!(
                feat.offsets.len(),
                b + 1,
                "Tower::forward: feature {f} offsets len"
            );
            let table = match shared {
                Some((g, t)) if g == f => {
                    assert_eq!(t.dim, own.dim, "Tower::forward: shared table dim");
                    t
                }
                _ => own,
            };
            let block = x0.slice_mut(s![.., off..off + table.dim]);
            if feat.weights.is_empty() {
                embedding_bag_forward(
                    table,
                    &feat.offsets,
                    &feat.values,
                    &feat.masked,
                    self.mask_vector(f),
                    block,
                );
            } else {
                weighted_bag_forward(table, &feat.offsets, &feat.values, &feat.weights, block);
            }
            off += table.dim;
        }

        // MLP.
        let n_layers = self.layers.len();
        for (l, layer) in self.layers.iter().enumerate() {
            let (before, rest) = cache.acts.split_at_mut(l);
            let input: ArrayView2<F> = if l == 0 {
                ArrayView2::from_shape((b, in_dim), &cache.x0[..b * in_dim]).expect("x0 shape")
            } else {
                let w = layer.in_dim();
                ArrayView2::from_shape((b, w), &before[l - 1][..b * w]).expect("act shape")
            };
            let w = layer.out_dim();
            let mut y = ArrayViewMut2::from_shape((b, w), ensure_len(&mut rest[0], b * w))
                .expect("act shape");
            layer.forward(input, y.view_mut());
            if l + 1 < n_layers {
                relu_forward(y);
            }
        }

        // L2 normalization.
        let z = ArrayView2::from_shape((b, out_dim), &cache.acts[n_layers - 1][..b * out_dim])
            .expect("z shape");
        let y = ArrayViewMut2::from_shape((b, out_dim), ensure_len(&mut cache.out, b * out_dim))
            .expect("out shape");
        l2_normalize_forward(z, y, ensure_len(&mut cache.norms, b));
    }

    /// Backward pass of the last [`Tower::forward`] of `batch` (same batch,
    /// same cache), given `dout = dL/d output`. ACCUMULATES into `grads`.
    ///
    /// # Shapes
    /// `dout`: `[B × out_dim]`.
    ///
    /// # Panics
    /// If `dout` or `batch` do not match the cached forward pass.
    pub fn backward(
        &self,
        batch: &TowerBatch,
        cache: &mut TowerCache<F>,
        dout: ArrayView2<F>,
        grads: &mut TowerGrads<F>,
    ) {
        let b = cache.batch;
        let in_dim = cache.in_dim;
        let out_dim = self.spec.out_dim;
        assert_eq!(
            batch.len(),
            b,
            "Tower::backward: batch differs from the forward pass"
        );
        assert_eq!(dout.dim(), (b, out_dim), "Tower::backward: dout shape");
        assert_eq!(
            grads.layers.len(),
            self.layers.len(),
            "Tower::backward: grads shape"
        );
        let max_w = cache.widths.iter().copied().max().unwrap_or(0).max(out_dim);
        ensure_len(&mut cache.da, b * max_w);
        ensure_len(&mut cache.db, b * max_w);
        ensure_len(&mut cache.dx0, b * in_dim);
        let n_layers = self.layers.len();

        // dz = L2 backward of dout, in da.
        {
            let mut d = ArrayViewMut2::from_shape((b, out_dim), &mut cache.da[..b * out_dim])
                .expect("da shape");
            d.assign(&dout);
            let y =
                ArrayView2::from_shape((b, out_dim), &cache.out[..b * out_dim]).expect("out shape");
            l2_normalize_backward_inplace(y, &cache.norms[..b], d);
        }

        // MLP, last layer first; the gradient w.r.t. the current layer's output is in `da`.
        for l in (0..n_layers).rev() {
            let layer = &self.layers[l];
            let (wi, wo) = (layer.in_dim(), layer.out_dim());
            let dy = ArrayView2::from_shape((b, wo), &cache.da[..b * wo]).expect("dy shape");
            if l == 0 {
                let x = ArrayView2::from_shape((b, wi), &cache.x0[..b * wi]).expect("x0 shape");
                let dx = ArrayViewMut2::from_shape((b, wi), &mut cache.dx0[..b * wi])
                    .expect("dx0 shape");
                layer.backward(x, dy, Some(dx), &mut grads.layers[l]);
            } else {
                let x = ArrayView2::from_shape((b, wi), &cache.acts[l - 1][..b * wi])
                    .expect("act shape");
                let mut dx =
                    ArrayViewMut2::from_shape((b, wi), &mut cache.db[..b * wi]).expect("db shape");
                layer.backward(x, dy, Some(dx.view_mut()), &mut grads.layers[l]);
                relu_backward(x, dx);
                std::mem::swap(&mut cache.da, &mut cache.db);
            }
        }

        // Embedding bags.
        let dx0 = ArrayView2::from_shape((b, in_dim), &cache.dx0[..b * in_dim]).expect("dx0 shape");
        let learned = self.spec.mask_embedding == MaskEmbedding::Learned;
        let mut off = 0;
        for (f, feat) in batch.features.iter().enumerate() {
            let dim = self.tables[f].dim;
            let block = dx0.slice(s![.., off..off + dim]);
            let mask_grad = if learned {
                Some(grads.mask_vectors[f].as_mut_slice())
            } else {
                None
            };
            if feat.weights.is_empty() {
                embedding_bag_backward(
                    &feat.offsets,
                    &feat.values,
                    &feat.masked,
                    block,
                    &mut grads.tables[f],
                    mask_grad,
                );
            } else {
                weighted_bag_backward(
                    &feat.offsets,
                    &feat.values,
                    &feat.weights,
                    block,
                    &mut grads.tables[f],
                );
            }
            off += dim;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tower::test_util::spec;
    use crate::tower::FeatureColumn;
    use ndarray::Array2;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn gather_and_forward_shapes() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let tower = Tower::<f64>::new(spec(), &mut rng);
        // 3 entities: id column single-valued, genre multi-valued (entity 1 has none)
        let id_off = [0u32, 1, 2, 3];
        let id_val = [1u32, 2, 3];
        let g_off = [0u32, 2, 2, 3];
        let g_val = [1u32, 3, 2];
        let cols = [
            FeatureColumn {
                offsets: &id_off,
                values: &id_val,
                weights: &[],
            },
            FeatureColumn {
                offsets: &g_off,
                values: &g_val,
                weights: &[],
            },
        ];
        let mut batch = TowerBatch::default();
        batch.gather(&cols, &[2, 0, 1, 0]);
        assert_eq!(batch.len(), 4);
        assert_eq!(batch.features[0].values, vec![3, 1, 2, 1]);
        assert_eq!(batch.features[1].offsets, vec![0, 1, 3, 3, 5]);
        assert_eq!(batch.features[1].values, vec![2, 1, 3, 1, 3]);
        let mut cache = TowerCache::new();
        tower.forward(&batch, &mut cache);
        let out = cache.output();
        assert_eq!(out.dim(), (4, 3));
        for r in out.outer_iter() {
            let n: f64 = r.iter().map(|x| x * x).sum::<f64>().sqrt();
            assert!((n - 1.0).abs() < 1e-12);
        }
        // rows 1 and 3 are the same entity
        assert_eq!(out.row(1), out.row(3));
        let mut enc = Array2::zeros((0, 0));
        tower.encode(&cols, &[2, 0, 1, 0], &mut enc);
        for (a, b) in enc.iter().zip(out.iter()) {
            assert!((*a as f64 - b).abs() < 1e-6);
        }
    }
}
