//! Early stopping on the validation split: the best value of
//! `train.monitor` so far, the epoch it was reached at and its weights, and
//! the count of epochs since, which stops the phase at `train.patience`.

use crate::model::TwoTower;

use super::average::owned;
use super::state::NamedTensors;

/// The early-stopping record of a phase.
pub struct EarlyStopping {
    /// Epochs without improvement that stop the phase (0 = never stop early).
    patience: usize,
    /// Best validation value and its (1-based) epoch.
    pub best: Option<(f64, usize)>,
    /// Epochs since the best.
    pub since_best: usize,
    /// The best epoch's weights (the search phase returns them).
    pub best_tensors: Option<NamedTensors>,
}

impl EarlyStopping {
    /// A record starting from `best` (the refit phase carries the search
    /// phase's best into its checkpoints).
    pub fn new(patience: usize, best: Option<(f64, usize)>) -> Self {
        Self {
            patience,
            best,
            since_best: 0,
            best_tensors: None,
        }
    }

    /// Records epoch `epoch`'s validation value `value` of the weights
    /// `current`; true when it is a new best (strictly greater).
    pub fn observe(&mut self, value: f64, epoch: usize, current: &TwoTower<f32>) -> bool {
        if self.best.is_none_or(|(b, _)| value > b) {
            self.best = Some((value, epoch));
            self.since_best = 0;
            self.best_tensors = Some(owned(current));
            true
        } else {
            self.since_best += 1;
            false
        }
    }

    /// Whether `patience` epochs have passed without improvement.
    pub fn should_stop(&self) -> bool {
        self.patience > 0 && self.since_best >= self.patience
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::SeedableRng;

    /// A two-tower model with one 3-row feature a side.
    pub(crate) fn tiny_model() -> TwoTower<f32> {
        let spec = |name: &str| crate::tower::TowerSpec {
            features: vec![crate::tower::FeatureSpec {
                name: name.into(),
                vocab_size: 3,
                dim: 2,
            }],
            hidden: vec![],
            out_dim: 2,
            mask_embedding: crate::tower::MaskEmbedding::Zero,
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        TwoTower::new(spec("u"), spec("i"), &mut rng).unwrap()
    }

    #[test]
    fn stops_after_patience_epochs_without_a_strictly_better_value() {
        let model = tiny_model();
        let mut e = EarlyStopping::new(2, None);
        assert!(e.observe(0.30, 1, &model));
        assert!(!e.observe(0.30, 2, &model), "equal is not better");
        assert!(!e.should_stop());
        let mut better = model.clone();
        let first = better.named_tensors()[0].0.clone();
        better.tensor_mut(&first).unwrap()[0] = 9.0;
        assert!(e.observe(0.31, 3, &better));
        // the best weights are the best epoch's
        assert_eq!(e.best_tensors.as_ref().unwrap()[0].2[0], 9.0);
        assert_eq!((e.best, e.since_best), (Some((0.31, 3)), 0));
        assert!(!e.observe(0.2, 4, &model) && !e.should_stop());
        assert!(!e.observe(0.2, 5, &model) && e.should_stop());
        assert_eq!(e.best, Some((0.31, 3)));
        // patience 0 never stops
        let mut e = EarlyStopping::new(0, Some((1.0, 1)));
        for ep in 2..10 {
            assert!(!e.observe(0.5, ep, &model));
        }
        assert!(!e.should_stop());
    }
}
