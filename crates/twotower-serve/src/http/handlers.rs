//! What each endpoint does: the queries on the served run (`AppState`'s
//! methods, run on blocking threads) and the axum handlers around them.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;

use crate::served::QueryError;

use super::*;

impl AppState {
    fn hits(&self, found: &[(u32, f32)]) -> Vec<Hit> {
        let table = self.catalog.table(&self.served);
        found
            .iter()
            .map(|&(i, score)| Hit {
                item: table.ids[i as usize].to_string(),
                score,
                label: table.labels.as_ref().map(|(_, t)| t[i as usize].clone()),
            })
            .collect()
    }

    fn search(&self, query: &[f32], k: usize, exclude: &[u32]) -> Result<Vec<Hit>, ApiError> {
        let found = self.index.search(query, k, exclude).map_err(|e| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: e.to_string(),
            field: None,
        })?;
        Ok(self.hits(&found))
    }

    /// Answers one query; `prefix` names it in error fields (`queries[3].`).
    fn answer(&self, q: &QueryBody, k: usize, prefix: &str) -> Result<Answer, ApiError> {
        let s = &self.served;
        let what = format!("{prefix}items");
        let (items, mut notes) = match &q.items {
            Some(ids) => {
                if s.history.is_none() {
                    return Err(ApiError::from_query(
                        QueryError::NoHistoryFeature { what },
                        prefix,
                    ));
                }
                let (items, notes) = s
                    .resolve_items(ids, &what)
                    .map_err(|e| ApiError::from_query(e, prefix))?;
                (Some(items), notes)
            }
            None => (None, Vec::new()),
        };
        let features: Vec<(String, String)> = q
            .features
            .iter()
            .map(|(name, v)| {
                let raw = match v {
                    FeatureValue::One(x) => x.raw(),
                    FeatureValue::Many(xs) => xs
                        .iter()
                        .map(Scalar::raw)
                        .collect::<Vec<_>>()
                        .join(s.separator(name)),
                };
                (name.clone(), raw)
            })
            .collect();
        let user = q.user.as_deref().unwrap_or("");
        if q.features.is_empty() && items.is_none() && s.user_index(user).is_none() {
            let how = format!(
                "\"features\": {{NAME: VALUE}} (user features: {}){}",
                s.user_feature_names(),
                if s.history.is_some() {
                    " or \"items\": [ID, ...]"
                } else {
                    ""
                }
            );
            return Err(if user.is_empty() {
                ApiError::bad(
                    format!("{prefix}user"),
                    format!("give a known \"user\", or a new user's {how}"),
                )
            } else {
                ApiError::not_found(
                    format!("{prefix}user"),
                    format!("user {user:?} is not in the data; for a new user give {how}"),
                )
            });
        }
        let uq = s
            .user_vector(
                user,
                &features,
                items.as_deref(),
                &format!("{prefix}feature"),
            )
            .map_err(|e| ApiError::from_query(e, prefix))?;
        notes.extend(uq.notes);
        let exclude = if q.include_seen.unwrap_or(false) {
            Vec::new()
        } else if let Some(items) = &items {
            self.catalog.map_run_items(items)
        } else if let Some(u) = uq.user {
            self.catalog.map_run_items(s.seen(u))
        } else {
            Vec::new()
        };
        Ok(Answer {
            user: q.user.clone(),
            items: self.search(&uq.vector, k, &exclude)?,
            notes,
        })
    }
}

pub(super) type Shared = Arc<AppState>;

pub(super) async fn livez() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

pub(super) async fn readyz(State(st): State<Shared>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ready",
        "items": st.catalog.len(),
        "users": st.served.run.dataset.users.len(),
        "index": if st.index.is_exact() { "exact" } else { "hnsw" },
        "dim": st.index.dim(),
    }))
}

pub(super) async fn recommend_user(
    State(st): State<Shared>,
    Path(user): Path<String>,
    params: Result<Query<KParams>, QueryRejection>,
) -> Result<Json<Answer>, ApiError> {
    let Query(p) = params?;
    let k = check_k(p.k, "k")?;
    if st.served.user_index(&user).is_none() {
        return Err(ApiError::not_found(
            "user",
            format!("user {user:?} is not in the data (POST /recommend builds a new user from features or items)"),
        ));
    }
    let q = QueryBody {
        user: Some(user),
        include_seen: p.include_seen,
        ..Default::default()
    };
    blocking(move || st.answer(&q, k, "")).await
}

pub(super) async fn recommend_post(
    State(st): State<Shared>,
    body: Result<Json<QueryBody>, JsonRejection>,
) -> Result<Json<Answer>, ApiError> {
    let Json(q) = body?;
    let k = check_k(q.k, "k")?;
    blocking(move || st.answer(&q, k, "")).await
}

pub(super) async fn recommend_batch(
    State(st): State<Shared>,
    body: Result<Json<BatchBody>, JsonRejection>,
) -> Result<Json<BatchAnswer>, ApiError> {
    let Json(b) = body?;
    let k = check_k(b.k, "k")?;
    let n = b.queries.len() + b.users.len();
    if n == 0 {
        return Err(ApiError::bad("queries", "give `queries` or `users`"));
    }
    if n > MAX_BATCH {
        return Err(ApiError::bad(
            "queries",
            format!("{n} queries: at most {MAX_BATCH} per request"),
        ));
    }
    blocking(move || {
        let mut results = Vec::with_capacity(n);
        let mut total = 0usize;
        for (j, q) in b.queries.iter().enumerate() {
            let prefix = format!("queries[{j}].");
            let kq = check_k(q.k.or(Some(k)), &format!("{prefix}k"))?;
            total += kq;
            if total > MAX_RESULTS {
                return Err(ApiError::bad(
                    "queries",
                    format!("the batch asks for more than {MAX_RESULTS} result items; split it"),
                ));
            }
            results.push(st.answer(q, kq, &prefix)?);
        }
        if b.users.len().saturating_mul(k).saturating_add(total) > MAX_RESULTS {
            return Err(ApiError::bad(
                "users",
                format!("the batch asks for more than {MAX_RESULTS} result items; split it"),
            ));
        }
        for (j, u) in b.users.iter().enumerate() {
            if st.served.user_index(u).is_none() {
                return Err(ApiError::not_found(
                    format!("users[{j}]"),
                    format!("user {u:?} is not in the data"),
                ));
            }
            let q = QueryBody {
                user: Some(u.clone()),
                ..Default::default()
            };
            results.push(st.answer(&q, k, &format!("users[{j}]."))?);
        }
        Ok(BatchAnswer { results })
    })
    .await
}

/// Runs `f` on tokio's blocking pool, so that scoring never holds an async
/// worker: every connection keeps being read (graceful shutdown then
/// finishes every request already sent).
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<Json<T>, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map(Json),
        Err(e) => Err(ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: format!("the request failed: {e}"),
            field: None,
        }),
    }
}

pub(super) async fn similar(
    State(st): State<Shared>,
    Path(item): Path<String>,
    params: Result<Query<KParams>, QueryRejection>,
) -> Result<Json<Answer>, ApiError> {
    let Query(p) = params?;
    let k = check_k(p.k, "k")?;
    if p.include_seen.is_some() {
        return Err(ApiError::bad(
            "include_seen",
            "include_seen is for /recommend",
        ));
    }
    let table = st.catalog.table(&st.served);
    let i = table.index_of(&item).ok_or_else(|| {
        ApiError::not_found("item", format!("item {item:?} is not in the catalog"))
    })?;
    let q = st.catalog.vectors.row(i as usize).to_vec();
    Ok(Json(Answer {
        user: None,
        items: st.search(&q, k, &[i])?,
        notes: Vec::new(),
    }))
}

pub(super) const ENDPOINTS: &str =
    "GET /recommend/{user}, POST /recommend, POST /recommend/batch, \
                         GET /items/{item}/similar, GET /livez, GET /readyz";

pub(super) async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        error: format!(
            "no such endpoint {}: the endpoints are {ENDPOINTS}",
            uri.path()
        ),
        field: Some("path".into()),
    }
}

pub(super) async fn method_not_allowed(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        error: format!(
            "{method} is not allowed on {}: the endpoints are {ENDPOINTS}",
            uri.path()
        ),
        field: Some("method".into()),
    }
}
