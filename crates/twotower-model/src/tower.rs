//! A tower: embedding bags of one side's features → concat → MLP → L2 norm.
//!
//! `x = concat_f bag_f(batch)` (mean-pooled embedding bags, [`crate::embedding`]),
//! then `[Linear → ReLU]` for each hidden width, a final `Linear(out_dim)` and a
//! row-wise L2 normalization ([`crate::layers`]), so that the dot product of a
//! user and an item vector is their cosine (Yi et al. 2019, §3).
//!
//! Forward keeps every activation backward needs in a [`TowerCache`];
//! backward accumulates into [`TowerGrads`] (sparse per embedding table, dense
//! per layer), so that the item tower can take the main pass and the two SSL
//! passes into the same gradient. All buffers grow to the largest batch seen
//! and are then reused: a steady-state step allocates nothing.

use ndarray::{s, Array2, ArrayView2, ArrayViewMut2};
use rand::Rng;
use rayon::prelude::*;
use thiserror::Error;

use crate::embedding::{
    embedding_bag_backward, embedding_bag_forward, prefetch_row, weighted_bag_backward,
    weighted_bag_forward, EmbeddingTable, SparseGrad,
};
use crate::layers::{
    l2_normalize_backward_inplace, l2_normalize_forward, relu_backward, relu_forward, Linear,
    LinearGrad,
};
use crate::loss::ensure_len;
use crate::real::Real;

/// What a masked feature (SSL augmentation) contributes to the concatenation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskEmbedding {
    /// The zero vector (no parameters).
    #[default]
    Zero,
    /// A learned per-feature mask vector (initialized to zero), trained by the
    /// gradient of the rows where the feature is masked.
    Learned,
}

/// One feature of a tower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureSpec {
    /// Feature name (used in tensor names: `user.emb.<name>`).
    pub name: String,
    /// Rows of the embedding table, including row 0 (OOV / missing).
    pub vocab_size: usize,
    /// Embedding dimension.
    pub dim: usize,
}

/// The architecture of a tower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TowerSpec {
    /// Features, in the order of [`TowerBatch::features`] and of the concatenation.
    pub features: Vec<FeatureSpec>,
    /// Hidden layer widths (each followed by ReLU); may be empty.
    pub hidden: Vec<usize>,
    /// Output dimension (after the last linear layer, L2-normalized).
    pub out_dim: usize,
    /// Default embedding of masked features.
    pub mask_embedding: MaskEmbedding,
}

/// An invalid [`TowerSpec`].
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SpecError {
    /// A tower needs at least one feature.
    #[error("a tower needs at least one feature")]
    NoFeatures,
    /// `vocab_size` of a feature is 0 (it must include row 0).
    #[error("feature `{feature}`: vocab_size must be >= 1 (row 0 is OOV), got 0")]
    ZeroVocab {
        /// Feature name.
        feature: String,
    },
    /// The vocabulary does not fit the `u32` ids of the batches.
    #[error("feature `{feature}`: vocab_size {got} exceeds the u32 id range")]
    VocabTooLarge {
        /// Feature name.
        feature: String,
        /// The vocab size given.
        got: usize,
    },
    /// Embedding dimension 0.
    #[error("feature `{feature}`: embedding dim must be >= 1, got 0")]
    ZeroDim {
        /// Feature name.
        feature: String,
    },
    /// Two features with the same name (tensor names would collide).
    #[error("feature name `{feature}` is used twice")]
    DuplicateFeature {
        /// Feature name.
        feature: String,
    },
    /// A hidden width or the output dimension is 0.
    #[error("layer {layer}: width must be >= 1, got 0")]
    ZeroWidth {
        /// Layer index (hidden layers first, then the output layer).
        layer: usize,
    },
    /// The user and item towers of a model have different output dimensions.
    #[error("user tower out_dim {user} != item tower out_dim {item} (scores are dot products)")]
    OutDimMismatch {
        /// User tower out_dim.
        user: usize,
        /// Item tower out_dim.
        item: usize,
    },
}

impl TowerSpec {
    /// Width of the concatenated embedding bags (input of the MLP).
    pub fn input_dim(&self) -> usize {
        self.features.iter().map(|f| f.dim).sum()
    }

    /// Checks the spec.
    ///
    /// # Errors
    /// Bytes of the tower's parameters (f32): every table's `vocab × dim`
    /// (plus a learned mask vector per feature) and every layer's weights
    /// and biases; saturating, so an absurd spec gives `u64::MAX` rather
    /// than overflowing. Computed from the spec alone, before anything is
    /// allocated.
    pub fn parameter_bytes(&self) -> u64 {
        let mut n: u64 = 0;
        for f in &self.features {
            let rows = (f.vocab_size as u64).saturating_add(1);
            n = n.saturating_add(rows.saturating_mul(f.dim as u64));
        }
        let mut width = self
            .features
            .iter()
            .fold(0u64, |a, f| a.saturating_add(f.dim as u64));
        for &h in self.hidden.iter().chain(std::iter::once(&self.out_dim)) {
            let h = h as u64;
            n = n.saturating_add(width.saturating_add(1).saturating_mul(h));
            width = h;
        }
        n.saturating_mul(4)
    }

    /// A [`SpecError`] naming the first offending feature or layer.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.features.is_empty() {
            return Err(SpecError::NoFeatures);
        }
        for (i, f) in self.features.iter().enumerate() {
            if f.vocab_size == 0 {
                return Err(SpecError::ZeroVocab {
                    feature: f.name.clone(),
                });
            }
            if f.vocab_size > u32::MAX as usize {
                return Err(SpecError::VocabTooLarge {
                    feature: f.name.clone(),
                    got: f.vocab_size,
                });
            }
            if f.dim == 0 {
                return Err(SpecError::ZeroDim {
                    feature: f.name.clone(),
                });
            }
            if self.features[..i].iter().any(|g| g.name == f.name) {
                return Err(SpecError::DuplicateFeature {
                    feature: f.name.clone(),
                });
            }
        }
        for (layer, &w) in self
            .hidden
            .iter()
            .chain(std::iter::once(&self.out_dim))
            .enumerate()
        {
            if w == 0 {
                return Err(SpecError::ZeroWidth { layer });
            }
        }
        Ok(())
    }
}

/// A CSR column of one feature over *all* entities of a side: entity `e`'s
/// ids are `values[offsets[e]..offsets[e+1]]`.
#[derive(Clone, Copy, Debug)]
pub struct FeatureColumn<'a> {
    /// `n_entities + 1` non-decreasing offsets into `values`.
    pub offsets: &'a [u32],
    /// Table row ids.
    pub values: &'a [u32],
    /// Pooling weight of each value (weighted bags, as
    /// [`BatchFeature::weights`]), or empty (plain mean).
    pub weights: &'a [f32],
}

/// One feature of a batch: CSR bags of the `B` rows plus an optional mask.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchFeature {
    /// `B + 1` offsets into `values`.
    pub offsets: Vec<u32>,
    /// Table row ids of all bags.
    pub values: Vec<u32>,
    /// `B` flags (row's feature masked → default embedding), or empty (nothing masked).
    pub masked: Vec<bool>,
    /// Pooling weight of each value (`values.len()`, weighted mean
    /// [`crate::embedding::weighted_bag_forward`]), or empty (plain mean).
    /// Weighted bags are never masked.
    pub weights: Vec<f32>,
}

/// The input of one tower pass: one [`BatchFeature`] per tower feature, in
/// the order of [`TowerSpec::features`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TowerBatch {
    /// Per-feature bags.
    pub features: Vec<BatchFeature>,
}

impl TowerBatch {
    /// Fills the batch with the bags of `entities` from `columns` (nothing
    /// masked), reusing the buffers.
    ///
    /// # Shapes
    /// `columns`: one per feature; `entities`: `B` entity indices.
    ///
    /// # Panics
    /// If an entity is out of range of a column or a column's offsets point
    /// outside its values (the data layer validates columns when it builds
    /// them), or a batch holds more than `u32::MAX` ids.
    pub fn gather(&mut self, columns: &[FeatureColumn], entities: &[u32]) {
        self.features.truncate(columns.len());
        self.features
            .resize_with(columns.len(), BatchFeature::default);
        for (feat, col) in self.features.iter_mut().zip(columns) {
            feat.offsets.clear();
            feat.values.clear();
            feat.masked.clear();
            feat.weights.clear();
            feat.offsets.push(0);
            for (i, &e) in entities.iter().enumerate() {
                // entities are in random order over possibly huge columns:
                // prefetch the offsets 16 ahead, and the values 4 ahead
                // (whose offsets the first prefetch has brought in)
                if let Some(&far) = entities.get(i + 16) {
                    prefetch_row(col.offsets, far as usize, 2);
                }
                if let Some(&near) = entities.get(i + 4) {
                    let near = near as usize;
                    if near + 1 < col.offsets.len() {
                        let (a, z) = (col.offsets[near] as usize, col.offsets[near + 1] as usize);
                        prefetch_row(col.values, a, z.saturating_sub(a));
                    }
                }
                let e = e as usize;
                assert!(
                    e + 1 < col.offsets.len(),
                    "TowerBatch::gather: entity {e} out of range of a column of {} entities",
                    col.offsets.len().saturating_sub(1)
                );
                let (a, z) = (col.offsets[e] as usize, col.offsets[e + 1] as usize);
                feat.values.extend_from_slice(&col.values[a..z]);
                if !col.weights.is_empty() {
                    feat.weights.extend_from_slice(&col.weights[a..z]);
                }
                feat.offsets
                    .push(u32::try_from(feat.values.len()).expect("batch holds > u32::MAX ids"));
            }
        }
    }

    /// Number of rows `B` (0 for a batch with no features).
    pub fn len(&self) -> usize {
        self.features
            .first()
            .map_or(0, |f| f.offsets.len().saturating_sub(1))
    }

    /// True when the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A tower's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Tower<F> {
    /// Architecture.
    pub spec: TowerSpec,
    /// One embedding table per feature, `[vocab_size × dim]`.
    pub tables: Vec<EmbeddingTable<F>>,
    /// Per feature: the learned mask vector (`dim` values) when
    /// `spec.mask_embedding` is [`MaskEmbedding::Learned`], else empty.
    pub mask_vectors: Vec<Vec<F>>,
    /// `hidden.len() + 1` linear layers: `input_dim → hidden[0] → … → out_dim`.
    pub layers: Vec<Linear<F>>,
}

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

/// Inference block size of [`Tower::encode`].
const ENCODE_BLOCK: usize = 4096;

impl<F: Real> Tower<F> {
    /// A freshly initialized tower: embedding entries `N(0, σ²)` with
    /// `σ = 1/√dim` (a row has expected norm ≈ 1), learned mask vectors zero,
    /// hidden layers He-uniform, the output layer Glorot-uniform, biases 0.
    /// Deterministic for a seeded `rng`.
    ///
    /// # Panics
    /// If the spec is invalid ([`TowerSpec::validate`]; call it first to get
    /// the error as a value, or use [`Tower::try_new`]).
    pub fn new(spec: TowerSpec, rng: &mut impl Rng) -> Self {
        match Self::try_new(spec, rng) {
            Ok(t) => t,
            Err(e) => panic!("invalid tower spec: {e}"),
        }
    }

    /// [`Tower::new`] returning the spec error instead of panicking.
    ///
    /// # Errors
    /// As [`TowerSpec::validate`].
    pub fn try_new(spec: TowerSpec, rng: &mut impl Rng) -> Result<Self, SpecError> {
        spec.validate()?;
        let tables = spec
            .features
            .iter()
            .map(|f| EmbeddingTable::normal(f.vocab_size, f.dim, 1.0 / (f.dim as f64).sqrt(), rng))
            .collect();
        let mask_vectors = spec
            .features
            .iter()
            .map(|f| match spec.mask_embedding {
                MaskEmbedding::Learned => vec![F::zero(); f.dim],
                MaskEmbedding::Zero => Vec::new(),
            })
            .collect();
        let mut layers = Vec::with_capacity(spec.hidden.len() + 1);
        let mut prev = spec.input_dim();
        for &h in &spec.hidden {
            layers.push(Linear::he_uniform(prev, h, rng));
            prev = h;
        }
        layers.push(Linear::glorot_uniform(prev, spec.out_dim, rng));
        Ok(Self {
            spec,
            tables,
            mask_vectors,
            layers,
        })
    }

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
    /// `batch`: `B ≥ 1` rows, one [`BatchFeature`] per feature; output `[B × out_dim]`.
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

    /// Inference: the output vectors of `entities`, computed in blocks of
    /// 4096, written as f32 into `out` (reshaped to `[entities × out_dim]` if
    /// its shape differs).
    ///
    /// # Shapes
    /// `columns`: one per feature over all entities; `entities`: `N`;
    /// `out`: `[N × out_dim]`, rows unit-norm.
    ///
    /// # Panics
    /// As [`TowerBatch::gather`] and [`Tower::forward`].
    pub fn encode(&self, columns: &[FeatureColumn], entities: &[u32], out: &mut Array2<f32>) {
        self.encode_with(columns, entities, out, None);
    }

    /// [`Tower::encode`] with one feature's table shared from the other tower
    /// (see [`Tower::forward_with`]).
    ///
    /// # Panics
    /// As [`Tower::encode`].
    pub fn encode_with(
        &self,
        columns: &[FeatureColumn],
        entities: &[u32],
        out: &mut Array2<f32>,
        shared: Option<(usize, &EmbeddingTable<F>)>,
    ) {
        let d = self.spec.out_dim;
        if out.dim() != (entities.len(), d) || !out.is_standard_layout() {
            *out = Array2::zeros((entities.len(), d));
        }
        // Blocks are independent: encode them in parallel (rayon), each with
        // its own batch and activation buffers.
        let rows = out
            .as_slice_mut()
            .expect("a fresh or standard-layout output");
        entities
            .par_chunks(ENCODE_BLOCK)
            .zip(rows.par_chunks_mut(ENCODE_BLOCK * d.max(1)))
            .for_each_init(
                || (TowerBatch::default(), TowerCache::new()),
                |(batch, cache), (chunk, dst)| {
                    batch.gather(columns, chunk);
                    self.forward_with(batch, cache, shared);
                    for (a, &v) in dst.iter_mut().zip(cache.output().iter()) {
                        *a = v.as_f32();
                    }
                },
            );
    }

    /// `(name, shape, values)` of every parameter tensor, names prefixed by
    /// `prefix` (e.g. `"user"`): `<prefix>.emb.<feature>` `[vocab × dim]`,
    /// `<prefix>.mask.<feature>` `[dim]` (learned mask only),
    /// `<prefix>.mlp.<i>.w` `[in × out]`, `<prefix>.mlp.<i>.b` `[out]`.
    pub fn named_tensors(&self, prefix: &str) -> Vec<(String, Vec<usize>, &[F])> {
        let mut v = Vec::new();
        for (f, t) in self.spec.features.iter().zip(&self.tables) {
            v.push((
                format!("{prefix}.emb.{}", f.name),
                vec![t.rows, t.dim],
                t.data.as_slice(),
            ));
        }
        for (f, m) in self.spec.features.iter().zip(&self.mask_vectors) {
            if !m.is_empty() {
                v.push((
                    format!("{prefix}.mask.{}", f.name),
                    vec![m.len()],
                    m.as_slice(),
                ));
            }
        }
        for (i, l) in self.layers.iter().enumerate() {
            let (a, b) = l.w.dim();
            v.push((
                format!("{prefix}.mlp.{i}.w"),
                vec![a, b],
                l.w.as_slice().expect("standard layout"),
            ));
            v.push((
                format!("{prefix}.mlp.{i}.b"),
                vec![b],
                l.b.as_slice().expect("standard layout"),
            ));
        }
        v
    }

    /// The parameter tensor `name` (without the prefix: `emb.<feature>`,
    /// `mask.<feature>`, `mlp.<i>.w`, `mlp.<i>.b`), mutable, or `None`.
    pub fn tensor_mut(&mut self, name: &str) -> Option<&mut [F]> {
        if let Some(f) = name.strip_prefix("emb.") {
            let i = self.spec.features.iter().position(|s| s.name == f)?;
            return Some(self.tables[i].data.as_mut_slice());
        }
        if let Some(f) = name.strip_prefix("mask.") {
            let i = self.spec.features.iter().position(|s| s.name == f)?;
            let m = &mut self.mask_vectors[i];
            return if m.is_empty() {
                None
            } else {
                Some(m.as_mut_slice())
            };
        }
        let rest = name.strip_prefix("mlp.")?;
        let (idx, which) = rest.split_once('.')?;
        let layer = self.layers.get_mut(idx.parse::<usize>().ok()?)?;
        match which {
            "w" => layer.w.as_slice_mut(),
            "b" => layer.b.as_slice_mut(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn spec() -> TowerSpec {
        TowerSpec {
            features: vec![
                FeatureSpec {
                    name: "id".into(),
                    vocab_size: 5,
                    dim: 3,
                },
                FeatureSpec {
                    name: "genre".into(),
                    vocab_size: 4,
                    dim: 2,
                },
            ],
            hidden: vec![4],
            out_dim: 3,
            mask_embedding: MaskEmbedding::Learned,
        }
    }

    #[test]
    fn parameter_bytes_by_hand_and_as_allocated() {
        // tables (5+1)·3 + (4+1)·2 with a learned mask row each = 28 values,
        // layers (5+1)·4 + (4+1)·3 = 39: 67 f32
        assert_eq!(spec().parameter_bytes(), 4 * 67);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let tower = Tower::<f32>::new(spec(), &mut rng);
        let n: usize = tower
            .named_tensors("t")
            .iter()
            .map(|(_, _, d)| d.len())
            .sum();
        assert_eq!(4 * n as u64, spec().parameter_bytes());
        // an absurd spec saturates instead of overflowing
        let mut huge = spec();
        huge.features[0].vocab_size = usize::MAX / 2;
        huge.features[0].dim = usize::MAX / 2;
        assert_eq!(huge.parameter_bytes(), u64::MAX);
    }

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

    #[test]
    fn named_tensors_round_trip() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut tower = Tower::<f32>::new(spec(), &mut rng);
        let names: Vec<_> = tower
            .named_tensors("item")
            .into_iter()
            .map(|(n, s, _)| (n, s))
            .collect();
        assert_eq!(
            names,
            vec![
                ("item.emb.id".to_string(), vec![5, 3]),
                ("item.emb.genre".to_string(), vec![4, 2]),
                ("item.mask.id".to_string(), vec![3]),
                ("item.mask.genre".to_string(), vec![2]),
                ("item.mlp.0.w".to_string(), vec![5, 4]),
                ("item.mlp.0.b".to_string(), vec![4]),
                ("item.mlp.1.w".to_string(), vec![4, 3]),
                ("item.mlp.1.b".to_string(), vec![3]),
            ]
        );
        tower.tensor_mut("mlp.1.b").unwrap()[2] = 5.0;
        assert_eq!(tower.layers[1].b[2], 5.0);
        assert_eq!(tower.tensor_mut("emb.genre").unwrap().len(), 8);
        assert!(tower.tensor_mut("emb.nope").is_none());
        assert!(tower.tensor_mut("mlp.2.w").is_none());
    }

    #[test]
    fn invalid_specs_are_errors() {
        let mut s = spec();
        s.features[1].name = "id".into();
        assert_eq!(
            s.validate(),
            Err(SpecError::DuplicateFeature {
                feature: "id".into()
            })
        );
        let mut s = spec();
        s.hidden = vec![0];
        assert_eq!(s.validate(), Err(SpecError::ZeroWidth { layer: 0 }));
        let mut s = spec();
        s.features[0].vocab_size = 0;
        assert!(matches!(s.validate(), Err(SpecError::ZeroVocab { .. })));
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        assert!(Tower::<f32>::try_new(
            TowerSpec {
                features: vec![],
                ..spec()
            },
            &mut rng
        )
        .is_err());
    }
}
