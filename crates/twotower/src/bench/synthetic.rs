//! Synthetic catalogs for the step benchmarks: feature columns of a
//! given size, their tower spec, and (user, item) pairs drawn uniformly —
//! the worst case for caches.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use twotower_data::Interactions;

use crate::tower::{FeatureColumn, FeatureSpec, MaskEmbedding, TowerSpec};

/// One synthetic categorical feature over `n` entities in CSR form.
#[derive(Clone, Debug)]
pub struct SyntheticColumn {
    /// Feature name.
    pub name: String,
    /// Vocabulary size (rows of its embedding table, index 0 = OOV).
    pub vocab: usize,
    /// Embedding dimension.
    pub dim: usize,
    /// `n + 1` offsets.
    pub offsets: Vec<u32>,
    /// Vocabulary indices.
    pub values: Vec<u32>,
}

impl SyntheticColumn {
    /// Borrowed CSR view.
    pub fn column(&self) -> FeatureColumn<'_> {
        FeatureColumn {
            offsets: &self.offsets,
            values: &self.values,
            weights: &[],
        }
    }
}

/// The synthetic features of one side with `n` entities, each `dim`-wide:
/// `id` (vocabulary n + 1, entity e → row e + 1), `category` (one of 1,000
/// values) and `tags` (a bag of 1–3 of 100 values). Deterministic in `seed`.
pub fn synthetic_side(n: usize, dim: usize, seed: u64) -> Vec<SyntheticColumn> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut id = SyntheticColumn {
        name: "id".into(),
        vocab: n + 1,
        dim,
        offsets: (0..=n as u32).collect(),
        values: (1..=n as u32).collect(),
    };
    id.offsets.shrink_to_fit();
    let category = SyntheticColumn {
        name: "category".into(),
        vocab: 1001,
        dim,
        offsets: (0..=n as u32).collect(),
        values: (0..n).map(|_| rng.gen_range(1..=1000u32)).collect(),
    };
    let mut offsets = Vec::with_capacity(n + 1);
    let mut values = Vec::with_capacity(2 * n);
    offsets.push(0u32);
    for _ in 0..n {
        let k = rng.gen_range(1..=3);
        for _ in 0..k {
            values.push(rng.gen_range(1..=100u32));
        }
        offsets.push(values.len() as u32);
    }
    let tags = SyntheticColumn {
        name: "tags".into(),
        vocab: 101,
        dim,
        offsets,
        values,
    };
    vec![id, category, tags]
}

/// The tower specification of synthetic columns: MLP `hidden` → `out_dim`,
/// zero mask embedding.
pub fn synthetic_spec(cols: &[SyntheticColumn], hidden: Vec<usize>, out_dim: usize) -> TowerSpec {
    TowerSpec {
        features: cols
            .iter()
            .map(|c| FeatureSpec {
                name: c.name.clone(),
                vocab_size: c.vocab,
                dim: c.dim,
            })
            .collect(),
        hidden,
        out_dim,
        mask_embedding: MaskEmbedding::Zero,
    }
}

// --------------------------------------------------------------- step harness

/// `n` (user, item) pairs drawn uniformly at random — the worst case for
/// caches: every touched embedding row is a random row of its table —
/// as interactions (timestamps = row numbers), deterministic in `seed`.
pub fn uniform_pairs(n_users: usize, n_items: usize, n: usize, seed: u64) -> Interactions {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Interactions::default();
    for r in 0..n {
        x.user.push(rng.gen_range(0..n_users as u32));
        x.item.push(rng.gen_range(0..n_items as u32));
        x.timestamp.push(r as i64);
    }
    x
}
