//! Exact and approximate indexes (index.rs): the exact one against a full
//! sort, the HNSW one against the exact one on seeded random unit vectors.

use ndarray::{array, Array2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr_free::normal;
use twotower_model::index::{
    ann_recall_at_k, ExactIndex, HnswConfig, HnswIndex, IndexError, VectorIndex,
};

/// Box–Muller normals from a seeded ChaCha8 (no extra dependency).
mod rand_distr_free {
    use rand::Rng;
    pub fn normal(rng: &mut impl Rng) -> f32 {
        let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
        let u2: f64 = rng.gen();
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }
}

/// `n` random unit vectors of dimension `d` (isotropic Gaussian, normalized).
fn unit_vectors(n: usize, d: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut m = Array2::from_shape_fn((n, d), |_| normal(&mut rng));
    for mut row in m.rows_mut() {
        let norm = row.dot(&row).sqrt();
        row /= norm;
    }
    m
}

#[test]
fn exact_index_hand_made_ties_and_exclusion() {
    // query [1, 0]: scores row0 1.0, row1 0.0, row2 1.0, row3 0.6
    let v = array![[1.0f32, 0.0], [0.0, 1.0], [1.0, 0.0], [0.6, 0.8]];
    let idx = ExactIndex::new(v.clone()).unwrap();
    assert!(idx.is_exact());
    assert_eq!((idx.len(), idx.dim()), (4, 2));
    // tie between rows 0 and 2 at 1.0: row index order
    assert_eq!(
        idx.search(&[1.0, 0.0], 4, &[]).unwrap(),
        vec![(0, 1.0), (2, 1.0), (3, 0.6), (1, 0.0)]
    );
    // tie rank [3, 2, 1, 0]: row 2 now precedes row 0
    let idx = ExactIndex::with_tie_rank(v, vec![3, 2, 1, 0]).unwrap();
    assert_eq!(
        idx.search(&[1.0, 0.0], 2, &[]).unwrap(),
        vec![(2, 1.0), (0, 1.0)]
    );
    // exclusion in any order
    assert_eq!(
        idx.search(&[1.0, 0.0], 3, &[2, 0]).unwrap(),
        vec![(3, 0.6), (1, 0.0)]
    );
    assert_eq!(idx.search(&[1.0, 0.0], 0, &[]).unwrap(), vec![]);
}

#[test]
fn exact_index_equals_full_sort() {
    let v = unit_vectors(500, 16, 1);
    let q = unit_vectors(20, 16, 2);
    let idx = ExactIndex::new(v.clone()).unwrap();
    for (i, query) in q.rows().into_iter().enumerate() {
        let query = query.to_vec();
        let exclude: Vec<u32> = (((9 - i % 9) % 9) as u32..500).step_by(9).collect();
        let mut naive: Vec<(u32, f32)> = (0..500u32)
            .filter(|r| !exclude.contains(r))
            .map(|r| {
                (
                    r,
                    v.row(r as usize)
                        .dot(&ndarray::ArrayView1::from(&query[..])),
                )
            })
            .collect();
        naive.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
        naive.truncate(25);
        assert_eq!(idx.search(&query, 25, &exclude).unwrap(), naive);
    }
}

#[test]
fn bad_input_is_a_typed_error() {
    let v = unit_vectors(10, 4, 3);
    let idx = ExactIndex::new(v.clone()).unwrap();
    assert_eq!(
        idx.search(&[1.0, 0.0], 3, &[]).unwrap_err(),
        IndexError::QueryDim {
            expected: 4,
            got: 2
        }
    );
    assert_eq!(
        idx.search(&[1.0, 0.0, f32::NAN, 0.0], 3, &[]).unwrap_err(),
        IndexError::NonFiniteQuery { position: 2 }
    );
    let mut bad = v.clone();
    bad[[7, 1]] = f32::INFINITY;
    assert_eq!(
        ExactIndex::new(bad.clone()).unwrap_err(),
        IndexError::NonFiniteVector { row: 7, col: 1 }
    );
    assert_eq!(
        HnswIndex::build(bad.view(), &HnswConfig::default()).unwrap_err(),
        IndexError::NonFiniteVector { row: 7, col: 1 }
    );
    assert_eq!(
        ExactIndex::with_tie_rank(v.clone(), vec![0; 10]).unwrap_err(),
        IndexError::RankNotPermutation { row: 1, rank: 0 }
    );
    assert_eq!(
        ExactIndex::with_tie_rank(v.clone(), vec![0; 3]).unwrap_err(),
        IndexError::RankLength {
            expected: 10,
            got: 3
        }
    );
    let mut long = v.clone();
    long.row_mut(4).mapv_inplace(|x| 2.0 * x);
    assert!(matches!(
        HnswIndex::build(long.view(), &HnswConfig::default()).unwrap_err(),
        IndexError::NotUnitNorm { row: 4, norm } if (norm - 2.0).abs() < 1e-5
    ));
    let cfg = HnswConfig {
        ef_search: 8,
        ..HnswConfig::default()
    };
    let h = HnswIndex::build(v.view(), &cfg).unwrap();
    assert!(matches!(
        h.search(&[1.0, 0.0, 0.0, 0.0], 9, &[]).unwrap_err(),
        IndexError::InvalidParam { field: "k", .. }
    ));
}

#[test]
fn hnsw_recall_against_exact_on_random_unit_vectors() {
    // 5000 isotropic unit vectors in 32-d (a hard case for ANN: no
    // cluster structure), 200 held-out queries, k = 10, ef_search = 32.
    let v = unit_vectors(5000, 32, 7);
    let q = unit_vectors(200, 32, 8);
    let exact = ExactIndex::new(v.clone()).unwrap();
    let cfg = HnswConfig {
        ef_construction: 64,
        ef_search: 32,
        seed: 1,
        ..HnswConfig::default()
    };
    let ann = HnswIndex::build(v.view(), &cfg).unwrap();
    assert!(!ann.is_exact());
    assert_eq!((ann.len(), ann.dim()), (5000, 32));
    let recall = ann_recall_at_k(&ann, &exact, q.view(), 10).unwrap();
    // measured: 0.964
    println!("HNSW recall@10 vs exact: {recall:.4}");
    assert!(recall >= 0.9, "recall@10 = {recall}");
    assert!(recall <= 1.0);
    // exact vs itself: recall 1
    assert_eq!(ann_recall_at_k(&exact, &exact, q.view(), 10).unwrap(), 1.0);

    // Exclusion: the 5 exact best rows excluded → never returned; scores are
    // exact inner products, sorted descending.
    for query in q.rows().into_iter().take(20) {
        let query = query.to_vec();
        let top5: Vec<u32> = exact
            .search(&query, 5, &[])
            .unwrap()
            .iter()
            .map(|r| r.0)
            .collect();
        let got = ann.search(&query, 10, &top5).unwrap();
        assert_eq!(got.len(), 10);
        for (r, s) in &got {
            assert!(!top5.contains(r));
            let want = v
                .row(*r as usize)
                .dot(&ndarray::ArrayView1::from(&query[..]));
            assert!((s - want).abs() < 1e-6);
        }
        assert!(got.windows(2).all(|w| w[0].1 >= w[1].1));
    }

    // Deterministic build: same seed → the same answers, query by query.
    let again = HnswIndex::build(v.view(), &cfg).unwrap();
    for query in q.rows() {
        let query = query.to_vec();
        assert_eq!(
            ann.search(&query, 10, &[]).unwrap(),
            again.search(&query, 10, &[]).unwrap()
        );
    }
}

#[test]
fn hnsw_with_heuristic_and_parallel_build() {
    // The paper's neighbour heuristic, built on rayon's pool (not
    // reproducible, so only the recall floor is checked).
    let v = unit_vectors(1500, 16, 21);
    let q = unit_vectors(100, 16, 22);
    let exact = ExactIndex::new(v.clone()).unwrap();
    let cfg = HnswConfig {
        ef_construction: 48,
        ef_search: 20,
        heuristic: true,
        deterministic: false,
        seed: 4,
    };
    let ann = HnswIndex::build(v.view(), &cfg).unwrap();
    let recall = ann_recall_at_k(&ann, &exact, q.view(), 10).unwrap();
    println!("HNSW (heuristic) recall@10 vs exact: {recall:.4}");
    assert!(recall >= 0.9, "recall@10 = {recall}");
}

/// An "ANN" that answers a fixed list, for recall by hand.
struct Fixed {
    n: usize,
    d: usize,
    answer: Vec<(u32, f32)>,
}

impl VectorIndex for Fixed {
    fn is_exact(&self) -> bool {
        false
    }
    fn len(&self) -> usize {
        self.n
    }
    fn dim(&self) -> usize {
        self.d
    }
    fn search(&self, _: &[f32], k: usize, _: &[u32]) -> Result<Vec<(u32, f32)>, IndexError> {
        Ok(self.answer.iter().copied().take(k).collect())
    }
}

#[test]
fn ann_recall_counts_tied_scores_as_hits_and_recomputes_scores() {
    // 6 items in 2-d; query q = (1, 0). Scores: rows 0,1,2 = 1.0 (identical
    // vectors, as cold items with the same features have), row 3 = 0.6,
    // row 4 = 0.0, row 5 = -1. Exact top-2 = rows 0, 1 (ties by row).
    let v = ndarray::arr2(&[
        [1.0f32, 0.0],
        [1.0, 0.0],
        [1.0, 0.0],
        [0.6, 0.8],
        [0.0, 1.0],
        [-1.0, 0.0],
    ]);
    let exact = ExactIndex::new(v.clone()).unwrap();
    let q = ndarray::arr2(&[[1.0f32, 0.0]]);
    let recall = |answer: Vec<(u32, f32)>| {
        ann_recall_at_k(&Fixed { n: 6, d: 2, answer }, &exact, q.view(), 2).unwrap()
    };
    // rows 2 and 1: row 2 is tied with the exact 2nd (score 1.0) → 2/2
    assert_eq!(recall(vec![(2, 1.0), (1, 1.0)]), 1.0);
    // rows 2 and 3: row 3 (0.6 < 1.0) is a miss → 1/2
    assert_eq!(recall(vec![(2, 1.0), (3, 0.6)]), 0.5);
    // an ANN that claims a high score for row 4 is judged by the exact score 0.0
    assert_eq!(recall(vec![(4, 1.0), (5, 1.0)]), 0.0);
    // a row out of range is a miss, not a panic; a short answer counts what it has
    assert_eq!(recall(vec![(0, 1.0), (99, 1.0)]), 0.5);
    assert_eq!(recall(vec![(1, 1.0)]), 0.5);
    // a size mismatch is refused
    let wrong = Fixed {
        n: 5,
        d: 2,
        answer: vec![],
    };
    assert!(matches!(
        ann_recall_at_k(&wrong, &exact, q.view(), 2).unwrap_err(),
        IndexError::InvalidParam { field: "ann", .. }
    ));
}
