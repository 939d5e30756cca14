//! The evaluation protocol (shared/EVALUATION.md) on a hand-made case whose
//! every metric is computed by hand below, plus an exact oracle on random data.

use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use twotower::eval::{
    evaluate, top_k, DotScorer, EvalConfig, EvalError, EvalSet, Metrics, PopularityScorer, Scorer,
    Slice,
};

// ---------------------------------------------------------------------------
// The hand-made case: 4 users (all with test pairs), 6 items.
//
// item_id_rank = [1, 0, 2, 3, 4, 5]: item 1 comes BEFORE item 0 in "by item
// id" order, so a tie between items 0 and 1 must put item 1 first (a tie
// broken by index would put item 0 first).
//
// train rows: u0 {0, 1}; u1 {1, 2}; u2 {2}; u3 {0, 3, 3 (duplicate row)}
//   popularity = [2, 2, 2, 2, 0, 0]  (item 3 counts both duplicate rows)
//   popularity order (pop desc, id rank asc) = 1, 0, 2, 3, 4, 5
//   head = first floor(0.2 * 6) = 1 item = {1}; tail = {0, 2, 3, 4, 5}
//   cold (no train row) = {4, 5}
// test rows: (0,2) (0,4) (0,1) (0,2 dup) (1,0) (1,5) (2,0) (3,1)
//   distinct test items: T0 = {1, 2, 4}, T1 = {0, 5}, T2 = {0}, T3 = {1}
//   (0,1) is also a train pair of u0: excluded from u0's candidates, but it
//   still counts in |T0| and in the head denominator.
//   pairs: head {(0,1), (3,1)} = 2; tail {(0,2),(0,4),(1,0),(1,5),(2,0)} = 5;
//   cold {(0,4), (1,5)} = 2.
//
// Scores (rows = users, columns = items 0..5):
//   u0 [0.9, 0.8, 0.5, 0.5, 0.5, 0.1] minus train {0,1}: 2,3,4 tie at 0.5 →
//      ranking [2, 3, 4, 5]; hits: item 2 @ rank 1, item 4 @ rank 3
//   u1 [0.3, 0.3, 0.9, 0.2, 0.0, 0.3] minus {1,2}: 0 and 5 tie at 0.3 →
//      ranking [0, 5, 3, 4]; hits: 0 @ 1, 5 @ 2
//   u2 [0.6, 0.6, 0.9, 0.1, 0.6, 0.2] minus {2}: 0, 1, 4 tie at 0.6, id rank
//      puts 1 first → ranking [1, 0, 4, 5, 3]; hit: 0 @ 2
//   u3 [0.0, 0.5, 0.4, 0.9, 0.3, 0.2] minus {0,3} → [1, 2, 4, 5]; hit: 1 @ 1
//
// With L2 = 1/log2(3) = 0.63092975, IDCG(1) = 1, IDCG(2) = 1.63092975,
// IDCG(3) = 2.13092975:
//   per user (recall, ndcg):
//   K=1: u0 (1/3, 1)  u1 (1/2, 1)  u2 (0, 0)        u3 (1, 1)
//   K=2: u0 (1/3, 1/1.63092975 = 0.61314719)  u1 (1, 1)  u2 (1, L2)  u3 (1, 1)
//   K=3: u0 (2/3, 1.5/2.13092975 = 0.70391797) u1 (1, 1)  u2 (1, L2)  u3 (1, 1)
//   recall@1 = (1/3 + 1/2 + 0 + 1)/4 = 11/24; ndcg@1 = 3/4
//   recall@2 = (1/3 + 3)/4 = 10/12; ndcg@2 = (0.61314719 + 1 + 0.63092975 + 1)/4 = 0.81101924
//   recall@3 = (2/3 + 3)/4 = 11/12; ndcg@3 = (0.70391797 + 1 + 0.63092975 + 1)/4 = 0.83371196
//   head (item 1): (0,1) can never be hit, (3,1) @ 1 → 1/2 for every K
//   tail: (0,2)@1 (1,0)@1 (1,5)@2 (2,0)@2 (0,4)@3 → 2/5, 4/5, 5/5
//   cold: (1,5)@2 (0,4)@3 → 0/2, 1/2, 2/2
//   coverage: top-1 {2,0,1,1} = 3 items → 3/6; top-2 adds 3, 5 → 5/6;
//             top-3 adds 4 → 6/6
// ---------------------------------------------------------------------------

const N_USERS: usize = 4;
const N_ITEMS: usize = 6;
const RANK: [u32; 6] = [1, 0, 2, 3, 4, 5];
const TRAIN: [(u32, u32); 8] = [
    (0, 0),
    (0, 1),
    (1, 1),
    (1, 2),
    (2, 2),
    (3, 0),
    (3, 3),
    (3, 3),
];
const TEST: [(u32, u32); 8] = [
    (0, 2),
    (0, 4),
    (0, 1),
    (0, 2),
    (1, 0),
    (1, 5),
    (2, 0),
    (3, 1),
];
const SCORES: [[f32; 6]; 4] = [
    [0.9, 0.8, 0.5, 0.5, 0.5, 0.1],
    [0.3, 0.3, 0.9, 0.2, 0.0, 0.3],
    [0.6, 0.6, 0.9, 0.1, 0.6, 0.2],
    [0.0, 0.5, 0.4, 0.9, 0.3, 0.2],
];

fn hand_set() -> EvalSet {
    EvalSet::new(N_USERS, N_ITEMS, &TRAIN, &TEST, &RANK).unwrap()
}

/// users = the score table, items = identity: ⟨users[u], items[i]⟩ = SCORES[u][i].
fn hand_matrices() -> (Array2<f32>, Array2<f32>) {
    let users = Array2::from_shape_fn((N_USERS, N_ITEMS), |(u, i)| SCORES[u][i]);
    let items = Array2::from_shape_fn((N_ITEMS, N_ITEMS), |(i, j)| if i == j { 1.0 } else { 0.0 });
    (users, items)
}

fn cfg_123() -> EvalConfig {
    EvalConfig {
        ks: vec![1, 2, 3],
        ..EvalConfig::default()
    }
}

fn assert_metric(m: &Metrics, name: &str, want: Option<f64>) {
    let got = *m
        .values
        .get(name)
        .unwrap_or_else(|| panic!("metric {name} missing: {m:?}"));
    match (got, want) {
        (Some(g), Some(w)) => assert!((g - w).abs() < 1e-6, "{name}: got {g}, want {w}"),
        (None, None) => {}
        _ => panic!("{name}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn hand_made_eval_set() {
    let set = hand_set();
    assert_eq!(set.item_popularity(), &[2, 2, 2, 2, 0, 0]);
    // Four items tie at popularity 2; item 1 has the lowest id rank.
    assert_eq!(set.head_items(), &[1]);
    assert_eq!(set.slice_of(1), Slice::Head);
    for i in [0, 2, 3, 4, 5] {
        assert_eq!(set.slice_of(i), Slice::Tail, "item {i}");
    }
    assert_eq!(
        (0..6).filter(|&i| set.is_cold(i)).collect::<Vec<_>>(),
        vec![4, 5]
    );
    assert_eq!(set.test_users(), &[0, 1, 2, 3]);
    assert_eq!(set.test_items(0), &[1, 2, 4]); // duplicate (0,2) merged
    assert_eq!(set.train_items(3), &[0, 3]);
    assert_eq!(set.n_test_pairs(), 7);
}

#[test]
fn hand_made_every_metric() {
    let set = hand_set();
    let (u, i) = hand_matrices();
    let scorer = DotScorer::new(u.view(), i.view()).unwrap();
    let m = evaluate(&scorer, &set, &cfg_123()).unwrap();
    let l2 = 1.0 / 3f64.log2();
    let want = [
        ("recall@1", 11.0 / 24.0),
        ("ndcg@1", 0.75),
        ("recall@2", 10.0 / 12.0),
        ("ndcg@2", (1.0 / (1.0 + l2) + 1.0 + l2 + 1.0) / 4.0),
        ("recall@3", 11.0 / 12.0),
        ("ndcg@3", (1.5 / (1.5 + l2) + 1.0 + l2 + 1.0) / 4.0),
        ("head_recall@1", 0.5),
        ("head_recall@2", 0.5),
        ("head_recall@3", 0.5),
        ("tail_recall@1", 0.4),
        ("tail_recall@2", 0.8),
        ("tail_recall@3", 1.0),
        ("cold_recall@1", 0.0),
        ("cold_recall@2", 0.5),
        ("cold_recall@3", 1.0),
        ("coverage@1", 0.5),
        ("coverage@2", 5.0 / 6.0),
        ("coverage@3", 1.0),
    ];
    for (name, v) in want {
        assert_metric(&m, name, Some(v));
    }
    // The closed forms above equal the decimals of the hand computation.
    assert!((m.get("ndcg@2").unwrap() - 0.81101924).abs() < 1e-7);
    assert!((m.get("ndcg@3").unwrap() - 0.83371196).abs() < 1e-7);
    assert_eq!(m.values.len(), 18);
    assert_eq!(m.ks, vec![1, 2, 3]);
    assert_eq!(
        (
            m.n_test_users,
            m.n_test_pairs,
            m.n_head_pairs,
            m.n_tail_pairs,
            m.n_cold_pairs,
            m.head_size
        ),
        (4, 7, 2, 5, 2, 1)
    );

    // Tiny blocks and tiles, 1 or 2 threads: bit-identical results.
    for (block_users, item_tile, threads) in [(1, 1, Some(1)), (3, 4, Some(2)), (2, 5, None)] {
        let cfg = EvalConfig {
            ks: vec![3, 1, 2, 2],
            block_users,
            item_tile,
            threads,
        };
        assert_eq!(evaluate(&scorer, &set, &cfg).unwrap(), m, "{cfg:?}");
    }
}

// Popularity baseline on the same case: scores = popularity [2,2,2,2,0,0], so
// the global order is 1, 0, 2, 3, 4, 5 (ties by id rank).
//   u0 minus {0,1}: [2,3,4,5] hits 2@1, 4@3
//   u1 minus {1,2}: [0,3,4,5] hits 0@1, 5@4
//   u2 minus {2}:   [1,0,3,4,5] hit 0@2
//   u3 minus {0,3}: [1,2,4,5] hit 1@1
//   K=1: u0 (1/3,1) u1 (1/2,1) u2 (0,0) u3 (1,1) → recall 11/24, ndcg 3/4
//   K=2: u0 (1/3, 1/1.63093) u1 (1/2, 1/1.63093) u2 (1, L2) u3 (1,1)
//        → recall 17/24, ndcg (2/1.63092975 + 0.63092975 + 1)/4 = 0.71430603
//   K=3: u0 (2/3, 1.5/2.13093) u1 (1/2, 1/1.63093) u2 (1, L2) u3 (1,1)
//        → recall 19/24, ndcg (0.70391797 + 0.61314719 + 0.63092975 + 1)/4 = 0.73699876
//   head: (3,1)@1 → 1/2 always; tail: (0,2)@1 (1,0)@1 (2,0)@2 (0,4)@3 (1,5)@4
//   → 2/5, 3/5, 4/5; cold: (0,4)@3 (1,5)@4 → 0, 0, 1/2
//   coverage: top-1 {2,0,1} 3/6; top-2 {2,3,0,1} 4/6; top-3 adds 4 → 5/6
#[test]
fn popularity_baseline_hand_made() {
    let set = hand_set();
    let scorer = PopularityScorer::from_set(&set);
    let m = evaluate(&scorer, &set, &cfg_123()).unwrap();
    let l2 = 1.0 / 3f64.log2();
    let want = [
        ("recall@1", 11.0 / 24.0),
        ("ndcg@1", 0.75),
        ("recall@2", 17.0 / 24.0),
        ("ndcg@2", (2.0 / (1.0 + l2) + l2 + 1.0) / 4.0),
        ("recall@3", 19.0 / 24.0),
        (
            "ndcg@3",
            (1.5 / (1.5 + l2) + 1.0 / (1.0 + l2) + l2 + 1.0) / 4.0,
        ),
        ("head_recall@1", 0.5),
        ("head_recall@2", 0.5),
        ("head_recall@3", 0.5),
        ("tail_recall@1", 0.4),
        ("tail_recall@2", 0.6),
        ("tail_recall@3", 0.8),
        ("cold_recall@1", 0.0),
        ("cold_recall@2", 0.0),
        ("cold_recall@3", 0.5),
        ("coverage@1", 0.5),
        ("coverage@2", 4.0 / 6.0),
        ("coverage@3", 5.0 / 6.0),
    ];
    for (name, v) in want {
        assert_metric(&m, name, Some(v));
    }
    assert!((m.get("ndcg@2").unwrap() - 0.71430603).abs() < 1e-7);
    assert!((m.get("ndcg@3").unwrap() - 0.73699876).abs() < 1e-7);
}

#[test]
fn slices_without_pairs_are_none_and_serialize_as_null() {
    // Same train, test pairs without cold items: cold_recall has no pairs.
    let test = [(0, 2), (1, 0), (3, 1)];
    let set = EvalSet::new(N_USERS, N_ITEMS, &TRAIN, &test, &RANK).unwrap();
    let (u, i) = hand_matrices();
    let scorer = DotScorer::new(u.view(), i.view()).unwrap();
    let m = evaluate(&scorer, &set, &cfg_123()).unwrap();
    for k in 1..=3 {
        assert_metric(&m, &format!("cold_recall@{k}"), None);
    }
    // u0 ranks 2 first, u1 ranks 0 first, u3 ranks 1 first: every hit @1.
    assert_metric(&m, "recall@1", Some(1.0));
    assert_metric(&m, "head_recall@1", Some(1.0));
    let json = serde_json::to_value(&m).unwrap();
    assert!(json["values"]["cold_recall@1"].is_null(), "{json}");
    assert_eq!(json["values"]["recall@1"], 1.0);
    let back: Metrics = serde_json::from_value(json).unwrap();
    assert_eq!(back, m);

    // 4 items: head = floor(0.8) = 0 items → head_recall is None, tail is not.
    let set = EvalSet::new(1, 4, &[(0, 0)], &[(0, 1)], &[0, 1, 2, 3]).unwrap();
    let m = evaluate(&PopularityScorer::from_set(&set), &set, &cfg_123()).unwrap();
    assert_metric(&m, "head_recall@1", None);
    // Popularity [1,0,0,0] minus train {0}: ranking 1, 2, 3 → item 1 @1.
    assert_metric(&m, "tail_recall@1", Some(1.0));
    assert_metric(&m, "cold_recall@1", Some(1.0));
    assert_metric(&m, "coverage@2", Some(0.5));

    // No test user at all: every metric is None.
    let set = EvalSet::new(2, 4, &[(0, 0)], &[], &[0, 1, 2, 3]).unwrap();
    let m = evaluate(&PopularityScorer::from_set(&set), &set, &cfg_123()).unwrap();
    assert_eq!(m.values.len(), 18);
    assert!(m.values.values().all(|v| v.is_none()), "{m:?}");
}

#[test]
fn bad_input_is_a_typed_error() {
    assert_eq!(
        EvalSet::new(2, 3, &[(0, 1), (2, 0)], &[], &[0, 1, 2]).unwrap_err(),
        EvalError::PairOutOfRange {
            split: "train",
            index: 1,
            field: "user",
            got: 2,
            expected: 2
        }
    );
    assert_eq!(
        EvalSet::new(2, 3, &[], &[(1, 3)], &[0, 1, 2]).unwrap_err(),
        EvalError::PairOutOfRange {
            split: "test",
            index: 0,
            field: "item",
            got: 3,
            expected: 3
        }
    );
    assert_eq!(
        EvalSet::new(2, 3, &[], &[], &[0, 2, 2]).unwrap_err(),
        EvalError::RankNotPermutation {
            n_items: 3,
            item: 2,
            rank: 2
        }
    );
    assert_eq!(
        EvalSet::new(2, 3, &[], &[], &[0, 1]).unwrap_err(),
        EvalError::RankLength {
            expected: 3,
            got: 2
        }
    );
    assert_eq!(
        EvalSet::new(2, 0, &[], &[], &[]).unwrap_err(),
        EvalError::EmptyCatalog
    );

    let set = hand_set();
    let (u, i) = hand_matrices();
    let short_users = u.slice(ndarray::s![..3, ..]);
    let scorer = DotScorer::new(short_users, i.view()).unwrap();
    assert_eq!(
        evaluate(&scorer, &set, &cfg_123()).unwrap_err(),
        EvalError::ScorerUsers {
            expected: 4,
            got: 3
        }
    );
    let five = i.slice(ndarray::s![..5, ..]);
    let scorer = DotScorer::new(u.view(), five).unwrap();
    assert_eq!(
        evaluate(&scorer, &set, &cfg_123()).unwrap_err(),
        EvalError::ScorerItems {
            expected: 6,
            got: 5
        }
    );
    let narrow = Array2::<f32>::zeros((6, 5));
    assert!(matches!(
        DotScorer::new(u.view(), narrow.view()).unwrap_err(),
        EvalError::DimMismatch {
            user_dim: 6,
            item_dim: 5
        }
    ));
    // Built field by field, the mismatch is caught by evaluate.
    let scorer = DotScorer {
        users: u.view(),
        items: narrow.view(),
    };
    assert_eq!(
        evaluate(&scorer, &set, &cfg_123()).unwrap_err(),
        EvalError::DimMismatch {
            user_dim: 6,
            item_dim: 5
        }
    );
    // A NaN in item 4's vector makes every user's score of item 4 NaN; the
    // first test user in order (u0, who has item 4 as a candidate) is reported.
    let mut nan = i.clone();
    nan[[4, 4]] = f32::NAN;
    let scorer = DotScorer::new(u.view(), nan.view()).unwrap();
    for threads in [Some(1), Some(2)] {
        let cfg = EvalConfig {
            block_users: 1,
            threads,
            ..cfg_123()
        };
        assert_eq!(
            evaluate(&scorer, &set, &cfg).unwrap_err(),
            EvalError::NanScore {
                user: Some(0),
                item: 4
            }
        );
    }
    let mut out = Vec::new();
    assert_eq!(
        top_k(&[0.0, f32::NAN], 1, &[], &[0, 1], &mut out).unwrap_err(),
        EvalError::NanScore {
            user: None,
            item: 1
        }
    );
    // An excluded NaN is never looked at.
    top_k(&[0.0, f32::NAN], 1, &[1], &[0, 1], &mut out).unwrap();
    assert_eq!(out, vec![(0, 0.0)]);
    let cfg = EvalConfig {
        ks: vec![10, 0],
        ..EvalConfig::default()
    };
    assert!(matches!(
        evaluate(&PopularityScorer::from_set(&set), &set, &cfg).unwrap_err(),
        EvalError::InvalidConfig { field: "ks", .. }
    ));
    assert_eq!(
        top_k(&[1.0, 2.0, 3.0], 2, &[2, 1], &[0, 1, 2], &mut out).unwrap_err(),
        EvalError::ExcludeNotSorted { position: 1 }
    );
    assert_eq!(
        top_k(&[1.0, 2.0], 2, &[], &[0, 1, 2], &mut out).unwrap_err(),
        EvalError::ScoresLength {
            expected: 3,
            got: 2
        }
    );
}

#[test]
fn top_k_hand_made() {
    // scores 0.5 for items 0..3, ranks [3, 2, 1, 0]: ties in reverse index order.
    let mut out = Vec::new();
    top_k(&[0.5, 0.5, 0.9, 0.5], 3, &[1], &[3, 2, 1, 0], &mut out).unwrap();
    // 2 (0.9) first, then the 0.5 ties by rank: item 3 (rank 0), item 0 (rank 3); item 1 excluded.
    assert_eq!(out, vec![(2, 0.9), (3, 0.5), (0, 0.5)]);
    // k larger than the candidates: all of them; ±∞ ranked normally.
    top_k(
        &[f32::NEG_INFINITY, f32::INFINITY],
        5,
        &[],
        &[0, 1],
        &mut out,
    )
    .unwrap();
    assert_eq!(out, vec![(1, f32::INFINITY), (0, f32::NEG_INFINITY)]);
}

// ---------------------------------------------------------------------------
// Exact oracle on random data: a naive full sort per user, metric by metric.
// ---------------------------------------------------------------------------

/// Naive protocol: full sort of every candidate, metrics straight from the text.
fn naive_metrics(
    users: ArrayView2<f32>,
    items: ArrayView2<f32>,
    set: &EvalSet,
    ks: &[usize],
) -> Vec<(String, Option<f64>)> {
    let n_items = set.n_items();
    let rank = set.item_id_rank();
    let mut tops: Vec<(u32, Vec<u32>)> = Vec::new();
    for &u in set.test_users() {
        let train = set.train_items(u);
        let mut cand: Vec<(u32, f32)> = (0..n_items as u32)
            .filter(|i| !train.contains(i))
            .map(|i| (i, users.row(u as usize).dot(&items.row(i as usize))))
            .collect();
        cand.sort_by(|a, b| {
            b.1.partial_cmp(&a.1)
                .unwrap()
                .then(rank[a.0 as usize].cmp(&rank[b.0 as usize]))
        });
        tops.push((u, cand.into_iter().map(|c| c.0).collect()));
    }
    let mut out = Vec::new();
    for &k in ks {
        let (mut rec, mut nd) = (0.0, 0.0);
        let mut slices = [[0usize; 2]; 3]; // head, tail, cold: [hits, pairs]
        let mut covered = vec![false; n_items];
        for (u, list) in &tops {
            let test = set.test_items(*u);
            let top = &list[..k.min(list.len())];
            top.iter().for_each(|&i| covered[i as usize] = true);
            let hits = test.iter().filter(|i| top.contains(i)).count();
            rec += hits as f64 / test.len() as f64;
            let dcg: f64 = top
                .iter()
                .enumerate()
                .filter(|(_, i)| test.contains(i))
                .map(|(p, _)| 1.0 / ((p + 2) as f64).log2())
                .sum();
            let idcg: f64 = (0..k.min(test.len()))
                .map(|p| 1.0 / ((p + 2) as f64).log2())
                .sum();
            nd += dcg / idcg;
            for &i in test {
                let hit = top.contains(&i) as usize;
                let s = if set.slice_of(i) == Slice::Head { 0 } else { 1 };
                slices[s][0] += hit;
                slices[s][1] += 1;
                if set.is_cold(i) {
                    slices[2][0] += hit;
                    slices[2][1] += 1;
                }
            }
        }
        let n = tops.len() as f64;
        let frac = |s: [usize; 2]| (s[1] > 0).then(|| s[0] as f64 / s[1] as f64);
        out.push((format!("recall@{k}"), Some(rec / n)));
        out.push((format!("ndcg@{k}"), Some(nd / n)));
        out.push((format!("head_recall@{k}"), frac(slices[0])));
        out.push((format!("tail_recall@{k}"), frac(slices[1])));
        out.push((format!("cold_recall@{k}"), frac(slices[2])));
        out.push((
            format!("coverage@{k}"),
            Some(covered.iter().filter(|&&c| c).count() as f64 / n_items as f64),
        ));
    }
    out
}

#[test]
fn evaluate_matches_naive_full_sort_on_random_data() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (n_users, n_items, d) = (120, 700, 8);
    // Scores quantized to a few levels so that ties are frequent.
    let users = Array2::from_shape_fn((n_users, d), |_| rng.gen_range(-2i32..=2) as f32);
    let items = Array2::from_shape_fn((n_items, d), |_| rng.gen_range(-1i32..=1) as f32);
    // Zipf-ish popularity: low item indices are clicked more; the last 100 items never.
    let mut train = Vec::new();
    let mut test = Vec::new();
    for u in 0..n_users as u32 {
        for _ in 0..rng.gen_range(0..30) {
            let i = (rng.gen::<f64>().powi(3) * 600.0) as u32;
            train.push((u, i));
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
    let set = EvalSet::new(n_users, n_items, &train, &test, &rank).unwrap();
    assert!(set.n_test_pairs() > 300);
    let scorer = DotScorer::new(users.view(), items.view()).unwrap();
    let ks = [1, 10, 50, 100];
    let naive = naive_metrics(users.view(), items.view(), &set, &ks);
    let cfg = EvalConfig {
        ks: ks.to_vec(),
        block_users: 16,
        item_tile: 64,
        threads: Some(2),
    };
    let m = evaluate(&scorer, &set, &cfg).unwrap();
    for (name, want) in &naive {
        assert_metric(&m, name, *want);
    }
    assert!(
        m.get("cold_recall@100").is_some(),
        "the random case has cold test pairs"
    );
    // Thread count, block and tile sizes do not change a single bit.
    for (block_users, item_tile, threads) in
        [(256, 16384, Some(1)), (1, 700, Some(2)), (7, 33, None)]
    {
        let cfg = EvalConfig {
            ks: ks.to_vec(),
            block_users,
            item_tile,
            threads,
        };
        assert_eq!(evaluate(&scorer, &set, &cfg).unwrap(), m);
    }
}

/// A scorer the crate does not know: a closure-like table, to check the
/// trait is usable from outside and that item ranges are honoured.
struct TableScorer(Array2<f32>);
impl Scorer for TableScorer {
    fn n_items(&self) -> usize {
        self.0.ncols()
    }
    fn score_block(&self, users: &[u32], items: std::ops::Range<usize>, out: &mut [f32]) {
        let n = items.len();
        for (r, &u) in users.iter().enumerate() {
            for (c, i) in items.clone().enumerate() {
                out[r * n + c] = self.0[[u as usize, i]];
            }
        }
    }
}

#[test]
fn custom_scorer_equals_dot_scorer() {
    let set = hand_set();
    let (u, i) = hand_matrices();
    let table = TableScorer(u.dot(&i.t()));
    let cfg = EvalConfig {
        item_tile: 4,
        ..cfg_123()
    };
    let a = evaluate(&table, &set, &cfg).unwrap();
    let b = evaluate(&DotScorer::new(u.view(), i.view()).unwrap(), &set, &cfg).unwrap();
    assert_eq!(a, b);
    assert_metric(&a, "recall@1", Some(11.0 / 24.0));
}

// eval.max_users: a seeded sample of the test users. The sampled set's
// metrics must equal those of a set built from the sampled users' test rows
// only (the exact oracle), with the pair counts recounted.
#[test]
fn sampled_users_equal_a_set_of_only_those_users() {
    let (u, i) = hand_matrices();
    let scorer = DotScorer::new(u.view(), i.view()).unwrap();
    let full = evaluate(&scorer, &hand_set(), &cfg_123()).unwrap();
    // 0 = all users, and a sample at least as large as the users: no change
    for n in [0, 4, 10] {
        let mut set = hand_set();
        set.sample_users(n, 7);
        assert_eq!(set.sampled_from(), None);
        assert_eq!(evaluate(&scorer, &set, &cfg_123()).unwrap(), full);
    }
    for seed in 0..20u64 {
        for n in 1..4 {
            let mut set = hand_set();
            set.sample_users(n, seed);
            let kept = set.test_users().to_vec();
            assert_eq!(kept.len(), n);
            assert!(kept.windows(2).all(|w| w[0] < w[1]), "ascending: {kept:?}");
            assert_eq!(set.sampled_from(), Some(4));
            let rows: Vec<(u32, u32)> = TEST
                .iter()
                .copied()
                .filter(|(u, _)| kept.contains(u))
                .collect();
            let oracle = EvalSet::new(N_USERS, N_ITEMS, &TRAIN, &rows, &RANK).unwrap();
            let mut want = evaluate(&scorer, &oracle, &cfg_123()).unwrap();
            want.sampled_from = Some(4);
            assert_eq!(
                evaluate(&scorer, &set, &cfg_123()).unwrap(),
                want,
                "{kept:?}"
            );
            // the same seed draws the same users
            let mut again = hand_set();
            again.sample_users(n, seed);
            assert_eq!(again.test_users(), &kept[..]);
        }
    }
    // Hand-worked: seed 0 keeps users {0, 1}. From the table at the top:
    // K=1: u0 (1/3, 1), u1 (1/2, 1) → recall@1 = 5/12, ndcg@1 = 1.
    // pairs: T0 = {1, 2, 4}, T1 = {0, 5} → 5 pairs; head {(0,1)} = 1 (never
    // hit: a train pair of u0) → head_recall 0; tail {(0,2),(0,4),(1,0),(1,5)}
    // = 4, @1 (0,2),(1,0) → 1/2; cold {(0,4),(1,5)} = 2, @1 none → 0.
    let mut set = hand_set();
    set.sample_users(2, 0);
    assert_eq!(set.test_users(), &[0, 1]);
    assert_eq!(set.n_test_pairs(), 5);
    let m = evaluate(&scorer, &set, &cfg_123()).unwrap();
    assert_eq!(
        (
            m.n_test_users,
            m.n_head_pairs,
            m.n_tail_pairs,
            m.n_cold_pairs
        ),
        (2, 1, 4, 2)
    );
    assert_metric(&m, "recall@1", Some(5.0 / 12.0));
    assert_metric(&m, "ndcg@1", Some(1.0));
    assert_metric(&m, "head_recall@1", Some(0.0));
    assert_metric(&m, "tail_recall@1", Some(0.5));
    assert_metric(&m, "cold_recall@1", Some(0.0));
    assert_eq!(m.sampled_from, Some(4));
}
