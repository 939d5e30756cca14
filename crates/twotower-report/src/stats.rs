//! Mean ± sample standard deviation over seeds: [`mean_std`], [`Summary`]
//! and its text form [`format_summary`].

use serde::{Deserialize, Serialize};

/// Mean and sample standard deviation of `xs`:
/// `mean = Σx / n`, `std = sqrt(Σ(x − mean)² / (n − 1))` (two passes).
///
/// A single value has no spread to estimate: `(x, 0.0)` (reports print `n`
/// beside it). An empty slice gives `(NaN, NaN)`; [`Summary::of`] is the
/// NaN-free entry point. A NaN or infinite input propagates.
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return (mean, 0.0);
    }
    let ss: f64 = xs.iter().map(|x| (x - mean) * (x - mean)).sum();
    (mean, (ss / (n - 1) as f64).sqrt())
}

/// Mean ± sample standard deviation ([`mean_std`]) of the values present.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1); 0 when `n` = 1.
    pub std: f64,
    /// Number of values summarised.
    pub n: usize,
}

impl Summary {
    /// Summarises the `Some` values; `None` when there is none (a metric
    /// with no denominator in every seed stays undefined, never 0 or NaN).
    pub fn of(values: &[Option<f64>]) -> Option<Summary> {
        let xs: Vec<f64> = values.iter().flatten().copied().collect();
        if xs.is_empty() {
            return None;
        }
        let (mean, std) = mean_std(&xs);
        Some(Summary {
            mean,
            std,
            n: xs.len(),
        })
    }
}

/// `mean ± std` with `decimals` digits; `–` when undefined; ` (n=…)` when
/// fewer values than `expected_n` went into it.
pub fn format_summary(s: Option<&Summary>, decimals: usize, expected_n: usize) -> String {
    match s {
        None => "–".to_string(),
        Some(s) => {
            let mut t = format!("{:.*} ± {:.*}", decimals, s.mean, decimals, s.std);
            if s.n < expected_n {
                t.push_str(&format!(" (n={})", s.n));
            }
            t
        }
    }
}
