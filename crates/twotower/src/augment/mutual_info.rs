//! Mutual information between item features over the catalog — what
//! correlated feature masking (CFM, Yao et al. 2021 §3.3) groups features
//! by — and its text table (`twotower mi`; the heatmap is drawn by
//! `twotower-report`).

use crate::tower::FeatureColumn;

use super::{check_bag, AugmentError};

/// Checks whole columns: same number of items, every bag's offsets valid.
/// Returns n_items.
fn check_columns(columns: &[FeatureColumn]) -> Result<usize, AugmentError> {
    let mut n_items = None;
    for (f, col) in columns.iter().enumerate() {
        if col.offsets.is_empty() {
            return Err(AugmentError::EmptyOffsets { feature: f });
        }
        let n = col.offsets.len() - 1;
        match n_items {
            None => n_items = Some(n),
            Some(n0) if n0 != n => {
                return Err(AugmentError::LengthMismatch {
                    what: "column items (offsets.len() − 1; every column covers the same catalog)",
                    expected: n0,
                    got: n,
                })
            }
            Some(_) => {}
        }
        for e in 0..n {
            check_bag(col, f, e)?;
        }
    }
    Ok(n_items.unwrap_or(0))
}

/// The value multiset of item e's bag, with an empty bag read as the single
/// value 0 ("none", the same id as OOV/missing).
fn bag_or_none<'c>(col: &FeatureColumn<'c>, e: usize) -> &'c [u32] {
    const NONE: &[u32] = &[0];
    let bag = &col.values[col.offsets[e] as usize..col.offsets[e + 1] as usize];
    if bag.is_empty() {
        NONE
    } else {
        bag
    }
}

/// Sorts (key, mass) pairs by key (stable, so sums run in a fixed order) and
/// merges equal keys.
fn merge_sorted<K: Ord + Copy>(v: &mut Vec<(K, f64)>) {
    v.sort_by_key(|a| a.0);
    let mut w = 0;
    for r in 0..v.len() {
        if w > 0 && v[w - 1].0 == v[r].0 {
            v[w - 1].1 += v[r].1;
        } else {
            v[w] = v[r];
            w += 1;
        }
    }
    v.truncate(w);
}

fn lookup(marg: &[(u32, f64)], u: u32) -> f64 {
    marg.binary_search_by_key(&u, |a| a.0)
        .map(|i| marg[i].1)
        .unwrap_or(0.0)
}

/// Mutual information between every pair of item features, in nats:
/// `MI(U,V) = Σ_{u,v} p(u,v) ln(p(u,v) / (p(u) p(v)))`; the diagonal is the
/// entropy `H(U) = −Σ_u p(u) ln p(u)`.
///
/// # The distribution
/// Computed over the catalog's items (all `n_items` of the columns). Each
/// item e carries mass w_e: 1 by default, so every item counts once whatever
/// its popularity (the MI of the features' *catalog* structure, which is what
/// CFM masks per item); or `weights[e]` (per-item click counts: the
/// click-weighted variant, where popular items dominate). For the pair
/// (U, V), item e contributes `w_e / (|bag_U(e)|·|bag_V(e)|)` to each
/// (u, v) ∈ bag_U(e) × bag_V(e) (bags as multisets), so its total mass is w_e
/// and the marginal of U gives each u in the bag `w_e/|bag_U(e)|`; an empty
/// bag counts as the single value 0 ("none"). p = mass / Σ_e w_e. Since
/// p(u,v) is a joint distribution with exactly these marginals, MI ≥ 0
/// (values within rounding of 0 are clamped to 0). Sums run in sorted key
/// order, so the result is bit-for-bit reproducible.
///
/// # Shapes
/// `columns`: k CSR columns over the same n_items items; `weights`: n_items.
/// Returns k×k, symmetric.
///
/// # Errors
/// [`AugmentError::LengthMismatch`] (columns of different item counts, or
/// weights ≠ n_items), [`AugmentError::EmptyOffsets`],
/// [`AugmentError::BadOffsets`], [`AugmentError::ZeroMass`] (no item or all
/// weights 0).
pub fn mutual_information(
    columns: &[FeatureColumn],
    weights: Option<&[u32]>,
) -> Result<Vec<Vec<f64>>, AugmentError> {
    let n = check_columns(columns)?;
    if let Some(w) = weights {
        if w.len() != n {
            return Err(AugmentError::LengthMismatch {
                what: "MI weights (one per catalog item)",
                expected: n,
                got: w.len(),
            });
        }
    }
    let weight = |e: usize| weights.map_or(1.0, |w| w[e] as f64);
    let total: f64 = (0..n).map(weight).sum();
    if total <= 0.0 {
        return Err(AugmentError::ZeroMass);
    }
    let k = columns.len();
    // Marginal masses per feature, sorted by value.
    let marginals: Vec<Vec<(u32, f64)>> = columns
        .iter()
        .map(|col| {
            let mut m = Vec::new();
            for e in 0..n {
                let w = weight(e);
                if w == 0.0 {
                    continue;
                }
                let bag = bag_or_none(col, e);
                let share = w / bag.len() as f64;
                m.extend(bag.iter().map(|&u| (u, share)));
            }
            merge_sorted(&mut m);
            m
        })
        .collect();
    let mut mi = vec![vec![0.0; k]; k];
    for (f, marg) in marginals.iter().enumerate() {
        mi[f][f] = -marg
            .iter()
            .map(|&(_, c)| {
                let p = c / total;
                p * p.ln()
            })
            .sum::<f64>();
        mi[f][f] = mi[f][f].max(0.0);
    }
    let mut joint: Vec<((u32, u32), f64)> = Vec::new();
    for f in 0..k {
        for g in (f + 1)..k {
            joint.clear();
            for e in 0..n {
                let w = weight(e);
                if w == 0.0 {
                    continue;
                }
                let (bu, bv) = (bag_or_none(&columns[f], e), bag_or_none(&columns[g], e));
                let share = w / (bu.len() as f64 * bv.len() as f64);
                for &u in bu {
                    joint.extend(bv.iter().map(|&v| ((u, v), share)));
                }
            }
            merge_sorted(&mut joint);
            let mut s = 0.0;
            for &((u, v), c) in &joint {
                let (cu, cv) = (lookup(&marginals[f], u), lookup(&marginals[g], v));
                s += (c / total) * (c * total / (cu * cv)).ln();
            }
            let s = s.max(0.0);
            mi[f][g] = s;
            mi[g][f] = s;
        }
    }
    Ok(mi)
}

fn label(names: &[String], i: usize) -> String {
    names.get(i).cloned().unwrap_or_else(|| format!("f{i}"))
}

/// The MI matrix as an aligned text table (nats, 4 decimals; the diagonal is
/// the entropy). Rows and columns are labelled by `names` (or `f{i}` where a
/// name is missing); every line has the same width.
pub fn mi_table(names: &[String], mi: &[Vec<f64>]) -> String {
    let k = mi.len();
    let labels: Vec<String> = (0..k).map(|i| label(names, i)).collect();
    let cells: Vec<Vec<String>> = mi
        .iter()
        .map(|row| {
            (0..k)
                .map(|j| row.get(j).map_or("-".into(), |v| format!("{v:.4}")))
                .collect()
        })
        .collect();
    let first = labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0)
        .max(2);
    let width: Vec<usize> = (0..k)
        .map(|j| {
            cells
                .iter()
                .map(|r| r[j].chars().count())
                .chain([labels[j].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut s = format!("{:<first$}", "MI");
    for j in 0..k {
        s.push_str(&format!("  {:>w$}", labels[j], w = width[j]));
    }
    s.push('\n');
    for (i, row) in cells.iter().enumerate() {
        s.push_str(&format!("{:<first$}", labels[i]));
        for j in 0..k {
            s.push_str(&format!("  {:>w$}", row[j], w = width[j]));
        }
        s.push('\n');
    }
    s
}
