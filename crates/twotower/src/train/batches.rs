//! The batches of an epoch, from the train split in memory or from a
//! streamed one.
//!
//! - **In memory**: a permutation of the rows that depends only on
//!   `(seed, phase, epoch)` ([`epoch_order`]), cut into consecutive batches.
//! - **Streamed** ([`twotower_data::stream`]): a reader thread re-reads the
//!   train split in file order and hands chunks to the trainer over a
//!   bounded channel (reading overlaps training); each batch row is a
//!   uniform draw from a **shuffle window** of `train.stream_window` rows,
//!   its place taken by the next row read (tf.data's `shuffle(buffer)`);
//!   once the file is read, the window is emptied in a random order. The
//!   draws come from `(seed, phase, epoch)` too, so an epoch's batches are
//!   the same in every process, and a resumed run skips the batches it had
//!   done. Every train row is in exactly one batch of the epoch.

use std::sync::mpsc::sync_channel;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use twotower_data::{DataError, Dataset, Interactions, TrainStream};
use twotower_model::inference::mix;

use super::{epoch_order, TrainError, STREAM_SHUFFLE};

/// Rows per chunk the reader thread sends.
const CHUNK_ROWS: usize = 1 << 16;
/// Chunks in flight between the reader and the trainer.
const CHUNKS_IN_FLIGHT: usize = 4;

/// One batch: rows of the in-memory split, or pairs from the stream.
pub enum Batch<'b> {
    /// Indices into the phase's interactions.
    Rows(&'b [u32]),
    /// (user, item) pairs with their loss weights, if used.
    Pairs {
        /// User indices, `[B]`.
        users: &'b [u32],
        /// Item indices, `[B]`.
        items: &'b [u32],
        /// Loss weights, `[B]` (the data's weight column).
        weights: Option<&'b [f32]>,
    },
}

impl Batch<'_> {
    /// Number of examples.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        match self {
            Batch::Rows(r) => r.len(),
            Batch::Pairs { users, .. } => users.len(),
        }
    }
}

/// Where a phase's batches come from.
pub(super) enum Batches<'a> {
    /// The rows of an in-memory split (`order` is reused every epoch).
    Memory { order: Vec<u32> },
    /// A streamed train split.
    Stream {
        stream: &'a TrainStream,
        ds: &'a Dataset,
        window: usize,
        weights: bool,
    },
}

impl<'a> Batches<'a> {
    /// The batches of `fit`, or of `ds`'s streamed train split when it has
    /// one (`fit` is then empty).
    pub fn new(ds: &'a Dataset, fit: &Interactions, window: usize, use_weights: bool) -> Self {
        match &ds.train_stream {
            Some(stream) if fit.is_empty() => Batches::Stream {
                stream,
                ds,
                window: window.max(1),
                weights: use_weights && stream.weighted,
            },
            _ => Batches::Memory {
                order: (0..fit.len() as u32).collect(),
            },
        }
    }

    /// Calls `f(b, batch)` for the batches `b = start..` of epoch `epoch`
    /// (0-based) of batch size `bsz`, until they run out or `f` returns
    /// `Ok(false)`.
    ///
    /// # Errors
    /// `f`'s error, or the stream's read error as [`TrainError::Data`].
    pub fn for_epoch(
        &mut self,
        (seed, phase_tag, epoch): (u64, u64, usize),
        bsz: usize,
        start: usize,
        mut f: impl FnMut(usize, Batch<'_>) -> Result<bool, TrainError>,
    ) -> Result<(), TrainError> {
        match self {
            Batches::Memory { order } => {
                epoch_order(seed, phase_tag, epoch, order);
                let n = order.len();
                for b in start..n.div_ceil(bsz) {
                    if !f(b, Batch::Rows(&order[b * bsz..((b + 1) * bsz).min(n)]))? {
                        break;
                    }
                }
                Ok(())
            }
            Batches::Stream {
                stream,
                ds,
                window,
                weights,
            } => {
                let rng =
                    ChaCha8Rng::seed_from_u64(mix(seed, phase_tag, STREAM_SHUFFLE, epoch as u64));
                stream_epoch(stream, ds, *window, *weights, rng, bsz, start, &mut f)
            }
        }
    }
}

/// Pairs (and weights) as parallel columns.
#[derive(Default)]
struct Pairs {
    users: Vec<u32>,
    items: Vec<u32>,
    weights: Option<Vec<f32>>,
}

impl Pairs {
    fn with_capacity(n: usize, weights: bool) -> Self {
        Self {
            users: Vec::with_capacity(n),
            items: Vec::with_capacity(n),
            weights: weights.then(|| Vec::with_capacity(n)),
        }
    }
    fn len(&self) -> usize {
        self.users.len()
    }
    fn push(&mut self, u: u32, i: u32, w: f32) {
        self.users.push(u);
        self.items.push(i);
        if let Some(ws) = self.weights.as_mut() {
            ws.push(w);
        }
    }
    fn get(&self, k: usize) -> (u32, u32, f32) {
        let w = self.weights.as_ref().map_or(1.0, |w| w[k]);
        (self.users[k], self.items[k], w)
    }
    fn set(&mut self, k: usize, (u, i, w): (u32, u32, f32)) {
        self.users[k] = u;
        self.items[k] = i;
        if let Some(ws) = self.weights.as_mut() {
            ws[k] = w;
        }
    }
    fn swap(&mut self, a: usize, b: usize) {
        self.users.swap(a, b);
        self.items.swap(a, b);
        if let Some(ws) = self.weights.as_mut() {
            ws.swap(a, b);
        }
    }
    fn clear(&mut self) {
        self.users.clear();
        self.items.clear();
        if let Some(ws) = self.weights.as_mut() {
            ws.clear();
        }
    }
    fn batch(&self) -> Batch<'_> {
        Batch::Pairs {
            users: &self.users,
            items: &self.items,
            weights: self.weights.as_deref(),
        }
    }
}

/// One epoch of a streamed split through the shuffle window (module docs).
#[allow(clippy::too_many_arguments)]
fn stream_epoch(
    stream: &TrainStream,
    ds: &Dataset,
    window: usize,
    weights: bool,
    mut rng: ChaCha8Rng,
    bsz: usize,
    start: usize,
    f: &mut impl FnMut(usize, Batch<'_>) -> Result<bool, TrainError>,
) -> Result<(), TrainError> {
    std::thread::scope(|sc| {
        let (tx, rx) = sync_channel::<Interactions>(CHUNKS_IN_FLIGHT);
        let reader = sc.spawn(move || {
            stream.for_each_chunk(&ds.users.ids, &ds.items.ids, CHUNK_ROWS, |c| {
                // the trainer stopped (interrupt, error): stop reading
                tx.send(c.clone())
                    .map_err(|_| DataError::config("data.interactions", "stopped"))
            })
        });
        let mut win = Pairs::with_capacity(window.min(stream.n_rows as usize), weights);
        let mut batch = Pairs::with_capacity(bsz, weights);
        let mut b = 0usize;
        // hands a full (or the last) batch to `f`; false = stop
        let mut emit = |batch: &mut Pairs| -> Result<bool, TrainError> {
            let go = if b >= start {
                f(b, batch.batch())?
            } else {
                true
            };
            b += 1;
            batch.clear();
            Ok(go)
        };
        let mut stopped = false;
        'read: for chunk in rx.iter() {
            for k in 0..chunk.len() {
                let w = chunk.weight.as_ref().map_or(1.0, |w| w[k]);
                let row = (chunk.user[k], chunk.item[k], w);
                if win.len() < window {
                    win.push(row.0, row.1, row.2);
                    continue;
                }
                let j = rng.gen_range(0..window);
                let (u, i, w) = win.get(j);
                batch.push(u, i, w);
                win.set(j, row);
                if batch.len() == bsz && !emit(&mut batch)? {
                    stopped = true;
                    break 'read;
                }
            }
        }
        if !stopped {
            // the file is read: empty the window in a random order
            for k in (1..win.len()).rev() {
                win.swap(k, rng.gen_range(0..=k));
            }
            for k in 0..win.len() {
                let (u, i, w) = win.get(k);
                batch.push(u, i, w);
                if batch.len() == bsz && !emit(&mut batch)? {
                    stopped = true;
                    break;
                }
            }
            if !stopped && batch.len() > 0 {
                emit(&mut batch)?;
            }
        }
        drop(rx);
        let read = reader.join().expect("the stream reader thread panicked");
        if !stopped {
            read.map_err(|e| TrainError::Data(e.to_string()))?;
        }
        Ok(())
    })
}
