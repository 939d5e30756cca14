//! Reading one table in parallel parts — Parquet row groups, byte ranges
//! of unquoted text — merged in file order, so first-seen order and the
//! first error are those of one pass.

use crate::config::{ColumnRef, Format, OnBadRow, ReadOptions};
use crate::error::DataError;

use super::*;

/// One part of a table read by [`for_each_batch_par`]: the state the callback
/// built over its rows, the rows it accepted and those skipped.
pub(crate) struct Part<S> {
    pub state: S,
    pub rows: usize,
    pub skipped: usize,
}

/// [`for_each_row`] over the parts of a table in parallel: a Parquet file
/// is cut into as many runs of consecutive row groups as rayon has threads
/// (each part with its own state from `init`, line numbers counting from
/// its first row); other formats are one part. Returns the parts in file order, so a caller that merges
/// them in that order gets what one pass would have built; the first error
/// in file order is the one returned, as one pass would have stopped at it.
///
/// Each Parquet record batch is first offered to `batch` (see
/// `read_parquet_groups`: it takes a whole batch, typed, or leaves its rows
/// to `f`); other formats go row by row to `f`.
///
/// # Errors
/// As [`for_each_row`].
pub(crate) fn for_each_batch_par<S, I, F, B>(
    opts: &ReadOptions,
    refs: &[ColumnRef],
    on_bad: OnBadRow,
    init: I,
    f: F,
    batch: B,
) -> Result<(Header, Vec<Part<S>>), DataError>
where
    S: Send,
    I: Fn() -> S + Sync,
    F: Fn(&mut S, u64, &[&[u8]], &Header) -> Result<(), DataError> + Sync,
    B: Fn(&mut S, u64, &[BatchCol], &Header) -> Result<bool, DataError> + Sync,
{
    let files = crate::table_files::table_files(&opts.path, opts.format)?;
    if files.len() != 1 || files[0] != opts.path {
        return dir_parts(opts, files, refs, on_bad, &init, &f, &batch);
    }
    file_parts(opts, refs, on_bad, &init, &f, &batch)
}

/// [`for_each_batch_par`] over one file.
fn file_parts<S, I, F, B>(
    opts: &ReadOptions,
    refs: &[ColumnRef],
    on_bad: OnBadRow,
    init: &I,
    f: &F,
    batch: &B,
) -> Result<(Header, Vec<Part<S>>), DataError>
where
    S: Send,
    I: Fn() -> S + Sync,
    F: Fn(&mut S, u64, &[&[u8]], &Header) -> Result<(), DataError> + Sync,
    B: Fn(&mut S, u64, &[BatchCol], &Header) -> Result<bool, DataError> + Sync,
{
    if opts.format != Format::Parquet {
        if let Some(parts) = plain_parts(opts, refs, on_bad, init, f) {
            return Ok(parts);
        }
        let mut state = init();
        let mut skipped = 0;
        let (header, rows) = for_each_row(opts, refs, on_bad, &mut skipped, |line, fields, h| {
            f(&mut state, line, fields, h)
        })?;
        return Ok((
            header,
            vec![Part {
                state,
                rows,
                skipped,
            }],
        ));
    }
    use ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use rayon::prelude::*;
    let path = &opts.path;
    if std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0) {
        return Err(super::empty_file(opts));
    }
    let perr = |e: &dyn std::fmt::Display| DataError::Parquet {
        path: path.clone(),
        message: e.to_string(),
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(open(path)?).map_err(|e| perr(&e))?;
    let groups: Vec<u64> = builder
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows().max(0) as u64)
        .collect();
    drop(builder);
    let mut first_row = Vec::with_capacity(groups.len());
    let mut n = 0u64;
    for g in &groups {
        first_row.push(n);
        n += g;
    }
    // consecutive runs of about equal rows, one a thread
    let n_parts = rayon::current_num_threads().clamp(1, groups.len().max(1));
    let mut runs: Vec<Vec<usize>> = vec![Vec::new(); n_parts];
    for (g, &first) in first_row.iter().enumerate() {
        let p = ((first as u128 * n_parts as u128) / n.max(1) as u128) as usize;
        runs[p.min(n_parts - 1)].push(g);
    }
    runs.retain(|r| !r.is_empty());
    if runs.is_empty() {
        runs.push(Vec::new());
    }
    let parts: Vec<Result<(Header, Part<S>), DataError>> = runs
        .into_par_iter()
        .map(|gs| {
            let mut state = init();
            let mut skipped = 0;
            let (header, rows) = read_parquet_groups(
                opts,
                refs,
                on_bad,
                &mut skipped,
                gs.first().map(|&g| (gs.clone(), first_row[g])),
                &mut state,
                &mut |s, line, fields, h| f(s, line, fields, h),
                &mut |s, line, cols, h| batch(s, line, cols, h),
            )?;
            Ok((
                header,
                Part {
                    state,
                    rows,
                    skipped,
                },
            ))
        })
        .collect();
    let mut header = None;
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        let (h, part) = p?;
        header.get_or_insert(h);
        out.push(part);
    }
    let header = header.expect("at least one part");
    if out.iter().all(|p| p.rows == 0 && p.skipped == 0) {
        return Err(DataError::EmptyTable { path: path.clone() });
    }
    Ok((header, out))
}

/// [`for_each_batch_par`] over a directory's part files: the files in
/// parallel, each cut into parts as a single file is, all parts in file
/// order. Empty part files are skipped; the table as a whole must have rows.
#[allow(clippy::type_complexity)]
fn dir_parts<S, I, F, B>(
    opts: &ReadOptions,
    files: Vec<std::path::PathBuf>,
    refs: &[ColumnRef],
    on_bad: OnBadRow,
    init: &I,
    f: &F,
    batch: &B,
) -> Result<(Header, Vec<Part<S>>), DataError>
where
    S: Send,
    I: Fn() -> S + Sync,
    F: Fn(&mut S, u64, &[&[u8]], &Header) -> Result<(), DataError> + Sync,
    B: Fn(&mut S, u64, &[BatchCol], &Header) -> Result<bool, DataError> + Sync,
{
    use rayon::prelude::*;
    let per_file: Vec<Result<Option<(Header, Vec<Part<S>>)>, DataError>> = files
        .into_par_iter()
        .map(|file| {
            let part = ReadOptions {
                path: file,
                ..opts.clone()
            };
            match file_parts(&part, refs, on_bad, init, f, batch) {
                Ok(x) => Ok(Some(x)),
                Err(DataError::EmptyFile { .. } | DataError::EmptyTable { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .collect();
    let mut header = None;
    let mut out = Vec::new();
    for r in per_file {
        if let Some((h, parts)) = r? {
            header.get_or_insert(h);
            out.extend(parts);
        }
    }
    match header {
        Some(h) => Ok((h, out)),
        None => Err(DataError::EmptyTable {
            path: opts.path.clone(),
        }),
    }
}

/// A delimited file without quoting, of at least 256 KiB a thread and with
/// its column names known (header or `columns`), read as one byte range a
/// thread. `None` (read it in one pass instead) when the file does not
/// qualify or any part fails: the one pass then names the file, line and
/// column of the first bad row, as always.
#[allow(clippy::type_complexity)]
pub(super) fn plain_parts<S, I, F>(
    opts: &ReadOptions,
    refs: &[ColumnRef],
    on_bad: OnBadRow,
    init: &I,
    f: &F,
) -> Option<(Header, Vec<Part<S>>)>
where
    S: Send,
    I: Fn() -> S + Sync,
    F: Fn(&mut S, u64, &[&[u8]], &Header) -> Result<(), DataError> + Sync,
{
    use rayon::prelude::*;
    const MIN_PART: u64 = 256 << 10;
    let threads = rayon::current_num_threads() as u64;
    let len = std::fs::metadata(&opts.path).ok()?.len();
    if opts.quoting || !(opts.header || opts.columns.is_some()) || threads < 2 {
        return None;
    }
    let n = threads.min(len / MIN_PART);
    if n < 2 {
        return None;
    }
    let parts: Vec<Result<(Header, Part<S>), DataError>> = (0..n)
        .into_par_iter()
        .map(|k| {
            let range = (
                len * k / n,
                if k + 1 == n {
                    u64::MAX
                } else {
                    len * (k + 1) / n
                },
            );
            let mut state = init();
            let mut skipped = 0;
            let (header, rows) = read_plain(
                opts,
                refs,
                on_bad,
                &mut skipped,
                Some(range),
                &mut |l, x, h| f(&mut state, l, x, h),
            )?;
            Ok((
                header,
                Part {
                    state,
                    rows,
                    skipped,
                },
            ))
        })
        .collect();
    let mut header = None;
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        let (h, part) = p.ok()?;
        header.get_or_insert(h);
        out.push(part);
    }
    if out.iter().all(|p| p.rows == 0 && p.skipped == 0) {
        return None;
    }
    Some((header?, out))
}
