//! Synthetic long-tail data with a planted preference structure.
//!
//! # Model
//! - `T = topics` latent topics. Every user and item gets a topic uniformly
//!   at random.
//! - Item popularity is Zipf: items get a random popularity rank `r`
//!   (a permutation) and weight `w = (r + 1)^-zipf`. User activity is Zipf
//!   too, with exponent `user_zipf`.
//! - Interaction `k` (in time order, `timestamp = 1_600_000_000 + k`):
//!   the item is drawn from the global Zipf (so item popularity is exactly
//!   Zipf with exponent `zipf`); with probability `affinity` the user is
//!   drawn (by activity) among the users whose topic is the item's topic,
//!   otherwise among all users. Hence `P(item | user) ∝ w_item · (affinity /
//!   A_topic(user) · [topic(item) = topic(user)] + (1 − affinity) / A)`:
//!   a user's own-topic items are boosted by ≈ `1 + affinity·T/(1−affinity)`
//!   over the global popularity, which a model can learn from the features
//!   below and most-popular cannot.
//! - User features: `gender` (`F` with probability 0.8 for topics
//!   `< T/2`, else 0.2: correlated with the item genres/categories of the
//!   topic), `age` (numeric, shifted by topic), `region` (50 values,
//!   pure noise), `interest` (`t<topic>`, replaced by a random topic with
//!   probability `noise`).
//! - Item features: `category` (`c<topic>`, random with probability
//!   `noise`), `tags` (1-3 tags `g<n>` joined by `|`, each from the topic's
//!   `tags_per_topic` tags or, with probability `noise`, any tag), `year`
//!   (uniform 1960-2019, noise).
//!
//! # Determinism and scale
//! ChaCha8 streams per purpose (topics, user rows, item rows,
//! interactions) from `seed`, so the in-memory dataset
//! ([`crate::generate_dataset`]) and the written files ([`write_dataset`]) hold the
//! same data. Memory is O(users + items) (alias tables, Vose's method);
//! interactions are streamed to the file and never held.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::config::{
    ColumnRef, Encoding, EntityTableSpec, FeatureConfig, FeatureKind, FeaturesConfig, Format,
    InteractionsSpec, Side, SyntheticConfig,
};
use crate::error::DataError;
use crate::hash::FxHashMap;
use crate::raw::{RawColumn, RawData, RawEntityTable, RawInteractions};

/// Timestamp of the first interaction (seconds; one interaction per second).
pub const T0: i64 = 1_600_000_000;
/// Number of `region` values.
pub const REGIONS: u32 = 50;
/// Age buckets of the synthetic `age` feature.
pub const AGE_BOUNDARIES: [f64; 5] = [25.0, 35.0, 45.0, 55.0, 65.0];
/// Decade boundaries of the synthetic `year` feature.
pub const YEAR_BOUNDARIES: [f64; 5] = [1970.0, 1980.0, 1990.0, 2000.0, 2010.0];

/// Walker/Vose alias table: O(1) sampling from a discrete distribution.
///
/// Each slot packs its acceptance probability with the two values it can
/// return (its own and its alias), so a draw touches one cache line even
/// for tables of millions of entries.
///
/// # Shapes
/// `slots`: `[n]`.
#[derive(Debug, Clone)]
pub struct Alias {
    slots: Vec<Slot>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    prob: f32,
    own: u32,
    alias: u32,
}

impl Alias {
    /// Builds the table for non-negative `weights` (not all zero); a draw
    /// returns an index into `weights`.
    pub fn new(weights: &[f64]) -> Alias {
        let ids: Vec<u32> = (0..weights.len() as u32).collect();
        Alias::with_values(weights, &ids)
    }

    /// Like [`Alias::new`], but a draw of index `k` returns `values[k]`.
    pub fn with_values(weights: &[f64], values: &[u32]) -> Alias {
        let n = weights.len();
        let total: f64 = weights.iter().sum();
        let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut prob = vec![1.0f32; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<u32>, Vec<u32>) = (Vec::new(), Vec::new());
        for (i, &s) in scaled.iter().enumerate() {
            if s < 1.0 {
                small.push(i as u32)
            } else {
                large.push(i as u32)
            }
        }
        while let (Some(s), Some(l)) = (small.pop(), large.last().copied()) {
            prob[s as usize] = scaled[s as usize] as f32;
            alias[s as usize] = l;
            scaled[l as usize] -= 1.0 - scaled[s as usize];
            if scaled[l as usize] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        let slots = (0..n)
            .map(|k| Slot {
                prob: prob[k],
                own: values[k],
                alias: values[alias[k] as usize],
            })
            .collect();
        Alias { slots }
    }

    /// Draws a value.
    #[inline]
    pub fn sample<R: Rng>(&self, rng: &mut R) -> u32 {
        let s = self.slots[rng.gen_range(0..self.slots.len())];
        if rng.gen::<f32>() < s.prob {
            s.own
        } else {
            s.alias
        }
    }
}

fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

fn zipf_weights(n: usize, s: f64, r: &mut ChaCha8Rng) -> Vec<f64> {
    // rank[i] = a random permutation of 0..n.
    let mut rank: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        let j = r.gen_range(0..=i);
        rank.swap(i, j);
    }
    rank.iter().map(|&k| (k as f64 + 1.0).powf(-s)).collect()
}

/// A user row.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    /// `"F"` or `"M"`.
    pub gender: &'static str,
    /// Age in years.
    pub age: u32,
    /// Region index `< REGIONS`.
    pub region: u32,
    /// The (noisy) visible topic.
    pub interest: u32,
}

/// An item row.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRow {
    /// The (noisy) category = topic.
    pub category: u32,
    /// Distinct tag indices (1-3).
    pub tags: Vec<u32>,
    /// Release year.
    pub year: u32,
}

/// The generator state: topics and alias tables, O(users + items).
pub struct Generator {
    cfg: SyntheticConfig,
    user_topic: Vec<u32>,
    item_topic: Vec<u32>,
    items: Alias,
    users: Alias,
    /// Per topic: an activity alias over its users, returning user ids (None if empty).
    topic_users: Vec<Option<Alias>>,
}

/// Largest number of users or of items the generator accepts.
pub const MAX_ENTITIES: usize = 100_000_000;

impl Generator {
    /// Checks `cfg` and builds the topics and alias tables.
    ///
    /// # Errors
    /// [`DataError::Config`] for zero sizes, probabilities outside [0, 1] or
    /// a negative/non-finite exponent.
    pub fn new(cfg: &SyntheticConfig) -> Result<Generator, DataError> {
        let f = |k: &str| format!("data.synthetic.{k}");
        for (key, n) in [("users", cfg.users), ("items", cfg.items)] {
            if n == 0 {
                return Err(DataError::config(f(key), "must be ≥ 1"));
            }
            if n > MAX_ENTITIES {
                return Err(DataError::config(
                    f(key),
                    format!("{n} is more than {MAX_ENTITIES} (the generator keeps O(users + items) tables in memory)"),
                ));
            }
        }
        if cfg.topics == 0 || cfg.topics > 1 << 20 || cfg.tags_per_topic == 0 {
            return Err(DataError::config(
                f("topics"),
                "topics and tags_per_topic must be ≥ 1",
            ));
        }
        for (k, v) in [("affinity", cfg.affinity), ("noise", cfg.noise)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(DataError::config(f(k), "must be in [0, 1]"));
            }
        }
        for (k, v) in [("zipf", cfg.zipf), ("user_zipf", cfg.user_zipf)] {
            if !(v.is_finite() && (0.0..=10.0).contains(&v)) {
                return Err(DataError::config(
                    f(k),
                    "must be a finite exponent in [0, 10]",
                ));
            }
        }
        let mut r = rng(cfg.seed, 1);
        let t = cfg.topics as u32;
        let user_topic: Vec<u32> = (0..cfg.users).map(|_| r.gen_range(0..t)).collect();
        let item_topic: Vec<u32> = (0..cfg.items).map(|_| r.gen_range(0..t)).collect();
        let iw = zipf_weights(cfg.items, cfg.zipf, &mut r);
        let uw = zipf_weights(cfg.users, cfg.user_zipf, &mut r);
        let mut members: Vec<Vec<u32>> = vec![Vec::new(); cfg.topics];
        for (u, &tp) in user_topic.iter().enumerate() {
            members[tp as usize].push(u as u32);
        }
        let topic_users = members
            .into_iter()
            .map(|m| {
                if m.is_empty() {
                    None
                } else {
                    let w: Vec<f64> = m.iter().map(|&u| uw[u as usize]).collect();
                    Some(Alias::with_values(&w, &m))
                }
            })
            .collect();
        Ok(Generator {
            cfg: cfg.clone(),
            user_topic,
            item_topic,
            items: Alias::new(&iw),
            users: Alias::new(&uw),
            topic_users,
        })
    }

    /// The latent topic of every user (`[users]`).
    pub fn user_topics(&self) -> &[u32] {
        &self.user_topic
    }

    /// The latent topic of every item (`[items]`).
    pub fn item_topics(&self) -> &[u32] {
        &self.item_topic
    }

    /// Calls `f(user, row)` for every user in order.
    pub fn for_each_user(
        &self,
        mut f: impl FnMut(u32, &UserRow) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        let mut r = rng(self.cfg.seed, 2);
        let t = self.cfg.topics as u32;
        for (u, &tp) in self.user_topic.iter().enumerate() {
            let female = r.gen::<f64>()
                < if tp < t.div_ceil(2) && t > 1 {
                    0.8
                } else {
                    0.2
                };
            let age = 18 + (tp * 7) % 40 + r.gen_range(0..12);
            let region = r.gen_range(0..REGIONS);
            let interest = if r.gen::<f64>() < self.cfg.noise {
                r.gen_range(0..t)
            } else {
                tp
            };
            let row = UserRow {
                gender: if female { "F" } else { "M" },
                age,
                region,
                interest,
            };
            f(u as u32, &row)?;
        }
        Ok(())
    }

    /// Calls `f(item, row)` for every item in order.
    pub fn for_each_item(
        &self,
        mut f: impl FnMut(u32, &ItemRow) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        let mut r = rng(self.cfg.seed, 3);
        let t = self.cfg.topics as u32;
        let tpt = self.cfg.tags_per_topic as u32;
        let mut row = ItemRow {
            category: 0,
            tags: Vec::with_capacity(3),
            year: 0,
        };
        for (i, &tp) in self.item_topic.iter().enumerate() {
            row.category = if r.gen::<f64>() < self.cfg.noise {
                r.gen_range(0..t)
            } else {
                tp
            };
            row.tags.clear();
            let n = r.gen_range(1..=3);
            for _ in 0..n {
                let g = if r.gen::<f64>() < self.cfg.noise {
                    r.gen_range(0..t * tpt)
                } else {
                    tp * tpt + r.gen_range(0..tpt)
                };
                if !row.tags.contains(&g) {
                    row.tags.push(g);
                }
            }
            row.year = r.gen_range(1960..2020);
            f(i as u32, &row)?;
        }
        Ok(())
    }

    /// Calls `f(user, item, timestamp)` for every interaction in time order.
    pub fn for_each_interaction(
        &self,
        mut f: impl FnMut(u32, u32, i64) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        let mut r = rng(self.cfg.seed, 4);
        for k in 0..self.cfg.interactions {
            let i = self.items.sample(&mut r);
            let aff = r.gen::<f64>() < self.cfg.affinity;
            let u = match (&self.topic_users[self.item_topic[i as usize] as usize], aff) {
                (Some(a), true) => a.sample(&mut r),
                _ => self.users.sample(&mut r),
            };
            f(u, i, T0 + k as i64)?;
        }
        Ok(())
    }
}

/// The features of the synthetic tables (the `[features]` written to
/// `dataset.toml` and used for `source = "synthetic"` when `[features]` is
/// empty): user_id, gender, age, region, interest; item_id, category, tags, year.
pub fn synthetic_features() -> FeaturesConfig {
    let mut f = FeaturesConfig::new();
    let cat =
        |side, col: &str| FeatureConfig::new(side, FeatureKind::Categorical, Some(col.into()));
    f.insert("user_id".into(), cat(Side::User, "user"));
    f.insert("gender".into(), cat(Side::User, "gender"));
    f.insert("region".into(), cat(Side::User, "region"));
    f.insert("interest".into(), cat(Side::User, "interest"));
    let mut age = FeatureConfig::new(Side::User, FeatureKind::Bucketized, Some("age".into()));
    age.boundaries = Some(AGE_BOUNDARIES.to_vec());
    f.insert("age".into(), age);
    f.insert("item_id".into(), cat(Side::Item, "item"));
    f.insert("category".into(), cat(Side::Item, "category"));
    let mut tags = FeatureConfig::new(
        Side::Item,
        FeatureKind::MultiCategorical,
        Some("tags".into()),
    );
    tags.separator = Some("|".into());
    f.insert("tags".into(), tags);
    let mut year = FeatureConfig::new(Side::Item, FeatureKind::Bucketized, Some("year".into()));
    year.boundaries = Some(YEAR_BOUNDARIES.to_vec());
    f.insert("year".into(), year);
    f
}

/// Column builder interning string values.
struct Col {
    name: &'static str,
    map: FxHashMap<String, u32>,
    dict: Vec<String>,
    codes: Vec<u32>,
}

impl Col {
    fn new(name: &'static str) -> Col {
        Col {
            name,
            map: FxHashMap::default(),
            dict: Vec::new(),
            codes: Vec::new(),
        }
    }
    fn push(&mut self, v: &str) {
        let c = match self.map.get(v) {
            Some(&c) => c,
            None => {
                let c = self.dict.len() as u32;
                self.map.insert(v.to_string(), c);
                self.dict.push(v.to_string());
                c
            }
        };
        self.codes.push(c);
    }
    fn finish(self) -> RawColumn {
        RawColumn {
            col: Some(ColumnRef::Name(self.name.into())),
            name: self.name.into(),
            dict: self.dict,
            codes: self.codes,
        }
    }
}

fn tags_text(tags: &[u32], out: &mut String) {
    use std::fmt::Write as _;
    out.clear();
    for (k, g) in tags.iter().enumerate() {
        if k > 0 {
            out.push('|');
        }
        let _ = write!(out, "g{g}");
    }
}

/// Generates the raw tables in memory.
pub(crate) fn generate_raw(cfg: &SyntheticConfig) -> Result<RawData, DataError> {
    let g = Generator::new(cfg)?;
    let ukeys: Vec<String> = (0..cfg.users).map(|u| u.to_string()).collect();
    let ikeys: Vec<String> = (0..cfg.items).map(|i| i.to_string()).collect();
    let (mut gender, mut age, mut region, mut interest) = (
        Col::new("gender"),
        Col::new("age"),
        Col::new("region"),
        Col::new("interest"),
    );
    g.for_each_user(|_, r| {
        gender.push(r.gender);
        age.push(&r.age.to_string());
        region.push(&format!("r{}", r.region));
        interest.push(&format!("t{}", r.interest));
        Ok(())
    })?;
    let (mut category, mut tags, mut year) =
        (Col::new("category"), Col::new("tags"), Col::new("year"));
    let mut buf = String::new();
    g.for_each_item(|_, r| {
        category.push(&format!("c{}", r.category));
        tags_text(&r.tags, &mut buf);
        tags.push(&buf);
        year.push(&r.year.to_string());
        Ok(())
    })?;
    let mut inter = RawInteractions {
        user_keys: ukeys.clone(),
        item_keys: ikeys.clone(),
        ..Default::default()
    };
    inter.user.reserve(cfg.interactions);
    inter.item.reserve(cfg.interactions);
    inter.timestamp.reserve(cfg.interactions);
    g.for_each_interaction(|u, i, t| {
        inter.user.push(u);
        inter.item.push(i);
        inter.timestamp.push(t);
        Ok(())
    })?;
    Ok(RawData {
        interactions: inter,
        user_key_refs: vec![ColumnRef::Name("user".into())],
        item_key_refs: vec![ColumnRef::Name("item".into())],
        labels: [None, None],
        users: Some(RawEntityTable {
            keys: ukeys,
            columns: vec![
                gender.finish(),
                age.finish(),
                region.finish(),
                interest.finish(),
            ],
            duplicate_rows: 0,
            rows_read: cfg.users,
        }),
        items: Some(RawEntityTable {
            keys: ikeys,
            columns: vec![category.finish(), tags.finish(), year.finish()],
            duplicate_rows: 0,
            rows_read: cfg.items,
        }),
        long: Default::default(),
        skipped_rows: 0,
    })
}

/// File format of [`write_dataset`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutFormat {
    /// Comma-separated with a header, unquoted.
    Csv,
    /// Parquet (Snappy), integer ids.
    Parquet,
}

/// What [`write_dataset`] wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WriteSummary {
    /// Files written (tables and `dataset.toml`).
    pub files: Vec<PathBuf>,
    /// Rows per table: users, items, interactions.
    pub rows: [usize; 3],
}

struct Csv {
    path: PathBuf,
    w: BufWriter<File>,
}

impl Csv {
    fn create(path: PathBuf, header: &str) -> Result<Csv, DataError> {
        let f = File::create(tmp_of(&path)).map_err(|e| DataError::io(&path, e))?;
        let mut c = Csv {
            w: BufWriter::with_capacity(1 << 20, f),
            path,
        };
        c.w.write_all(header.as_bytes())
            .map_err(|e| DataError::io(&c.path, e))?;
        Ok(c)
    }
    /// Flushes and syncs the temporary file; returns the final path (the
    /// rename happens once every table is written).
    fn finish(mut self) -> Result<PathBuf, DataError> {
        self.w.flush().map_err(|e| DataError::io(&self.path, e))?;
        self.w
            .get_ref()
            .sync_all()
            .map_err(|e| DataError::io(&self.path, e))?;
        Ok(self.path)
    }
}

/// Streams Parquet batches of `BATCH` rows.
struct Pq {
    path: PathBuf,
    w: parquet::arrow::ArrowWriter<File>,
    schema: arrow_schema::SchemaRef,
}

const BATCH: usize = 1 << 16;

impl Pq {
    fn create(path: PathBuf, cols: &[(&str, arrow_schema::DataType)]) -> Result<Pq, DataError> {
        use arrow_schema::{Field, Schema};
        let schema = Arc::new(Schema::new(
            cols.iter()
                .map(|(n, t)| Field::new(*n, t.clone(), false))
                .collect::<Vec<_>>(),
        ));
        let f = File::create(tmp_of(&path)).map_err(|e| DataError::io(&path, e))?;
        let props = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::SNAPPY)
            .set_max_row_group_size(1 << 20)
            .build();
        let w =
            parquet::arrow::ArrowWriter::try_new(f, schema.clone(), Some(props)).map_err(|e| {
                DataError::Write {
                    path: path.clone(),
                    message: e.to_string(),
                }
            })?;
        Ok(Pq { path, w, schema })
    }
    fn write(&mut self, cols: Vec<arrow_array::ArrayRef>) -> Result<(), DataError> {
        let b = arrow_array::RecordBatch::try_new(self.schema.clone(), cols).map_err(|e| {
            DataError::Write {
                path: self.path.clone(),
                message: e.to_string(),
            }
        })?;
        self.w.write(&b).map_err(|e| DataError::Write {
            path: self.path.clone(),
            message: e.to_string(),
        })
    }
    fn finish(self) -> Result<PathBuf, DataError> {
        self.w.close().map_err(|e| DataError::Write {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        Ok(self.path)
    }
}

/// The temporary file a table is streamed to before [`write_dataset`]
/// renames every table into place: `dir/.name.tmp<pid>`.
fn tmp_of(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp{}", std::process::id()))
}

fn ioe(path: &Path) -> impl Fn(std::io::Error) -> DataError + '_ {
    move |e| DataError::io(path, e)
}

/// Writes `users`, `items` and `interactions` tables (CSV or Parquet) and a
/// ready-to-use `dataset.toml` describing them into `out` (created if
/// needed). Interactions are streamed: memory is O(users + items).
///
/// Nothing is replaced until everything is written: the tables stream to
/// hidden temporary files that are renamed into place at the end,
/// `dataset.toml` last, so an interrupted or failed run leaves a previous
/// dataset in `out` whole (on an error the temporaries are removed; those
/// of a killed run are removed by the next run into the same folder).
///
/// # Errors
/// [`DataError::Config`] for an invalid `cfg`, [`DataError::Io`] /
/// [`DataError::Write`] when a file cannot be written.
pub fn write_dataset(
    cfg: &SyntheticConfig,
    out: &Path,
    format: OutFormat,
) -> Result<WriteSummary, DataError> {
    let g = Generator::new(cfg)?;
    std::fs::create_dir_all(out).map_err(|e| DataError::io(out, e))?;
    let ext = match format {
        OutFormat::Csv => "csv",
        OutFormat::Parquet => "parquet",
    };
    let paths = [
        out.join(format!("users.{ext}")),
        out.join(format!("items.{ext}")),
        out.join(format!("interactions.{ext}")),
        out.join("dataset.toml"),
    ];
    // hidden temporaries of earlier interrupted runs (any pid) of these tables
    if let Ok(entries) = std::fs::read_dir(out) {
        let stems: Vec<String> = paths
            .iter()
            .filter_map(|p| {
                p.file_name()
                    .map(|n| format!(".{}.tmp", n.to_string_lossy()))
            })
            .collect();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(rest) = stems.iter().find_map(|s| name.strip_prefix(s.as_str())) {
                if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
    for p in &paths {
        if p.is_dir() {
            return Err(DataError::io(
                p,
                std::io::Error::other("is a directory; the dataset would be written here"),
            ));
        }
    }
    let result = write_tables(&g, cfg, format, &paths).and_then(|()| {
        for p in &paths {
            std::fs::rename(tmp_of(p), p).map_err(|e| DataError::io(p, e))?;
        }
        Ok(())
    });
    if let Err(e) = result {
        for p in &paths {
            let _ = std::fs::remove_file(tmp_of(p));
        }
        return Err(e);
    }
    Ok(WriteSummary {
        files: paths.to_vec(),
        rows: [cfg.users, cfg.items, cfg.interactions],
    })
}

/// Streams the three tables and `dataset.toml` of [`write_dataset`] to
/// the temporary files of `paths` (users, items, interactions, toml).
fn write_tables(
    g: &Generator,
    cfg: &SyntheticConfig,
    format: OutFormat,
    paths: &[PathBuf; 4],
) -> Result<(), DataError> {
    use arrow_array::builder::{Int64Builder, StringBuilder};
    use arrow_schema::DataType::{Int64, Utf8};
    let [up, ip, xp, toml_path] = paths.clone();
    let mut files = Vec::new();
    let mut tag_buf = String::new();
    match format {
        OutFormat::Csv => {
            let mut c = Csv::create(up, "user,gender,age,region,interest\n")?;
            g.for_each_user(|u, r| {
                writeln!(
                    c.w,
                    "{u},{},{},r{},t{}",
                    r.gender, r.age, r.region, r.interest
                )
                .map_err(ioe(&c.path))
            })?;
            files.push(c.finish()?);
            let mut c = Csv::create(ip, "item,category,tags,year\n")?;
            g.for_each_item(|i, r| {
                tags_text(&r.tags, &mut tag_buf);
                writeln!(c.w, "{i},c{},{},{}", r.category, tag_buf, r.year).map_err(ioe(&c.path))
            })?;
            files.push(c.finish()?);
            let mut c = Csv::create(xp, "user,item,timestamp\n")?;
            let mut line: Vec<u8> = Vec::with_capacity(48);
            let (mut b1, mut b2, mut b3) = (
                itoa::Buffer::new(),
                itoa::Buffer::new(),
                itoa::Buffer::new(),
            );
            g.for_each_interaction(|u, i, t| {
                line.clear();
                line.extend_from_slice(b1.format(u).as_bytes());
                line.push(b',');
                line.extend_from_slice(b2.format(i).as_bytes());
                line.push(b',');
                line.extend_from_slice(b3.format(t).as_bytes());
                line.push(b'\n');
                c.w.write_all(&line).map_err(ioe(&c.path))
            })?;
            files.push(c.finish()?);
        }
        OutFormat::Parquet => {
            // Users.
            let mut p = Pq::create(
                up,
                &[
                    ("user", Int64),
                    ("gender", Utf8),
                    ("age", Int64),
                    ("region", Utf8),
                    ("interest", Utf8),
                ],
            )?;
            let mut b = (
                Int64Builder::new(),
                StringBuilder::new(),
                Int64Builder::new(),
                StringBuilder::new(),
                StringBuilder::new(),
            );
            let mut n = 0;
            let flush_u = |b: &mut (
                Int64Builder,
                StringBuilder,
                Int64Builder,
                StringBuilder,
                StringBuilder,
            ),
                           p: &mut Pq|
             -> Result<(), DataError> {
                p.write(vec![
                    Arc::new(b.0.finish()),
                    Arc::new(b.1.finish()),
                    Arc::new(b.2.finish()),
                    Arc::new(b.3.finish()),
                    Arc::new(b.4.finish()),
                ])
            };
            g.for_each_user(|u, r| {
                b.0.append_value(u as i64);
                b.1.append_value(r.gender);
                b.2.append_value(r.age as i64);
                b.3.append_value(format!("r{}", r.region));
                b.4.append_value(format!("t{}", r.interest));
                n += 1;
                if n % BATCH == 0 {
                    flush_u(&mut b, &mut p)?;
                }
                Ok(())
            })?;
            if n % BATCH != 0 {
                flush_u(&mut b, &mut p)?;
            }
            files.push(p.finish()?);
            // Items.
            let mut p = Pq::create(
                ip,
                &[
                    ("item", Int64),
                    ("category", Utf8),
                    ("tags", Utf8),
                    ("year", Int64),
                ],
            )?;
            let mut b = (
                Int64Builder::new(),
                StringBuilder::new(),
                StringBuilder::new(),
                Int64Builder::new(),
            );
            let mut n = 0;
            let flush_i = |b: &mut (Int64Builder, StringBuilder, StringBuilder, Int64Builder),
                           p: &mut Pq| {
                p.write(vec![
                    Arc::new(b.0.finish()),
                    Arc::new(b.1.finish()),
                    Arc::new(b.2.finish()),
                    Arc::new(b.3.finish()),
                ])
            };
            g.for_each_item(|i, r| {
                b.0.append_value(i as i64);
                b.1.append_value(format!("c{}", r.category));
                tags_text(&r.tags, &mut tag_buf);
                b.2.append_value(&tag_buf);
                b.3.append_value(r.year as i64);
                n += 1;
                if n % BATCH == 0 {
                    flush_i(&mut b, &mut p)?;
                }
                Ok(())
            })?;
            if n % BATCH != 0 {
                flush_i(&mut b, &mut p)?;
            }
            files.push(p.finish()?);
            // Interactions.
            let mut p = Pq::create(
                xp,
                &[("user", Int64), ("item", Int64), ("timestamp", Int64)],
            )?;
            let mut b = (
                Int64Builder::with_capacity(BATCH),
                Int64Builder::with_capacity(BATCH),
                Int64Builder::with_capacity(BATCH),
            );
            let mut n = 0;
            let flush_x = |b: &mut (Int64Builder, Int64Builder, Int64Builder), p: &mut Pq| {
                p.write(vec![
                    Arc::new(b.0.finish()),
                    Arc::new(b.1.finish()),
                    Arc::new(b.2.finish()),
                ])
            };
            g.for_each_interaction(|u, i, t| {
                b.0.append_value(u as i64);
                b.1.append_value(i as i64);
                b.2.append_value(t);
                n += 1;
                if n % BATCH == 0 {
                    flush_x(&mut b, &mut p)?;
                }
                Ok(())
            })?;
            if n % BATCH != 0 || n == 0 {
                flush_x(&mut b, &mut p)?;
            }
            files.push(p.finish()?);
        }
    }
    std::fs::write(tmp_of(&toml_path), dataset_toml(cfg, format)?)
        .map_err(|e| DataError::io(&toml_path, e))?;
    files.push(toml_path);
    Ok(())
}

/// The `dataset.toml` describing the files of [`write_dataset`].
pub fn dataset_toml(cfg: &SyntheticConfig, format: OutFormat) -> Result<String, DataError> {
    let (ext, fmt, quoting) = match format {
        OutFormat::Csv => ("csv", Format::Csv, Some(false)),
        OutFormat::Parquet => ("parquet", Format::Parquet, None),
    };
    let table = |name: &str, key: &str| EntityTableSpec {
        file: format!("{name}.{ext}").into(),
        format: Some(fmt),
        delimiter: None,
        header: None,
        quoting,
        encoding: Encoding::Utf8,
        columns: None,
        key: key.into(),
        label: None,
    };
    #[derive(Serialize)]
    struct Data {
        path: String,
        interactions: InteractionsSpec,
        users: EntityTableSpec,
        items: EntityTableSpec,
    }
    #[derive(Serialize)]
    struct Doc {
        data: Data,
        features: FeaturesConfig,
    }
    let doc = Doc {
        data: Data {
            path: ".".into(),
            interactions: InteractionsSpec {
                file: format!("interactions.{ext}").into(),
                format: Some(fmt),
                delimiter: None,
                header: None,
                quoting,
                encoding: Encoding::Utf8,
                columns: None,
                user: "user".into(),
                item: "item".into(),
                timestamp: Some("timestamp".into()),
                weight: None,
            },
            users: table("users", "user"),
            items: table("items", "item"),
        },
        features: synthetic_features(),
    };
    let body =
        toml::to_string(&doc).map_err(|e| DataError::config("dataset.toml", e.to_string()))?;
    let params =
        toml::to_string(cfg).map_err(|e| DataError::config("dataset.toml", e.to_string()))?;
    let mut head = String::from("# Written by `twotower generate`; paths are relative to this file.\n# Generator parameters:\n");
    for l in params.lines() {
        head.push_str("#   ");
        head.push_str(l);
        head.push('\n');
    }
    Ok(head + &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_dataset_replaces_a_dataset_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let small = |users, seed| SyntheticConfig {
            users,
            items: 20,
            interactions: 300,
            seed,
            ..SyntheticConfig::default()
        };
        let listing = || {
            let mut v: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        // a temporary left by an interrupted earlier run is cleaned up; other files stay
        std::fs::write(dir.path().join(".interactions.csv.tmp99999"), "stale").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        write_dataset(&small(30, 1), dir.path(), OutFormat::Csv).unwrap();
        std::fs::remove_file(dir.path().join("notes.txt")).unwrap();
        let want = ["dataset.toml", "interactions.csv", "items.csv", "users.csv"];
        assert_eq!(listing(), want, "no temporary file is left");
        let users = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
        assert_eq!(users.lines().count(), 1 + 30);
        // a second write that cannot finish changes nothing and leaves nothing
        std::fs::remove_file(dir.path().join("interactions.csv")).unwrap();
        std::fs::create_dir(dir.path().join("interactions.csv")).unwrap();
        let err = write_dataset(&small(40, 2), dir.path(), OutFormat::Csv).unwrap_err();
        assert!(err.to_string().contains("interactions.csv"), "{err}");
        assert_eq!(listing(), want);
        let after = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
        assert_eq!(after, users);
        // once writable, the whole new dataset replaces the old one
        std::fs::remove_dir(dir.path().join("interactions.csv")).unwrap();
        write_dataset(&small(40, 2), dir.path(), OutFormat::Csv).unwrap();
        assert_eq!(listing(), want);
        let users = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
        assert_eq!(users.lines().count(), 1 + 40);
    }

    #[test]
    fn alias_table_matches_weights() {
        // Weights 1:2:3:4 → probabilities 0.1, 0.2, 0.3, 0.4; 200k draws,
        // standard error ≤ sqrt(0.25/200000) ≈ 0.0011, tolerance 0.006.
        let a = Alias::new(&[1.0, 2.0, 3.0, 4.0]);
        let mut r = rng(1, 0);
        let mut c = [0usize; 4];
        for _ in 0..200_000 {
            c[a.sample(&mut r) as usize] += 1;
        }
        for (k, &n) in c.iter().enumerate() {
            let p = n as f64 / 200_000.0;
            assert!((p - 0.1 * (k + 1) as f64).abs() < 0.006, "{k}: {p}");
        }
    }

    #[test]
    fn invalid_parameters_are_config_errors() {
        for cfg in [
            SyntheticConfig {
                items: 0,
                ..Default::default()
            },
            SyntheticConfig {
                affinity: 1.5,
                ..Default::default()
            },
            SyntheticConfig {
                zipf: f64::NAN,
                ..Default::default()
            },
            SyntheticConfig {
                topics: 0,
                ..Default::default()
            },
        ] {
            assert!(matches!(
                Generator::new(&cfg),
                Err(DataError::Config { .. })
            ));
        }
    }
}
