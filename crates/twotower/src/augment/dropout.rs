//! Stage 2 of the SSL views: each view's bags gathered from the catalog's
//! columns, with a masked feature as *unknown* (row 0 of a single-valued
//! feature, an empty bag of a multi-valued one — what a missing or
//! out-of-vocabulary value is) or as an empty flagged bag (the mask
//! embedding), and feature dropout: every value of a multi-valued feature
//! of an unmasked row dropped with probability `dropout_rate`, in each view
//! independently (Yao et al. 2021, §3.2).

use rand::distributions::Distribution;
use rand::Rng;

use crate::model::SslBatch;
use crate::tower::FeatureColumn;

use super::{AugmentError, Augmenter};

impl Augmenter {
    /// Fills both views' bags of `items` from `columns`, given the masks
    /// stage 1 drew (view 1 then view 2, feature by feature, row by row,
    /// value by value: a fixed rng order).
    pub(super) fn gather_views(
        &self,
        columns: &[FeatureColumn],
        items: &[u32],
        rng: &mut impl Rng,
        out: &mut SslBatch,
    ) -> Result<(), AugmentError> {
        let q_active = self.config.dropout_rate > 0.0;
        for view in [&mut out.view1, &mut out.view2] {
            for (f, (feat, col)) in view.features.iter_mut().zip(columns).enumerate() {
                let drop = q_active && self.is_multi[f];
                feat.offsets.clear();
                feat.values.clear();
                // Room for every bag unmasked and undropped, so that varying
                // masks never grow the buffer twice for the same items.
                let full: usize = items
                    .iter()
                    .map(|&e| (col.offsets[e as usize + 1] - col.offsets[e as usize]) as usize)
                    .sum();
                feat.values.reserve(full);
                feat.offsets.push(0);
                let unknown = self.config.mask_as_unknown;
                let single = !self.is_multi[f];
                for (row, &item) in items.iter().enumerate() {
                    if unknown && feat.masked[row] {
                        // masked = unknown: row 0 of a single-valued
                        // feature, an empty bag of a multi-valued one
                        if single {
                            feat.values.push(0);
                        }
                    } else if !feat.masked[row] {
                        let e = item as usize;
                        let bag = &col.values[col.offsets[e] as usize..col.offsets[e + 1] as usize];
                        if drop {
                            for &v in bag {
                                if !self.drop_dist.sample(rng) {
                                    feat.values.push(v);
                                }
                            }
                        } else {
                            feat.values.extend_from_slice(bag);
                        }
                    }
                    let end = u32::try_from(feat.values.len())
                        .map_err(|_| AugmentError::TooManyValues { feature: f })?;
                    feat.offsets.push(end);
                }
                if unknown || !feat.masked.contains(&true) {
                    feat.masked.clear();
                }
            }
        }
        Ok(())
    }
}
