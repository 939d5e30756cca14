//! The architecture of a tower: [`TowerSpec`] (its features, hidden widths
//! and output dimension), [`FeatureSpec`], [`MaskEmbedding`], and the checks
//! that give a [`SpecError`] before anything is allocated.

use thiserror::Error;

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
    /// Features, in the order of
    /// [`TowerBatch::features`](super::TowerBatch::features) and of the
    /// concatenation.
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

    /// Checks the spec.
    ///
    /// # Errors
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tower::test_util::spec;
    use crate::tower::Tower;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

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
