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
//!
//! # Files
//! - `mod.rs`: [`Tower`], the parameters — initialization and the named
//!   tensors of `model.safetensors`.
//! - `spec.rs`: the architecture — [`TowerSpec`], [`FeatureSpec`],
//!   [`MaskEmbedding`] — and its checks ([`SpecError`]).
//! - `batch.rs`: the input of a pass — [`TowerBatch`], CSR embedding-bag
//!   inputs gathered from a side's [`FeatureColumn`]s.
//! - `pass.rs`: forward and backward — [`Tower::forward`] into a
//!   [`TowerCache`], [`Tower::backward`] into [`TowerGrads`].
//! - `encode.rs`: inference in parallel blocks, [`Tower::encode`].

mod batch;
mod encode;
mod pass;
mod spec;

pub use batch::{BatchFeature, FeatureColumn, TowerBatch};
pub use pass::{TowerCache, TowerGrads};
pub use spec::{FeatureSpec, MaskEmbedding, SpecError, TowerSpec};

use rand::Rng;

use crate::embedding::EmbeddingTable;
use crate::layers::Linear;
use crate::real::Real;

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

/// The spec the tests of every file share.
#[cfg(test)]
mod test_util {
    use super::{FeatureSpec, MaskEmbedding, TowerSpec};

    pub(super) fn spec() -> TowerSpec {
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
}

#[cfg(test)]
mod tests {
    use super::test_util::spec;
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

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
}
