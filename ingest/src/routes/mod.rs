//! The router and the OpenAPI document, both gathered from the same handlers: each handler
//! carries its operation (`#[utoipa::path]`), and [`OpenApiRouter`] mounts the handler where
//! its operation says, so the two cannot drift apart.

mod images;
mod ops;
mod presets;
pub(crate) mod uploads;

use crate::error::ApiError;
use crate::openapi::{self, Access};
use crate::state::AppState;
use crate::{auth, console};
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderValue;
use axum::http::header::X_CONTENT_TYPE_OPTIONS;
use axum::response::Response;
use axum::{Extension, Router, middleware};
use std::sync::Arc;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes that require the API key (when one is configured).
fn keyed() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // Handlers sharing a path (GET and POST /v1/images) go in one `routes!`.
        .routes(routes!(images::upload, images::list))
        .routes(routes!(images::get))
        .routes(routes!(images::rendition))
        .routes(routes!(presets::list))
        .routes(routes!(uploads::presign))
        .routes(routes!(ops::queue))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi))
}

/// The open routes: health checks, and signed uploads (the signature is the credential).
fn open() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(uploads::put)).routes(routes!(ops::healthz))
}

/// The OpenAPI document of every route [`router`] serves.
pub fn document() -> OpenApi {
    openapi::document([(Access::Key, keyed().into_openapi()), (Access::Open, open().into_openapi())])
}

/// The v1 API over `state`'s ports, JSON errors for unknown paths and methods, its own
/// description at `GET /v1/openapi.json`, and the web console at `/`. It knows neither Lambda
/// nor SQLite: `lambda_http` or `axum::serve` runs it.
pub fn router(state: AppState) -> Router {
    let (keyed, keyed_doc) = keyed().split_for_parts();
    let (open, open_doc) = open().split_for_parts();
    let document = openapi::document([(Access::Key, keyed_doc), (Access::Open, open_doc)]);
    keyed
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_key))
        .merge(open)
        .merge(console::router())
        .fallback(|| async { ApiError::NoRoute })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(Extension(Arc::new(document)))
        // Bodies are streamed under the configured limits by the handlers themselves.
        .layer(DefaultBodyLimit::disable())
        // Browsers take every answer, renditions included, as the type it declares.
        .layer(middleware::map_response(|mut response: Response| async {
            response.headers_mut().insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            response
        }))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::path::ParameterIn;

    #[test]
    fn every_operation_declares_the_parameters_of_its_path() {
        let document = document();
        assert!(!document.paths.paths.is_empty());
        for (path, item) in &document.paths.paths {
            let operations = [&item.get, &item.put, &item.post].into_iter().flatten();
            for operation in operations {
                let declared: Vec<_> = operation
                    .parameters
                    .iter()
                    .flatten()
                    .filter_map(|p| match p {
                        utoipa::openapi::RefOr::T(p) if p.parameter_in == ParameterIn::Path => Some(p.name.as_str()),
                        _ => None,
                    })
                    .collect();
                let in_path: Vec<_> =
                    path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect();
                assert_eq!(declared, in_path, "{path}");
                assert!(operation.security.is_some(), "{path}: who may call it is not said");
            }
        }
    }
}
