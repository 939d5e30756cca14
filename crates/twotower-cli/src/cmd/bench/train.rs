//! The training-step cases of `twotower bench`: the real config's trainer
//! state and synthetic catalogs of growing size, each timed by
//! `twotower::bench::run_steps`, and their line of the table.

use std::path::Path;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use twotower::augment::{AugmentConfig, Augmenter, MaskingPattern, SeedScope};
use twotower::bench::{
    embedding_state_bytes, peak_rss_bytes, reset_peak_rss, run_steps, synthetic_side,
    synthetic_spec, uniform_pairs, RowOrder, StepReport, StepSetup, SyntheticColumn,
};
use twotower::config::Config;
use twotower::frequency::CountFrequency;
use twotower::model::{LossConfig, TwoTower};
use twotower::optim::{OptimConfig, Optimizer, SparseOptimizerKind};
use twotower::step::{Frequency, Step, StepInputs};
use twotower::train::{self, TrainState};

use super::Args;

/// One training-throughput measurement.
#[derive(Serialize)]
pub(super) struct TrainCase {
    pub(super) name: String,
    /// `config` (a real dataset) or `synthetic`.
    pub(super) kind: &'static str,
    pub(super) items: usize,
    pub(super) users: usize,
    pub(super) ssl: bool,
    pub(super) ssl_batch: usize,
    #[serde(flatten)]
    pub(super) report: StepReport,
    /// Peak RSS of this case (reset before it where the OS allows).
    pub(super) peak_rss_mib: Option<f64>,
    /// Embedding tables + sparse optimizer state, 4 B × rows × dim × (1 + slots).
    pub(super) embedding_state_mib: f64,
    pub(super) setup_seconds: f64,
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

pub(super) fn print_case(c: &TrainCase) {
    let p = &c.report.phases_ms;
    let ssl = if c.ssl {
        format!("ssl-aug {:.2} ssl {:.2} ", p.ssl_augment, p.ssl_compute)
    } else {
        String::new()
    };
    println!(
        "{:<20} {:>8.0} ex/s {:>6.2} ms/step | ms: gather {:.2} fwd {:.2} loss {:.2} bwd {:.2} {}sparse {:.2} dense {:.2} | allocs/step {} | peak {} MiB (emb+opt {:.0} MiB)",
        c.name,
        c.report.examples_per_second,
        c.report.ms_per_step,
        p.gather,
        p.forward,
        p.loss,
        p.backward,
        ssl,
        p.sparse_update,
        p.dense_update,
        c.report
            .allocations_per_step
            .map(|a| format!("{a:.1}"))
            .unwrap_or_else(|| "- (build with --features alloc-count)".into()),
        c.peak_rss_mib
            .map(|m| format!("{m:.0}"))
            .unwrap_or_else(|| "?".into()),
        c.embedding_state_mib,
    );
}

pub(super) fn real_case(
    path: &Path,
    ssl: bool,
    history: bool,
    warmup: usize,
    steps: usize,
    repeats: usize,
) -> anyhow::Result<TrainCase> {
    let t = Instant::now();
    let rss_reset = reset_peak_rss();
    let mut overrides = vec![format!("ssl.enabled={ssl}")];
    if history {
        overrides.push("model.history.enabled=true".into());
    }
    let cfg = Config::load(Some(path), &overrides)?;
    let ds = crate::cmd::load_data(&cfg, true)?;
    let b = cfg.raw.train.batch_size;
    // the trainer's own state and step over the train split (logQ, mixed
    // negatives, masks, weights, history bags, id dropout, SSL as configured)
    let state = train::TrainState::new(&cfg, &ds, &ds.train, 0, b, None)?;
    let opt_cfg = train::optim_config(&cfg);
    let m = if cfg.raw.ssl.batch_size > 0 {
        cfg.raw.ssl.batch_size
    } else {
        b
    };
    let emb = embedding_state_bytes(&state.model, opt_cfg.sparse);
    let n_items = ds.items.ids.len();
    let mut setup = StepSetup {
        state,
        n_users: ds.users.ids.len(),
        batch_size: b,
        order: RowOrder::Shuffled(cfg.raw.train.seed),
    };
    let setup_seconds = t.elapsed().as_secs_f64();
    let report = run_steps(&mut setup, warmup, steps, repeats)?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    Ok(TrainCase {
        name: format!(
            "{name}{}{}",
            if cfg.raw.model.history.enabled {
                " +history"
            } else {
                ""
            },
            if ssl { " +SSL" } else { "" }
        ),
        kind: "config",
        items: n_items,
        users: setup.n_users,
        ssl,
        ssl_batch: if ssl { m } else { 0 },
        report,
        peak_rss_mib: peak_rss_bytes().filter(|_| rss_reset).map(mib),
        embedding_state_mib: mib(emb),
        setup_seconds,
    })
}

pub(super) fn synthetic_case(
    users: &[SyntheticColumn],
    n_items: usize,
    args: &Args,
    ssl: bool,
    warmup: usize,
    steps: usize,
    repeats: usize,
) -> anyhow::Result<TrainCase> {
    let t = Instant::now();
    let items = synthetic_side(n_items, args.dim, 12);
    // the peak of this case: tables, optimizer state and batch buffers
    let rss_reset = reset_peak_rss();
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let model = TwoTower::new(
        synthetic_spec(users, vec![128], 64),
        synthetic_spec(&items, vec![128], 64),
        &mut rng,
    )?;
    let opt_cfg = OptimConfig {
        sparse: SparseOptimizerKind::Adam,
        sparse_lr: 0.01,
        ..OptimConfig::default()
    };
    let opt = Optimizer::new(&model, &opt_cfg);
    let emb = embedding_state_bytes(&model, opt_cfg.sparse);
    let aug = if ssl {
        let acfg = AugmentConfig {
            pattern: MaskingPattern::Complementary,
            mask_rate: 0.5,
            dropout_rate: 0.0,
            seed_scope: SeedScope::PerExample,
            mask_id_feature: true,
            cfm_id_partner: true,
            mask_as_unknown: false,
        };
        Some((
            Augmenter::new(
                acfg,
                vec![false, false, true],
                vec![true, false, false],
                None,
            )?,
            args.batch_size.min(n_items),
        ))
    } else {
        None
    };
    let n_users = users[0].offsets.len() - 1;
    // enough uniform pairs that no row repeats during the measurement
    let fit = uniform_pairs(
        n_users,
        n_items,
        args.batch_size * (warmup + steps * repeats),
        7,
    );
    let inputs = StepInputs {
        user_columns: users.iter().map(SyntheticColumn::column).collect(),
        item_columns: items.iter().map(SyntheticColumn::column).collect(),
        n_items,
        fit: &fit,
        frequency: Frequency::Counts(CountFrequency::from_train_counts(&vec![1; n_items])?),
        logq_weight: 1.0,
        mixed_negatives: 0,
        weights: None,
        user_history: None,
        history: None,
        id_dropout: None,
        ssl: aug,
        loss: LossConfig {
            temperature: 0.1,
            mask_accidental_hits: true,
            ssl_temperature: 0.1,
            ssl_weight: 0.1,
            ssl_stop_gradient: false,
            ssl_symmetric: false,
        },
        seed: 7,
        phase_tag: 0,
    };
    let step = Step::new(inputs, &model, args.batch_size);
    let mut setup = StepSetup {
        state: TrainState::from_step(model, opt, step),
        n_users,
        batch_size: args.batch_size,
        order: RowOrder::Shuffled(7),
    };
    let setup_seconds = t.elapsed().as_secs_f64();
    let report = run_steps(&mut setup, warmup, steps, repeats)?;
    let peak = peak_rss_bytes().map(mib);
    Ok(TrainCase {
        name: format!(
            "synthetic {}{}",
            human(n_items),
            if ssl { " +SSL" } else { "" }
        ),
        kind: "synthetic",
        items: n_items,
        users: setup.n_users,
        ssl,
        ssl_batch: if ssl { args.batch_size.min(n_items) } else { 0 },
        report,
        peak_rss_mib: if rss_reset { peak } else { None },
        embedding_state_mib: mib(emb),
        setup_seconds,
    })
}

pub(super) fn human(n: usize) -> String {
    if n >= 1_000_000 && (n / 1_000_000) * 1_000_000 == n {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 && (n / 1000) * 1000 == n {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}
