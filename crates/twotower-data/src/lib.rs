//! # twotower-data
//!
//! The data layer of twotower (no tensor code): the dataset schema
//! (`[data]` and `[features]` of the TOML config), readers for CSV/TSV
//! (any delimiter, quoting, UTF-8/Latin-1) and Parquet, the MovieLens
//! presets, vocabularies and encoded features (CSR over entities), the
//! per-user temporal split of `shared/EVALUATION.md`, dataset statistics,
//! and the synthetic long-tail generator.
//!
//! Entry points: [`load_data_config`] / [`load_config_doc`] +
//! [`parse_data_sections`], then [`load_dataset`] → [`Dataset`]; [`stats()`](fn@stats).

#![warn(missing_docs)]

pub(crate) mod check;
pub mod config;
pub mod dataset;
pub(crate) mod effective;
pub mod encode;
pub mod entity_ids;
pub mod error;
pub(crate) mod features;
pub mod hash;
pub mod load;
pub mod preset;
pub mod raw;
pub(crate) mod read;
pub mod report;
pub mod split;
pub mod stats;
pub mod stream;
pub mod synth;
pub(crate) mod table_files;
pub(crate) mod transform;
pub mod vocab;

pub use config::{
    apply_override, load_config_doc, load_data_config, parse_data_sections, ColumnRef, DataConfig,
    Encoding, EntityTableSpec, FeatureConfig, FeatureKind, FeaturesConfig, Format,
    InteractionsSpec, LongTableSpec, OnBadRow, Preset, Side, Source, SplitConfig, SplitKind,
    SyntheticConfig, Transform,
};
pub use dataset::{
    fingerprints_differ, Dataset, EncodedFeature, EntityIds, EntityIdsIter, EntityTable,
};
pub use effective::{effective_features, effective_tables};
pub use encode::{encode_table, EncodeError, FeatureEncoder};
pub use error::DataError;
pub use load::{
    data_dir, generate_dataset, load_dataset, load_dataset_streamed, load_dataset_timed,
    LoadTimings,
};
pub use raw::{read_interactions, RawInteractions};
pub use report::{FeatureReport, IngestReport};
pub use split::{n_test, random_split, temporal_split, user_time_order, Interactions};
pub use stats::{stats, HistBucket, Stats};
pub use stream::{estimate_interaction_rows, stream_reason, TimeKey, TrainStream};
pub use synth::{
    dataset_toml, synthetic_features, write_dataset, write_dataset_parts, Generator, OutFormat,
    WriteSummary,
};
pub use vocab::{id_order, Vocab};
