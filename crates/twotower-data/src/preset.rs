//! Built-in dataset descriptions (MovieLens). A preset is nothing but a
//! generic table description plus the EVALUATION.md feature set, written
//! with the same config types a user writes by hand; `configs/ml-100k-generic.toml`
//! spells out the `movielens-100k` preset and a test checks both encode
//! identically.
//!
//! # Features (EVALUATION.md)
//! User tower: `user_id` (id), `gender`, `age` (buckets <18, 18-24, 25-34,
//! 35-44, 45-49, 50-55, 56+ = boundaries 18,25,35,45,50,56), `occupation`,
//! `zip1` (first character of the zip code, non-digit → `"other"`).
//! Item tower: `item_id` (id), `genres` (multi-valued), `decade` (release
//! year bucketized by boundaries 1920, 1930, …, 2000: `<1920`,
//! `[1920,1930)`, …, `[1990,2000)`, `>=2000`; a missing or unparsable
//! release date is index 0, the "unknown" value).

use crate::config::Encoding;
use crate::config::{
    ColumnRef, EntityTableSpec, FeatureConfig, FeatureKind, FeaturesConfig, Format,
    InteractionsSpec, Preset, Side, Transform,
};

/// The 19 genre flags of ML-100K `u.item`, in file order (names from `u.genre`).
pub const ML100K_GENRES: [&str; 19] = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

/// Age bucket boundaries of EVALUATION.md (bucket i = number of boundaries ≤ age).
pub const AGE_BOUNDARIES: [f64; 6] = [18.0, 25.0, 35.0, 45.0, 50.0, 56.0];

/// Release-decade boundaries (years).
pub const DECADE_BOUNDARIES: [f64; 9] = [
    1920.0, 1930.0, 1940.0, 1950.0, 1960.0, 1970.0, 1980.0, 1990.0, 2000.0,
];

/// The table descriptions of a preset.
#[derive(Debug, Clone, PartialEq)]
pub struct PresetTables {
    /// Interactions table.
    pub interactions: InteractionsSpec,
    /// User feature table.
    pub users: EntityTableSpec,
    /// Item feature table.
    pub items: EntityTableSpec,
}

fn names(v: &[&str]) -> Option<Vec<String>> {
    Some(v.iter().map(|s| s.to_string()).collect())
}

fn table(file: &str, delim: &str, enc: Encoding, cols: &[&str], key: &str) -> EntityTableSpec {
    EntityTableSpec {
        file: file.into(),
        format: Some(Format::Csv),
        delimiter: Some(delim.into()),
        header: Some(false),
        quoting: Some(false),
        encoding: enc,
        columns: names(cols),
        key: key.into(),
        label: None,
    }
}

/// The tables of `preset`.
pub fn preset_tables(preset: Preset) -> PresetTables {
    match preset {
        Preset::MovieLens100k => {
            let mut item_cols = vec!["item", "title", "release_date", "video_release_date", "url"];
            item_cols.extend(ML100K_GENRES);
            PresetTables {
                interactions: InteractionsSpec {
                    file: "u.data".into(),
                    format: Some(Format::Tsv),
                    delimiter: Some("\t".into()),
                    header: Some(false),
                    quoting: Some(false),
                    encoding: Encoding::Utf8,
                    columns: names(&["user", "item", "rating", "timestamp"]),
                    user: "user".into(),
                    item: "item".into(),
                    timestamp: Some("timestamp".into()),
                    weight: None,
                },
                users: table(
                    "u.user",
                    "|",
                    Encoding::Utf8,
                    &["user", "age", "gender", "occupation", "zip"],
                    "user",
                ),
                items: EntityTableSpec {
                    label: Some("title".into()),
                    ..table("u.item", "|", Encoding::Latin1, &item_cols, "item")
                },
            }
        }
        Preset::MovieLens1m => PresetTables {
            interactions: InteractionsSpec {
                file: "ratings.dat".into(),
                format: Some(Format::Csv),
                delimiter: Some("::".into()),
                header: Some(false),
                quoting: Some(false),
                encoding: Encoding::Utf8,
                columns: names(&["user", "item", "rating", "timestamp"]),
                user: "user".into(),
                item: "item".into(),
                timestamp: Some("timestamp".into()),
                weight: None,
            },
            users: table(
                "users.dat",
                "::",
                Encoding::Utf8,
                &["user", "gender", "age", "occupation", "zip"],
                "user",
            ),
            items: EntityTableSpec {
                label: Some("title".into()),
                ..table(
                    "movies.dat",
                    "::",
                    Encoding::Latin1,
                    &["item", "title", "genres"],
                    "item",
                )
            },
        },
    }
}

fn cat(side: Side, col: &str) -> FeatureConfig {
    FeatureConfig::new(side, FeatureKind::Categorical, Some(col.into()))
}

/// The EVALUATION.md features of `preset` (names: user_id, gender, age,
/// occupation, zip1; item_id, genres, decade).
pub fn preset_features(preset: Preset) -> FeaturesConfig {
    let mut f = FeaturesConfig::new();
    f.insert("user_id".into(), cat(Side::User, "user"));
    f.insert("gender".into(), cat(Side::User, "gender"));
    f.insert("occupation".into(), cat(Side::User, "occupation"));
    let mut age = FeatureConfig::new(Side::User, FeatureKind::Bucketized, Some("age".into()));
    age.boundaries = Some(AGE_BOUNDARIES.to_vec());
    f.insert("age".into(), age);
    let mut zip = cat(Side::User, "zip");
    zip.transform = Some(Transform::FirstChar);
    zip.non_digit = Some("other".into());
    f.insert("zip1".into(), zip);
    f.insert("item_id".into(), cat(Side::Item, "item"));
    let mut decade = FeatureConfig::new(Side::Item, FeatureKind::Bucketized, None);
    decade.transform = Some(Transform::Year);
    decade.boundaries = Some(DECADE_BOUNDARIES.to_vec());
    let mut genres = FeatureConfig::new(Side::Item, FeatureKind::MultiCategorical, None);
    match preset {
        Preset::MovieLens100k => {
            decade.column = Some("release_date".into());
            genres.flag_columns = Some(ML100K_GENRES.iter().map(|g| ColumnRef::from(*g)).collect());
        }
        Preset::MovieLens1m => {
            decade.column = Some("title".into());
            genres.column = Some("genres".into());
            genres.separator = Some("|".into());
        }
    }
    f.insert("decade".into(), decade);
    f.insert("genres".into(), genres);
    f
}
