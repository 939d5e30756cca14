//! Item sampling probabilities `p_j` for the logQ correction of the in-batch
//! softmax (Yi et al. 2019, "Sampling-Bias-Corrected Neural Modeling for
//! Large Corpus Item Recommendations", RecSys '19): the corrected logit is
//! `s(x_i, y_j) − log p_j`.
//!
//! # What `p_j` means here
//! Every estimator returns the same quantity from [`FrequencyEstimator::prob`]:
//! the probability that **one training example's item is `j`** (Σ_j p_j ≈ 1),
//! clamped to `[P_FLOOR, 1]`. In the in-batch softmax a constant factor on
//! every `p_j` cancels, so "per example" and "per batch of B" (`B · p_j`)
//! give the same loss; a common per-example scale lets the trainer add the
//! uniform mixed negatives (`M / (B·|I|)`) on the same scale.
//!
//! - [`CountFrequency`]: from train counts, `p_j = c_j / N` (default), or the
//!   batch-inclusion variant `(1 − (1 − c_j/N)^B) / B`.
//! - [`StreamingFrequency`]: the paper's Algorithm 2 (hashed arrays of the
//!   last step an item was seen and of the average gap between sightings),
//!   with several hash functions (the paper's multiple-hashing variant).

use serde::{Deserialize, Serialize};

/// Lower clamp of every `p_j`: `p ∈ [P_FLOOR, 1]`, so `log p_j ≥ ln(1e-6) ≈ −13.8`.
/// Items never seen get `P_FLOOR`.
pub const P_FLOOR: f64 = 1e-6;

/// Errors of the frequency estimators.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FrequencyError {
    /// The train counts are empty or sum to zero: no `p_j` can be estimated.
    #[error(
        "item counts over {n_items} items sum to zero: no train interaction to estimate p_j from"
    )]
    NoCounts {
        /// Length of the counts given.
        n_items: usize,
    },
    /// A parameter is out of its domain.
    #[error("invalid {field}: got {got}, expected {expected}")]
    InvalidParam {
        /// Parameter name.
        field: &'static str,
        /// The value given.
        got: String,
        /// Its domain.
        expected: &'static str,
    },
}

/// An estimator of the per-example sampling probability `p_j` of item `j`.
pub trait FrequencyEstimator {
    /// `p_j ∈ [P_FLOOR, 1]`: estimated probability that one training
    /// example's item is `item`. Unknown items (never seen, or outside the
    /// counted range) get [`P_FLOOR`].
    fn prob(&self, item: u32) -> f64;

    /// `ln p_j` as used by the logQ correction, in `[ln P_FLOOR, 0]`.
    fn log_q(&self, item: u32) -> f32 {
        self.prob(item).ln() as f32
    }

    /// Feeds one training batch (the items of its examples, duplicates
    /// included), in training order. Static estimators ignore it.
    fn observe_batch(&mut self, _items: &[u32]) {}
}

/// `p_j` from train counts (Yi et al. 2019 §4 use the true frequency when it
/// is known; for a fixed train set it is).
///
/// # Formula
/// - [`CountFrequency::from_train_counts`]: `p_j = c_j / N`, `N = Σ c`.
/// - [`CountFrequency::batch_inclusion`]: `p_j = (1 − (1 − c_j/N)^B) / B`,
///   the probability that `j` is in a batch of `B` examples drawn with
///   replacement, brought back to the per-example scale: ≈ `c_j/N` for rare
///   items, saturating at `1/B` for items present in nearly every batch.
///
/// Both are clamped to `[P_FLOOR, 1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountFrequency {
    prob: Vec<f64>,
}

fn counts_total(counts: &[u32]) -> Result<f64, FrequencyError> {
    let total: u64 = counts.iter().map(|&c| c as u64).sum();
    if total == 0 {
        return Err(FrequencyError::NoCounts {
            n_items: counts.len(),
        });
    }
    Ok(total as f64)
}

impl CountFrequency {
    /// `p_j = c_j / N`.
    ///
    /// # Shapes
    /// `counts`: `[n_items]`, train rows per item (duplicates counted).
    ///
    /// # Errors
    /// [`FrequencyError::NoCounts`] when the counts sum to zero.
    pub fn from_train_counts(counts: &[u32]) -> Result<Self, FrequencyError> {
        let total = counts_total(counts)?;
        Ok(Self {
            prob: counts
                .iter()
                .map(|&c| (c as f64 / total).clamp(P_FLOOR, 1.0))
                .collect(),
        })
    }

    /// `p_j = (1 − (1 − c_j/N)^B) / B` (see the type's docs).
    ///
    /// # Errors
    /// [`FrequencyError::NoCounts`]; [`FrequencyError::InvalidParam`] when
    /// `batch_size == 0`.
    pub fn batch_inclusion(counts: &[u32], batch_size: usize) -> Result<Self, FrequencyError> {
        if batch_size == 0 {
            return Err(FrequencyError::InvalidParam {
                field: "batch_size",
                got: "0".into(),
                expected: "at least 1",
            });
        }
        let total = counts_total(counts)?;
        let b = batch_size as f64;
        Ok(Self {
            prob: counts
                .iter()
                .map(|&c| {
                    let f = c as f64 / total;
                    // 1 − (1 − f)^B, accurately for small f.
                    let incl = -(b * (-f).ln_1p()).exp_m1();
                    (incl / b).clamp(P_FLOOR, 1.0)
                })
                .collect(),
        })
    }

    /// Number of items covered.
    pub fn n_items(&self) -> usize {
        self.prob.len()
    }
}

impl FrequencyEstimator for CountFrequency {
    fn prob(&self, item: u32) -> f64 {
        self.prob.get(item as usize).copied().unwrap_or(P_FLOOR)
    }
}

/// Steps are kept as exact integers in `f32` (checkpoints store f32): when the
/// step counter reaches `REBASE_AT`, it and every last-seen step are shifted
/// down by `REBASE_BY`, keeping every value within ±2^24.
const REBASE_AT: f32 = (1u32 << 23) as f32;
const REBASE_BY: f32 = (1u32 << 22) as f32;
const LAST_STEP_MIN: f32 = -((1u32 << 23) as f32);

/// Parameters of [`StreamingFrequency`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StreamingConfig {
    /// EMA rate α of the gap estimate, in (0, 1] (default 0.01). The relative
    /// noise of an estimate is about `sqrt(α / 2)` times the coefficient of
    /// variation of the gaps, and it forgets the past over ~`1/α` sightings.
    pub alpha: f64,
    /// Buckets per hash function (default 2^20).
    pub n_buckets: usize,
    /// Number of hash functions H (default 2).
    pub n_hashes: usize,
    /// Seed of the hash functions.
    pub seed: u64,
}

impl Default for StreamingConfig {
    fn default() -> Self {
        Self {
            alpha: 0.01,
            n_buckets: 1 << 20,
            n_hashes: 2,
            seed: 0,
        }
    }
}

/// Streaming estimate of `p_j` (Yi et al. 2019, Algorithm 2, with the
/// multiple-hashing variant of §4.2).
///
/// # Algorithm
/// H hash functions `h_k` map an item to a bucket of arrays `A_k` (global
/// step of the last sighting) and `B_k` (estimated gap, in steps, between
/// sightings). The global step `t` is incremented once per
/// [`observe_batch`](FrequencyEstimator::observe_batch) (an empty batch is
/// not a step). For **each** item occurrence `y` of the batch (duplicates
/// included, as in the paper), for each k:
///
/// ```text
/// B_k[h_k(y)] ← (1 − α) · B_k[h_k(y)] + α · (t − A_k[h_k(y)])
/// A_k[h_k(y)] ← t
/// ```
///
/// A repeat within the same step contributes a gap of 0, so `B` estimates
/// steps / occurrences and `1/B` the expected **occurrences per step**
/// ([`per_batch_rate`](Self::per_batch_rate), the paper's `p̂`).
///
/// Choices (not fixed by the paper):
/// - **Warm-up**: the n-th sighting of a bucket uses the rate
///   `α_n = max(α, 1/n)`, so `B` is the plain mean of the gaps seen until
///   `1/α` sightings, then the paper's EMA. With a fixed α the first gap
///   (one noisy sample) would keep weight `(1 − α)^n`, still 37% after `1/α`
///   sightings; measured on a Zipf stream it left 30–50% errors on the rare
///   items that the warm-up removes.
/// - **Multiple hashes: the estimate takes the maximum of `B` over the H
///   hashes.** A collision only adds sightings, which shortens the gap and
///   over-estimates the frequency; the largest gap is the least-collided
///   bucket (the paper's choice too).
/// - **First sighting**: a bucket never hit has `B = +∞` ("never seen");
///   its first hit (`α_1 = 1`) sets `B = t − A` with `A = 0`: the gap since
///   the start of the stream.
/// - [`prob`](FrequencyEstimator::prob) = `1 / (max_k B_k · b̄)`, with `b̄` an
///   EMA (same α, per step) of the batch size, so that it is on the same
///   per-example scale as [`CountFrequency`]; clamped to `[P_FLOOR, 1]`;
///   `P_FLOOR` for an item never seen.
/// - An item that stops appearing keeps its last gap estimate (the estimate
///   only moves when the item is seen; the paper's algorithm has the same
///   property).
/// - Hashing is deterministic: `h_k(y) = splitmix64(y ⊕ key_k) mod n_buckets`
///   with `key_k` derived from the seed.
///
/// # State
/// Four f32 tensors (for checkpoints, see [`named_state`](Self::named_state)):
/// `last_step` `[H × n_buckets]`, `gap` `[H × n_buckets]`, `sightings`
/// `[H × n_buckets]` (capped at ⌈1/α⌉), `counters` `[2]` = (step, mean batch
/// size). Steps stay exact integers in f32 by rebasing.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamingFrequency {
    cfg: StreamingConfig,
    keys: Vec<u64>,
    last_step: Vec<f32>,
    gap: Vec<f32>,
    sightings: Vec<f32>,
    counters: Vec<f32>,
}

/// SplitMix64 finalizer (Steele et al. 2014): a bijective 64-bit mixer.
#[inline]
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl StreamingFrequency {
    /// A fresh estimator (nothing seen: every `prob` is [`P_FLOOR`]).
    /// Memory: `3 · n_hashes · n_buckets` f32.
    ///
    /// # Errors
    /// [`FrequencyError::InvalidParam`] when `alpha ∉ (0, 1]`,
    /// `n_buckets == 0` or `n_hashes == 0`.
    pub fn new(
        alpha: f64,
        n_buckets: usize,
        n_hashes: usize,
        seed: u64,
    ) -> Result<Self, FrequencyError> {
        Self::with_config(StreamingConfig {
            alpha,
            n_buckets,
            n_hashes,
            seed,
        })
    }

    /// Same as [`new`](Self::new), from a [`StreamingConfig`].
    ///
    /// # Errors
    /// See [`new`](Self::new).
    pub fn with_config(cfg: StreamingConfig) -> Result<Self, FrequencyError> {
        if !(cfg.alpha > 0.0 && cfg.alpha <= 1.0) {
            return Err(FrequencyError::InvalidParam {
                field: "alpha",
                got: cfg.alpha.to_string(),
                expected: "in (0, 1]",
            });
        }
        if cfg.n_buckets == 0 {
            return Err(FrequencyError::InvalidParam {
                field: "n_buckets",
                got: "0".into(),
                expected: "at least 1",
            });
        }
        if cfg.n_hashes == 0 {
            return Err(FrequencyError::InvalidParam {
                field: "n_hashes",
                got: "0".into(),
                expected: "at least 1",
            });
        }
        let keys = (0..cfg.n_hashes as u64)
            .map(|k| splitmix64(cfg.seed ^ splitmix64(k.wrapping_add(0x5EED))))
            .collect();
        let n = cfg.n_hashes * cfg.n_buckets;
        Ok(Self {
            cfg,
            keys,
            last_step: vec![0.0; n],
            gap: vec![f32::INFINITY; n],
            sightings: vec![0.0; n],
            counters: vec![0.0, 0.0],
        })
    }

    /// The parameters.
    pub fn config(&self) -> &StreamingConfig {
        &self.cfg
    }

    /// Bucket of `item` under hash function `hash` (`< n_hashes`), in `0..n_buckets`.
    ///
    /// # Panics
    /// If `hash >= n_hashes`.
    #[inline]
    pub fn bucket(&self, hash: usize, item: u32) -> usize {
        (splitmix64(item as u64 ^ self.keys[hash]) % self.cfg.n_buckets as u64) as usize
    }

    /// Steps observed so far (batches), modulo rebasing (see the type docs).
    pub fn step(&self) -> f32 {
        self.counters[0]
    }

    /// The estimated gap `max_k B_k[h_k(item)]` in steps (`+∞` if never seen).
    pub fn gap(&self, item: u32) -> f32 {
        (0..self.cfg.n_hashes)
            .map(|k| self.gap[k * self.cfg.n_buckets + self.bucket(k, item)])
            .fold(0.0f32, f32::max)
    }

    /// The paper's `p̂ = 1 / B`: expected occurrences of `item` per batch
    /// (0 if never seen; not clamped).
    pub fn per_batch_rate(&self, item: u32) -> f64 {
        1.0 / self.gap(item) as f64
    }

    /// The state tensors for a checkpoint: (name, shape, values).
    pub fn named_state(&self) -> Vec<(String, Vec<usize>, &[f32])> {
        let shape = vec![self.cfg.n_hashes, self.cfg.n_buckets];
        vec![
            ("last_step".into(), shape.clone(), &self.last_step[..]),
            ("gap".into(), shape.clone(), &self.gap[..]),
            ("sightings".into(), shape, &self.sightings[..]),
            ("counters".into(), vec![2], &self.counters[..]),
        ]
    }

    /// Mutable access to one state tensor by its [`named_state`](Self::named_state)
    /// name (to restore a checkpoint into an estimator built with the same
    /// config); `None` for an unknown name.
    pub fn state_mut(&mut self, name: &str) -> Option<&mut [f32]> {
        match name {
            "last_step" => Some(&mut self.last_step),
            "gap" => Some(&mut self.gap),
            "sightings" => Some(&mut self.sightings),
            "counters" => Some(&mut self.counters),
            _ => None,
        }
    }

    fn rebase(&mut self) {
        self.counters[0] -= REBASE_BY;
        for a in &mut self.last_step {
            *a = (*a - REBASE_BY).max(LAST_STEP_MIN);
        }
    }
}

impl FrequencyEstimator for StreamingFrequency {
    fn prob(&self, item: u32) -> f64 {
        let g = self.gap(item) as f64;
        let mean_batch = self.counters[1] as f64;
        if !g.is_finite() || mean_batch <= 0.0 {
            return P_FLOOR;
        }
        // g = 0 (only repeats within one step so far) gives +∞ → clamped to 1.
        (1.0 / (g * mean_batch)).clamp(P_FLOOR, 1.0)
    }

    fn observe_batch(&mut self, items: &[u32]) {
        if items.is_empty() {
            return;
        }
        if self.counters[0] + 1.0 >= REBASE_AT {
            self.rebase();
        }
        self.counters[0] += 1.0;
        let t = self.counters[0];
        let alpha = self.cfg.alpha as f32;
        let b = items.len() as f32;
        self.counters[1] = if self.counters[1] <= 0.0 {
            b
        } else {
            (1.0 - alpha) * self.counters[1] + alpha * b
        };
        let nb = self.cfg.n_buckets;
        let cap = (1.0 / self.cfg.alpha).ceil() as f32;
        for &y in items {
            for k in 0..self.cfg.n_hashes {
                let idx = k * nb + self.bucket(k, y);
                let gap = t - self.last_step[idx];
                let n = (self.sightings[idx] + 1.0).min(cap);
                self.sightings[idx] = n;
                let g = &mut self.gap[idx];
                *g = if g.is_finite() {
                    let a = alpha.max(1.0 / n);
                    (1.0 - a) * *g + a * gap
                } else {
                    gap
                };
                self.last_step[idx] = t;
            }
        }
    }
}
