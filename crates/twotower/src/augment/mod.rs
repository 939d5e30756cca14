//! Self-supervised item augmentations (Yao et al. 2021, "Self-supervised
//! Learning for Large-scale Item Recommendations", §3.2–3.3): feature
//! masking (random, complementary = RFM, correlated = CFM), feature dropout,
//! the uniform item sampler of the SSL batch, and the feature mutual
//! information behind CFM (with a text table of it; its heatmaps are drawn
//! by the `twotower-report` crate, so training needs no plotting stack).
//!
//! Modules: `masking` (stage 1: which features each view
//! masks), `dropout` (stage 2: the views' bags, masked features as unknown,
//! feature dropout), `sampler` (the uniform SSL batch), `mutual_info` (the
//! feature MI behind CFM). This file holds the config, the errors and
//! [`Augmenter`], which runs the stages.
//!
//! # The two views
//! [`Augmenter::build_views`] turns m catalog items into two augmented
//! [`TowerBatch`]es in two stages:
//! 1. **masking**: per row, each view gets a set of masked item features
//!    (`BatchFeature::masked`). A masked feature's bag is also left empty, so
//!    even a tower that ignored the flag would pool it to the zero vector and
//!    send no gradient to its embedding rows.
//! 2. **feature dropout**: in each view independently, every value of a
//!    multi-valued feature of an unmasked row is dropped with probability q.
//!    A bag may end up empty (it pools to zero, DESIGN.md).
//!
//! `masked` is empty exactly when no row of that feature is masked in that
//! view (so an augmentation that masks and drops nothing equals the plain
//! batch of [`TowerBatch::gather`], field for field).
//!
//! # CFM group size (a deliberate reading of the paper)
//! The paper (§3.3) draws a seed feature uniformly, takes the n = ⌊k/2⌋
//! features sharing the most mutual information with it, and masks the seed
//! together with those n, the aim being to mask about half of the features.
//! Taken literally (1 + ⌊k/2⌋ masked) this is unbalanced for small even k,
//! and for k = 2 it masks *every* feature in view 1 (every item then gets the
//! same view-1 vector and InfoNCE learns nothing from it). twotower masks
//! **⌈k/2⌉ features in view 1: the seed plus its ⌈k/2⌉ − 1 most-MI
//! partners** ([`cfm_group_size`]), and the other ⌊k/2⌋ in view 2. This is
//! the paper's set for odd k (⌈k/2⌉ = 1 + ⌊k/2⌋) and one fewer for even k;
//! the two views then differ in size by at most one. RFM
//! ([`MaskingPattern::Complementary`]) uses the same sizes, so RFM and CFM
//! differ only in *which* features go together.
//! k here counts the *maskable* features: with
//! [`AugmentConfig::mask_id_feature`] = false the item-id feature(s) are never
//! masked and are left out of the split (and of the CFM ranking).

use rand::distributions::Bernoulli;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::model::SslBatch;
use crate::tower::{BatchFeature, FeatureColumn, TowerBatch};

// The two choices of the `[ssl]` section that the augmenter acts on are
// config enums (so serde checks them); re-exported here under their old paths.
pub use crate::config::{MaskingPattern, SeedScope};

mod dropout;
mod masking;
mod mutual_info;
mod sampler;

pub use masking::{cfm_group_size, correlated_groups};
pub use mutual_info::{mi_table, mutual_information};

/// Augmentation settings (checked by [`Augmenter::new`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AugmentConfig {
    /// Masking pattern. Default: [`MaskingPattern::Correlated`] (the paper's proposal).
    pub pattern: MaskingPattern,
    /// p, the per-feature masking probability of [`MaskingPattern::Random`],
    /// in [0, 1]; unused by the other patterns. Default 0.5.
    pub mask_rate: f64,
    /// q, the feature-dropout probability of each value of a multi-valued
    /// feature, in [0, 1]. Default 0.1.
    pub dropout_rate: f64,
    /// Masking draw per row or per batch. Default: per example.
    pub seed_scope: SeedScope,
    /// Whether the item-id feature(s) may be masked. Default true.
    pub mask_id_feature: bool,
    /// Whether an item-id feature may be chosen as a correlated-masking
    /// partner. Default true (the paper: rank partners by MI alone). The id
    /// determines every item feature, so MI(id, X) = H(X), the largest MI X
    /// can have with anything: with `true` every CFM group pairs its seed
    /// with the id. With `false` an id is never a partner (but still a
    /// seed, whose partners are then the other features), so groups follow
    /// the MI among the content features.
    #[serde(default = "default_true")]
    pub cfm_id_partner: bool,
    /// How a masked feature reaches the tower: `false` (the paper's choice)
    /// as the tower's default mask embedding (zero, or a learned mask
    /// vector); `true` as **unknown**, exactly what a missing or
    /// out-of-vocabulary value is at inference — a single-valued feature
    /// reads row 0 of its table (the out-of-vocabulary / missing row), a
    /// multi-valued one an empty bag. Then SSL trains the path a cold item
    /// takes: its id is out of vocabulary (row 0), its missing features are
    /// row 0 or empty.
    #[serde(default)]
    pub mask_as_unknown: bool,
}

fn default_true() -> bool {
    true
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            pattern: MaskingPattern::Correlated,
            mask_rate: 0.5,
            dropout_rate: 0.1,
            seed_scope: SeedScope::PerExample,
            mask_id_feature: true,
            cfm_id_partner: true,
            mask_as_unknown: false,
        }
    }
}

/// Errors of the augmentations and the mutual information.
#[derive(Debug, thiserror::Error)]
pub enum AugmentError {
    /// A probability outside [0, 1] (or not finite).
    #[error("augment config: {field} must be in [0, 1], got {got}")]
    InvalidRate {
        /// Config field name.
        field: &'static str,
        /// The value given.
        got: f64,
    },
    /// Two lengths that must agree do not.
    #[error("{what}: expected length {expected}, got {got}")]
    LengthMismatch {
        /// What was measured.
        what: &'static str,
        /// The length required.
        expected: usize,
        /// The length found.
        got: usize,
    },
    /// No item features at all.
    #[error("augment: the item tower has no features")]
    NoFeatures,
    /// Cold-start masking without an id feature to mask or without any
    /// other feature to keep.
    #[error("augment: the cold_start pattern needs an item-id feature that may be masked (ssl.mask_id = true) and at least one other item feature")]
    ColdStartNeedsIdAndContent,
    /// Complementary/correlated masking with no maskable feature.
    #[error("augment: pattern {pattern:?} needs at least one maskable feature (mask_id_feature = false and every feature is an id)")]
    NoMaskableFeatures {
        /// The configured pattern.
        pattern: MaskingPattern,
    },
    /// Correlated masking without a mutual-information matrix.
    #[error("augment: the correlated pattern needs the k×k mutual-information matrix")]
    MissingMutualInformation,
    /// A mutual-information cell that is NaN or infinite.
    #[error("mutual information [{row}][{col}] is not finite: {got}")]
    NonFiniteMutualInformation {
        /// Row index.
        row: usize,
        /// Column index.
        col: usize,
        /// The value given.
        got: f64,
    },
    /// A column whose offsets array is empty (it needs n_items + 1 entries).
    #[error("feature {feature}: offsets is empty (needs n_items + 1 entries)")]
    EmptyOffsets {
        /// Item-feature index (column order).
        feature: usize,
    },
    /// A CSR bag whose offsets are decreasing or point past the values.
    #[error("feature {feature}, item {item}: bad offsets {start}..{end} (values has {n_values})")]
    BadOffsets {
        /// Item-feature index (column order).
        feature: usize,
        /// Item (entity) index.
        item: usize,
        /// `offsets[item]`.
        start: u32,
        /// `offsets[item + 1]`.
        end: u32,
        /// Length of the column's values.
        n_values: usize,
    },
    /// An item index outside the catalog.
    #[error("batch row {row}: item {item} out of range for feature {feature} ({n_items} items)")]
    ItemOutOfRange {
        /// Row index.
        row: usize,
        /// The item index given.
        item: u32,
        /// Item-feature index (column order).
        feature: usize,
        /// Items in the column.
        n_items: usize,
    },
    /// A batch too large for u32 offsets.
    #[error("feature {feature}: batch has more than u32::MAX values")]
    TooManyValues {
        /// Item-feature index (column order).
        feature: usize,
    },
    /// Mutual information over a catalog with zero total weight.
    #[error("mutual information: total item weight is zero (empty catalog or all weights 0)")]
    ZeroMass,
}

/// Builds the two augmented views of the SSL batch (see the module docs).
#[derive(Debug, Clone)]
pub struct Augmenter {
    config: AugmentConfig,
    is_multi: Vec<bool>,
    /// Indices of the features that may be masked, ascending.
    maskable: Vec<usize>,
    /// CFM: per seed position in `maskable`, the feature indices masked in view 1.
    groups: Vec<Vec<usize>>,
    /// CFM: per seed position, the feature indices masked in view 2 (maskable \ group).
    complements: Vec<Vec<usize>>,
    mask_dist: Bernoulli,
    drop_dist: Bernoulli,
}
fn check_rate(field: &'static str, got: f64) -> Result<Bernoulli, AugmentError> {
    if !(0.0..=1.0).contains(&got) {
        return Err(AugmentError::InvalidRate { field, got });
    }
    Bernoulli::new(got).map_err(|_| AugmentError::InvalidRate { field, got })
}

impl Augmenter {
    /// Checks the config and precomputes the CFM groups.
    ///
    /// * `is_multi[f]`: feature f is multi-valued (feature dropout applies).
    /// * `is_id[f]`: feature f is an item-id feature (never masked when
    ///   `config.mask_id_feature` is false).
    /// * `mi`: the k×k mutual-information matrix of the item features
    ///   ([`mutual_information`]); required for [`MaskingPattern::Correlated`],
    ///   checked (shape, finiteness) whenever given. The CFM ranking uses it
    ///   restricted to the maskable features.
    ///
    /// # Errors
    /// [`AugmentError::InvalidRate`], [`AugmentError::NoFeatures`],
    /// [`AugmentError::LengthMismatch`] (is_id or mi vs is_multi),
    /// [`AugmentError::MissingMutualInformation`],
    /// [`AugmentError::NonFiniteMutualInformation`],
    /// [`AugmentError::NoMaskableFeatures`],
    /// [`AugmentError::ColdStartNeedsIdAndContent`].
    pub fn new(
        config: AugmentConfig,
        is_multi: Vec<bool>,
        is_id: Vec<bool>,
        mi: Option<&[Vec<f64>]>,
    ) -> Result<Self, AugmentError> {
        let mask_dist = check_rate("mask_rate", config.mask_rate)?;
        let drop_dist = check_rate("dropout_rate", config.dropout_rate)?;
        let k = is_multi.len();
        if k == 0 {
            return Err(AugmentError::NoFeatures);
        }
        if is_id.len() != k {
            return Err(AugmentError::LengthMismatch {
                what: "is_id (one flag per item feature)",
                expected: k,
                got: is_id.len(),
            });
        }
        if let Some(mi) = mi {
            check_mi(mi, k)?;
        }
        let maskable: Vec<usize> = (0..k)
            .filter(|&f| config.mask_id_feature || !is_id[f])
            .collect();
        if maskable.is_empty() && config.pattern != MaskingPattern::Random {
            return Err(AugmentError::NoMaskableFeatures {
                pattern: config.pattern,
            });
        }
        let (mut groups, mut complements) = (Vec::new(), Vec::new());
        if config.pattern == MaskingPattern::ColdStart {
            // one "group": the id features (view 1); view 2 masks nothing
            let ids: Vec<usize> = maskable.iter().copied().filter(|&f| is_id[f]).collect();
            if ids.is_empty() || ids.len() == k {
                return Err(AugmentError::ColdStartNeedsIdAndContent);
            }
            groups.push(ids);
            complements.push(Vec::new());
        }
        if config.pattern == MaskingPattern::Correlated {
            let mi = mi.ok_or(AugmentError::MissingMutualInformation)?;
            let sub: Vec<Vec<f64>> = maskable
                .iter()
                .map(|&a| {
                    maskable
                        .iter()
                        .map(|&b| {
                            if a != b && is_id[b] && !config.cfm_id_partner {
                                f64::NEG_INFINITY // ranked last: never a partner while others remain
                            } else {
                                mi[a][b]
                            }
                        })
                        .collect()
                })
                .collect();
            for g in correlated_groups(&sub) {
                let group: Vec<usize> = g.iter().map(|&i| maskable[i]).collect();
                let comp: Vec<usize> = maskable
                    .iter()
                    .copied()
                    .filter(|f| !group.contains(f))
                    .collect();
                groups.push(group);
                complements.push(comp);
            }
        }
        Ok(Self {
            config,
            is_multi,
            maskable,
            groups,
            complements,
            mask_dist,
            drop_dist,
        })
    }

    /// The checked configuration.
    pub fn config(&self) -> &AugmentConfig {
        &self.config
    }

    /// k, the number of item features.
    pub fn n_features(&self) -> usize {
        self.is_multi.len()
    }

    /// The features that may be masked, ascending.
    pub fn maskable(&self) -> &[usize] {
        &self.maskable
    }

    /// CFM only (else empty): for each maskable seed feature, in the order of
    /// [`Self::maskable`], the feature indices masked in view 1 (seed first,
    /// then by decreasing MI, ties by index).
    pub fn cfm_groups(&self) -> &[Vec<usize>] {
        &self.groups
    }

    /// Samples the SSL batch's items: `min(m, n_items)` **distinct** item
    /// indices drawn uniformly from the whole catalog `0..n_items` (every
    /// subset of that size equally likely, each item's inclusion probability
    /// m/n_items; not by clicks: the paper finds a distribution different
    /// from the main task's critical). Distinct, because a duplicate in the
    /// batch would be its own in-batch negative in InfoNCE.
    ///
    /// `out` is cleared and refilled; it is reused (no allocation once its
    /// capacity suffices: m for small m, n_items when m² > 4·n_items).
    /// Deterministic given the rng. Cost O(min(m², n_items)).
    pub fn sample_items(&self, n_items: usize, m: usize, rng: &mut impl Rng, out: &mut Vec<u32>) {
        sampler::sample_distinct(n_items, m, rng, out);
    }

    /// Builds the two augmented views of `items` (see the module docs).
    ///
    /// # Shapes
    /// `columns`: k item-feature columns over the catalog. `items`: B item
    /// indices. `out.view1`, `out.view2`: k features each, offsets B + 1,
    /// masked B or empty. `out`'s buffers are reused: no allocation once they
    /// are large enough. Deterministic given the rng.
    ///
    /// # Errors
    /// [`AugmentError::LengthMismatch`] (columns ≠ k),
    /// [`AugmentError::ItemOutOfRange`], [`AugmentError::EmptyOffsets`],
    /// [`AugmentError::BadOffsets`] (for the bags touched),
    /// [`AugmentError::TooManyValues`]. On error `out` holds no valid batch.
    pub fn build_views(
        &self,
        columns: &[FeatureColumn],
        items: &[u32],
        rng: &mut impl Rng,
        out: &mut SslBatch,
    ) -> Result<(), AugmentError> {
        let k = self.n_features();
        if columns.len() != k {
            return Err(AugmentError::LengthMismatch {
                what: "columns (one per item feature)",
                expected: k,
                got: columns.len(),
            });
        }
        check_touched(columns, items)?;
        let b = items.len();
        for view in [&mut out.view1, &mut out.view2] {
            size_batch(view, k);
            for feat in &mut view.features {
                feat.masked.clear();
                feat.masked.resize(b, false);
            }
        }

        // Stage 1: masking.
        if b > 0 {
            match self.config.seed_scope {
                SeedScope::PerExample => {
                    for row in 0..b {
                        self.mask_row(row, rng, out);
                    }
                }
                SeedScope::PerBatch => {
                    self.mask_row(0, rng, out);
                    for view in [&mut out.view1, &mut out.view2] {
                        for feat in &mut view.features {
                            let m0 = feat.masked[0];
                            feat.masked.fill(m0);
                        }
                    }
                }
            }
        }
        self.gather_views(columns, items, rng, out)
    }
}

fn size_batch(view: &mut TowerBatch, k: usize) {
    view.features.truncate(k);
    view.features.resize_with(k, BatchFeature::default);
}

/// Checks the bags that a batch touches: item in range, offsets ordered and
/// inside the values.
fn check_touched(columns: &[FeatureColumn], items: &[u32]) -> Result<(), AugmentError> {
    for (f, col) in columns.iter().enumerate() {
        if col.offsets.is_empty() {
            return Err(AugmentError::EmptyOffsets { feature: f });
        }
        let n_items = col.offsets.len() - 1;
        for (row, &item) in items.iter().enumerate() {
            let e = item as usize;
            if e >= n_items {
                return Err(AugmentError::ItemOutOfRange {
                    row,
                    item,
                    feature: f,
                    n_items,
                });
            }
            check_bag(col, f, e)?;
        }
    }
    Ok(())
}

fn check_bag(col: &FeatureColumn, f: usize, e: usize) -> Result<(), AugmentError> {
    let (start, end) = (col.offsets[e], col.offsets[e + 1]);
    if start > end || end as usize > col.values.len() {
        return Err(AugmentError::BadOffsets {
            feature: f,
            item: e,
            start,
            end,
            n_values: col.values.len(),
        });
    }
    Ok(())
}

fn check_mi(mi: &[Vec<f64>], k: usize) -> Result<(), AugmentError> {
    if mi.len() != k {
        return Err(AugmentError::LengthMismatch {
            what: "mutual-information matrix rows (one per item feature)",
            expected: k,
            got: mi.len(),
        });
    }
    for (r, row) in mi.iter().enumerate() {
        if row.len() != k {
            return Err(AugmentError::LengthMismatch {
                what: "mutual-information matrix row",
                expected: k,
                got: row.len(),
            });
        }
        if let Some((c, &v)) = row.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(AugmentError::NonFiniteMutualInformation {
                row: r,
                col: c,
                got: v,
            });
        }
    }
    Ok(())
}
