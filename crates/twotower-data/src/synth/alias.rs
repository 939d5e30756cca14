//! [`Alias`]: Walker/Vose alias tables, O(1) sampling from a discrete
//! distribution (the generator's item popularity and user activity).

use rand::Rng;

/// Walker/Vose alias table: O(1) sampling from a discrete distribution.
///
/// Each slot packs its acceptance probability with the two values it can
/// return (its own and its alias), so a draw touches one cache line even
/// for tables of millions of entries.
///
/// # Shapes
/// `slots`: `[n]`.
#[derive(Debug, Clone)]
pub struct Alias {
    slots: Vec<Slot>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    prob: f32,
    own: u32,
    alias: u32,
}

impl Alias {
    /// Builds the table for non-negative `weights` (not all zero); a draw
    /// returns an index into `weights`.
    pub fn new(weights: &[f64]) -> Alias {
        let ids: Vec<u32> = (0..weights.len() as u32).collect();
        Alias::with_values(weights, &ids)
    }

    /// Like [`Alias::new`], but a draw of index `k` returns `values[k]`.
    pub fn with_values(weights: &[f64], values: &[u32]) -> Alias {
        let n = weights.len();
        let total: f64 = weights.iter().sum();
        let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut prob = vec![1.0f32; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<u32>, Vec<u32>) = (Vec::new(), Vec::new());
        for (i, &s) in scaled.iter().enumerate() {
            if s < 1.0 {
                small.push(i as u32)
            } else {
                large.push(i as u32)
            }
        }
        while let (Some(s), Some(l)) = (small.pop(), large.last().copied()) {
            prob[s as usize] = scaled[s as usize] as f32;
            alias[s as usize] = l;
            scaled[l as usize] -= 1.0 - scaled[s as usize];
            if scaled[l as usize] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        let slots = (0..n)
            .map(|k| Slot {
                prob: prob[k],
                own: values[k],
                alias: values[alias[k] as usize],
            })
            .collect();
        Alias { slots }
    }

    /// Draws a value.
    #[inline]
    pub fn sample<R: Rng>(&self, rng: &mut R) -> u32 {
        let s = self.slots[rng.gen_range(0..self.slots.len())];
        if rng.gen::<f32>() < s.prob {
            s.own
        } else {
            s.alias
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::generator::rng;

    #[test]
    fn alias_table_matches_weights() {
        // Weights 1:2:3:4 → probabilities 0.1, 0.2, 0.3, 0.4; 200k draws,
        // standard error ≤ sqrt(0.25/200000) ≈ 0.0011, tolerance 0.006.
        let a = Alias::new(&[1.0, 2.0, 3.0, 4.0]);
        let mut r = rng(1, 0);
        let mut c = [0usize; 4];
        for _ in 0..200_000 {
            c[a.sample(&mut r) as usize] += 1;
        }
        for (k, &n) in c.iter().enumerate() {
            let p = n as f64 / 200_000.0;
            assert!((p - 0.1 * (k + 1) as f64).abs() < 0.006, "{k}: {p}");
        }
    }
}
