//! The measurement harness behind `twotower bench` and the criterion
//! benches: training-step throughput with a per-phase time split, the
//! allocation count of the steady state, resident memory, and evaluation
//! throughput next to a plain GEMM of the same shape.
//!
//! A training step here is the training loop's own [`Step`](crate::step::Step)
//! ([`crate::step`]): batch assembly (candidates and mixed negatives, both
//! towers' inputs, history bags, id dropout, `log q`, false-negative masks,
//! weights), the SSL views, loss and backward, update. For a config, its
//! inputs are the trainer's ([`crate::train::step_inputs`]); only the row
//! order is the harness's. Synthetic catalogs step over pairs drawn
//! uniformly at random ([`uniform_pairs`]: the worst case for caches, every
//! touched embedding row a random row of its table).
//!
//! Memory and allocation figures come from the process: [`CountingAlloc`]
//! (install it as the `#[global_allocator]` to count heap allocations) and
//! `/proc/self/status` (Linux; `None` elsewhere).

//!
//! Files: `step` (the step harness), `synthetic` (synthetic catalogs),
//! `eval` (evaluation throughput against a GEMM), `memory` (allocation
//! counting and resident memory).

use crate::augment::AugmentError;
use crate::eval::EvalError;
use crate::frequency::FrequencyError;

mod eval;
mod memory;
mod step;
mod synthetic;

pub use eval::*;
pub use memory::*;
pub use step::*;
pub use synthetic::*;

/// Errors of the harness.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The SSL views could not be built.
    #[error("building the SSL views: {0}")]
    Augment(#[from] AugmentError),
    /// The logQ probabilities could not be computed.
    #[error("logQ sampling probabilities: {0}")]
    Frequency(#[from] FrequencyError),
    /// The evaluation failed.
    #[error("evaluation: {0}")]
    Eval(#[from] EvalError),
    /// A setup that cannot produce a batch.
    #[error("{0}")]
    Setup(String),
    /// The loss became NaN or infinite.
    #[error("the loss became {0} during the benchmark")]
    NonFinite(f64),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::EvalConfig;
    use crate::model::TwoTower;
    use crate::optim::SparseOptimizerKind;
    use crate::train::TrainState;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use twotower_data::Interactions;

    #[test]
    fn synthetic_side_shapes() {
        let cols = synthetic_side(10, 8, 1);
        assert_eq!(cols.len(), 3);
        assert_eq!(cols[0].values, (1..=10).collect::<Vec<u32>>());
        assert_eq!(cols[1].offsets.len(), 11);
        let tags = &cols[2];
        for w in tags.offsets.windows(2) {
            assert!((1..=3).contains(&(w[1] - w[0])));
        }
        assert!(tags.values.iter().all(|&v| (1..=100).contains(&v)));
        // deterministic in the seed
        assert_eq!(synthetic_side(10, 8, 1)[2].values, tags.values);
    }

    #[test]
    fn embedding_state_bytes_by_hand() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let u = synthetic_side(10, 4, 1);
        let i = synthetic_side(20, 4, 2);
        let model = TwoTower::<f32>::new(
            synthetic_spec(&u, vec![8], 4),
            synthetic_spec(&i, vec![8], 4),
            &mut rng,
        )
        .unwrap();
        // rows: user 11 + 1001 + 101, item 21 + 1001 + 101 = 2236; × dim 4
        let values = 2236u64 * 4;
        assert_eq!(
            embedding_state_bytes(&model, SparseOptimizerKind::Adam),
            4 * 3 * values
        );
        assert_eq!(
            embedding_state_bytes(&model, SparseOptimizerKind::Adagrad { row_wise: true }),
            4 * (values + 2236)
        );
    }

    #[test]
    fn run_steps_reports_every_phase_and_learns() {
        use crate::frequency::CountFrequency;
        use crate::model::LossConfig;
        use crate::optim::Optimizer;
        use crate::step::{Frequency, Step, StepInputs};
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let u = synthetic_side(50, 8, 1);
        let i = synthetic_side(40, 8, 2);
        let model = TwoTower::<f32>::new(
            synthetic_spec(&u, vec![16], 8),
            synthetic_spec(&i, vec![16], 8),
            &mut rng,
        )
        .unwrap();
        let opt = Optimizer::new(&model, &Default::default());
        let mut fit = Interactions::default();
        for k in 0..200u32 {
            fit.user.push(k % 50);
            fit.item.push((k * 7) % 40);
            fit.timestamp.push(k as i64);
        }
        let inputs = StepInputs {
            user_columns: u.iter().map(SyntheticColumn::column).collect(),
            item_columns: i.iter().map(SyntheticColumn::column).collect(),
            n_items: 40,
            fit: &fit,
            frequency: Frequency::Counts(CountFrequency::from_train_counts(&[5; 40]).unwrap()),
            logq_weight: 1.0,
            mixed_negatives: 0,
            weights: None,
            user_history: None,
            history: None,
            id_dropout: None,
            ssl: None,
            loss: LossConfig {
                temperature: 0.1,
                mask_accidental_hits: true,
                ssl_temperature: 0.1,
                ssl_weight: 0.1,
                ssl_stop_gradient: false,
                ssl_symmetric: false,
            },
            seed: 1,
            phase_tag: 0,
        };
        let step = Step::new(inputs, &model, 16);
        let mut setup = StepSetup {
            state: TrainState::from_step(model, opt, step),
            n_users: 50,
            batch_size: 16,
            order: RowOrder::Shuffled(1),
        };
        let first = run_steps(&mut setup, 0, 5, 1).unwrap();
        let r = run_steps(&mut setup, 2, 50, 3).unwrap();
        assert_eq!(r.repeats_examples_per_second.len(), 3);
        assert!(r.examples_per_second > 0.0);
        let p = r.phases_ms;
        assert!(p.forward > 0.0 && p.backward > 0.0 && p.loss > 0.0 && p.sparse_update > 0.0);
        assert_eq!(p.ssl_compute, 0.0);
        let parts = p.gather + p.forward + p.loss + p.backward + p.sparse_update + p.dense_update;
        assert!(parts <= p.total * 1.0001, "{parts} > {}", p.total);
        // training on a fixed pairing lowers the in-batch loss
        assert!(
            r.mean_loss < first.mean_loss,
            "{} !< {}",
            r.mean_loss,
            first.mean_loss
        );
        // an impossible batch is an error, not a panic
        setup.batch_size = 1000;
        assert!(run_steps(&mut setup, 0, 1, 1).is_err());
    }

    #[test]
    fn gemm_only_checksum_and_eval_report() {
        // one user block and one item tile: the checksum is score(0, 0)
        let users = unit_rows(3, 8, 1);
        let items = unit_rows(5, 8, 2);
        let norms: Vec<f32> = users.rows().into_iter().map(|r| r.dot(&r)).collect();
        assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5), "{norms:?}");
        let got = gemm_only(&users, &items, &EvalConfig::default());
        let want = users.row(0).dot(&items.row(0));
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");

        let r = eval_throughput(64, 500, 16, 1).unwrap();
        assert_eq!((r.users, r.items, r.dim), (64, 500, 16));
        let scores = 64.0 * 500.0;
        assert!((r.evaluate_scores_per_second * r.evaluate_seconds - scores).abs() < 1e-6 * scores);
        assert!((r.ratio_to_gemm * r.evaluate_seconds - r.gemm_seconds).abs() < 1e-12);
    }
}
