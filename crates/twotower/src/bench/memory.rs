//! Memory and allocations of the process: the counting allocator (a
//! `--features alloc-count` build installs it), peak and current resident
//! size from `/proc/self/status`, and the optimizer state an embedding
//! table needs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::TwoTower;
use crate::optim::SparseOptimizerKind;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// A global allocator that forwards to [`System`] and counts every
/// allocation (`alloc`, `alloc_zeroed`, `realloc`). Install it in a binary
/// with `#[global_allocator] static A: CountingAlloc = CountingAlloc;` and
/// read the count with [`allocations`]. One relaxed atomic add per
/// allocation.
pub struct CountingAlloc;

// SAFETY: every method forwards to `System` with the caller's arguments,
// which upholds GlobalAlloc's contract; the counter has no effect on memory.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

/// Whether [`CountingAlloc`] is this process's global allocator (an
/// allocation moves the count).
pub fn counting_allocations() -> bool {
    let before = allocations();
    drop(std::hint::black_box(Vec::<u8>::with_capacity(16)));
    allocations() > before
}

/// Heap allocations counted by [`CountingAlloc`] so far in this process
/// (0 forever when it is not the global allocator).
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

// --------------------------------------------------------------------- memory

fn proc_status_kib(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Peak resident set size of this process in bytes (`VmHWM`), Linux only.
pub fn peak_rss_bytes() -> Option<u64> {
    proc_status_kib("VmHWM:").map(|k| k * 1024)
}

/// Current resident set size of this process in bytes (`VmRSS`), Linux only.
pub fn rss_bytes() -> Option<u64> {
    proc_status_kib("VmRSS:").map(|k| k * 1024)
}

/// Resets the peak resident set size to the current one (writes `5` to
/// `/proc/self/clear_refs`, Linux ≥ 4.0). Returns whether it worked.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Bytes of the embedding tables and their sparse-optimizer state:
/// `4 × Σ rows × dim × (1 + slots)` with 2 slots for lazy Adam (m, v),
/// 1 for Adagrad, and `1/dim` (one accumulator per row) for row-wise Adagrad.
pub fn embedding_state_bytes(model: &TwoTower<f32>, kind: SparseOptimizerKind) -> u64 {
    let mut total = 0u64;
    for tower in [&model.user, &model.item] {
        for t in &tower.tables {
            let values = (t.rows * t.dim) as u64;
            let state = match kind {
                SparseOptimizerKind::Adam => 2 * values,
                SparseOptimizerKind::Adagrad { row_wise: false } => values,
                SparseOptimizerKind::Adagrad { row_wise: true } => t.rows as u64,
            };
            total += 4 * (values + state);
        }
    }
    total
}

// ------------------------------------------------------------ synthetic data
