//! The serving side of twotower: what turns a trained run into answers.
//!
//! - [`served`]: a loaded run ready to answer queries — a known user's
//!   vector, a new user's from raw feature values and the items they
//!   interacted with (the same encoder and history bag training uses), and
//!   each user's seen items;
//! - [`catalog`]: the items to rank (the run's, or a table that grew after
//!   training, scored from its features) and an index over their vectors
//!   (exact, or HNSW with its recall against exact measured on build);
//! - [`http`]: the HTTP/JSON server of `twotower serve` (axum + tokio).
//!
//! Data flow: run directory (artifact) → [`served::Served`] →
//! [`catalog::Catalog`] + index → [`http`] handlers. Nothing here trains.

#![warn(missing_docs)]

pub mod catalog;
pub mod http;
pub mod served;

pub use catalog::{build_index, Catalog};
pub use served::{QueryError, Served, UserQuery};
/// The persisted HNSW index (usearch). It lives in the model crate
/// (`twotower_model::ann`) so that the evaluation (`eval.retrieval =
/// "hnsw"`) ranks through the same index the server does; re-exported here
/// under its old path.
pub use twotower_model::ann;
