//! The error answer of every endpoint: `{"error": "...", "field": "..."}`
//! with its status, from the server's own checks and from axum's body and
//! query rejections.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::served::QueryError;

/// An error answer: status, message, and the request field at fault.
#[derive(Debug)]
pub struct ApiError {
    pub(super) status: StatusCode,
    pub(super) error: String,
    pub(super) field: Option<String>,
}

impl ApiError {
    pub(super) fn bad(field: impl Into<String>, error: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: error.into(),
            field: Some(field.into()),
        }
    }

    pub(super) fn not_found(field: impl Into<String>, error: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            error: error.into(),
            field: Some(field.into()),
        }
    }

    pub(super) fn from_query(e: QueryError, prefix: &str) -> Self {
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
