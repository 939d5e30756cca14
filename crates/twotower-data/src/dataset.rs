//! Encoded datasets: entity tables with encoded features, the split
//! interactions, and the ingest report. [`load_dataset`] is the entry point.
//!
//! # Entities
//! Users are every user of the interactions or the user table; items (the
//! catalog) are every item of the item table plus any interaction item
//! without a feature row (it keeps missing features, counted in
//! [`IngestReport::items_without_feature_row`]). Entities of a side are
//! stored in "by id" order (EVALUATION.md), so `id_rank[e] == e`.
//!
//! # Features
//! Features of a side are ordered by name. Index 0 of every vocabulary is
//! OOV/missing. Id features take their vocabulary from the **train split
//! only** (an id seen only in test is 0); the others from the feature rows
//! of all entities of the side (counts = number of entities having the
//! value, for `min_count`). Multi-valued bags hold the distinct in-vocabulary
//! indices of an entity in ascending order (out-of-vocabulary values are
//! dropped; a bag may be empty).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{
    ColumnRef, DataConfig, EntityTableSpec, FeatureConfig, FeatureKind, FeaturesConfig,
    InteractionsSpec, Side, Source, SplitKind, Transform,
};
use crate::error::DataError;
use crate::hash::FxHashMap;
use crate::preset::{preset_features, preset_tables};
use crate::raw::{
    read_entity_table, read_interactions, read_long_table, RawColumn, RawEntityTable,
    RawInteractions, RawLongTable,
};
use crate::split::{random_split, temporal_split, Interactions};
use crate::vocab::{id_order, sort_ids, Vocab};

/// One encoded feature of one side, as CSR over that side's entities.
///
/// # Shapes
/// `offsets`: `[n_entities + 1]`, `values`: `[offsets[n_entities]]`;
/// entity `e`'s values are `values[offsets[e]..offsets[e+1]]`, each
/// `< vocab.len()`. Single-valued kinds (categorical, bucketized) hold
/// exactly one value per entity (0 = OOV/missing); a multi-valued bag may
/// be empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncodedFeature {
    /// Feature name (the `[features.<name>]` key).
    pub name: String,
    /// Its tower.
    pub side: Side,
    /// Its kind.
    pub kind: FeatureKind,
    /// True for the user-id / item-id feature (vocabulary from train only).
    pub is_id: bool,
    /// Embedding dimension from the config, if given.
    pub dim: Option<usize>,
    /// Index ↔ token.
    pub vocab: Vocab,
    /// CSR offsets, `[n_entities + 1]`.
    pub offsets: Vec<u32>,
    /// CSR values (vocabulary indices).
    pub values: Vec<u32>,
}

/// The most `hash_buckets` a feature may have (its table has one row more).
pub const MAX_HASH_BUCKETS: u32 = 1 << 31;

impl EncodedFeature {
    /// Entity `e`'s values.
    pub fn row(&self, e: usize) -> &[u32] {
        &self.values[self.offsets[e] as usize..self.offsets[e + 1] as usize]
    }

    /// The feature's description and vocabulary with no entity rows
    /// (`offsets = [0]`): what an encoder needs.
    pub fn clone_without_rows(&self) -> Self {
        Self {
            name: self.name.clone(),
            side: self.side,
            kind: self.kind,
            is_id: self.is_id,
            dim: self.dim,
            vocab: self.vocab.clone(),
            offsets: vec![0],
            values: Vec::new(),
        }
    }
}

/// The entities of one side with their encoded features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityTable {
    /// Entity ids as written in the files, in "by id" order.
    pub ids: Vec<String>,
    /// id → entity index.
    pub index: HashMap<String, u32>,
    /// Position of each entity in "by id" order (`[n_entities]`; the identity here).
    pub id_rank: Vec<u32>,
    /// Encoded features of this side, ordered by name.
    pub features: Vec<EncodedFeature>,
    /// Entities without a row in this side's feature table (0 when there is no table).
    pub missing_feature_rows: usize,
    /// The table's `label` column, for display: (column name, one text per
    /// entity, empty without a table row); `None` without a label column.
    #[serde(default)]
    pub labels: Option<(String, Vec<String>)>,
}

impl EntityTable {
    /// Number of entities.
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    /// The feature called `name`.
    pub fn feature(&self, name: &str) -> Option<&EncodedFeature> {
        self.features.iter().find(|f| f.name == name)
    }
}

/// Per-feature ingest figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureReport {
    /// Feature name.
    pub name: String,
    /// Its tower.
    pub side: Side,
    /// Its kind.
    pub kind: FeatureKind,
    /// True for an id feature.
    pub is_id: bool,
    /// Vocabulary size including index 0.
    pub vocab_len: usize,
    /// Entities whose value is 0 (single-valued) or whose bag is empty
    /// (multi): `empty + no_row`.
    pub missing: usize,
    /// Of `missing`, entities with a row in the feature's table but no
    /// usable value there (an empty cell, or values unparsable or out of
    /// vocabulary); for an id feature or a long table, all of `missing`.
    #[serde(default)]
    pub empty: usize,
    /// Of `missing`, entities without a row in the side's feature table
    /// (0 for an id feature or a long table).
    #[serde(default)]
    pub no_row: usize,
    /// Non-empty raw values that a numeric transform / flag could not parse (→ 0).
    pub unparsable: usize,
}

/// What happened while reading: counts of everything handled rather than rejected.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IngestReport {
    /// Interaction rows kept.
    pub interaction_rows: usize,
    /// Bad rows skipped in all tables (`on_bad_row = "skip"`; 0 otherwise).
    pub skipped_rows: usize,
    /// Interaction rows repeating an earlier (user, item) pair (kept, per EVALUATION.md).
    pub duplicate_interactions: usize,
    /// Data rows of the user table (0 without one).
    pub user_table_rows: usize,
    /// Data rows of the item table (0 without one).
    pub item_table_rows: usize,
    /// Feature-table rows repeating a key with identical values (ignored).
    pub duplicate_feature_rows: usize,
    /// Users without a user-table row (0 when there is no user table).
    pub users_without_feature_row: usize,
    /// Items without an item-table row (0 when there is no item table).
    pub items_without_feature_row: usize,
    /// Users of the user table with no interaction.
    pub users_without_interactions: usize,
    /// Catalog items with no interaction at all (train or test).
    pub items_without_interactions: usize,
    /// Long-table rows whose key is neither a user nor an item of that side (ignored).
    pub orphan_long_rows: usize,
    /// Per-feature figures, users' features first.
    pub features: Vec<FeatureReport>,
}

impl IngestReport {
    /// Problems worth a warning even when loading succeeded, one sentence
    /// each: a feature with no value for any entity of its side (it carries
    /// no information: wrong column, transform or type?), values that could
    /// not be parsed, entities without a feature row (a key mismatch between
    /// tables, e.g. `1` vs `1.0`), and skipped bad rows. `n_users`,
    /// `n_items`: the dataset's entity counts.
    pub fn warnings(&self, n_users: usize, n_items: usize) -> Vec<String> {
        let mut w = Vec::new();
        for f in &self.features {
            let (n, side) = match f.side {
                Side::User => (n_users, "user"),
                Side::Item => (n_items, "item"),
            };
            if !f.is_id && n > 0 && f.missing >= n {
                w.push(format!(
                    "feature {}: no {side} has a value ({} unparsable): it carries no \
                     information; check its column, transform and type",
                    f.name, f.unparsable
                ));
            } else if f.unparsable > 0 {
                w.push(format!(
                    "feature {}: {} values could not be parsed and count as missing",
                    f.name, f.unparsable
                ));
            }
        }
        for (rows, without, unused, n, side) in [
            (
                self.user_table_rows,
                self.users_without_feature_row,
                self.users_without_interactions,
                n_users,
                "users",
            ),
            (
                self.item_table_rows,
                self.items_without_feature_row,
                self.items_without_interactions,
                n_items,
                "items",
            ),
        ] {
            let table = side;
            if rows > 0 && without > 0 {
                // every table row unused by the interactions: the keys never meet
                let all = if unused >= rows {
                    " — none matches a key of the table: do the key columns agree (type, format)?"
                } else {
                    ""
                };
                w.push(format!(
                    "{without} of {n} {side} have no row in the {table} table (their features \
                     count as missing){all}"
                ));
            }
        }
        if self.orphan_long_rows > 0 {
            w.push(format!(
                "{} rows of long (key, value) feature tables name no user or item of their side (ignored)",
                self.orphan_long_rows
            ));
        }
        if self.skipped_rows > 0 {
            w.push(format!(
                "{} bad rows were skipped (on_bad_row = \"skip\")",
                self.skipped_rows
            ));
        }
        w
    }
}

/// A loaded, encoded, split dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// Users and their features.
    pub users: EntityTable,
    /// Items (the catalog) and their features.
    pub items: EntityTable,
    /// Train interactions (original row order).
    pub train: Interactions,
    /// Test interactions (original row order).
    pub test: Interactions,
    /// Ingest report.
    pub report: IngestReport,
}

/// Whether `stored` (a [`Dataset::fingerprint`] kept in a run or
/// checkpoint) proves that the data now fingerprinted `current` differs from
/// the data it was computed on: false when they match, and when `stored`
/// comes from another version of the algorithm (nothing can be concluded;
/// older runs keep loading).
pub fn fingerprints_differ(stored: &str, current: &str) -> bool {
    match stored.split_once(':') {
        Some((v, _)) if v == FINGERPRINT_VERSION => stored != current,
        _ => false,
    }
}

/// Version of [`Dataset::fingerprint`]'s algorithm, the prefix of its value
/// (`v1:` + 16 hex digits); bumped whenever what it hashes changes.
pub const FINGERPRINT_VERSION: &str = "v1";

impl Dataset {
    /// A 64-bit content fingerprint (streaming FNV-1a; `v1:` + 16 hex digits) of
    /// everything a trained model's evaluation and serving depend on: the
    /// user and item ids in order, every encoded feature (name, vocabulary,
    /// values) and the train and test interactions (user, item, timestamp,
    /// weight) as multisets. Independent of file formatting (delimiter,
    /// quoting, column order) and of the order of the interaction rows; any
    /// change that could change a trained model's metrics or recommendations
    /// changes it. Stored in a run so that serving commands can tell when the
    /// data changed.
    pub fn fingerprint(&self) -> String {
        let mut h = crate::hash::Fnv1a64::default();
        for side in [&self.users, &self.items] {
            h.write(&(side.ids.len() as u64).to_le_bytes());
            for id in &side.ids {
                h.write_str(id);
            }
            for f in &side.features {
                h.write_str(&f.name);
                h.write(&(f.vocab.len() as u64).to_le_bytes());
                for t in f.vocab.iter_tokens() {
                    h.write_str(t);
                }
                for &o in &f.offsets {
                    h.write(&o.to_le_bytes());
                }
                for &v in &f.values {
                    h.write(&v.to_le_bytes());
                }
            }
        }
        // rows as a multiset: the order of the file's lines changes neither
        // the split (it sorts by time) nor any metric or recommendation
        for split in [&self.train, &self.test] {
            let mut rows: Vec<(u32, u32, i64, u32)> = (0..split.len())
                .map(|k| {
                    let w = split.weight.as_ref().map_or(0, |w| w[k].to_bits());
                    (split.user[k], split.item[k], split.timestamp[k], w)
                })
                .collect();
            rows.sort_unstable();
            h.write(&(rows.len() as u64).to_le_bytes());
            h.write(&[split.weight.is_some() as u8]);
            for (u, i, t, w) in rows {
                h.write(&u.to_le_bytes());
                h.write(&i.to_le_bytes());
                h.write(&t.to_le_bytes());
                h.write(&w.to_le_bytes());
            }
        }
        format!("{FINGERPRINT_VERSION}:{:016x}", h.finish())
    }
}

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

/// The features actually used: `[features]`, or the preset's when empty, or
/// the two id features `user_id`/`item_id` when empty without a preset.
pub fn effective_features(data: &DataConfig, features: &FeaturesConfig) -> FeaturesConfig {
    if !features.is_empty() {
        return features.clone();
    }
    if data.source == Source::Synthetic {
        return crate::synth::synthetic_features();
    }
    match data.preset {
        Some(p) => preset_features(p),
        None => {
            let mut f = FeaturesConfig::new();
            f.insert(
                "user_id".into(),
                FeatureConfig::new(
                    Side::User,
                    FeatureKind::Categorical,
                    Some(ColumnRef::Name("@id".into())),
                ),
            );
            f.insert(
                "item_id".into(),
                FeatureConfig::new(
                    Side::Item,
                    FeatureKind::Categorical,
                    Some(ColumnRef::Name("@id".into())),
                ),
            );
            f
        }
    }
}

/// The table specs actually used (explicit ones win over the preset's).
pub fn effective_tables(
    data: &DataConfig,
) -> Result<
    (
        InteractionsSpec,
        Option<EntityTableSpec>,
        Option<EntityTableSpec>,
    ),
    DataError,
> {
    let preset = data.preset.map(preset_tables);
    let inter = match (&data.interactions, &preset) {
        (Some(i), _) => i.clone(),
        (None, Some(p)) => p.interactions.clone(),
        (None, None) => {
            return Err(DataError::config(
                "data.interactions",
                "missing: give [data.interactions], a preset, or source = \"synthetic\"",
            ))
        }
    };
    let users = data
        .users
        .clone()
        .or_else(|| preset.as_ref().map(|p| p.users.clone()));
    if users.as_ref().is_some_and(|u| u.label.is_some()) {
        return Err(DataError::config(
            "data.users.label",
            "only [data.items] takes a label (recommend/similar show it beside items)",
        ));
    }
    let items = data
        .items
        .clone()
        .or_else(|| preset.as_ref().map(|p| p.items.clone()));
    Ok((inter, users, items))
}

fn is_id_feature(f: &FeatureConfig, key_refs: &[ColumnRef]) -> bool {
    f.kind == FeatureKind::Categorical
        && match &f.column {
            Some(ColumnRef::Name(n)) if n == "@id" => true,
            Some(c) => key_refs.contains(c),
            None => false,
        }
}

/// Columns of the side's feature table that the features need.
pub(crate) fn needed_columns(
    feats: &[(&String, &FeatureConfig)],
    key_refs: &[ColumnRef],
) -> Vec<ColumnRef> {
    let mut out: Vec<ColumnRef> = Vec::new();
    let mut add = |c: &ColumnRef| {
        if !out.contains(c) {
            out.push(c.clone());
        }
    };
    for (_, f) in feats {
        if is_id_feature(f, key_refs) || f.table.is_some() {
            continue;
        }
        if let Some(c) = &f.column {
            add(c);
        }
        if let Some(fc) = &f.flag_columns {
            for c in fc {
                add(c);
            }
        }
    }
    out
}

fn check_feature(name: &str, f: &FeatureConfig) -> Result<(), DataError> {
    let field = |k: &str| format!("features.{name}.{k}");
    let sources =
        f.column.is_some() as u8 + f.flag_columns.is_some() as u8 + f.table.is_some() as u8;
    match f.kind {
        FeatureKind::Categorical | FeatureKind::Bucketized => {
            if f.column.is_none() {
                return Err(DataError::config(field("column"), "required for this kind"));
            }
            if f.flag_columns.is_some() || f.table.is_some() || f.separator.is_some() {
                return Err(DataError::config(
                    format!("features.{name}"),
                    "flag_columns / table / separator are only for multi_categorical",
                ));
            }
        }
        FeatureKind::MultiCategorical => {
            if sources != 1 {
                return Err(DataError::config(
                    format!("features.{name}"),
                    "multi_categorical needs exactly one of `column` (+ `separator`), `flag_columns`, `table`",
                ));
            }
            if let (Some(v), Some(fc)) = (&f.values, &f.flag_columns) {
                if v.len() != fc.len() {
                    return Err(DataError::config(
                        field("values"),
                        format!("has {} names for {} flag_columns", v.len(), fc.len()),
                    ));
                }
            }
            if matches!(&f.separator, Some(s) if s.is_empty()) {
                return Err(DataError::config(field("separator"), "must not be empty"));
            }
        }
    }
    if f.values.is_some() && f.flag_columns.is_none() {
        return Err(DataError::config(
            field("values"),
            "only valid with flag_columns",
        ));
    }
    match f.kind {
        FeatureKind::Bucketized => {
            let b = f
                .boundaries
                .as_ref()
                .ok_or_else(|| DataError::config(field("boundaries"), "required for bucketized"))?;
            if b.is_empty()
                || b.windows(2).any(|w| w[0] >= w[1])
                || b.iter().any(|x| !x.is_finite())
            {
                return Err(DataError::config(
                    field("boundaries"),
                    "must be a non-empty, strictly increasing list of finite numbers",
                ));
            }
            if f.hash_buckets.is_some() {
                return Err(DataError::config(
                    field("hash_buckets"),
                    "not applicable to bucketized",
                ));
            }
        }
        _ => {
            if f.boundaries.is_some() {
                return Err(DataError::config(
                    field("boundaries"),
                    "only valid for bucketized",
                ));
            }
        }
    }
    if f.hash_buckets == Some(0) {
        return Err(DataError::config(field("hash_buckets"), "must be ≥ 1"));
    }
    if f.hash_buckets.is_some_and(|n| n > MAX_HASH_BUCKETS) {
        // bucket n is index n, and row 0 is "unknown": the table has n + 1 rows
        return Err(DataError::config(
            field("hash_buckets"),
            "must be ≤ 2^31 (a table row per bucket)",
        ));
    }
    if f.non_digit.is_some() && f.transform != Some(Transform::FirstChar) {
        return Err(DataError::config(
            field("non_digit"),
            "only valid with transform = \"first_char\"",
        ));
    }
    if f.dim == Some(0) {
        return Err(DataError::config(field("dim"), "must be ≥ 1"));
    }
    Ok(())
}

/// Applies a feature's transform to one raw value; `None` = missing.
pub fn transform_value(raw: &str, f: &FeatureConfig) -> Option<String> {
    let v = raw.trim();
    if v.is_empty() {
        return None;
    }
    match f.transform {
        None => Some(v.to_string()),
        Some(Transform::Lowercase) => Some(v.to_ascii_lowercase()),
        Some(Transform::FirstChar) => {
            let c = v.chars().next()?;
            match &f.non_digit {
                Some(o) if !c.is_ascii_digit() => Some(o.clone()),
                _ => Some(c.to_string()),
            }
        }
        Some(Transform::Year) => last_year(v).map(|y| y.to_string()),
        Some(Transform::Decade) => last_year(v).map(|y| format!("{}s", y / 10 * 10)),
    }
}

/// The last run of exactly four ASCII digits in `s`.
fn last_year(s: &str) -> Option<u32> {
    let b = s.as_bytes();
    let mut i = b.len();
    while i > 0 {
        if b[i - 1].is_ascii_digit() {
            let end = i;
            while i > 0 && b[i - 1].is_ascii_digit() {
                i -= 1;
            }
            if end - i == 4 {
                return std::str::from_utf8(&b[i..end]).ok()?.parse().ok();
            }
        } else {
            i -= 1;
        }
    }
    None
}

fn bucket_tokens(b: &[f64]) -> Vec<String> {
    let mut t = Vec::with_capacity(b.len() + 1);
    t.push(format!("<{}", b[0]));
    for w in b.windows(2) {
        t.push(format!("[{},{})", w[0], w[1]));
    }
    t.push(format!(">={}", b[b.len() - 1]));
    t
}

/// Parses a 0/1 flag: `Some(true)` for a non-zero number or true/yes,
/// `Some(false)` for 0/false/no/empty, `None` if unparsable.
pub(crate) fn parse_flag(s: &str) -> Option<bool> {
    let s = s.trim();
    if s.is_empty() {
        return Some(false);
    }
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "t" => return Some(true),
        "false" | "no" | "n" | "f" => return Some(false),
        _ => {}
    }
    s.parse::<f64>().ok().map(|x| x != 0.0)
}

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
struct SideCtx<'a> {
    side: Side,
    ids: &'a [String],
    index: &'a HashMap<String, u32>,
    /// Entity → row of the side's feature table.
    ent_row: Vec<Option<u32>>,
    table: Option<&'a RawEntityTable>,
    key_refs: &'a [ColumnRef],
    /// Train interactions per entity.
    train_counts: Vec<u32>,
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

fn encode_feature(
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
        let mut toks = Vec::new();
        for (e, id) in ctx.ids.iter().enumerate() {
            let v = if ctx.train_counts[e] >= min && ctx.train_counts[e] > 0 {
                match &hashed {
                    Some(h) => h.lookup(id),
                    None => {
                        toks.push(id.clone());
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
        vocab = hashed.unwrap_or_else(|| Vocab::from_tokens(toks));
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
                        lt.keys.iter().map(|k| ctx.index.get(k).copied()).collect();
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

/// Union of key lists in "by id" order; returns ids, index and, per
/// source, the local → entity map.
fn build_entities(sources: &[&[String]]) -> (Vec<String>, HashMap<String, u32>, Vec<Vec<u32>>) {
    let mut tmp: FxHashMap<&str, u32> = FxHashMap::default();
    let mut ids: Vec<String> = Vec::new();
    for s in sources {
        for k in s.iter() {
            if !tmp.contains_key(k.as_str()) {
                tmp.insert(k.as_str(), ids.len() as u32);
                ids.push(k.clone());
            }
        }
    }
    drop(tmp);
    let perm = id_order(&ids);
    let ids: Vec<String> = perm.iter().map(|&p| ids[p as usize].clone()).collect();
    let index: HashMap<String, u32> = ids
        .iter()
        .enumerate()
        .map(|(i, k)| (k.clone(), i as u32))
        .collect();
    let maps = sources
        .iter()
        .map(|s| s.iter().map(|k| index[k.as_str()]).collect())
        .collect();
    (ids, index, maps)
}

/// Reads, encodes and splits a dataset as described by `[data]` and `[features]`.
///
/// `base_dir` is the directory of the config file (relative `data.path` is
/// resolved against it). See the module docs for entities, vocabularies
/// and bags, and [`crate::config`] for the schema.
///
/// # Errors
/// Any [`DataError`]: bad config, missing file, unknown column, bad row
/// (unless `on_bad_row = "skip"`), empty table, conflicting feature rows.
pub fn load_dataset(
    data: &DataConfig,
    features: &FeaturesConfig,
    base_dir: &Path,
) -> Result<Dataset, DataError> {
    let feats = effective_features(data, features);
    for (name, f) in &feats {
        check_feature(name, f)?;
    }
    let split = &data.split;
    if !(split.test_fraction >= 0.0 && split.test_fraction < 1.0) {
        return Err(DataError::config(
            "data.split.test_fraction",
            "must be in [0, 1)",
        ));
    }
    let raw = match data.source {
        Source::Synthetic => crate::synth::generate_raw(&data.synthetic)?,
        Source::Files => read_raw(data, &feats, &base_dir.join(&data.path))?,
    };
    encode(raw, &feats, data)
}

fn side_feats(feats: &FeaturesConfig, side: Side) -> Vec<(&String, &FeatureConfig)> {
    feats.iter().filter(|(_, f)| f.side == side).collect()
}

fn read_raw(data: &DataConfig, feats: &FeaturesConfig, dir: &Path) -> Result<RawData, DataError> {
    let (ispec, uspec, tspec) = effective_tables(data)?;
    let mut skipped = 0usize;
    let interactions = read_interactions(&ispec, dir, data.on_bad_row, &mut skipped)?;
    let mut user_key_refs = vec![ispec.user.clone()];
    let mut item_key_refs = vec![ispec.item.clone()];
    if let Some(u) = &uspec {
        user_key_refs.push(u.key.clone());
    }
    if let Some(t) = &tspec {
        item_key_refs.push(t.key.clone());
    }
    let read_side = |spec: &Option<EntityTableSpec>,
                     side: Side,
                     keys: &[ColumnRef],
                     skipped: &mut usize|
     -> Result<Option<RawEntityTable>, DataError> {
        let fs = side_feats(feats, side);
        let mut cols = needed_columns(&fs, keys);
        if let Some(l) = spec.as_ref().and_then(|s| s.label.as_ref()) {
            if !cols.contains(l) {
                cols.push(l.clone());
            }
        }
        let field = match side {
            Side::User => "data.users",
            Side::Item => "data.items",
        };
        match spec {
            Some(s) => Ok(Some(read_entity_table(
                s,
                dir,
                field,
                &cols,
                data.on_bad_row,
                skipped,
            )?)),
            None => {
                if let Some(c) = cols.first() {
                    let (name, _) = fs
                        .iter()
                        .find(|(_, f)| {
                            f.column.as_ref() == Some(c)
                                || f.flag_columns.as_ref().is_some_and(|v| v.contains(c))
                        })
                        .expect("column comes from a feature");
                    return Err(DataError::config(
                        format!("features.{name}"),
                        format!("reads column `{c}` but there is no [{field}] table"),
                    ));
                }
                Ok(None)
            }
        }
    };
    let users = read_side(&uspec, Side::User, &user_key_refs, &mut skipped)?;
    let items = read_side(&tspec, Side::Item, &item_key_refs, &mut skipped)?;
    let mut long = BTreeMap::new();
    for (name, f) in feats {
        if let Some(t) = &f.table {
            let lt = read_long_table(
                t,
                dir,
                &format!("features.{name}.table"),
                data.on_bad_row,
                &mut skipped,
            )?;
            long.insert(name.clone(), lt);
        }
    }
    Ok(RawData {
        interactions,
        user_key_refs,
        item_key_refs,
        users,
        items,
        labels: [
            uspec.as_ref().and_then(|s| s.label.clone()),
            tspec.as_ref().and_then(|s| s.label.clone()),
        ],
        long,
        skipped_rows: skipped,
    })
}

pub(crate) fn encode(
    raw: RawData,
    feats: &FeaturesConfig,
    data: &DataConfig,
) -> Result<Dataset, DataError> {
    let ri = raw.interactions;
    let empty: Vec<String> = Vec::new();
    let ukeys_table = raw.users.as_ref().map(|t| &t.keys).unwrap_or(&empty);
    let ikeys_table = raw.items.as_ref().map(|t| &t.keys).unwrap_or(&empty);
    let (uids, uindex, umaps) = build_entities(&[ukeys_table, &ri.user_keys]);
    let (iids, iindex, imaps) = build_entities(&[ikeys_table, &ri.item_keys]);
    let all = Interactions {
        user: ri.user.iter().map(|&u| umaps[1][u as usize]).collect(),
        item: ri.item.iter().map(|&i| imaps[1][i as usize]).collect(),
        timestamp: ri.timestamp,
        weight: ri.weight,
    };
    let n_users = uids.len();
    let n_items = iids.len();
    let item_rank: Vec<u32> = (0..n_items as u32).collect();
    let (train, test) = match data.split.kind {
        SplitKind::Temporal => temporal_split(
            &all,
            &item_rank,
            data.split.test_fraction,
            data.split.min_interactions,
        ),
        SplitKind::Random => random_split(
            &all,
            data.split.test_fraction,
            data.split.min_interactions,
            data.split.seed,
        ),
    };

    let mut report = IngestReport {
        interaction_rows: all.len(),
        skipped_rows: raw.skipped_rows,
        user_table_rows: raw.users.as_ref().map(|t| t.rows_read).unwrap_or(0),
        item_table_rows: raw.items.as_ref().map(|t| t.rows_read).unwrap_or(0),
        duplicate_feature_rows: raw.users.as_ref().map(|t| t.duplicate_rows).unwrap_or(0)
            + raw.items.as_ref().map(|t| t.duplicate_rows).unwrap_or(0),
        ..Default::default()
    };
    report.duplicate_interactions = count_duplicate_pairs(&all, n_users);
    let all_ucounts = all.user_counts(n_users);
    let all_icounts = all.item_counts(n_items);
    report.users_without_interactions = all_ucounts.iter().filter(|&&c| c == 0).count();
    report.items_without_interactions = all_icounts.iter().filter(|&&c| c == 0).count();
    drop(all);

    let ent_rows = |n: usize, table: &Option<RawEntityTable>, map: &[u32]| -> Vec<Option<u32>> {
        let mut r = vec![None; n];
        if table.is_some() {
            for (row, &e) in map.iter().enumerate() {
                r[e as usize] = Some(row as u32);
            }
        }
        r
    };
    let mut orphan = 0usize;
    let mut sides = Vec::new();
    for (side, ids, index, table, maps, key_refs, counts, label) in [
        (
            Side::User,
            uids,
            uindex,
            &raw.users,
            &umaps,
            &raw.user_key_refs,
            train.user_counts(n_users),
            &raw.labels[0],
        ),
        (
            Side::Item,
            iids,
            iindex,
            &raw.items,
            &imaps,
            &raw.item_key_refs,
            train.item_counts(n_items),
            &raw.labels[1],
        ),
    ] {
        let ctx = SideCtx {
            side,
            ids: &ids,
            index: &index,
            ent_row: ent_rows(ids.len(), table, &maps[0]),
            table: table.as_ref(),
            key_refs,
            train_counts: counts,
        };
        let missing_rows = if table.is_some() {
            ctx.ent_row.iter().filter(|r| r.is_none()).count()
        } else {
            0
        };
        let mut encoded = Vec::new();
        for (name, f) in side_feats(feats, side) {
            let (ef, fr) = encode_feature(name, f, &ctx, raw.long.get(name), &mut orphan)?;
            encoded.push(ef);
            report.features.push(fr);
        }
        match side {
            Side::User => report.users_without_feature_row = missing_rows,
            Side::Item => report.items_without_feature_row = missing_rows,
        }
        let labels = match (label, table) {
            (Some(c), Some(t)) => {
                let col = t.column(c).expect("the label column was read");
                let text = ctx
                    .ent_row
                    .iter()
                    .map(|r| match r {
                        Some(r) => col.dict[col.codes[*r as usize] as usize].clone(),
                        None => String::new(),
                    })
                    .collect();
                Some((col.name.clone(), text))
            }
            _ => None,
        };
        drop(ctx);
        sides.push(EntityTable {
            id_rank: (0..ids.len() as u32).collect(),
            ids,
            index,
            features: encoded,
            missing_feature_rows: missing_rows,
            labels,
        });
    }
    report.orphan_long_rows = orphan;
    let items = sides.pop().expect("two sides");
    let users = sides.pop().expect("two sides");
    Ok(Dataset {
        users,
        items,
        train,
        test,
        report,
    })
}

/// Rows repeating an earlier (user, item) pair.
fn count_duplicate_pairs(all: &Interactions, n_users: usize) -> usize {
    let mut offsets = vec![0usize; n_users + 1];
    for &u in &all.user {
        offsets[u as usize + 1] += 1;
    }
    for i in 0..n_users {
        offsets[i + 1] += offsets[i];
    }
    let mut fill = offsets.clone();
    let mut items = vec![0u32; all.len()];
    for (&u, &i) in all.user.iter().zip(&all.item) {
        items[fill[u as usize]] = i;
        fill[u as usize] += 1;
    }
    let mut dup = 0;
    for u in 0..n_users {
        let s = &mut items[offsets[u]..offsets[u + 1]];
        s.sort_unstable();
        dup += s.windows(2).filter(|w| w[0] == w[1]).count();
    }
    dup
}

/// Resolves `data.path` for display.
pub fn data_dir(data: &DataConfig, base_dir: &Path) -> PathBuf {
    base_dir.join(&data.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_warnings_name_unusable_features_and_unmatched_keys() {
        let feat = |name: &str, side, is_id, missing, unparsable| FeatureReport {
            name: name.into(),
            side,
            kind: FeatureKind::Categorical,
            is_id,
            vocab_len: 3,
            missing,
            empty: missing,
            no_row: 0,
            unparsable,
        };
        let mut r = IngestReport {
            user_table_rows: 10,
            users_without_feature_row: 4,
            users_without_interactions: 2,
            features: vec![
                feat("user_id", Side::User, true, 14, 0),
                feat("age", Side::User, false, 14, 10),
                feat("gender", Side::User, false, 5, 3),
                feat("genre", Side::Item, false, 0, 0),
            ],
            ..IngestReport::default()
        };
        let w = r.warnings(14, 7);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(
            w[0].starts_with("feature age: no user has a value (10 unparsable)"),
            "{w:?}"
        );
        assert_eq!(
            w[1],
            "feature gender: 3 values could not be parsed and count as missing"
        );
        assert!(
            w[2].starts_with("4 of 14 users have no row in the users table"),
            "{w:?}"
        );
        assert!(!w[2].contains("none matches"), "{w:?}");
        // no table row is used by an interaction: the keys never meet
        r.users_without_interactions = 10;
        assert!(r.warnings(14, 7)[2].contains("none matches a key of the table"));
        r.orphan_long_rows = 5;
        assert!(r
            .warnings(14, 7)
            .last()
            .unwrap()
            .starts_with("5 rows of long (key, value) feature tables name no user or item"));
        // a clean report says nothing
        assert!(IngestReport::default().warnings(14, 7).is_empty());
    }

    #[test]
    fn year_and_first_char_transforms() {
        let mut f = FeatureConfig::new(Side::Item, FeatureKind::Bucketized, None);
        f.transform = Some(Transform::Year);
        assert_eq!(transform_value("01-Jan-1995", &f).as_deref(), Some("1995"));
        assert_eq!(
            transform_value("2001: A Space Odyssey (1968)", &f).as_deref(),
            Some("1968")
        );
        assert_eq!(transform_value("", &f), None);
        assert_eq!(transform_value("12345", &f), None);
        f.transform = Some(Transform::Decade);
        assert_eq!(transform_value("Heat (1995)", &f).as_deref(), Some("1990s"));
        f.transform = Some(Transform::FirstChar);
        f.non_digit = Some("other".into());
        assert_eq!(transform_value("85711", &f).as_deref(), Some("8"));
        assert_eq!(transform_value("E2A4H", &f).as_deref(), Some("other"));
    }

    #[test]
    fn bucket_names_and_flags() {
        assert_eq!(bucket_tokens(&[18.0, 25.0]), vec!["<18", "[18,25)", ">=25"]);
        assert_eq!(parse_flag("1"), Some(true));
        assert_eq!(parse_flag("0"), Some(false));
        assert_eq!(parse_flag("x"), None);
    }
}
