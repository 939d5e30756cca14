//! The evaluation sets of training and test (EVALUATION.md): the
//! search phase's dataset (ids first seen after the validation cut are
//! out of vocabulary), the sets of held-out pairs, and evaluating a model
//! and the most-popular baseline on them.

use twotower_data::{Dataset, EntityTable, Interactions};

use crate::config::Config;
use crate::eval::{evaluate, DotScorer, EvalError, EvalSet, Metrics, PopularityScorer};
use crate::model::TwoTower;
use twotower_model::inference::encode_all;

use crate::history_feature::HistoryFeature;

use super::{eval_config, TrainError};

/// (user, item) index pairs of interactions.
pub fn pairs(x: &Interactions) -> Vec<(u32, u32)> {
    x.user.iter().copied().zip(x.item.iter().copied()).collect()
}

/// `items` with the id feature(s) of every item that has no interaction
/// in `seen` set to row 0, the out-of-vocabulary row: the item table of the
/// search phase, whose train split (`seen`) is the part of train before the
/// validation cut. The vocabulary (and so the model's shapes) is unchanged;
/// an item first seen in validation then reaches the tower as a cold item
/// does at test time, so validation's `cold_recall@K` measures the cold path.
///
/// # Shapes
/// `seen`: item indices `< items.len()`.
pub fn unseen_ids_as_oov(items: &EntityTable, seen: &[u32]) -> EntityTable {
    let mut has = vec![false; items.len()];
    for &i in seen {
        has[i as usize] = true;
    }
    let mut out = items.clone();
    for f in out.features.iter_mut().filter(|f| f.is_id) {
        for (e, _) in has.iter().enumerate().filter(|(_, &h)| !h) {
            let (a, b) = (f.offsets[e] as usize, f.offsets[e + 1] as usize);
            f.values[a..b].fill(0);
        }
    }
    out
}

/// The entity tables the search phase trains and validates on: `ds`'s,
/// with [`unseen_ids_as_oov`] applied to the items for `fit` (the part of
/// train before the validation cut). Its `train` and `test` are empty: the
/// search phase reads `fit` and the validation set, never `ds`'s splits.
pub fn search_dataset(ds: &Dataset, fit: &Interactions) -> Dataset {
    Dataset {
        users: ds.users.clone(),
        items: unseen_ids_as_oov(&ds.items, &fit.item),
        train: Interactions::default(),
        test: Interactions::default(),
        report: ds.report.clone(),
        train_stream: None,
    }
}

/// The validation split of the search phase: `train` cut per user exactly
/// as the test split is cut from all interactions (the config's
/// `[data.split]` fraction and minimum), returning (the part before the
/// validation cut, the validation split).
///
/// # Errors
/// [`TrainError::Data`] when the validation split is empty (too few
/// interactions per user).
pub fn validation_split(
    cfg: &Config,
    ds: &Dataset,
    train: &Interactions,
) -> Result<(Interactions, Interactions), TrainError> {
    let split = &cfg.data().split;
    let (fit, valid) = twotower_data::temporal_split(
        train,
        &ds.items.id_rank,
        split.test_fraction,
        split.min_interactions,
    );
    if valid.user.is_empty() {
        return Err(TrainError::Data(
            "the validation split carved from train is empty (too few interactions per user); \
             set train.validation=false"
                .into(),
        ));
    }
    Ok((fit, valid))
}

/// The evaluator's view of a (train, test) pair of splits.
pub fn eval_set(
    ds: &Dataset,
    train: &Interactions,
    test: &Interactions,
) -> Result<EvalSet, TrainError> {
    EvalSet::new(
        ds.users.ids.len(),
        ds.items.ids.len(),
        &pairs(train),
        &pairs(test),
        &ds.items.id_rank,
    )
    .map_err(|e| TrainError::Data(e.to_string()))
}

/// [`eval_set`] with the config's user sample (`eval.max_users`,
/// `eval.sample_seed`; see [`EvalSet::sample_users`]): the set every
/// validation and test evaluation of a run uses. For a streamed train split
/// (`train` empty, `ds.train_stream` set) the items' popularity is the
/// load's counts and the evaluated users' train items are read in one pass.
pub fn eval_set_sampled(
    cfg: &Config,
    ds: &Dataset,
    train: &Interactions,
    test: &Interactions,
) -> Result<EvalSet, TrainError> {
    let (max, seed) = (cfg.raw.eval.max_users, cfg.raw.eval.sample_seed);
    let stream = match &ds.train_stream {
        Some(s) if train.is_empty() => s,
        _ => {
            let mut set = eval_set(ds, train, test)?;
            set.sample_users(max, seed);
            return Ok(set);
        }
    };
    // A streamed train split: popularity from the load's counts, and one
    // pass for the train items of the evaluated users (the sample depends
    // on the test users and the seed only, so it is drawn first).
    let (n_users, n_items) = (ds.users.ids.len(), ds.items.ids.len());
    let data = |e: EvalError| TrainError::Data(e.to_string());
    let test = pairs(test);
    let set = |train: &[(u32, u32)]| {
        let mut set = EvalSet::with_popularity(
            n_users,
            n_items,
            stream.item_counts.clone(),
            train,
            &test,
            &ds.items.id_rank,
        )
        .map_err(data)?;
        set.sample_users(max, seed);
        Ok::<_, TrainError>(set)
    };
    let mut wanted = vec![false; n_users];
    for &u in set(&[])?.test_users() {
        wanted[u as usize] = true;
    }
    let train = stream
        .pairs_of_users(&ds.users.ids, &ds.items.ids, &wanted)
        .map_err(|e| TrainError::Data(e.to_string()))?;
    set(&train)
}

/// Evaluates a model on `set` per EVALUATION.md; `history` (built from the
/// set's train side) feeds the history feature, if the model has one.
///
/// # Errors
/// [`TrainError::Eval`] (e.g. NaN scores from a diverged model).
pub fn evaluate_model(
    model: &TwoTower<f32>,
    ds: &Dataset,
    set: &EvalSet,
    cfg: &Config,
    history: Option<&HistoryFeature>,
) -> Result<Metrics, TrainError> {
    let (uv, iv) = encode_all(model, ds, history);
    let scorer = DotScorer::new(uv.view(), iv.view())?;
    Ok(evaluate(&scorer, set, &eval_config(cfg))?)
}

/// The most-popular baseline on `set`.
///
/// # Errors
/// [`TrainError::Eval`].
pub fn evaluate_most_popular(set: &EvalSet, cfg: &Config) -> Result<Metrics, TrainError> {
    let scorer = PopularityScorer::from_set(set);
    Ok(evaluate(&scorer, set, &eval_config(cfg))?)
}

#[cfg(test)]
mod search_phase_tests {
    use super::*;

    #[test]
    fn items_unseen_before_the_validation_cut_read_the_oov_id_row() {
        let ds = twotower_data::generate_dataset(&twotower_data::SyntheticConfig {
            users: 60,
            items: 80,
            interactions: 400,
            ..Default::default()
        })
        .unwrap();
        let fit = ds
            .train
            .select(&(0..ds.train.len() as u32 / 2).collect::<Vec<_>>());
        let seen: std::collections::HashSet<u32> = fit.item.iter().copied().collect();
        let out = search_dataset(&ds, &fit);
        assert!(out.train.is_empty() && out.test.is_empty());
        assert_eq!(out.users, ds.users);
        let (mut oov, mut kept) = (0, 0);
        for (f, g) in ds.items.features.iter().zip(&out.items.features) {
            assert_eq!((&f.vocab, &f.offsets), (&g.vocab, &g.offsets), "{}", f.name);
            for e in 0..ds.items.len() {
                if f.is_id && !seen.contains(&(e as u32)) {
                    assert_eq!(g.row(e), &[0], "item {e} unseen in fit: id row 0");
                    oov += 1;
                } else {
                    assert_eq!(g.row(e), f.row(e), "{} item {e}", f.name);
                    kept += f.is_id as usize;
                }
            }
        }
        assert!(oov > 0 && kept > 0, "both kinds occur: {oov} {kept}");
        assert!(ds.items.features.iter().any(|f| f.is_id));
    }
}
