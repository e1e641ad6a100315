//! Every error the API answers with, mapped to a status code and a stable `code` in one place.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use imgpipe_core::ports::{MetadataError, QueueError, StoreError};
use imgpipe_core::seams::Status;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, Type};

/// A refused or failed request. The body is `{"code": "...", "message": "..."}`; `code` is stable
/// and clients branch on it, `message` is for people and may change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No API key, or the wrong one.
    #[error("a valid API key is required (Authorization: Bearer KEY or x-api-key: KEY)")]
    Unauthorized,
    /// The `preset` names no preset of this deployment.
    #[error("unknown preset {0:?}")]
    UnknownPreset(String),
    /// A file or body without bytes.
    #[error("the upload is empty")]
    EmptyUpload,
    /// More bytes than the limit.
    #[error("the upload is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// More files in one request than allowed.
    #[error("{count} files in one request; at most {max} are allowed")]
    TooManyFiles {
        /// Files sent.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The path's image id is not a ULID.
    #[error("{0}")]
    InvalidId(String),
    /// A query parameter is malformed or out of range.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// The body is not what the route accepts (bad JSON, bad multipart, unknown field).
    #[error("invalid request body: {0}")]
    InvalidBody(String),
    /// No such image or rendition.
    #[error("{0}")]
    NotFound(String),
    /// The image has no renditions yet.
    #[error("image is {}, renditions exist once it is DONE", .0.as_str())]
    NotReady(Status),
    /// The presigned slot already received its bytes.
    #[error("this upload slot has already received its bytes")]
    AlreadyUploaded,
    /// The upload URL's signature does not match (tampered, or not issued here).
    #[error("the upload URL's signature is invalid")]
    BadSignature,
    /// The upload URL's expiry has passed.
    #[error("the upload URL has expired")]
    UrlExpired,
    /// The upload's `Content-Type` differs from the one the URL was signed for.
    #[error("Content-Type {got:?} differs from the signed {expected:?}")]
    ContentTypeMismatch {
        /// What the URL was signed for.
        expected: String,
        /// What the request declared.
        got: String,
    },
    /// A declared content type is not an image type this deployment takes.
    #[error("{field}: {content_type:?} is not an image type this deployment takes ({accepted})")]
    UnsupportedContentType {
        /// Which field of the request, e.g. `files[3].content_type`.
        field: String,
        /// What it declared.
        content_type: String,
        /// The types accepted, comma-separated.
        accepted: String,
    },
    /// The upload's length differs from the one the URL was signed for.
    #[error("the body is not the signed {expected} bytes")]
    SizeMismatch {
        /// What the URL was signed for.
        expected: u64,
    },
    /// No route has this path.
    #[error("no route for this path")]
    NoRoute,
    /// The path exists, but not with this method.
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    /// A backend failed in a way that may pass (throttling, timeouts): the client may retry.
    #[error("the service is temporarily unavailable, retry later")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A fault of ours. The cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// The status code and the stable code of this error: the one mapping of the API.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::UnknownPreset(_) => (StatusCode::BAD_REQUEST, "unknown_preset"),
            Self::EmptyUpload => (StatusCode::BAD_REQUEST, "empty_upload"),
            Self::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::TooManyFiles { .. } => (StatusCode::BAD_REQUEST, "too_many_files"),
            Self::InvalidId(_) => (StatusCode::BAD_REQUEST, "invalid_id"),
            Self::InvalidQuery(_) => (StatusCode::BAD_REQUEST, "invalid_query"),
            Self::InvalidBody(_) => (StatusCode::BAD_REQUEST, "invalid_body"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::NotReady(_) => (StatusCode::CONFLICT, "not_ready"),
            Self::AlreadyUploaded => (StatusCode::CONFLICT, "already_uploaded"),
            Self::BadSignature => (StatusCode::FORBIDDEN, "bad_signature"),
            Self::UrlExpired => (StatusCode::FORBIDDEN, "url_expired"),
            Self::ContentTypeMismatch { .. } => (StatusCode::BAD_REQUEST, "content_type_mismatch"),
            Self::SizeMismatch { .. } => (StatusCode::BAD_REQUEST, "size_mismatch"),
            Self::UnsupportedContentType { .. } => (StatusCode::BAD_REQUEST, "unsupported_content_type"),
            Self::NoRoute => (StatusCode::NOT_FOUND, "no_route"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// Every stable code, for the OpenAPI document.
    pub const CODES: [&'static str; 20] = [
        "unauthorized",
        "unknown_preset",
        "empty_upload",
        "payload_too_large",
        "too_many_files",
        "invalid_id",
        "invalid_query",
        "invalid_body",
        "not_found",
        "not_ready",
        "already_uploaded",
        "bad_signature",
        "url_expired",
        "content_type_mismatch",
        "size_mismatch",
        "unsupported_content_type",
        "no_route",
        "method_not_allowed",
        "unavailable",
        "internal",
    ];

    /// A backend failure: `Unavailable` when retrying may help, `Internal` otherwise.
    fn backend(retryable: bool, error: impl std::error::Error + Send + Sync + 'static) -> Self {
        if retryable { Self::Unavailable(Box::new(error)) } else { Self::Internal(Box::new(error)) }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        match &self {
            Self::Internal(source) | Self::Unavailable(source) => {
                tracing::error!(code, error = %source, source = ?std::error::Error::source(source.as_ref()), "request failed");
            }
            _ => tracing::debug!(code, message = %self, "request refused"),
        }
        (status, Json(ErrorBody { code, message: self.to_string() })).into_response()
    }
}

/// The body of every error response, and its OpenAPI schema.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// Stable: clients branch on it.
    #[schema(schema_with = code_schema)]
    pub code: &'static str,
    /// For people; may change.
    pub message: String,
}

/// `code` is one of [`ApiError::CODES`].
fn code_schema() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(ApiError::CODES))
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        Self::backend(error.is_retryable(), error)
    }
}

impl From<MetadataError> for ApiError {
    fn from(error: MetadataError) -> Self {
        if let MetadataError::InvalidCursor(cursor) = &error {
            return Self::InvalidQuery(format!("cursor {cursor:?} was not handed out by this API"));
        }
        Self::backend(error.is_retryable(), error)
    }
}

impl From<QueueError> for ApiError {
    fn from(error: QueueError) -> Self {
        Self::backend(error.is_retryable(), error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_code_is_listed_once() {
        let errors = [
            ApiError::Unauthorized,
            ApiError::UnknownPreset("x".into()),
            ApiError::EmptyUpload,
            ApiError::PayloadTooLarge { limit: 1 },
            ApiError::TooManyFiles { count: 2, max: 1 },
            ApiError::InvalidId("x".into()),
            ApiError::InvalidQuery("x".into()),
            ApiError::InvalidBody("x".into()),
            ApiError::NotFound("x".into()),
            ApiError::NotReady(Status::Pending),
            ApiError::AlreadyUploaded,
            ApiError::BadSignature,
            ApiError::UrlExpired,
            ApiError::ContentTypeMismatch { expected: "a".into(), got: "b".into() },
            ApiError::SizeMismatch { expected: 1 },
            ApiError::UnsupportedContentType { field: "f".into(), content_type: "t".into(), accepted: "a".into() },
            ApiError::NoRoute,
            ApiError::MethodNotAllowed,
            ApiError::Unavailable("x".into()),
            ApiError::Internal("x".into()),
        ];
        let codes: BTreeSet<_> = errors.iter().map(|e| e.status_and_code().1).collect();
        assert_eq!(codes, ApiError::CODES.into_iter().collect::<BTreeSet<_>>());
        assert_eq!(codes.len(), ApiError::CODES.len());
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let error = ApiError::Internal("disk /secret/path is full".into());
        assert_eq!(error.to_string(), "internal error");
    }
}
