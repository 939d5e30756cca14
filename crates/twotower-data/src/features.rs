//! Vocabularies and encoded features at load time: the entities of a side
//! in "by id" order, and each feature's vocabulary and CSR rows over them
//! (see [`crate::load`] for the rules). Not the serving-time encoder of a
//! trained model, which is [`crate::encode`].

use rayon::prelude::*;

use crate::config::{ColumnRef, FeatureConfig, FeatureKind, Side};
use crate::dataset::{EncodedFeature, EntityIds};
use crate::effective::is_id_feature;
use crate::error::DataError;
use crate::hash::FxHashMap;
use crate::raw::{RawColumn, RawEntityTable, RawLongTable};
use crate::report::FeatureReport;
use crate::transform::{bucket_tokens, parse_flag, transform_value};
use std::cmp::Ordering;

use crate::vocab::{id_order_as, id_order_of_ints, int_values, sort_ids, Vocab};

/// A token table: distinct tokens of a feature with entity counts.
#[derive(Default)]
struct Tokens {
    map: FxHashMap<String, u32>,
    list: Vec<String>,
}

impl Tokens {
    fn id(&mut self, t: String) -> u32 {
        if let Some(&i) = self.map.get(&t) {
            return i;
        }
        let i = self.list.len() as u32;
        self.map.insert(t.clone(), i);
        self.list.push(t);
        i
    }
}

/// Builds the vocabulary from token ids with entity counts and returns
/// `(vocab, token id → index)`.
fn build_vocab(tokens: Tokens, counts: &[u32], f: &FeatureConfig) -> (Vocab, Vec<u32>) {
    let min = f.min_count.unwrap_or(1);
    if let Some(n) = f.hash_buckets {
        let v = Vocab::hashed(n);
        let map = tokens
            .list
            .iter()
            .zip(counts)
            .map(|(t, &c)| if c >= min { v.lookup(t) } else { 0 })
            .collect();
        return (v, map);
    }
    let mut keep: Vec<String> = tokens
        .list
        .iter()
        .zip(counts)
        .filter(|(_, &c)| c >= min)
        .map(|(t, _)| t.clone())
        .collect();
    sort_ids(&mut keep);
    let v = Vocab::from_tokens(keep);
    let map = tokens.list.iter().map(|t| v.lookup(t)).collect();
    (v, map)
}

/// Context for encoding one side.
pub(crate) struct SideCtx<'a> {
    pub(crate) side: Side,
    pub(crate) ids: &'a EntityIds,
    /// Entity → row of the side's feature table.
    pub(crate) ent_row: Vec<Option<u32>>,
    pub(crate) table: Option<&'a RawEntityTable>,
    pub(crate) key_refs: &'a [ColumnRef],
    /// Train interactions per entity.
    pub(crate) train_counts: Vec<u32>,
}

fn table_column<'a>(
    ctx: &'a SideCtx,
    name: &str,
    c: &ColumnRef,
) -> Result<&'a RawColumn, DataError> {
    let side = match ctx.side {
        Side::User => "users",
        Side::Item => "items",
    };
    let t = ctx.table.ok_or_else(|| {
        DataError::config(
            format!("features.{name}"),
            format!("reads column `{c}` but there is no [data.{side}] table"),
        )
    })?;
    t.column(c).ok_or_else(|| {
        DataError::config(
            format!("features.{name}"),
            format!("column `{c}` was not read from [data.{side}]"),
        )
    })
}

pub(crate) fn encode_feature(
    name: &str,
    f: &FeatureConfig,
    ctx: &SideCtx,
    long: Option<&RawLongTable>,
    orphan_rows: &mut usize,
) -> Result<(EncodedFeature, FeatureReport), DataError> {
    let n = ctx.ids.len();
    let is_id = is_id_feature(f, ctx.key_refs);
    let mut unparsable = 0usize;
    let mut offsets: Vec<u32> = Vec::with_capacity(n + 1);
    let mut values: Vec<u32> = Vec::with_capacity(n);
    let vocab: Vocab;
    offsets.push(0);
    if is_id {
        let min = f.min_count.unwrap_or(1);
        let hashed = f.hash_buckets.map(Vocab::hashed);
        let mut toks: Vec<&str> = Vec::new();
        for (e, id) in ctx.ids.iter().enumerate() {
            let v = if ctx.train_counts[e] >= min && ctx.train_counts[e] > 0 {
                match &hashed {
                    Some(h) => h.lookup(id),
                    None => {
                        toks.push(id);
                        toks.len() as u32
                    }
                }
            } else {
                0
            };
            values.push(v);
            offsets.push(values.len() as u32);
        }
        // Entities are in id order, so `toks` is already sorted.
        vocab = hashed.unwrap_or_else(|| Vocab::from_strs(toks));
    } else {
        match f.kind {
            FeatureKind::Categorical => {
                let col = table_column(ctx, name, f.column.as_ref().expect("checked"))?;
                let mut tokens = Tokens::default();
                let dict_tok: Vec<Option<u32>> = col
                    .dict
                    .iter()
                    .map(|d| transform_value(d, f).map(|t| tokens.id(t)))
                    .collect();
                let ent_tok: Vec<Option<u32>> = ctx
                    .ent_row
                    .iter()
                    .map(|r| r.and_then(|r| dict_tok[col.codes[r as usize] as usize]))
                    .collect();
                let mut counts = vec![0u32; tokens.list.len()];
                for t in ent_tok.iter().flatten() {
                    counts[*t as usize] += 1;
                }
                let (v, map) = build_vocab(tokens, &counts, f);
                for t in &ent_tok {
                    values.push(t.map(|t| map[t as usize]).unwrap_or(0));
                    offsets.push(values.len() as u32);
                }
                vocab = v;
            }
            FeatureKind::Bucketized => {
                let col = table_column(ctx, name, f.column.as_ref().expect("checked"))?;
                let b = f.boundaries.as_ref().expect("checked");
                let mut dict_unparsable = vec![false; col.dict.len()];
                let dict_idx: Vec<u32> = col
                    .dict
                    .iter()
                    .enumerate()
                    .map(|(i, d)| match transform_value(d, f) {
                        None => {
                            // A non-empty raw value that the transform rejects is unparsable.
                            dict_unparsable[i] = !d.trim().is_empty();
                            0
                        }
                        Some(t) => match t.parse::<f64>() {
                            Ok(x) if x.is_finite() => b.partition_point(|&q| q <= x) as u32 + 1,
                            _ => {
                                dict_unparsable[i] = true;
                                0
                            }
                        },
                    })
                    .collect();
                for r in &ctx.ent_row {
                    let v = match r {
                        Some(r) => {
                            let code = col.codes[*r as usize] as usize;
                            unparsable += dict_unparsable[code] as usize;
                            dict_idx[code]
                        }
                        None => 0,
                    };
                    values.push(v);
                    offsets.push(values.len() as u32);
                }
                vocab = Vocab::from_tokens(bucket_tokens(b));
            }
            FeatureKind::MultiCategorical => {
                let mut tokens = Tokens::default();
                // Per entity: token ids (may repeat; deduplicated after mapping).
                let mut bags: Vec<Vec<u32>> = vec![Vec::new(); n];
                if let Some(c) = &f.column {
                    let col = table_column(ctx, name, c)?;
                    let sep = f.separator.as_deref().unwrap_or("|");
                    let dict_toks: Vec<Vec<u32>> = col
                        .dict
                        .iter()
                        .map(|d| {
                            d.split(sep)
                                .filter_map(|p| transform_value(p, f))
                                .map(|t| tokens.id(t))
                                .collect()
                        })
                        .collect();
                    for (e, r) in ctx.ent_row.iter().enumerate() {
                        if let Some(r) = r {
                            bags[e].extend_from_slice(&dict_toks[col.codes[*r as usize] as usize]);
                        }
                    }
                } else if let Some(fc) = &f.flag_columns {
                    for (j, c) in fc.iter().enumerate() {
                        let col = table_column(ctx, name, c)?;
                        let tname = match &f.values {
                            Some(v) => v[j].clone(),
                            None => col.name.clone(),
                        };
                        let tid = tokens.id(tname);
                        let dict_flag: Vec<Option<bool>> =
                            col.dict.iter().map(|d| parse_flag(d)).collect();
                        for (e, r) in ctx.ent_row.iter().enumerate() {
                            if let Some(r) = r {
                                match dict_flag[col.codes[*r as usize] as usize] {
                                    Some(true) => bags[e].push(tid),
                                    Some(false) => {}
                                    None => unparsable += 1,
                                }
                            }
                        }
                    }
                } else {
                    let lt = long.expect("long table read for a table feature");
                    let key_ent: Vec<Option<u32>> =
                        lt.keys.iter().map(|k| ctx.ids.index_of(k)).collect();
                    let dict_tok: Vec<Option<u32>> = lt
                        .values
                        .dict
                        .iter()
                        .map(|d| transform_value(d, f).map(|t| tokens.id(t)))
                        .collect();
                    for (kc, vc) in lt.key_codes.iter().zip(&lt.values.codes) {
                        match key_ent[*kc as usize] {
                            Some(e) => {
                                if let Some(t) = dict_tok[*vc as usize] {
                                    bags[e as usize].push(t)
                                }
                            }
                            None => *orphan_rows += 1,
                        }
                    }
                }
                let mut counts = vec![0u32; tokens.list.len()];
                for bag in bags.iter_mut() {
                    bag.sort_unstable();
                    bag.dedup();
                    for t in bag.iter() {
                        counts[*t as usize] += 1;
                    }
                }
                let (v, map) = build_vocab(tokens, &counts, f);
                for bag in &bags {
                    let start = values.len();
                    values.extend(bag.iter().map(|&t| map[t as usize]).filter(|&x| x != 0));
                    values[start..].sort_unstable();
                    let mut w = start;
                    for r in start..values.len() {
                        if w == start || values[r] != values[w - 1] {
                            values[w] = values[r];
                            w += 1;
                        }
                    }
                    values.truncate(w);
                    offsets.push(values.len() as u32);
                }
                vocab = v;
            }
        }
    }
    let is_missing = |e: usize| {
        let s = &values[offsets[e] as usize..offsets[e + 1] as usize];
        s.is_empty() || (s.len() == 1 && s[0] == 0)
    };
    let missing = (0..n).filter(|&e| is_missing(e)).count();
    let no_row = if is_id || long.is_some() {
        0
    } else {
        (0..n)
            .filter(|&e| ctx.ent_row[e].is_none() && is_missing(e))
            .count()
    };
    let report = FeatureReport {
        name: name.to_string(),
        side: ctx.side,
        kind: f.kind,
        is_id,
        vocab_len: vocab.len(),
        missing,
        empty: missing - no_row,
        no_row,
        unparsable,
    };
    Ok((
        EncodedFeature {
            name: name.to_string(),
            side: ctx.side,
            kind: f.kind,
            is_id,
            dim: f.dim,
            vocab,
            offsets,
            values,
        },
        report,
    ))
}

/// Union of key lists in "by id" order; returns the ids and, per source,
/// the local → entity map. Each source's keys are distinct (interned when
/// read): every source is sorted on its own (in parallel) and the sorted
/// lists are merged, equal keys becoming one entity, so no key is hashed
/// until the ids' own index is built.
pub(crate) fn build_entities(sources: &[&[String]]) -> (EntityIds, Vec<Vec<u32>>) {
    // each id parsed once: the sort and the merge compare the values
    let nums: Vec<Option<Vec<i64>>> = sources.par_iter().map(|s| int_values(s)).collect();
    let nums: Option<Vec<Vec<i64>>> = nums.into_iter().collect();
    let orders: Vec<Vec<u32>> = match &nums {
        Some(nums) => sources
            .par_iter()
            .zip(nums)
            .map(|(s, n)| id_order_of_ints(s, n))
            .collect(),
        None => sources.par_iter().map(|s| id_order_as(s, false)).collect(),
    };
    // the "by id" comparison of source j's key k and source l's key m
    let cmp = |(j, k): (usize, usize), (l, m): (usize, usize)| -> Ordering {
        let bytes = sources[j][k].as_bytes().cmp(sources[l][m].as_bytes());
        match &nums {
            Some(n) => n[j][k].cmp(&n[l][m]).then(bytes),
            None => bytes,
        }
    };
    let total: usize = sources.iter().map(|s| s.len()).sum();
    let mut ids: Vec<&str> = Vec::with_capacity(total);
    let mut maps: Vec<Vec<u32>> = sources.iter().map(|s| vec![0u32; s.len()]).collect();
    let mut heads = vec![0usize; sources.len()];
    loop {
        // the smallest head key (the first source among equal ones)
        let mut best: Option<(usize, usize)> = None;
        for (j, o) in orders.iter().enumerate() {
            if let Some(&k) = o.get(heads[j]) {
                let key = (j, k as usize);
                if best.is_none_or(|b| cmp(key, b) == Ordering::Less) {
                    best = Some(key);
                }
            }
        }
        let Some((bj, bk)) = best else { break };
        let key = sources[bj][bk].as_str();
        let e = ids.len() as u32;
        ids.push(key);
        for (j, o) in orders.iter().enumerate() {
            if let Some(&k) = o.get(heads[j]) {
                if sources[j][k as usize] == key {
                    maps[j][k as usize] = e;
                    heads[j] += 1;
                }
            }
        }
    }
    (EntityIds::from_strs(ids), maps)
}
