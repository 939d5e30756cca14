//! The evaluation through an index (`eval.retrieval = "hnsw"`) against the
//! exact oracle: the same metrics when the index finds the exact top K
//! (an exact index; usearch's HNSW with a generous ef), its recall against
//! exact top-K, and the most-popular baseline without a catalog scan.

use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use twotower::ann::{AnnConfig, UsearchIndex};
use twotower::eval::{
    ann_recall, evaluate, evaluate_index, evaluate_popularity, DotScorer, EvalConfig, EvalError,
    EvalSet, PopularityScorer,
};
use twotower::index::{ExactIndex, IndexError, VectorIndex};

/// A random split: users with 0–30 train items (Zipf-ish, the last items
/// never clicked: cold), most with 1–8 test items; a shuffled id rank.
fn random_set(seed: u64, n_users: usize, n_items: usize) -> EvalSet {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut train = Vec::new();
    let mut test = Vec::new();
    let hot = (n_items * 6 / 7) as f64;
    for u in 0..n_users as u32 {
        for _ in 0..rng.gen_range(0..30) {
            train.push((u, (rng.gen::<f64>().powi(3) * hot) as u32));
        }
        if u % 7 != 0 {
            for _ in 0..rng.gen_range(1..8) {
                test.push((u, rng.gen_range(0..n_items as u32)));
            }
        }
    }
    let mut rank: Vec<u32> = (0..n_items as u32).collect();
    for i in (1..n_items).rev() {
        rank.swap(i, rng.gen_range(0..=i));
    }
    EvalSet::new(n_users, n_items, &train, &test, &rank).unwrap()
}

/// Rows of i.i.d. normal-ish values scaled to unit norm.
fn unit_rows(rng: &mut ChaCha8Rng, n: usize, d: usize) -> Array2<f32> {
    let mut a = Array2::from_shape_fn((n, d), |_| {
        // sum of uniforms: close enough to a Gaussian for random directions
        (0..4).map(|_| rng.gen::<f32>() - 0.5).sum::<f32>()
    });
    for mut row in a.rows_mut() {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        row.mapv_inplace(|x| x / norm);
    }
    a
}

fn cfg() -> EvalConfig {
    EvalConfig {
        ks: vec![1, 10, 50, 100],
        block_users: 16,
        item_tile: 64,
        threads: Some(2),
    }
}

#[test]
fn popularity_without_a_scan_equals_the_scan() {
    for seed in 0..4 {
        let set = random_set(seed, 150, 600);
        for c in [cfg(), EvalConfig::default()] {
            let scan = evaluate(&PopularityScorer::from_set(&set), &set, &c).unwrap();
            assert_eq!(evaluate_popularity(&set, &c).unwrap(), scan, "seed {seed}");
        }
    }
    // a catalog smaller than K, every item of some user seen
    let set = EvalSet::new(
        2,
        3,
        &[(0, 0), (0, 1), (0, 2)],
        &[(0, 1), (1, 2)],
        &[2, 0, 1],
    )
    .unwrap();
    let scan = evaluate(&PopularityScorer::from_set(&set), &set, &cfg()).unwrap();
    assert_eq!(evaluate_popularity(&set, &cfg()).unwrap(), scan);
}

#[test]
fn an_exact_index_gives_the_exact_metrics() {
    // integer-valued vectors: exact sums, so many exact ties, which the id
    // rank must break the same way in both paths
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let set = random_set(3, 120, 700);
    let users = Array2::from_shape_fn((120, 8), |_| rng.gen_range(-2i32..=2) as f32);
    let items = Array2::from_shape_fn((700, 8), |_| rng.gen_range(-1i32..=1) as f32);
    let exact = evaluate(
        &DotScorer::new(users.view(), items.view()).unwrap(),
        &set,
        &cfg(),
    )
    .unwrap();
    let index = ExactIndex::with_tie_rank(items.clone(), set.item_id_rank().to_vec()).unwrap();
    assert_eq!(
        evaluate_index(&index, users.view(), &set, &cfg()).unwrap(),
        exact
    );
    let r = ann_recall(
        &index,
        users.view(),
        &DotScorer::new(users.view(), items.view()).unwrap(),
        &set,
        &cfg(),
        1000,
        0,
    )
    .unwrap();
    assert_eq!(r.n_users, set.test_users().len());
    assert!(r.values.values().all(|&v| v == 1.0), "{r:?}");
}

#[test]
fn hnsw_with_a_generous_ef_equals_exact() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (n_users, n_items, d) = (200, 800, 16);
    let set = random_set(9, n_users, n_items);
    let users = unit_rows(&mut rng, n_users, d);
    let mut items = unit_rows(&mut rng, n_items, d);
    // duplicate vectors (cold items with the same features): one graph node
    for i in 700..760 {
        let src = items.row(700 + i % 3).to_owned();
        items.row_mut(i).assign(&src);
    }
    // in row order: one graph for these vectors (a parallel build's varies,
    // and may leave a node unreachable)
    let build = || {
        UsearchIndex::build_in_order(
            items.view(),
            set.item_id_rank().to_vec(),
            &AnnConfig {
                expansion_search: 2048,
                ..AnnConfig::default()
            },
        )
        .unwrap()
    };
    let index = build();
    assert!(index.n_distinct() < n_items);
    let scorer = DotScorer::new(users.view(), items.view()).unwrap();
    let exact = evaluate(&scorer, &set, &cfg()).unwrap();
    let approx = evaluate_index(&index, users.view(), &set, &cfg()).unwrap();
    let recall = ann_recall(&index, users.view(), &scorer, &set, &cfg(), 50, 3).unwrap();
    assert_eq!(recall.n_users, 50);
    for (k, v) in &recall.values {
        assert_eq!(*v, 1.0, "{k}");
    }
    assert_eq!(
        approx.values.keys().collect::<Vec<_>>(),
        exact.values.keys().collect::<Vec<_>>()
    );
    for (name, want) in &exact.values {
        let got = approx.values[name];
        match (got, want) {
            (Some(g), Some(w)) => assert!((g - w).abs() < 1e-12, "{name}: {g} vs {w}"),
            _ => assert_eq!(got, *want, "{name}"),
        }
    }
    assert_eq!(approx.n_test_pairs, exact.n_test_pairs);
    // reproducible: another build ranks the same
    let again = evaluate_index(&build(), users.view(), &set, &cfg()).unwrap();
    assert_eq!(again, approx);
}

/// An "index" that returns the worst candidates: recall against exact is
/// low, and the metrics are what that ranking earns.
struct Reversed(Array2<f32>);
impl VectorIndex for Reversed {
    fn is_exact(&self) -> bool {
        false
    }
    fn len(&self) -> usize {
        self.0.nrows()
    }
    fn dim(&self) -> usize {
        self.0.ncols()
    }
    fn search(
        &self,
        query: &[f32],
        k: usize,
        exclude: &[u32],
    ) -> Result<Vec<(u32, f32)>, IndexError> {
        let neg: Vec<f32> = query.iter().map(|x| -x).collect();
        let exact = ExactIndex::new(self.0.clone())?;
        let mut out = exact.search(&neg, k, exclude)?;
        for e in &mut out {
            e.1 = -e.1;
        }
        Ok(out)
    }
}

#[test]
fn recall_against_exact_counts_misses_and_bad_input_is_an_error() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let set = random_set(2, 60, 300);
    let users = unit_rows(&mut rng, 60, 8);
    let items = unit_rows(&mut rng, 300, 8);
    let scorer = DotScorer::new(users.view(), items.view()).unwrap();
    let bad = Reversed(items.clone());
    let r = ann_recall(&bad, users.view(), &scorer, &set, &cfg(), 1000, 0).unwrap();
    assert!(r.values["recall@10"] < 0.2, "{r:?}");
    // the metrics are those of the ranking the index returns
    let m = evaluate_index(&bad, users.view(), &set, &cfg()).unwrap();
    let neg = users.mapv(|x| -x);
    let worst = evaluate(
        &DotScorer::new(neg.view(), items.view()).unwrap(),
        &set,
        &cfg(),
    )
    .unwrap();
    assert_eq!(m.values, worst.values);
    // the probe sample is deterministic, and at most the users asked for
    let a = ann_recall(&bad, users.view(), &scorer, &set, &cfg(), 7, 4).unwrap();
    let b = ann_recall(&bad, users.view(), &scorer, &set, &cfg(), 7, 4).unwrap();
    assert_eq!(a, b);
    assert!(a.n_users <= 7);
    // bad input
    let e = ann_recall(&bad, users.view(), &scorer, &set, &cfg(), 0, 0).unwrap_err();
    assert!(matches!(e, EvalError::InvalidConfig { .. }), "{e}");
    let small = Reversed(items.slice(ndarray::s![..200, ..]).to_owned());
    let e = evaluate_index(&small, users.view(), &set, &cfg()).unwrap_err();
    assert!(matches!(e, EvalError::ScorerItems { .. }), "{e}");
    let narrow: ArrayView2<f32> = users.slice(ndarray::s![.., ..4]);
    let e = evaluate_index(&bad, narrow, &set, &cfg()).unwrap_err();
    assert!(matches!(e, EvalError::DimMismatch { .. }), "{e}");
}
