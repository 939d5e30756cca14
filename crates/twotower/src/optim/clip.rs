//! Clipping by global gradient norm: every gradient of a step is scaled by
//! `min(1, c / ‖g‖)`, with `‖g‖` the norm over all of them (embedding rows,
//! dense tensors, both towers), when `clip_grad_norm = Some(c)`.

use crate::model::ModelGrads;
use crate::real::Real;

/// The factor every gradient of `grads` is scaled by: `min(1, c / ‖g‖)` for
/// `clip_grad_norm = Some(c)` (1 when `‖g‖ ≤ c` or `‖g‖ = 0`), 1 for `None`.
pub(super) fn clip_scale<F: Real>(clip_grad_norm: Option<f64>, grads: &ModelGrads<F>) -> f64 {
    match clip_grad_norm {
        Some(max) => {
            let n = grads.global_norm();
            if n > max && n > 0.0 {
                max / n
            } else {
                1.0
            }
        }
        None => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use crate::model::ModelGrads;
    use crate::optim::test_util::tiny;
    use crate::optim::{OptimConfig, Optimizer};

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
}
