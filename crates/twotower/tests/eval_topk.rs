//! Exact top-K against the oracle: a full sort by (score desc, id rank asc).

use proptest::prelude::*;
use twotower::eval::top_k;

/// The oracle: sort every non-excluded item, keep the first k.
fn naive(scores: &[f32], k: usize, exclude: &[u32], rank: &[u32]) -> Vec<(u32, f32)> {
    let mut c: Vec<(u32, f32)> = (0..scores.len() as u32)
        .filter(|i| !exclude.contains(i))
        .map(|i| (i, scores[i as usize]))
        .collect();
    c.sort_by(|a, b| {
        b.1.partial_cmp(&a.1)
            .unwrap()
            .then(rank[a.0 as usize].cmp(&rank[b.0 as usize]))
    });
    c.truncate(k);
    c
}

/// (scores drawn from few levels so ties are common, rank permutation, exclude).
fn case() -> impl Strategy<Value = (Vec<f32>, Vec<u32>, Vec<u32>, usize)> {
    (1usize..300).prop_flat_map(|n| {
        (
            prop::collection::vec(
                prop_oneof![(-4i32..4).prop_map(|v| v as f32 * 0.25), -1.0f32..1.0],
                n,
            ),
            Just((0..n as u32).collect::<Vec<u32>>()).prop_shuffle(),
            prop::collection::vec(0..n as u32, 0..n),
            0usize..(n + 5),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
    #[test]
    fn top_k_equals_full_sort((scores, rank, mut exclude, k) in case()) {
        exclude.sort_unstable();
        let mut out = Vec::new();
        top_k(&scores, k, &exclude, &rank, &mut out).unwrap();
        prop_assert_eq!(out, naive(&scores, k, &exclude, &rank));
    }
}
