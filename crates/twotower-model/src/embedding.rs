//! Embedding tables, embedding bags (mean pooling) and sparse row gradients.
//!
//! Formulas (GRADIENTS.md, "Embedding bag"): for bag `S_b` of row `b`,
//! `x_b = (1/|S_b|) Σ_{r∈S_b} E[r]` (empty bag → `x_b = 0`); backward
//! `dE[r] += dx_b / |S_b|` for each occurrence of `r` in `S_b`. A masked row
//! (SSL augmentation) takes the default embedding instead — zero, or a learned
//! mask vector that then receives `dx_b` — and the table receives nothing.
//!
//! The backward pass is sparse: a [`SparseGrad`] holds one gradient row per
//! *distinct* table row touched by the batch (repeated rows are summed into
//! one slot), and nothing proportional to the vocabulary is allocated or
//! touched per step.

use ndarray::{ArrayView2, ArrayViewMut2};
use rand::Rng;

use crate::real::Real;

/// A dense embedding table, row-major `[rows × dim]`.
///
/// Row 0 is the out-of-vocabulary / missing-value row by convention of the
/// data layer; it is an ordinary trainable row here.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingTable<F> {
    /// Number of rows (vocabulary size including row 0).
    pub rows: usize,
    /// Embedding dimension.
    pub dim: usize,
    /// Row-major values, `rows * dim` long.
    pub data: Vec<F>,
}

/// An empty vector with room for `n` values whose memory is, on Linux, advised
/// for transparent huge pages (`madvise(MADV_HUGEPAGE)`) before any of it is
/// touched. Embedding tables and their optimizer state are read and written
/// at random rows; with 4 KiB pages a multi-GiB table misses the TLB on
/// nearly every row, with 2 MiB pages it mostly does not. Small vectors and
/// other systems get a plain `Vec::with_capacity`. The advice is a hint: if
/// the kernel refuses it nothing changes but speed.
pub fn with_capacity_huge<T>(n: usize) -> Vec<T> {
    let v: Vec<T> = Vec::with_capacity(n);
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let bytes = n.saturating_mul(std::mem::size_of::<T>());
        if bytes >= 2 * HUGE {
            let start = v.as_ptr() as usize;
            // madvise wants a page-aligned start: advise the whole 4 KiB
            // pages inside the allocation
            let aligned = start.next_multiple_of(4096);
            let len = (start + bytes).saturating_sub(aligned) & !4095;
            if len > 0 {
                // SAFETY: [aligned, aligned + len) lies inside the allocation
                // just made; MADV_HUGEPAGE changes no contents and no
                // permissions, only how future faults are backed.
                unsafe {
                    libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
                }
            }
        }
    }
    v
}

/// `n` copies of `x` in a [`with_capacity_huge`] vector, every element
/// written now (so the page faults happen here, not in the first training
/// steps that touch a row).
pub fn filled_huge<T: Copy>(n: usize, x: T) -> Vec<T> {
    let mut v = with_capacity_huge(n);
    v.resize(n, x);
    v
}

impl<F: Real> EmbeddingTable<F> {
    /// A table of zeros.
    pub fn zeros(rows: usize, dim: usize) -> Self {
        Self {
            rows,
            dim,
            data: filled_huge(rows * dim, F::zero()),
        }
    }

    /// A table with i.i.d. `N(0, sigma²)` entries (Box–Muller over `rng`,
    /// deterministic for a seeded rng).
    pub fn normal(rows: usize, dim: usize, sigma: f64, rng: &mut impl Rng) -> Self {
        let mut data = with_capacity_huge(rows * dim);
        while data.len() < rows * dim {
            let (a, b) = standard_normal_pair(rng);
            data.push(F::lit(a * sigma));
            if data.len() < rows * dim {
                data.push(F::lit(b * sigma));
            }
        }
        Self { rows, dim, data }
    }

    /// Row `r` as a slice of length `dim`.
    ///
    /// # Panics
    /// If `r >= rows`.
    #[inline]
    pub fn row(&self, r: usize) -> &[F] {
        &self.data[r * self.dim..(r + 1) * self.dim]
    }

    /// Row `r` as a mutable slice of length `dim`.
    ///
    /// # Panics
    /// If `r >= rows`.
    #[inline]
    pub fn row_mut(&mut self, r: usize) -> &mut [F] {
        &mut self.data[r * self.dim..(r + 1) * self.dim]
    }
}

/// Two independent standard normal draws (Box–Muller).
pub(crate) fn standard_normal_pair(rng: &mut impl Rng) -> (f64, f64) {
    // u1 in (0, 1] so that ln(u1) is finite.
    let u1: f64 = 1.0 - rng.gen::<f64>();
    let u2: f64 = rng.gen::<f64>();
    let r = (-2.0 * u1.ln()).sqrt();
    let t = std::f64::consts::TAU * u2;
    (r * t.cos(), r * t.sin())
}

/// An open-addressing map `row id → slot` whose `clear` is O(1): entries are
/// stamped with a generation and an entry from an older generation counts as
/// empty. Capacity grows (rarely) with the number of distinct rows of a step
/// and is kept across steps, so the steady state allocates nothing.
#[derive(Clone, Debug, Default)]
struct RowSlotMap {
    /// `(key, slot, generation)`; a power-of-two number of entries (or none).
    entries: Vec<(u32, u32, u32)>,
    generation: u32,
    len: usize,
}

impl RowSlotMap {
    fn clear(&mut self) {
        self.len = 0;
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            // Wrapped around after 2^32 clears: stale stamps could match again.
            for e in &mut self.entries {
                e.2 = 0;
            }
            self.generation = 1;
        }
    }

    #[inline]
    fn hash(key: u32, mask: usize) -> usize {
        // Fibonacci hashing.
        ((key as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & mask
    }

    /// Returns the slot of `key`, inserting `next_slot` if absent; the bool is
    /// true when the key was inserted.
    #[inline]
    fn get_or_insert(&mut self, key: u32, next_slot: u32) -> (u32, bool) {
        if (self.len + 1) * 2 > self.entries.len() {
            self.grow();
        }
        let mask = self.entries.len() - 1;
        let mut i = Self::hash(key, mask);
        loop {
            let e = &mut self.entries[i];
            if e.2 != self.generation {
                *e = (key, next_slot, self.generation);
                self.len += 1;
                return (next_slot, true);
            }
            if e.0 == key {
                return (e.1, false);
            }
            i = (i + 1) & mask;
        }
    }

    #[inline]
    fn get(&self, key: u32) -> Option<u32> {
        if self.entries.is_empty() {
            return None;
        }
        let mask = self.entries.len() - 1;
        let mut i = Self::hash(key, mask);
        loop {
            let e = &self.entries[i];
            if e.2 != self.generation {
                return None;
            }
            if e.0 == key {
                return Some(e.1);
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let new_cap = (self.entries.len() * 2).max(64);
        let old = std::mem::replace(&mut self.entries, vec![(0, 0, 0); new_cap]);
        let gen = self.generation.max(1);
        self.generation = gen;
        let mask = new_cap - 1;
        let old_gen_live = |e: &(u32, u32, u32)| e.2 == gen;
        for e in old.iter().filter(|e| old_gen_live(e)) {
            let mut i = Self::hash(e.0, mask);
            while self.entries[i].2 == gen {
                i = (i + 1) & mask;
            }
            self.entries[i] = *e;
        }
    }
}

/// A sparse gradient of one embedding table: one dense row of `dim` values
/// per distinct table row touched in the step.
///
/// Gradients of a row that occurs several times in a batch are summed into
/// its single slot. [`SparseGrad::clear`] keeps every buffer's capacity, so a
/// training loop allocates nothing once the largest batch has been seen, and
/// no operation is O(vocabulary).
///
/// # Shapes
/// `rows.len() = R` distinct rows; `values` is `[R × dim]` row-major, slot `k`
/// holding the gradient of table row `rows[k]`.
#[derive(Clone, Debug, Default)]
pub struct SparseGrad<F> {
    /// Embedding dimension.
    pub dim: usize,
    /// Table row of each slot, in order of first occurrence.
    pub rows: Vec<u32>,
    /// `rows.len() × dim` gradient values.
    pub values: Vec<F>,
    map: RowSlotMap,
}

impl<F: Real> SparseGrad<F> {
    /// An empty gradient for a table of dimension `dim`.
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            rows: Vec::new(),
            values: Vec::new(),
            map: RowSlotMap::default(),
        }
    }

    /// Removes every row, keeping capacity (O(1) in the map, O(R·dim) never).
    pub fn clear(&mut self) {
        self.rows.clear();
        self.values.clear();
        self.map.clear();
    }

    /// Number of distinct rows held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when no row is held.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The gradient row of table row `row`, inserting a zero row if absent.
    #[inline]
    pub fn row_mut(&mut self, row: u32) -> &mut [F] {
        let (slot, inserted) = self.map.get_or_insert(row, self.rows.len() as u32);
        if inserted {
            self.rows.push(row);
            self.values.resize(self.values.len() + self.dim, F::zero());
        }
        let s = slot as usize * self.dim;
        &mut self.values[s..s + self.dim]
    }

    /// The gradient of table row `row`, or `None` if the step did not touch it.
    pub fn get(&self, row: u32) -> Option<&[F]> {
        self.map.get(row).map(|slot| {
            let s = slot as usize * self.dim;
            &self.values[s..s + self.dim]
        })
    }

    /// `(row, gradient)` pairs, in order of first occurrence.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &[F])> + '_ {
        self.rows
            .iter()
            .copied()
            .zip(self.values.chunks_exact(self.dim.max(1)))
    }

    /// Σ g² over every held value (for global-norm clipping), in f64.
    pub fn sum_sq(&self) -> f64 {
        self.values.iter().map(|&g| g.as_f64() * g.as_f64()).sum()
    }
}

/// Embedding bag forward with mean pooling, one feature.
///
/// `x_b = (1/|S_b|) Σ_{r∈S_b} E[r]` with `S_b = values[offsets[b]..offsets[b+1]]`;
/// an empty bag gives `x_b = 0`; a masked row (`masked[b]`) gives
/// `mask_vector` (or zero when `mask_vector` is `None`) whatever its bag.
///
/// # Shapes
/// `offsets`: `B + 1` (CSR, non-decreasing, `offsets[B] <= values.len()`);
/// `masked`: `B` or empty (= nothing masked); `mask_vector`: `dim`;
/// `out`: `[B × dim]` (may be a column block of a wider matrix; rows must be
/// contiguous).
///
/// # Panics
/// On shape mismatch or an id `>= table.rows` (the data layer guarantees ids
/// are in range; an out-of-range id is a bug upstream, never clamped).
pub fn embedding_bag_forward<F: Real>(
    table: &EmbeddingTable<F>,
    offsets: &[u32],
    values: &[u32],
    masked: &[bool],
    mask_vector: Option<&[F]>,
    mut out: ArrayViewMut2<F>,
) {
    let b = offsets.len().saturating_sub(1);
    let dim = table.dim;
    assert_eq!(out.dim(), (b, dim), "embedding_bag_forward: out shape");
    assert!(
        masked.is_empty() || masked.len() == b,
        "embedding_bag_forward: masked len"
    );
    if let Some(m) = mask_vector {
        assert_eq!(m.len(), dim, "embedding_bag_forward: mask vector len");
    }
    const AHEAD: usize = 4;
    for (i, mut row) in out.outer_iter_mut().enumerate() {
        if i + AHEAD < b {
            let k = offsets[i + AHEAD] as usize;
            if k < offsets[i + AHEAD + 1] as usize {
                prefetch_row(&table.data, values[k] as usize * dim, dim);
            }
        }
        let o = row
            .as_slice_mut()
            .expect("embedding_bag_forward: out rows must be contiguous");
        if !masked.is_empty() && masked[i] {
            match mask_vector {
                Some(m) => o.copy_from_slice(m),
                None => o.fill(F::zero()),
            }
            continue;
        }
        let bag = &values[offsets[i] as usize..offsets[i + 1] as usize];
        match bag.len() {
            0 => o.fill(F::zero()),
            1 => o.copy_from_slice(table_row(table, bag[0])),
            n => {
                o.copy_from_slice(table_row(table, bag[0]));
                for &r in &bag[1..] {
                    for (a, &e) in o.iter_mut().zip(table_row(table, r)) {
                        *a += e;
                    }
                }
                let inv = F::one() / F::from_usize(n).unwrap();
                for a in o.iter_mut() {
                    *a *= inv;
                }
            }
        }
    }
}

/// Hints the CPU to start loading `row` (a slice of `len` values starting at
/// element `start` of `data`) into cache: a software prefetch of each 64-byte
/// line. Rows of large tables are touched in random order, so without it every
/// row costs a full memory round trip. Out-of-range requests are ignored; a
/// no-op off x86-64.
#[inline(always)]
pub fn prefetch_row<F>(data: &[F], start: usize, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let end = start.saturating_add(len);
        if end <= data.len() {
            let base = data[start..end].as_ptr() as *const i8;
            let bytes = len * std::mem::size_of::<F>();
            let mut off = 0;
            while off < bytes {
                // SAFETY: prefetch is a hint that never faults; the address is
                // inside `data[start..end]`, checked above.
                unsafe {
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                        base.add(off),
                    )
                };
                off += 64;
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (data, start, len);
    }
}

#[inline]
fn table_row<F: Real>(table: &EmbeddingTable<F>, r: u32) -> &[F] {
    let r = r as usize;
    assert!(
        r < table.rows,
        "embedding id {r} out of range for a table of {} rows",
        table.rows
    );
    table.row(r)
}

/// Embedding bag backward with mean pooling, one feature: for each unmasked
/// row `b` and each occurrence of `r` in `S_b`, `dE[r] += dx_b / |S_b|`
/// (summed into `grad`'s single slot for `r`); empty bags contribute nothing;
/// masked rows add `dx_b` to `mask_grad` when given (learned mask vector) and
/// nothing to the table. Accumulates: call [`SparseGrad::clear`] first for a
/// fresh gradient.
///
/// # Shapes
/// As [`embedding_bag_forward`]; `dout`: `[B × dim]`; `mask_grad`: `dim`.
///
/// # Panics
/// On shape mismatch.
pub fn embedding_bag_backward<F: Real>(
    offsets: &[u32],
    values: &[u32],
    masked: &[bool],
    dout: ArrayView2<F>,
    grad: &mut SparseGrad<F>,
    mut mask_grad: Option<&mut [F]>,
) {
    let b = offsets.len().saturating_sub(1);
    let dim = grad.dim;
    assert_eq!(dout.dim(), (b, dim), "embedding_bag_backward: dout shape");
    assert!(
        masked.is_empty() || masked.len() == b,
        "embedding_bag_backward: masked len"
    );
    for (i, row) in dout.outer_iter().enumerate() {
        let d = row
            .as_slice()
            .expect("embedding_bag_backward: dout rows must be contiguous");
        if !masked.is_empty() && masked[i] {
            if let Some(mg) = mask_grad.as_deref_mut() {
                for (a, &g) in mg.iter_mut().zip(d) {
                    *a += g;
                }
            }
            continue;
        }
        let bag = &values[offsets[i] as usize..offsets[i + 1] as usize];
        if bag.is_empty() {
            continue;
        }
        let inv = F::one() / F::from_usize(bag.len()).unwrap();
        for &r in bag {
            let g = grad.row_mut(r);
            if bag.len() == 1 {
                for (a, &x) in g.iter_mut().zip(d) {
                    *a += x;
                }
            } else {
                for (a, &x) in g.iter_mut().zip(d) {
                    *a += x * inv;
                }
            }
        }
    }
}

/// Embedding bag forward with **weighted mean** pooling, one feature:
/// `x_b = Σ_k w_k E[r_k] / Σ_k w_k` over bag `S_b` (values and weights
/// `offsets[b]..offsets[b+1]`); an empty bag, or one whose weights sum to 0,
/// gives `x_b = 0`. With every `w_k = 1` it is [`embedding_bag_forward`]'s
/// mean. Used by the recency-weighted history feature
/// ([`crate::history_feature`]). Nothing is masked here.
///
/// # Shapes
/// `offsets`: `B + 1`; `values`, `weights`: the same length (≥ `offsets[B]`),
/// weights `≥ 0`; `out`: `[B × dim]` (rows contiguous).
///
/// # Panics
/// On shape mismatch or an id `>= table.rows`.
pub fn weighted_bag_forward<F: Real>(
    table: &EmbeddingTable<F>,
    offsets: &[u32],
    values: &[u32],
    weights: &[f32],
    mut out: ArrayViewMut2<F>,
) {
    let b = offsets.len().saturating_sub(1);
    let dim = table.dim;
    assert_eq!(out.dim(), (b, dim), "weighted_bag_forward: out shape");
    assert_eq!(
        values.len(),
        weights.len(),
        "weighted_bag_forward: weights len"
    );
    for (i, mut row) in out.outer_iter_mut().enumerate() {
        let o = row
            .as_slice_mut()
            .expect("weighted_bag_forward: out rows must be contiguous");
        o.fill(F::zero());
        let (a, z) = (offsets[i] as usize, offsets[i + 1] as usize);
        let total: f64 = weights[a..z].iter().map(|&w| w as f64).sum();
        if total <= 0.0 {
            continue;
        }
        for k in a..z {
            let w = F::lit(weights[k] as f64 / total);
            for (x, &e) in o.iter_mut().zip(table_row(table, values[k])) {
                *x += w * e;
            }
        }
    }
}

/// Backward of [`weighted_bag_forward`]: `dE[r_k] += (w_k / Σ w) · dx_b`
/// for each entry of each bag (repeats summed into one slot; an entry of
/// weight 0 touches no row). Accumulates.
///
/// # Shapes
/// As [`weighted_bag_forward`]; `dout`: `[B × dim]`.
///
/// # Panics
/// On shape mismatch.
pub fn weighted_bag_backward<F: Real>(
    offsets: &[u32],
    values: &[u32],
    weights: &[f32],
    dout: ArrayView2<F>,
    grad: &mut SparseGrad<F>,
) {
    let b = offsets.len().saturating_sub(1);
    assert_eq!(
        dout.dim(),
        (b, grad.dim),
        "weighted_bag_backward: dout shape"
    );
    assert_eq!(
        values.len(),
        weights.len(),
        "weighted_bag_backward: weights len"
    );
    for (i, row) in dout.outer_iter().enumerate() {
        let d = row
            .as_slice()
            .expect("weighted_bag_backward: dout rows must be contiguous");
        let (a, z) = (offsets[i] as usize, offsets[i + 1] as usize);
        let total: f64 = weights[a..z].iter().map(|&w| w as f64).sum();
        if total <= 0.0 {
            continue;
        }
        for k in a..z {
            if weights[k] == 0.0 {
                continue; // no gradient: the row is not touched (lazy optimizers skip it)
            }
            let w = F::lit(weights[k] as f64 / total);
            for (g, &x) in grad.row_mut(values[k]).iter_mut().zip(d) {
                *g += w * x;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn row_slot_map_survives_growth_and_clear() {
        let mut g = SparseGrad::<f64>::new(2);
        for round in 0..3u32 {
            g.clear();
            for k in 0..1000u32 {
                let key = k * 7919 + round;
                g.row_mut(key)[0] += 1.0;
                g.row_mut(key)[0] += 1.0;
                g.row_mut(key)[1] += 2.0 * k as f64;
            }
            assert_eq!(g.len(), 1000);
            for k in 0..1000u32 {
                let key = k * 7919 + round;
                assert_eq!(g.get(key).unwrap(), &[2.0, 2.0 * k as f64]);
            }
            assert!(g.get(5 * 7919 + round + 1).is_none());
        }
    }

    #[test]
    fn bag_forward_mean_empty_masked() {
        // E = [[0,0],[1,2],[3,4],[5,6]]
        let t = EmbeddingTable::<f64> {
            rows: 4,
            dim: 2,
            data: vec![0., 0., 1., 2., 3., 4., 5., 6.],
        };
        // rows: {1,3} → mean([1,2],[5,6]) = [3,4]; {} → 0; {2} masked → mask [9,9]; {2,2,1} → [7/3, 10/3]
        let offsets = [0u32, 2, 2, 3, 6];
        let values = [1u32, 3, 2, 2, 2, 1];
        let masked = [false, false, true, false];
        let mut out = Array2::<f64>::from_elem((4, 2), 77.0);
        embedding_bag_forward(
            &t,
            &offsets,
            &values,
            &masked,
            Some(&[9.0, 9.0]),
            out.view_mut(),
        );
        assert_eq!(out.row(0).to_vec(), vec![3.0, 4.0]);
        assert_eq!(out.row(1).to_vec(), vec![0.0, 0.0]);
        assert_eq!(out.row(2).to_vec(), vec![9.0, 9.0]);
        assert!(
            (out[[3, 0]] - 7.0 / 3.0).abs() < 1e-15 && (out[[3, 1]] - 10.0 / 3.0).abs() < 1e-15
        );
        embedding_bag_forward(&t, &offsets, &values, &masked, None, out.view_mut());
        assert_eq!(out.row(2).to_vec(), vec![0.0, 0.0]);
    }

    #[test]
    fn bag_backward_sums_repeats_into_one_slot() {
        let offsets = [0u32, 2, 2, 3, 6];
        let values = [1u32, 3, 2, 2, 2, 1];
        let masked = [false, false, true, false];
        let dout = Array2::from_shape_vec((4, 2), vec![1., 2., 10., 10., 4., 8., 3., 6.]).unwrap();
        let mut g = SparseGrad::<f64>::new(2);
        let mut mg = vec![0.0; 2];
        embedding_bag_backward(
            &offsets,
            &values,
            &masked,
            dout.view(),
            &mut g,
            Some(&mut mg),
        );
        // row 1: from bag 0 (1,2)/2 = (.5,1); from bag 3 (3,6)/3 = (1,2) → (1.5, 3)
        // row 3: (.5, 1); row 2: twice in bag 3 → 2·(1,2) = (2,4); bag 2 is masked → mask grad (4,8)
        assert_eq!(g.len(), 3);
        assert_eq!(g.get(1).unwrap(), &[1.5, 3.0]);
        assert_eq!(g.get(3).unwrap(), &[0.5, 1.0]);
        assert_eq!(g.get(2).unwrap(), &[2.0, 4.0]);
        assert_eq!(mg, vec![4.0, 8.0]);
        assert!(g.get(0).is_none());
    }

    #[test]
    fn normal_init_has_requested_scale() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let t = EmbeddingTable::<f64>::normal(1000, 10, 0.5, &mut rng);
        let n = t.data.len() as f64;
        let mean = t.data.iter().sum::<f64>() / n;
        let var = t.data.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.02, "{mean}");
        assert!((var.sqrt() - 0.5).abs() < 0.01, "{}", var.sqrt());
    }

    #[test]
    fn weighted_bag_is_the_weighted_mean_and_mean_with_unit_weights() {
        // E = [[0,0],[1,2],[3,4],[5,6]]
        let t = EmbeddingTable::<f64> {
            rows: 4,
            dim: 2,
            data: vec![0., 0., 1., 2., 3., 4., 5., 6.],
        };
        // bag 0: {1 (w 1), 3 (w 3)} → (1·[1,2] + 3·[5,6]) / 4 = [4, 5]; bag 1: {} → 0;
        // bag 2: {2 (w 0)} → weights sum 0 → 0
        let offsets = [0u32, 2, 2, 3];
        let values = [1u32, 3, 2];
        let weights = [1.0f32, 3.0, 0.0];
        let mut out = Array2::<f64>::from_elem((3, 2), 9.0);
        weighted_bag_forward(&t, &offsets, &values, &weights, out.view_mut());
        assert_eq!(out.row(0).to_vec(), vec![4.0, 5.0]);
        assert_eq!(out.row(1).to_vec(), vec![0.0, 0.0]);
        assert_eq!(out.row(2).to_vec(), vec![0.0, 0.0]);
        // unit weights = embedding_bag_forward's mean
        let ones = [1.0f32; 3];
        let mut mean = Array2::<f64>::zeros((3, 2));
        embedding_bag_forward(&t, &offsets, &values, &[], None, mean.view_mut());
        weighted_bag_forward(&t, &offsets, &values, &ones, out.view_mut());
        assert_eq!(out, mean);
        // backward: row 1 gets dout·1/4, row 3 dout·3/4, row 2 nothing
        let dout = Array2::from_shape_vec((3, 2), vec![4., 8., 1., 1., 1., 1.]).unwrap();
        let mut g = SparseGrad::<f64>::new(2);
        weighted_bag_backward(&offsets, &values, &weights, dout.view(), &mut g);
        assert_eq!(g.get(1).unwrap(), &[1.0, 2.0]);
        assert_eq!(g.get(3).unwrap(), &[3.0, 6.0]);
        assert!(g.get(2).is_none(), "a weight-0 entry touches no row");
    }
}
