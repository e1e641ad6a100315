//! The route table: one list that both the router and the OpenAPI document are built from, so
//! the two cannot drift apart.

mod images;
mod ops;
mod uploads;

use crate::auth;
use crate::error::ApiError;
use crate::openapi;
use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{MethodFilter, MethodRouter, on};
use serde_json::Value;

/// An HTTP method the API serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
}

impl Verb {
    /// The lowercase name, as OpenAPI keys operations.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
            Verb::Put => "put",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Put => MethodFilter::PUT,
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Requires the API key when one is configured.
    Key,
    /// Open: health checks, and signed uploads (the signature is the credential).
    Open,
}

/// One route: method, path (axum and OpenAPI share the `{param}` syntax), access, handler and
/// its OpenAPI operation.
pub struct Route {
    /// The method.
    pub verb: Verb,
    /// The path template.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    mount: fn(MethodFilter) -> MethodRouter<AppState>,
    operation: fn() -> Value,
}

impl Route {
    /// The OpenAPI operation object describing this route.
    pub fn operation(&self) -> Value {
        (self.operation)()
    }
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("verb", &self.verb)
            .field("path", &self.path)
            .field("access", &self.access)
            .finish()
    }
}

/// Every route the API serves.
pub const ROUTES: &[Route] = &[
    Route {
        verb: Verb::Post,
        path: "/v1/images",
        access: Access::Key,
        mount: |m| on(m, images::upload),
        operation: openapi::upload_images,
    },
    Route {
        verb: Verb::Get,
        path: "/v1/images",
        access: Access::Key,
        mount: |m| on(m, images::list),
        operation: openapi::list_images,
    },
    Route {
        verb: Verb::Get,
        path: "/v1/images/{id}",
        access: Access::Key,
        mount: |m| on(m, images::get),
        operation: openapi::get_image,
    },
    Route {
        verb: Verb::Get,
        path: "/v1/images/{id}/renditions/{name}",
        access: Access::Key,
        mount: |m| on(m, images::rendition),
        operation: openapi::get_rendition,
    },
    Route {
        verb: Verb::Post,
        path: "/v1/uploads",
        access: Access::Key,
        mount: |m| on(m, uploads::presign),
        operation: openapi::presign_uploads,
    },
    Route {
        verb: Verb::Put,
        path: "/v1/uploads/{id}",
        access: Access::Open,
        mount: |m| on(m, uploads::put),
        operation: openapi::put_upload,
    },
    Route {
        verb: Verb::Get,
        path: "/healthz",
        access: Access::Open,
        mount: |m| on(m, ops::healthz),
        operation: openapi::healthz,
    },
    Route {
        verb: Verb::Get,
        path: "/v1/queue",
        access: Access::Key,
        mount: |m| on(m, ops::queue),
        operation: openapi::queue,
    },
    Route {
        verb: Verb::Get,
        path: "/metrics",
        access: Access::Key,
        mount: |m| on(m, ops::metrics),
        operation: openapi::metrics,
    },
    Route {
        verb: Verb::Get,
        path: "/v1/openapi.json",
        access: Access::Key,
        mount: |m| on(m, ops::openapi),
        operation: openapi::openapi,
    },
];

/// The v1 API over `state`'s ports: every route of [`ROUTES`], JSON errors for unknown paths
/// and methods. It knows neither Lambda nor SQLite: `lambda_http` or `axum::serve` runs it.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for route in ROUTES {
        let mut method_router = (route.mount)(route.verb.filter());
        if route.access == Access::Key {
            method_router = method_router.route_layer(middleware::from_fn_with_state(state.clone(), auth::require_key));
        }
        // Routes sharing a path (GET and POST /v1/images) merge into one method router.
        router = router.route(route.path, method_router);
    }
    router
        .fallback(|| async { ApiError::NoRoute })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // Bodies are streamed under the configured limits by the handlers themselves.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}
