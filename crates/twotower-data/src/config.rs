//! The dataset schema: the `[data]` and `[features]` sections of a twotower
//! config file, and the generic TOML helpers (`load_config_doc`,
//! `apply_override`) the other crates reuse for their own sections.
//!
//! Every struct here is the *raw* config (deserialized from TOML with
//! `deny_unknown_fields`, so a misspelt key is an error listing the valid
//! ones). Consistency checks (a bucketized feature needs `boundaries`, a
//! column must exist, ...) happen in [`crate::load_dataset`] and return a
//! [`DataError`], never a panic.
//!
//! # Paths
//! `data.path` is resolved against the directory of the config file (the
//! `base_dir` given to the loader); every table `file` is resolved against
//! `data.path`. Absolute paths are kept as they are.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::DataError;

/// Which tower a feature belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The user (query) tower.
    User,
    /// The item (candidate) tower.
    Item,
}

/// How a feature's raw values become vocabulary indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    /// One value per entity (e.g. gender, occupation, the user/item id).
    Categorical,
    /// A bag of values per entity (e.g. genres); may be empty.
    MultiCategorical,
    /// A number mapped to a bucket by sorted `boundaries`.
    Bucketized,
}

/// A column given by name (header or `columns` list) or 0-based position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ColumnRef {
    /// 0-based position in the row.
    Index(usize),
    /// Column name from the header line, the `columns` list, or the Parquet schema.
    Name(String),
}

impl fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnRef::Index(i) => write!(f, "#{i}"),
            ColumnRef::Name(n) => f.write_str(n),
        }
    }
}

impl From<&str> for ColumnRef {
    fn from(s: &str) -> Self {
        ColumnRef::Name(s.to_string())
    }
}

/// File format of a table. Default: from the file extension (`.parquet`/`.pq`
/// → parquet, `.tsv`/`.tab` → tsv, anything else → csv).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Delimited text; default delimiter `,`, default `quoting = true`.
    Csv,
    /// Delimited text; default delimiter `\t`, default `quoting = false`.
    Tsv,
    /// Apache Parquet (string, integer, float and boolean columns).
    Parquet,
}

/// Text encoding of a delimited file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Encoding {
    /// UTF-8 (default); invalid bytes are an error naming file, line and column.
    #[default]
    #[serde(rename = "utf8", alias = "utf-8")]
    Utf8,
    /// ISO-8859-1: each byte is the code point U+00XX.
    #[serde(rename = "latin1", alias = "latin-1", alias = "iso-8859-1")]
    Latin1,
}

/// A built-in description of a public dataset's files and features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Preset {
    /// MovieLens 100K: `u.data`, `u.user`, `u.item` (see [`crate::preset`]).
    #[serde(rename = "movielens-100k")]
    MovieLens100k,
    /// MovieLens 1M: `ratings.dat`, `users.dat`, `movies.dat` (`::`-separated).
    #[serde(rename = "movielens-1m")]
    MovieLens1m,
}

/// Where the interactions come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Read the tables from files (default).
    #[default]
    Files,
    /// Generate in memory with [`crate::generate_dataset`] from `[data.synthetic]`.
    Synthetic,
}

/// What to do with a row that cannot be read (wrong field count, unparsable
/// timestamp/weight, invalid encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnBadRow {
    /// Fail with a [`DataError`] naming file, line and column (default).
    #[default]
    Error,
    /// Skip the row and count it in [`crate::IngestReport::skipped_rows`].
    Skip,
}

/// `[data]`: where the dataset is and how to read and split it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Base directory of the table files, relative to the config file's
    /// directory. Default `"."`.
    #[serde(default = "default_path")]
    pub path: PathBuf,
    /// Built-in dataset description; fills `interactions`, `users` and
    /// `items` when they are absent, and `[features]` when it is empty.
    #[serde(default)]
    pub preset: Option<Preset>,
    /// `"files"` (default) or `"synthetic"`.
    #[serde(default)]
    pub source: Source,
    /// The interactions table (required unless a preset or `synthetic`).
    #[serde(default)]
    pub interactions: Option<InteractionsSpec>,
    /// Optional user feature table (one row per user).
    #[serde(default)]
    pub users: Option<EntityTableSpec>,
    /// Optional item feature table (one row per item; the catalog).
    #[serde(default)]
    pub items: Option<EntityTableSpec>,
    /// How to split into train and test.
    #[serde(default)]
    pub split: SplitConfig,
    /// Generator parameters, used when `source = "synthetic"`.
    #[serde(default)]
    pub synthetic: SyntheticConfig,
    /// `"error"` (default) or `"skip"` for unreadable rows.
    #[serde(default)]
    pub on_bad_row: OnBadRow,
}

fn default_path() -> PathBuf {
    PathBuf::from(".")
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            path: default_path(),
            preset: None,
            source: Source::Files,
            interactions: None,
            users: None,
            items: None,
            split: SplitConfig::default(),
            synthetic: SyntheticConfig::default(),
            on_bad_row: OnBadRow::Error,
        }
    }
}

/// `[data.interactions]`: one row per (user, item) event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InteractionsSpec {
    /// The file, relative to `data.path`.
    pub file: PathBuf,
    /// Format; default from the extension.
    #[serde(default)]
    pub format: Option<Format>,
    /// Field delimiter, any string (`","`, `"\t"`, `"|"`, `"::"`); default by format.
    #[serde(default)]
    pub delimiter: Option<String>,
    /// Whether the first line is a header of column names. Default `true`.
    #[serde(default)]
    pub header: Option<bool>,
    /// Whether `"`-quoted fields are recognised (single-byte delimiters only).
    /// Default `true` for csv, `false` for tsv.
    #[serde(default)]
    pub quoting: Option<bool>,
    /// Text encoding. Default `utf8`.
    #[serde(default)]
    pub encoding: Encoding,
    /// Column names for a headerless file (so columns can be referenced by name).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// The user key column.
    pub user: ColumnRef,
    /// The item key column.
    pub item: ColumnRef,
    /// Integer timestamp column (any unit). Absent: the row number is used.
    #[serde(default)]
    pub timestamp: Option<ColumnRef>,
    /// Optional numeric weight column (kept, not used by the split).
    #[serde(default)]
    pub weight: Option<ColumnRef>,
}

/// `[data.users]` / `[data.items]`: a feature table with one row per entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityTableSpec {
    /// The file, relative to `data.path`.
    pub file: PathBuf,
    /// Format; default from the extension.
    #[serde(default)]
    pub format: Option<Format>,
    /// Field delimiter; default by format.
    #[serde(default)]
    pub delimiter: Option<String>,
    /// Whether the first line is a header. Default `true`.
    #[serde(default)]
    pub header: Option<bool>,
    /// Whether quoted fields are recognised. Default `true` for csv, `false` for tsv.
    #[serde(default)]
    pub quoting: Option<bool>,
    /// Text encoding. Default `utf8`.
    #[serde(default)]
    pub encoding: Encoding,
    /// Column names for a headerless file.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// The entity key column (matches the interactions' user/item column).
    pub key: ColumnRef,
    /// `[data.items]` only: a column shown beside each item by `recommend`
    /// and `similar` (a title, a name); read as text, not a model feature.
    /// Default none (the MovieLens presets: the title). On `[data.users]`
    /// it is an error.
    #[serde(default)]
    pub label: Option<ColumnRef>,
}

/// A long (key, value) table for a multi-categorical feature: one row per
/// (entity, value) pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongTableSpec {
    /// The file, relative to `data.path`.
    pub file: PathBuf,
    /// Format; default from the extension.
    #[serde(default)]
    pub format: Option<Format>,
    /// Field delimiter; default by format.
    #[serde(default)]
    pub delimiter: Option<String>,
    /// Whether the first line is a header. Default `true`.
    #[serde(default)]
    pub header: Option<bool>,
    /// Whether quoted fields are recognised.
    #[serde(default)]
    pub quoting: Option<bool>,
    /// Text encoding. Default `utf8`.
    #[serde(default)]
    pub encoding: Encoding,
    /// Column names for a headerless file.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// The entity key column.
    pub key: ColumnRef,
    /// The value column.
    pub value: ColumnRef,
}

/// How a table file is read, resolved from a spec (paths absolute).
#[derive(Debug, Clone, PartialEq)]
pub struct ReadOptions {
    /// Resolved file path.
    pub path: PathBuf,
    /// Resolved format.
    pub format: Format,
    /// Delimiter bytes (in the file's encoding).
    pub delimiter: Vec<u8>,
    /// First line is a header.
    pub header: bool,
    /// `"`-quoting recognised.
    pub quoting: bool,
    /// Text encoding.
    pub encoding: Encoding,
    /// Column names for a headerless file.
    pub columns: Option<Vec<String>>,
}

#[allow(clippy::too_many_arguments)]
fn resolve_read(
    field: &str,
    dir: &Path,
    file: &Path,
    format: Option<Format>,
    delimiter: &Option<String>,
    header: Option<bool>,
    quoting: Option<bool>,
    encoding: Encoding,
    columns: &Option<Vec<String>>,
) -> Result<ReadOptions, DataError> {
    let path = dir.join(file);
    let format = format.unwrap_or_else(|| format_from_extension(&path));
    let delimiter = match delimiter.as_deref() {
        Some("") => {
            return Err(DataError::config(
                format!("{field}.delimiter"),
                "must not be empty",
            ))
        }
        Some("tab") | Some("\\t") => b"\t".to_vec(),
        Some(d) => match encoding {
            Encoding::Utf8 => d.as_bytes().to_vec(),
            Encoding::Latin1 => {
                let mut out = Vec::new();
                for c in d.chars() {
                    let c = c as u32;
                    if c > 0xFF {
                        return Err(DataError::config(
                            format!("{field}.delimiter"),
                            "a latin1 file's delimiter must be Latin-1 characters",
                        ));
                    }
                    out.push(c as u8);
                }
                out
            }
        },
        None => match format {
            Format::Tsv => b"\t".to_vec(),
            _ => b",".to_vec(),
        },
    };
    if delimiter.contains(&b'\n') || delimiter.contains(&b'\r') {
        return Err(DataError::config(
            format!("{field}.delimiter"),
            "must not contain a line break",
        ));
    }
    let quoting = quoting.unwrap_or(format == Format::Csv && delimiter.len() == 1);
    if quoting && delimiter.len() != 1 {
        return Err(DataError::config(
            format!("{field}.quoting"),
            "quoting is only supported with a single-byte delimiter",
        ));
    }
    Ok(ReadOptions {
        path,
        format,
        delimiter,
        header: header.unwrap_or(true),
        quoting,
        encoding,
        columns: columns.clone(),
    })
}

/// Format implied by a file name: `.parquet`/`.pq` → parquet, `.tsv`/`.tab` → tsv, else csv.
pub fn format_from_extension(path: &Path) -> Format {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("parquet") | Some("pq") => Format::Parquet,
        Some("tsv") | Some("tab") => Format::Tsv,
        _ => Format::Csv,
    }
}

impl InteractionsSpec {
    /// Resolves the reading options against the data directory.
    pub fn read_options(&self, dir: &Path) -> Result<ReadOptions, DataError> {
        resolve_read(
            "data.interactions",
            dir,
            &self.file,
            self.format,
            &self.delimiter,
            self.header,
            self.quoting,
            self.encoding,
            &self.columns,
        )
    }
}

impl EntityTableSpec {
    /// Resolves the reading options against the data directory.
    pub fn read_options(&self, dir: &Path, field: &str) -> Result<ReadOptions, DataError> {
        resolve_read(
            field,
            dir,
            &self.file,
            self.format,
            &self.delimiter,
            self.header,
            self.quoting,
            self.encoding,
            &self.columns,
        )
    }
}

impl LongTableSpec {
    /// Resolves the reading options against the data directory.
    pub fn read_options(&self, dir: &Path, field: &str) -> Result<ReadOptions, DataError> {
        resolve_read(
            field,
            dir,
            &self.file,
            self.format,
            &self.delimiter,
            self.header,
            self.quoting,
            self.encoding,
            &self.columns,
        )
    }
}

/// Split kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitKind {
    /// Per user, the last interactions by (timestamp, item id) go to test (EVALUATION.md; default).
    #[default]
    Temporal,
    /// Per user, a seeded random subset goes to test (same sizes as temporal).
    Random,
}

/// `[data.split]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    /// `"temporal"` (default) or `"random"`.
    #[serde(default)]
    pub kind: SplitKind,
    /// Per-user test share: `ceil(test_fraction · n_u)` go to test. Default 0.2.
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Users with fewer interactions go to train entirely. Default 5.
    #[serde(default = "default_min_interactions")]
    pub min_interactions: usize,
    /// Seed of the random split. Default 0.
    #[serde(default)]
    pub seed: u64,
}

fn default_test_fraction() -> f64 {
    0.2
}
fn default_min_interactions() -> usize {
    5
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig {
            kind: SplitKind::Temporal,
            test_fraction: 0.2,
            min_interactions: 5,
            seed: 0,
        }
    }
}

/// `[data.synthetic]`: parameters of the synthetic long-tail generator
/// (see [`crate::synth`] for the model). The defaults are the built-in
/// dataset of `twotower train` (5k users, 2k items, 200k interactions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Number of users. Default 5000.
    #[serde(default = "d_users")]
    pub users: usize,
    /// Number of items. Default 2000.
    #[serde(default = "d_items")]
    pub items: usize,
    /// Number of interactions. Default 200000.
    #[serde(default = "d_interactions")]
    pub interactions: usize,
    /// Zipf exponent `s` of item popularity: P(item of popularity rank r) ∝ r^-s. Default 1.0.
    #[serde(default = "d_zipf")]
    pub zipf: f64,
    /// Zipf exponent of user activity. Default 0.5.
    #[serde(default = "d_user_zipf")]
    pub user_zipf: f64,
    /// Number of latent topics. Default 20.
    #[serde(default = "d_topics")]
    pub topics: usize,
    /// Probability that an interaction's user is drawn among the users whose
    /// topic is the item's topic (else from all users). Default 0.7.
    #[serde(default = "d_affinity")]
    pub affinity: f64,
    /// Probability that a topic-revealing feature shows a random topic instead. Default 0.3.
    #[serde(default = "d_noise")]
    pub noise: f64,
    /// Tags per topic (item tag vocabulary = topics × this). Default 5.
    #[serde(default = "d_tags")]
    pub tags_per_topic: usize,
    /// RNG seed (ChaCha8). Default 42.
    #[serde(default = "d_seed")]
    pub seed: u64,
}

fn d_users() -> usize {
    5000
}
fn d_items() -> usize {
    2000
}
fn d_interactions() -> usize {
    200_000
}
fn d_zipf() -> f64 {
    1.0
}
fn d_user_zipf() -> f64 {
    0.5
}
fn d_topics() -> usize {
    20
}
fn d_affinity() -> f64 {
    0.7
}
fn d_noise() -> f64 {
    0.3
}
fn d_tags() -> usize {
    5
}
fn d_seed() -> u64 {
    42
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            users: d_users(),
            items: d_items(),
            interactions: d_interactions(),
            zipf: d_zipf(),
            user_zipf: d_user_zipf(),
            topics: d_topics(),
            affinity: d_affinity(),
            noise: d_noise(),
            tags_per_topic: d_tags(),
            seed: d_seed(),
        }
    }
}

/// A value transform applied to a raw string before encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// The last run of exactly 4 ASCII digits (`"01-Jan-1995"` → `"1995"`,
    /// `"Heat (1995)"` → `"1995"`); none → missing.
    Year,
    /// Like `year`, then the decade as `"1990s"`.
    Decade,
    /// The first character; with `non_digit = "X"`, a non-digit first
    /// character becomes `"X"` (zip codes).
    FirstChar,
    /// ASCII lower-case.
    Lowercase,
}

/// `[features.<name>]`: one input feature of a tower.
///
/// # Sources
/// - `categorical`: `column` of the side's feature table. The **id feature**
///   of a side is a categorical feature whose `column` is the side's key:
///   `"@id"`, or the same reference as the feature table's `key` or the
///   interactions' `user`/`item` column. Its vocabulary comes from the
///   train split only.
/// - `multi_categorical`: exactly one of `column` + `separator` (default
///   `"|"`), `flag_columns` (0/1 columns; value names = the column names,
///   or `values` in the same order), or `table` (a long (key, value) table).
/// - `bucketized`: `column` parsed as a number (after `transform`), bucket
///   `i` = number of `boundaries` ≤ x (0..=len), vocabulary index `i + 1`;
///   missing or unparsable → 0.
///
/// # Vocabularies
/// Index 0 is reserved for out-of-vocabulary / missing. Non-id features
/// count each value once per entity (over every entity of the side that
/// has a feature row); values seen in fewer than `min_count` entities map
/// to 0. Tokens are ordered numerically when all parse as integers, else
/// byte-wise. With `hash_buckets = N` the index is `1 + fnv1a64(token) % N`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureConfig {
    /// `"user"` or `"item"`.
    pub side: Side,
    /// `"categorical"`, `"multi_categorical"` or `"bucketized"`.
    pub kind: FeatureKind,
    /// Source column (categorical, bucketized, delimited multi).
    #[serde(default)]
    pub column: Option<ColumnRef>,
    /// Separator of a delimited multi-valued column. Default `"|"`.
    #[serde(default)]
    pub separator: Option<String>,
    /// 0/1 flag columns of a multi-valued feature (a value is present when
    /// its flag is a non-zero number or `true`).
    #[serde(default)]
    pub flag_columns: Option<Vec<ColumnRef>>,
    /// Value names of `flag_columns` (default: the column names).
    #[serde(default)]
    pub values: Option<Vec<String>>,
    /// A long (key, value) table source of a multi-valued feature.
    #[serde(default)]
    pub table: Option<LongTableSpec>,
    /// Value transform applied before encoding.
    #[serde(default)]
    pub transform: Option<Transform>,
    /// For `transform = "first_char"`: the value a non-digit first character maps to.
    #[serde(default)]
    pub non_digit: Option<String>,
    /// Strictly increasing bucket boundaries of a bucketized feature.
    #[serde(default)]
    pub boundaries: Option<Vec<f64>>,
    /// Minimum count of a value to get its own index (else 0). Default 1.
    #[serde(default)]
    pub min_count: Option<u32>,
    /// Hash values into this many buckets instead of a vocabulary.
    #[serde(default)]
    pub hash_buckets: Option<u32>,
    /// Embedding dimension (read by the model; absent = model default).
    #[serde(default)]
    pub dim: Option<usize>,
}

impl FeatureConfig {
    /// A bare feature of `kind` on `side` reading `column`.
    pub fn new(side: Side, kind: FeatureKind, column: Option<ColumnRef>) -> Self {
        FeatureConfig {
            side,
            kind,
            column,
            separator: None,
            flag_columns: None,
            values: None,
            table: None,
            transform: None,
            non_digit: None,
            boundaries: None,
            min_count: None,
            hash_buckets: None,
            dim: None,
        }
    }
}

/// `[features]`: feature name → spec. Within each side, features are
/// ordered by name (the `BTreeMap` order).
pub type FeaturesConfig = BTreeMap<String, FeatureConfig>;

/// Reads a TOML config file and applies `--set key=value` overrides in order.
///
/// # Errors
/// [`DataError::Io`] if the file cannot be read, [`DataError::ConfigParse`]
/// if it is not TOML, [`DataError::Override`] for a bad assignment.
pub fn load_config_doc(path: &Path, overrides: &[String]) -> Result<toml::Value, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let mut doc: toml::Value = toml::from_str::<toml::Table>(&text)
        .map(toml::Value::Table)
        .map_err(|e| DataError::ConfigParse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    for a in overrides {
        apply_override(&mut doc, a)?;
    }
    Ok(doc)
}

/// Applies one `a.b.c=value` assignment to a TOML document.
///
/// The value is parsed as a TOML value (number, bool, array, inline table,
/// quoted string); if that fails it is taken verbatim as a string
/// (`--set data.preset=movielens-100k`). Missing intermediate tables are
/// created.
///
/// # Errors
/// [`DataError::Override`] when there is no `=`, a key segment is empty, or
/// an intermediate key holds a non-table value.
pub fn apply_override(doc: &mut toml::Value, assignment: &str) -> Result<(), DataError> {
    let err = |m: &str| DataError::Override {
        assignment: assignment.to_string(),
        message: m.to_string(),
    };
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| err("expected key=value"))?;
    let keys: Vec<&str> = key.trim().split('.').map(str::trim).collect();
    if keys.iter().any(|k| k.is_empty()) {
        return Err(err("empty key segment"));
    }
    let raw = raw.trim();
    let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or(toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let mut cur = doc;
    for (i, k) in keys.iter().enumerate() {
        let table = cur
            .as_table_mut()
            .ok_or_else(|| err(&format!("`{}` is not a table", keys[..i].join("."))))?;
        if i + 1 == keys.len() {
            table.insert((*k).to_string(), value);
            return Ok(());
        }
        cur = table
            .entry((*k).to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    }
    Ok(())
}

/// Deserializes the `[data]` and `[features]` sections of a config document
/// (other sections are ignored). `origin` names the file in error messages.
///
/// # Errors
/// [`DataError::ConfigParse`] when `[data]` is missing or a section does not
/// match the schema (the message lists the valid keys of an unknown one).
pub fn parse_data_sections(
    doc: &toml::Value,
    origin: &Path,
) -> Result<(DataConfig, FeaturesConfig), DataError> {
    let perr = |section: &str, e: String| DataError::ConfigParse {
        path: origin.to_path_buf(),
        message: format!("[{section}]: {e}"),
    };
    let data = match doc.get("data") {
        Some(v) => v
            .clone()
            .try_into::<DataConfig>()
            .map_err(|e| perr("data", e.to_string()))?,
        None => return Err(perr("data", "missing section".into())),
    };
    let features = match doc.get("features") {
        Some(v) => {
            let t = v.as_table().ok_or_else(|| {
                perr(
                    "features",
                    "must be a table of [features.<name>] tables".into(),
                )
            })?;
            let mut out = FeaturesConfig::new();
            for (name, spec) in t {
                let f = spec
                    .clone()
                    .try_into::<FeatureConfig>()
                    .map_err(|e| perr(&format!("features.{name}"), e.to_string()))?;
                out.insert(name.clone(), f);
            }
            out
        }
        None => FeaturesConfig::new(),
    };
    Ok((data, features))
}

/// Loads `[data]` and `[features]` from a config file with overrides.
/// Returns them with the config file's directory (the `base_dir` of
/// [`crate::load_dataset`]).
pub fn load_data_config(
    path: &Path,
    overrides: &[String],
) -> Result<(DataConfig, FeaturesConfig, PathBuf), DataError> {
    let doc = load_config_doc(path, overrides)?;
    let (d, f) = parse_data_sections(&doc, path)?;
    let base = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."))
        .to_path_buf();
    Ok((d, f, base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_parses_toml_values_and_creates_tables() {
        let mut doc = toml::Value::Table(toml::Table::new());
        apply_override(&mut doc, "features.genres.dim=16").unwrap();
        apply_override(&mut doc, "data.preset=movielens-100k").unwrap();
        apply_override(&mut doc, "data.split.test_fraction = 0.25").unwrap();
        apply_override(&mut doc, "a.list=[1, 2]").unwrap();
        apply_override(&mut doc, "a.s=\"x y\"").unwrap();
        assert_eq!(doc["features"]["genres"]["dim"].as_integer(), Some(16));
        assert_eq!(doc["data"]["preset"].as_str(), Some("movielens-100k"));
        assert_eq!(doc["data"]["split"]["test_fraction"].as_float(), Some(0.25));
        assert_eq!(doc["a"]["list"].as_array().unwrap().len(), 2);
        assert_eq!(doc["a"]["s"].as_str(), Some("x y"));
        // Assigning below a non-table is an error, not a panic.
        assert!(matches!(
            apply_override(&mut doc, "a.s.t=1"),
            Err(DataError::Override { .. })
        ));
        assert!(apply_override(&mut doc, "novalue").is_err());
        assert!(apply_override(&mut doc, "a..b=1").is_err());
    }

    #[test]
    fn unknown_key_lists_valid_ones() {
        let doc: toml::Value = toml::from_str("[data]\npaht = \"x\"\n").unwrap();
        let e = parse_data_sections(&doc, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("paht") && e.contains("preset"), "{e}");
        let doc: toml::Value =
            toml::from_str("[data]\n[features.g]\nside=\"user\"\nkind=\"categorical\"\ndimm=3\n")
                .unwrap();
        let e = parse_data_sections(&doc, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("features.g") && e.contains("dimm") && e.contains("hash_buckets"),
            "{e}"
        );
    }

    #[test]
    fn column_refs_by_name_or_position() {
        let doc: toml::Value =
            toml::from_str("[data.interactions]\nfile=\"a.csv\"\nuser=0\nitem=\"movie\"\n")
                .unwrap();
        let (d, _) = parse_data_sections(&doc, Path::new("c.toml")).unwrap();
        let i = d.interactions.unwrap();
        assert_eq!(i.user, ColumnRef::Index(0));
        assert_eq!(i.item, ColumnRef::Name("movie".into()));
    }
}
