//! The persisted approximate index of the server: HNSW from
//! [usearch](https://github.com/unum-cloud/usearch) (inner product on the
//! unit-norm item vectors), with the search-time `ef` and filtered search
//! (a user's seen items are skipped inside the graph walk, so one user's
//! long history does not widen every search) that the in-memory
//! instant-distance index lacks, and save/load, so a run's index is built
//! once (`twotower index --run DIR`) and loaded by `serve`.
//!
//! Keys are catalog rows. Scores are the inner product (usearch's `ip`
//! distance is `1 − ⟨q, v⟩`); ties are broken by the catalog's id rank as
//! in the exact index. The build adds items from all threads, so two
//! builds of the same vectors may differ in their graph: the recall@k
//! against exact top-k is measured and reported on every build.

use std::path::Path;

use ndarray::ArrayView2;
use rayon::prelude::*;
use twotower::index::{check_finite, check_query, check_rank, IndexError, VectorIndex};
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

/// Search contexts reserved: usearch locks one per concurrent search, and a
/// search finding none fails; the server's blocking pool is capped below it.
pub const MAX_SEARCH_THREADS: usize = 256;

/// File name of the persisted index in a run directory.
pub const INDEX_FILE: &str = "index.usearch";

/// HNSW parameters.
#[derive(Debug, Clone, Copy)]
pub struct AnnConfig {
    /// Graph degree (M).
    pub connectivity: usize,
    /// Candidate list size while adding (ef_construction).
    pub expansion_add: usize,
    /// Candidate list size while searching (ef), at least `k`.
    pub expansion_search: usize,
}

impl Default for AnnConfig {
    fn default() -> Self {
        Self {
            connectivity: 16,
            expansion_add: 128,
            expansion_search: 128,
        }
    }
}

/// Errors of the persisted index.
#[derive(Debug, thiserror::Error)]
pub enum AnnError {
    /// usearch reported an error.
    #[error("{what}: {message}")]
    Usearch {
        /// The operation (and file).
        what: String,
        /// usearch's message.
        message: String,
    },
    /// A loaded index does not fit the catalog.
    #[error("{path}: {message}; rebuild it with `twotower index --run DIR`")]
    Mismatch {
        /// The index file.
        path: String,
        /// What does not fit.
        message: String,
    },
}

fn ue(what: impl Into<String>) -> impl FnOnce(cxx::Exception) -> AnnError {
    let what = what.into();
    move |e| AnnError::Usearch {
        what,
        message: e.what().to_string(),
    }
}

fn invalid(e: IndexError) -> AnnError {
    AnnError::Usearch {
        what: "checking the vectors".into(),
        message: e.to_string(),
    }
}

/// An HNSW index over catalog rows.
pub struct UsearchIndex {
    index: Index,
    dim: usize,
    len: usize,
    tie_rank: Vec<u32>,
}

fn options(dim: usize, cfg: &AnnConfig) -> IndexOptions {
    IndexOptions {
        dimensions: dim,
        metric: MetricKind::IP,
        quantization: ScalarKind::F32,
        connectivity: cfg.connectivity,
        expansion_add: cfg.expansion_add,
        expansion_search: cfg.expansion_search,
        multi: false,
    }
}

impl UsearchIndex {
    /// Builds the index of `vectors` (`[n × d]`, unit-norm rows), ties
    /// broken by `tie_rank`.
    ///
    /// # Errors
    /// [`AnnError::Usearch`], also for a non-finite vector or a `tie_rank`
    /// that is not a permutation.
    pub fn build(
        vectors: ArrayView2<f32>,
        tie_rank: Vec<u32>,
        cfg: &AnnConfig,
    ) -> Result<Self, AnnError> {
        let (n, dim) = vectors.dim();
        check_finite(vectors).map_err(invalid)?;
        check_rank(n, &tie_rank).map_err(invalid)?;
        let index = Index::new(&options(dim, cfg)).map_err(ue("creating the index"))?;
        index
            .reserve_capacity_and_threads(n, MAX_SEARCH_THREADS.max(rayon::current_num_threads()))
            .map_err(ue("reserving the index"))?;
        (0..n).into_par_iter().try_for_each(|i| {
            let row = vectors.row(i);
            let v: Vec<f32> = row.iter().copied().collect();
            index
                .add(i as u64, &v)
                .map_err(ue(format!("adding item {i}")))
        })?;
        Ok(Self {
            index,
            dim,
            len: n,
            tie_rank,
        })
    }

    /// Saves the index to `path` (written to a temporary file, then renamed).
    ///
    /// # Errors
    /// [`AnnError::Usearch`].
    pub fn save(&self, path: &Path) -> Result<(), AnnError> {
        let tmp = path.with_extension("usearch.tmp");
        let what = format!("saving {}", path.display());
        self.index
            .save(&tmp.to_string_lossy())
            .map_err(ue(what.clone()))?;
        std::fs::rename(&tmp, path).map_err(|e| AnnError::Usearch {
            what,
            message: e.to_string(),
        })
    }

    /// Loads an index saved by [`Self::save`] for a catalog of `len` items
    /// of dimension `dim`.
    ///
    /// # Errors
    /// [`AnnError::Usearch`] for an unreadable file, [`AnnError::Mismatch`]
    /// when its size or dimension is not the catalog's.
    pub fn load(
        path: &Path,
        len: usize,
        dim: usize,
        tie_rank: Vec<u32>,
        cfg: &AnnConfig,
    ) -> Result<Self, AnnError> {
        let p = path.to_string_lossy().to_string();
        let index = Index::restore(&p).map_err(ue(format!("loading {p}")))?;
        if index.dimensions() != dim || index.size() != len {
            return Err(AnnError::Mismatch {
                path: p,
                message: format!(
                    "the index holds {} vectors of dimension {}, the catalog {len} of dimension {dim}",
                    index.size(),
                    index.dimensions()
                ),
            });
        }
        if index.metric_kind() != MetricKind::IP {
            return Err(AnnError::Mismatch {
                path: p,
                message: "the index does not use the inner product".into(),
            });
        }
        index.change_expansion_search(cfg.expansion_search);
        index
            .reserve_capacity_and_threads(len, MAX_SEARCH_THREADS)
            .map_err(ue(format!("reserving search threads for {p}")))?;
        Ok(Self {
            index,
            dim,
            len,
            tie_rank,
        })
    }
}

impl VectorIndex for UsearchIndex {
    fn is_exact(&self) -> bool {
        false
    }

    fn len(&self) -> usize {
        self.len
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        exclude: &[u32],
    ) -> Result<Vec<(u32, f32)>, IndexError> {
        check_query(query, self.dim)?;
        let k = k.min(self.len.saturating_sub(exclude.len().min(self.len)));
        if k == 0 {
            return Ok(Vec::new());
        }
        // usearch searches with ef = max(expansion_search, k)
        let mut sorted: Vec<u32> = exclude.to_vec();
        sorted.sort_unstable();
        let m = if sorted.is_empty() {
            self.index.search(query, k)
        } else {
            self.index
                .filtered_search(query, k, |key| sorted.binary_search(&(key as u32)).is_err())
        };
        let m = m.map_err(|e| IndexError::Backend {
            message: e.what().to_string(),
        })?;
        let mut hits: Vec<(u32, f32)> = m
            .keys
            .iter()
            .zip(&m.distances)
            .map(|(&key, &d)| (key as u32, 1.0 - d))
            .collect();
        hits.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then(self.tie_rank[a.0 as usize].cmp(&self.tie_rank[b.0 as usize]))
        });
        Ok(hits)
    }
}
