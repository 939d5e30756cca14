//! The persisted approximate index of the server: HNSW from
//! [usearch](https://github.com/unum-cloud/usearch) (inner product on the
//! unit-norm item vectors), with the search-time `ef` and filtered search
//! (a user's seen items are skipped inside the graph walk, so one user's
//! long history does not widen every search) that the in-memory
//! instant-distance index lacks, and save/load, so a run's index is built
//! once (`twotower index --run DIR`) and loaded by `serve`.
//!
//! # Identical vectors are indexed once
//! Items with the same features and no trained id (cold items, items new
//! since training) have bit-identical vectors; a 1M-item synthetic catalog
//! had 456k items in 60k such groups (up to 261 copies). HNSW degrades on
//! duplicates: a node's neighbour list fills with its copies at distance
//! 0, the copies form islands, and a wider search cannot reach past them
//! (recall@10 0.71 at ef 128 and at ef 512 with every copy indexed).
//! So the graph holds one node per distinct vector, keyed by its first
//! row; a hit expands to the group's rows in id-rank order, and a group
//! whose rows are all excluded is skipped inside the graph walk. The
//! groups are recomputed from the catalog's vectors at load (deterministic),
//! so the file holds only the graph.
//!
//! # The graph holds centred vectors
//! A two-tower model's item vectors share a large common component (on the
//! 1M catalog the mean item vector has norm 0.92) and its user vectors
//! point elsewhere (cosine 0.21 between the two means): the queries are
//! out of the items' distribution, which HNSW serves badly (Jaiswal et al.
//! 2022, OOD-DiskANN; recall@10 0.60 at ef 128 on 200k of those items,
//! 0.68 at ef 2048, while item-like queries got 0.9997). Ranking by
//! `⟨q, v⟩` equals ranking by `⟨q, v − m⟩` for any fixed `m` (the
//! difference `⟨q, m⟩` is the same for every item), so the graph indexes
//! `v − m` with `m` the mean item vector and adds `⟨q, m⟩` back to each
//! score: exact scores, the same order, and recall@10 0.98 at ef 128 on
//! the same data. `m` is recomputed from the catalog at load.
//!
//! Scores are the inner product `⟨q, v⟩` (usearch's `ip` distance is
//! `1 − ⟨q, v − m⟩`); ties are broken by the catalog's id rank as in the
//! exact index. [`UsearchIndex::build`] adds items from all threads, so two
//! builds of the same vectors may differ in their graph: the recall@k
//! against exact top-k is measured and reported on every build;
//! [`UsearchIndex::build_in_order`] adds them in row order on one thread,
//! one graph for given vectors (the evaluation's, for reproducible figures).

use std::path::Path;

use crate::index::{check_finite, check_query, check_rank, IndexError, VectorIndex};
use ndarray::ArrayView2;
use rayon::prelude::*;
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
    groups: Groups,
    /// `m`, the mean item vector subtracted before indexing (`[dim]`).
    mean: Vec<f32>,
}

/// The mean row of `vectors` (summed in f64, in row order: deterministic).
fn mean_row(vectors: ArrayView2<f32>) -> Vec<f32> {
    let (n, d) = vectors.dim();
    let mut acc = vec![0f64; d];
    for row in vectors.rows() {
        for (a, &x) in acc.iter_mut().zip(row) {
            *a += f64::from(x);
        }
    }
    acc.iter().map(|&a| (a / n.max(1) as f64) as f32).collect()
}

fn centred(row: ndarray::ArrayView1<f32>, mean: &[f32]) -> Vec<f32> {
    row.iter().zip(mean).map(|(&x, &m)| x - m).collect()
}

/// Rows with bit-identical vectors.
///
/// # Shapes
/// `of_row`: `[n_rows]` → group; `offsets`: `[n_groups + 1]`; `rows`:
/// `[n_rows]`, group g's rows `rows[offsets[g]..offsets[g+1]]` in id-rank
/// order; `key`: `[n_groups]`, the group's first row (its key in the graph).
struct Groups {
    of_row: Vec<u32>,
    offsets: Vec<u32>,
    rows: Vec<u32>,
    key: Vec<u32>,
}

impl Groups {
    fn of(vectors: ArrayView2<f32>, tie_rank: &[u32]) -> Self {
        let n = vectors.nrows();
        let mut first: std::collections::HashMap<Vec<u32>, u32> =
            std::collections::HashMap::with_capacity(n);
        let mut of_row = Vec::with_capacity(n);
        let mut key = Vec::new();
        for (i, row) in vectors.rows().into_iter().enumerate() {
            let bits: Vec<u32> = row.iter().map(|x| x.to_bits()).collect();
            let g = *first.entry(bits).or_insert_with(|| {
                key.push(i as u32);
                (key.len() - 1) as u32
            });
            of_row.push(g);
        }
        let n_groups = key.len();
        let mut offsets = vec![0u32; n_groups + 1];
        for &g in &of_row {
            offsets[g as usize + 1] += 1;
        }
        for g in 0..n_groups {
            offsets[g + 1] += offsets[g];
        }
        let mut fill = offsets.clone();
        let mut rows = vec![0u32; n];
        for (i, &g) in of_row.iter().enumerate() {
            rows[fill[g as usize] as usize] = i as u32;
            fill[g as usize] += 1;
        }
        for g in 0..n_groups {
            rows[offsets[g] as usize..offsets[g + 1] as usize]
                .sort_unstable_by_key(|&r| tie_rank[r as usize]);
        }
        Self {
            of_row,
            offsets,
            rows,
            key,
        }
    }

    fn len(&self) -> usize {
        self.key.len()
    }

    fn rows(&self, g: u32) -> &[u32] {
        &self.rows[self.offsets[g as usize] as usize..self.offsets[g as usize + 1] as usize]
    }
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
        Self::build_with(vectors, tie_rank, cfg, true)
    }

    /// [`Self::build`] adding the nodes one at a time in row order on the
    /// calling thread: the same vectors give the same graph, so the same
    /// search results (the parallel build's graph depends on the threads'
    /// interleaving, and a node it leaves unreachable differs from build to
    /// build). The evaluation (`eval.retrieval = "hnsw"`) builds this way so
    /// that its approximate metrics are reproducible; it takes about
    /// `threads` times as long as [`Self::build`].
    ///
    /// # Errors
    /// As [`Self::build`].
    pub fn build_in_order(
        vectors: ArrayView2<f32>,
        tie_rank: Vec<u32>,
        cfg: &AnnConfig,
    ) -> Result<Self, AnnError> {
        Self::build_with(vectors, tie_rank, cfg, false)
    }

    fn build_with(
        vectors: ArrayView2<f32>,
        tie_rank: Vec<u32>,
        cfg: &AnnConfig,
        parallel: bool,
    ) -> Result<Self, AnnError> {
        let (n, dim) = vectors.dim();
        check_finite(vectors).map_err(invalid)?;
        check_rank(n, &tie_rank).map_err(invalid)?;
        let groups = Groups::of(vectors, &tie_rank);
        let mean = mean_row(vectors);
        let index = Index::new(&options(dim, cfg)).map_err(ue("creating the index"))?;
        index
            .reserve_capacity_and_threads(
                groups.len(),
                MAX_SEARCH_THREADS.max(rayon::current_num_threads()),
            )
            .map_err(ue("reserving the index"))?;
        let add = |&i: &u32| {
            let v = centred(vectors.row(i as usize), &mean);
            index
                .add(u64::from(i), &v)
                .map_err(ue(format!("adding item {i}")))
        };
        if parallel {
            groups.key.par_iter().try_for_each(add)?;
        } else {
            groups.key.iter().try_for_each(add)?;
        }
        Ok(Self {
            index,
            dim,
            len: n,
            tie_rank,
            groups,
            mean,
        })
    }

    /// Distinct vectors, the nodes of the graph.
    pub fn n_distinct(&self) -> usize {
        self.groups.len()
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

    /// Loads an index saved by [`Self::save`] for the catalog whose vectors
    /// are `vectors` (`[n × d]`, those it was built from: their groups of
    /// identical rows are recomputed and must be the graph's keys).
    ///
    /// # Errors
    /// [`AnnError::Usearch`] for an unreadable file or bad vectors,
    /// [`AnnError::Mismatch`] when its size, dimension or keys are not the
    /// catalog's.
    pub fn load(
        path: &Path,
        vectors: ArrayView2<f32>,
        tie_rank: Vec<u32>,
        cfg: &AnnConfig,
    ) -> Result<Self, AnnError> {
        let (len, dim) = vectors.dim();
        check_finite(vectors).map_err(invalid)?;
        check_rank(len, &tie_rank).map_err(invalid)?;
        let groups = Groups::of(vectors, &tie_rank);
        let mean = mean_row(vectors);
        let p = path.to_string_lossy().to_string();
        let index = Index::restore(&p).map_err(ue(format!("loading {p}")))?;
        if index.dimensions() != dim || index.size() != groups.len() {
            return Err(AnnError::Mismatch {
                path: p,
                message: format!(
                    "the index holds {} vectors of dimension {}, the catalog {} distinct vectors ({len} items) of dimension {dim}",
                    index.size(),
                    index.dimensions(),
                    groups.len(),
                ),
            });
        }
        if index.metric_kind() != MetricKind::IP {
            return Err(AnnError::Mismatch {
                path: p,
                message: "the index does not use the inner product".into(),
            });
        }
        // every node must hold its row's centred vector: an index of another
        // model (retrained, same catalog size) or of an older layout is refused
        let stale = groups.key.par_iter().find_first(|&&k| {
            let mut got = vec![0f32; dim];
            let want = centred(vectors.row(k as usize), &mean);
            !matches!(index.get(u64::from(k), &mut got[..]), Ok(1)) || got != want
        });
        if let Some(&k) = stale {
            return Err(AnnError::Mismatch {
                path: p,
                message: format!(
                    "its node for catalog row {k} is missing or holds another vector (an index of another model, or written by an older twotower)"
                ),
            });
        }
        index.change_expansion_search(cfg.expansion_search);
        index
            .reserve_capacity_and_threads(groups.len(), MAX_SEARCH_THREADS)
            .map_err(ue(format!("reserving search threads for {p}")))?;
        Ok(Self {
            index,
            dim,
            len,
            tie_rank,
            groups,
            mean,
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
        // rows excluded per group: a group is skipped when all are
        let mut sorted: Vec<u32> = exclude
            .iter()
            .copied()
            .filter(|&r| (r as usize) < self.len)
            .collect();
        sorted.sort_unstable();
        sorted.dedup();
        let mut gone: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
        for &r in &sorted {
            *gone.entry(self.groups.of_row[r as usize]).or_insert(0) += 1;
        }
        let g = &self.groups;
        let full = |grp: u32| {
            gone.get(&grp)
                .is_some_and(|&c| c as usize == g.rows(grp).len())
        };
        // k groups hold at least k rows; usearch searches with ef = max(expansion_search, k)
        let kg = k.min(g.len());
        let offset: f32 = query.iter().zip(&self.mean).map(|(q, m)| q * m).sum();
        let m = if gone.is_empty() {
            self.index.search(query, kg)
        } else {
            self.index
                .filtered_search(query, kg, |key| !full(g.of_row[key as usize]))
        };
        let m = m.map_err(|e| IndexError::Backend {
            message: e.what().to_string(),
        })?;
        let mut found: Vec<(u32, f32)> = m
            .keys
            .iter()
            .zip(&m.distances)
            .map(|(&key, &d)| (g.of_row[key as usize], (1.0 - d) + offset))
            .collect();
        found.sort_by(|a, b| {
            b.1.total_cmp(&a.1).then(
                self.tie_rank[g.rows(a.0)[0] as usize].cmp(&self.tie_rank[g.rows(b.0)[0] as usize]),
            )
        });
        let mut hits = Vec::with_capacity(k);
        'groups: for (grp, score) in found {
            for &r in g.rows(grp) {
                if hits.len() == k {
                    break 'groups;
                }
                if gone.contains_key(&grp) && sorted.binary_search(&r).is_ok() {
                    continue;
                }
                hits.push((r, score));
            }
        }
        // rows of different groups with equal scores: the tie rank decides
        hits.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then(self.tie_rank[a.0 as usize].cmp(&self.tie_rank[b.0 as usize]))
        });
        Ok(hits)
    }
}
