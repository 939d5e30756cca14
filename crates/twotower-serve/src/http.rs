//! The HTTP/JSON server of `twotower serve` (axum on a tokio runtime).
//!
//! Endpoints (all answers are JSON; items carry `item` — the id as written
//! in the data —, `score` — the cosine with the query — and `label` when
//! the item table has a label column):
//! - `GET /recommend/{user}?k=10&include_seen=false`: a known user's top-k;
//!   the user's train items are excluded unless `include_seen=true`.
//! - `POST /recommend` with [`QueryBody`]: a user from raw features and/or
//!   the items they interacted with (oldest first; excluded from the
//!   answer unless `include_seen`), or a known user with overrides.
//! - `POST /recommend/batch` with [`BatchBody`]: many queries in one
//!   request (at most [`MAX_BATCH`], and `queries × k` ≤ [`MAX_RESULTS`]).
//! - `GET /items/{item}/similar?k=10`: the nearest items of an item.
//! - `GET /livez` (the process answers), `GET /readyz` (the model and the
//!   index are loaded: the catalog size and the index kind).
//!
//! Errors are `{"error": "...", "field": "..."}` with status 404 for an
//! unknown user or item, 400 for a malformed body, an unknown feature or
//! field, a value that cannot be encoded, or `k` outside 1..=[`MAX_K`],
//! 413 for a body over [`MAX_BODY_BYTES`]. Every bad request is answered and
//! the server keeps serving (`tests/cli_http.rs` sends each kind, then a good one).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use twotower_model::index::VectorIndex;

use crate::catalog::Catalog;
use crate::served::{QueryError, Served};

/// Largest `k` a request may ask for.
pub const MAX_K: usize = 1000;
/// Most queries in one batch request.
pub const MAX_BATCH: usize = 10_000;
/// Most result items one batch request may ask for (`queries × k`).
pub const MAX_RESULTS: usize = 1_000_000;
/// Largest request body, bytes.
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// What the handlers share: the served run, its catalog and index.
pub struct AppState {
    /// The run.
    pub served: Served,
    /// The items ranked.
    pub catalog: Catalog,
    /// The index over the catalog's vectors.
    pub index: Box<dyn VectorIndex>,
}

/// An error answer: status, message, and the request field at fault.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: String,
    field: Option<String>,
}

impl ApiError {
    fn bad(field: impl Into<String>, error: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: error.into(),
            field: Some(field.into()),
        }
    }

    fn not_found(field: impl Into<String>, error: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            error: error.into(),
            field: Some(field.into()),
        }
    }

    fn from_query(e: QueryError, prefix: &str) -> Self {
        let field = match &e {
            QueryError::DuplicateFeature { name, .. }
            | QueryError::UnknownFeature { name, .. }
            | QueryError::BadValue { name, .. } => format!("{prefix}features.{name}"),
            QueryError::NoHistoryFeature { .. } | QueryError::NoKnownItems { .. } => {
                format!("{prefix}items")
            }
            QueryError::UnknownUser { .. } => format!("{prefix}user"),
        };
        let status = match e {
            QueryError::NoKnownItems { .. } => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            error: e.to_string(),
            field: Some(field),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.error });
        if let Some(f) = self.field {
            body["field"] = serde_json::Value::String(f);
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = match r {
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            JsonRejection::BytesRejection(ref b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            _ => StatusCode::BAD_REQUEST,
        };
        let text = r.body_text();
        // serde's message is `PATH: problem` after axum's prefix
        let detail = text
            .strip_prefix("Failed to deserialize the JSON body into the target type: ")
            .or_else(|| text.strip_prefix("Failed to parse the request body as JSON: "));
        let (field, error) = match detail.and_then(|d| d.split_once(": ")) {
            Some((path, problem))
                if !path.is_empty()
                    && !path.contains(' ')
                    && !path.contains('?')
                    && matches!(r, JsonRejection::JsonDataError(_)) =>
            {
                let problem = problem
                    .replace(
                        "data did not match any variant of untagged enum FeatureValue",
                        "expected a string, a number, a boolean or a list of them",
                    )
                    .replace("usize", "a whole number ≥ 1");
                (path.to_string(), format!("{path}: {problem}"))
            }
            _ => ("body".to_string(), text.clone()),
        };
        Self {
            status,
            error,
            field: Some(field),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        let text = r.body_text();
        let detail = text
            .strip_prefix("Failed to deserialize query string: ")
            .unwrap_or(&text);
        match detail.split_once(": ") {
            Some((name, problem)) if !name.contains(' ') => Self::bad(
                name,
                format!("{name}: {}", problem.replace("usize", "a whole number ≥ 1")),
            ),
            _ => Self::bad("query", text),
        }
    }
}

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
    fn raw(&self) -> String {
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

fn check_k(k: Option<usize>, field: &str) -> Result<usize, ApiError> {
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

type Shared = Arc<AppState>;

async fn livez() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(st): State<Shared>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ready",
        "items": st.catalog.len(),
        "users": st.served.run.dataset.users.len(),
        "index": if st.index.is_exact() { "exact" } else { "hnsw" },
        "dim": st.index.dim(),
    }))
}

async fn recommend_user(
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

async fn recommend_post(
    State(st): State<Shared>,
    body: Result<Json<QueryBody>, JsonRejection>,
) -> Result<Json<Answer>, ApiError> {
    let Json(q) = body?;
    let k = check_k(q.k, "k")?;
    blocking(move || st.answer(&q, k, "")).await
}

async fn recommend_batch(
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
async fn blocking<T: Send + 'static>(
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

async fn similar(
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

const ENDPOINTS: &str = "GET /recommend/{user}, POST /recommend, POST /recommend/batch, \
                         GET /items/{item}/similar, GET /livez, GET /readyz";

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        error: format!(
            "no such endpoint {}: the endpoints are {ENDPOINTS}",
            uri.path()
        ),
        field: Some("path".into()),
    }
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        error: format!(
            "{method} is not allowed on {}: the endpoints are {ENDPOINTS}",
            uri.path()
        ),
        field: Some("method".into()),
    }
}

/// The router over `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/recommend/{user}", get(recommend_user))
        .route("/recommend", post(recommend_post))
        .route("/recommend/batch", post(recommend_batch))
        .route("/items/{item}/similar", get(similar))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(Arc::new(state))
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Serves `state` on `addr` with `threads` worker threads until Ctrl-C or
/// SIGTERM (in-flight requests finish). `on_bound` receives the bound
/// address (port 0 picks a free one) before the first request is accepted.
///
/// # Errors
/// The address cannot be bound, or the runtime cannot start.
pub fn serve(
    state: AppState,
    addr: SocketAddr,
    threads: usize,
    on_bound: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .max_blocking_threads((threads.max(1) * 4).min(crate::ann::MAX_SEARCH_THREADS))
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        on_bound(listener.local_addr()?);
        axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown_signal())
            .await
    })
}
