//! Nearest-neighbour indexes over item (or user) vectors behind one trait:
//! [`ExactIndex`] (brute force, the reference of EVALUATION.md) and
//! [`HnswIndex`] (approximate, HNSW from the `instant-distance` crate).
//!
//! Both rank by the inner product ⟨query, v⟩ — the cosine for the unit
//! vectors the towers output — and return `(row, score)` best first, ties
//! broken by a tie rank (by default the row index; pass the "by item id"
//! rank of EVALUATION.md to match the evaluation's tie rule). An approximate
//! index reports its recall against the exact one with [`ann_recall_at_k`].

use std::sync::Mutex;

use instant_distance::{Builder, Heuristic, Hnsw, Point, Search};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::topk::{top_k, EvalError};

/// Tolerance on `|‖v‖ − 1|` for the vectors of an [`HnswIndex`].
pub const UNIT_NORM_TOL: f32 = 1e-3;

/// Errors of the index module.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IndexError {
    /// The query does not have the index's dimension.
    #[error("query has {got} values, the index has dimension {expected}")]
    QueryDim {
        /// Index dimension.
        expected: usize,
        /// Query length.
        got: usize,
    },
    /// The query contains NaN or ±∞.
    #[error("query value at position {position} is not finite")]
    NonFiniteQuery {
        /// First offending position.
        position: usize,
    },
    /// An indexed vector contains NaN or ±∞.
    #[error("vector {row} has a non-finite value at column {col}")]
    NonFiniteVector {
        /// Row of the vector.
        row: usize,
        /// Column of the first offending value.
        col: usize,
    },
    /// HNSW needs unit vectors (cosine = inner product).
    #[error("vector {row} has L2 norm {norm}; the HNSW index needs unit vectors (|norm - 1| <= {UNIT_NORM_TOL})")]
    NotUnitNorm {
        /// Row of the vector.
        row: usize,
        /// Its norm.
        norm: f32,
    },
    /// `tie_rank` does not have one entry per row.
    #[error("tie_rank has {got} entries, expected one per row ({expected})")]
    RankLength {
        /// Number of rows.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// `tie_rank` is not a permutation of `0..n`.
    #[error("tie_rank is not a permutation: row {row} has rank {rank}, out of range or repeated")]
    RankNotPermutation {
        /// First offending row.
        row: usize,
        /// Its rank.
        rank: u32,
    },
    /// A parameter is out of its domain.
    #[error("invalid {field}: got {got}, expected {expected}")]
    InvalidParam {
        /// Parameter name.
        field: &'static str,
        /// Value given.
        got: String,
        /// Its domain.
        expected: String,
    },
    /// A score came out NaN (e.g. ∞ − ∞ from huge values).
    #[error("score of row {row} is NaN")]
    NanScore {
        /// The row.
        row: u32,
    },
    /// Exact top-K selection rejected its inputs (other than a NaN score,
    /// [`IndexError::NanScore`]).
    #[error(transparent)]
    TopK(EvalError),
    /// The index library behind an implementation failed (its message).
    #[error("index backend: {message}")]
    Backend {
        /// The backend's message.
        message: String,
    },
}

/// A nearest-neighbour index: rows `0..len()` of `dim()`-dimensional vectors.
pub trait VectorIndex: Send + Sync {
    /// Whether results are exact (brute force) rather than approximate.
    fn is_exact(&self) -> bool;

    /// Number of indexed vectors.
    fn len(&self) -> usize;

    /// Whether the index holds no vector.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Vector dimension.
    fn dim(&self) -> usize;

    /// The (at most) `k` rows with the largest ⟨query, v⟩, best first, as
    /// `(row, score)`; ties by tie rank; rows in `exclude` (any order) are
    /// never returned.
    ///
    /// # Shapes
    /// `query`: `[dim]`.
    ///
    /// # Errors
    /// [`IndexError::QueryDim`], [`IndexError::NonFiniteQuery`], and
    /// index-specific ones.
    fn search(
        &self,
        query: &[f32],
        k: usize,
        exclude: &[u32],
    ) -> Result<Vec<(u32, f32)>, IndexError>;
}

/// [`IndexError::NonFiniteVector`] for the first NaN or ±∞ of `vectors`
/// (shared by every index implementation, in or out of this crate).
pub fn check_finite(vectors: ArrayView2<f32>) -> Result<(), IndexError> {
    for (row, v) in vectors.rows().into_iter().enumerate() {
        if let Some(col) = v.iter().position(|x| !x.is_finite()) {
            return Err(IndexError::NonFiniteVector { row, col });
        }
    }
    Ok(())
}

/// [`IndexError::RankLength`] / [`IndexError::RankNotPermutation`] unless
/// `rank` is a permutation of `0..n`.
pub fn check_rank(n: usize, rank: &[u32]) -> Result<(), IndexError> {
    if rank.len() != n {
        return Err(IndexError::RankLength {
            expected: n,
            got: rank.len(),
        });
    }
    let mut seen = vec![false; n];
    for (row, &r) in rank.iter().enumerate() {
        if r as usize >= n || seen[r as usize] {
            return Err(IndexError::RankNotPermutation { row, rank: r });
        }
        seen[r as usize] = true;
    }
    Ok(())
}

/// [`IndexError::QueryDim`] / [`IndexError::NonFiniteQuery`] for a query
/// that is not `dim` finite values.
pub fn check_query(query: &[f32], dim: usize) -> Result<(), IndexError> {
    if query.len() != dim {
        return Err(IndexError::QueryDim {
            expected: dim,
            got: query.len(),
        });
    }
    if let Some(position) = query.iter().position(|x| !x.is_finite()) {
        return Err(IndexError::NonFiniteQuery { position });
    }
    Ok(())
}

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Brute-force index: scores every row (one GEMV over a contiguous
/// `[n × d]` matrix) and keeps the exact top-K with the tie rule of
/// [`crate::topk::top_k`].
#[derive(Debug, Clone)]
pub struct ExactIndex {
    vectors: Array2<f32>,
    tie_rank: Vec<u32>,
}

impl ExactIndex {
    /// Ties broken by row index.
    ///
    /// # Shapes
    /// `vectors`: `[n × d]` (copied into standard layout if needed).
    ///
    /// # Errors
    /// [`IndexError::NonFiniteVector`].
    pub fn new(vectors: Array2<f32>) -> Result<Self, IndexError> {
        let n = vectors.nrows();
        Self::with_tie_rank(vectors, (0..n as u32).collect())
    }

    /// Ties broken by `tie_rank[row]`, lower first (e.g. the item id rank).
    ///
    /// # Errors
    /// [`IndexError::NonFiniteVector`], [`IndexError::RankLength`],
    /// [`IndexError::RankNotPermutation`].
    pub fn with_tie_rank(vectors: Array2<f32>, tie_rank: Vec<u32>) -> Result<Self, IndexError> {
        check_finite(vectors.view())?;
        check_rank(vectors.nrows(), &tie_rank)?;
        let vectors = if vectors.is_standard_layout() {
            vectors
        } else {
            vectors.as_standard_layout().into_owned()
        };
        Ok(Self { vectors, tie_rank })
    }

    /// The indexed vectors `[n × d]`.
    pub fn vectors(&self) -> ArrayView2<'_, f32> {
        self.vectors.view()
    }
}

impl VectorIndex for ExactIndex {
    fn is_exact(&self) -> bool {
        true
    }

    fn len(&self) -> usize {
        self.vectors.nrows()
    }

    fn dim(&self) -> usize {
        self.vectors.ncols()
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        exclude: &[u32],
    ) -> Result<Vec<(u32, f32)>, IndexError> {
        check_query(query, self.dim())?;
        let q = ndarray::ArrayView1::from(query);
        let scores = self.vectors.dot(&q);
        let scores = scores
            .as_slice()
            .expect("dot of a standard-layout matrix is contiguous");
        let mut ex = exclude.to_vec();
        ex.sort_unstable();
        let mut out = Vec::with_capacity(k.min(self.len()));
        top_k(scores, k, &ex, &self.tie_rank, &mut out).map_err(|e| match e {
            EvalError::NanScore { item, .. } => IndexError::NanScore { row: item },
            other => IndexError::TopK(other),
        })?;
        Ok(out)
    }
}

/// Parameters of [`HnswIndex`] (Malkov & Yashunin 2018; M = 32 is fixed by
/// `instant-distance`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HnswConfig {
    /// Candidate list size while inserting (`efConstruction`, default 100).
    pub ef_construction: usize,
    /// Candidate list size while searching (`ef`, default 100). Fixed at
    /// build time by the crate: a search returns at most `ef_search`
    /// candidates before exclusion, so `k` must be ≤ `ef_search` and
    /// `ef_search ≥ k + |exclude|` guarantees `k` results.
    pub ef_search: usize,
    /// Seed of the level assignment.
    pub seed: u64,
    /// Neighbour selection by the paper's heuristic (algorithm 4, with
    /// pruned connections kept) instead of the plain nearest `2M` (default
    /// false). Measured on 5000 random unit vectors in 32-d, ef_construction
    /// 64, ef_search 24, release build, one thread: heuristic 9.1 s build,
    /// recall@10 0.987; plain 1.2 s build, recall@10 0.928 (raise
    /// `ef_search` to recover recall at query time).
    pub heuristic: bool,
    /// Build on one thread so that the graph (and every search result)
    /// depends only on the data and the seed (default true). With `false`
    /// the insertion runs on rayon's pool: faster, not reproducible.
    pub deterministic: bool,
}

impl Default for HnswConfig {
    fn default() -> Self {
        Self {
            ef_construction: 100,
            ef_search: 100,
            seed: 0,
            heuristic: false,
            deterministic: true,
        }
    }
}

/// A vector in the HNSW graph, with its row in the input matrix.
#[derive(Clone)]
struct UnitPoint {
    row: u32,
    v: Box<[f32]>,
}

impl Point for UnitPoint {
    /// Cosine distance of unit vectors: 1 − ⟨a, b⟩.
    fn distance(&self, other: &Self) -> f32 {
        1.0 - dot(&self.v, &other.v)
    }
}

/// Approximate index: an HNSW graph (`instant-distance` 0.6) over unit
/// vectors with the cosine distance `1 − ⟨a, b⟩`. Scores returned are the
/// exact inner products of the candidates found, re-sorted with the tie rank.
pub struct HnswIndex {
    hnsw: Hnsw<UnitPoint>,
    dim: usize,
    len: usize,
    tie_rank: Vec<u32>,
    cfg: HnswConfig,
    pool: Mutex<Vec<Search>>,
}

impl std::fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswIndex")
            .field("len", &self.len)
            .field("dim", &self.dim)
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl HnswIndex {
    /// Builds the graph, ties broken by row index.
    ///
    /// # Shapes
    /// `vectors`: `[n × d]`, unit-norm rows.
    ///
    /// # Errors
    /// [`IndexError::NonFiniteVector`], [`IndexError::NotUnitNorm`],
    /// [`IndexError::InvalidParam`].
    pub fn build(vectors: ArrayView2<f32>, cfg: &HnswConfig) -> Result<Self, IndexError> {
        let n = vectors.nrows();
        Self::build_with_tie_rank(vectors, (0..n as u32).collect(), cfg)
    }

    /// Same as [`build`](Self::build), ties broken by `tie_rank[row]`.
    ///
    /// # Errors
    /// As [`build`](Self::build), plus [`IndexError::RankLength`] and
    /// [`IndexError::RankNotPermutation`].
    pub fn build_with_tie_rank(
        vectors: ArrayView2<f32>,
        tie_rank: Vec<u32>,
        cfg: &HnswConfig,
    ) -> Result<Self, IndexError> {
        for (field, v) in [
            ("ef_construction", cfg.ef_construction),
            ("ef_search", cfg.ef_search),
        ] {
            if v == 0 {
                return Err(IndexError::InvalidParam {
                    field,
                    got: "0".into(),
                    expected: "at least 1".into(),
                });
            }
        }
        if vectors.nrows() >= u32::MAX as usize {
            return Err(IndexError::InvalidParam {
                field: "vectors",
                got: format!("{} rows", vectors.nrows()),
                expected: "fewer than 2^32 - 1 rows".into(),
            });
        }
        check_finite(vectors)?;
        check_rank(vectors.nrows(), &tie_rank)?;
        let mut points = Vec::with_capacity(vectors.nrows());
        for (row, v) in vectors.rows().into_iter().enumerate() {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            if (norm - 1.0).abs() > UNIT_NORM_TOL {
                return Err(IndexError::NotUnitNorm { row, norm });
            }
            points.push(UnitPoint {
                row: row as u32,
                v: v.iter().copied().collect(),
            });
        }
        let builder = Builder::default()
            .ef_construction(cfg.ef_construction)
            .ef_search(cfg.ef_search)
            .seed(cfg.seed)
            .select_heuristic(cfg.heuristic.then(Heuristic::default));
        let hnsw = if cfg.deterministic {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .map_err(|e| IndexError::InvalidParam {
                    field: "deterministic",
                    got: "true".into(),
                    expected: format!("a one-thread pool could be started ({e})"),
                })?;
            pool.install(|| builder.build_hnsw(points).0)
        } else {
            builder.build_hnsw(points).0
        };
        Ok(Self {
            hnsw,
            dim: vectors.ncols(),
            len: vectors.nrows(),
            tie_rank,
            cfg: *cfg,
            pool: Mutex::new(Vec::new()),
        })
    }

    /// The build parameters.
    pub fn config(&self) -> &HnswConfig {
        &self.cfg
    }
}

impl VectorIndex for HnswIndex {
    fn is_exact(&self) -> bool {
        false
    }

    fn len(&self) -> usize {
        self.len
    }

    fn dim(&self) -> usize {
        self.dim
    }

    /// # Errors
    /// Also [`IndexError::InvalidParam`] when `k > ef_search`.
    fn search(
        &self,
        query: &[f32],
        k: usize,
        exclude: &[u32],
    ) -> Result<Vec<(u32, f32)>, IndexError> {
        check_query(query, self.dim)?;
        if k > self.cfg.ef_search {
            return Err(IndexError::InvalidParam {
                field: "k",
                got: k.to_string(),
                expected: format!(
                    "at most ef_search = {} (set at build time)",
                    self.cfg.ef_search
                ),
            });
        }
        if k == 0 || self.len == 0 {
            return Ok(Vec::new());
        }
        let mut ex = exclude.to_vec();
        ex.sort_unstable();
        let q = UnitPoint {
            row: u32::MAX,
            v: query.into(),
        };
        let mut search = self
            .pool
            .lock()
            .map(|mut p| p.pop())
            .unwrap_or(None)
            .unwrap_or_default();
        let mut found: Vec<(u32, f32)> = self
            .hnsw
            .search(&q, &mut search)
            .filter(|it| ex.binary_search(&it.point.row).is_err())
            .map(|it| (it.point.row, dot(query, &it.point.v)))
            .collect();
        if let Ok(mut p) = self.pool.lock() {
            p.push(search);
        }
        if let Some(&(row, _)) = found.iter().find(|(_, s)| s.is_nan()) {
            return Err(IndexError::NanScore { row });
        }
        found.sort_unstable_by(|a, b| {
            b.1.partial_cmp(&a.1)
                .expect("NaN scores rejected above")
                .then(self.tie_rank[a.0 as usize].cmp(&self.tie_rank[b.0 as usize]))
        });
        found.truncate(k);
        Ok(found)
    }
}

/// Score gap under which two inner products count as tied in
/// [`ann_recall_at_k`]: an ANN answer scoring within this of the exact k-th
/// score is as good as any exact answer (f32 rounding of a d ≤ 1024 dot
/// product of unit vectors stays far below it; distinct scores of a trained
/// model are rarely this close).
pub const RECALL_TIE_EPSILON: f32 = 1e-5;

/// Recall of an approximate index against the exact one, ties counted as
/// ann-benchmarks counts them (Aumüller et al. 2020, its `k-nn` metric): for
/// each query, the fraction of the ANN's top-k whose **exact** score
/// `⟨q, v⟩` is at least the exact k-th score minus [`RECALL_TIE_EPSILON`];
/// mean over queries (queries whose exact top-k is empty are skipped).
/// With no tied scores this is |ANN top-k ∩ exact top-k| / |exact top-k|;
/// with ties (e.g. cold items with identical features, hence identical
/// vectors) an equally scored item is not a miss just because the exact
/// index broke the tie by item id. Scores are recomputed from `exact`'s
/// vectors, never taken from the ANN. Queries run in parallel; the sum is
/// taken in query order.
///
/// # Shapes
/// `queries`: `[n_queries × dim]`.
///
/// # Errors
/// [`IndexError::InvalidParam`] when the two indexes differ in size or
/// dimension, or no query has a non-empty exact top-k; any search error.
pub fn ann_recall_at_k(
    ann: &dyn VectorIndex,
    exact: &ExactIndex,
    queries: ArrayView2<f32>,
    k: usize,
) -> Result<f64, IndexError> {
    let bad = |field, got: String, expected: String| {
        Err(IndexError::InvalidParam {
            field,
            got,
            expected,
        })
    };
    if ann.len() != exact.len() || ann.dim() != exact.dim() {
        return bad(
            "ann",
            format!("{} vectors of dimension {}", ann.len(), ann.dim()),
            format!(
                "{} vectors of dimension {} (as the exact index)",
                exact.len(),
                exact.dim()
            ),
        );
    }
    let per_query: Vec<Result<Option<f64>, IndexError>> = (0..queries.nrows())
        .into_par_iter()
        .map(|i| {
            let q: Vec<f32> = queries.row(i).to_vec();
            let truth = exact.search(&q, k, &[])?;
            if truth.is_empty() {
                return Ok(None);
            }
            let got = ann.search(&q, k, &[])?;
            let kth = truth[truth.len() - 1].1;
            let qv = ndarray::ArrayView1::from(&q[..]);
            let hits = got
                .iter()
                .take(truth.len())
                .filter(|(r, _)| {
                    truth.iter().any(|(t, _)| t == r)
                        || ((*r as usize) < exact.len()
                            && exact.vectors.row(*r as usize).dot(&qv) >= kth - RECALL_TIE_EPSILON)
                })
                .count();
            Ok(Some(hits as f64 / truth.len() as f64))
        })
        .collect();
    // First error in query order, independent of scheduling.
    let per_query: Vec<Option<f64>> = per_query.into_iter().collect::<Result<_, _>>()?;
    let vals: Vec<f64> = per_query.into_iter().flatten().collect();
    if vals.is_empty() {
        return bad(
            "queries",
            "no query with a non-empty exact top-k".into(),
            "at least one".into(),
        );
    }
    Ok(vals.iter().sum::<f64>() / vals.len() as f64)
}
