//! Exact top-K of a score vector, the ranking that evaluation and the
//! exact index share: the `k` best items by (score descending, id rank
//! ascending) from a bounded heap, skipping excluded items; a NaN score is
//! an error. [`EvalError`] is the error of this ranking and of the
//! evaluation protocol (`twotower::eval`) built on it.

use std::ops::Range;

/// Errors of top-K ranking and of the evaluation protocol (`twotower::eval`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// The catalog has no item.
    #[error("empty catalog: n_items must be at least 1")]
    EmptyCatalog,
    /// A train or test pair names a user or an item outside the declared range.
    #[error("{split} pair #{index}: {field} {got} is out of range (expected < {expected})")]
    PairOutOfRange {
        /// `"train"` or `"test"`.
        split: &'static str,
        /// Position of the pair in the slice given.
        index: usize,
        /// `"user"` or `"item"`.
        field: &'static str,
        /// The index found.
        got: u32,
        /// The exclusive upper bound (n_users or n_items).
        expected: usize,
    },
    /// `item_id_rank` does not have one entry per item.
    #[error("item_id_rank has {got} entries, expected one per item ({expected})")]
    RankLength {
        /// n_items.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// `item_id_rank` is not a permutation of `0..n_items`.
    #[error("item_id_rank is not a permutation of 0..{n_items}: item {item} has rank {rank}, which is out of range or repeated")]
    RankNotPermutation {
        /// n_items.
        n_items: usize,
        /// The first offending item.
        item: usize,
        /// Its rank.
        rank: u32,
    },
    /// A field of the evaluation config (`twotower::eval::EvalConfig`) is invalid.
    #[error("invalid evaluation config: {field}: {problem}")]
    InvalidConfig {
        /// The field name.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The scorer's catalog size differs from the evaluation set's.
    #[error("scorer scores {got} items, the evaluation set has {expected}")]
    ScorerItems {
        /// n_items of the evaluation set.
        expected: usize,
        /// n_items of the scorer.
        got: usize,
    },
    /// The scorer knows fewer users than the evaluation set has.
    #[error("scorer has vectors for {got} users, the evaluation set has {expected}")]
    ScorerUsers {
        /// n_users of the evaluation set.
        expected: usize,
        /// n_users of the scorer.
        got: usize,
    },
    /// Two matrices that must share their column count do not.
    #[error("dimension mismatch: user vectors have {user_dim} columns, item vectors {item_dim}")]
    DimMismatch {
        /// Columns of the user matrix.
        user_dim: usize,
        /// Columns of the item matrix.
        item_dim: usize,
    },
    /// A score is NaN: the ranking would be meaningless.
    #[error("score of item index {item}{} is NaN: the model's vectors are not finite (a diverged or corrupt model?)", .user.map(|u| format!(" for user index {u}")).unwrap_or_default())]
    NanScore {
        /// The user being ranked, when known.
        user: Option<u32>,
        /// The item whose score is NaN.
        item: u32,
    },
    /// The score slice does not have one score per item.
    #[error("scores has {got} entries, expected one per item ({expected})")]
    ScoresLength {
        /// item_id_rank.len().
        expected: usize,
        /// scores.len().
        got: usize,
    },
    /// An approximate index failed to rank a user's candidates
    /// (`eval.retrieval = "hnsw"`).
    #[error("the approximate index failed for user index {user}: {message}")]
    Index {
        /// The user being ranked.
        user: u32,
        /// The index's message.
        message: String,
    },
    /// The exclusion list must be sorted ascending.
    #[error("exclude list is not sorted ascending at position {position}")]
    ExcludeNotSorted {
        /// First position `i` with `exclude[i] < exclude[i - 1]`.
        position: usize,
    },
}

/// One candidate in a top-K heap.
#[derive(Debug, Clone, Copy)]
struct Entry {
    score: f32,
    rank: u32,
    item: u32,
}

/// `a` ranks strictly before `b`: higher score, then lower id rank.
#[inline(always)]
fn better(a: &Entry, b: &Entry) -> bool {
    a.score > b.score || (a.score == b.score && a.rank < b.rank)
}

/// Bounded heap keeping the `k` best entries by (score desc, id rank asc);
/// `heap[0]` is the worst kept. [`top_k`] ranks one score vector with it;
/// evaluation keeps one per user across item tiles.
#[derive(Debug)]
pub struct TopK {
    k: usize,
    heap: Vec<Entry>,
}

impl TopK {
    /// An empty heap keeping at most `k` entries.
    #[inline]
    pub fn new(k: usize) -> Self {
        Self {
            k,
            heap: Vec::with_capacity(k),
        }
    }

    #[inline]
    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let l = 2 * i + 1;
            if l >= n {
                break;
            }
            let r = l + 1;
            // the worse child
            let c = if r < n && better(&self.heap[l], &self.heap[r]) {
                r
            } else {
                l
            };
            if better(&self.heap[i], &self.heap[c]) {
                self.heap.swap(i, c);
                i = c;
            } else {
                break;
            }
        }
    }

    #[inline]
    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let p = (i - 1) / 2;
            if better(&self.heap[p], &self.heap[i]) {
                self.heap.swap(p, i);
                i = p;
            } else {
                break;
            }
        }
    }

    /// Offers the items `base + j` for `j` in `range` with scores `scores[j]`.
    /// Returns `Err(item)` on a NaN score.
    #[inline]
    // `!(x < thr)` is deliberate: one compare that is also true for NaN.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    fn scan(
        &mut self,
        scores: &[f32],
        range: Range<usize>,
        base: usize,
        ranks: &[u32],
    ) -> Result<(), u32> {
        if self.k == 0 {
            return Ok(());
        }
        let mut thr = if self.heap.len() == self.k {
            self.heap[0].score
        } else {
            f32::NEG_INFINITY
        };
        // Fast path, W scores at a time: a branch-free "does any lane reach
        // the threshold (or is NaN)?" that the compiler vectorizes; only
        // such chunks go through the heap, one score at a time.
        const W: usize = 16;
        let (start, end) = (range.start, range.end);
        let mut j = start;
        while j + W <= end {
            let chunk = &scores[j..j + W];
            let mut hit = false;
            for &x in chunk {
                hit |= !(x < thr);
            }
            if hit {
                for (c, &sc) in chunk.iter().enumerate() {
                    self.offer(sc, base + j + c, ranks, &mut thr)?;
                }
            }
            j += W;
        }
        for (c, &sc) in scores[j..end].iter().enumerate() {
            self.offer(sc, base + j + c, ranks, &mut thr)?;
        }
        Ok(())
    }

    /// Offers one score; `thr` is the worst kept score once the heap is full.
    #[inline(always)]
    fn offer(&mut self, sc: f32, item: usize, ranks: &[u32], thr: &mut f32) -> Result<(), u32> {
        // Strictly below the worst kept score (false for NaN).
        if sc < *thr {
            return Ok(());
        }
        if sc.is_nan() {
            return Err(item as u32);
        }
        let e = Entry {
            score: sc,
            rank: ranks[item],
            item: item as u32,
        };
        if self.heap.len() < self.k {
            self.heap.push(e);
            let last = self.heap.len() - 1;
            self.sift_up(last);
            if self.heap.len() == self.k {
                *thr = self.heap[0].score;
            }
        } else if better(&e, &self.heap[0]) {
            self.heap[0] = e;
            self.sift_down(0);
            *thr = self.heap[0].score;
        }
        Ok(())
    }

    /// Offers `scores[0..len]` (items `base..base + len`) minus the sorted
    /// `exclude` items (only those inside the range matter); `ranks` is the
    /// id rank of every item.
    ///
    /// # Errors
    /// `Err(item)` on a NaN score.
    #[inline]
    pub fn scan_excluding(
        &mut self,
        scores: &[f32],
        base: usize,
        exclude: &[u32],
        ranks: &[u32],
    ) -> Result<(), u32> {
        let len = scores.len();
        let mut start = 0usize;
        for &e in exclude {
            let e = e as usize;
            if e < base + start {
                continue;
            }
            if e >= base + len {
                break;
            }
            let end = e - base;
            if end > start {
                self.scan(scores, start..end, base, ranks)?;
            }
            start = end + 1;
        }
        if len > start {
            self.scan(scores, start..len, base, ranks)?;
        }
        Ok(())
    }

    /// Writes the kept entries best-first into `out` and empties the heap.
    #[inline]
    pub fn drain_sorted(&mut self, out: &mut Vec<(u32, f32)>) {
        self.heap.sort_unstable_by(|a, b| {
            if better(a, b) {
                std::cmp::Ordering::Less
            } else if better(b, a) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        });
        out.clear();
        out.extend(self.heap.iter().map(|e| (e.item, e.score)));
        self.heap.clear();
    }
}

/// Exact top-K of one score vector: the `k` best items by (score desc,
/// `item_id_rank` asc), skipping `exclude`, best first, written into `out`
/// as (item, score). Fewer than `k` when fewer candidates remain. A bounded
/// heap: O(n log k) worst case, O(n) when few items beat the current K-th.
///
/// # Shapes
/// `scores`, `item_id_rank`: `[n_items]`; `exclude`: sorted ascending item
/// indices (duplicates and indices ≥ n_items are ignored).
///
/// # Errors
/// [`EvalError::ScoresLength`], [`EvalError::ExcludeNotSorted`],
/// [`EvalError::NanScore`] (scores of ±∞ are ranked normally).
pub fn top_k(
    scores: &[f32],
    k: usize,
    exclude: &[u32],
    item_id_rank: &[u32],
    out: &mut Vec<(u32, f32)>,
) -> Result<(), EvalError> {
    if scores.len() != item_id_rank.len() {
        return Err(EvalError::ScoresLength {
            expected: item_id_rank.len(),
            got: scores.len(),
        });
    }
    if let Some(p) = (1..exclude.len()).find(|&p| exclude[p] < exclude[p - 1]) {
        return Err(EvalError::ExcludeNotSorted { position: p });
    }
    let mut heap = TopK::new(k.min(scores.len()));
    heap.scan_excluding(scores, 0, exclude, item_id_rank)
        .map_err(|item| EvalError::NanScore { user: None, item })?;
    heap.drain_sorted(out);
    Ok(())
}
