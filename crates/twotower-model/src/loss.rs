//! Retrieval losses with hand-written gradients (GRADIENTS.md).
//!
//! - [`in_batch_softmax`]: sampled softmax over in-batch candidates plus mixed
//!   negatives, with the logQ sampling-bias correction and accidental-hit
//!   masking (Yi et al. 2019, "Sampling-Bias-Corrected Neural Modeling for
//!   Large Corpus Item Recommendations"; Yang et al. 2020, "Mixed Negative
//!   Sampling").
//! - [`info_nce`] / [`info_nce_symmetric`]: the contrastive loss between two
//!   augmented views of the same items (Yao et al. 2021, "Self-supervised
//!   Learning for Large-scale Item Recommendations").
//!
//! Both share one kernel: scores `S = U Vᵀ / τ` by GEMM, a row-wise stable
//! log-sum-exp, the softmax gradient written in place over `S`, then
//! `dU = dS V / τ` and `dV = dSᵀ U / τ` by GEMM — fused per block of rows so
//! that a block's scores stay in cache, with the rows split over rayon's
//! threads for large batches. All buffers live in a [`SoftmaxWorkspace`].

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::linalg::gemm;

use crate::real::Real;

/// Reusable buffers of the softmax losses; grows to the largest batch seen
/// and never shrinks, so steady-state steps allocate nothing.
#[derive(Clone, Debug, Default)]
pub struct SoftmaxWorkspace<F> {
    core: CoreBuffers<F>,
    /// Gradient buffers of the symmetric InfoNCE's second direction.
    tmp1: Vec<F>,
    tmp2: Vec<F>,
}

/// Buffers of one softmax cross-entropy evaluation.
#[derive(Clone, Debug, Default)]
struct CoreBuffers<F> {
    /// Score / score-gradient matrix, `B × C` (row-major, prefix used).
    scores: Vec<F>,
    /// Per-row weighted losses `w_i ℓ_i`, summed in order (deterministic).
    row_loss: Vec<f64>,
    /// Candidate columns sorted by item id (accidental-hit groups).
    order: Vec<u32>,
    /// Per row: its accidental-hit group as a range of `order`.
    groups: Vec<(u32, u32)>,
    /// Per-thread partial `dV`, `threads × C × d`.
    dv_parts: Vec<F>,
}

impl<F: Real> SoftmaxWorkspace<F> {
    /// An empty workspace.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Extra cells of the main score matrix to mask (set to −∞ before the
/// softmax), one list of columns per row in CSR form: row i masks the columns
/// `cols[offsets[i] .. offsets[i + 1]]`. Used for **false negatives**: in-batch
/// candidates the row's user is known to have interacted with (see
/// [`crate::history::UserHistory`]). The positive column `j = i` is never
/// masked, even if listed.
///
/// # Shapes
/// `offsets`: `B + 1` non-decreasing, starting at 0 and ending at
/// `cols.len()`, or empty (no extra mask); `cols`: column indices `< C`.
#[derive(Clone, Copy, Debug, Default)]
pub struct CellMask<'a> {
    /// Row offsets into `cols`, `B + 1`, or empty for none.
    pub offsets: &'a [u32],
    /// Masked column indices, row after row.
    pub cols: &'a [u32],
}

impl<'a> CellMask<'a> {
    /// No extra mask.
    pub const NONE: CellMask<'static> = CellMask {
        offsets: &[],
        cols: &[],
    };

    /// The columns row `i` masks (empty without a mask).
    fn row(&self, i: usize) -> &'a [u32] {
        if self.offsets.is_empty() {
            &[]
        } else {
            &self.cols[self.offsets[i] as usize..self.offsets[i + 1] as usize]
        }
    }
}

/// Grows `buf` to at least `n` elements (never shrinks) and returns the prefix.
pub(crate) fn ensure_len<F: Copy + Default>(buf: &mut Vec<F>, n: usize) -> &mut [F] {
    if buf.len() < n {
        buf.resize(n, F::default());
    }
    &mut buf[..n]
}

/// Rows below this many score cells are processed on the calling thread.
const PAR_MIN_CELLS: usize = 1 << 15;

/// Rows of one block of the fused kernel: `S_blk` (`ROW_BLOCK × C`) is reused
/// from cache between its GEMM, its softmax and its two gradient GEMMs
/// (measured at B = 1024: 128-row blocks were no faster and made 4× the GEMM
/// calls).
const ROW_BLOCK: usize = 512;

/// What every row block reads.
struct Ctx<'a, F> {
    u: ArrayView2<'a, F>,
    v: ArrayView2<'a, F>,
    log_q: &'a [F],
    weights: &'a [F],
    /// Per row `i < B`: the range of `order` holding the candidates with row
    /// i's item id (accidental hits), or an empty range.
    groups: &'a [(u32, u32)],
    order: &'a [u32],
    /// Extra masked cells (false negatives).
    mask: CellMask<'a>,
    inv_t: F,
    inv_w: f64,
}

/// The shared softmax cross-entropy kernel. Returns `Σ_i w_i ℓ_i / Σ_i w_i`.
///
/// Fused and blocked: the rows are split into one contiguous range per
/// thread (rayon), and each range is processed in blocks of [`ROW_BLOCK`]
/// rows: `S_blk = U_blk Vᵀ/τ`, masking, row softmax → `dS_blk` in place,
/// `dU_blk = dS_blk V/τ`, and `dV_t += dS_blkᵀ U_blk/τ` into the range's own
/// partial `dV`; the partials are summed in range order at the end. Every
/// sum has a fixed order for a given thread count: deterministic.
#[allow(clippy::too_many_arguments)]
fn softmax_xent<F: Real>(
    u: ArrayView2<F>,
    v: ArrayView2<F>,
    item_ids: Option<&[u32]>,
    mask: CellMask<'_>,
    log_q: &[F],
    weights: &[F],
    temperature: F,
    mut du: ArrayViewMut2<F>,
    mut dv: ArrayViewMut2<F>,
    bufs: &mut CoreBuffers<F>,
) -> f64 {
    let CoreBuffers {
        scores,
        row_loss,
        order,
        groups,
        dv_parts,
    } = bufs;
    let (b, d) = u.dim();
    let c = v.nrows();
    assert_eq!(v.ncols(), d, "softmax: u and v widths differ");
    assert!(
        c >= b,
        "softmax: {c} candidates < {b} rows (row i's positive is column i)"
    );
    assert!(b > 0, "softmax: empty batch");
    if let Some(ids) = item_ids {
        assert_eq!(ids.len(), c, "softmax: item_ids len");
    }
    assert!(
        log_q.is_empty() || log_q.len() == c,
        "softmax: log_q len {} != C = {c}",
        log_q.len()
    );
    assert!(
        weights.is_empty() || weights.len() == b,
        "softmax: weights len {} != B = {b}",
        weights.len()
    );
    if !mask.offsets.is_empty() {
        assert_eq!(mask.offsets.len(), b + 1, "softmax: mask offsets len");
        assert_eq!(mask.offsets[0], 0, "softmax: mask offsets[0]");
        assert_eq!(
            mask.offsets[b] as usize,
            mask.cols.len(),
            "softmax: mask offsets end"
        );
        assert!(
            mask.offsets.windows(2).all(|w| w[0] <= w[1]),
            "softmax: mask offsets not sorted"
        );
        assert!(
            mask.cols.iter().all(|&j| (j as usize) < c),
            "softmax: mask column out of range"
        );
    }
    assert_eq!(du.dim(), (b, d), "softmax: du shape");
    assert_eq!(dv.dim(), (c, d), "softmax: dv shape");
    assert!(temperature > F::zero(), "softmax: temperature must be > 0");

    let inv_t = F::one() / temperature;
    let w_sum: f64 = if weights.is_empty() {
        b as f64
    } else {
        weights.iter().map(|w| w.as_f64()).sum()
    };
    assert!(
        w_sum > 0.0 && w_sum.is_finite(),
        "softmax: Σ weights = {w_sum} must be > 0"
    );
    let inv_w = 1.0 / w_sum;

    // Accidental hits: sort the columns by item id; row i (< B) masks every
    // other column of its id's group. O(C log C + Σ group²) instead of O(B·C).
    groups.clear();
    groups.resize(b, (0, 0));
    if let Some(ids) = item_ids {
        order.clear();
        order.extend(0..c as u32);
        order.sort_unstable_by_key(|&j| (ids[j as usize], j));
        let mut g0 = 0;
        while g0 < c {
            let id = ids[order[g0] as usize];
            let mut g1 = g0 + 1;
            while g1 < c && ids[order[g1] as usize] == id {
                g1 += 1;
            }
            if g1 - g0 > 1 {
                for &i in &order[g0..g1] {
                    if (i as usize) < b {
                        groups[i as usize] = (g0 as u32, g1 as u32);
                    }
                }
            }
            g0 = g1;
        }
    }

    let threads = if b * c >= PAR_MIN_CELLS {
        rayon::current_num_threads()
            .min(b.div_ceil(ROW_BLOCK))
            .max(1)
    } else {
        1
    };
    let s_buf = ensure_len(scores, b * c);
    let losses = ensure_len(row_loss, b);
    let parts = ensure_len(dv_parts, threads * c * d);
    let ctx = Ctx {
        u: u.view(),
        v: v.view(),
        log_q,
        weights,
        groups: &groups[..],
        order: &order[..],
        mask,
        inv_t,
        inv_w,
    };
    run_ranges(&ctx, threads, 0, s_buf, losses, du.view_mut(), parts);
    // dV = Σ_t dV_t, in range order
    let n = c * d;
    let dv_s = dv.as_slice_mut();
    match dv_s {
        Some(out) => {
            out.copy_from_slice(&parts[..n]);
            for t in 1..threads {
                for (a, &p) in out.iter_mut().zip(&parts[t * n..(t + 1) * n]) {
                    *a += p;
                }
            }
        }
        None => {
            for (k, a) in dv.iter_mut().enumerate() {
                let mut acc = parts[k];
                for t in 1..threads {
                    acc += parts[t * n + k];
                }
                *a = acc;
            }
        }
    }
    losses.iter().sum::<f64>() * inv_w
}

/// Splits rows `[row0, row0 + losses.len())` into `ranges` contiguous ranges
/// processed in parallel (recursive `rayon::join`, no allocation); range t
/// accumulates its `dV` partial into `parts[t·C·d ..]`.
fn run_ranges<F: Real>(
    ctx: &Ctx<'_, F>,
    ranges: usize,
    row0: usize,
    s: &mut [F],
    losses: &mut [f64],
    du: ArrayViewMut2<F>,
    parts: &mut [F],
) {
    let (c, d) = (ctx.v.nrows(), ctx.v.ncols());
    if ranges <= 1 {
        return run_rows(ctx, row0, s, losses, du, &mut parts[..c * d]);
    }
    let rows = losses.len();
    let left = ranges / 2;
    let mid = rows * left / ranges;
    let (s0, s1) = s.split_at_mut(mid * c);
    let (l0, l1) = losses.split_at_mut(mid);
    let (du0, du1) = du.split_at(ndarray::Axis(0), mid);
    let (p0, p1) = parts.split_at_mut(left * c * d);
    rayon::join(
        || run_ranges(ctx, left, row0, s0, l0, du0, p0),
        || run_ranges(ctx, ranges - left, row0 + mid, s1, l1, du1, p1),
    );
}

/// One thread's rows, block by block (see [`softmax_xent`]).
fn run_rows<F: Real>(
    ctx: &Ctx<'_, F>,
    row0: usize,
    s: &mut [F],
    losses: &mut [f64],
    mut du: ArrayViewMut2<F>,
    part: &mut [F],
) {
    let (c, d) = (ctx.v.nrows(), ctx.v.ncols());
    let rows = losses.len();
    let mut part = ArrayViewMut2::from_shape((c, d), part).expect("dv part shape");
    let mut r = 0;
    while r < rows {
        let n = ROW_BLOCK.min(rows - r);
        let (g0, g1) = (row0 + r, row0 + r + n);
        let u_blk = ctx.u.slice(ndarray::s![g0..g1, ..]);
        let blk = &mut s[r * c..(r + n) * c];
        {
            let mut sv = ArrayViewMut2::from_shape((n, c), &mut *blk).expect("scores block");
            gemm(ctx.inv_t, &u_blk, &ctx.v.t(), F::zero(), &mut sv);
        }
        for (k, row) in blk.chunks_mut(c).enumerate() {
            losses[r + k] = softmax_row(ctx, g0 + k, row);
        }
        let ds = ArrayView2::from_shape((n, c), &*blk).expect("scores block");
        let mut du_blk = du.slice_mut(ndarray::s![r..r + n, ..]);
        gemm(ctx.inv_t, &ds, &ctx.v, F::zero(), &mut du_blk);
        let beta = if r == 0 { F::zero() } else { F::one() };
        gemm(ctx.inv_t, &ds.t(), &u_blk, beta, &mut part);
        r += n;
    }
    if rows == 0 {
        part.fill(F::zero());
    }
}

/// Row `i` of the scores (`row` = `S_i·`, already `u_i·v_j/τ`): accidental-hit
/// masking, logQ correction, stable log-sum-exp; leaves `dS_i·` in place and
/// returns `w_i ℓ_i`.
fn softmax_row<F: Real>(ctx: &Ctx<'_, F>, i: usize, row: &mut [F]) -> f64 {
    let (g0, g1) = ctx.groups[i];
    for &j in &ctx.order[g0 as usize..g1 as usize] {
        if j as usize != i {
            row[j as usize] = F::neg_infinity();
        }
    }
    for &j in ctx.mask.row(i) {
        if j as usize != i {
            row[j as usize] = F::neg_infinity();
        }
    }
    if !ctx.log_q.is_empty() {
        for (s, &lq) in row.iter_mut().zip(ctx.log_q) {
            *s -= lq;
        }
    }
    let pos = row[i];
    let max = F::max_of(row);
    let sum = F::exp_shift_sum(row, max);
    let w = if ctx.weights.is_empty() {
        1.0
    } else {
        ctx.weights[i].as_f64()
    };
    let l = (max - pos).as_f64() + sum.as_f64().ln();
    // dS_ij = (w_i / Σw) (softmax_j − 1[j = i]); masked cells hold exp(−∞) = 0.
    let scale = F::lit(w * ctx.inv_w) / sum;
    for s in row.iter_mut() {
        *s *= scale;
    }
    row[i] -= F::lit(w * ctx.inv_w);
    w * l
}

/// In-batch sampled softmax loss with logQ correction, accidental-hit masking
/// and mixed negatives (Yi et al. 2019; GRADIENTS.md).
///
/// `S_ij = (u_i · v_j)/τ − log p_j`, with `log_q[j] = log p_j` (*not* divided
/// by τ) subtracted from every column, the positive included. With
/// `mask_accidental_hits`, every cell with `item_ids[j] == item_ids[i]` and
/// `j ≠ i` is set to −∞ (this includes a mixed-negative column equal to row
/// i's positive). Every cell listed in `mask` (false negatives: candidates
/// the row's user has interacted with) is set to −∞ too, except the
/// positive. Row i's positive is column i.
/// `ℓ_i = −S_ii + log Σ_j exp(S_ij)` (stable log-sum-exp),
/// `L = Σ_i w_i ℓ_i / Σ_i w_i`.
///
/// Gradients (overwritten, not accumulated): `dS_ij = (w_i/Σw)(softmax(S_i)_j −
/// 1[j=i])`, exactly 0 on masked cells; `du = dS V / τ`, `dv = dSᵀ U / τ`.
///
/// # Shapes
/// `u`: `[B × d]` user vectors; `v`: `[C × d]` candidates, `C ≥ B` (the B
/// positives, then M mixed negatives); `item_ids`: `C` (catalog index of each
/// candidate, only read when masking); `log_q`: `C` or empty (no correction);
/// `weights`: `B` or empty (all 1); `mask`: see [`CellMask`]; `du`: `[B × d]`;
/// `dv`: `[C × d]`.
///
/// # Panics
/// On a shape mismatch, `C < B`, `B = 0`, `temperature ≤ 0`, `Σ w ≤ 0` or a
/// malformed `mask`.
#[allow(clippy::too_many_arguments)]
pub fn in_batch_softmax<F: Real>(
    u: ArrayView2<F>,
    v: ArrayView2<F>,
    item_ids: &[u32],
    log_q: &[F],
    weights: &[F],
    temperature: F,
    mask_accidental_hits: bool,
    mask: CellMask<'_>,
    du: ArrayViewMut2<F>,
    dv: ArrayViewMut2<F>,
    ws: &mut SoftmaxWorkspace<F>,
) -> F {
    let ids = if mask_accidental_hits {
        Some(item_ids)
    } else {
        None
    };
    if !mask_accidental_hits && !item_ids.is_empty() {
        assert_eq!(item_ids.len(), v.nrows(), "in_batch_softmax: item_ids len");
    }
    F::lit(softmax_xent(
        u,
        v,
        ids,
        mask,
        log_q,
        weights,
        temperature,
        du,
        dv,
        &mut ws.core,
    ))
}

/// One-directional InfoNCE between two views (Yao et al. 2021; GRADIENTS.md):
/// `S = Z′ Z″ᵀ / τ`, `L = (1/m) Σ_i (−S_ii + log Σ_j exp(S_ij))` — softmax
/// over the rows of `S` only (view 1 → view 2). Gradients overwritten:
/// `dS = (softmax_rows(S) − I)/m`, `dz1 = dS Z″ / τ`, `dz2 = dSᵀ Z′ / τ`.
///
/// # Shapes
/// `z1`, `z2`, `dz1`, `dz2`: `[m × d]`, `m ≥ 1`.
///
/// # Panics
/// On a shape mismatch, `m = 0` or `temperature ≤ 0`.
pub fn info_nce<F: Real>(
    z1: ArrayView2<F>,
    z2: ArrayView2<F>,
    temperature: F,
    dz1: ArrayViewMut2<F>,
    dz2: ArrayViewMut2<F>,
    ws: &mut SoftmaxWorkspace<F>,
) -> F {
    assert_eq!(z1.dim(), z2.dim(), "info_nce: views differ in shape");
    F::lit(softmax_xent(
        z1,
        z2,
        None,
        CellMask::NONE,
        &[],
        &[],
        temperature,
        dz1,
        dz2,
        &mut ws.core,
    ))
}

/// Symmetric InfoNCE: the mean of the row-wise loss of [`info_nce`] and the
/// same loss over the columns of `S` (view 2 → view 1):
/// `L = ½ [L(Z′, Z″) + L(Z″, Z′)]`, gradients the matching averages
/// (overwritten).
///
/// # Shapes
/// As [`info_nce`].
pub fn info_nce_symmetric<F: Real>(
    z1: ArrayView2<F>,
    z2: ArrayView2<F>,
    temperature: F,
    mut dz1: ArrayViewMut2<F>,
    mut dz2: ArrayViewMut2<F>,
    ws: &mut SoftmaxWorkspace<F>,
) -> F {
    assert_eq!(z1.dim(), z2.dim(), "info_nce: views differ in shape");
    let l1 = softmax_xent(
        z1,
        z2,
        None,
        CellMask::NONE,
        &[],
        &[],
        temperature,
        dz1.view_mut(),
        dz2.view_mut(),
        &mut ws.core,
    );
    let n = z1.len();
    let mut t1 = std::mem::take(&mut ws.tmp1);
    let mut t2 = std::mem::take(&mut ws.tmp2);
    let g2 = ArrayViewMut2::from_shape(z1.dim(), ensure_len(&mut t2, n)).expect("shape");
    let g1 = ArrayViewMut2::from_shape(z1.dim(), ensure_len(&mut t1, n)).expect("shape");
    // Second direction: rows are view 2, columns view 1 (scores Sᵀ).
    let l2 = softmax_xent(
        z2,
        z1,
        None,
        CellMask::NONE,
        &[],
        &[],
        temperature,
        g2,
        g1,
        &mut ws.core,
    );
    let half = F::lit(0.5);
    for (a, &b) in dz1.iter_mut().zip(&t1[..n]) {
        *a = (*a + b) * half;
    }
    for (a, &b) in dz2.iter_mut().zip(&t2[..n]) {
        *a = (*a + b) * half;
    }
    ws.tmp1 = t1;
    ws.tmp2 = t2;
    F::lit(0.5 * (l1 + l2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array2};

    fn run(
        u: &Array2<f64>,
        v: &Array2<f64>,
        ids: &[u32],
        log_q: &[f64],
        w: &[f64],
        t: f64,
        mask: bool,
    ) -> (f64, Array2<f64>, Array2<f64>) {
        let mut du = Array2::zeros(u.dim());
        let mut dv = Array2::zeros(v.dim());
        let mut ws = SoftmaxWorkspace::new();
        let l = in_batch_softmax(
            u.view(),
            v.view(),
            ids,
            log_q,
            w,
            t,
            mask,
            CellMask::NONE,
            du.view_mut(),
            dv.view_mut(),
            &mut ws,
        );
        (l, du, dv)
    }

    /// u = [e1, e2, e1], v = [e1, e2, e2], τ = 1 → S = U Vᵀ =
    /// [[1,0,0],[0,1,1],[1,0,0]], positives on the diagonal (1, 1, 0).
    fn three() -> (Array2<f64>, Array2<f64>) {
        (
            array![[1., 0.], [0., 1.], [1., 0.]],
            array![[1., 0.], [0., 1.], [0., 1.]],
        )
    }

    #[test]
    fn thread_split_matches_one_thread_and_is_deterministic() {
        // large enough to split (B·C ≥ PAR_MIN_CELLS, > ROW_BLOCK rows), with
        // duplicates (accidental hits), logQ, weights and 40 mixed negatives
        let (b, c, d) = (700usize, 740usize, 8usize);
        let f = |i: usize, j: usize, s: usize| (((i * 131 + j * 71 + s) % 97) as f64 / 97.0) - 0.5;
        let u = Array2::from_shape_fn((b, d), |(i, j)| f(i, j, 1));
        let v = Array2::from_shape_fn((c, d), |(i, j)| f(i, j, 2));
        let ids: Vec<u32> = (0..c as u32).map(|j| j % 650).collect();
        let log_q: Vec<f64> = (0..c).map(|j| -3.0 - (j % 5) as f64).collect();
        let w: Vec<f64> = (0..b).map(|i| 0.5 + (i % 3) as f64).collect();
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let three = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let (l1, du1, dv1) = one.install(|| run(&u, &v, &ids, &log_q, &w, 0.2, true));
        let (l3, du3, dv3) = three.install(|| run(&u, &v, &ids, &log_q, &w, 0.2, true));
        assert!((l1 - l3).abs() < 1e-12 * l1.abs(), "{l1} vs {l3}");
        for (a, b) in du1.iter().zip(&du3).chain(dv1.iter().zip(&dv3)) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        // the same thread count gives the same bits
        let (l3b, du3b, dv3b) = three.install(|| run(&u, &v, &ids, &log_q, &w, 0.2, true));
        assert_eq!(l3.to_bits(), l3b.to_bits());
        assert_eq!(du3, du3b);
        assert_eq!(dv3, dv3b);
    }

    #[test]
    fn hand_worked_3x3() {
        // ℓ_0 = −1 + ln(e + 1 + 1)     = −1 + ln 4.718281828 = −1 + 1.551444714 = 0.551444714
        // ℓ_1 = −1 + ln(1 + e + e)     = −1 + ln 6.436563657 = −1 + 1.861994804 = 0.861994804
        // ℓ_2 = −0 + ln(e + 1 + 1)     =                                         1.551444714
        // L = (0.551444714 + 0.861994804 + 1.551444714) / 3 = 2.964884232 / 3 = 0.988294744
        let (u, v) = three();
        let (l, _, _) = run(&u, &v, &[0, 1, 2], &[], &[], 1.0, true);
        assert!((l - 0.988294744).abs() < 1e-8, "{l}");
        // Weights [1, 2, 1]: (0.551444714 + 2·0.861994804 + 1.551444714) / 4 = 3.826879036 / 4 = 0.956719759
        let (l, _, _) = run(&u, &v, &[0, 1, 2], &[], &[1., 2., 1.], 1.0, true);
        assert!((l - 0.956719759).abs() < 1e-8, "{l}");
        // dS row 0 (weights off) = (softmax − e_0)/3 with softmax = [e, 1, 1]/4.718281828
        //   = [0.576116880 − 1, 0.211941560, 0.211941560]/3; du_0 = dS_0 V = [dS_00, dS_01 + dS_02]
        let (_, du, _) = run(&u, &v, &[0, 1, 2], &[], &[], 1.0, true);
        assert!((du[[0, 0]] - (0.576116880 - 1.0) / 3.0).abs() < 1e-8);
        assert!((du[[0, 1]] - 2.0 * 0.211941560 / 3.0).abs() < 1e-8);
    }

    #[test]
    fn accidental_hits_masked_by_hand() {
        // Same batch, items [7, 7, 9]: columns 0 and 1 are the same item.
        // Row 0 drops column 1: ℓ_0 = −1 + ln(e + 1) = −1 + 1.313261687 = 0.313261687
        // Row 1 drops column 0: ℓ_1 = −1 + ln(e + e) = ln 2              = 0.693147181
        // Row 2 (item 9) keeps all: ℓ_2 = 1.551444714
        // L = (0.313261687 + 0.693147181 + 1.551444714)/3 = 2.557853582/3 = 0.852617861
        let (u, v) = three();
        let (l, du, _) = run(&u, &v, &[7, 7, 9], &[], &[], 1.0, true);
        assert!((l - 0.852617861).abs() < 1e-8, "{l}");
        // Without masking the loss is the unmasked 0.988294744.
        let (l2, _, _) = run(&u, &v, &[7, 7, 9], &[], &[], 1.0, false);
        assert!((l2 - 0.988294744).abs() < 1e-8, "{l2}");
        // Masked cell (0,1) gets no gradient: du_0 = (dS_00 v_0 + dS_02 v_2),
        // dS_0 = ([e, 0, 1]/(e+1) − e_0)/3 → du_0 = [e/(e+1) − 1, 1/(e+1)]/3 = [−0.268941421, 0.268941421]/3
        assert!((du[[0, 0]] + 0.268941421 / 3.0).abs() < 1e-8);
        assert!((du[[0, 1]] - 0.268941421 / 3.0).abs() < 1e-8);
    }

    #[test]
    fn false_negatives_masked_by_hand() {
        // The three() batch, distinct items [0, 1, 2] (no accidental hits),
        // S = [[1,0,0],[0,1,1],[1,0,0]].
        // Unmasked: ℓ_0 = −1 + ln(e + 2) = 0.551444714, ℓ_1 = −1 + ln(1 + 2e) =
        // 0.861994804, ℓ_2 = −0 + ln(e + 2) = 1.551444714 → L = 0.988294744.
        // Mask row 1's column 2 (its user also clicked item 2) and row 2's
        // column 0; row 0 lists its own column 0 (never masked):
        // ℓ_1 = −1 + ln(1 + e) = 0.313261687, ℓ_2 = ln(1 + 1) = 0.693147181
        // (both remaining scores 0) → L = (0.551444714 + 0.313261687 +
        // 0.693147181)/3 = 1.557853582/3 = 0.519284527.
        let (u, v) = three();
        let mut du = Array2::zeros((3, 2));
        let mut dv = Array2::zeros((3, 2));
        let offsets = [0u32, 1, 2, 3];
        let cols = [0u32, 2, 0];
        let l = in_batch_softmax(
            u.view(),
            v.view(),
            &[0, 1, 2],
            &[],
            &[],
            1.0,
            true,
            CellMask {
                offsets: &offsets,
                cols: &cols,
            },
            du.view_mut(),
            dv.view_mut(),
            &mut SoftmaxWorkspace::new(),
        );
        assert!((l - 0.519284527).abs() < 1e-8, "{l}");
        let (l0, _, _) = run(&u, &v, &[0, 1, 2], &[], &[], 1.0, true);
        assert!((l0 - 0.988294744).abs() < 1e-8, "{l0}");
        // Masked cells pass no gradient: dv_2 = dS_02 u_0 + dS_12 u_1 + dS_22 u_2
        // with dS_12 = 0: dS_02 = (1/(e+2))/3; row 2 keeps columns 1 and 2 at
        // score 0 → softmax ½ each, dS_22 = (½ − 1)/3; u_0 = u_2 = e1
        // → dv_2 = [(1/(e+2) − ½)/3, 0].
        let e = std::f64::consts::E;
        assert!((dv[[2, 0]] - (1.0 / (e + 2.0) - 0.5) / 3.0).abs() < 1e-12);
        assert!(dv[[2, 1]].abs() < 1e-12, "{}", dv[[2, 1]]);
    }

    #[test]
    fn mixed_negative_equal_to_positive_is_masked() {
        // Add a 4th (mixed-negative) column v_3 = e2 with item 9 = row 2's positive.
        // Row 2 (u = e1): columns [1, 0, 0, masked] → unchanged ℓ_2 = 1.551444714.
        // Row 0 (item 0): [1, 0, 0, 0]: ℓ_0 = −1 + ln(e + 3) = −1 + 1.743668381 = 0.743668381
        // Row 1 (item 1): [0, 1, 1, 1]: ℓ_1 = −1 + ln(1 + 3e) = −1 + 2.214283300 = 1.214283300
        // L = (0.743668381 + 1.214283300 + 1.551444714)/3 = 3.509396395/3 = 1.169798798
        let (u, _) = three();
        let v = array![[1., 0.], [0., 1.], [0., 1.], [0., 1.]];
        let (l, _, dv) = run(&u, &v, &[0, 1, 9, 9], &[], &[], 1.0, true);
        assert!((l - 1.169798798).abs() < 1e-8, "{l}");
        // Column 3 is masked for row 2 only, so rows 0 and 1 put gradient on it:
        // dv_3 = dS_03 u_0 + dS_13 u_1 (+ 0 · u_2): dS_03 = (1/(e+3))/3, dS_13 = (e/(1+3e))/3
        let ds03 = 1.0 / (std::f64::consts::E + 3.0) / 3.0;
        let ds13 = std::f64::consts::E / (1.0 + 3.0 * std::f64::consts::E) / 3.0;
        assert!((dv[[3, 0]] - ds03).abs() < 1e-12 && (dv[[3, 1]] - ds13).abs() < 1e-12);
    }

    #[test]
    fn worked_logq_case_from_gradients_md() {
        // B = 2, all u·v = 0, τ = 1, p = [0.9, 0.1]: S rows = [−ln .9, −ln .1] = [0.1054, 2.3026]
        // P(col 0 | row 0) = (1/.9)/(1/.9 + 1/.1) = 1.1111/11.1111 = 0.1, ℓ_0 = −ln 0.1 = 2.302585
        // P(col 1 | row 1) = 10/11.1111 = 0.9, ℓ_1 = −ln 0.9 = 0.105361; L = 2.407946/2 = 1.203973
        let u = array![[1., 0.], [1., 0.]];
        let v = array![[0., 1.], [0., 1.]];
        let lq = [0.9f64.ln(), 0.1f64.ln()];
        let (l, du, _) = run(&u, &v, &[0, 1], &lq, &[], 1.0, true);
        assert!((l - 1.203973).abs() < 1e-6, "{l}");
        // du_0 = Σ_j dS_0j v_j with dS_0 = ([0.1, 0.9] − [1, 0])/2 = [−0.45, 0.45] → du_0 = [0, 0]
        // (v_0 = v_1), so read P(col 0|row 0) from dv instead: dv_0 = dS_00 u_0 + dS_10 u_1
        // = (0.1 − 1)/2 + 0.1/2 = −0.4 (in coordinate 0).
        assert!(du[[0, 0]].abs() < 1e-12);
        let mut ws = SoftmaxWorkspace::new();
        let (mut du2, mut dv2) = (Array2::zeros((2, 2)), Array2::zeros((2, 2)));
        in_batch_softmax(
            u.view(),
            v.view(),
            &[0, 1],
            &lq,
            &[1.0, 0.0],
            1.0,
            true,
            CellMask::NONE,
            du2.view_mut(),
            dv2.view_mut(),
            &mut ws,
        );
        // Only row 0 weighted: dv_0 = dS_00 u_0 = (P(col0|row0) − 1) = 0.1 − 1 = −0.9
        assert!((dv2[[0, 0]] + 0.9).abs() < 1e-12, "{}", dv2[[0, 0]]);
    }

    #[test]
    fn uniform_logq_leaves_loss_and_grads_unchanged() {
        let (u, v) = three();
        let lq = [(1.0f64 / 3.0).ln(); 3];
        let (l0, du0, dv0) = run(&u, &v, &[0, 1, 2], &[], &[], 0.5, true);
        let (l1, du1, dv1) = run(&u, &v, &[0, 1, 2], &lq, &[], 0.5, true);
        assert!((l0 - l1).abs() < 1e-12);
        assert!((&du0 - &du1).iter().all(|x| x.abs() < 1e-12));
        assert!((&dv0 - &dv1).iter().all(|x| x.abs() < 1e-12));
        // and a non-uniform p does change it
        let (l2, _, _) = run(
            &u,
            &v,
            &[0, 1, 2],
            &[0.5f64.ln(), 0.25f64.ln(), 0.25f64.ln()],
            &[],
            0.5,
            true,
        );
        assert!((l0 - l2).abs() > 1e-3);
    }

    #[test]
    fn info_nce_identical_views_by_hand() {
        // Z = [e1, e2, (e1+e2)/√2], τ = 1, both views equal: S = Z Zᵀ =
        // [[1, 0, c], [0, 1, c], [c, c, 1]], c = 1/√2 = 0.707106781, e^c = 2.028114981
        // ℓ_0 = ℓ_1 = −1 + ln(e + 1 + e^c) = −1 + ln 5.746396810 = −1 + 1.748573017 = 0.748573017
        // ℓ_2 = −1 + ln(2e^c + e) = −1 + ln 6.774511792 = −1 + 1.913167304 = 0.913167304
        // L = (2·0.748573017 + 0.913167304)/3 = 2.410313338/3 = 0.803437779
        let c = std::f64::consts::FRAC_1_SQRT_2;
        let z = array![[1., 0.], [0., 1.], [c, c]];
        let mut ws = SoftmaxWorkspace::new();
        let (mut d1, mut d2) = (Array2::zeros((3, 2)), Array2::zeros((3, 2)));
        let l = info_nce(
            z.view(),
            z.view(),
            1.0,
            d1.view_mut(),
            d2.view_mut(),
            &mut ws,
        );
        let l0 = -1.0 + (std::f64::consts::E + 1.0 + c.exp()).ln();
        let l2 = -1.0 + (2.0 * c.exp() + std::f64::consts::E).ln();
        assert!((l0 - 0.748573017).abs() < 1e-8, "{l0}");
        assert!((l2 - 0.913167304).abs() < 1e-8, "{l2}");
        assert!((l - 0.803437779).abs() < 1e-8, "{l}");
        // S is symmetric for identical views, so the symmetric loss is the same value.
        let ls = info_nce_symmetric(
            z.view(),
            z.view(),
            1.0,
            d1.view_mut(),
            d2.view_mut(),
            &mut ws,
        );
        assert!((ls - l).abs() < 1e-12);
    }

    #[test]
    fn f32_kernel_matches_f64() {
        // The f32 path (fast exp, parallel rows above 2^15 cells) against f64 on
        // a 200 × 260 batch with repeated items, logQ and weights.
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let (b, c, d) = (200, 260, 16);
        let u = Array2::<f64>::from_shape_simple_fn((b, d), || rng.gen_range(-1.0..1.0));
        let v = Array2::<f64>::from_shape_simple_fn((c, d), || rng.gen_range(-1.0..1.0));
        let ids: Vec<u32> = (0..c).map(|_| rng.gen_range(0..150)).collect();
        let lq: Vec<f64> = (0..c).map(|_| rng.gen_range(-9.0..-1.0)).collect();
        let w: Vec<f64> = (0..b).map(|_| rng.gen_range(0.5..2.0)).collect();
        let (l64, du64, dv64) = run(&u, &v, &ids, &lq, &w, 0.2, true);
        let f = |a: &Array2<f64>| a.mapv(|x| x as f32);
        let (mut du, mut dv) = (Array2::<f32>::zeros((b, d)), Array2::<f32>::zeros((c, d)));
        let lq32: Vec<f32> = lq.iter().map(|&x| x as f32).collect();
        let w32: Vec<f32> = w.iter().map(|&x| x as f32).collect();
        let mut ws = SoftmaxWorkspace::new();
        let l32 = in_batch_softmax(
            f(&u).view(),
            f(&v).view(),
            &ids,
            &lq32,
            &w32,
            0.2,
            true,
            CellMask::NONE,
            du.view_mut(),
            dv.view_mut(),
            &mut ws,
        );
        assert!(((l32 as f64) - l64).abs() < 1e-5 * l64, "{l32} vs {l64}");
        let scale = du64.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        for (a, b) in du.iter().zip(du64.iter()) {
            assert!(((*a as f64) - b).abs() < 1e-4 * scale);
        }
        for (a, b) in dv.iter().zip(dv64.iter()) {
            assert!(((*a as f64) - b).abs() < 1e-4 * scale);
        }
    }
}
