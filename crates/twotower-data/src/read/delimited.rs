//! Delimited text: the byte-level splitter for unquoted data (any
//! delimiter, multi-byte ones like `::` too), the `csv` crate's record
//! reader for quoted data, and line numbering.

use std::fs::File;
use std::io::Read;

use crate::config::{ColumnRef, OnBadRow, ReadOptions};
use crate::error::DataError;

use super::*;

/// A field splitter for one delimiter (single byte: `memchr`; longer:
/// a prebuilt `memmem` finder).
pub(super) enum Splitter {
    Byte(u8),
    Multi(Box<memchr::memmem::Finder<'static>>),
}

impl Splitter {
    pub(super) fn new(delim: &[u8]) -> Splitter {
        if delim.len() == 1 {
            Splitter::Byte(delim[0])
        } else {
            Splitter::Multi(Box::new(memchr::memmem::Finder::new(delim).into_owned()))
        }
    }

    /// Splits `line` into field spans (reusing `spans`).
    #[inline]
    pub(super) fn split(&self, line: &[u8], spans: &mut Vec<(usize, usize)>) {
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
pub(super) fn split_fields(line: &[u8], delim: &[u8], spans: &mut Vec<(usize, usize)>) {
    Splitter::new(delim).split(line, spans)
}

pub(super) fn handle(
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
pub(super) struct Lines2<R> {
    rd: R,
    /// Offset in the file of `buf[0]`.
    base: u64,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> Lines2<R> {
    pub(super) fn new(rd: R) -> Self {
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
pub(super) fn read_plain<F>(
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
        resolved = Some((
            idx,
            Header {
                names: disp,
                path: opts.path.clone(),
            },
        ));
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
            resolved = Some((
                idx,
                Header {
                    names: disp,
                    path: opts.path.clone(),
                },
            ));
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

pub(super) fn read_quoted<F>(
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
        resolved = Some((
            idx,
            Header {
                names: disp,
                path: opts.path.clone(),
            },
        ));
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
            resolved = Some((
                idx,
                Header {
                    names: disp,
                    path: opts.path.clone(),
                },
            ));
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
pub(super) struct LineCounter<R> {
    inner: R,
    pos: u64,
    newlines: Newlines,
}

pub(super) type Newlines = std::rc::Rc<std::cell::RefCell<std::collections::VecDeque<u64>>>;

impl<R: Read> LineCounter<R> {
    pub(super) fn new(inner: R) -> (Self, Newlines) {
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
pub(super) struct Lines {
    newlines: Newlines,
    seen: u64,
}

impl Lines {
    pub(super) fn line_at(&mut self, byte: u64) -> u64 {
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
    pub(super) fn record_line(&mut self, end: u64, rec: &csv::ByteRecord) -> u64 {
        let last = self.line_at(end.saturating_sub(1));
        let inner: usize = rec
            .iter()
            .map(|f| memchr::memchr_iter(b'\n', f).count())
            .sum();
        last.saturating_sub(inner as u64).max(1)
    }
}
