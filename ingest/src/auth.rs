//! The API key check, layered on every route that [`crate::routes`] mounts as keyed.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

/// Passes the request on when no key is configured or it carries the key, else answers 401.
pub(crate) async fn require_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    match &state.config.api_key {
        Some(key) if !presents(request.headers(), key) => Err(ApiError::Unauthorized),
        _ => Ok(next.run(request).await),
    }
}

/// Whether `Authorization: Bearer KEY` or `x-api-key: KEY` carries `key`.
fn presents(headers: &HeaderMap, key: &str) -> bool {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    let header = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    // Constant time in the key's bytes; only the length can leak, as with any comparison.
    [bearer, header].into_iter().flatten().any(|given| bool::from(given.trim().as_bytes().ct_eq(key.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(name: &'static str, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn accepts_either_header_style_and_nothing_else() {
        assert!(presents(&headers("authorization", "Bearer s3cret"), "s3cret"));
        assert!(presents(&headers("x-api-key", "s3cret"), "s3cret"));
        assert!(!presents(&headers("authorization", "Bearer s3cre"), "s3cret"));
        assert!(!presents(&headers("authorization", "Basic s3cret"), "s3cret"));
        assert!(!presents(&headers("x-api-key", "s3cret2"), "s3cret"));
        assert!(!presents(&HeaderMap::new(), "s3cret"));
    }
}
