//! `[features]`: [`FeaturesConfig`], one [`FeatureConfig`] per input
//! feature of a tower — its [`Side`], [`FeatureKind`], source columns or
//! table, value [`Transform`], and vocabulary settings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ColumnRef, LongTableSpec};

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
