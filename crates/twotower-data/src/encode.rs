//! The feature encoder of a trained model: raw feature values → vocabulary
//! indices, with the vocabularies the model was trained on.
//!
//! Training builds each feature's vocabulary while it loads the data
//! ([`crate::dataset`]); everything that meets a raw value later — a new
//! user's features at `recommend`, an item table that grew after training
//! (`export --catalog`), a server request — encodes it here, with the same
//! transform, separator, bucket boundaries and out-of-vocabulary rule, so
//! the same raw row gives the same indices on both paths
//! (`tests/encode.rs` checks every row of the shared datasets).
//!
//! "Unknown" has one representation: a missing value, an empty cell, a
//! value outside the vocabulary (or below `min_count`) and an entity id
//! without a trained row all become index 0 of a single-valued feature, and
//! are left out of a multi-valued bag (an empty bag when nothing is known).
//!
//! One divergence is inherent: a hashed feature with `min_count` maps rare
//! tokens to 0 at training, which needs the training counts; here every
//! token is hashed.

use std::path::Path;

use crate::config::{DataConfig, FeatureConfig, FeatureKind, FeaturesConfig, Side};
use crate::dataset::{EncodedFeature, EntityIds, EntityTable};
use crate::effective::{effective_tables, needed_columns};
use crate::error::DataError;
use crate::raw::read_entity_table;
use crate::transform::{parse_flag, transform_value};

/// Why a raw value could not be encoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EncodeError {
    /// A bucketized feature's value is not a finite number.
    #[error("`{value}` is not a number")]
    NotANumber {
        /// The raw value.
        value: String,
    },
    /// A flag column's value is not a boolean (true/false, yes/no, 1/0).
    #[error("`{value}` is not a flag (true/false, yes/no, 1/0)")]
    NotAFlag {
        /// The raw value.
        value: String,
    },
}

/// Encodes raw values of one feature with its trained vocabulary.
#[derive(Debug, Clone, Copy)]
pub struct FeatureEncoder<'a> {
    /// The feature's config (transform, separator, boundaries, ...).
    pub config: &'a FeatureConfig,
    /// The trained feature (its vocabulary).
    pub feature: &'a EncodedFeature,
}

impl<'a> FeatureEncoder<'a> {
    /// The encoder of `feature` configured by `config`.
    pub fn new(config: &'a FeatureConfig, feature: &'a EncodedFeature) -> Self {
        Self { config, feature }
    }

    /// Encodes one raw cell: a single-valued feature gives exactly one index
    /// (0 = missing / out of vocabulary), a multi-valued one the sorted,
    /// deduplicated known indices of its `separator`-split parts (possibly
    /// none).
    ///
    /// An id feature looks the id up in its vocabulary (the ids with a
    /// trained row). Flag-column features take one cell per flag column:
    /// use [`Self::encode_flags`].
    ///
    /// # Errors
    /// [`EncodeError::NotANumber`] for a bucketized value that is present
    /// but not a finite number.
    pub fn encode(&self, raw: &str) -> Result<Vec<u32>, EncodeError> {
        let f = self.config;
        let vocab = &self.feature.vocab;
        if self.feature.is_id {
            let id = raw.trim();
            return Ok(vec![if id.is_empty() { 0 } else { vocab.lookup(id) }]);
        }
        match f.kind {
            FeatureKind::Categorical => Ok(vec![transform_value(raw, f)
                .map(|t| vocab.lookup(&t))
                .unwrap_or(0)]),
            FeatureKind::Bucketized => {
                let b = f.boundaries.as_deref().unwrap_or(&[]);
                let Some(t) = transform_value(raw, f) else {
                    return if raw.trim().is_empty() {
                        Ok(vec![0])
                    } else {
                        Err(EncodeError::NotANumber {
                            value: raw.to_string(),
                        })
                    };
                };
                match t.parse::<f64>() {
                    Ok(x) if x.is_finite() => Ok(vec![b.partition_point(|&q| q <= x) as u32 + 1]),
                    _ => Err(EncodeError::NotANumber {
                        value: raw.to_string(),
                    }),
                }
            }
            FeatureKind::MultiCategorical => {
                let sep = f.separator.as_deref().unwrap_or("|");
                let mut out: Vec<u32> = raw
                    .split(sep)
                    .filter_map(|p| transform_value(p, f))
                    .map(|t| vocab.lookup(&t))
                    .filter(|&i| i != 0)
                    .collect();
                out.sort_unstable();
                out.dedup();
                Ok(out)
            }
        }
    }

    /// Encodes a flag-column feature from one cell per flag column (in
    /// `flag_columns` order): the bag of the columns whose flag is set.
    ///
    /// # Errors
    /// [`EncodeError::NotAFlag`] for a cell that is not a boolean.
    pub fn encode_flags(&self, cells: &[&str]) -> Result<Vec<u32>, EncodeError> {
        let f = self.config;
        let names: Vec<String> = match (&f.values, &f.flag_columns) {
            (Some(v), _) => v.clone(),
            (None, Some(cols)) => cols.iter().map(|c| c.to_string()).collect(),
            (None, None) => Vec::new(),
        };
        let mut out = Vec::new();
        for (cell, name) in cells.iter().zip(&names) {
            match parse_flag(cell) {
                Some(true) => {
                    let i = self.feature.vocab.lookup(name);
                    if i != 0 {
                        out.push(i);
                    }
                }
                Some(false) => {}
                None => {
                    return Err(EncodeError::NotAFlag {
                        value: cell.to_string(),
                    })
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}

/// An item (or user) table read from `file` with the layout of the
/// config's `[data.items]` (`[data.users]`) table and encoded with the
/// trained vocabularies of `trained`: the entities of a catalog that grew
/// after training, for scoring from their features.
///
/// Rows follow the file's order (duplicate keys: the first row). An entity
/// of `trained` keeps its trained id index; a new one gets the id's
/// out-of-vocabulary index 0, which is exactly what a cold item of the
/// training data reads. Features from a long table (`features.X.table`)
/// keep their trained values for known entities and are empty for new ones.
/// Values that cannot be encoded (a non-number in a bucketized column) are
/// treated as missing and counted in the returned number.
///
/// `file` is resolved against the working directory (absolute or relative
/// paths as the user typed them); the format follows the table's config
/// (or the file's extension when the config leaves it to the extension).
///
/// # Errors
/// [`DataError`] naming the file, line and column: unreadable file, a
/// missing column, a bad row (unless `data.on_bad_row = "skip"`), no table
/// configured for the side.
pub fn encode_table(
    data: &DataConfig,
    features: &FeaturesConfig,
    side: Side,
    file: &Path,
    trained: &EntityTable,
) -> Result<(EntityTable, usize), DataError> {
    let (_, uspec, tspec) = effective_tables(data)?;
    let (spec, field) = match side {
        Side::User => (uspec, "data.users"),
        Side::Item => (tspec, "data.items"),
    };
    let mut spec = spec.ok_or_else(|| {
        DataError::config(
            field,
            "no such table in the config: there is nothing to read a new table like",
        )
    })?;
    let cwd = std::env::current_dir().unwrap_or_default();
    spec.file = cwd.join(file);
    let key_refs = vec![spec.key.clone()];
    let side_feats: Vec<(&String, &FeatureConfig)> =
        features.iter().filter(|(_, f)| f.side == side).collect();
    let mut cols = needed_columns(&side_feats, &key_refs);
    if let Some(l) = &spec.label {
        if !cols.contains(l) {
            cols.push(l.clone());
        }
    }
    let mut skipped = 0usize;
    let raw = read_entity_table(&spec, &cwd, field, &cols, data.on_bad_row, &mut skipped)?;
    let n = raw.keys.len();
    let mut bad = 0usize;
    let mut out_feats = Vec::with_capacity(trained.features.len());
    for tf in &trained.features {
        let cfg = features.get(&tf.name).ok_or_else(|| {
            DataError::config(
                format!("features.{}", tf.name),
                "the trained model has this feature but the config does not",
            )
        })?;
        let enc = FeatureEncoder::new(cfg, tf);
        let mut offsets = Vec::with_capacity(n + 1);
        let mut values = Vec::with_capacity(n);
        offsets.push(0u32);
        let col = |c| {
            raw.column(c).ok_or_else(|| {
                DataError::config(
                    format!("features.{}", tf.name),
                    format!("column `{c}` was not read from {}", file.display()),
                )
            })
        };
        for (row, key) in raw.keys.iter().enumerate() {
            let known = trained.ids.index_of(key).map(|e| tf.row(e as usize));
            let ids: Vec<u32> = if tf.is_id {
                known.map(<[u32]>::to_vec).unwrap_or_else(|| vec![0])
            } else if cfg.table.is_some() {
                known.map(<[u32]>::to_vec).unwrap_or_default()
            } else if let Some(fc) = &cfg.flag_columns {
                let mut cells = Vec::with_capacity(fc.len());
                for c in fc {
                    let rc = col(c)?;
                    cells.push(rc.dict[rc.codes[row] as usize].as_str());
                }
                enc.encode_flags(&cells).unwrap_or_else(|_| {
                    bad += 1;
                    Vec::new()
                })
            } else {
                let rc = col(cfg.column.as_ref().expect("checked at load"))?;
                let single = tf.kind != FeatureKind::MultiCategorical;
                enc.encode(&rc.dict[rc.codes[row] as usize])
                    .unwrap_or_else(|_| {
                        bad += 1;
                        if single {
                            vec![0]
                        } else {
                            Vec::new()
                        }
                    })
            };
            values.extend_from_slice(&ids);
            offsets.push(values.len() as u32);
        }
        out_feats.push(EncodedFeature {
            offsets,
            values,
            ..tf.clone_without_rows()
        });
    }
    let id_rank = crate::vocab::id_order(&raw.keys);
    // id_order gives the permutation; the rank of entity e is its position in it
    let mut rank = vec![0u32; n];
    for (pos, &e) in id_rank.iter().enumerate() {
        rank[e as usize] = pos as u32;
    }
    let labels = spec.label.as_ref().and_then(|l| {
        raw.column(l).map(|c| {
            (
                c.name.clone(),
                c.codes
                    .iter()
                    .map(|&k| c.dict[k as usize].clone())
                    .collect(),
            )
        })
    });
    Ok((
        EntityTable {
            ids: EntityIds::from(raw.keys),
            id_rank: rank,
            features: out_feats,
            missing_feature_rows: 0,
            labels,
        },
        bad + skipped,
    ))
}
