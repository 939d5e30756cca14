//! The JSON of the endpoints: query parameters, request bodies and answers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::*;

/// Query parameters of the GET endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KParams {
    /// Number of items (default 10).
    pub k: Option<usize>,
    /// Keep the user's train items (default false).
    pub include_seen: Option<bool>,
}

/// A feature value in a request: a string, a number, a boolean, or a list
/// of them for a multi-valued feature.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FeatureValue {
    /// One value.
    One(Scalar),
    /// Several values (a multi-valued feature).
    Many(Vec<Scalar>),
}

/// One raw value.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// Text.
    Text(String),
    /// A number, written as JSON wrote it.
    Number(serde_json::Number),
    /// A boolean.
    Flag(bool),
}

impl Scalar {
    pub(super) fn raw(&self) -> String {
        match self {
            Scalar::Text(s) => s.clone(),
            Scalar::Number(n) => n.to_string(),
            Scalar::Flag(b) => b.to_string(),
        }
    }
}

/// `POST /recommend` (and each query of a batch).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryBody {
    /// A user id of the data (its features and history are the defaults),
    /// or absent / a new id for a new user.
    pub user: Option<String>,
    /// Raw user feature values by feature name.
    #[serde(default)]
    pub features: BTreeMap<String, FeatureValue>,
    /// Item ids the user interacted with, oldest first (needs a model with
    /// a history feature).
    pub items: Option<Vec<String>>,
    /// Number of items (default 10; in a batch, the batch's `k`).
    pub k: Option<usize>,
    /// Keep the user's train items / the given items (default false).
    pub include_seen: Option<bool>,
}

/// `POST /recommend/batch`: `queries`, or `users` (known user ids) for
/// the shorthand of one plain query per user.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    /// Queries, answered in order.
    #[serde(default)]
    pub queries: Vec<QueryBody>,
    /// Known user ids (each a query with no features).
    #[serde(default)]
    pub users: Vec<String>,
    /// Default `k` of the queries (default 10).
    pub k: Option<usize>,
}

/// One ranked item.
#[derive(Debug, Serialize)]
pub struct Hit {
    /// The item id as written in the data.
    pub item: String,
    /// Cosine of the user and item vectors.
    pub score: f32,
    /// The item table's label (title), when it has a label column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// An answer: the ranked items and what was noticed building the query.
#[derive(Debug, Serialize)]
pub struct Answer {
    /// The user id of the query, when one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Best first.
    pub items: Vec<Hit>,
    /// Warnings: unknown item ids, values out of the vocabulary.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The answer of `POST /recommend/batch`: one [`Answer`] per query, in
/// order (`queries` first, then `users`).
#[derive(Debug, Serialize)]
pub struct BatchAnswer {
    /// The answers.
    pub results: Vec<Answer>,
}

pub(super) fn check_k(k: Option<usize>, field: &str) -> Result<usize, ApiError> {
    let k = k.unwrap_or(10);
    if k == 0 {
        return Err(ApiError::bad(field, format!("{field} must be at least 1")));
    }
    if k > MAX_K {
        return Err(ApiError::bad(
            field,
            format!("{field} = {k} is more than the {MAX_K} items a request may ask for"),
        ));
    }
    Ok(k)
}
