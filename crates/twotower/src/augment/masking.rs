//! Stage 1 of the SSL views: which features each view masks, per row —
//! random (each feature with probability `mask_rate`, per view), complementary
//! (RFM: a uniform split of the maskable features, ⌈k/2⌉ to view 1),
//! correlated (CFM: a seed feature and its most mutually informative
//! partners to view 1, the rest to view 2; Yao et al. 2021, §3.3) and
//! cold-start (view 1 = the item without its id). See the [module
//! docs](super) for the group sizes.

use rand::distributions::Distribution;
use rand::Rng;

use crate::model::SslBatch;

use super::{Augmenter, MaskingPattern};

/// Number of features masked in view 1 by RFM and CFM when k features are
/// maskable: ⌈k/2⌉ (see the module docs for why not the paper's literal
/// 1 + ⌊k/2⌋). View 2 masks the other ⌊k/2⌋.
pub fn cfm_group_size(k: usize) -> usize {
    k.div_ceil(2)
}

impl Augmenter {
    /// Draws the masks of one row into `out.view{1,2}.features[f].masked[row]`.
    pub(super) fn mask_row(&self, row: usize, rng: &mut impl Rng, out: &mut SslBatch) {
        match self.config.pattern {
            MaskingPattern::Random => {
                if self.config.mask_rate > 0.0 {
                    for view in [&mut out.view1, &mut out.view2] {
                        for &f in &self.maskable {
                            view.features[f].masked[row] = self.mask_dist.sample(rng);
                        }
                    }
                }
            }
            MaskingPattern::Complementary => {
                // Selection sampling (Knuth's algorithm S): a uniformly random
                // subset of size ⌈k/2⌉ for view 1, without a scratch buffer.
                let mut remaining = self.maskable.len();
                let mut need = cfm_group_size(remaining);
                for &f in &self.maskable {
                    if rng.gen_range(0..remaining) < need {
                        out.view1.features[f].masked[row] = true;
                        need -= 1;
                    } else {
                        out.view2.features[f].masked[row] = true;
                    }
                    remaining -= 1;
                }
            }
            MaskingPattern::ColdStart => {
                // no draw: view 1 = the id features masked, view 2 = nothing
                for &f in &self.groups[0] {
                    out.view1.features[f].masked[row] = true;
                }
            }
            MaskingPattern::Correlated => {
                let s = rng.gen_range(0..self.groups.len());
                for &f in &self.groups[s] {
                    out.view1.features[f].masked[row] = true;
                }
                for &f in &self.complements[s] {
                    out.view2.features[f].masked[row] = true;
                }
            }
        }
    }
}

/// CFM groups: for each seed feature s (k = `mi.len()`), the seed followed by
/// the [`cfm_group_size`]`(k) − 1` = ⌈k/2⌉ − 1 other features with the highest
/// `mi[s][·]`, in decreasing MI, ties by lower index. Group size ⌈k/2⌉ (see
/// the module docs for why not the paper's literal 1 + ⌊k/2⌋).
///
/// Total on any input: NaN sorts as larger than every number (`total_cmp`),
/// a missing cell as −∞; [`Augmenter::new`] rejects such matrices first.
pub fn correlated_groups(mi: &[Vec<f64>]) -> Vec<Vec<usize>> {
    let k = mi.len();
    let extra = cfm_group_size(k).saturating_sub(1);
    (0..k)
        .map(|s| {
            let cell = |j: usize| mi[s].get(j).copied().unwrap_or(f64::NEG_INFINITY);
            let mut others: Vec<usize> = (0..k).filter(|&j| j != s).collect();
            others.sort_by(|&a, &b| cell(b).total_cmp(&cell(a)).then(a.cmp(&b)));
            let mut group = vec![s];
            group.extend(others.into_iter().take(extra));
            group
        })
        .collect()
}
