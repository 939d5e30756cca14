//! Table readers: delimited text (own byte-level splitter for unquoted data
//! and any delimiter, including multi-byte ones like `::`; the `csv` crate's
//! `ByteRecord` reader for quoted data) and Parquet (arrow record batches).
//!
//! All readers hand rows to a callback as byte slices of the *requested*
//! columns only, so no per-row `String` is allocated. Line numbers are
//! 1-based and count the header line (Parquet: the 1-based row number).

//!
//! Files: `fields` (one field's bytes: decoding and parsing), `delimited`
//! (CSV/TSV), `columnar` (Parquet), `parts` (one table read in parallel parts); this
//! file holds the header resolution and [`for_each_row`], which picks the
//! reader.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::config::{ColumnRef, Format, OnBadRow, ReadOptions};
use crate::error::DataError;
use crate::table_files::table_files;

mod columnar;
mod delimited;
mod fields;
mod parts;

pub(crate) use columnar::BatchCol;
use columnar::*;
use delimited::*;
pub(crate) use fields::*;
pub(crate) use parts::*;

/// Reuses a vector's allocation for a different element lifetime (the
/// in-place `collect` specialization keeps the buffer; no unsafe code).
pub(super) fn recycle<'b>(mut v: Vec<&[u8]>) -> Vec<&'b [u8]> {
    v.clear();
    v.into_iter().map(|_| -> &'b [u8] { &[] }).collect()
}

/// Shape of a table as seen by the callback.
pub(crate) struct Header {
    /// Display names of the requested columns (for error messages).
    pub names: Vec<String>,
    /// The file the rows come from (a part file of a directory table).
    pub path: std::path::PathBuf,
}

/// Is this error about one row (so `on_bad_row = "skip"` may skip it)?
pub(crate) fn is_row_error(e: &DataError) -> bool {
    matches!(
        e,
        DataError::FieldCount { .. } | DataError::Parse { .. } | DataError::Encoding { .. }
    )
}

pub(super) fn resolve(
    path: &Path,
    header_line: Option<u64>,
    refs: &[ColumnRef],
    names: Option<&[String]>,
    n_fields: Option<usize>,
) -> Result<(Vec<usize>, Vec<String>), DataError> {
    let mut idx = Vec::with_capacity(refs.len());
    let mut disp = Vec::with_capacity(refs.len());
    for r in refs {
        match r {
            ColumnRef::Index(i) => {
                if let Some(n) = n_fields {
                    if *i >= n {
                        return Err(DataError::UnknownColumn {
                            path: path.to_path_buf(),
                            header_line,
                            column: r.to_string(),
                            available: available(names, n),
                        });
                    }
                }
                idx.push(*i);
                disp.push(
                    names
                        .and_then(|n| n.get(*i).cloned())
                        .unwrap_or_else(|| format!("#{i}")),
                );
            }
            ColumnRef::Name(n) => {
                let pos = names.and_then(|ns| ns.iter().position(|x| x == n));
                match pos {
                    Some(p) => {
                        idx.push(p);
                        disp.push(n.clone());
                    }
                    None => {
                        return Err(DataError::UnknownColumn {
                            path: path.to_path_buf(),
                            header_line,
                            column: n.clone(),
                            available: match names {
                                Some(_) => available(names, 0),
                                None => vec![
                                    "(no header: set `header = true` or `columns = [...]`, or use 0-based positions)"
                                        .to_string(),
                                ],
                            },
                        })
                    }
                }
            }
        }
    }
    Ok((idx, disp))
}

pub(super) fn available(names: Option<&[String]>, n: usize) -> Vec<String> {
    match names {
        Some(ns) => ns.to_vec(),
        None => (0..n).map(|i| format!("#{i}")).collect(),
    }
}

/// Reads every data row of a table (a file, or a directory of part files
/// read in order: see `crate::table_files`), calling `f(line, fields)` with the
/// requested columns (in `refs` order). Rows the callback rejects with a
/// row-level error are skipped and counted when `on_bad == Skip`.
///
/// Returns the number of data rows handed to `f` successfully.
///
/// # Errors
/// Missing file ([`DataError::Io`]), unknown column, wrong field count,
/// malformed record, a 0-byte file ([`DataError::EmptyFile`]), no data
/// rows ([`DataError::EmptyTable`]), or any error
/// of `f`.
pub(crate) fn for_each_row<F>(
    opts: &ReadOptions,
    refs: &[ColumnRef],
    on_bad: OnBadRow,
    skipped: &mut usize,
    mut f: F,
) -> Result<(Header, usize), DataError>
where
    F: FnMut(u64, &[&[u8]], &Header) -> Result<(), DataError>,
{
    let files = table_files(&opts.path, opts.format)?;
    if files.len() == 1 && files[0] == opts.path {
        return for_each_file_row(opts, refs, on_bad, skipped, &mut f);
    }
    // a directory: its parts in order, each with its own header and lines
    let mut header = None;
    let mut rows = 0;
    let skipped_before = *skipped;
    for file in files {
        let part = ReadOptions {
            path: file,
            ..opts.clone()
        };
        match for_each_file_row(&part, refs, on_bad, skipped, &mut f) {
            Ok((h, n)) => {
                header.get_or_insert(h);
                rows += n;
            }
            Err(DataError::EmptyFile { .. } | DataError::EmptyTable { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    match header {
        Some(h) if rows > 0 || *skipped > skipped_before => Ok((h, rows)),
        _ => Err(DataError::EmptyTable {
            path: opts.path.clone(),
        }),
    }
}

/// The error for a 0-byte file: [`DataError::EmptyFile`] for a text file
/// (a directory's empty text parts are skipped), a [`DataError::Parquet`]
/// for Parquet, whose every file (even one of no rows) holds a footer: 0
/// bytes is a write that did not finish, never skipped.
pub(crate) fn empty_file(opts: &ReadOptions) -> DataError {
    match opts.format {
        Format::Parquet => DataError::Parquet {
            path: opts.path.clone(),
            message:
                "the file is empty (0 bytes), not a Parquet file (a write that did not finish?)"
                    .into(),
        },
        _ => DataError::EmptyFile {
            path: opts.path.clone(),
        },
    }
}

/// [`for_each_row`] over one file.
fn for_each_file_row<F>(
    opts: &ReadOptions,
    refs: &[ColumnRef],
    on_bad: OnBadRow,
    skipped: &mut usize,
    f: &mut F,
) -> Result<(Header, usize), DataError>
where
    F: FnMut(u64, &[&[u8]], &Header) -> Result<(), DataError>,
{
    if std::fs::metadata(&opts.path).is_ok_and(|m| m.is_file() && m.len() == 0) {
        return Err(empty_file(opts));
    }
    let skipped_before = *skipped;
    let (header, rows) = match opts.format {
        Format::Parquet => read_parquet_groups(
            opts,
            refs,
            on_bad,
            skipped,
            None,
            f,
            &mut |f: &mut F, line, fields, h| f(line, fields, h),
            &mut |_, _, _, _| Ok(false),
        )?,
        _ if opts.quoting => read_quoted(opts, refs, on_bad, skipped, f)?,
        _ => read_plain(opts, refs, on_bad, skipped, None, f)?,
    };
    if rows == 0 && *skipped == skipped_before {
        return Err(DataError::EmptyTable {
            path: opts.path.clone(),
        });
    }
    Ok((header, rows))
}

pub(super) fn open(path: &Path) -> Result<File, DataError> {
    File::open(path).map_err(|e| DataError::io(path, e))
}

/// Reads a whole (small) file into memory — used by tests and the bench.
#[allow(dead_code)]
pub(crate) fn read_all(path: &Path) -> Result<Vec<u8>, DataError> {
    let mut v = Vec::new();
    open(path)?
        .read_to_end(&mut v)
        .map_err(|e| DataError::io(path, e))?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Encoding;
    use arrow_array::ArrayRef;

    #[test]
    fn nested_parquet_columns_are_rejected_not_stringified() {
        // A list<string> column used to be cast to text ("[a, b]") and
        // silently became one odd vocabulary token per list.
        use arrow_array::builder::{ListBuilder, StringBuilder};
        let mut b = ListBuilder::new(StringBuilder::new());
        b.values().append_value("a");
        b.values().append_value("b");
        b.append(true);
        let a: ArrayRef = std::sync::Arc::new(b.finish());
        let err = ColText::new(&a, Path::new("items.parquet"), "tags")
            .err()
            .expect("a list column must be an error")
            .to_string();
        assert!(
            err.contains("items.parquet") && err.contains("`tags`"),
            "{err}"
        );
        assert!(
            err.contains("nested type") && err.contains("separator"),
            "{err}"
        );
    }

    #[test]
    fn splitter_handles_multibyte_delimiters_and_empty_fields() {
        let mut s = Vec::new();
        split_fields(b"1::Toy Story::A|B", b"::", &mut s);
        assert_eq!(s, vec![(0, 1), (3, 12), (14, 17)]);
        split_fields(b"a||b|", b"|", &mut s);
        assert_eq!(s, vec![(0, 1), (2, 2), (3, 4), (5, 5)]);
        split_fields(b"a:::b", b"::", &mut s);
        // "a" then ":b" (leftmost-first, non-overlapping).
        assert_eq!(s, vec![(0, 1), (3, 5)]);
    }

    #[test]
    fn integers_parse_strictly() {
        assert_eq!(parse_i64(b" 881250949"), Some(881250949));
        assert_eq!(parse_i64(b"-5"), Some(-5));
        assert_eq!(parse_i64(b"12a"), None);
        assert_eq!(parse_i64(b""), None);
        assert_eq!(parse_i64(b"99999999999999999999"), None);
    }

    #[test]
    fn latin1_maps_bytes_to_code_points() {
        assert_eq!(decode(b"caf\xe9", Encoding::Latin1).unwrap(), "café");
        assert!(decode(b"caf\xe9", Encoding::Utf8).is_none());
    }
}
