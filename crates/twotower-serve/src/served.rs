//! A loaded run ready to answer queries: user vectors for known users, for
//! new users from raw feature values, and from the items a user interacted
//! with (the history feature's bag, built exactly as training builds it).

use twotower_data::{FeatureEncoder, FeatureKind, FeaturesConfig, Side};
use twotower_model::history_feature::{item_rows, HistoryFeature};
use twotower_model::inference::history_feature;
use twotower_model::run::LoadedRun;
use twotower_model::tower::{BatchFeature, FeatureColumn};

/// Why a query cannot be answered. Messages name the field at fault; `what`
/// names where the value came from (a CLI flag, a file and line, a JSON
/// field).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// A feature given twice.
    #[error("{what} {name} is given twice; give each feature once (a multi-valued one as A|B|C)")]
    DuplicateFeature {
        /// Source of the value.
        what: String,
        /// The feature.
        name: String,
    },
    /// Not a user feature of the model.
    #[error("{what} {name}: not a user feature; user features: {known}")]
    UnknownFeature {
        /// Source of the value.
        what: String,
        /// The name given.
        name: String,
        /// The model's user features, comma-separated.
        known: String,
    },
    /// A value that cannot be encoded (a non-number for a bucketized feature).
    #[error("{what} {name}={value}: {problem}")]
    BadValue {
        /// Source of the value.
        what: String,
        /// The feature.
        name: String,
        /// The raw value.
        value: String,
        /// What is wrong.
        problem: String,
    },
    /// Items were given but the model has no history feature.
    #[error(
        "{what} needs a model with a history feature (model.history.enabled = true); \
         this run's user tower has none"
    )]
    NoHistoryFeature {
        /// Source of the items.
        what: String,
    },
    /// None of the given item ids is in the catalog.
    #[error("{what}: none of the given item ids is in the catalog")]
    NoKnownItems {
        /// Source of the items.
        what: String,
    },
    /// An unknown user with nothing to build a vector from.
    #[error(
        "user {user:?} is not in the data; give its features{how_features} (user features: {known}){how_items}"
    )]
    UnknownUser {
        /// The id given.
        user: String,
        /// The model's user features, comma-separated.
        known: String,
        /// How to give features, e.g. " with --feature NAME=VALUE".
        how_features: String,
        /// How to give items when the model reads a history, else empty.
        how_items: String,
    },
}

/// A user's query vector and what was noticed building it.
#[derive(Debug, Clone)]
pub struct UserQuery {
    /// Unit-norm user vector, `[d]`.
    pub vector: Vec<f32>,
    /// The user's index when the id is in the data.
    pub user: Option<u32>,
    /// Warnings (unknown ids, out-of-vocabulary values), one sentence each.
    pub notes: Vec<String>,
}

/// A run loaded for serving, with what every query needs precomputed.
pub struct Served {
    /// The run (from its artifact, or through its data).
    pub run: LoadedRun,
    /// The history feature over the train split, when the model has one.
    pub history: Option<HistoryFeature>,
    /// Item index → row of the item-id table (0 = no trained row).
    item_row: Vec<u32>,
    /// The effective feature configs (presets applied).
    features: FeaturesConfig,
    /// Per user, the sorted distinct train items (CSR offsets / values).
    seen_offsets: Vec<u32>,
    seen_items: Vec<u32>,
}

impl Served {
    /// Prepares `run` for queries.
    pub fn new(run: LoadedRun) -> Self {
        let history = history_feature(&run.config, &run.dataset, &run.dataset.train);
        let (item_row, _) = item_rows(&run.dataset.items);
        let features =
            twotower_data::effective_features(&run.config.data(), &run.config.raw.features);
        let n_users = run.dataset.users.len();
        let train = &run.dataset.train;
        let mut counts = vec![0u32; n_users + 1];
        for &u in &train.user {
            counts[u as usize + 1] += 1;
        }
        for i in 0..n_users {
            counts[i + 1] += counts[i];
        }
        let mut items = vec![0u32; train.len()];
        let mut next = counts.clone();
        for (&u, &i) in train.user.iter().zip(&train.item) {
            items[next[u as usize] as usize] = i;
            next[u as usize] += 1;
        }
        // sort and deduplicate each user's slice, compacting in place
        let mut offsets = vec![0u32; n_users + 1];
        let mut w = 0usize;
        for u in 0..n_users {
            let (a, b) = (counts[u] as usize, counts[u + 1] as usize);
            let mut s = items[a..b].to_vec();
            s.sort_unstable();
            s.dedup();
            items[w..w + s.len()].copy_from_slice(&s);
            w += s.len();
            offsets[u + 1] = w as u32;
        }
        items.truncate(w);
        Self {
            run,
            history,
            item_row,
            features,
            seen_offsets: offsets,
            seen_items: items,
        }
    }

    /// User `u`'s distinct train items, sorted (what "seen" excludes).
    pub fn seen(&self, u: u32) -> &[u32] {
        let u = u as usize;
        &self.seen_items[self.seen_offsets[u] as usize..self.seen_offsets[u + 1] as usize]
    }

    /// The vectors of every user of the run, `[n_users × d]`: the
    /// artifact's, else computed from the model (a run without artifact).
    pub fn user_vectors(&self) -> ndarray::Array2<f32> {
        match &self.run.vectors {
            Some((users, _)) => users.clone(),
            None => twotower_model::inference::encode_user_table(
                &self.run.model,
                &self.run.dataset,
                self.history.as_ref(),
            ),
        }
    }

    /// The user index of `id`, if it is in the data.
    pub fn user_index(&self, id: &str) -> Option<u32> {
        self.run.dataset.users.index_of(id)
    }

    /// The model's user features (names, comma-separated), for messages.
    pub fn user_feature_names(&self) -> String {
        self.run
            .dataset
            .users
            .features
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The separator of a multi-valued user feature (`|` by default), for
    /// joining a list of values given as an array.
    pub fn separator(&self, feature: &str) -> &str {
        self.features
            .get(feature)
            .and_then(|f| f.separator.as_deref())
            .unwrap_or("|")
    }

    /// Resolves item ids as written in the data to item indices, in the
    /// order given (blank ids skipped). Unknown ids, and known items
    /// without a trained id row, are reported in the notes (at most 20
    /// ids shown each); none known is an error.
    ///
    /// # Errors
    /// [`QueryError::NoKnownItems`].
    pub fn resolve_items(
        &self,
        ids: &[String],
        what: &str,
    ) -> Result<(Vec<u32>, Vec<String>), QueryError> {
        let items = &self.run.dataset.items;
        let (mut known, mut unknown) = (Vec::new(), Vec::new());
        for id in ids.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            match items.index_of(id) {
                Some(i) => known.push(i),
                None => unknown.push(id),
            }
        }
        let mut notes = Vec::new();
        if !unknown.is_empty() {
            notes.push(format!(
                "{what}: {} of {} ids are not in the catalog and are left out of the history: {}",
                unknown.len(),
                unknown.len() + known.len(),
                shown(&unknown)
            ));
        }
        if known.is_empty() {
            return Err(QueryError::NoKnownItems { what: what.into() });
        }
        // items without a trained id row (no train click, or below min_count)
        // read the out-of-vocabulary row: they say nothing about the user
        let untrained: Vec<&str> = known
            .iter()
            .filter(|&&i| self.item_row[i as usize] == 0)
            .map(|&i| &items.ids[i as usize])
            .collect();
        if !untrained.is_empty() {
            notes.push(format!(
                "{what}: {} of {} items have no trained embedding (no train interaction, or \
                 below the item id's min_count) and read the out-of-vocabulary row: {}",
                untrained.len(),
                known.len(),
                shown(&untrained)
            ));
        }
        Ok((known, notes))
    }

    /// The query vector of `user` (an id of the data, or any new id), with
    /// raw feature values `(name, value)` overriding or supplying the
    /// user's features (transformed, bucketized and looked up as at
    /// training; a multi-valued feature takes `a|b|c` with its separator).
    ///
    /// With a history feature the bag is `items` (item indices, oldest
    /// first) when given, else a known user's train items, else empty.
    /// `what` names the source of values in messages (`--feature`,
    /// `features`).
    ///
    /// # Errors
    /// [`QueryError`]: a feature given twice or not of the user tower, a
    /// value that cannot be encoded, items for a model without a history,
    /// an unknown user with neither features nor items.
    pub fn user_vector(
        &self,
        user: &str,
        features: &[(String, String)],
        items: Option<&[u32]>,
        what: &str,
    ) -> Result<UserQuery, QueryError> {
        let ds = &self.run.dataset;
        let idx = self.user_index(user);
        let feats = &ds.users.features;
        let mut notes = Vec::new();
        // one entity's CSR per feature: a known user's rows, else unknown
        let mut per_feature: Vec<Vec<u32>> = feats
            .iter()
            .map(|f| match idx {
                Some(u) => f.row(u as usize).to_vec(),
                None if !f.is_id && f.kind == FeatureKind::MultiCategorical => vec![],
                None => vec![0],
            })
            .collect();
        let mut given: Vec<&str> = Vec::new();
        for (name, value) in features {
            if given.contains(&name.as_str()) {
                return Err(QueryError::DuplicateFeature {
                    what: what.into(),
                    name: name.clone(),
                });
            }
            given.push(name);
            let unknown = || QueryError::UnknownFeature {
                what: what.into(),
                name: name.clone(),
                known: self.user_feature_names(),
            };
            let pos = feats
                .iter()
                .position(|f| &f.name == name)
                .ok_or_else(unknown)?;
            let f = &feats[pos];
            let fc = self
                .features
                .get(name)
                .filter(|c| c.side == Side::User)
                .ok_or_else(unknown)?;
            let ids =
                FeatureEncoder::new(fc, f)
                    .encode(value)
                    .map_err(|e| QueryError::BadValue {
                        what: what.into(),
                        name: name.clone(),
                        value: value.clone(),
                        problem: e.to_string(),
                    })?;
            if f.kind == FeatureKind::Bucketized && ids == [0] {
                return Err(QueryError::BadValue {
                    what: what.into(),
                    name: name.clone(),
                    value: clip(value),
                    problem: "empty value".into(),
                });
            }
            if f.kind != FeatureKind::Bucketized
                && f.vocab.hash_buckets().is_none()
                && (ids.is_empty() || ids.contains(&0))
            {
                notes.push(format!(
                    "{what} {name}={}: not (all) in the training vocabulary of {name}; \
                     using its out-of-vocabulary embedding",
                    clip(value)
                ));
            }
            per_feature[pos] = ids;
        }
        if items.is_some() && self.history.is_none() {
            return Err(QueryError::NoHistoryFeature {
                what: if what == "--feature" {
                    "--items".into()
                } else {
                    "items".into()
                },
            });
        }
        if idx.is_none() && features.is_empty() && items.is_none() {
            let cli = what == "--feature";
            return Err(QueryError::UnknownUser {
                user: user.into(),
                known: self.user_feature_names(),
                how_features: if cli {
                    " with --feature NAME=VALUE".into()
                } else {
                    " as \"features\": {NAME: VALUE}".into()
                },
                how_items: match (self.history.is_some(), cli) {
                    (false, _) => String::new(),
                    (true, true) => ", or the items it interacted with as --items ID,ID,...".into(),
                    (true, false) => {
                        ", or the items it interacted with as \"items\": [ID, ...]".into()
                    }
                },
            });
        }
        if idx.is_none() {
            let missing: Vec<&str> = feats
                .iter()
                .filter(|f| !f.is_id && !given.contains(&f.name.as_str()))
                .map(|f| f.name.as_str())
                .collect();
            if !missing.is_empty() {
                let who = if user.is_empty() {
                    "a new user".to_string()
                } else {
                    format!("user {user:?} is not in the data")
                };
                notes.push(format!(
                    "{who}: features not given ({}) use their out-of-vocabulary (missing) \
                     embedding",
                    missing.join(", ")
                ));
            }
        }
        let mut offsets: Vec<Vec<u32>> = per_feature
            .iter()
            .map(|v| vec![0, v.len() as u32])
            .collect();
        let mut weights: Vec<Vec<f32>> = vec![Vec::new(); per_feature.len()];
        if let Some(h) = &self.history {
            // the same bag training builds: the last max_len items, pooled alike
            let rows: Vec<u32> = match (items, idx) {
                (Some(items), _) => items.iter().map(|&i| self.item_row[i as usize]).collect(),
                (None, Some(u)) => h.user_rows(u).to_vec(),
                (None, None) => Vec::new(),
            };
            let mut bag = BatchFeature::default();
            h.bag_of(&rows, &mut bag);
            per_feature.push(bag.values);
            offsets.push(bag.offsets);
            weights.push(bag.weights);
        }
        let cols: Vec<FeatureColumn<'_>> = per_feature
            .iter()
            .zip(&offsets)
            .zip(&weights)
            .map(|((v, o), w)| FeatureColumn {
                offsets: o,
                values: v,
                weights: w,
            })
            .collect();
        let mut out = ndarray::Array2::zeros((1, self.run.model.user.spec.out_dim));
        self.run.model.encode_users(&cols, &[0], &mut out);
        Ok(UserQuery {
            vector: out.row(0).to_vec(),
            user: idx,
            notes,
        })
    }
}

/// A raw value for a message: at most 60 characters.
fn clip(v: &str) -> String {
    if v.chars().count() <= 60 {
        v.to_string()
    } else {
        v.chars().take(60).collect::<String>() + "..."
    }
}

/// At most 20 ids, comma-separated, `...` when there are more.
fn shown(ids: &[&str]) -> String {
    ids.iter()
        .take(20)
        .map(|id| clip(id))
        .collect::<Vec<_>>()
        .join(", ")
        + if ids.len() > 20 { ", ..." } else { "" }
}
