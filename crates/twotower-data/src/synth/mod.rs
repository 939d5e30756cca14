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
//!
//! # Files
//! - `mod.rs`: the constants of the model and the [`synthetic_features`]
//!   of its tables.
//! - `alias.rs`: [`Alias`], Walker/Vose alias tables (O(1) draws).
//! - `generator.rs`: [`Generator`], the model above — topics, Zipf
//!   popularity and activity, the user and item rows, the interaction stream.
//! - `memory.rs`: the generated tables in memory, as the raw tables the
//!   loader encodes ([`crate::generate_dataset`]).
//! - `write.rs`: [`write_dataset`], the tables streamed to CSV or Parquet
//!   files (replaced whole or not at all) with their `dataset.toml`
//!   ([`dataset_toml`]).

mod alias;
mod generator;
mod memory;
mod write;

pub use alias::Alias;
pub use generator::{Generator, ItemRow, UserRow, MAX_ENTITIES};
pub(crate) use memory::generate_raw;
pub use write::{dataset_toml, write_dataset, write_dataset_parts, OutFormat, WriteSummary};

use crate::config::{FeatureConfig, FeatureKind, FeaturesConfig, Side};

/// Timestamp of the first interaction (seconds; one interaction per second).
pub const T0: i64 = 1_600_000_000;
/// Number of `region` values.
pub const REGIONS: u32 = 50;
/// Age buckets of the synthetic `age` feature.
pub const AGE_BOUNDARIES: [f64; 5] = [25.0, 35.0, 45.0, 55.0, 65.0];
/// Decade boundaries of the synthetic `year` feature.
pub const YEAR_BOUNDARIES: [f64; 5] = [1970.0, 1980.0, 1990.0, 2000.0, 2010.0];

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
