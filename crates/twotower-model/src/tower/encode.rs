//! Inference: [`Tower::encode`], the output vectors of any number of
//! entities, computed in blocks of 4096 rows in parallel (rayon),
//! each block with its own batch and activation buffers.

use ndarray::Array2;
use rayon::prelude::*;

use crate::embedding::EmbeddingTable;
use crate::real::Real;

use super::{FeatureColumn, Tower, TowerBatch, TowerCache};

/// Inference block size of [`Tower::encode`].
const ENCODE_BLOCK: usize = 4096;

impl<F: Real> Tower<F> {
    /// Inference: the output vectors of `entities`, computed in blocks of
    /// 4096, written as f32 into `out` (reshaped to `[entities × out_dim]` if
    /// its shape differs).
    ///
    /// # Shapes
    /// `columns`: one per feature over all entities; `entities`: `N`;
    /// `out`: `[N × out_dim]`, rows unit-norm.
    ///
    /// # Panics
    /// As [`TowerBatch::gather`] and [`Tower::forward`].
    pub fn encode(&self, columns: &[FeatureColumn], entities: &[u32], out: &mut Array2<f32>) {
        self.encode_with(columns, entities, out, None);
    }

    /// [`Tower::encode`] with one feature's table shared from the other tower
    /// (see [`Tower::forward_with`]).
    ///
    /// # Panics
    /// As [`Tower::encode`].
    pub fn encode_with(
        &self,
        columns: &[FeatureColumn],
        entities: &[u32],
        out: &mut Array2<f32>,
        shared: Option<(usize, &EmbeddingTable<F>)>,
    ) {
        let d = self.spec.out_dim;
        if out.dim() != (entities.len(), d) || !out.is_standard_layout() {
            *out = Array2::zeros((entities.len(), d));
        }
        // Blocks are independent: encode them in parallel (rayon), each with
        // its own batch and activation buffers.
        let rows = out
            .as_slice_mut()
            .expect("a fresh or standard-layout output");
        entities
            .par_chunks(ENCODE_BLOCK)
            .zip(rows.par_chunks_mut(ENCODE_BLOCK * d.max(1)))
            .for_each_init(
                || (TowerBatch::default(), TowerCache::new()),
                |(batch, cache), (chunk, dst)| {
                    batch.gather(columns, chunk);
                    self.forward_with(batch, cache, shared);
                    for (a, &v) in dst.iter_mut().zip(cache.output().iter()) {
                        *a = v.as_f32();
                    }
                },
            );
    }
}
