//! The input of one tower pass: [`TowerBatch`], one CSR [`BatchFeature`]
//! (embedding-bag offsets, ids, optional mask flags and pooling weights) per
//! feature, gathered for a batch of entities from the [`FeatureColumn`]s a
//! side holds for all its entities.

use crate::embedding::prefetch_row;

/// A CSR column of one feature over *all* entities of a side: entity `e`'s
/// ids are `values[offsets[e]..offsets[e+1]]`.
#[derive(Clone, Copy, Debug)]
pub struct FeatureColumn<'a> {
    /// `n_entities + 1` non-decreasing offsets into `values`.
    pub offsets: &'a [u32],
    /// Table row ids.
    pub values: &'a [u32],
    /// Pooling weight of each value (weighted bags, as
    /// [`BatchFeature::weights`]), or empty (plain mean).
    pub weights: &'a [f32],
}

/// One feature of a batch: CSR bags of the `B` rows plus an optional mask.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchFeature {
    /// `B + 1` offsets into `values`.
    pub offsets: Vec<u32>,
    /// Table row ids of all bags.
    pub values: Vec<u32>,
    /// `B` flags (row's feature masked → default embedding), or empty (nothing masked).
    pub masked: Vec<bool>,
    /// Pooling weight of each value (`values.len()`, weighted mean
    /// [`crate::embedding::weighted_bag_forward`]), or empty (plain mean).
    /// Weighted bags are never masked.
    pub weights: Vec<f32>,
}

/// The input of one tower pass: one [`BatchFeature`] per tower feature, in
/// the order of [`TowerSpec::features`](super::TowerSpec::features).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TowerBatch {
    /// Per-feature bags.
    pub features: Vec<BatchFeature>,
}

impl TowerBatch {
    /// Fills the batch with the bags of `entities` from `columns` (nothing
    /// masked), reusing the buffers.
    ///
    /// # Shapes
    /// `columns`: one per feature; `entities`: `B` entity indices.
    ///
    /// # Panics
    /// If an entity is out of range of a column or a column's offsets point
    /// outside its values (the data layer validates columns when it builds
    /// them), or a batch holds more than `u32::MAX` ids.
    pub fn gather(&mut self, columns: &[FeatureColumn], entities: &[u32]) {
        self.features.truncate(columns.len());
        self.features
            .resize_with(columns.len(), BatchFeature::default);
        for (feat, col) in self.features.iter_mut().zip(columns) {
            feat.offsets.clear();
            feat.values.clear();
            feat.masked.clear();
            feat.weights.clear();
            feat.offsets.push(0);
            for (i, &e) in entities.iter().enumerate() {
                // entities are in random order over possibly huge columns:
                // prefetch the offsets 16 ahead, and the values 4 ahead
                // (whose offsets the first prefetch has brought in)
                if let Some(&far) = entities.get(i + 16) {
                    prefetch_row(col.offsets, far as usize, 2);
                }
                if let Some(&near) = entities.get(i + 4) {
                    let near = near as usize;
                    if near + 1 < col.offsets.len() {
                        let (a, z) = (col.offsets[near] as usize, col.offsets[near + 1] as usize);
                        prefetch_row(col.values, a, z.saturating_sub(a));
                    }
                }
                let e = e as usize;
                assert!(
                    e + 1 < col.offsets.len(),
                    "TowerBatch::gather: entity {e} out of range of a column of {} entities",
                    col.offsets.len().saturating_sub(1)
                );
                let (a, z) = (col.offsets[e] as usize, col.offsets[e + 1] as usize);
                feat.values.extend_from_slice(&col.values[a..z]);
                if !col.weights.is_empty() {
                    feat.weights.extend_from_slice(&col.weights[a..z]);
                }
                feat.offsets
                    .push(u32::try_from(feat.values.len()).expect("batch holds > u32::MAX ids"));
            }
        }
    }

    /// Number of rows `B` (0 for a batch with no features).
    pub fn len(&self) -> usize {
        self.features
            .first()
            .map_or(0, |f| f.offsets.len().saturating_sub(1))
    }

    /// True when the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
