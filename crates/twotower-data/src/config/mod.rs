//! The dataset schema: the `[data]` and `[features]` sections of a twotower
//! config file, and the generic TOML helpers (`load_config_doc`,
//! `apply_override`) the other crates reuse for their own sections.
//!
//! Every struct here is the *raw* config (deserialized from TOML with
//! `deny_unknown_fields`, so a misspelt key is an error listing the valid
//! ones). Consistency checks (a bucketized feature needs `boundaries`, a
//! column must exist, ...) happen in [`crate::load_dataset`] and return a
//! [`DataError`](crate::DataError), never a panic.
//!
//! # Paths
//! `data.path` is resolved against the directory of the config file (the
//! `base_dir` given to the loader); every table `file` is resolved against
//! `data.path`. Absolute paths are kept as they are.
//!
//! # Files
//! - `data.rs`: `[data]` — [`DataConfig`], where the tables come from
//!   ([`Source`], [`Preset`]) and [`OnBadRow`].
//! - `tables.rs`: the tables' files — `[data.interactions]`
//!   ([`InteractionsSpec`]), `[data.users]`/`[data.items]`
//!   ([`EntityTableSpec`]), long tables ([`LongTableSpec`]), columns
//!   ([`ColumnRef`]), [`Format`], [`Encoding`], and how a file is read
//!   ([`ReadOptions`]).
//! - `split.rs`: `[data.split]` — [`SplitConfig`], [`SplitKind`].
//! - `synthetic.rs`: `[data.synthetic]` — [`SyntheticConfig`].
//! - `features.rs`: `[features]` — [`FeatureConfig`], [`Side`],
//!   [`FeatureKind`], [`Transform`].
//! - `file.rs`: reading a config file — [`load_config_doc`],
//!   [`apply_override`] (`--set key=value`), [`parse_data_sections`],
//!   [`load_data_config`].

mod data;
mod features;
mod file;
mod split;
mod synthetic;
mod tables;

pub use data::{DataConfig, OnBadRow, Preset, Source};
pub use features::{FeatureConfig, FeatureKind, FeaturesConfig, Side, Transform};
pub use file::{apply_override, load_config_doc, load_data_config, parse_data_sections};
pub use split::{SplitConfig, SplitKind};
pub use synthetic::SyntheticConfig;
pub use tables::{
    format_from_extension, ColumnRef, Encoding, EntityTableSpec, Format, InteractionsSpec,
    LongTableSpec, ReadOptions,
};
