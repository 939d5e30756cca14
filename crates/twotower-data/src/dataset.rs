//! The encoded dataset: entity tables with their encoded features, the
//! split interactions and the ingest report ([`Dataset`]), and the data
//! fingerprint that runs keep ([`Dataset::fingerprint`],
//! [`fingerprints_differ`]). Loading is [`crate::load`]. The report types,
//! `effective_*` and `transform_value`, which lived here before, are
//! re-exported below; `load_dataset` and `data_dir` are not (`load` imports
//! this module, so a re-export here would make the two import each other):
//! use [`crate::load_dataset`] / [`crate::data_dir`], as every caller does.

use serde::{Deserialize, Serialize};

use crate::config::{FeatureKind, Side};
use crate::split::Interactions;
use crate::stream::TrainStream;
use crate::vocab::Vocab;

pub use crate::entity_ids::{EntityIds, EntityIdsIter};

pub use crate::effective::{effective_features, effective_tables};
pub use crate::report::{FeatureReport, IngestReport};
pub use crate::transform::transform_value;

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
    /// Bytes held on the heap: the vocabulary and the CSR arrays.
    pub fn heap_bytes(&self) -> u64 {
        self.vocab.heap_bytes() + 4 * (self.offsets.capacity() + self.values.capacity()) as u64
    }

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
    /// Entity ids as written in the files, in "by id" order, each held once
    /// (also the id → entity index: [`EntityIds::index_of`], or
    /// [`EntityTable::index_of`]).
    pub ids: EntityIds,
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
    /// Bytes held on the heap: the ids, their ranks, the encoded features
    /// and the labels.
    pub fn heap_bytes(&self) -> u64 {
        let labels = self.labels.as_ref().map_or(0, |(_, l)| {
            l.iter().map(|t| t.capacity() + 24).sum::<usize>() as u64
        });
        self.ids.heap_bytes()
            + 4 * self.id_rank.capacity() as u64
            + self.features.iter().map(|f| f.heap_bytes()).sum::<u64>()
            + labels
    }

    /// Number of entities.
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    /// The entity whose id is `id`.
    pub fn index_of(&self, id: &str) -> Option<u32> {
        self.ids.index_of(id)
    }
    /// The feature called `name`.
    pub fn feature(&self, name: &str) -> Option<&EncodedFeature> {
        self.features.iter().find(|f| f.name == name)
    }
}

/// A loaded, encoded, split dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// Users and their features.
    pub users: EntityTable,
    /// Items (the catalog) and their features.
    pub items: EntityTable,
    /// Train interactions (original row order); empty when the train split
    /// is streamed (`train_stream`).
    pub train: Interactions,
    /// Test interactions (original row order).
    pub test: Interactions,
    /// Ingest report.
    pub report: IngestReport,
    /// The train split read from its file every epoch, when it is larger
    /// than the run's memory budget ([`crate::stream`]); `train` is then empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_stream: Option<TrainStream>,
}

/// Whether `stored` (a [`Dataset::fingerprint`] kept in a run or
/// checkpoint) proves that the data now fingerprinted `current` differs from
/// the data it was computed on: false when they match, and when `stored`
/// comes from another version of the algorithm (nothing can be concluded;
/// older runs keep loading).
pub fn fingerprints_differ(stored: &str, current: &str) -> bool {
    match (stored.split_once(':'), current.split_once(':')) {
        (Some((v, _)), Some((w, _)))
            if v == w && (v == FINGERPRINT_VERSION || v == STREAMED_FINGERPRINT_VERSION) =>
        {
            stored != current
        }
        _ => false,
    }
}

/// Prefix of the fingerprint of a dataset whose train split is streamed:
/// its train rows are not in memory to hash, so it hashes their counts per
/// user and item and each user's split cut instead (with everything else
/// [`Dataset::fingerprint`] hashes).
pub const STREAMED_FINGERPRINT_VERSION: &str = "s1";

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
        // the rows grouped by user while the sides are hashed
        let n_users = self.users.len();
        let (mut h, (train, test)) = rayon::join(
            || {
                let mut h = crate::hash::Fnv1a64::default();
                self.hash_sides(&mut h);
                h
            },
            || {
                rayon::join(
                    || rows_by_user(&self.train, n_users),
                    || rows_by_user(&self.test, n_users),
                )
            },
        );
        // rows as a multiset: the order of the file's lines changes neither
        // the split (it sorts by time) nor any metric or recommendation
        for (split, rows) in [(&self.train, train), (&self.test, test)] {
            h.write(&(rows.1.len() as u64).to_le_bytes());
            h.write(&[split.weight.is_some() as u8]);
            hash_sorted_rows(&mut h, rows);
        }
        if let Some(st) = &self.train_stream {
            h.write(&st.n_rows.to_le_bytes());
            for c in st.user_counts.iter().chain(&st.item_counts) {
                h.write(&c.to_le_bytes());
            }
            for cut in &st.cut {
                match cut {
                    None => h.write(&[0]),
                    Some((t, i, r)) => {
                        h.write(&[1]);
                        h.write(&t.to_le_bytes());
                        h.write(&i.to_le_bytes());
                        h.write(&r.to_le_bytes());
                    }
                }
            }
            return format!("{STREAMED_FINGERPRINT_VERSION}:{:016x}", h.finish());
        }
        format!("{FINGERPRINT_VERSION}:{:016x}", h.finish())
    }
}

impl Dataset {
    /// Feeds the fingerprint's part of both sides: ids, then each
    /// feature's name, vocabulary, offsets and values.
    fn hash_sides(&self, h: &mut crate::hash::Fnv1a64) {
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
    }
}

/// One row as the fingerprint orders it: `(user, (item, timestamp, weight
/// bits))`, weight 0 without weights.
type Row = (u32, (u32, i64, u32));

/// The rows of `split` grouped by user with a counting sort: CSR
/// `(offsets, rows)`, user `u`'s rows (in file order) at
/// `rows[offsets[u]..offsets[u + 1]]`.
fn rows_by_user(split: &Interactions, n_users: usize) -> (Vec<usize>, Vec<Row>) {
    let n_users = split
        .user
        .iter()
        .map(|&u| u as usize + 1)
        .max()
        .unwrap_or(0)
        .max(n_users);
    let mut offsets = vec![0usize; n_users + 1];
    for &u in &split.user {
        offsets[u as usize + 1] += 1;
    }
    for u in 0..n_users {
        offsets[u + 1] += offsets[u];
    }
    let mut fill = offsets.clone();
    let mut rows = vec![(0u32, (0u32, 0i64, 0u32)); split.len()];
    for k in 0..split.len() {
        let u = split.user[k];
        let w = split.weight.as_ref().map_or(0, |w| w[k].to_bits());
        let slot = &mut fill[u as usize];
        rows[*slot] = (u, (split.item[k], split.timestamp[k], w));
        *slot += 1;
    }
    (offsets, rows)
}

/// Feeds the rows of [`rows_by_user`] to `h` in ascending order: each
/// user's rows sorted on their own (the same order as sorting the whole
/// list; equal rows are identical), 20 bytes a row. The users go in about
/// 64 runs: a run is sorted (its users in parallel) while the one before
/// it is hashed, so the hash, a serial chain, overlaps the sorting. The
/// thread count changes nothing.
fn hash_sorted_rows(h: &mut crate::hash::Fnv1a64, (offsets, mut rows): (Vec<usize>, Vec<Row>)) {
    use rayon::prelude::*;
    let hash = |h: &mut crate::hash::Fnv1a64, run: &[Row]| {
        for &(u, (i, t, w)) in run {
            let mut b = [0u8; 20];
            b[..4].copy_from_slice(&u.to_le_bytes());
            b[4..8].copy_from_slice(&i.to_le_bytes());
            b[8..16].copy_from_slice(&t.to_le_bytes());
            b[16..].copy_from_slice(&w.to_le_bytes());
            h.write(&b);
        }
    };
    let n_users = offsets.len().saturating_sub(1);
    let step = rows.len().div_ceil(64).max(1);
    let mut segs = crate::split::user_segments(&mut rows, &offsets).into_iter();
    let mut prev: Vec<&mut [Row]> = Vec::new();
    let mut u = 0;
    while u < n_users || !prev.is_empty() {
        // the next run: users until it holds about `step` rows
        let mut run: Vec<&mut [Row]> = Vec::new();
        let mut n = 0;
        while u < n_users && n < step {
            let seg = segs.next().expect("one segment a user");
            n += seg.len();
            run.push(seg);
            u += 1;
        }
        rayon::join(
            || run.par_iter_mut().for_each(|seg| seg.sort_unstable()),
            || prev.iter().for_each(|seg| hash(h, seg)),
        );
        prev = run;
    }
}
