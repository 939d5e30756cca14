//! The features and tables a config actually uses: explicit ones, else
//! the preset's (or the synthetic generator's), else the two id features;
//! and which of them are id features and which columns they read.

use crate::config::{
    ColumnRef, DataConfig, EntityTableSpec, FeatureConfig, FeatureKind, FeaturesConfig,
    InteractionsSpec, Side, Source,
};
use crate::error::DataError;
use crate::preset::{preset_features, preset_tables};

/// The features actually used: `[features]`, or the preset's when empty, or
/// the two id features `user_id`/`item_id` when empty without a preset.
pub fn effective_features(data: &DataConfig, features: &FeaturesConfig) -> FeaturesConfig {
    if !features.is_empty() {
        return features.clone();
    }
    if data.source == Source::Synthetic {
        return crate::synth::synthetic_features();
    }
    match data.preset {
        Some(p) => preset_features(p),
        None => {
            let mut f = FeaturesConfig::new();
            f.insert(
                "user_id".into(),
                FeatureConfig::new(
                    Side::User,
                    FeatureKind::Categorical,
                    Some(ColumnRef::Name("@id".into())),
                ),
            );
            f.insert(
                "item_id".into(),
                FeatureConfig::new(
                    Side::Item,
                    FeatureKind::Categorical,
                    Some(ColumnRef::Name("@id".into())),
                ),
            );
            f
        }
    }
}

/// The table specs actually used (explicit ones win over the preset's).
pub fn effective_tables(
    data: &DataConfig,
) -> Result<
    (
        InteractionsSpec,
        Option<EntityTableSpec>,
        Option<EntityTableSpec>,
    ),
    DataError,
> {
    let preset = data.preset.map(preset_tables);
    let inter = match (&data.interactions, &preset) {
        (Some(i), _) => i.clone(),
        (None, Some(p)) => p.interactions.clone(),
        (None, None) => {
            return Err(DataError::config(
                "data.interactions",
                "missing: give [data.interactions], a preset, or source = \"synthetic\"",
            ))
        }
    };
    let users = data
        .users
        .clone()
        .or_else(|| preset.as_ref().map(|p| p.users.clone()));
    if users.as_ref().is_some_and(|u| u.label.is_some()) {
        return Err(DataError::config(
            "data.users.label",
            "only [data.items] takes a label (recommend/similar show it beside items)",
        ));
    }
    let items = data
        .items
        .clone()
        .or_else(|| preset.as_ref().map(|p| p.items.clone()));
    Ok((inter, users, items))
}

pub(crate) fn is_id_feature(f: &FeatureConfig, key_refs: &[ColumnRef]) -> bool {
    f.kind == FeatureKind::Categorical
        && match &f.column {
            Some(ColumnRef::Name(n)) if n == "@id" => true,
            Some(c) => key_refs.contains(c),
            None => false,
        }
}

/// Columns of the side's feature table that the features need.
pub(crate) fn needed_columns(
    feats: &[(&String, &FeatureConfig)],
    key_refs: &[ColumnRef],
) -> Vec<ColumnRef> {
    let mut out: Vec<ColumnRef> = Vec::new();
    let mut add = |c: &ColumnRef| {
        if !out.contains(c) {
            out.push(c.clone());
        }
    };
    for (_, f) in feats {
        if is_id_feature(f, key_refs) || f.table.is_some() {
            continue;
        }
        if let Some(c) = &f.column {
            add(c);
        }
        if let Some(fc) = &f.flag_columns {
            for c in fc {
                add(c);
            }
        }
    }
    out
}
