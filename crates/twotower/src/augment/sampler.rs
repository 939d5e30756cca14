//! The SSL batch's item sampler: distinct items drawn uniformly from the
//! whole catalog (Yao et al. 2021: a distribution different from the main
//! task's click-proportional one is what helps tail items).

use rand::Rng;

/// `min(m, n)` distinct uniform draws from `0..n` into `out` (see
/// [`Augmenter::sample_items`]).
pub(super) fn sample_distinct(n: usize, m: usize, rng: &mut impl Rng, out: &mut Vec<u32>) {
    out.clear();
    let m = m.min(n);
    if m == 0 {
        return;
    }
    if (m as u128) * (m as u128) <= 4 * (n as u128) {
        // Floyd's algorithm: for j = n−m..n, draw t in 0..=j; take t unless
        // already taken, else take j. Every m-subset is equally likely.
        // Membership by linear scan: O(m²) ≤ O(4n).
        for j in (n - m)..n {
            let t = rng.gen_range(0..=j) as u32;
            if out.contains(&t) {
                out.push(j as u32);
            } else {
                out.push(t);
            }
        }
        // Floyd's set comes out in a biased order; shuffle it (Fisher–Yates).
        for i in (1..m).rev() {
            let r = rng.gen_range(0..=i);
            out.swap(i, r);
        }
    } else {
        // Partial Fisher–Yates over 0..n: O(n).
        out.extend((0..n).map(|e| e as u32));
        for i in 0..m {
            let r = rng.gen_range(i..n);
            out.swap(i, r);
        }
        out.truncate(m);
    }
}
