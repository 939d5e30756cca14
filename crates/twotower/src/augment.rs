//! Self-supervised item augmentations (Yao et al. 2021, "Self-supervised
//! Learning for Large-scale Item Recommendations", §3.2–3.3): feature
//! masking (random, complementary = RFM, correlated = CFM), feature dropout,
//! the uniform item sampler of the SSL batch, and the feature mutual
//! information behind CFM (with a text table of it; its heatmaps are drawn
//! by the `twotower-report` crate, so training needs no plotting stack).
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

use rand::distributions::{Bernoulli, Distribution};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::model::SslBatch;
use crate::tower::{BatchFeature, FeatureColumn, TowerBatch};

// The two choices of the `[ssl]` section that the augmenter acts on are
// config enums (so serde checks them); re-exported here under their old paths.
pub use crate::config::{MaskingPattern, SeedScope};

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

/// Number of features masked in view 1 by RFM and CFM when k features are
/// maskable: ⌈k/2⌉ (see the module docs for why not the paper's literal
/// 1 + ⌊k/2⌋). View 2 masks the other ⌊k/2⌋.
pub fn cfm_group_size(k: usize) -> usize {
    k.div_ceil(2)
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
        sample_distinct(n_items, m, rng, out);
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

        // Stage 2: gather with feature dropout (view 1 then view 2, feature
        // by feature, row by row, value by value: a fixed rng order).
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

    /// Draws the masks of one row into `out.view{1,2}.features[f].masked[row]`.
    fn mask_row(&self, row: usize, rng: &mut impl Rng, out: &mut SslBatch) {
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

/// `min(m, n)` distinct uniform draws from `0..n` into `out` (see
/// [`Augmenter::sample_items`]).
fn sample_distinct(n: usize, m: usize, rng: &mut impl Rng, out: &mut Vec<u32>) {
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
