//! The persisted HNSW index against its exact oracle: recall@10 on random
//! unit vectors, exclusions never returned (filtered search), scores equal
//! to the exact inner products, a save/load round trip that answers alike,
//! and a loaded index that does not fit the catalog refused.

use ndarray::Array2;
use twotower::index::{ann_recall_at_k, ExactIndex, VectorIndex};
use twotower_serve::ann::{AnnConfig, AnnError, UsearchIndex};

/// `[n × d]` unit rows from a fixed LCG (deterministic, no RNG crate).
fn unit_rows(n: usize, d: usize, mut seed: u64) -> Array2<f32> {
    let mut a = Array2::zeros((n, d));
    for mut row in a.rows_mut() {
        for x in row.iter_mut() {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *x = ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5;
        }
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        row.mapv_inplace(|x| x / norm);
    }
    a
}

#[test]
fn recall_exclusion_scores_and_round_trip_match_the_exact_oracle() {
    let items = unit_rows(3000, 16, 7);
    let queries = unit_rows(200, 16, 99);
    let rank: Vec<u32> = (0..3000).collect();
    let exact = ExactIndex::with_tie_rank(items.clone(), rank.clone()).unwrap();
    let ann = UsearchIndex::build(items.view(), rank.clone(), &AnnConfig::default()).unwrap();
    assert_eq!((ann.len(), ann.dim(), ann.is_exact()), (3000, 16, false));
    let recall = ann_recall_at_k(&ann, &exact, queries.view(), 10).unwrap();
    assert!(recall >= 0.95, "recall@10 {recall}");

    let q = queries.row(0).to_vec();
    let top = exact.search(&q, 20, &[]).unwrap();
    // exclude the exact top 5: none of them comes back
    let exclude: Vec<u32> = top[..5].iter().map(|h| h.0).collect();
    let hits = ann.search(&q, 10, &exclude).unwrap();
    assert_eq!(hits.len(), 10);
    for (row, score) in &hits {
        assert!(!exclude.contains(row), "excluded row {row} returned");
        let dot: f32 = items.row(*row as usize).dot(&queries.row(0));
        assert!((score - dot).abs() < 1e-4, "score {score} vs ⟨q, v⟩ {dot}");
    }
    assert!(hits.windows(2).all(|w| w[0].1 >= w[1].1), "best first");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.usearch");
    ann.save(&path).unwrap();
    let loaded = UsearchIndex::load(&path, 3000, 16, rank.clone(), &AnnConfig::default()).unwrap();
    for r in 0..20 {
        let q = queries.row(r).to_vec();
        assert_eq!(
            loaded.search(&q, 10, &[]).unwrap(),
            ann.search(&q, 10, &[]).unwrap()
        );
    }
    // an index of another catalog is refused
    match UsearchIndex::load(&path, 2999, 16, rank, &AnnConfig::default()) {
        Err(AnnError::Mismatch { message, .. }) => assert!(message.contains("3000"), "{message}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a mismatched index loaded"),
    }
    // bad queries are errors, not panics
    assert!(ann.search(&[0.0; 3], 5, &[]).is_err());
    let mut nan = q.clone();
    nan[2] = f32::NAN;
    assert!(ann.search(&nan, 5, &[]).is_err());
    // a non-finite vector is refused at build, naming the row
    let mut bad = unit_rows(10, 4, 3);
    bad[[6, 1]] = f32::INFINITY;
    match UsearchIndex::build(bad.view(), (0..10).collect(), &AnnConfig::default()) {
        Err(e) => assert!(e.to_string().contains("vector 6"), "{e}"),
        Ok(_) => panic!("a non-finite vector was indexed"),
    }
    // excluding everything leaves nothing
    let all: Vec<u32> = (0..3000).collect();
    assert!(ann.search(&q, 5, &all).unwrap().is_empty());
}
