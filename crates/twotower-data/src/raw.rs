//! Raw (decoded, not yet encoded) tables: what the readers and the
//! in-memory generator produce and the encoder consumes. Values are
//! interned per column (`dict` + per-row `codes`), so a table costs one
//! `u32` per cell plus its distinct strings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::{
    ColumnRef, Encoding, EntityTableSpec, InteractionsSpec, LongTableSpec, OnBadRow, ReadOptions,
};
use crate::error::DataError;
use crate::hash::Interner;
use crate::read::{
    decode, for_each_batch_par, for_each_row, parse_err, parse_f64, parse_i64, valid, BatchCol,
    Header,
};

/// Everything read before encoding.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawData {
    pub interactions: RawInteractions,
    /// Column references that denote the user / item key (for id features).
    pub user_key_refs: Vec<ColumnRef>,
    pub item_key_refs: Vec<ColumnRef>,
    pub users: Option<RawEntityTable>,
    pub items: Option<RawEntityTable>,
    /// The `label` column of the user / item table, if any (display only).
    pub labels: [Option<ColumnRef>; 2],
    /// Long tables by feature name.
    pub long: BTreeMap<String, RawLongTable>,
    pub skipped_rows: usize,
}

/// One column: distinct values and a code per row.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawColumn {
    /// The column reference it was read with.
    pub col: Option<ColumnRef>,
    /// Display name (header name or `#i`).
    pub name: String,
    /// Distinct values (decoded).
    pub dict: Vec<String>,
    /// Code per row into `dict`.
    pub codes: Vec<u32>,
}

/// A feature table with one row per distinct key.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawEntityTable {
    /// Key of each row (unique).
    pub keys: Vec<String>,
    /// The requested columns.
    pub columns: Vec<RawColumn>,
    /// Rows repeating an earlier key with identical values (ignored).
    pub duplicate_rows: usize,
    /// Data rows read (including duplicates).
    pub rows_read: usize,
}

impl RawEntityTable {
    /// The column read with reference `c`, if any.
    pub fn column(&self, c: &ColumnRef) -> Option<&RawColumn> {
        self.columns.iter().find(|x| x.col.as_ref() == Some(c))
    }
}

/// A long (key, value) table.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawLongTable {
    pub keys: Vec<String>,
    pub key_codes: Vec<u32>,
    pub values: RawColumn,
}

/// An interactions table as read: keys interned in first-seen order.
///
/// # Shapes
/// `user`, `item`, `timestamp` (and `weight`) have one entry per row;
/// `user[k]` indexes `user_keys`, `item[k]` indexes `item_keys`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawInteractions {
    /// Distinct user ids, first-seen order.
    pub user_keys: Vec<String>,
    /// Distinct item ids, first-seen order.
    pub item_keys: Vec<String>,
    /// User key index per row.
    pub user: Vec<u32>,
    /// Item key index per row.
    pub item: Vec<u32>,
    /// Timestamp per row (row number when the table has none).
    pub timestamp: Vec<i64>,
    /// Weight per row, when configured.
    pub weight: Option<Vec<f32>>,
}

pub(crate) fn decode_keys(keys: Vec<Box<[u8]>>, enc: Encoding) -> Vec<String> {
    keys.into_iter()
        // valid UTF-8 (any key in UTF-8, ASCII in Latin-1) keeps its
        // allocation: what `decode` would copy, unchanged
        .map(|k| match String::from_utf8(k.into_vec()) {
            Ok(s) if enc == Encoding::Utf8 || s.is_ascii() => s,
            Ok(s) => decode_key(s.as_bytes(), enc),
            Err(e) => decode_key(e.as_bytes(), enc),
        })
        .collect()
}

fn decode_key(k: &[u8], enc: Encoding) -> String {
    match decode(k, enc) {
        Some(s) => s.into_owned(),
        // Validated when interned; Latin-1 never fails.
        None => String::from_utf8_lossy(k).into_owned(),
    }
}

/// One checked interaction row: user and item id bytes, timestamp, weight.
pub(crate) type ParsedRow<'f> = (&'f [u8], &'f [u8], i64, Option<f32>);

/// The columns of `[data.interactions]` a reader requests, and the checks
/// of one row: ids non-empty and validly encoded, an integer timestamp, a
/// finite loss weight `>= 0`. The in-memory reader and the streamed one
/// ([`crate::stream`]) both parse rows with it.
pub(crate) struct InteractionColumns {
    /// The requested columns: user, item, then timestamp and weight if any.
    pub refs: Vec<ColumnRef>,
    /// Position of the timestamp in `refs`.
    pub ts_pos: Option<usize>,
    /// Position of the weight in `refs`.
    pub w_pos: Option<usize>,
    enc: Encoding,
}

impl InteractionColumns {
    /// The columns of `spec`, read with `opts`.
    pub fn new(spec: &InteractionsSpec, opts: &ReadOptions) -> Self {
        let mut refs = vec![spec.user.clone(), spec.item.clone()];
        let ts_pos = spec.timestamp.as_ref().map(|t| {
            refs.push(t.clone());
            refs.len() - 1
        });
        let w_pos = spec.weight.as_ref().map(|w| {
            refs.push(w.clone());
            refs.len() - 1
        });
        Self {
            refs,
            ts_pos,
            w_pos,
            enc: opts.encoding,
        }
    }

    /// Row `fields` (the `refs` columns) at `line`: the user and item id
    /// bytes, the timestamp (`row` when the table has none) and the weight.
    ///
    /// # Errors
    /// [`DataError`] naming the file, line and column.
    pub fn parse<'f>(
        &self,
        line: u64,
        f: &[&'f [u8]],
        h: &Header,
        row: i64,
    ) -> Result<ParsedRow<'f>, DataError> {
        let path = &h.path;
        let (u, i) = (f[0], f[1]);
        for (k, v) in [(0usize, u), (1, i)] {
            if v.is_empty() {
                return Err(parse_err(path, line, &h.names[k], "a non-empty id", v));
            }
            if !valid(v, self.enc) {
                return Err(DataError::Encoding {
                    path: path.clone(),
                    line,
                    column: h.names[k].clone(),
                });
            }
        }
        let ts = match self.ts_pos {
            Some(p) => parse_i64(f[p])
                .ok_or_else(|| parse_err(path, line, &h.names[p], "an integer timestamp", f[p]))?,
            None => row,
        };
        let w = match self.w_pos {
            // a loss weight: finite and >= 0 (a negative one would turn the
            // row's update into gradient ascent), and finite as f32
            Some(p) => Some(
                parse_f64(f[p])
                    .filter(|w| *w >= 0.0 && (*w as f32).is_finite())
                    .ok_or_else(|| {
                        parse_err(
                            path,
                            line,
                            &h.names[p],
                            "a finite weight >= 0 (at most 3.4e38)",
                            f[p],
                        )
                    })? as f32,
            ),
            None => None,
        };
        Ok((u, i, ts, w))
    }
}

/// Reads an interactions table alone (`dir` = the resolved `data.path`);
/// rows skipped under `OnBadRow::Skip` are added to `skipped`.
///
/// # Errors
/// As [`crate::load_dataset`] for this table.
pub fn read_interactions(
    spec: &InteractionsSpec,
    dir: &Path,
    on_bad: OnBadRow,
    skipped: &mut usize,
) -> Result<RawInteractions, DataError> {
    let opts = spec.read_options(dir)?;
    let cols = InteractionColumns::new(spec, &opts);
    let (refs, ts_pos, w_pos, enc) = (&cols.refs, cols.ts_pos, cols.w_pos, opts.encoding);
    /// What one part of the file builds: keys interned in its own
    /// first-seen order, codes, timestamps and weights of its rows.
    #[derive(Default)]
    struct Acc {
        users: Interner,
        items: Interner,
        user: Vec<u32>,
        item: Vec<u32>,
        timestamp: Vec<i64>,
        weight: Vec<f32>,
    }
    let (_, parts) = for_each_batch_par(
        &opts,
        refs,
        on_bad,
        Acc::default,
        |acc, line, f, h| {
            // the row's number in this part; the part's offset is added below
            let (u, i, ts, w) = cols.parse(line, f, h, acc.user.len() as i64)?;
            acc.user.push(acc.users.intern(u));
            acc.item.push(acc.items.intern(i));
            acc.timestamp.push(ts);
            if let Some(w) = w {
                acc.weight.push(w);
            }
            Ok(())
        },
        // Parquet integer ids and timestamps, typed: what the rows above
        // build from their decimal text (an integer's text is a non-empty,
        // valid id; `parse_i64` reads back every timestamp but i64::MIN),
        // with no text written, parsed or hashed. Weights go by row.
        |acc, _, bc, _| {
            let (BatchCol::Int(u), BatchCol::Int(i)) = (&bc[0], &bc[1]) else {
                return Ok(false);
            };
            let ts = match ts_pos.map(|p| &bc[p]) {
                None => None,
                Some(BatchCol::Int(t)) if !t.contains(&i64::MIN) => Some(t),
                Some(_) => return Ok(false),
            };
            if w_pos.is_some() {
                return Ok(false);
            }
            let Acc {
                users,
                items,
                user,
                item,
                timestamp,
                ..
            } = acc;
            let first = user.len() as i64;
            user.extend(u.iter().map(|&v| users.intern_int(v)));
            item.extend(i.iter().map(|&v| items.intern_int(v)));
            match ts {
                Some(t) => timestamp.extend_from_slice(t),
                None => timestamp.extend(first..first + u.len() as i64),
            }
            Ok(true)
        },
    )?;
    *skipped += parts.iter().map(|p| p.skipped).sum::<usize>();
    // Merge in file order: a key's first part, then its first row there, is
    // its first row in the file, so the keys come out in first-seen order
    // and the result is what one pass builds.
    let n: usize = parts.iter().map(|p| p.rows).sum();
    let mut users = Interner::default();
    let mut items = Interner::default();
    let mut out = RawInteractions {
        user: Vec::with_capacity(n),
        item: Vec::with_capacity(n),
        timestamp: Vec::with_capacity(n),
        weight: w_pos.map(|_| Vec::with_capacity(n)),
        ..Default::default()
    };
    for (k, p) in parts.into_iter().enumerate() {
        let a = p.state;
        if k == 0 {
            // the first part's codes are the file's: nothing to merge
            (users, items) = (a.users, a.items);
            out.user.extend_from_slice(&a.user);
            out.item.extend_from_slice(&a.item);
            out.timestamp.extend_from_slice(&a.timestamp);
            if let Some(ws) = out.weight.as_mut() {
                ws.extend_from_slice(&a.weight);
            }
            continue;
        }
        // codes in each part's first-seen order, so the global interner sees
        // them in that order too
        let umap = merge(&a.users, &mut users);
        let imap = merge(&a.items, &mut items);
        let offset = out.user.len() as i64;
        out.user.extend(a.user.iter().map(|&c| umap[c as usize]));
        out.item.extend(a.item.iter().map(|&c| imap[c as usize]));
        match ts_pos {
            Some(_) => out.timestamp.extend_from_slice(&a.timestamp),
            None => out
                .timestamp
                .extend(a.timestamp.iter().map(|&t| t + offset)),
        }
        if let Some(ws) = out.weight.as_mut() {
            ws.extend_from_slice(&a.weight);
        }
    }
    out.user_keys = decode_keys(users.into_keys(), enc);
    out.item_keys = decode_keys(items.into_keys(), enc);
    Ok(out)
}

/// Interns the keys of `part` into `global`, the new ones in `part`'s
/// code (first-seen) order, and returns `part` code → `global` code.
fn merge(part: &Interner, global: &mut Interner) -> Vec<u32> {
    let mut keys: Vec<(u32, Box<[u8]>)> = Vec::new();
    let mut map = vec![0u32; part.len()];
    part.for_each_key(|c, k| match global.get(k) {
        Some(g) => map[c as usize] = g,
        None => keys.push((c, k.into())),
    });
    keys.sort_unstable_by_key(|(c, _)| *c);
    for (c, k) in keys {
        map[c as usize] = global.intern(&k);
    }
    map
}

/// What reading (part of) an entity table builds.
struct EntityAcc {
    keys: Interner,
    dicts: Vec<Interner>,
    codes: Vec<Vec<u32>>,
    lines: Vec<u64>,
    /// `(first key, file)`: the file each run of keys was read from, in
    /// key order (a directory's parts read in one pass: a conflict names
    /// the file of the first occurrence, not only its line).
    files: Vec<(usize, PathBuf)>,
    scratch: Vec<u32>,
    dup: usize,
}

impl EntityAcc {
    /// Records that the next new key comes from `path`.
    fn note_file(&mut self, path: &Path) {
        if self.files.last().is_none_or(|(_, p)| p != path) {
            self.files.push((self.lines.len(), path.to_path_buf()));
        }
    }

    /// The file key `r` was first read from.
    fn file_of(&self, r: usize) -> PathBuf {
        let i = self.files.partition_point(|(k, _)| *k <= r);
        self.files
            .get(i.wrapping_sub(1))
            .map(|(_, p)| p.clone())
            .unwrap_or_default()
    }

    fn new(n_cols: usize) -> Self {
        EntityAcc {
            keys: Interner::default(),
            dicts: (0..n_cols).map(|_| Interner::default()).collect(),
            codes: vec![Vec::new(); n_cols],
            lines: Vec::new(),
            files: Vec::new(),
            scratch: vec![0; n_cols],
            dup: 0,
        }
    }

    /// One row: a new key, or a repeat (identical: counted; different: a
    /// [`DataError::ConflictingRow`]).
    fn row(
        &mut self,
        path: &Path,
        enc: Encoding,
        line: u64,
        f: &[&[u8]],
        h: &crate::read::Header,
    ) -> Result<(), DataError> {
        let k = f[0];
        if k.is_empty() {
            return Err(parse_err(path, line, &h.names[0], "a non-empty key", k));
        }
        for (j, v) in f.iter().enumerate() {
            if !valid(v, enc) {
                return Err(DataError::Encoding {
                    path: path.to_path_buf(),
                    line,
                    column: h.names[j].clone(),
                });
            }
        }
        for (j, v) in f[1..].iter().enumerate() {
            self.scratch[j] = self.dicts[j].intern(crate::read::trim(v));
        }
        match self.keys.get(k) {
            None => {
                self.note_file(path);
                self.keys.intern(k);
                self.lines.push(line);
                for (j, c) in self.scratch.iter().enumerate() {
                    self.codes[j].push(*c);
                }
            }
            Some(r) => {
                let r = r as usize;
                for (j, c) in self.scratch.iter().enumerate() {
                    if self.codes[j][r] != *c {
                        let text =
                            |b: &[u8]| decode(b, enc).map(|s| s.into_owned()).unwrap_or_default();
                        return Err(DataError::ConflictingRow {
                            path: path.to_path_buf(),
                            line,
                            first_path: self.file_of(r).into(),
                            first_line: self.lines[r],
                            key: text(k).into(),
                            column: h.names[j + 1].as_str().into(),
                            first_value: self.dicts[j]
                                .key_of(self.codes[j][r])
                                .map(|b| text(&b))
                                .unwrap_or_default()
                                .into(),
                            value: text(crate::read::trim(f[j + 1])).into(),
                        });
                    }
                }
                self.dup += 1;
            }
        }
        Ok(())
    }
}

impl EntityAcc {
    /// The rows of a record batch whose key column is an integer column
    /// and the others integer or string columns, none with nulls: what
    /// [`EntityAcc::row`] builds from their text (an integer's text is a
    /// non-empty, valid key with nothing to trim; Arrow strings are valid
    /// UTF-8, and Latin-1 accepts any byte). `Ok(false)` leaves the batch
    /// to the rows. A repeated key with different values is an error
    /// without the values' text: [`read_entity_table`] then reads the
    /// table again in one pass, by rows, which names them.
    fn batch(&mut self, line: u64, bc: &[BatchCol], h: &Header) -> Result<bool, DataError> {
        let BatchCol::Int(keys) = &bc[0] else {
            return Ok(false);
        };
        if bc[1..].iter().any(|c| matches!(c, BatchCol::Other)) {
            return Ok(false);
        }
        // the batch's new keys all come from its file
        self.note_file(&h.path);
        for (r, &k) in keys.iter().enumerate() {
            for (j, c) in bc[1..].iter().enumerate() {
                self.scratch[j] = match c {
                    BatchCol::Int(v) => self.dicts[j].intern_int(v[r]),
                    BatchCol::Str(a) => {
                        self.dicts[j].intern(crate::read::trim(a.value(r).as_bytes()))
                    }
                    BatchCol::Other => unreachable!("checked above"),
                };
            }
            match self.keys.get_int(k) {
                None => {
                    self.keys.intern_int(k);
                    self.lines.push(line + r as u64);
                    for (j, c) in self.scratch.iter().enumerate() {
                        self.codes[j].push(*c);
                    }
                }
                Some(e) => {
                    let e = e as usize;
                    if let Some(j) =
                        (0..self.scratch.len()).find(|&j| self.codes[j][e] != self.scratch[j])
                    {
                        return Err(DataError::ConflictingRow {
                            path: h.path.clone(),
                            line: line + r as u64,
                            first_path: self.file_of(e).into(),
                            first_line: self.lines[e],
                            key: k.to_string().into(),
                            column: h.names[j + 1].as_str().into(),
                            first_value: Box::default(),
                            value: Box::default(),
                        });
                    }
                    self.dup += 1;
                }
            }
        }
        Ok(true)
    }
}

/// The parts of a table read in parallel, merged in file order; `None`
/// when a part failed or a key repeats across parts (the one pass then
/// decides: a repeat may conflict, and its error names both lines).
fn merge_entity_parts(
    parts: Vec<crate::read::Part<EntityAcc>>,
) -> Option<(EntityAcc, usize, usize)> {
    let mut parts = parts.into_iter();
    let first = parts.next()?;
    // the first part's codes are the file's: the others merge into it
    let (mut rows, mut skipped) = (first.rows, first.skipped);
    let mut out = first.state;
    for p in parts {
        let a = p.state;
        let before = out.keys.len();
        merge(&a.keys, &mut out.keys);
        if out.keys.len() - before != a.keys.len() {
            return None;
        }
        for (j, d) in a.dicts.iter().enumerate() {
            let map = merge(d, &mut out.dicts[j]);
            out.codes[j].extend(a.codes[j].iter().map(|&c| map[c as usize]));
        }
        out.dup += a.dup;
        rows += p.rows;
        skipped += p.skipped;
    }
    Some((out, rows, skipped))
}

/// Reads an entity feature table: `key` plus the columns `cols`.
/// A repeated key with identical values is counted and ignored; with
/// different values it is a [`DataError::ConflictingRow`].
pub(crate) fn read_entity_table(
    spec: &EntityTableSpec,
    dir: &Path,
    field: &str,
    cols: &[ColumnRef],
    on_bad: OnBadRow,
    skipped: &mut usize,
) -> Result<RawEntityTable, DataError> {
    let opts = spec.read_options(dir, field)?;
    let enc = opts.encoding;
    let mut refs = vec![spec.key.clone()];
    refs.extend(cols.iter().cloned());
    let n_cols = cols.len();
    // parts in parallel (Parquet row groups, byte ranges of a delimited
    // file); any failure or a key repeated across parts: one pass
    let par = for_each_batch_par(
        &opts,
        &refs,
        on_bad,
        || EntityAcc::new(n_cols),
        |acc, line, f, h| acc.row(&h.path, enc, line, f, h),
        |acc, line, bc, h| acc.batch(line, bc, h),
    )
    .ok()
    .and_then(|(header, parts)| {
        merge_entity_parts(parts).map(|(acc, rows, sk)| (header, acc, rows, sk))
    });
    let (header, acc, rows) = match par {
        Some((header, acc, rows, sk)) => {
            *skipped += sk;
            (header, acc, rows)
        }
        None => {
            let mut acc = EntityAcc::new(n_cols);
            let (header, rows) = for_each_row(&opts, &refs, on_bad, skipped, |line, f, h| {
                acc.row(&h.path, enc, line, f, h)
            })
            .map_err(|e| key_missing(e, &spec.key))?;
            (header, acc, rows)
        }
    };
    let EntityAcc {
        keys,
        dicts,
        codes,
        dup,
        ..
    } = acc;
    let columns = cols
        .iter()
        .zip(dicts)
        .zip(codes)
        .enumerate()
        .map(|(j, ((c, d), codes))| RawColumn {
            col: Some(c.clone()),
            name: header.names[j + 1].clone(),
            dict: decode_keys(d.into_keys(), enc),
            codes,
        })
        .collect();
    Ok(RawEntityTable {
        keys: decode_keys(keys.into_keys(), enc),
        columns,
        duplicate_rows: dup,
        rows_read: rows,
    })
}

/// An unknown column that is the table's key column becomes
/// [`DataError::MissingKeyColumn`].
fn key_missing(e: DataError, key: &ColumnRef) -> DataError {
    match e {
        DataError::UnknownColumn {
            path,
            header_line,
            column,
            available,
        } if column == key.to_string() => DataError::MissingKeyColumn {
            path,
            header_line,
            column,
            available,
        },
        e => e,
    }
}

/// Reads a long (key, value) table.
pub(crate) fn read_long_table(
    spec: &LongTableSpec,
    dir: &Path,
    field: &str,
    on_bad: OnBadRow,
    skipped: &mut usize,
) -> Result<RawLongTable, DataError> {
    let opts = spec.read_options(dir, field)?;
    let enc = opts.encoding;
    let refs = vec![spec.key.clone(), spec.value.clone()];
    let mut keys = Interner::default();
    let mut vals = Interner::default();
    let mut key_codes = Vec::new();
    let mut codes = Vec::new();
    let (header, _) = for_each_row(&opts, &refs, on_bad, skipped, |line, f, h| {
        if f[0].is_empty() {
            return Err(parse_err(
                &h.path,
                line,
                &h.names[0],
                "a non-empty key",
                f[0],
            ));
        }
        for (j, v) in f.iter().enumerate() {
            if !valid(v, enc) {
                return Err(DataError::Encoding {
                    path: h.path.clone(),
                    line,
                    column: h.names[j].clone(),
                });
            }
        }
        key_codes.push(keys.intern(f[0]));
        codes.push(vals.intern(crate::read::trim(f[1])));
        Ok(())
    })
    .map_err(|e| key_missing(e, &spec.key))?;
    Ok(RawLongTable {
        keys: decode_keys(keys.into_keys(), enc),
        key_codes,
        values: RawColumn {
            col: Some(spec.value.clone()),
            name: header.names[1].clone(),
            dict: decode_keys(vals.into_keys(), enc),
            codes,
        },
    })
}
