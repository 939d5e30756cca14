//! The bench measures the step training runs: `twotower bench`'s harness
//! ([`twotower::bench::run_steps`]) over the trainer's training state
//! ([`twotower::train::TrainState`]) and the trainer's batch order
//! ([`twotower::train::epoch_order`]) gives the same mean loss, to the
//! last bit, as the trainer's first epoch — with logQ, mixed negatives,
//! false-negative masks, recency weights, the history feature, item-id
//! dropout and SSL all on.

use twotower::bench::{run_steps, RowOrder, StepSetup};
use twotower::config::Config;
use twotower::train::{epoch_order, train, TrainOptions, TrainState, PHASE_REFIT};

const CFG: &str = r#"
[data]
source = "synthetic"
[data.synthetic]
users = 150
items = 120
interactions = 6000
seed = 7
[model]
embedding_dim = 8
hidden = [16]
out_dim = 8
[model.history]
enabled = true
[loss]
mixed_negatives = 16
mask_false_negatives = true
[ssl]
enabled = true
masking = "correlated"
batch_size = 32
[train]
epochs = 1
validation = false
epoch_average = 0.0
recency_decay = 2.0
item_id_dropout = 0.1
progress = false
threads = 1
seed = 11
"#;

#[test]
fn bench_and_trainer_give_the_same_loss_on_the_same_batches() {
    let doc: toml::Value = toml::from_str(CFG).unwrap();
    let probe = Config::from_doc(doc.clone(), ".".into(), "test").unwrap();
    let ds =
        twotower_data::load_dataset(&probe.data(), &probe.raw.features, &probe.base_dir).unwrap();
    let n = ds.train.len();
    // a batch size that divides the train split: no partial last batch
    let b = (40..=120)
        .rev()
        .find(|b| n.is_multiple_of(*b))
        .expect("a divisor");
    let mut doc = doc;
    twotower_data::apply_override(&mut doc, &format!("train.batch_size={b}")).unwrap();
    let cfg = Config::from_doc(doc, ".".into(), "test").unwrap();

    // the trainer: one epoch of the refit phase (no validation)
    let dir = tempfile::tempdir().unwrap();
    let opts = TrainOptions {
        run_dir: dir.path().to_path_buf(),
        resume: false,
        interrupt: None,
        verbose: false,
        stop_after_steps: None,
        on_epoch: None,
    };
    let outcome = train(&cfg, &ds, &opts).unwrap();
    assert_eq!(outcome.history.len(), 1);
    let trainer_loss = outcome.history[0]["loss"].as_f64().unwrap();

    // the bench harness on the same model init, inputs and batches
    let state = TrainState::new(&cfg, &ds, &ds.train, PHASE_REFIT, b, None).unwrap();
    let inputs = &state.step.inputs;
    assert!(inputs.history.is_some() && inputs.ssl.is_some() && inputs.weights.is_some());
    let mut order = vec![0u32; n];
    epoch_order(cfg.raw.train.seed, PHASE_REFIT, 0, &mut order);
    let mut setup = StepSetup {
        state,
        n_users: ds.users.ids.len(),
        batch_size: b,
        order: RowOrder::Given(order),
    };
    let report = run_steps(&mut setup, 0, n / b, 1).unwrap();
    assert!(trainer_loss.is_finite() && trainer_loss > 0.0);
    assert_eq!(
        report.mean_loss.to_bits(),
        trainer_loss.to_bits(),
        "bench {} vs trainer {}",
        report.mean_loss,
        trainer_loss
    );
    // and the same final weights
    let a: Vec<_> = setup.state.model.named_tensors();
    let t: Vec<_> = outcome.model.named_tensors();
    assert_eq!(a.len(), t.len());
    for ((na, _, da), (_, _, dt)) in a.iter().zip(&t) {
        assert!(
            da.iter()
                .zip(dt.iter())
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "{na} differs"
        );
    }

    // a different order (the bench's own shuffle) is another epoch: the
    // comparison above can fail
    let mut other = StepSetup {
        state: TrainState::new(&cfg, &ds, &ds.train, PHASE_REFIT, b, None).unwrap(),
        n_users: ds.users.ids.len(),
        batch_size: b,
        order: RowOrder::Shuffled(1),
    };
    let r = run_steps(&mut other, 0, n / b, 1).unwrap();
    assert_ne!(r.mean_loss.to_bits(), trainer_loss.to_bits());
}
