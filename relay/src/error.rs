//! The one error type handlers return; it maps to `{"error":{"code","message"}}` and a status.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// Another tenant's object and a missing one look the same.
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such {what}"),
        )
    }

    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(error: tokio_postgres::Error) -> ApiError {
        // Data the database refuses (class 22 data exceptions, 23 integrity violations) is the
        // client's to fix; retrying would not help.
        if let Some(db) = error.as_db_error() {
            let class = &db.code().code()[..2];
            if class == "22" || class == "23" {
                tracing::warn!(
                    code = db.code().code(),
                    message = db.message(),
                    "request data refused by the database"
                );
                return ApiError::bad_request(format!("the data was refused: {}", db.message()));
            }
        }
        tracing::error!(%error, "database error");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database",
            "the database did not answer; retry later",
        )
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(error: deadpool_postgres::PoolError) -> ApiError {
        tracing::error!(%error, "database pool error");
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database",
                "the database is unreachable; retry later",
            )
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// A request body of at most `MAX_BODY_BYTES` after decompression, with failures (too
/// large, unreadable) turned into `ApiError`s so every one answers in the same JSON shape.
pub struct Body(pub axum::body::Bytes);

/// How much more of a refused body is read (and thrown away) before the answer, and for how
/// long: closing a connection with unread input makes the kernel reset it, and a client still
/// sending would lose the 413 with its reason.
const DRAIN_BYTES: usize = 16 * 1024 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

impl<S: Send + Sync> axum::extract::FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, _state: &S) -> Result<Self, ApiError> {
        use http_body_util::BodyExt;
        let limit = crate::api::ingest::MAX_BODY_BYTES;
        let mut body = request.into_body();
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame
                .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if bytes.len() + data.len() > limit {
                let drained = async {
                    let mut thrown = 0;
                    while let Some(Ok(frame)) = body.frame().await {
                        thrown += frame.data_ref().map_or(0, |d| d.len());
                        if thrown > DRAIN_BYTES {
                            break;
                        }
                    }
                };
                let _ = tokio::time::timeout(DRAIN_TIME, drained).await;
                return Err(ApiError::too_large(
                    "the request body is larger than 10 MB (after decompression)",
                ));
            }
            bytes.extend_from_slice(&data);
        }
        Ok(Body(bytes.into()))
    }
}

/// Parses a JSON request body; a 400 says `what` was wrong and why.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("{what}: {e}")))
}

/// `axum::extract::Query` whose rejection is an `ApiError` (JSON, 400).
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// `axum::extract::Path` whose rejection is an `ApiError` (JSON, 400).
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// The error body every failure has, for the OpenAPI document.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code: bad_request, unauthorized, not_found, too_large,
    /// invalid_policy, rate_limited, database.
    pub code: String,
    pub message: String,
}

/// The failures every authenticated endpoint can answer with, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum CommonErrors {
    #[response(status = 400, description = "Bad request")]
    BadRequest(ErrorBody),
    #[response(status = 401, description = "Missing, malformed or unknown credential")]
    Unauthorized(ErrorBody),
    #[response(status = 429, description = "Over the tenant's rate; see Retry-After")]
    RateLimited(ErrorBody),
    #[response(status = 503, description = "Database unavailable")]
    Unavailable(ErrorBody),
}
