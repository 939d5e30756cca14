//! Gradient check of the history feature (GRADIENTS.md; the pattern of
//! `tests/gradcheck.rs`): `TwoTower::<f64>::loss_and_grads` of a model whose
//! user tower has
//! - a **history** feature that shares the item tower's item-id table
//!   (`model.shared`, the user tower's own table a 1-row placeholder), its
//!   bags recency-weighted (`BatchFeature::weights`) or plain means, and
//! - a second, non-shared **weighted bag** feature,
//!
//! on a batch where item rows are both candidates of the item tower and
//! members of users' history bags, so that a shared row is trained by both
//! towers (and, with SSL, by the item tower's two SSL passes too).
//!
//! Criterion (as `gradcheck.rs`): relative error
//! `|g − ĝ| / max(1e-8, |g| + |ĝ|) < 1e-4`, `ĝ` the fourth-order central
//! difference `(−L(x+2h) + 8L(x+h) − 8L(x−h) + L(x−2h)) / 12h`, `h = 1e-3`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use twotower_model::model::{
    LossConfig, MainBatch, ModelGrads, SharedTable, SslBatch, TwoTower, Workspace,
};
use twotower_model::tower::{
    BatchFeature, FeatureColumn, FeatureSpec, MaskEmbedding, TowerBatch, TowerSpec,
};

const H: f64 = 1e-3;

/// Fourth-order central difference of `f` at 0.
fn fd(mut f: impl FnMut(f64) -> f64) -> f64 {
    (-f(2.0 * H) + 8.0 * f(H) - 8.0 * f(-H) + f(-2.0 * H)) / (12.0 * H)
}

fn rel_err(g: f64, n: f64) -> f64 {
    (g - n).abs() / (g.abs() + n.abs()).max(1e-8)
}

fn assert_close(label: &str, g: f64, n: f64) {
    let r = rel_err(g, n);
    assert!(
        r < 1e-4,
        "{label}: analytic {g:e} vs numeric {n:e} (relative error {r:e})"
    );
}

/// User tower features.
const USER_ID: usize = 0;
const RECENT: usize = 1;
const HISTORY: usize = 2;
/// Item tower features.
const ITEM_ID: usize = 0;
const ITEM_ROWS: usize = 8;

fn feature(name: &str, vocab_size: usize, dim: usize) -> FeatureSpec {
    FeatureSpec {
        name: name.into(),
        vocab_size,
        dim,
    }
}

/// The model: user tower `user_id`, `recent` (own table, weighted bags),
/// `history` (`history_rows` rows: 1 = the placeholder of a shared table);
/// item tower `item_id` (8 rows, dim 3 like the history) and `genres`.
fn model(history_rows: usize, seed: u64) -> TwoTower<f64> {
    let user = TowerSpec {
        features: vec![
            feature("user_id", 5, 3),
            feature("recent", 6, 2),
            feature("history", history_rows, 3),
        ],
        hidden: vec![5],
        out_dim: 3,
        mask_embedding: MaskEmbedding::Zero,
    };
    let item = TowerSpec {
        features: vec![feature("item_id", ITEM_ROWS, 3), feature("genres", 5, 2)],
        hidden: vec![4],
        out_dim: 3,
        mask_embedding: MaskEmbedding::Learned,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut m = TwoTower::new(user, item, &mut rng).unwrap();
    for l in m.user.layers.iter_mut().chain(m.item.layers.iter_mut()) {
        l.b.mapv_inplace(|_| rng.gen_range(-0.1..0.1));
    }
    for v in m.item.mask_vectors.iter_mut() {
        v.iter_mut().for_each(|x| *x = rng.gen_range(-0.5..0.5));
    }
    m
}

/// The shared model: the history feature reads the item tower's item-id table.
fn shared_model(seed: u64) -> TwoTower<f64> {
    let mut m = model(1, seed);
    m.shared = Some(SharedTable {
        user_feature: HISTORY,
        item_feature: ITEM_ID,
    });
    m
}

/// The same function as `shared_model(seed)` without sharing: the history
/// feature has its own copy of the item-id table.
fn unshared_copy(shared: &TwoTower<f64>) -> TwoTower<f64> {
    let mut m = model(ITEM_ROWS, 0);
    m.user.layers = shared.user.layers.clone();
    m.item = shared.item.clone();
    m.user.tables[USER_ID] = shared.user.tables[USER_ID].clone();
    m.user.tables[RECENT] = shared.user.tables[RECENT].clone();
    m.user.tables[HISTORY] = shared.item.tables[ITEM_ID].clone();
    m
}

fn bags(offsets: &[u32], values: &[u32], weights: &[f32]) -> BatchFeature {
    BatchFeature {
        offsets: offsets.to_vec(),
        values: values.to_vec(),
        masked: Vec::new(),
        weights: weights.to_vec(),
    }
}

/// CSR column from per-entity bags.
fn csr(rows: &[&[u32]]) -> (Vec<u32>, Vec<u32>) {
    let mut off = vec![0u32];
    let mut val = Vec::new();
    for b in rows {
        val.extend_from_slice(b);
        off.push(val.len() as u32);
    }
    (off, val)
}

struct Fixture {
    main: MainBatch<f64>,
    ssl: SslBatch,
}

/// Candidates (item entity e → item-id row e + 1): positives [0, 2, 0, 4]
/// (rows 1, 3, 1, 5; entity 0 twice: an accidental hit), mixed negatives
/// [2, 5] (rows 3, 6). History bags (item-id rows): user 0 {1, 3, 6} —
/// all three candidates —, user 1 {5, 1}, user 2 empty, user 3 {2, 2, 7}
/// (a repeat; rows 2 and 7 are in no candidate). So rows 1, 3, 5, 6 get
/// gradients from both towers, rows 2 and 7 from the user tower only.
fn fixture(weighted_history: bool) -> Fixture {
    let mut main = MainBatch::<f64>::default();
    let history_w: &[f32] = if weighted_history {
        // recency weights exp(−λ·age/max_len), λ = 1.5, max_len = 3
        &[
            0.367_879_4,
            0.606_530_7,
            1.0,
            0.606_530_7,
            1.0,
            0.367_879_4,
            0.606_530_7,
            1.0,
        ]
    } else {
        &[]
    };
    main.users.features = vec![
        bags(&[0, 1, 2, 3, 4], &[1, 2, 3, 0], &[]),
        // recent: own table, weighted (a weight-0 entry, a repeated row, an empty bag)
        // (user 1's bag weighs 0 in all: pooled to 0; user 3's ends in a weight-0 entry)
        bags(
            &[0, 2, 3, 3, 7],
            &[1, 2, 3, 4, 4, 5, 3],
            &[0.5, 1.0, 0.0, 0.2, 0.7, 1.0, 0.0],
        ),
        bags(&[0, 3, 5, 5, 8], &[1, 3, 6, 5, 1, 2, 2, 7], history_w),
    ];
    let (io0, iv0) = csr(&[&[1], &[2], &[3], &[4], &[5], &[6], &[7]]);
    let (io1, iv1) = csr(&[&[1, 2], &[3], &[], &[1, 4], &[2], &[3, 3, 1], &[4]]);
    let cols = [
        FeatureColumn {
            offsets: &io0,
            values: &iv0,
            weights: &[],
        },
        FeatureColumn {
            offsets: &io1,
            values: &iv1,
            weights: &[],
        },
    ];
    let cand = [0u32, 2, 0, 4, 2, 5];
    main.items.gather(&cols, &cand);
    main.item_ids = cand.to_vec();
    main.log_q = [0.2, 0.1, 0.2, 0.05, 0.1, 0.02]
        .iter()
        .map(|p: &f64| p.ln())
        .collect();
    main.weights = vec![1.0, 0.5, 2.0, 1.5];

    // SSL views of items [0, 2, 5] (rows 1, 3, 6: shared rows again); view 1
    // masks row 0's item id, view 2 row 1's genres
    let mut ssl = SslBatch::default();
    ssl.view1.gather(&cols, &[0, 2, 5]);
    ssl.view2.gather(&cols, &[0, 2, 5]);
    ssl.view1.features[ITEM_ID].masked = vec![true, false, false];
    ssl.view2.features[1].masked = vec![false, true, false];
    Fixture { main, ssl }
}

fn cfg() -> LossConfig<f64> {
    LossConfig {
        temperature: 0.5,
        mask_accidental_hits: true,
        ssl_temperature: 0.3,
        ssl_weight: 0.7,
        ssl_stop_gradient: false,
        ssl_symmetric: false,
    }
}

fn loss(model: &TwoTower<f64>, fx: &Fixture, with_ssl: bool) -> f64 {
    let mut ws = Workspace::default();
    let mut g = ModelGrads::new(model);
    model
        .loss_and_grads(
            &fx.main,
            with_ssl.then_some(&fx.ssl),
            &cfg(),
            &mut ws,
            &mut g,
        )
        .total
}

/// Gradients after two calls on the same workspace and gradients (buffers
/// reused, gradients re-zeroed: the shared rows must not accumulate).
fn grads(model: &TwoTower<f64>, fx: &Fixture, with_ssl: bool) -> (f64, ModelGrads<f64>) {
    let mut ws = Workspace::default();
    let mut g = ModelGrads::new(model);
    let ssl = with_ssl.then_some(&fx.ssl);
    let first = model.loss_and_grads(&fx.main, ssl, &cfg(), &mut ws, &mut g);
    let again = model.loss_and_grads(&fx.main, ssl, &cfg(), &mut ws, &mut g);
    assert_eq!(first, again);
    (again.total, g)
}

/// A sparse table gradient as a dense `[rows × dim]` vector.
fn dense(g: &twotower_model::embedding::SparseGrad<f64>, rows: usize) -> Vec<f64> {
    let mut d = vec![0.0; rows * g.dim];
    for (r, v) in g.iter() {
        d[r as usize * g.dim..(r as usize + 1) * g.dim].copy_from_slice(v);
    }
    d
}

/// Checks every entry of `model.<side>.tables[f]` against `analytic`
/// (dense); returns how many entries are non-zero.
fn check_table(
    label: &str,
    model: &mut TwoTower<f64>,
    fx: &Fixture,
    with_ssl: bool,
    item_side: bool,
    f: usize,
    analytic: &[f64],
) -> usize {
    let len = if item_side {
        model.item.tables[f].data.len()
    } else {
        model.user.tables[f].data.len()
    };
    assert_eq!(analytic.len(), len, "{label}: gradient length");
    fn entry(m: &mut TwoTower<f64>, item_side: bool, f: usize, i: usize) -> &mut f64 {
        if item_side {
            &mut m.item.tables[f].data[i]
        } else {
            &mut m.user.tables[f].data[i]
        }
    }
    for (i, &g) in analytic.iter().enumerate() {
        let orig = *entry(model, item_side, f, i);
        let n = fd(|d| {
            *entry(model, item_side, f, i) = orig + d;
            let l = loss(model, fx, with_ssl);
            *entry(model, item_side, f, i) = orig;
            l
        });
        assert_close(&format!("{label}[{i}]"), g, n);
    }
    analytic.iter().filter(|&&g| g != 0.0).count()
}

fn check_shared(weighted_history: bool, with_ssl: bool, seed: u64) {
    let label = format!("weighted history {weighted_history}, ssl {with_ssl}");
    let fx = fixture(weighted_history);
    assert_eq!(
        fx.main.users.features[HISTORY].weights.is_empty(),
        !weighted_history
    );
    let mut m = shared_model(seed);
    let (total, g) = grads(&m, &fx, with_ssl);

    // the user tower's gradient of the shared feature has moved to the item table
    assert!(
        g.user.tables[HISTORY].is_empty(),
        "{label}: user history gradient left behind: {:?}",
        g.user.tables[HISTORY].rows
    );
    let shared = dense(&g.item.tables[ITEM_ID], ITEM_ROWS);
    // every row the history bags or the candidates touch, nothing else
    let mut touched: Vec<u32> = g.item.tables[ITEM_ID].rows.clone();
    touched.sort_unstable();
    assert_eq!(touched, vec![1, 2, 3, 5, 6, 7], "{label}");

    // the two towers' parts, from the same function without sharing
    let u = unshared_copy(&m);
    let (total_u, gu) = grads(&u, &fx, with_ssl);
    assert!(
        (total - total_u).abs() < 1e-12,
        "{label}: {total} vs {total_u}"
    );
    let from_user = dense(&gu.user.tables[HISTORY], ITEM_ROWS);
    let from_item = dense(&gu.item.tables[ITEM_ID], ITEM_ROWS);
    for (i, ((&s, &a), &b)) in shared.iter().zip(&from_user).zip(&from_item).enumerate() {
        assert!(
            (s - (a + b)).abs() < 1e-12,
            "{label}: shared [{i}] = {s:e}, user part {a:e} + item part {b:e}"
        );
    }
    let norm = |v: &[f64], r: usize| v[r * 3..r * 3 + 3].iter().map(|x| x * x).sum::<f64>();
    for r in [1, 3, 5, 6] {
        assert!(
            norm(&from_user, r) > 1e-12 && norm(&from_item, r) > 1e-12,
            "{label}: row {r} should get both towers' gradients"
        );
    }
    for r in [2, 7] {
        assert!(
            norm(&from_user, r) > 1e-12 && norm(&from_item, r) == 0.0,
            "{label}: row {r}"
        );
    }

    // the analytic gradient of the shared rows against finite differences of
    // the loss in the item tower's table (the one both towers read)
    let nz = check_table(
        &format!("{label}: item.emb.item_id (shared)"),
        &mut m,
        &fx,
        with_ssl,
        true,
        ITEM_ID,
        &shared,
    );
    assert_eq!(nz, 6 * 3, "{label}: non-zero shared entries");
    // the placeholder is never read: its finite differences are 0, like its gradient
    let zero = vec![0.0; 3];
    check_table(
        &format!("{label}: user.emb.history (placeholder)"),
        &mut m,
        &fx,
        with_ssl,
        false,
        HISTORY,
        &zero,
    );
    // the non-shared weighted bag: one entry (row 4, twice in user 3's bag),
    // then the whole table
    let recent = dense(&g.user.tables[RECENT], 6);
    let i = 4 * 2 + 1;
    let orig = m.user.tables[RECENT].data[i];
    let n = fd(|d| {
        m.user.tables[RECENT].data[i] = orig + d;
        let l = loss(&m, &fx, with_ssl);
        m.user.tables[RECENT].data[i] = orig;
        l
    });
    assert!(
        recent[i].abs() > 1e-8,
        "{label}: recent[{i}] = {}",
        recent[i]
    );
    assert_close(&format!("{label}: user.emb.recent[{i}]"), recent[i], n);
    let nz = check_table(
        &format!("{label}: user.emb.recent"),
        &mut m,
        &fx,
        with_ssl,
        false,
        RECENT,
        &recent,
    );
    // rows 1, 2, 4, 5 (row 3 only ever weighs 0): 4 rows × 2
    assert_eq!(nz, 8, "{label}: non-zero recent entries");
}

#[test]
fn shared_history_table_weighted_bags_main_loss() {
    check_shared(true, false, 21);
}

#[test]
fn shared_history_table_weighted_bags_with_ssl() {
    check_shared(true, true, 22);
}

#[test]
fn shared_history_table_mean_bags() {
    // (not every seed fits: with seed 23 a hidden ReLU input lies within 2h
    // of its kink, so the difference quotient, not the gradient, is off; with
    // 25 every ReLU of user 0 is off, and its bag's rows get nothing from the
    // user tower)
    check_shared(false, false, 27);
}

#[test]
fn shared_history_whole_model() {
    // every other parameter of the model (dense layers, user id, genres,
    // mask vectors) through the shared-table step, as gradcheck.rs checks them
    let fx = fixture(true);
    let mut m = shared_model(24);
    let (_, g) = grads(&m, &fx, true);
    let names: Vec<String> = m.named_tensors().into_iter().map(|(n, _, _)| n).collect();
    let mut checked = 0;
    for name in names {
        let a: Vec<f64> = match name.as_str() {
            "user.emb.user_id" => dense(&g.user.tables[USER_ID], 5),
            "user.emb.recent" => dense(&g.user.tables[RECENT], 6),
            "user.emb.history" => dense(&g.user.tables[HISTORY], 1),
            "item.emb.item_id" => dense(&g.item.tables[ITEM_ID], ITEM_ROWS),
            "item.emb.genres" => dense(&g.item.tables[1], 5),
            "item.mask.item_id" => g.item.mask_vectors[ITEM_ID].clone(),
            "item.mask.genres" => g.item.mask_vectors[1].clone(),
            other => {
                let (side, rest) = other.split_once('.').unwrap();
                let t = if side == "user" { &g.user } else { &g.item };
                let (l, which) = rest.strip_prefix("mlp.").unwrap().split_once('.').unwrap();
                let l = &t.layers[l.parse::<usize>().unwrap()];
                if which == "w" {
                    l.dw.as_slice().unwrap().to_vec()
                } else {
                    l.db.as_slice().unwrap().to_vec()
                }
            }
        };
        for (i, &gi) in a.iter().enumerate() {
            let orig = m.tensor_mut(&name).unwrap()[i];
            let n = fd(|d| {
                m.tensor_mut(&name).unwrap()[i] = orig + d;
                let l = loss(&m, &fx, true);
                m.tensor_mut(&name).unwrap()[i] = orig;
                l
            });
            assert_close(&format!("{name}[{i}]"), gi, n);
            checked += 1;
        }
    }
    // user: 5·3 + 6·2 + 1·3 + (8·5+5) + (5·3+3) = 15+12+3+45+18 = 93;
    // item: 8·3 + 5·2 + 3 + 2 + (5·4+4) + (4·3+3) = 24+10+5+24+15 = 78
    assert_eq!(checked, 171);
}

#[test]
fn gather_feeds_weighted_columns() {
    // a weighted column (the history's user column) reaches the batch with
    // its weights, the way evaluation feeds the history feature
    let (o, v) = csr(&[&[1, 2], &[], &[3]]);
    let w = [0.5f32, 1.0, 0.25];
    let cols = [FeatureColumn {
        offsets: &o,
        values: &v,
        weights: &w,
    }];
    let mut b = TowerBatch::default();
    b.gather(&cols, &[2, 0, 1]);
    assert_eq!(b.features[0].offsets, vec![0, 1, 3, 3]);
    assert_eq!(b.features[0].values, vec![3, 1, 2]);
    assert_eq!(b.features[0].weights, vec![0.25, 0.5, 1.0]);
}
