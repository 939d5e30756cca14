//! `[data]`: [`DataConfig`], where the dataset is and how to read and split
//! it — the tables ([`Source`]: files, or the synthetic generator; a
//! [`Preset`] for a public dataset) and what to do with an unreadable row
//! ([`OnBadRow`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{EntityTableSpec, InteractionsSpec, SplitConfig, SyntheticConfig};

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
    /// Fail with a [`DataError`](crate::DataError) naming file, line and column (default).
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
