//! Tests of the SSL augmentations (crates/twotower/src/augment.rs): mutual
//! information against hand computations, CFM groups on planted structure,
//! the masking patterns, feature dropout, determinism, uniform sampling,
//! the table output and input errors. The heatmap is drawn by the
//! twotower-report crate (its tests/mi_heatmap.rs).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use twotower::augment::{
    cfm_group_size, correlated_groups, mi_table, mutual_information, AugmentConfig, AugmentError,
    Augmenter, MaskingPattern, SeedScope,
};
use twotower::model::SslBatch;
use twotower::tower::{FeatureColumn, TowerBatch};

/// An owned CSR column built from per-item bags.
struct Col {
    offsets: Vec<u32>,
    values: Vec<u32>,
}

impl Col {
    fn from_bags(bags: &[Vec<u32>]) -> Self {
        let mut offsets = vec![0u32];
        let mut values = Vec::new();
        for b in bags {
            values.extend_from_slice(b);
            offsets.push(values.len() as u32);
        }
        Col { offsets, values }
    }
    fn single(vals: &[u32]) -> Self {
        Col::from_bags(&vals.iter().map(|&v| vec![v]).collect::<Vec<_>>())
    }
    fn view(&self) -> FeatureColumn<'_> {
        FeatureColumn {
            offsets: &self.offsets,
            values: &self.values,
            weights: &[],
        }
    }
}

fn views(cols: &[Col]) -> Vec<FeatureColumn<'_>> {
    cols.iter().map(Col::view).collect()
}

fn cfg(pattern: MaskingPattern, mask_rate: f64, dropout_rate: f64) -> AugmentConfig {
    AugmentConfig {
        pattern,
        mask_rate,
        dropout_rate,
        seed_scope: SeedScope::PerExample,
        mask_id_feature: true,
        cfm_id_partner: true,
        mask_as_unknown: false,
    }
}

/// Row `row` of feature `f` is masked in `view`.
fn is_masked(view: &TowerBatch, f: usize, row: usize) -> bool {
    let m = &view.features[f].masked;
    !m.is_empty() && m[row]
}

fn bag(view: &TowerBatch, f: usize, row: usize) -> &[u32] {
    let feat = &view.features[f];
    &feat.values[feat.offsets[row] as usize..feat.offsets[row + 1] as usize]
}

const LN2: f64 = std::f64::consts::LN_2;

#[test]
fn mi_of_hand_made_table() {
    // 4 items, U = [1,1,2,2], V = [1,1,1,2].
    // p(u,v): (1,1) = 2/4, (2,1) = 1/4, (2,2) = 1/4;
    // p(U=1) = p(U=2) = 1/2; p(V=1) = 3/4, p(V=2) = 1/4.
    // MI = 1/2·ln((1/2)/(1/2·3/4)) + 1/4·ln((1/4)/(1/2·3/4)) + 1/4·ln((1/4)/(1/2·1/4))
    //    = 1/2·ln(4/3) + 1/4·ln(2/3) + 1/4·ln 2
    //    = 0.143841036 − 0.101366277 + 0.173286795 = 0.215761554 nats.
    // H(U) = ln 2 = 0.693147; H(V) = −(3/4 ln 3/4 + 1/4 ln 1/4) = 0.562335.
    let cols = [Col::single(&[1, 1, 2, 2]), Col::single(&[1, 1, 1, 2])];
    let mi = mutual_information(&views(&cols), None).unwrap();
    assert!(
        (mi[0][1] - 0.215_761_554_338_835_6).abs() < 1e-12,
        "{}",
        mi[0][1]
    );
    assert_eq!(mi[0][1], mi[1][0]);
    assert!((mi[0][0] - LN2).abs() < 1e-12);
    assert!(
        (mi[1][1] - 0.562_335_144_618_808_4).abs() < 1e-12,
        "{}",
        mi[1][1]
    );

    // Click-weighted, weights [1,1,1,3], W = 6:
    // p(u,v): (1,1) = 2/6, (2,1) = 1/6, (2,2) = 3/6; p(U): 2/6, 4/6; p(V): 3/6, 3/6.
    // MI = 1/3·ln((1/3)/(1/3·1/2)) + 1/6·ln((1/6)/(2/3·1/2)) + 1/2·ln((1/2)/(2/3·1/2))
    //    = 1/3·ln 2 − 1/6·ln 2 + 1/2·ln(3/2) = 0.115524530 + 0.202732554 = 0.318257084.
    let mi_w = mutual_information(&views(&cols), Some(&[1, 1, 1, 3])).unwrap();
    assert!(
        (mi_w[0][1] - 0.318_257_084_147_406_4).abs() < 1e-12,
        "{}",
        mi_w[0][1]
    );
}

#[test]
fn mi_of_independent_features_is_zero_and_mi_with_copy_is_entropy() {
    // U = [1,1,2,2], V = [1,2,1,2]: every cell p(u,v) = 1/4 = p(u)p(v) → MI = 0 exactly.
    // W = copy of U: MI(U,W) = H(U) = ln 2.
    let cols = [
        Col::single(&[1, 1, 2, 2]),
        Col::single(&[1, 2, 1, 2]),
        Col::single(&[1, 1, 2, 2]),
    ];
    let mi = mutual_information(&views(&cols), None).unwrap();
    assert_eq!(mi[0][1], 0.0);
    assert_eq!(mi[1][2], 0.0);
    assert!((mi[0][2] - mi[0][0]).abs() < 1e-15);
    assert!((mi[0][2] - LN2).abs() < 1e-12);
}

#[test]
fn mi_of_multi_valued_bags_splits_each_item_mass() {
    // Item 0: U = {1,2}, V = {1}; item 1: U = {3}, V = {2}; item 2: U = {} (→ "none" 0), V = {2}.
    // Each item has mass 1/3. Joint: (1,1) = 1/6, (2,1) = 1/6, (3,2) = 1/3, (0,2) = 1/3.
    // p(U): 1 → 1/6, 2 → 1/6, 3 → 1/3, 0 → 1/3.  p(V): 1 → 1/3, 2 → 2/3.
    // MI = 2·1/6·ln((1/6)/(1/6·1/3)) + 2·1/3·ln((1/3)/(1/3·2/3))
    //    = 1/3·ln 3 + 2/3·ln(3/2) = 0.366204 + 0.270310 = 0.636514 nats.
    // H(U) = −(2·1/6·ln 1/6 + 2·1/3·ln 1/3) = 1/3·ln 6 + 2/3·ln 3 = 1.329661.
    // H(V) = −(1/3 ln 1/3 + 2/3 ln 2/3) = 0.636514 (= MI: V is a function of U).
    let cols = [
        Col::from_bags(&[vec![1, 2], vec![3], vec![]]),
        Col::from_bags(&[vec![1], vec![2], vec![2]]),
    ];
    let mi = mutual_information(&views(&cols), None).unwrap();
    let want = 3f64.ln() / 3.0 + 2.0 / 3.0 * 1.5f64.ln();
    assert!((mi[0][1] - want).abs() < 1e-12, "{} vs {want}", mi[0][1]);
    assert!((want - 0.636_514_168_294_813_4).abs() < 1e-12);
    let hu = 6f64.ln() / 3.0 + 2.0 / 3.0 * 3f64.ln();
    assert!((mi[0][0] - hu).abs() < 1e-12);
    assert!((mi[1][1] - want).abs() < 1e-12);
}

/// Four features over 16 items (a, c) ∈ {1..4}²: A = B = a, C = D = c.
/// MI(A,B) = MI(C,D) = ln 4; MI(A,C) = MI(A,D) = MI(B,C) = MI(B,D) = 0 exactly.
fn planted() -> Vec<Col> {
    let (mut a, mut c) = (Vec::new(), Vec::new());
    for x in 1..=4u32 {
        for y in 1..=4u32 {
            a.push(x);
            c.push(y + 10);
        }
    }
    vec![
        Col::single(&a),
        Col::single(&a),
        Col::single(&c),
        Col::single(&c),
    ]
}

#[test]
fn cfm_groups_follow_planted_correlation() {
    let cols = planted();
    let mi = mutual_information(&views(&cols), None).unwrap();
    let ln4 = 4f64.ln();
    assert!((mi[0][1] - ln4).abs() < 1e-12 && (mi[2][3] - ln4).abs() < 1e-12);
    assert_eq!(
        (mi[0][2], mi[0][3], mi[1][2], mi[1][3]),
        (0.0, 0.0, 0.0, 0.0)
    );

    // Group size: ⌈k/2⌉ = 2 for k = 4 (seed + 1 partner); the paper's literal
    // 1 + ⌊k/2⌋ would be 3. Sizes for k = 1..6: 1, 1, 2, 2, 3, 3.
    assert_eq!(
        (1..=6).map(cfm_group_size).collect::<Vec<_>>(),
        vec![1, 1, 2, 2, 3, 3]
    );
    let groups = correlated_groups(&mi);
    assert_eq!(groups, vec![vec![0, 1], vec![1, 0], vec![2, 3], vec![3, 2]]);

    // build_views: each row's view-1 mask is one planted pair, view 2 the other.
    let aug = Augmenter::new(
        cfg(MaskingPattern::Correlated, 0.0, 0.0),
        vec![false; 4],
        vec![false; 4],
        Some(&mi),
    )
    .unwrap();
    assert_eq!(aug.cfm_groups(), groups.as_slice());
    let items: Vec<u32> = (0..16).collect();
    let mut out = SslBatch::default();
    aug.build_views(
        &views(&cols),
        &items,
        &mut ChaCha8Rng::seed_from_u64(7),
        &mut out,
    )
    .unwrap();
    let (mut ab, mut cd) = (0, 0);
    for row in 0..items.len() {
        let m1: Vec<bool> = (0..4).map(|f| is_masked(&out.view1, f, row)).collect();
        let m2: Vec<bool> = (0..4).map(|f| is_masked(&out.view2, f, row)).collect();
        match m1.as_slice() {
            [true, true, false, false] => ab += 1,
            [false, false, true, true] => cd += 1,
            other => panic!("row {row}: view-1 mask {other:?} is not a planted pair"),
        }
        let comp: Vec<bool> = m1.iter().map(|m| !m).collect();
        assert_eq!(m2, comp, "row {row}: view 2 must mask the complement");
        for f in 0..4 {
            // A masked bag is empty; an unmasked one is the item's value.
            assert_eq!(bag(&out.view1, f, row).is_empty(), m1[f]);
            assert_eq!(bag(&out.view2, f, row).is_empty(), m2[f]);
        }
    }
    // Seeds are drawn per row: with 16 rows both pairs occur (P(all same) = 2·2^-16).
    assert!(ab > 0 && cd > 0, "ab = {ab}, cd = {cd}");
}

#[test]
fn cfm_with_odd_k_and_unmaskable_id() {
    // Features: 0 = id (unmaskable), 1..4 = A, B, C, D as planted.
    // With mask_id_feature = false the maskable set is {1,2,3,4}: k = 4,
    // groups {A,B}, {C,D}; the id is never masked in either view.
    let p = planted();
    let id: Vec<u32> = (1..=16).collect();
    let cols = vec![
        Col::single(&id),
        Col::single(&p[0].values),
        Col::single(&p[1].values),
        Col::single(&p[2].values),
        Col::single(&p[3].values),
    ];
    let mi = mutual_information(&views(&cols), None).unwrap();
    let mut c = cfg(MaskingPattern::Correlated, 0.0, 0.0);
    c.mask_id_feature = false;
    let aug = Augmenter::new(
        c,
        vec![false; 5],
        vec![true, false, false, false, false],
        Some(&mi),
    )
    .unwrap();
    assert_eq!(aug.maskable(), &[1, 2, 3, 4]);
    assert_eq!(
        aug.cfm_groups(),
        &[vec![1, 2], vec![2, 1], vec![3, 4], vec![4, 3]]
    );
    let items: Vec<u32> = (0..16).collect();
    let mut out = SslBatch::default();
    aug.build_views(
        &views(&cols),
        &items,
        &mut ChaCha8Rng::seed_from_u64(1),
        &mut out,
    )
    .unwrap();
    assert!(out.view1.features[0].masked.is_empty() && out.view2.features[0].masked.is_empty());

    // With the id maskable, k = 5 → groups of ⌈5/2⌉ = 3 (= the paper's 1 + ⌊5/2⌋).
    // Seed id: MI(id, ·) = H(·) = ln 4 for all four → ties by index → {0, 1, 2}.
    // (All four MI(id, ·) run the same arithmetic, so they tie exactly.)
    // Seed A: MI(A,id) = ln 4 = MI(A,B), MI(A,C) = 0 → {1} ∪ {0, 2} (the order of
    // the two ln 4 partners may differ by rounding: compare as sets).
    let groups = correlated_groups(&mi);
    assert_eq!(groups[0], vec![0, 1, 2]);
    let sorted = |g: &[usize]| {
        let mut g = g.to_vec();
        g[1..].sort_unstable();
        g
    };
    assert_eq!(sorted(&groups[1]), vec![1, 0, 2]);
    assert_eq!(sorted(&groups[3]), vec![3, 0, 4]);
}

#[test]
fn cfm_without_id_partner_groups_the_content_features() {
    // 4 features: id (is_id) + A, B, C. MI by hand: MI(id, X) = H(X) for every
    // X (the id determines the item) — here H(A) = H(B) = ln 4 ≈ 1.386,
    // H(C) = ln 2 ≈ 0.693; A and B are dependent, MI(A, B) = 1.0; C is
    // independent of both. k = 4 → groups of ⌈4/2⌉ = 2.
    let l4 = 4f64.ln();
    let l2 = 2f64.ln();
    let mi = vec![
        vec![3.0, l4, l4, l2],
        vec![l4, l4, 1.0, 0.0],
        vec![l4, 1.0, l4, 0.0],
        vec![l2, 0.0, 0.0, l2],
    ];
    let is_id = vec![true, false, false, false];
    let build = |id_partner: bool| {
        let mut c = cfg(MaskingPattern::Correlated, 0.5, 0.0);
        c.cfm_id_partner = id_partner;
        Augmenter::new(c, vec![false; 4], is_id.clone(), Some(&mi)).unwrap()
    };
    // the paper's ranking: every seed's partner is the id (MI = its entropy)
    assert_eq!(
        build(true).cfm_groups(),
        &[vec![0, 1], vec![1, 0], vec![2, 0], vec![3, 0]]
    );
    // without the id as partner: A ↔ B (MI 1.0 > 0), C's best is A (tie 0
    // with B, lower index); the id seed keeps its top partner A (ln 4, tie
    // with B, lower index)
    assert_eq!(
        build(false).cfm_groups(),
        &[vec![0, 1], vec![1, 2], vec![2, 1], vec![3, 1]]
    );
}

#[test]
fn complementary_views_partition_the_features() {
    // k = 5 single-valued features over 30 items; every row: each feature masked
    // in exactly one view, ⌈5/2⌉ = 3 in view 1 and 2 in view 2.
    let cols: Vec<Col> = (0..5)
        .map(|f| Col::single(&(0..30).map(|e| e * 10 + f + 1).collect::<Vec<u32>>()))
        .collect();
    let aug = Augmenter::new(
        cfg(MaskingPattern::Complementary, 0.0, 0.0),
        vec![false; 5],
        vec![false; 5],
        None,
    )
    .unwrap();
    let items: Vec<u32> = (0..30).chain(0..30).collect();
    let mut out = SslBatch::default();
    aug.build_views(
        &views(&cols),
        &items,
        &mut ChaCha8Rng::seed_from_u64(3),
        &mut out,
    )
    .unwrap();
    let mut per_feature_view1 = [0usize; 5];
    for row in 0..items.len() {
        let mut n1 = 0;
        for (f, count) in per_feature_view1.iter_mut().enumerate() {
            let (a, b) = (is_masked(&out.view1, f, row), is_masked(&out.view2, f, row));
            assert!(
                a ^ b,
                "row {row} feature {f}: masked in view1 {a}, view2 {b}"
            );
            n1 += a as usize;
            *count += a as usize;
        }
        assert_eq!(n1, 3, "row {row}");
    }
    // The split is random: every feature lands in view 1 sometimes, not always
    // (60 rows, P(view 1) = 3/5 each).
    assert!(
        per_feature_view1.iter().all(|&c| c > 0 && c < 60),
        "{per_feature_view1:?}"
    );
}

#[test]
fn per_batch_scope_shares_the_draw() {
    let cols = planted();
    let mi = mutual_information(&views(&cols), None).unwrap();
    let items: Vec<u32> = (0..16).collect();
    let mut seen = [false; 2];
    for pattern in [MaskingPattern::Correlated, MaskingPattern::Complementary] {
        let mut c = cfg(pattern, 0.0, 0.0);
        c.seed_scope = SeedScope::PerBatch;
        let aug = Augmenter::new(c, vec![false; 4], vec![false; 4], Some(&mi)).unwrap();
        for seed in 0..20 {
            let mut out = SslBatch::default();
            aug.build_views(
                &views(&cols),
                &items,
                &mut ChaCha8Rng::seed_from_u64(seed),
                &mut out,
            )
            .unwrap();
            for view in [&out.view1, &out.view2] {
                for f in 0..4 {
                    let m = &view.features[f].masked;
                    assert!(m.is_empty() || m.iter().all(|&x| x == m[0]));
                }
            }
            if pattern == MaskingPattern::Correlated {
                seen[is_masked(&out.view1, 0, 0) as usize] = true;
            }
        }
    }
    assert_eq!(
        seen,
        [true, true],
        "over 20 batches both seed pairs should occur"
    );
}

#[test]
fn no_masking_and_no_dropout_gives_the_plain_batch() {
    let cols = vec![
        Col::single(&[5, 6, 7, 8]),
        Col::from_bags(&[vec![1, 2, 3], vec![], vec![4], vec![2, 2]]),
    ];
    let aug = Augmenter::new(
        cfg(MaskingPattern::Random, 0.0, 0.0),
        vec![false, true],
        vec![true, false],
        None,
    )
    .unwrap();
    let items = [3, 0, 1, 3, 2];
    let mut plain = TowerBatch::default();
    plain.gather(&views(&cols), &items);
    // Hand-gathered: feature 1 bags [2,2], [1,2,3], [], [2,2], [4].
    assert_eq!(plain.features[0].offsets, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(plain.features[0].values, vec![8, 5, 6, 8, 7]);
    assert_eq!(plain.features[1].offsets, vec![0, 2, 5, 5, 7, 8]);
    assert_eq!(plain.features[1].values, vec![2, 2, 1, 2, 3, 2, 2, 4]);
    assert!(plain.features.iter().all(|f| f.masked.is_empty()));
    let mut out = SslBatch::default();
    aug.build_views(
        &views(&cols),
        &items,
        &mut ChaCha8Rng::seed_from_u64(9),
        &mut out,
    )
    .unwrap();
    assert_eq!(out.view1, plain);
    assert_eq!(out.view2, plain);
}

#[test]
fn random_masking_rate_and_unmaskable_id() {
    // p = 0.3 over 2 maskable features × 2 views × 2000 rows = 8000 draws:
    // fraction within 5σ = 5·sqrt(0.3·0.7/8000) = 0.0256 of 0.3; the id (feature 0,
    // mask_id_feature = false) never masked.
    let cols = vec![
        Col::single(&[1, 2, 3]),
        Col::single(&[4, 5, 6]),
        Col::single(&[7, 8, 9]),
    ];
    let mut c = cfg(MaskingPattern::Random, 0.3, 0.0);
    c.mask_id_feature = false;
    let aug = Augmenter::new(c, vec![false; 3], vec![true, false, false], None).unwrap();
    let items: Vec<u32> = (0..2000).map(|i| i % 3).collect();
    let mut out = SslBatch::default();
    aug.build_views(
        &views(&cols),
        &items,
        &mut ChaCha8Rng::seed_from_u64(11),
        &mut out,
    )
    .unwrap();
    let mut masked = 0usize;
    for view in [&out.view1, &out.view2] {
        assert!(view.features[0].masked.is_empty());
        for f in 1..3 {
            masked += view.features[f].masked.iter().filter(|&&m| m).count();
        }
    }
    let frac = masked as f64 / 8000.0;
    let tol = 5.0 * (0.3f64 * 0.7 / 8000.0).sqrt();
    assert!(
        (frac - 0.3).abs() < tol,
        "masked fraction {frac}, tol {tol}"
    );
    // The views are drawn independently: they disagree on some rows.
    assert_ne!(out.view1.features[1].masked, out.view2.features[1].masked);
}

#[test]
fn dropout_rate_matches_q_and_keeps_order() {
    // Multi-valued feature with bags of 1..=8 values, q = 0.25; single-valued
    // feature never dropped. N = values seen over both views and 20 batches.
    let q = 0.25;
    let bags: Vec<Vec<u32>> = (0..50u32)
        .map(|e| (0..(e % 8 + 1)).map(|j| e * 100 + j).collect())
        .collect();
    let cols = vec![
        Col::single(&(0..50).collect::<Vec<u32>>()),
        Col::from_bags(&bags),
    ];
    let aug = Augmenter::new(
        cfg(MaskingPattern::Random, 0.0, q),
        vec![false, true],
        vec![true, false],
        None,
    )
    .unwrap();
    let items: Vec<u32> = (0..50).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut out = SslBatch::default();
    let (mut total, mut kept) = (0usize, 0usize);
    for _ in 0..20 {
        aug.build_views(&views(&cols), &items, &mut rng, &mut out)
            .unwrap();
        for view in [&out.view1, &out.view2] {
            assert_eq!(
                view.features[0].values, items,
                "single-valued feature must not drop"
            );
            for (row, &e) in items.iter().enumerate() {
                let full = &bags[e as usize];
                let got = bag(view, 1, row);
                // got is a subsequence of full
                let mut it = full.iter();
                assert!(
                    got.iter().all(|v| it.any(|w| w == v)),
                    "row {row}: {got:?} ⊄ {full:?}"
                );
                total += full.len();
                kept += got.len();
            }
        }
    }
    let n = total as f64;
    let dropped = (total - kept) as f64 / n;
    let tol = 5.0 * (q * (1.0 - q) / n).sqrt();
    assert!(
        (dropped - q).abs() < tol,
        "dropped {dropped}, q {q}, tol {tol}, n {n}"
    );
}

#[test]
fn same_seed_same_views_and_buffers_are_reused() {
    let cols = planted();
    let mi = mutual_information(&views(&cols), None).unwrap();
    let multi = Col::from_bags(
        &(0..16u32)
            .map(|e| vec![e, e + 1, e + 2])
            .collect::<Vec<_>>(),
    );
    let mut all: Vec<Col> = cols;
    all.push(multi);
    let mut mi5 = mi.clone();
    for r in &mut mi5 {
        r.push(0.0);
    }
    mi5.push(vec![0.0; 5]);
    let aug = Augmenter::new(
        cfg(MaskingPattern::Correlated, 0.0, 0.4),
        vec![false, false, false, false, true],
        vec![false; 5],
        Some(&mi5),
    )
    .unwrap();
    let items: Vec<u32> = (0..16).rev().collect();
    let run = |seed: u64| {
        let mut out = SslBatch::default();
        aug.build_views(
            &views(&all),
            &items,
            &mut ChaCha8Rng::seed_from_u64(seed),
            &mut out,
        )
        .unwrap();
        out
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42), run(43));

    // Reuse: once `out` has served these items, later calls with other masks
    // and dropouts (different bag lengths) must not move any buffer.
    let mut out = SslBatch::default();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    aug.build_views(&views(&all), &items, &mut rng, &mut out)
        .unwrap();
    let ptrs = |o: &SslBatch| -> Vec<(*const u32, *const u32, usize)> {
        [&o.view1, &o.view2]
            .iter()
            .flat_map(|v| {
                v.features
                    .iter()
                    .map(|f| (f.offsets.as_ptr(), f.values.as_ptr(), f.masked.capacity()))
            })
            .collect()
    };
    let before = ptrs(&out);
    for _ in 0..50 {
        aug.build_views(&views(&all), &items, &mut rng, &mut out)
            .unwrap();
        assert_eq!(before, ptrs(&out));
    }
}

#[test]
fn uniform_sampling_passes_chi_square() {
    let aug = Augmenter::new(
        cfg(MaskingPattern::Random, 0.0, 0.0),
        vec![false],
        vec![false],
        None,
    )
    .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let mut out = Vec::new();
    // Two code paths: Floyd (m² ≤ 4n: n = 50, m = 10) and partial Fisher–Yates
    // (n = 50, m = 40). R rounds; each item expected E = R·m/n times.
    // χ² = Σ (c − E)²/E with df = 49; bound df + 5·sqrt(2·df) = 98.5 (sampling
    // without replacement only shrinks the variance, by 1 − m/n).
    for (n, m, rounds) in [(50usize, 10usize, 5000usize), (50, 40, 2000)] {
        let mut counts = vec![0usize; n];
        for _ in 0..rounds {
            aug.sample_items(n, m, &mut rng, &mut out);
            assert_eq!(out.len(), m);
            let mut s = out.clone();
            s.sort_unstable();
            s.dedup();
            assert_eq!(s.len(), m, "items within a batch are distinct");
            for &e in &out {
                counts[e as usize] += 1;
            }
        }
        let e = (rounds * m) as f64 / n as f64;
        let chi2: f64 = counts.iter().map(|&c| (c as f64 - e).powi(2) / e).sum();
        let df = (n - 1) as f64;
        assert!(
            chi2 < df + 5.0 * (2.0 * df).sqrt(),
            "n {n} m {m}: chi2 {chi2}"
        );
    }
    // Position 0 is uniform too (the Floyd order is shuffled): item counts at
    // position 0 over 5000 rounds, n = 10, m = 3; df = 9, bound 9 + 5·sqrt(18) = 30.2.
    let mut first = [0usize; 10];
    for _ in 0..5000 {
        aug.sample_items(10, 3, &mut rng, &mut out);
        first[out[0] as usize] += 1;
    }
    let chi2: f64 = first
        .iter()
        .map(|&c| (c as f64 - 500.0).powi(2) / 500.0)
        .sum();
    assert!(chi2 < 30.2, "position-0 chi2 {chi2}: {first:?}");
    // m > n: the whole catalog once.
    aug.sample_items(7, 100, &mut rng, &mut out);
    let mut s = out.clone();
    s.sort_unstable();
    assert_eq!(s, (0..7).collect::<Vec<u32>>());
    aug.sample_items(0, 5, &mut rng, &mut out);
    assert!(out.is_empty());
}

#[test]
fn mi_table_text() {
    let cols = planted();
    let mi = mutual_information(&views(&cols), None).unwrap();
    let names: Vec<String> = ["genre", "genre_copy", "year", "year_copy"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let t = mi_table(&names, &mi);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 5);
    assert!(
        lines
            .iter()
            .all(|l| l.chars().count() == lines[0].chars().count()),
        "{t}"
    );
    assert!(lines[0].starts_with("MI") && lines[0].contains("year_copy"));
    // ln 4 = 1.3863 on the diagonal and for the planted pairs, 0 elsewhere.
    assert!(
        lines[1].starts_with("genre ")
            && lines[1].contains("1.3863")
            && lines[1].contains("0.0000")
    );
}

#[test]
fn bad_inputs_are_errors() {
    let cols = planted();
    let v = views(&cols);
    let f4 = || vec![false; 4];
    assert!(matches!(
        Augmenter::new(cfg(MaskingPattern::Random, 1.5, 0.0), f4(), f4(), None),
        Err(AugmentError::InvalidRate {
            field: "mask_rate",
            ..
        })
    ));
    assert!(matches!(
        Augmenter::new(cfg(MaskingPattern::Random, 0.0, f64::NAN), f4(), f4(), None),
        Err(AugmentError::InvalidRate {
            field: "dropout_rate",
            ..
        })
    ));
    assert!(matches!(
        Augmenter::new(cfg(MaskingPattern::Correlated, 0.0, 0.0), f4(), f4(), None),
        Err(AugmentError::MissingMutualInformation)
    ));
    let bad_mi = vec![vec![0.0; 4]; 3];
    assert!(matches!(
        Augmenter::new(
            cfg(MaskingPattern::Correlated, 0.0, 0.0),
            f4(),
            f4(),
            Some(&bad_mi)
        ),
        Err(AugmentError::LengthMismatch {
            expected: 4,
            got: 3,
            ..
        })
    ));
    let mut c = cfg(MaskingPattern::Complementary, 0.0, 0.0);
    c.mask_id_feature = false;
    assert!(matches!(
        Augmenter::new(c, vec![false], vec![true], None),
        Err(AugmentError::NoMaskableFeatures { .. })
    ));
    let aug = Augmenter::new(
        cfg(MaskingPattern::Complementary, 0.0, 0.0),
        f4(),
        f4(),
        None,
    )
    .unwrap();
    let mut out = SslBatch::default();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    assert!(matches!(
        aug.build_views(&v, &[3, 16], &mut rng, &mut out),
        Err(AugmentError::ItemOutOfRange {
            row: 1,
            item: 16,
            feature: 0,
            n_items: 16
        })
    ));
    assert!(matches!(
        aug.build_views(&v[..3], &[0], &mut rng, &mut out),
        Err(AugmentError::LengthMismatch {
            expected: 4,
            got: 3,
            ..
        })
    ));
    let short = Col::single(&[1, 2, 3]);
    let mixed = [cols[0].view(), short.view()];
    assert!(matches!(
        mutual_information(&mixed, None),
        Err(AugmentError::LengthMismatch {
            expected: 16,
            got: 3,
            ..
        })
    ));
    assert!(matches!(
        mutual_information(&v, Some(&[1, 2])),
        Err(AugmentError::LengthMismatch {
            expected: 16,
            got: 2,
            ..
        })
    ));
    assert!(matches!(
        mutual_information(&v, Some(&[0; 16])),
        Err(AugmentError::ZeroMass)
    ));
    let broken = FeatureColumn {
        offsets: &[0, 2, 1],
        values: &[1, 2],
        weights: &[],
    };
    assert!(matches!(
        mutual_information(&[broken], None),
        Err(AugmentError::BadOffsets {
            feature: 0,
            item: 1,
            start: 2,
            end: 1,
            ..
        })
    ));
}

/// ML-100K items: id (1..=1682, single), genres (multi: the set flags of the 19
/// genre columns, ids 1..=19), release year (single, year − 1900, 0 if missing).
fn ml100k_items() -> (Vec<Col>, Vec<String>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/ml-100k/u.item"
    );
    let bytes = std::fs::read(path).expect("ML-100K u.item (shared/data/ml-100k)");
    let (mut ids, mut genres, mut years) = (Vec::new(), Vec::new(), Vec::new());
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let f: Vec<&[u8]> = line.split(|&b| b == b'|').collect();
        assert_eq!(f.len(), 24);
        ids.push(std::str::from_utf8(f[0]).unwrap().parse::<u32>().unwrap());
        let date = std::str::from_utf8(f[2]).unwrap();
        years.push(if date.len() >= 4 {
            date[date.len() - 4..].parse::<u32>().unwrap() - 1900
        } else {
            0
        });
        genres.push(
            (0..19u32)
                .filter(|&g| f[5 + g as usize].starts_with(b"1"))
                .map(|g| g + 1)
                .collect::<Vec<u32>>(),
        );
    }
    let names = ["item_id", "genres", "year"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    (
        vec![
            Col::single(&ids),
            Col::from_bags(&genres),
            Col::single(&years),
        ],
        names,
    )
}

#[test]
fn ml100k_mi_identities() {
    // The item id is unique per item, so for every feature X:
    // MI(id, X) = Σ_e Σ_{x∈bag_e} 1/(n|bag_e|)·ln(p(x)^-1 / |bag_e|) = H(X) − mean_e ln|bag_e|
    // (= H(X) for a single-valued X), and H(id) = ln 1682.
    let (cols, names) = ml100k_items();
    let n = cols[0].offsets.len() - 1;
    assert_eq!(n, 1682);
    let mi = mutual_information(&views(&cols), None).unwrap();
    println!("{}", mi_table(&names, &mi));
    assert!((mi[0][0] - (1682f64).ln()).abs() < 1e-9);
    assert!(
        (mi[0][1] - 1.8225).abs() < 5e-5
            && (mi[0][2] - 2.7858).abs() < 5e-5
            && (mi[1][2] - 0.2178).abs() < 5e-5
    );
    assert!(
        (mi[0][2] - mi[2][2]).abs() < 1e-9,
        "{} vs {}",
        mi[0][2],
        mi[2][2]
    );
    let g = &cols[1];
    let mean_ln_bag: f64 = (0..n)
        .map(|e| ((g.offsets[e + 1] - g.offsets[e]).max(1) as f64).ln())
        .sum::<f64>()
        / n as f64;
    assert!(
        (mi[0][1] - (mi[1][1] - mean_ln_bag)).abs() < 1e-9,
        "{} vs {}",
        mi[0][1],
        mi[1][1] - mean_ln_bag
    );
    // Genres and year are dependent but far from determined: 0 < MI < min(H).
    assert!(mi[1][2] > 0.01 && mi[1][2] < mi[1][1].min(mi[2][2]));
    // CFM over k = 3: groups of ⌈3/2⌉ = 2 (seed + its most-MI partner).
    // Measured: MI(id, genres) = 1.8225, MI(id, year) = 2.7858, MI(genres, year) = 0.2178.
    let groups = correlated_groups(&mi);
    assert_eq!(groups, vec![vec![0, 2], vec![1, 0], vec![2, 0]]);
}

#[test]
fn masked_as_unknown_reads_row_0_or_an_empty_bag_as_a_cold_item_does() {
    // Feature 0: single-valued id (rows 1..=20), feature 1: multi-valued bags
    // of 2 values. Complementary masking with the same seed, once as the mask
    // embedding and once as unknown: the masks are the same draws; where a
    // feature is masked the unknown views hold [0] (single) or [] (multi) —
    // what an out-of-vocabulary id and a missing bag are at inference — and
    // no masked flags; elsewhere both views hold the item's own bag.
    let ids = Col::single(&(1..=20).collect::<Vec<u32>>());
    let tags = Col::from_bags(
        &(0..20)
            .map(|e| vec![e % 7 + 1, e % 5 + 8])
            .collect::<Vec<_>>(),
    );
    let cols = [ids, tags];
    let items: Vec<u32> = (0..20).collect();
    let build = |unknown: bool| {
        let mut c = cfg(MaskingPattern::Complementary, 0.0, 0.0);
        c.mask_as_unknown = unknown;
        let aug = Augmenter::new(c, vec![false, true], vec![true, false], None).unwrap();
        let mut out = SslBatch::default();
        aug.build_views(
            &views(&cols),
            &items,
            &mut ChaCha8Rng::seed_from_u64(11),
            &mut out,
        )
        .unwrap();
        out
    };
    let (flagged, unknown) = (build(false), build(true));
    let mut masked_cells = 0;
    for (vf, vu) in [
        (&flagged.view1, &unknown.view1),
        (&flagged.view2, &unknown.view2),
    ] {
        for (f, col) in cols.iter().enumerate() {
            assert!(
                vu.features[f].masked.is_empty(),
                "unknown views carry no mask flags"
            );
            for row in 0..items.len() {
                if is_masked(vf, f, row) {
                    masked_cells += 1;
                    let want: &[u32] = if f == 0 { &[0] } else { &[] };
                    assert_eq!(bag(vu, f, row), want, "feature {f} row {row}");
                } else {
                    assert_eq!(bag(vu, f, row), bag(vf, f, row), "feature {f} row {row}");
                    assert_eq!(
                        bag(vu, f, row),
                        &col.values[col.offsets[row] as usize..col.offsets[row + 1] as usize]
                    );
                }
            }
        }
    }
    // complementary with k = 2: every row masks exactly one feature per view
    assert_eq!(masked_cells, 2 * items.len());
}

#[test]
fn cold_start_views_are_the_item_without_its_id_and_the_whole_item() {
    // Features: 0 = tags (multi), 1 = item id (single), 2 = brand (single).
    // As unknown, view 1 of every row holds the id as row 0 (an OOV id, as a
    // cold item has) and the item's own tags and brand; view 2 is the item
    // unchanged. No draw is made: the rng is not advanced by the masking.
    let tags = Col::from_bags(
        &(0..12)
            .map(|e| vec![e % 3 + 1, e % 4 + 5])
            .collect::<Vec<_>>(),
    );
    let ids = Col::single(&(1..=12).collect::<Vec<u32>>());
    let brand = Col::single(&(0..12).map(|e| e % 2 + 1).collect::<Vec<u32>>());
    let cols = [tags, ids, brand];
    let items: Vec<u32> = vec![3, 0, 11, 7];
    let mut c = cfg(MaskingPattern::ColdStart, 0.0, 0.0);
    c.mask_as_unknown = true;
    let aug = Augmenter::new(c, vec![true, false, false], vec![false, true, false], None).unwrap();
    let mut out = SslBatch::default();
    aug.build_views(
        &views(&cols),
        &items,
        &mut ChaCha8Rng::seed_from_u64(1),
        &mut out,
    )
    .unwrap();
    for (row, &e) in items.iter().enumerate() {
        let e = e as usize;
        let own = |f: usize| {
            &cols[f].values[cols[f].offsets[e] as usize..cols[f].offsets[e + 1] as usize]
        };
        assert_eq!(
            bag(&out.view1, 1, row),
            &[0],
            "view 1 row {row}: the id is OOV"
        );
        assert_eq!(
            bag(&out.view1, 0, row),
            own(0),
            "view 1 row {row} keeps its tags"
        );
        assert_eq!(
            bag(&out.view1, 2, row),
            own(2),
            "view 1 row {row} keeps its brand"
        );
        for f in 0..3 {
            assert_eq!(
                bag(&out.view2, f, row),
                own(f),
                "view 2 row {row} feature {f}"
            );
        }
    }
    // with the mask embedding instead, view 1 flags the id and nothing else
    let aug = Augmenter::new(
        cfg(MaskingPattern::ColdStart, 0.0, 0.0),
        vec![true, false, false],
        vec![false, true, false],
        None,
    )
    .unwrap();
    aug.build_views(
        &views(&cols),
        &items,
        &mut ChaCha8Rng::seed_from_u64(1),
        &mut out,
    )
    .unwrap();
    for row in 0..items.len() {
        assert!(is_masked(&out.view1, 1, row));
        assert!(!is_masked(&out.view1, 0, row) && !is_masked(&out.view1, 2, row));
        assert!((0..3).all(|f| !is_masked(&out.view2, f, row)));
    }
    // an id feature and another feature are both required
    for (is_id, mask_id) in [
        (vec![false, false, false], true),
        (vec![true, true, true], true),
        (vec![false, true, false], false),
    ] {
        let mut c = cfg(MaskingPattern::ColdStart, 0.0, 0.0);
        c.mask_id_feature = mask_id;
        let err = Augmenter::new(c, vec![true, false, false], is_id.clone(), None).unwrap_err();
        assert!(
            matches!(
                err,
                AugmentError::ColdStartNeedsIdAndContent | AugmentError::NoMaskableFeatures { .. }
            ),
            "{is_id:?} mask_id {mask_id}: {err}"
        );
    }
}
