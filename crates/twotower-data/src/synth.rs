//! Synthetic long-tail generator (work in progress).

use crate::config::{FeaturesConfig, SyntheticConfig};
use crate::dataset::RawData;
use crate::error::DataError;

/// The features of the synthetic tables.
pub fn synthetic_features() -> FeaturesConfig {
    FeaturesConfig::new()
}

pub(crate) fn generate_raw(_cfg: &SyntheticConfig) -> Result<RawData, DataError> {
    Err(DataError::config(
        "data.source",
        "synthetic source not implemented yet",
    ))
}
