//! Sampling-probability estimators for the logQ correction (frequency.rs).

use rand::distributions::{Distribution, WeightedIndex};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use twotower::frequency::{
    CountFrequency, FrequencyError, FrequencyEstimator, StreamingConfig, StreamingFrequency,
    P_FLOOR,
};

#[test]
fn count_frequency_hand_values() {
    // counts [3, 1, 0, 4], N = 8 → p = [3/8, 1/8, 0 → P_FLOOR, 4/8]
    let f = CountFrequency::from_train_counts(&[3, 1, 0, 4]).unwrap();
    let want = [0.375, 0.125, P_FLOOR, 0.5];
    for (j, w) in want.iter().enumerate() {
        assert!((f.prob(j as u32) - w).abs() < 1e-12, "item {j}");
        assert!((f.log_q(j as u32) as f64 - w.ln()).abs() < 1e-6, "item {j}");
    }
    assert_eq!(f.prob(4), P_FLOOR); // outside the counted range: unseen
    assert!((f.log_q(2) - (-13.815511)).abs() < 1e-5); // ln 1e-6

    // B = 2: (1 − (1 − f)^2) / 2
    //   item 0: (1 − 0.625²)/2 = (1 − 0.390625)/2 = 0.3046875
    //   item 1: (1 − 0.875²)/2 = (1 − 0.765625)/2 = 0.1171875
    //   item 3: (1 − 0.5²)/2   = 0.375
    let f = CountFrequency::batch_inclusion(&[3, 1, 0, 4], 2).unwrap();
    let want = [0.3046875, 0.1171875, P_FLOOR, 0.375];
    for (j, w) in want.iter().enumerate() {
        assert!(
            (f.prob(j as u32) - w).abs() < 1e-12,
            "item {j}: {}",
            f.prob(j as u32)
        );
    }
    // B = 1 is the per-example probability itself.
    let f1 = CountFrequency::batch_inclusion(&[3, 1, 0, 4], 1).unwrap();
    assert!((f1.prob(0) - 0.375).abs() < 1e-12);

    assert_eq!(
        CountFrequency::from_train_counts(&[0, 0]).unwrap_err(),
        FrequencyError::NoCounts { n_items: 2 }
    );
    assert_eq!(
        CountFrequency::from_train_counts(&[]).unwrap_err(),
        FrequencyError::NoCounts { n_items: 0 }
    );
    assert!(matches!(
        CountFrequency::batch_inclusion(&[1], 0).unwrap_err(),
        FrequencyError::InvalidParam {
            field: "batch_size",
            ..
        }
    ));
}

#[test]
fn streaming_hand_values() {
    // α = 0.5, one hash; items 3, 7, 9 in distinct buckets (checked).
    let mut f = StreamingFrequency::new(0.5, 1024, 1, 42).unwrap();
    let b = |i| f.bucket(0, i);
    assert!(b(3) != b(7) && b(3) != b(9) && b(7) != b(9));
    assert_eq!(f.prob(7), P_FLOOR); // nothing seen yet
                                    // t=1 [7]:    gap7 = 1 − 0 = 1 (first sighting), A7 = 1; b̄ = 1
    f.observe_batch(&[7]);
    // t=2 [3]:    gap3 = 2 − 0 = 2, A3 = 2;                   b̄ = 0.5·1 + 0.5·1 = 1
    f.observe_batch(&[3]);
    f.observe_batch(&[]); // not a step
                          // t=3 [7, 7]: gap7 = 0.5·1 + 0.5·(3 − 1) = 1.5, A7 = 3;
                          //             gap7 = 0.5·1.5 + 0.5·(3 − 3) = 0.75;         b̄ = 0.5·1 + 0.5·2 = 1.5
    f.observe_batch(&[7, 7]);
    assert_eq!(f.step(), 3.0);
    assert_eq!(f.gap(7), 0.75);
    assert_eq!(f.gap(3), 2.0);
    assert!((f.per_batch_rate(7) - 4.0 / 3.0).abs() < 1e-12);
    // prob = 1 / (gap · b̄): item 7 → 1/(0.75·1.5) = 0.8889; item 3 → 1/(2·1.5) = 1/3
    assert!((f.prob(7) - 1.0 / 1.125).abs() < 1e-7);
    assert!((f.prob(3) - 1.0 / 3.0).abs() < 1e-7);
    assert!((f.log_q(3) as f64 - (1.0f64 / 3.0).ln()).abs() < 1e-6);
    assert_eq!(f.prob(9), P_FLOOR);
    assert_eq!(f.gap(9), f32::INFINITY);
    // t=4 [3]: gap3 = 0.5·2 + 0.5·(4 − 2) = 2; b̄ = 0.5·1.5 + 0.5·1 = 1.25 → p3 = 1/2.5 = 0.4
    f.observe_batch(&[3]);
    assert!((f.prob(3) - 0.4).abs() < 1e-7);

    for (alpha, nb, nh) in [
        (0.0, 4, 1),
        (1.5, 4, 1),
        (f64::NAN, 4, 1),
        (0.1, 0, 1),
        (0.1, 4, 0),
    ] {
        assert!(
            matches!(
                StreamingFrequency::new(alpha, nb, nh, 0),
                Err(FrequencyError::InvalidParam { .. })
            ),
            "{alpha} {nb} {nh}"
        );
    }
}

#[test]
fn streaming_multi_hash_takes_the_largest_gap() {
    // Two buckets per hash: find a, b that collide under hash 0 but not under hash 1.
    let mut f = StreamingFrequency::new(1.0, 2, 2, 3).unwrap();
    let (a, b) = (0..64u32)
        .flat_map(|a| (0..64u32).map(move |b| (a, b)))
        .find(|&(a, b)| {
            a != b && f.bucket(0, a) == f.bucket(0, b) && f.bucket(1, a) != f.bucket(1, b)
        })
        .expect("a colliding pair exists");
    // α = 1: the gap is the last gap. a every step, b at steps 4 and 8 (after a).
    for t in 1..=8 {
        if t % 4 == 0 {
            f.observe_batch(&[a, b]);
        } else {
            f.observe_batch(&[a]);
        }
    }
    // hash 0 (shared bucket): last update b at step 8 after a at step 8 → gap 0.
    // hash 1: a's bucket gap 8 − 7 = 1; b's bucket gap 8 − 4 = 4.
    // max over hashes: gap(a) = max(0, 1) = 1, gap(b) = max(0, 4) = 4
    // (a min would give 0 to both: "as frequent as possible").
    assert_eq!(f.gap(a), 1.0);
    assert_eq!(f.gap(b), 4.0);
    // b̄ = last batch size (α = 1) = 2: p_a = 1/(1·2), p_b = 1/(4·2)
    assert_eq!(f.prob(a), 0.5);
    assert_eq!(f.prob(b), 0.125);
}

/// Zipf(1) over `n` items: p_j ∝ 1/(j+1).
fn zipf(n: usize) -> Vec<f64> {
    let w: Vec<f64> = (0..n).map(|j| 1.0 / (j + 1) as f64).collect();
    let s: f64 = w.iter().sum();
    w.into_iter().map(|x| x / s).collect()
}

fn stream(f: &mut StreamingFrequency, p: &[f64], steps: usize, batch: usize, rng: &mut ChaCha8Rng) {
    let dist = WeightedIndex::new(p).unwrap();
    let mut items = Vec::with_capacity(batch);
    for _ in 0..steps {
        items.clear();
        items.extend((0..batch).map(|_| dist.sample(rng) as u32));
        f.observe_batch(&items);
    }
}

fn rel_err(f: &StreamingFrequency, p: &[f64], j: usize) -> f64 {
    (f.prob(j as u32) / p[j] - 1.0).abs()
}

// 200 items, Zipf(1): p_0 = 0.170, p_199 = 0.00085; B = 32 → from 5.4 down to
// 0.027 occurrences per step; 60k steps (1.92M examples). With α = 0.0005 the
// relative noise of an EMA is about sqrt(α/2) ≈ 1.6% times the gaps'
// coefficient of variation (≈ 1 for rare items); the rarest items (~1600
// sightings, still in the 1/n warm-up) are a plain mean: ≈ 1/sqrt(1600) = 2.5%.
// Measured over seeds 0..5: spread of the relative errors 1.8–2.1%, worst of
// the 200 items 5–8%.
#[test]
fn streaming_converges_to_true_frequencies_and_adapts() {
    let n = 200;
    let p = zipf(n);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut f = StreamingFrequency::with_config(StreamingConfig {
        alpha: 0.0005,
        n_buckets: 1 << 14,
        n_hashes: 2,
        seed: 5,
    })
    .unwrap();
    stream(&mut f, &p, 60_000, 32, &mut rng);
    let worst = (0..n).map(|j| rel_err(&f, &p, j)).fold(0.0, f64::max);
    assert!(worst < 0.10, "worst relative error {worst}");
    let rms = ((0..n).map(|j| rel_err(&f, &p, j).powi(2)).sum::<f64>() / n as f64).sqrt();
    assert!(rms < 0.03, "rms relative error {rms}");
    let before: Vec<f64> = (0..n as u32).map(|j| f.prob(j)).collect();

    // The distribution flips: item j now has the probability of item 199 − j.
    let q: Vec<f64> = p.iter().rev().copied().collect();
    stream(&mut f, &q, 60_000, 32, &mut rng);
    // Items with ≥ 5/α expected sightings after the flip (q_j·32·60000 ≥ 10000,
    // i.e. q_j ≥ 0.0052: items 168..199) have forgotten the old phase
    // (weight (1−α)^10000 < 1%): within 10% of the NEW truth, and far from the old one.
    let mut checked = 0;
    for j in 0..n {
        if q[j] * 32.0 * 60_000.0 >= 10_000.0 {
            assert!(
                rel_err(&f, &q, j) < 0.10,
                "item {j}: est {} new {} old {}",
                f.prob(j as u32),
                q[j],
                p[j]
            );
            assert!(f.prob(j as u32) / before[j] > 3.0, "item {j} did not move");
            checked += 1;
        }
    }
    assert_eq!(checked, 32);
    // Item 0 went from p = 0.170 to 0.00085 (~1630 sightings since, old
    // phase weight (1−α)^1630 ≈ 0.44 on a gap 200× shorter): its estimate
    // has dropped by more than 50× already.
    assert!(
        before[0] / f.prob(0) > 50.0,
        "{} → {}",
        before[0],
        f.prob(0)
    );
}

// The default α = 0.01 is noisier (≈ 7% × CV per item) but its typical
// (median) error is still well under 10%.
#[test]
fn streaming_default_alpha_median_error_under_10_percent() {
    let n = 200;
    let p = zipf(n);
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut f = StreamingFrequency::with_config(StreamingConfig {
        n_buckets: 1 << 14,
        ..StreamingConfig::default()
    })
    .unwrap();
    assert_eq!(f.config().alpha, 0.01);
    stream(&mut f, &p, 20_000, 32, &mut rng);
    let mut errs: Vec<f64> = (0..n).map(|j| rel_err(&f, &p, j)).collect();
    errs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert!(errs[n / 2] < 0.10, "median relative error {}", errs[n / 2]);
}

#[test]
fn streaming_state_round_trips_and_survives_rebasing() {
    let p = zipf(50);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut a = StreamingFrequency::new(0.05, 256, 2, 9).unwrap();
    stream(&mut a, &p, 300, 16, &mut rng);
    // Restore a's state into a fresh estimator with the same config.
    let mut b = StreamingFrequency::new(0.05, 256, 2, 9).unwrap();
    let state: Vec<(String, Vec<usize>, Vec<f32>)> = a
        .named_state()
        .into_iter()
        .map(|(n, s, d)| (n, s, d.to_vec()))
        .collect();
    assert_eq!(
        state
            .iter()
            .map(|(n, s, _)| (n.as_str(), s.clone()))
            .collect::<Vec<_>>(),
        vec![
            ("last_step", vec![2, 256]),
            ("gap", vec![2, 256]),
            ("sightings", vec![2, 256]),
            ("counters", vec![2])
        ]
    );
    for (name, _, data) in &state {
        b.state_mut(name).unwrap().copy_from_slice(data);
    }
    assert!(b.state_mut("nope").is_none());
    assert_eq!(a, b);
    a.observe_batch(&[1, 2, 2]);
    b.observe_batch(&[1, 2, 2]);
    assert_eq!(a, b);
    // Same seed → same hashing; another seed → another bucket map.
    let c = StreamingFrequency::new(0.05, 256, 2, 10).unwrap();
    assert!((0..50).any(|i| a.bucket(0, i) != c.bucket(0, i)));

    // Rebasing keeps steps exact in f32: α = 0.5, one item.
    let mut f = StreamingFrequency::new(0.5, 16, 1, 0).unwrap();
    f.observe_batch(&[5]); // t = 1: gap = 1, A = 1
    f.state_mut("counters").unwrap()[0] = 8_388_606.0;
    f.observe_batch(&[5]); // t = 8388607: gap = 0.5·1 + 0.5·(8388607 − 1) = 4194303.5
    assert_eq!(f.gap(5) as f64, 4_194_303.5);
    // t would reach 2^23: step and A shift down by 2^22 → A = 4194303, t = 4194304;
    // the gap seen is still 1: 0.5·4194303.5 + 0.5·1 = 2097152.25 (exact in f32).
    f.observe_batch(&[5]);
    assert_eq!(f.step(), 4_194_304.0);
    assert_eq!(f.gap(5) as f64, 2_097_152.25);
}
