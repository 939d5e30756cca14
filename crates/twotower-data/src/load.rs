//! The loader: reads the tables of `[data]` (or generates them, for
//! `source = "synthetic"`), encodes the features of `[features]` and
//! splits the interactions into a [`Dataset`]. [`load_dataset`] is the
//! entry point.
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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::check::check_feature;
use crate::config::{
    ColumnRef, DataConfig, EntityTableSpec, FeatureConfig, FeaturesConfig, Side, Source, SplitKind,
    SyntheticConfig,
};
use crate::dataset::{Dataset, EntityIds, EntityTable};
use crate::effective::{effective_features, effective_tables, needed_columns};
use crate::error::DataError;
use crate::features::{build_entities, encode_feature, SideCtx};
use crate::hash::Interner;
use crate::raw::{
    decode_keys, read_entity_table, read_interactions, read_long_table, RawData, RawEntityTable,
    RawInteractions,
};
use crate::read::decode;
use crate::report::IngestReport;
use crate::split::{random_split, temporal_split, Interactions};
use crate::stream::{scan_interactions, streamed_temporal_split, TrainStream};
use crate::synth::{generate_raw, synthetic_features};

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
    load_dataset_timed(data, features, base_dir).map(|(ds, _)| ds)
}

/// Seconds spent in each stage of [`load_dataset_timed`] (wall clock).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct LoadTimings {
    /// Reading (or generating) the raw tables.
    pub read: f64,
    /// The entities of both sides in "by id" order and the interactions
    /// mapped onto them.
    pub entities: f64,
    /// The train/test split.
    pub split: f64,
    /// The ingest report's counts (duplicate pairs, entities without
    /// interactions).
    pub report: f64,
    /// Vocabularies and encoded features of both sides.
    pub features: f64,
}

impl LoadTimings {
    /// The sum of the stages.
    pub fn total(&self) -> f64 {
        self.read + self.entities + self.split + self.report + self.features
    }
}

/// [`load_dataset`], also returning the seconds of each stage (what
/// `twotower bench` reports for the load path).
///
/// # Errors
/// As [`load_dataset`].
pub fn load_dataset_timed(
    data: &DataConfig,
    features: &FeaturesConfig,
    base_dir: &Path,
) -> Result<(Dataset, LoadTimings), DataError> {
    let mut timings = LoadTimings::default();
    let t = Instant::now();
    let feats = checked_features(data, features)?;
    let raw = match data.source {
        Source::Synthetic => generate_raw(&data.synthetic)?,
        Source::Files => read_raw(data, &feats, &data_dir(data, base_dir), true)?,
    };
    timings.read = t.elapsed().as_secs_f64();
    let ds = encode(raw, &feats, data, &mut timings)?;
    Ok((ds, timings))
}

/// The features a config uses, checked, after checking `[data.split]`.
fn checked_features(
    data: &DataConfig,
    features: &FeaturesConfig,
) -> Result<FeaturesConfig, DataError> {
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
    Ok(feats)
}

/// [`load_dataset`] for interactions larger than memory: the entity tables,
/// their features and the test split are loaded as usual, the train split
/// stays in the file ([`Dataset::train_stream`]; `train` is empty). The
/// interactions are read twice here (ids and counts, then the split; see
/// [`crate::stream`]) and once per epoch by training. The test split,
/// vocabularies and counts equal [`load_dataset`]'s.
///
/// The ingest report counts no duplicate (user, item) pairs (that needs
/// every pair in memory).
///
/// # Errors
/// As [`load_dataset`], and [`DataError::Config`] for what cannot be
/// streamed: synthetic data (generate it to files first) and the random
/// split (it shuffles all rows).
pub fn load_dataset_streamed(
    data: &DataConfig,
    features: &FeaturesConfig,
    base_dir: &Path,
) -> Result<Dataset, DataError> {
    let feats = checked_features(data, features)?;
    if data.source != Source::Files {
        return Err(DataError::config(
            "data.source",
            "streamed loading reads files: write the synthetic data with `twotower generate` and train on its dataset.toml",
        ));
    }
    if data.split.kind != SplitKind::Temporal {
        return Err(DataError::config(
            "data.split.kind",
            "only the temporal split can be streamed (the random split shuffles every row in memory)",
        ));
    }
    let dir = data_dir(data, base_dir);
    let mut raw = read_raw(data, &feats, &dir, false)?;
    let (ispec, _, _) = effective_tables(data)?;
    let enc = ispec.read_options(&dir)?.encoding;
    // pass 1: the ids and each user's number of rows
    let (mut users, mut items) = (Interner::default(), Interner::default());
    let mut user_rows: Vec<u32> = Vec::new();
    let mut skipped = 0usize;
    let rows = scan_interactions(&ispec, &dir, data.on_bad_row, &mut skipped, |r| {
        let u = users.intern(r.user) as usize;
        if u == user_rows.len() {
            user_rows.push(0);
        }
        user_rows[u] += 1;
        items.intern(r.item);
        Ok(())
    })?;
    raw.skipped_rows += skipped;
    raw.interactions.user_keys = decode_keys(users.into_keys(), enc);
    raw.interactions.item_keys = decode_keys(items.into_keys(), enc);
    let empty: Vec<String> = Vec::new();
    let ukeys_table = raw.users.as_ref().map(|t| &t.keys).unwrap_or(&empty);
    let ikeys_table = raw.items.as_ref().map(|t| &t.keys).unwrap_or(&empty);
    let (uids, mut umaps) = build_entities(&[ukeys_table, &raw.interactions.user_keys]);
    let (iids, mut imaps) = build_entities(&[ikeys_table, &raw.interactions.item_keys]);
    let (n_users, n_items) = (uids.len(), iids.len());
    let mut rows_of = vec![0u32; n_users];
    for (code, &n) in user_rows.iter().enumerate() {
        rows_of[umaps[1][code] as usize] = n;
    }
    // pass 2: the temporal split
    let lookup = |ids: &EntityIds, b: &[u8]| decode(b, enc).and_then(|s| ids.index_of(&s));
    let split = streamed_temporal_split(
        &ispec,
        &dir,
        data.on_bad_row,
        |b| lookup(&uids, b),
        |b| lookup(&iids, b),
        &rows_of,
        n_items,
        data.split.test_fraction,
        data.split.min_interactions,
    )?;
    let mut report = IngestReport {
        interaction_rows: rows as usize,
        skipped_rows: raw.skipped_rows,
        user_table_rows: raw.users.as_ref().map(|t| t.rows_read).unwrap_or(0),
        item_table_rows: raw.items.as_ref().map(|t| t.rows_read).unwrap_or(0),
        duplicate_feature_rows: raw.users.as_ref().map(|t| t.duplicate_rows).unwrap_or(0)
            + raw.items.as_ref().map(|t| t.duplicate_rows).unwrap_or(0),
        ..Default::default()
    };
    let test_items = split.test.item_counts(n_items);
    report.users_without_interactions = rows_of.iter().filter(|&&c| c == 0).count();
    report.items_without_interactions = split
        .train_item_counts
        .iter()
        .zip(&test_items)
        .filter(|(&a, &b)| a == 0 && b == 0)
        .count();
    let (users, items) = encode_sides(
        &raw,
        &feats,
        [
            SideIds {
                ids: uids,
                table_map: umaps.swap_remove(0),
                train_counts: split.train_user_counts.clone(),
            },
            SideIds {
                ids: iids,
                table_map: imaps.swap_remove(0),
                train_counts: split.train_item_counts.clone(),
            },
        ],
        &mut report,
    )?;
    let weighted = split.test.weight.is_some() || ispec.weight.is_some();
    Ok(Dataset {
        users,
        items,
        train: Interactions::default(),
        test: split.test,
        report,
        train_stream: Some(TrainStream {
            spec: ispec,
            dir,
            on_bad: data.on_bad_row,
            cut: split.cut,
            n_rows: split.n_train,
            item_counts: split.train_item_counts,
            user_counts: split.train_user_counts,
            weighted,
        }),
    })
}

/// Generates a dataset in memory (the built-in data of `twotower train`),
/// encoded with [`crate::synthetic_features`] and split per `[data.split]` defaults
/// (temporal, 0.2, min 5). Equal to loading the files of [`crate::write_dataset`]
/// with the same config.
///
/// # Errors
/// [`DataError::Config`] for an invalid `cfg`.
pub fn generate_dataset(cfg: &SyntheticConfig) -> Result<Dataset, DataError> {
    let data = DataConfig {
        source: Source::Synthetic,
        synthetic: cfg.clone(),
        ..DataConfig::default()
    };
    encode(
        generate_raw(cfg)?,
        &synthetic_features(),
        &data,
        &mut LoadTimings::default(),
    )
}

fn side_feats(feats: &FeaturesConfig, side: Side) -> Vec<(&String, &FeatureConfig)> {
    feats.iter().filter(|(_, f)| f.side == side).collect()
}

/// Reads every table of `[data]` (and the long tables of `feats`): side by
/// side first; when that fails, once more one after the other, which gives
/// the error of one pass in order (the first table's first error; a table
/// left empty by skipped rows counts those of the tables before it).
///
/// Without `interactions` the interactions are left empty
/// ([`load_dataset_streamed`] reads them in passes).
fn read_raw(
    data: &DataConfig,
    feats: &FeaturesConfig,
    dir: &Path,
    interactions: bool,
) -> Result<RawData, DataError> {
    match read_raw_with(data, feats, dir, true, interactions) {
        Ok(raw) => Ok(raw),
        Err(_) => read_raw_with(data, feats, dir, false, interactions),
    }
}

fn read_raw_with(
    data: &DataConfig,
    feats: &FeaturesConfig,
    dir: &Path,
    concurrent: bool,
    with_interactions: bool,
) -> Result<RawData, DataError> {
    let (ispec, uspec, tspec) = effective_tables(data)?;
    let read_inter = |skipped: &mut usize| -> Result<RawInteractions, DataError> {
        if with_interactions {
            read_interactions(&ispec, dir, data.on_bad_row, skipped)
        } else {
            Ok(RawInteractions::default())
        }
    };
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
    let read_long = |skipped: &mut usize| -> Result<BTreeMap<_, _>, DataError> {
        let mut long = BTreeMap::new();
        for (name, f) in feats {
            if let Some(t) = &f.table {
                let lt = read_long_table(
                    t,
                    dir,
                    &format!("features.{name}.table"),
                    data.on_bad_row,
                    skipped,
                )?;
                long.insert(name.clone(), lt);
            }
        }
        Ok(long)
    };
    let mut skipped = 0usize;
    let (interactions, users, items, long) = if concurrent {
        let mut counts = [0usize; 4];
        let [c0, c1, c2, c3] = &mut counts;
        let ((i, u), (t, l)) = rayon::join(
            || {
                rayon::join(
                    || read_inter(c0),
                    || read_side(&uspec, Side::User, &user_key_refs, c1),
                )
            },
            || {
                rayon::join(
                    || read_side(&tspec, Side::Item, &item_key_refs, c2),
                    || read_long(c3),
                )
            },
        );
        skipped = counts.iter().sum();
        (i?, u?, t?, l?)
    } else {
        let i = read_inter(&mut skipped)?;
        let u = read_side(&uspec, Side::User, &user_key_refs, &mut skipped)?;
        let t = read_side(&tspec, Side::Item, &item_key_refs, &mut skipped)?;
        let l = read_long(&mut skipped)?;
        (i, u, t, l)
    };
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

fn encode(
    mut raw: RawData,
    feats: &FeaturesConfig,
    data: &DataConfig,
    timings: &mut LoadTimings,
) -> Result<Dataset, DataError> {
    let mut t = Instant::now();
    let mut lap = |slot: &mut f64| {
        *slot = t.elapsed().as_secs_f64();
        t = Instant::now();
    };
    let ri = std::mem::take(&mut raw.interactions);
    let empty: Vec<String> = Vec::new();
    let ukeys_table = raw.users.as_ref().map(|t| &t.keys).unwrap_or(&empty);
    let ikeys_table = raw.items.as_ref().map(|t| &t.keys).unwrap_or(&empty);
    let ((uids, mut umaps), (iids, mut imaps)) = rayon::join(
        || build_entities(&[ukeys_table, &ri.user_keys]),
        || build_entities(&[ikeys_table, &ri.item_keys]),
    );
    let remap = |codes: &[u32], map: &[u32]| -> Vec<u32> {
        use rayon::prelude::*;
        codes.par_iter().map(|&c| map[c as usize]).collect()
    };
    let (user, item) = rayon::join(|| remap(&ri.user, &umaps[1]), || remap(&ri.item, &imaps[1]));
    let all = Interactions {
        user,
        item,
        timestamp: ri.timestamp,
        weight: ri.weight,
    };
    let n_users = uids.len();
    let n_items = iids.len();
    lap(&mut timings.entities);
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
    lap(&mut timings.split);

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
    lap(&mut timings.report);

    let (users, items) = encode_sides(
        &raw,
        feats,
        [
            SideIds {
                ids: uids,
                table_map: umaps.swap_remove(0),
                train_counts: train.user_counts(n_users),
            },
            SideIds {
                ids: iids,
                table_map: imaps.swap_remove(0),
                train_counts: train.item_counts(n_items),
            },
        ],
        &mut report,
    )?;
    lap(&mut timings.features);
    Ok(Dataset {
        users,
        items,
        train,
        test,
        report,
        train_stream: None,
    })
}

/// One side's entities before their features are encoded: ids in "by id"
/// order, each table row's entity (`table_map`, empty without a table) and
/// the train interactions per entity (id vocabularies are built from train
/// only).
struct SideIds {
    ids: EntityIds,
    table_map: Vec<u32>,
    train_counts: Vec<u32>,
}

/// Encodes both sides' features (users, then items) from the raw tables,
/// adding their feature reports to `report`.
fn encode_sides(
    raw: &RawData,
    feats: &FeaturesConfig,
    sides_ids: [SideIds; 2],
    report: &mut IngestReport,
) -> Result<(EntityTable, EntityTable), DataError> {
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
    let [user, item] = sides_ids;
    for (side, s, table, key_refs, label) in [
        (
            Side::User,
            user,
            &raw.users,
            &raw.user_key_refs,
            &raw.labels[0],
        ),
        (
            Side::Item,
            item,
            &raw.items,
            &raw.item_key_refs,
            &raw.labels[1],
        ),
    ] {
        let SideIds {
            ids,
            table_map,
            train_counts: counts,
        } = s;
        let ctx = SideCtx {
            side,
            ids: &ids,
            ent_row: ent_rows(ids.len(), table, &table_map),
            table: table.as_ref(),
            key_refs,
            train_counts: counts,
        };
        let missing_rows = if table.is_some() {
            ctx.ent_row.iter().filter(|r| r.is_none()).count()
        } else {
            0
        };
        // features in parallel, results (and the first error) in name order
        let results: Vec<_> = {
            use rayon::prelude::*;
            side_feats(feats, side)
                .into_par_iter()
                .map(|(name, f)| {
                    let mut orphan = 0usize;
                    encode_feature(name, f, &ctx, raw.long.get(name), &mut orphan)
                        .map(|r| (r, orphan))
                })
                .collect()
        };
        let mut encoded = Vec::new();
        for r in results {
            let ((ef, fr), o) = r?;
            encoded.push(ef);
            report.features.push(fr);
            orphan += o;
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
            features: encoded,
            missing_feature_rows: missing_rows,
            labels,
        });
    }
    report.orphan_long_rows = orphan;
    let items = sides.pop().expect("two sides");
    let users = sides.pop().expect("two sides");
    Ok((users, items))
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
    use rayon::prelude::*;
    crate::split::user_segments(&mut items, &offsets)
        .into_par_iter()
        .map(|s| {
            s.sort_unstable();
            s.windows(2).filter(|w| w[0] == w[1]).count()
        })
        .sum()
}

/// Resolves `data.path` against the config's folder, without `.`
/// components (`data.path = "."` names the folder itself: errors then show
/// `dir/items.csv`, not `dir/./items.csv`).
pub fn data_dir(data: &DataConfig, base_dir: &Path) -> PathBuf {
    base_dir.join(&data.path).components().collect()
}
