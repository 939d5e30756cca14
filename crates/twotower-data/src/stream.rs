//! Interactions larger than memory: the train split read as a stream.
//!
//! When the interaction rows do not fit the memory budget a run sets
//! (`train.max_memory_gb`), the loader keeps only what cannot be streamed
//! — the entity tables and their features, the **test** split, per-user and
//! per-item counts — and the train split stays in the file: every epoch
//! re-reads it ([`TrainStream::for_each_chunk`]), row group by row group
//! for Parquet, line by line for CSV/TSV, part file by part file for a
//! directory of parts (the input contract a Spark or DataFusion job writes).
//!
//! # The split is EVALUATION.md's, exactly
//! The temporal split puts a user's last `ceil(f · n_u)` interactions, in
//! the order `(timestamp, item id rank)` with file order breaking ties,
//! into test. Streamed, that takes two passes and no row storage beyond the
//! test split itself:
//! 1. ids and per-user row counts `n_u` (the loader's pass);
//! 2. per user, a min-heap of the `k_u = n_test(n_u)` largest keys
//!    `(timestamp, item rank, row number)` seen so far
//!    (`streamed_temporal_split`).
//!
//! The heaps then hold exactly the test rows; the smallest key of user
//! `u`'s heap is its **cut**: a row is train iff its key is below its user's
//! cut (keys are unique, the row number being in them). The test split,
//! the train counts behind the id vocabularies, logQ and the popularity
//! slices are therefore those of the in-memory loader
//! (`tests/stream.rs` checks it against [`crate::temporal_split`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{InteractionsSpec, OnBadRow};
use crate::entity_ids::EntityIds;
use crate::error::DataError;
use crate::raw::InteractionColumns;
use crate::read::{decode, for_each_row};
use crate::split::{n_test, Interactions};

/// A row's place in its user's time order: `(timestamp, item rank, row
/// number)`, the temporal split's sort key made unique by the row number.
pub type TimeKey = (i64, u32, u64);

/// One interaction row as read from the file, before its ids are encoded.
pub(crate) struct RawRow<'a> {
    /// 0-based number of the row among the rows read (skipped rows excluded).
    pub row: u64,
    /// The user id's bytes.
    pub user: &'a [u8],
    /// The item id's bytes.
    pub item: &'a [u8],
    /// The timestamp (the row number when the table has none).
    pub timestamp: i64,
    /// The loss weight, when the table has a weight column.
    pub weight: Option<f32>,
    /// The file the row is in (a directory's part file) and its 1-based line.
    pub place: (&'a Path, u64),
}

/// Reads `[data.interactions]` row by row, checking ids, timestamp and
/// weight as the in-memory reader does, and calls `f` with each row.
/// Returns the number of rows read.
///
/// # Errors
/// The reader's [`DataError`]s (file, line and column named), or `f`'s.
pub(crate) fn scan_interactions(
    spec: &InteractionsSpec,
    dir: &Path,
    on_bad: OnBadRow,
    skipped: &mut usize,
    mut f: impl FnMut(RawRow<'_>) -> Result<(), DataError>,
) -> Result<u64, DataError> {
    let opts = spec.read_options(dir)?;
    let cols = InteractionColumns::new(spec, &opts);
    let mut row = 0u64;
    for_each_row(&opts, &cols.refs, on_bad, skipped, |line, fields, h| {
        let (u, i, timestamp, weight) = cols.parse(line, fields, h, row as i64)?;
        f(RawRow {
            row,
            user: u,
            item: i,
            timestamp,
            weight,
            place: (&h.path, line),
        })?;
        row += 1;
        Ok(())
    })?;
    Ok(row)
}

/// A test-split candidate in a user's heap.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Held {
    key: TimeKey,
    item: u32,
    weight: f32,
}

/// What the streamed split pass produces.
#[derive(Debug, Clone)]
pub(crate) struct StreamedSplit {
    /// The test split, in file order.
    pub test: Interactions,
    /// Per user: the smallest key of its test rows (`None`: no test rows).
    pub cut: Vec<Option<TimeKey>>,
    /// Train interactions per user.
    pub train_user_counts: Vec<u32>,
    /// Train interactions per item.
    pub train_item_counts: Vec<u32>,
    /// Number of train rows.
    pub n_train: u64,
}

/// The temporal split of the interactions in `spec`, streamed (see the
/// module docs): `user_of` / `item_of` map a row's id bytes to entity
/// indices (`item_of`'s index is the item's id rank: entities are stored
/// in "by id" order), `user_rows[u]` is user u's number of rows.
///
/// # Errors
/// The reader's [`DataError`]s; [`DataError::Config`] if the file changed
/// since the first pass (an id or a row count that no longer matches).
#[allow(clippy::too_many_arguments)]
pub(crate) fn streamed_temporal_split(
    spec: &InteractionsSpec,
    dir: &Path,
    on_bad: OnBadRow,
    user_of: impl Fn(&[u8]) -> Option<u32>,
    item_of: impl Fn(&[u8]) -> Option<u32>,
    user_rows: &[u32],
    n_items: usize,
    test_fraction: f64,
    min_interactions: usize,
) -> Result<StreamedSplit, DataError> {
    let n_users = user_rows.len();
    // each user's heap is a segment of one flat array
    let mut offsets = Vec::with_capacity(n_users + 1);
    offsets.push(0usize);
    for &n in user_rows {
        let k = n_test(n as usize, test_fraction, min_interactions);
        offsets.push(offsets.last().copied().unwrap_or(0) + k);
    }
    let empty = Held {
        key: (i64::MIN, 0, 0),
        item: 0,
        weight: 0.0,
    };
    let mut heap = vec![empty; offsets[n_users]];
    let mut filled = vec![0u32; n_users];
    let mut all_item_counts = vec![0u32; n_items];
    let mut weighted = false;
    let path = spec.read_options(dir)?.path;
    let changed = || DataError::Changed {
        path: path.clone(),
        message:
            "the interactions file changed while it was being read (streamed loading reads it \
                  twice): load it again once it is complete"
                .into(),
    };
    let mut skipped = 0usize;
    scan_interactions(spec, dir, on_bad, &mut skipped, |r| {
        let u = user_of(r.user).ok_or_else(changed)? as usize;
        let i = item_of(r.item).ok_or_else(changed)?;
        all_item_counts[i as usize] += 1;
        weighted |= r.weight.is_some();
        let seg = &mut heap[offsets[u]..offsets[u + 1]];
        let held = Held {
            key: (r.timestamp, i, r.row),
            item: i,
            weight: r.weight.unwrap_or(0.0),
        };
        let n = filled[u] as usize;
        if n < seg.len() {
            seg[n] = held;
            sift_up(seg, n);
            filled[u] += 1;
        } else if !seg.is_empty() && held.key > seg[0].key {
            seg[0] = held;
            sift_down(seg, 0);
        }
        Ok(())
    })?;
    if filled
        .iter()
        .zip(offsets.windows(2))
        .any(|(&f, w)| f as usize != w[1] - w[0])
    {
        return Err(changed());
    }
    let mut cut = vec![None; n_users];
    let mut rows: Vec<(u64, u32, Held)> = Vec::with_capacity(heap.len());
    let mut train_user_counts = user_rows.to_vec();
    for u in 0..n_users {
        let seg = &heap[offsets[u]..offsets[u + 1]];
        if let Some(min) = seg.first() {
            cut[u] = Some(min.key);
        }
        train_user_counts[u] -= seg.len() as u32;
        rows.extend(seg.iter().map(|h| (h.key.2, u as u32, *h)));
    }
    drop(heap);
    rows.sort_unstable_by_key(|r| r.0);
    let mut train_item_counts = all_item_counts;
    let mut test = Interactions {
        weight: weighted.then(Vec::new),
        ..Default::default()
    };
    for (_, u, h) in &rows {
        train_item_counts[h.item as usize] -= 1;
        test.user.push(*u);
        test.item.push(h.item);
        test.timestamp.push(h.key.0);
        if let Some(w) = test.weight.as_mut() {
            w.push(h.weight);
        }
    }
    let n_train = train_user_counts.iter().map(|&c| c as u64).sum();
    Ok(StreamedSplit {
        test,
        cut,
        train_user_counts,
        train_item_counts,
        n_train,
    })
}

fn sift_up(h: &mut [Held], mut i: usize) {
    while i > 0 {
        let p = (i - 1) / 2;
        if h[i].key < h[p].key {
            h.swap(i, p);
            i = p;
        } else {
            break;
        }
    }
}

fn sift_down(h: &mut [Held], mut i: usize) {
    loop {
        let (l, r) = (2 * i + 1, 2 * i + 2);
        let mut m = i;
        if l < h.len() && h[l].key < h[m].key {
            m = l;
        }
        if r < h.len() && h[r].key < h[m].key {
            m = r;
        }
        if m == i {
            break;
        }
        h.swap(i, m);
        i = m;
    }
}

/// The train split of a dataset loaded as a stream: where to read it and
/// which rows of the file are train. Every epoch reads it again
/// ([`TrainStream::for_each_chunk`]); nothing of it is held in memory
/// beyond one chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainStream {
    /// The interactions table.
    pub spec: InteractionsSpec,
    /// The resolved data directory.
    pub dir: PathBuf,
    /// What a bad row does (as when it was loaded).
    pub on_bad: OnBadRow,
    /// Per user: its test rows' smallest [`TimeKey`]; the rows of that user
    /// with a smaller key are train (`None`: every row is train).
    pub cut: Vec<Option<TimeKey>>,
    /// Number of train rows.
    pub n_rows: u64,
    /// Train interactions per item (`[n_items]`): the counts of the
    /// in-memory train split (id vocabulary, logQ, popularity slices).
    pub item_counts: Vec<u32>,
    /// Train interactions per user (`[n_users]`).
    pub user_counts: Vec<u32>,
    /// Whether the rows carry a loss weight.
    pub weighted: bool,
}

impl TrainStream {
    /// Reads the train rows in file order and calls `f` with chunks of at
    /// most `chunk_rows` of them, encoded with the dataset's entity tables
    /// (user and item indices by the dataset's entity ids; timestamps; weights
    /// when the table has them).
    ///
    /// # Errors
    /// The reader's [`DataError`]s, [`DataError::Config`] when the file no
    /// longer matches the dataset (an unknown id, another row count), or
    /// `f`'s error.
    pub fn for_each_chunk(
        &self,
        users: &EntityIds,
        items: &EntityIds,
        chunk_rows: usize,
        mut f: impl FnMut(&Interactions) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        let opts = self.spec.read_options(&self.dir)?;
        let enc = opts.encoding;
        let lookup = |t: &EntityIds, b: &[u8]| -> Option<u32> {
            let s = decode(b, enc)?;
            t.index_of(&s)
        };
        let path = opts.path;
        let what = if path.is_dir() {
            "the interactions changed since they were loaded (a part file was added, removed or \
             rewritten; a streamed train split is re-read every epoch, so its files must stay as \
             they were until training ends); restore them, or train again on the new files"
        } else {
            "the interactions file changed since it was loaded (a streamed train split is \
             re-read every epoch, so the file must stay as it was until training ends); \
             restore it, or train again on the new file"
        };
        let changed = || DataError::Changed {
            path: path.clone(),
            message: what.into(),
        };
        // a row that cannot be from the loaded data: its part file and line
        let changed_at = |(file, line): (&Path, u64), why: &str| DataError::Changed {
            path: file.to_path_buf(),
            message: format!("line {line}: {why}: {what}"),
        };
        let chunk_rows = chunk_rows.max(1);
        let mut chunk = Interactions {
            weight: self.weighted.then(Vec::new),
            ..Default::default()
        };
        let mut seen = 0u64;
        let mut skipped = 0usize;
        scan_interactions(&self.spec, &self.dir, self.on_bad, &mut skipped, |r| {
            let u = lookup(users, r.user)
                .ok_or_else(|| changed_at(r.place, "a user id the loaded data does not have"))?;
            let i = lookup(items, r.item)
                .ok_or_else(|| changed_at(r.place, "an item id the loaded data does not have"))?;
            let is_train = match self.cut.get(u as usize).ok_or_else(changed)? {
                None => true,
                Some(cut) => (r.timestamp, i, r.row) < *cut,
            };
            if !is_train {
                return Ok(());
            }
            seen += 1;
            chunk.user.push(u);
            chunk.item.push(i);
            chunk.timestamp.push(r.timestamp);
            if let Some(w) = chunk.weight.as_mut() {
                w.push(r.weight.unwrap_or(1.0));
            }
            if chunk.len() == chunk_rows {
                f(&chunk)?;
                chunk.user.clear();
                chunk.item.clear();
                chunk.timestamp.clear();
                if let Some(w) = chunk.weight.as_mut() {
                    w.clear();
                }
            }
            Ok(())
        })?;
        if !chunk.is_empty() {
            f(&chunk)?;
        }
        if seen != self.n_rows {
            return Err(changed());
        }
        Ok(())
    }

    /// The train split in memory: every chunk concatenated (for tests and
    /// small data; a streamed split is usually larger than memory).
    ///
    /// # Errors
    /// As [`TrainStream::for_each_chunk`].
    pub fn collect(&self, users: &EntityIds, items: &EntityIds) -> Result<Interactions, DataError> {
        let mut all = Interactions {
            weight: self.weighted.then(Vec::new),
            ..Default::default()
        };
        self.for_each_chunk(users, items, 1 << 16, |c| {
            all.user.extend_from_slice(&c.user);
            all.item.extend_from_slice(&c.item);
            all.timestamp.extend_from_slice(&c.timestamp);
            if let (Some(a), Some(w)) = (all.weight.as_mut(), c.weight.as_ref()) {
                a.extend_from_slice(w);
            }
            Ok(())
        })?;
        Ok(all)
    }

    /// The train items of each user in `wanted` (a user-indexed mask),
    /// as (user, item) pairs in file order: what evaluation excludes from a
    /// sampled user's ranking, read in one pass.
    ///
    /// # Errors
    /// As [`TrainStream::for_each_chunk`].
    pub fn pairs_of_users(
        &self,
        users: &EntityIds,
        items: &EntityIds,
        wanted: &[bool],
    ) -> Result<Vec<(u32, u32)>, DataError> {
        let mut out = Vec::new();
        self.for_each_chunk(users, items, 1 << 16, |c| {
            for (&u, &i) in c.user.iter().zip(&c.item) {
                if wanted.get(u as usize).copied().unwrap_or(false) {
                    out.push((u, i));
                }
            }
            Ok(())
        })?;
        Ok(out)
    }
}

/// The number of rows of `[data.interactions]`, estimated before reading
/// it: exact for Parquet (the footers' row counts), for CSV/TSV the file
/// size over the mean length of its first lines (the header excluded); a
/// directory of part files counts all its parts.
/// What the trainer compares with its memory budget to decide whether to
/// stream (`train.max_memory_gb`). `None` for generated data.
///
/// # Errors
/// The file cannot be opened or its Parquet footer read.
pub fn estimate_interaction_rows(
    data: &crate::config::DataConfig,
    base_dir: &Path,
) -> Result<Option<u64>, DataError> {
    use std::io::Read;
    if data.source != crate::config::Source::Files {
        return Ok(None);
    }
    let dir = crate::load::data_dir(data, base_dir);
    let (ispec, _, _) = crate::effective::effective_tables(data)?;
    let opts = ispec.read_options(&dir)?;
    let files = crate::table_files::table_files(&opts.path, opts.format)?;
    if opts.format == crate::config::Format::Parquet {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let mut rows = 0u64;
        for path in &files {
            let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
            if file.metadata().is_ok_and(|m| m.len() == 0) {
                continue;
            }
            let r = SerializedFileReader::new(file).map_err(|e| DataError::Parquet {
                path: path.clone(),
                message: e.to_string(),
            })?;
            rows += r.metadata().file_metadata().num_rows().max(0) as u64;
        }
        return Ok(Some(rows));
    }
    // text: the total size over the mean line length of the first part's
    // first MiB, less a header line a part
    let mut size = 0u64;
    for path in &files {
        size += std::fs::metadata(path)
            .map_err(|e| DataError::io(path, e))?
            .len();
    }
    let path = &files[0];
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut head = Vec::with_capacity(1 << 20);
    file.take(1 << 20)
        .read_to_end(&mut head)
        .map_err(|e| DataError::io(path, e))?;
    let lines = head.iter().filter(|&&b| b == b'\n').count() as u64;
    if lines == 0 {
        return Ok(Some(u64::from(size > 0)));
    }
    let per_line = head.len() as u64 / lines;
    Ok(Some((size / per_line.max(1)).saturating_sub(
        u64::from(opts.header) * files.len() as u64,
    )))
}

/// In-memory bytes of one interaction row: user and item indices and the
/// timestamp (4 more with a weight column).
pub const INTERACTION_ROW_BYTES: u64 = 16;

/// Why the train split of `data` must be streamed under a memory budget of
/// `budget_gib` GiB for the interactions (`train.max_memory_gb`; 0 = no
/// budget), or `None` when it fits: the rows
/// ([`estimate_interaction_rows`]) at [`INTERACTION_ROW_BYTES`] a row
/// exceed the budget.
///
/// # Errors
/// [`DataError`] if the interactions file cannot be opened.
pub fn stream_reason(
    data: &crate::config::DataConfig,
    base_dir: &Path,
    budget_gib: f64,
) -> Result<Option<String>, DataError> {
    if budget_gib <= 0.0 {
        return Ok(None);
    }
    let Some(rows) = estimate_interaction_rows(data, base_dir)? else {
        return Ok(None);
    };
    let weighted = crate::effective::effective_tables(data)?.0.weight.is_some();
    let bytes = rows * (INTERACTION_ROW_BYTES + 4 * u64::from(weighted));
    let gib = bytes as f64 / (1u64 << 30) as f64;
    Ok((gib > budget_gib).then(|| {
        format!("{rows} interaction rows need {gib:.2} GiB > train.max_memory_gb = {budget_gib}")
    }))
}
