//! The epoch-level moving average of the weights (`train.epoch_average`):
//! after every epoch, `avg ← γ·avg + (1 − γ)·w` for every tensor, starting
//! from the first epoch's weights. The averaged weights are what
//! validation judges and what the refit phase returns (an exponential
//! moving average of iterates, Polyak & Juditsky 1992, taken per epoch).

use crate::model::TwoTower;

use super::state::NamedTensors;

/// The running average of a model's weights over epochs.
pub struct EpochAverage {
    /// `γ` in `[0, 1)`; 0 = off (the raw weights are used).
    gamma: f32,
    /// The average so far, in the model's tensor order; `None` before the
    /// first epoch (or when off).
    pub tensors: Option<NamedTensors>,
}

impl EpochAverage {
    /// An empty average with decay `gamma` (`train.epoch_average`).
    pub fn new(gamma: f64) -> Self {
        Self {
            gamma: gamma as f32,
            tensors: None,
        }
    }

    /// Whether averaging is on.
    pub fn enabled(&self) -> bool {
        self.gamma > 0.0
    }

    /// Folds the weights an epoch ends with into the average and returns the
    /// averaged model; `None` when averaging is off.
    pub fn update(&mut self, model: &TwoTower<f32>) -> Option<TwoTower<f32>> {
        if !self.enabled() {
            return None;
        }
        let g = self.gamma;
        match &mut self.tensors {
            None => self.tensors = Some(owned(model)),
            Some(e) => {
                for ((an, _, avg), (cn, _, cur)) in e.iter_mut().zip(model.named_tensors()) {
                    assert_eq!(*an, cn, "weight average out of order");
                    for (a, c) in avg.iter_mut().zip(cur) {
                        *a = g * *a + (1.0 - g) * c;
                    }
                }
            }
        }
        let mut m = model.clone();
        copy_into(&mut m, self.tensors.as_ref().expect("set above"));
        Some(m)
    }
}

/// A model's tensors as an owned weight set.
pub(crate) fn owned(model: &TwoTower<f32>) -> NamedTensors {
    model
        .named_tensors()
        .into_iter()
        .map(|(n, s, d)| (n, s, d.to_vec()))
        .collect()
}

/// Copies a weight set into `model` (tensors it does not have are skipped).
pub(crate) fn copy_into(model: &mut TwoTower<f32>, set: &NamedTensors) {
    for (name, _, data) in set {
        if let Some(dst) = model.tensor_mut(name) {
            dst.copy_from_slice(data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::early_stop::tests::tiny_model;

    #[test]
    fn average_is_gamma_weighted_over_epochs() {
        // epoch weights w1 = 1, w2 = 3 (every value), γ = 0.25:
        // avg1 = w1 = 1, avg2 = 0.25·1 + 0.75·3 = 2.5
        let mut m = tiny_model();
        let set_all = |m: &mut TwoTower<f32>, v: f32| {
            for (n, _, _) in m
                .named_tensors()
                .iter()
                .map(|(n, s, d)| (n.clone(), s.clone(), d.len()))
                .collect::<Vec<_>>()
            {
                m.tensor_mut(&n).unwrap().fill(v);
            }
        };
        let mut avg = EpochAverage::new(0.25);
        set_all(&mut m, 1.0);
        let a1 = avg.update(&m).unwrap();
        assert!(a1
            .named_tensors()
            .iter()
            .all(|(_, _, d)| d.iter().all(|&x| x == 1.0)));
        set_all(&mut m, 3.0);
        let a2 = avg.update(&m).unwrap();
        assert!(a2
            .named_tensors()
            .iter()
            .all(|(_, _, d)| d.iter().all(|&x| x == 2.5)));
        // the trained model itself is untouched
        assert!(m
            .named_tensors()
            .iter()
            .all(|(_, _, d)| d.iter().all(|&x| x == 3.0)));
        // off: no averaged model
        assert!(EpochAverage::new(0.0).update(&m).is_none());
    }
}
