//! What ranks the catalog for a user: the [`Scorer`] trait, the model's
//! dot products ([`DotScorer`]) and the most-popular baseline
//! ([`PopularityScorer`]).

use std::ops::Range;

use ndarray::{s, Array2, ArrayView2, ArrayViewMut2};

pub use twotower_model::topk::EvalError;

use super::*;

/// Something that scores (user, item) pairs: a higher score ranks higher.
pub trait Scorer: Sync {
    /// Catalog size the scorer covers (must equal [`EvalSet::n_items`]).
    fn n_items(&self) -> usize;

    /// Number of users the scorer has vectors for, or `None` when any user
    /// index is accepted (e.g. the popularity baseline).
    fn n_users(&self) -> Option<usize> {
        None
    }

    /// Checks the scorer's own invariants before [`evaluate`] uses it
    /// (e.g. matching vector dimensions); the default accepts.
    ///
    /// # Errors
    /// Any [`EvalError`] describing the problem.
    fn check(&self) -> Result<(), EvalError> {
        Ok(())
    }

    /// Scores of the items `items` for each user of `users`.
    ///
    /// # Shapes
    /// `out`: `[users.len() × items.len()]`, row-major; `out[r * items.len() + c]`
    /// is the score of item `items.start + c` for user `users[r]`.
    ///
    /// # Panics
    /// May panic if a user or item is out of range or `out` has the wrong
    /// length ([`evaluate`] checks both before calling).
    fn score_block(&self, users: &[u32], items: Range<usize>, out: &mut [f32]);
}

/// Dot-product scorer: `score(u, i) = ⟨users[u], items[i]⟩` — the cosine when
/// the rows are unit-norm (the towers' output). Scores a block with one GEMM
/// (`ndarray::linalg::general_mat_mul`).
///
/// # Shapes
/// `users`: `[n_users × d]`, `items`: `[n_items × d]` (any strides). The
/// fields are public; [`evaluate`] checks that the two `d` agree
/// ([`Scorer::check`]), and [`DotScorer::new`] checks it up front.
#[derive(Debug, Clone)]
pub struct DotScorer<'a> {
    /// User vectors `[n_users × d]`, row = user index.
    pub users: ArrayView2<'a, f32>,
    /// Item vectors `[n_items × d]`, row = item index.
    pub items: ArrayView2<'a, f32>,
}

impl<'a> DotScorer<'a> {
    /// # Errors
    /// [`EvalError::DimMismatch`] when the column counts differ.
    pub fn new(users: ArrayView2<'a, f32>, items: ArrayView2<'a, f32>) -> Result<Self, EvalError> {
        let s = Self { users, items };
        s.check()?;
        Ok(s)
    }
}

impl Scorer for DotScorer<'_> {
    fn n_items(&self) -> usize {
        self.items.nrows()
    }

    fn n_users(&self) -> Option<usize> {
        Some(self.users.nrows())
    }

    fn check(&self) -> Result<(), EvalError> {
        if self.users.ncols() != self.items.ncols() {
            return Err(EvalError::DimMismatch {
                user_dim: self.users.ncols(),
                item_dim: self.items.ncols(),
            });
        }
        Ok(())
    }

    fn score_block(&self, users: &[u32], items: Range<usize>, out: &mut [f32]) {
        let d = self.users.ncols();
        let mut ub = Array2::<f32>::zeros((users.len(), d));
        for (mut row, &u) in ub.rows_mut().into_iter().zip(users) {
            row.assign(&self.users.row(u as usize));
        }
        let n = items.len();
        let it = self.items.slice(s![items, ..]);
        let mut o = ArrayViewMut2::from_shape((users.len(), n), out)
            .expect("score_block: out must have users.len() * items.len() entries");
        crate::linalg::gemm(1.0, &ub, &it.t(), 0.0, &mut o);
    }
}

/// The most-popular baseline: score(u, i) = train popularity of `i` (the
/// same for every user), so the ranking is popularity desc, id rank asc,
/// minus the user's train items. Counts above 2^24 lose precision in f32.
#[derive(Debug, Clone)]
pub struct PopularityScorer {
    pub(super) scores: Vec<f32>,
}

impl PopularityScorer {
    /// From the evaluation set's train popularity
    /// ([`EvalSet::item_popularity`]).
    pub fn from_set(set: &EvalSet) -> Self {
        Self::new(set.item_popularity())
    }

    /// From per-item train counts, `[n_items]`.
    pub fn new(counts: &[u32]) -> Self {
        Self {
            scores: counts.iter().map(|&c| c as f32).collect(),
        }
    }
}

impl Scorer for PopularityScorer {
    fn n_items(&self) -> usize {
        self.scores.len()
    }

    fn score_block(&self, users: &[u32], items: Range<usize>, out: &mut [f32]) {
        let n = items.len();
        let src = &self.scores[items];
        for r in 0..users.len() {
            out[r * n..(r + 1) * n].copy_from_slice(src);
        }
    }
}
