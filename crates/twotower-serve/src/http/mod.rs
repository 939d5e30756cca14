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

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use twotower_model::index::VectorIndex;

use crate::catalog::Catalog;
use crate::served::Served;

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

mod api;
mod error;
mod handlers;

pub use api::*;
pub use error::*;
use handlers::*;

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
