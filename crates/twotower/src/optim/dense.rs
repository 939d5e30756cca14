//! [`DenseAdam`]: Adam (Kingma & Ba 2015) of one dense tensor, or AdamW with
//! decoupled weight decay (Loshchilov & Hutter 2019: `p ← p − lr·λ·p` before
//! the Adam update). The optimizer applies the decay to the MLP weight
//! matrices only (not to biases, mask vectors or embeddings).

use crate::real::Real;

use super::StepParams;

/// Adam / AdamW state of one dense tensor (`m`, `v`, same length as the tensor).
#[derive(Clone, Debug, PartialEq)]
pub struct DenseAdam<F> {
    /// First moment.
    pub m: Vec<F>,
    /// Second moment.
    pub v: Vec<F>,
}

impl<F: Real> DenseAdam<F> {
    /// Zero moments for a tensor of `n` values.
    pub fn new(n: usize) -> Self {
        Self {
            m: vec![F::zero(); n],
            v: vec![F::zero(); n],
        }
    }

    /// One Adam(W) update of `param` with gradient `grad · p.grad_scale`:
    /// `param ← param − lr·λ·param` (when λ > 0), then the bias-corrected
    /// Adam update.
    ///
    /// # Panics
    /// If `param`, `grad` and the state differ in length.
    pub fn step(&mut self, param: &mut [F], grad: &[F], p: &StepParams<F>) {
        assert_eq!(param.len(), self.m.len(), "DenseAdam: param length");
        assert_eq!(grad.len(), self.m.len(), "DenseAdam: grad length");
        let (bc1, bc2) = p.bias_corrections();
        let (lr_c1, inv_bc2) = (p.lr / bc1, F::one() / bc2);
        let decay = F::one() - p.lr * p.weight_decay;
        let (one_m_b1, one_m_b2) = (F::one() - p.beta1, F::one() - p.beta2);
        let wd = p.weight_decay > F::zero();
        for (((x, m), v), &g) in param.iter_mut().zip(&mut self.m).zip(&mut self.v).zip(grad) {
            let g = g * p.grad_scale;
            if wd {
                *x *= decay;
            }
            *m = p.beta1 * *m + one_m_b1 * g;
            *v = p.beta2 * *v + one_m_b2 * g * g;
            *x -= lr_c1 * *m / ((*v * inv_bc2).sqrt() + p.eps);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::test_util::params;

    #[test]
    fn adamw_first_step_by_hand() {
        // p = 1, g = 0.5, lr = 0.1, λ = 0.01: first Adam step has m̂ = g, v̂ = g²,
        // p ← 1·(1 − 0.1·0.01) − 0.1·0.5/(0.5 + 1e-8) = 0.999 − 0.099999998 = 0.899000002
        let mut st = DenseAdam::<f64>::new(1);
        let mut p = [1.0];
        st.step(
            &mut p,
            &[0.5],
            &StepParams {
                weight_decay: 0.01,
                ..params(0.1, 1)
            },
        );
        assert!((p[0] - 0.899000002).abs() < 1e-9, "{}", p[0]);
        // Adam without decay: 1 − 0.099999998 = 0.900000002
        let mut st = DenseAdam::<f64>::new(1);
        let mut p = [1.0];
        st.step(&mut p, &[0.5], &params(0.1, 1));
        assert!((p[0] - 0.900000002).abs() < 1e-9, "{}", p[0]);
    }
}
