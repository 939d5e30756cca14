//! Per-feature config checks: the combinations of `[features.<name>]`
//! fields that are valid for its kind, checked before any file is read.

use crate::config::{FeatureConfig, FeatureKind, Transform};
use crate::dataset::MAX_HASH_BUCKETS;
use crate::error::DataError;

pub(crate) fn check_feature(name: &str, f: &FeatureConfig) -> Result<(), DataError> {
    let field = |k: &str| format!("features.{name}.{k}");
    let sources =
        f.column.is_some() as u8 + f.flag_columns.is_some() as u8 + f.table.is_some() as u8;
    match f.kind {
        FeatureKind::Categorical | FeatureKind::Bucketized => {
            if f.column.is_none() {
                return Err(DataError::config(field("column"), "required for this kind"));
            }
            if f.flag_columns.is_some() || f.table.is_some() || f.separator.is_some() {
                return Err(DataError::config(
                    format!("features.{name}"),
                    "flag_columns / table / separator are only for multi_categorical",
                ));
            }
        }
        FeatureKind::MultiCategorical => {
            if sources != 1 {
                return Err(DataError::config(
                    format!("features.{name}"),
                    "multi_categorical needs exactly one of `column` (+ `separator`), `flag_columns`, `table`",
                ));
            }
            if let (Some(v), Some(fc)) = (&f.values, &f.flag_columns) {
                if v.len() != fc.len() {
                    return Err(DataError::config(
                        field("values"),
                        format!("has {} names for {} flag_columns", v.len(), fc.len()),
                    ));
                }
            }
            if matches!(&f.separator, Some(s) if s.is_empty()) {
                return Err(DataError::config(field("separator"), "must not be empty"));
            }
        }
    }
    if f.values.is_some() && f.flag_columns.is_none() {
        return Err(DataError::config(
            field("values"),
            "only valid with flag_columns",
        ));
    }
    match f.kind {
        FeatureKind::Bucketized => {
            let b = f
                .boundaries
                .as_ref()
                .ok_or_else(|| DataError::config(field("boundaries"), "required for bucketized"))?;
            if b.is_empty()
                || b.windows(2).any(|w| w[0] >= w[1])
                || b.iter().any(|x| !x.is_finite())
            {
                return Err(DataError::config(
                    field("boundaries"),
                    "must be a non-empty, strictly increasing list of finite numbers",
                ));
            }
            if f.hash_buckets.is_some() {
                return Err(DataError::config(
                    field("hash_buckets"),
                    "not applicable to bucketized",
                ));
            }
        }
        _ => {
            if f.boundaries.is_some() {
                return Err(DataError::config(
                    field("boundaries"),
                    "only valid for bucketized",
                ));
            }
        }
    }
    if f.hash_buckets == Some(0) {
        return Err(DataError::config(field("hash_buckets"), "must be ≥ 1"));
    }
    if f.hash_buckets.is_some_and(|n| n > MAX_HASH_BUCKETS) {
        // bucket n is index n, and row 0 is "unknown": the table has n + 1 rows
        return Err(DataError::config(
            field("hash_buckets"),
            "must be ≤ 2^31 (a table row per bucket)",
        ));
    }
    if f.non_digit.is_some() && f.transform != Some(Transform::FirstChar) {
        return Err(DataError::config(
            field("non_digit"),
            "only valid with transform = \"first_char\"",
        ));
    }
    if f.dim == Some(0) {
        return Err(DataError::config(field("dim"), "must be ≥ 1"));
    }
    Ok(())
}
