//! Parquet: arrow record batches of the requested columns, each value
//! written as the bytes a delimited file would hold.

use std::path::Path;

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;

use crate::config::{ColumnRef, OnBadRow, ReadOptions};
use crate::error::DataError;

use super::*;

/// A Parquet column viewed as per-row text.
pub(super) enum ColText {
    Str(arrow_array::StringArray),
    LargeStr(arrow_array::LargeStringArray),
    I64(arrow_array::Int64Array),
    I32(arrow_array::Int32Array),
    U64(arrow_array::UInt64Array),
    U32(arrow_array::UInt32Array),
    F64(arrow_array::Float64Array),
    F32(arrow_array::Float32Array),
    Bool(arrow_array::BooleanArray),
}

impl ColText {
    pub(super) fn new(a: &ArrayRef, path: &Path, col: &str) -> Result<Self, DataError> {
        use arrow_array::cast::AsArray;
        use arrow_array::types::*;
        Ok(match a.data_type() {
            DataType::Utf8 => ColText::Str(a.as_string::<i32>().clone()),
            DataType::LargeUtf8 => ColText::LargeStr(a.as_string::<i64>().clone()),
            DataType::Int64 => ColText::I64(a.as_primitive::<Int64Type>().clone()),
            DataType::Int32 => ColText::I32(a.as_primitive::<Int32Type>().clone()),
            DataType::UInt64 => ColText::U64(a.as_primitive::<UInt64Type>().clone()),
            DataType::UInt32 => ColText::U32(a.as_primitive::<UInt32Type>().clone()),
            DataType::Float64 => ColText::F64(a.as_primitive::<Float64Type>().clone()),
            DataType::Float32 => ColText::F32(a.as_primitive::<Float32Type>().clone()),
            DataType::Boolean => ColText::Bool(a.as_boolean().clone()),
            // Spark's TIMESTAMP (INT96 or INT64, any unit) and DATE columns:
            // their stored integer, in their own unit (ms, µs or ns since
            // the epoch; days for DATE32, ms for DATE64). The temporal split
            // only orders a user's rows, so the unit does not matter as long
            // as the parts agree (Spark writes one schema for all parts).
            DataType::Int8
            | DataType::Int16
            | DataType::UInt8
            | DataType::UInt16
            | DataType::Timestamp(_, _)
            | DataType::Date32
            | DataType::Date64 => {
                let c = arrow_cast::cast(a, &DataType::Int64).map_err(|e| DataError::Parquet {
                    path: path.to_path_buf(),
                    message: format!("column `{col}`: {e}"),
                })?;
                ColText::I64(c.as_primitive::<Int64Type>().clone())
            }
            other if other.is_nested() => {
                return Err(DataError::Parquet {
                    path: path.to_path_buf(),
                    message: format!(
                        "column `{col}` has nested type {other}: store a multi-valued feature as \
                         one string joined by its separator (default `|`), or as a long (key, value) \
                         table (`table = ...`)"
                    ),
                })
            }
            other => {
                let c = arrow_cast::cast(a, &DataType::Utf8).map_err(|_| DataError::Parquet {
                    path: path.to_path_buf(),
                    message: format!(
                        "column `{col}` has unsupported type {other} (use string, integer, float or boolean)"
                    ),
                })?;
                ColText::Str(c.as_string::<i32>().clone())
            }
        })
    }

    /// Writes row `i` as text into `out` (null → empty).
    #[inline]
    pub(super) fn write(&self, i: usize, out: &mut Vec<u8>) {
        out.clear();
        macro_rules! int {
            ($a:expr) => {
                if $a.is_valid(i) {
                    out.extend_from_slice(itoa::Buffer::new().format($a.value(i)).as_bytes());
                }
            };
        }
        match self {
            ColText::Str(a) => {
                if a.is_valid(i) {
                    out.extend_from_slice(a.value(i).as_bytes())
                }
            }
            ColText::LargeStr(a) => {
                if a.is_valid(i) {
                    out.extend_from_slice(a.value(i).as_bytes())
                }
            }
            ColText::I64(a) => int!(a),
            ColText::I32(a) => int!(a),
            ColText::U64(a) => int!(a),
            ColText::U32(a) => int!(a),
            ColText::F64(a) => {
                if a.is_valid(i) {
                    out.extend_from_slice(a.value(i).to_string().as_bytes())
                }
            }
            ColText::F32(a) => {
                if a.is_valid(i) {
                    out.extend_from_slice(a.value(i).to_string().as_bytes())
                }
            }
            ColText::Bool(a) => {
                if a.is_valid(i) {
                    out.extend_from_slice(if a.value(i) { b"1" } else { b"0" })
                }
            }
        }
    }
}

/// One column of a record batch as a batch callback of
/// [`read_parquet_groups`] sees it: typed where that is cheap to use.
pub(crate) enum BatchCol<'a> {
    /// An integer column without nulls (Parquet int8 to int64, uint8 to
    /// uint32, and uint64 when every value fits an `i64`): each row's text
    /// on the row path is exactly the decimal form of its value.
    Int(std::borrow::Cow<'a, [i64]>),
    /// A string column without nulls (its values are valid UTF-8).
    Str(&'a arrow_array::StringArray),
    /// Anything else: the row path reads it.
    Other,
}

impl<'a> BatchCol<'a> {
    fn new(c: &'a ColText) -> Self {
        use std::borrow::Cow;
        macro_rules! widen {
            ($a:expr) => {
                BatchCol::Int(Cow::Owned($a.values().iter().map(|&v| v as i64).collect()))
            };
        }
        let nulls = match c {
            ColText::Str(a) if a.null_count() == 0 => return BatchCol::Str(a),
            ColText::I64(a) => a.null_count(),
            ColText::I32(a) => a.null_count(),
            ColText::U64(a) => a.null_count(),
            ColText::U32(a) => a.null_count(),
            _ => return BatchCol::Other,
        };
        if nulls > 0 {
            return BatchCol::Other;
        }
        match c {
            ColText::I64(a) => BatchCol::Int(Cow::Borrowed(a.values())),
            ColText::I32(a) => widen!(a),
            ColText::U32(a) => widen!(a),
            ColText::U64(a) if a.values().iter().all(|&v| v <= i64::MAX as u64) => widen!(a),
            _ => BatchCol::Other,
        }
    }
}

/// Reads a Parquet file, or only row groups `gs` of it with `group =
/// Some((gs, the first row of gs[0]))` (`gs` consecutive; row numbers then
/// count from that row).
///
/// Each record batch is first offered whole to `batch(state, line of its
/// first row, columns, header)`: when it returns true it has taken every
/// row of the batch (they count as read), else the rows go one by one to
/// `f(state, line, fields, header)` as text. A batch callback must take a
/// batch only when the row path would accept every row of it and build
/// the same `state` from them (so errors, skips and results never depend
/// on which path ran); an error it returns ends the read (never a row
/// error: it is not skipped).
#[allow(clippy::too_many_arguments)]
pub(super) fn read_parquet_groups<S, F, B>(
    opts: &ReadOptions,
    refs: &[ColumnRef],
    on_bad: OnBadRow,
    skipped: &mut usize,
    group: Option<(Vec<usize>, u64)>,
    state: &mut S,
    f: &mut F,
    batch: &mut B,
) -> Result<(Header, usize), DataError>
where
    F: FnMut(&mut S, u64, &[&[u8]], &Header) -> Result<(), DataError>,
    B: FnMut(&mut S, u64, &[BatchCol], &Header) -> Result<bool, DataError>,
{
    use ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use ::parquet::arrow::ProjectionMask;
    let path = &opts.path;
    let perr = |e: &dyn std::fmt::Display| DataError::Parquet {
        path: path.clone(),
        message: e.to_string(),
    };
    let file = open(path)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| perr(&e))?;
    let names: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let (idx, disp) = resolve(path, None, refs, Some(&names), Some(names.len()))?;
    let header = Header {
        names: disp,
        path: opts.path.clone(),
    };
    let mut roots: Vec<usize> = idx.clone();
    roots.sort_unstable();
    roots.dedup();
    // Position of each requested column inside the projected batch.
    let pos: Vec<usize> = idx
        .iter()
        .map(|i| roots.binary_search(i).expect("in roots"))
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
    let builder = match &group {
        Some((gs, _)) => builder.with_row_groups(gs.clone()),
        None => builder,
    };
    let reader = builder
        .with_projection(mask)
        .with_batch_size(65536)
        .build()
        .map_err(|e| perr(&e))?;
    let mut rows = 0usize;
    let mut row_no: u64 = group.as_ref().map_or(0, |(_, first)| *first);
    let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); refs.len()];
    let mut store: Vec<&'static [u8]> = Vec::with_capacity(refs.len());
    for rb in reader {
        let rb: RecordBatch = rb.map_err(|e| perr(&e))?;
        let cols: Vec<ColText> = pos
            .iter()
            .zip(&header.names)
            .map(|(&p, n)| ColText::new(rb.column(p), path, n))
            .collect::<Result<_, _>>()?;
        let typed: Vec<BatchCol> = cols.iter().map(BatchCol::new).collect();
        if batch(state, row_no + 1, &typed, &header)? {
            row_no += rb.num_rows() as u64;
            rows += rb.num_rows();
            continue;
        }
        drop(typed);
        for i in 0..rb.num_rows() {
            row_no += 1;
            for (c, b) in cols.iter().zip(bufs.iter_mut()) {
                c.write(i, b);
            }
            let mut fields = recycle(std::mem::take(&mut store));
            fields.extend(bufs.iter().map(|b| b.as_slice()));
            let res = f(state, row_no, &fields, &header);
            store = recycle(fields);
            handle(res, on_bad, skipped, &mut rows)?;
        }
    }
    Ok((header, rows))
}
