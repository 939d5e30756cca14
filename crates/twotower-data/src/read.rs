//! Table readers: delimited text (own byte-level splitter for unquoted data
//! and any delimiter, including multi-byte ones like `::`; the `csv` crate's
//! `ByteRecord` reader for quoted data) and Parquet (arrow record batches).
//!
//! All readers hand rows to a callback as byte slices of the *requested*
//! columns only, so no per-row `String` is allocated. Line numbers are
//! 1-based and count the header line (Parquet: the 1-based row number).

use std::borrow::Cow;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;

use crate::config::{ColumnRef, Encoding, Format, OnBadRow, ReadOptions};
use crate::error::{snippet, DataError};

/// Decodes a field in the file's encoding.
pub(crate) fn decode(bytes: &[u8], enc: Encoding) -> Option<Cow<'_, str>> {
    match enc {
        Encoding::Utf8 => std::str::from_utf8(bytes).ok().map(Cow::Borrowed),
        Encoding::Latin1 => {
            if bytes.is_ascii() {
                // SAFETY-free fast path: ASCII is valid UTF-8.
                std::str::from_utf8(bytes).ok().map(Cow::Borrowed)
            } else {
                Some(Cow::Owned(bytes.iter().map(|&b| b as char).collect()))
            }
        }
    }
}

/// Whether `bytes` is valid in `enc` (Latin-1: always).
#[inline]
pub(crate) fn valid(bytes: &[u8], enc: Encoding) -> bool {
    match enc {
        Encoding::Utf8 => bytes.is_ascii() || std::str::from_utf8(bytes).is_ok(),
        Encoding::Latin1 => true,
    }
}

/// Trims ASCII spaces/tabs (not the delimiter) from both ends.
#[inline]
pub(crate) fn trim(b: &[u8]) -> &[u8] {
    let mut s = 0;
    let mut e = b.len();
    while s < e && (b[s] == b' ' || b[s] == b'\t') {
        s += 1;
    }
    while e > s && (b[e - 1] == b' ' || b[e - 1] == b'\t') {
        e -= 1;
    }
    &b[s..e]
}

/// Parses a (trimmed) decimal integer.
#[inline]
pub(crate) fn parse_i64(b: &[u8]) -> Option<i64> {
    let b = trim(b);
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(d as i64)?;
    }
    Some(if neg { -v } else { v })
}

/// Parses a (trimmed) float.
pub(crate) fn parse_f64(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(trim(b)).ok()?;
    if s.is_empty() {
        return None;
    }
    s.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// Reuses a vector's allocation for a different element lifetime (the
/// in-place `collect` specialization keeps the buffer; no unsafe code).
fn recycle<'b>(mut v: Vec<&[u8]>) -> Vec<&'b [u8]> {
    v.clear();
    v.into_iter().map(|_| -> &'b [u8] { &[] }).collect()
}

/// Shape of a table as seen by the callback.
pub(crate) struct Header {
    /// Display names of the requested columns (for error messages).
    pub names: Vec<String>,
}

/// Is this error about one row (so `on_bad_row = "skip"` may skip it)?
pub(crate) fn is_row_error(e: &DataError) -> bool {
    matches!(
        e,
        DataError::FieldCount { .. } | DataError::Parse { .. } | DataError::Encoding { .. }
    )
}

fn resolve(
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

fn available(names: Option<&[String]>, n: usize) -> Vec<String> {
    match names {
        Some(ns) => ns.to_vec(),
        None => (0..n).map(|i| format!("#{i}")).collect(),
    }
}

/// Reads every data row of a table, calling `f(line, fields)` with the
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
    if std::fs::metadata(&opts.path).is_ok_and(|m| m.is_file() && m.len() == 0) {
        return Err(DataError::EmptyFile {
            path: opts.path.clone(),
        });
    }
    let (header, rows) = match opts.format {
        Format::Parquet => read_parquet_groups(opts, refs, on_bad, skipped, None, &mut f)?,
        _ if opts.quoting => read_quoted(opts, refs, on_bad, skipped, &mut f)?,
        _ => read_plain(opts, refs, on_bad, skipped, None, &mut f)?,
    };
    if rows == 0 && *skipped == 0 {
        return Err(DataError::EmptyTable {
            path: opts.path.clone(),
        });
    }
    Ok((header, rows))
}

fn open(path: &Path) -> Result<File, DataError> {
    File::open(path).map_err(|e| DataError::io(path, e))
}

/// A field splitter for one delimiter (single byte: `memchr`; longer:
/// a prebuilt `memmem` finder).
enum Splitter {
    Byte(u8),
    Multi(Box<memchr::memmem::Finder<'static>>),
}

impl Splitter {
    fn new(delim: &[u8]) -> Splitter {
        if delim.len() == 1 {
            Splitter::Byte(delim[0])
        } else {
            Splitter::Multi(Box::new(memchr::memmem::Finder::new(delim).into_owned()))
        }
    }

    /// Splits `line` into field spans (reusing `spans`).
    #[inline]
    fn split(&self, line: &[u8], spans: &mut Vec<(usize, usize)>) {
        spans.clear();
        let mut start = 0;
        match self {
            Splitter::Byte(d) => {
                for p in memchr::memchr_iter(*d, line) {
                    spans.push((start, p));
                    start = p + 1;
                }
            }
            Splitter::Multi(f) => {
                let n = f.needle().len();
                for p in f.find_iter(line) {
                    // find_iter yields non-overlapping matches, leftmost first.
                    spans.push((start, p));
                    start = p + n;
                }
            }
        }
        spans.push((start, line.len()));
    }
}

#[cfg(test)]
fn split_fields(line: &[u8], delim: &[u8], spans: &mut Vec<(usize, usize)>) {
    Splitter::new(delim).split(line, spans)
}

fn handle(
    res: Result<(), DataError>,
    on_bad: OnBadRow,
    skipped: &mut usize,
    rows: &mut usize,
) -> Result<(), DataError> {
    match res {
        Ok(()) => {
            *rows += 1;
            Ok(())
        }
        Err(e) if on_bad == OnBadRow::Skip && is_row_error(&e) => {
            *skipped += 1;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Yields the lines of a reader from a large reusable buffer, without
/// copying each line.
struct Lines2<R> {
    rd: R,
    /// Offset in the file of `buf[0]`.
    base: u64,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> Lines2<R> {
    fn new(rd: R) -> Self {
        Lines2 {
            rd,
            base: 0,
            buf: vec![0; 1 << 20],
            start: 0,
            end: 0,
            eof: false,
        }
    }

    /// The next line (without `\n` / `\r\n`), or `None` at the end.
    fn next(&mut self) -> std::io::Result<Option<(usize, usize)>> {
        loop {
            if let Some(p) = memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                let (s, mut e) = (self.start, self.start + p);
                self.start = e + 1;
                if e > s && self.buf[e - 1] == b'\r' {
                    e -= 1;
                }
                return Ok(Some((s, e)));
            }
            if self.eof {
                if self.start < self.end {
                    let (s, mut e) = (self.start, self.end);
                    self.start = self.end;
                    if self.buf[e - 1] == b'\r' {
                        e -= 1;
                    }
                    return Ok(Some((s, e)));
                }
                return Ok(None);
            }
            self.buf.copy_within(self.start..self.end, 0);
            self.base += self.start as u64;
            self.end -= self.start;
            self.start = 0;
            if self.end == self.buf.len() {
                let n = self.buf.len() * 2;
                self.buf.resize(n, 0);
            }
            let n = loop {
                match self.rd.read(&mut self.buf[self.end..]) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    r => break r?,
                }
            };
            if n == 0 {
                self.eof = true;
            }
            self.end += n;
        }
    }
}

/// Reads a delimited file without quoting; with `range = Some((start,
/// end))` only the data lines that begin at a byte in `start..end` (the
/// header is still read from the top; line numbers then count from
/// `start`, not from the top, so callers re-read the file in one pass for
/// an error message).
fn read_plain<F>(
    opts: &ReadOptions,
    refs: &[ColumnRef],
    on_bad: OnBadRow,
    skipped: &mut usize,
    range: Option<(u64, u64)>,
    f: &mut F,
) -> Result<(Header, usize), DataError>
where
    F: FnMut(u64, &[&[u8]], &Header) -> Result<(), DataError>,
{
    let path = &opts.path;
    let mut lines = Lines2::new(open(path)?);
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity(32);
    let mut line_no: u64 = 0;
    let splitter = Splitter::new(&opts.delimiter);

    // The next non-empty line's span in `lines.buf`.
    let next_line = |lines: &mut Lines2<File>,
                     line_no: &mut u64|
     -> Result<Option<(usize, usize)>, DataError> {
        loop {
            match lines.next().map_err(|e| DataError::io(path, e))? {
                None => return Ok(None),
                Some((s, e)) => {
                    *line_no += 1;
                    if e > s {
                        return Ok(Some((s, e)));
                    }
                }
            }
        }
    };

    let mut names: Option<Vec<String>> = opts.columns.clone();
    let mut header_line = None;
    if opts.header {
        let Some((s, e)) = next_line(&mut lines, &mut line_no)? else {
            return Err(DataError::EmptyTable { path: path.clone() });
        };
        let buf = &lines.buf[s..e];
        splitter.split(buf, &mut spans);
        let mut hn = Vec::with_capacity(spans.len());
        for &(s, e) in &spans {
            let v = trim(&buf[s..e]);
            let v = decode(v, opts.encoding).ok_or_else(|| DataError::Encoding {
                path: path.clone(),
                line: line_no,
                column: "header".into(),
            })?;
            hn.push(v.into_owned());
        }
        if names.is_none() {
            names = Some(hn);
            header_line = Some(line_no);
        }
    }
    let mut expected: Option<usize> = names.as_ref().map(|n| n.len());
    let mut resolved: Option<(Vec<usize>, Header)> = None;
    if let Some(n) = expected {
        let (idx, disp) = resolve(path, header_line, refs, names.as_deref(), Some(n))?;
        resolved = Some((idx, Header { names: disp }));
    }
    if let Some((start, _)) = range.filter(|r| r.0 > 0) {
        use std::io::{Seek, SeekFrom};
        let mut file = open(path)?;
        file.seek(SeekFrom::Start(start - 1))
            .map_err(|e| DataError::io(path, e))?;
        lines = Lines2::new(file);
        lines.base = start - 1;
        // the line through byte start - 1 began before `start`: not ours
        lines.next().map_err(|e| DataError::io(path, e))?;
    }
    let end = range.map_or(u64::MAX, |r| r.1);
    let mut store: Vec<&'static [u8]> = Vec::with_capacity(refs.len());
    let mut rows = 0usize;
    while let Some((s, e)) = next_line(&mut lines, &mut line_no)? {
        if lines.base + s as u64 >= end {
            break;
        }
        let buf = &lines.buf[s..e];
        let mut fields = recycle(std::mem::take(&mut store));
        splitter.split(buf, &mut spans);
        if expected.is_none() {
            expected = Some(spans.len());
            let (idx, disp) =
                resolve(path, header_line, refs, names.as_deref(), Some(spans.len()))?;
            resolved = Some((idx, Header { names: disp }));
        }
        let (idx, header) = resolved.as_ref().expect("resolved above");
        let exp = expected.unwrap_or(0);
        let res = if spans.len() != exp {
            Err(DataError::FieldCount {
                path: path.clone(),
                line: line_no,
                expected: exp,
                got: spans.len(),
            })
        } else {
            for &i in idx {
                let (s, e) = spans[i];
                fields.push(&buf[s..e]);
            }
            f(line_no, &fields, header)
        };
        store = recycle(fields);
        handle(res, on_bad, skipped, &mut rows)?;
    }
    let header = match resolved {
        Some((_, h)) => h,
        None => {
            return Err(DataError::EmptyTable { path: path.clone() });
        }
    };
    Ok((header, rows))
}

fn read_quoted<F>(
    opts: &ReadOptions,
    refs: &[ColumnRef],
    on_bad: OnBadRow,
    skipped: &mut usize,
    f: &mut F,
) -> Result<(Header, usize), DataError>
where
    F: FnMut(u64, &[&[u8]], &Header) -> Result<(), DataError>,
{
    let path = &opts.path;
    let (file, newlines) = LineCounter::new(open(path)?);
    let mut lines = Lines { newlines, seen: 0 };
    let mut rd = csv::ReaderBuilder::new()
        .delimiter(opts.delimiter[0])
        .has_headers(false)
        .flexible(true)
        .quoting(true)
        .buffer_capacity(1 << 20)
        .from_reader(file);
    let mut rec = csv::ByteRecord::new();
    let csv_err = |e: csv::Error, lines: &mut Lines| -> DataError {
        let line = e.position().map(|p| lines.line_at(p.byte())).unwrap_or(0);
        let message = e.to_string();
        match e.into_kind() {
            csv::ErrorKind::Io(io) => DataError::io(path, io),
            _ => DataError::Malformed {
                path: path.clone(),
                line,
                message,
            },
        }
    };
    let mut names: Option<Vec<String>> = opts.columns.clone();
    let mut header_line = None;
    if opts.header {
        if !rd
            .read_byte_record(&mut rec)
            .map_err(|e| csv_err(e, &mut lines))?
        {
            return Err(DataError::EmptyTable { path: path.clone() });
        }
        let line = lines.record_line(rd.position().byte(), &rec);
        let mut hn = Vec::with_capacity(rec.len());
        for v in rec.iter() {
            let v = decode(trim(v), opts.encoding).ok_or_else(|| DataError::Encoding {
                path: path.clone(),
                line,
                column: "header".into(),
            })?;
            hn.push(v.into_owned());
        }
        if names.is_none() {
            names = Some(hn);
            header_line = Some(line);
        }
    }
    let mut expected: Option<usize> = names.as_ref().map(|n| n.len());
    let mut resolved: Option<(Vec<usize>, Header)> = None;
    if let Some(n) = expected {
        let (idx, disp) = resolve(path, header_line, refs, names.as_deref(), Some(n))?;
        resolved = Some((idx, Header { names: disp }));
    }
    let mut rows = 0usize;
    let mut store: Vec<&'static [u8]> = Vec::with_capacity(refs.len());
    loop {
        let more = match rd.read_byte_record(&mut rec) {
            Ok(m) => m,
            Err(e) => {
                let de = csv_err(e, &mut lines);
                if on_bad == OnBadRow::Skip && matches!(de, DataError::Malformed { .. }) {
                    *skipped += 1;
                    continue;
                }
                return Err(de);
            }
        };
        if !more {
            break;
        }
        let line = lines.record_line(rd.position().byte(), &rec);
        if rec.len() == 1 && rec.get(0).is_some_and(|v| v.is_empty()) {
            continue; // blank line
        }
        if expected.is_none() {
            expected = Some(rec.len());
            let (idx, disp) = resolve(path, header_line, refs, names.as_deref(), Some(rec.len()))?;
            resolved = Some((idx, Header { names: disp }));
        }
        let (idx, header) = resolved.as_ref().expect("resolved above");
        let exp = expected.unwrap_or(0);
        let mut fields = recycle(std::mem::take(&mut store));
        let res = if rec.len() != exp {
            Err(DataError::FieldCount {
                path: path.clone(),
                line,
                expected: exp,
                got: rec.len(),
            })
        } else {
            fields.clear();
            for &i in idx {
                fields.push(&rec[i]);
            }
            f(line, &fields, header)
        };
        store = recycle(fields);
        handle(res, on_bad, skipped, &mut rows)?;
    }
    let header = match resolved {
        Some((_, h)) => h,
        None => return Err(DataError::EmptyTable { path: path.clone() }),
    };
    Ok((header, rows))
}

/// Records the byte offsets of the newlines read through it, so that line
/// numbers can be derived from the `csv` crate's byte positions (its own
/// line counter does not count blank lines).
struct LineCounter<R> {
    inner: R,
    pos: u64,
    newlines: Newlines,
}

type Newlines = std::rc::Rc<std::cell::RefCell<std::collections::VecDeque<u64>>>;

impl<R: Read> LineCounter<R> {
    fn new(inner: R) -> (Self, Newlines) {
        let n: Newlines = Default::default();
        (
            LineCounter {
                inner,
                pos: 0,
                newlines: n.clone(),
            },
            n,
        )
    }
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut nl = self.newlines.borrow_mut();
        for p in memchr::memchr_iter(b'\n', &buf[..n]) {
            nl.push_back(self.pos + p as u64);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Converts byte offsets (non-decreasing) to 1-based line numbers.
struct Lines {
    newlines: Newlines,
    seen: u64,
}

impl Lines {
    fn line_at(&mut self, byte: u64) -> u64 {
        let mut nl = self.newlines.borrow_mut();
        while nl.front().is_some_and(|&p| p < byte) {
            nl.pop_front();
            self.seen += 1;
        }
        self.seen + 1
    }

    /// First line of a record that ended at byte `end` (exclusive, terminator
    /// included): the line of its last byte minus the line breaks inside
    /// its (quoted) fields. Blank lines skipped before it are counted.
    fn record_line(&mut self, end: u64, rec: &csv::ByteRecord) -> u64 {
        let last = self.line_at(end.saturating_sub(1));
        let inner: usize = rec
            .iter()
            .map(|f| memchr::memchr_iter(b'\n', f).count())
            .sum();
        last.saturating_sub(inner as u64).max(1)
    }
}

/// A Parquet column viewed as per-row text.
enum ColText {
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
    fn new(a: &ArrayRef, path: &Path, col: &str) -> Result<Self, DataError> {
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
            DataType::Int8 | DataType::Int16 | DataType::UInt8 | DataType::UInt16 => {
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
    fn write(&self, i: usize, out: &mut Vec<u8>) {
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

/// Reads a Parquet file, or only row groups `gs` of it with `group =
/// Some((gs, the first row of gs[0]))` (`gs` consecutive; row numbers then
/// count from that row).
fn read_parquet_groups<F>(
    opts: &ReadOptions,
    refs: &[ColumnRef],
    on_bad: OnBadRow,
    skipped: &mut usize,
    group: Option<(Vec<usize>, u64)>,
    f: &mut F,
) -> Result<(Header, usize), DataError>
where
    F: FnMut(u64, &[&[u8]], &Header) -> Result<(), DataError>,
{
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::ProjectionMask;
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
    let header = Header { names: disp };
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
    for batch in reader {
        let batch: RecordBatch = batch.map_err(|e| perr(&e))?;
        let cols: Vec<ColText> = pos
            .iter()
            .zip(&header.names)
            .map(|(&p, n)| ColText::new(batch.column(p), path, n))
            .collect::<Result<_, _>>()?;
        for i in 0..batch.num_rows() {
            row_no += 1;
            for (c, b) in cols.iter().zip(bufs.iter_mut()) {
                c.write(i, b);
            }
            let mut fields = recycle(std::mem::take(&mut store));
            fields.extend(bufs.iter().map(|b| b.as_slice()));
            let res = f(row_no, &fields, &header);
            store = recycle(fields);
            handle(res, on_bad, skipped, &mut rows)?;
        }
    }
    Ok((header, rows))
}

/// One part of a table read by [`for_each_row_par`]: the state the callback
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
/// # Errors
/// As [`for_each_row`].
pub(crate) fn for_each_row_par<S, I, F>(
    opts: &ReadOptions,
    refs: &[ColumnRef],
    on_bad: OnBadRow,
    init: I,
    f: F,
) -> Result<(Header, Vec<Part<S>>), DataError>
where
    S: Send,
    I: Fn() -> S + Sync,
    F: Fn(&mut S, u64, &[&[u8]], &Header) -> Result<(), DataError> + Sync,
{
    if opts.format != Format::Parquet {
        if let Some(parts) = plain_parts(opts, refs, on_bad, &init, &f) {
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
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use rayon::prelude::*;
    let path = &opts.path;
    if std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0) {
        return Err(DataError::EmptyFile { path: path.clone() });
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
                &mut |line, fields, h| f(&mut state, line, fields, h),
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

/// A delimited file without quoting, of at least 256 KiB a thread and with
/// its column names known (header or `columns`), read as one byte range a
/// thread. `None` (read it in one pass instead) when the file does not
/// qualify or any part fails: the one pass then names the file, line and
/// column of the first bad row, as always.
#[allow(clippy::type_complexity)]
fn plain_parts<S, I, F>(
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

/// Reads a whole (small) file into memory — used by tests and the bench.
#[allow(dead_code)]
pub(crate) fn read_all(path: &Path) -> Result<Vec<u8>, DataError> {
    let mut v = Vec::new();
    open(path)?
        .read_to_end(&mut v)
        .map_err(|e| DataError::io(path, e))?;
    Ok(v)
}

/// A parse error for `column` at `line`.
pub(crate) fn parse_err(
    path: &Path,
    line: u64,
    column: &str,
    expected: &'static str,
    got: &[u8],
) -> DataError {
    DataError::Parse {
        path: path.to_path_buf(),
        line,
        column: column.to_string(),
        expected,
        got: snippet(got),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
