//! A model as a config and data describe it, and its vectors: what
//! training, evaluation and serving share. [`new_model`] builds the
//! two-tower model (tower specifications from the config's `[model]` and
//! the data's vocabularies, initialised from `(seed, phase)`);
//! [`history_feature`] the user-history bag; [`encode_all`],
//! [`encode_user_table`] and [`encode_items`] the unit-norm user and item
//! vectors a run's artifact stores and serving ranks with.

use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use twotower_data::{Dataset, EncodedFeature, EntityTable, Interactions};

use crate::config::{Config, HistoryPoolingKind};
use crate::history_feature::{item_rows, HistoryFeature, HistoryPooling, HISTORY_FEATURE};
use crate::model::{SharedTable, TwoTower};
use crate::tower::{FeatureColumn, FeatureSpec, SpecError, Tower, TowerSpec};

/// Borrowed CSR columns of one side's features.
pub fn columns(features: &[EncodedFeature]) -> Vec<FeatureColumn<'_>> {
    features
        .iter()
        .map(|f| FeatureColumn {
            offsets: &f.offsets,
            values: &f.values,
            weights: &[],
        })
        .collect()
}

/// The tower specification of one side's features.
pub fn tower_spec(cfg: &Config, features: &[EncodedFeature]) -> TowerSpec {
    let m = &cfg.raw.model;
    TowerSpec {
        features: features
            .iter()
            .map(|f| FeatureSpec {
                name: f.name.clone(),
                vocab_size: f.vocab.len(),
                dim: f.dim.unwrap_or(m.embedding_dim),
            })
            .collect(),
        hidden: m.hidden.clone(),
        out_dim: m.out_dim,
        mask_embedding: m.mask_embedding,
    }
}

/// The user tower's specification: the data's user features, then the
/// history feature when `model.history.enabled` (its table the size of the
/// item-id vocabulary, or a 1-row placeholder when it shares the item
/// tower's table).
pub fn user_tower_spec(cfg: &Config, ds: &Dataset) -> TowerSpec {
    let mut spec = tower_spec(cfg, &ds.users.features);
    let h = &cfg.raw.model.history;
    if h.enabled {
        let (_, vocab) = item_rows(&ds.items);
        let shared = shared_item_feature(cfg, ds);
        let dim = match shared {
            Some(f) => spec_dim(cfg, &ds.items.features[f]),
            None if h.dim > 0 => h.dim,
            None => cfg.raw.model.embedding_dim,
        };
        spec.features.push(FeatureSpec {
            name: HISTORY_FEATURE.to_string(),
            vocab_size: if shared.is_some() { 1 } else { vocab },
            dim,
        });
    }
    spec
}

/// The embedding width of one feature: its `dim`, else `model.embedding_dim`.
pub fn spec_dim(cfg: &Config, f: &EncodedFeature) -> usize {
    f.dim.unwrap_or(cfg.raw.model.embedding_dim)
}

/// The item-tower feature whose table the history feature shares
/// (`model.history.share_item_table`): the item-id feature, if any.
pub fn shared_item_feature(cfg: &Config, ds: &Dataset) -> Option<usize> {
    let h = &cfg.raw.model.history;
    (h.enabled && h.share_item_table)
        .then(|| ds.items.features.iter().position(|f| f.is_id))
        .flatten()
}

/// The history feature built from `fit` (the interactions the model is
/// trained on, or whose users are evaluated), or `None` when
/// `model.history.enabled` is off. See [`crate::history_feature`].
pub fn history_feature(cfg: &Config, ds: &Dataset, fit: &Interactions) -> Option<HistoryFeature> {
    let h = &cfg.raw.model.history;
    if !h.enabled {
        return None;
    }
    let (rows, _) = item_rows(&ds.items);
    let pooling = match h.pooling {
        HistoryPoolingKind::Mean => HistoryPooling::Mean,
        HistoryPoolingKind::Recency => HistoryPooling::Recency {
            decay: h.recency_decay,
        },
    };
    Some(HistoryFeature::new(
        ds.users.ids.len(),
        fit,
        &ds.items.id_rank,
        &rows,
        h.max_len,
        pooling,
    ))
}

/// A fresh model for this data, initialised from `(seed, phase)`.
///
/// # Errors
/// [`SpecError`] when a tower's spec is invalid (a feature of dim 0, an
/// empty vocabulary, a layer of width 0 — e.g. from an edited run file).
pub fn new_model(cfg: &Config, ds: &Dataset, phase_tag: u64) -> Result<TwoTower<f32>, SpecError> {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(cfg.raw.train.seed, phase_tag, 0, 0));
    let user = Tower::try_new(user_tower_spec(cfg, ds), &mut rng)?;
    let item = Tower::try_new(tower_spec(cfg, &ds.items.features), &mut rng)?;
    let shared = shared_item_feature(cfg, ds).map(|item_feature| SharedTable {
        user_feature: user.spec.features.len() - 1,
        item_feature,
    });
    let mut model = TwoTower { user, item, shared };
    let std = cfg.raw.model.embedding_init_std;
    if std > 0.0 {
        // Tower::new draws N(0, 1/dim); rescale to N(0, std²).
        for tower in [&mut model.user, &mut model.item] {
            for tab in &mut tower.tables {
                let s = (std * (tab.dim as f64).sqrt()) as f32;
                tab.data.iter_mut().for_each(|v| *v *= s);
            }
        }
    }
    Ok(model)
}

/// SplitMix64-style mixing of the seed with stream tags (phase, purpose,
/// index): the seed of every random stream of a run (model initialisation
/// here, shuffles and batches in training).
pub fn mix(seed: u64, a: u64, b: u64, c: u64) -> u64 {
    let mut z = seed
        ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ c.wrapping_mul(0x1656_67B1_9E37_79F9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Item embeddings for all catalog items and user embeddings for all users,
/// `[n × out_dim]`, rows unit-norm. With a history feature, each user's bag
/// is their last items of the interactions `history` was built from (for a
/// test evaluation and serving: the train split).
pub fn encode_all(
    model: &TwoTower<f32>,
    ds: &Dataset,
    history: Option<&HistoryFeature>,
) -> (Array2<f32>, Array2<f32>) {
    (
        encode_user_table(model, ds, history),
        encode_items(model, &ds.items),
    )
}

/// User vectors `[n_users × d]` (unit-norm rows) of every user of `ds`;
/// with a history feature each user's bag is `history`'s.
pub fn encode_user_table(
    model: &TwoTower<f32>,
    ds: &Dataset,
    history: Option<&HistoryFeature>,
) -> Array2<f32> {
    let hist_col = history.map(HistoryFeature::user_column);
    let ucols = user_columns(&ds.users.features, hist_col.as_ref());
    let users: Vec<u32> = (0..ds.users.ids.len() as u32).collect();
    let mut uv = Array2::zeros((users.len(), model.user.spec.out_dim));
    model.encode_users(&ucols, &users, &mut uv);
    uv
}

/// Item vectors `[n_items × d]` (unit-norm rows) of an item table: the
/// run's own, or one encoded with its vocabularies
/// ([`twotower_data::encode_table`], a catalog that grew after training:
/// new items read the id's out-of-vocabulary row and their features).
///
/// # Panics
/// If `table`'s features are not the item tower's (in order).
pub fn encode_items(model: &TwoTower<f32>, table: &EntityTable) -> Array2<f32> {
    let icols = columns(&table.features);
    let items: Vec<u32> = (0..table.ids.len() as u32).collect();
    let mut iv = Array2::zeros((items.len(), model.item.spec.out_dim));
    model.item.encode(&icols, &items, &mut iv);
    iv
}

/// A history column over all users: `(offsets, values, weights)` as
/// [`HistoryFeature::user_column`] returns it.
pub type HistoryColumn = (Vec<u32>, Vec<u32>, Vec<f32>);

/// The user tower's input columns: the data's user features, then the
/// history column if there is one.
pub fn user_columns<'a>(
    features: &'a [EncodedFeature],
    history: Option<&'a HistoryColumn>,
) -> Vec<FeatureColumn<'a>> {
    let mut cols = columns(features);
    if let Some((o, v, w)) = history {
        cols.push(FeatureColumn {
            offsets: o,
            values: v,
            weights: w,
        });
    }
    cols
}
