//! Operations: health, queue depth, metrics and the OpenAPI document.

use crate::error::{ApiError, ErrorBody};
use crate::metrics;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa::openapi::OpenApi;

/// The body of `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    #[schema(inline)]
    status: Serving,
}

/// What a live process says of itself.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Serving {
    /// It answers.
    Ok,
}

/// `GET /healthz`: the process serves requests (it touches no backend, so a slow store does not
/// get healthy instances recycled).
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    summary = "Liveness",
    responses((status = 200, description = "Serving", body = inline(Health))),
)]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health { status: Serving::Ok })
}

/// The body of `GET /v1/queue`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QueueDepth {
    /// Messages waiting.
    visible: u64,
    /// Messages received and not yet deleted.
    in_flight: u64,
    /// Messages moved to the dead-letter queue.
    dead_letters: u64,
}

/// `GET /v1/queue`: messages waiting, in flight, and dead letters (received too often), when
/// this process can see the queue (404 `no_route` otherwise).
#[utoipa::path(
    get,
    path = "/v1/queue",
    operation_id = "queue",
    summary = "Queue depth: messages waiting, in flight, and moved to the dead-letter queue",
    responses(
        (status = 200, description = "Counts", body = inline(QueueDepth)),
        (status = 404, description = "`no_route`: this process does not see the queue.", body = ErrorBody),
    ),
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn queue(State(state): State<AppState>) -> Result<Json<QueueDepth>, ApiError> {
    let queue = state.queue.as_ref().ok_or(ApiError::NoRoute)?;
    let stats = queue.stats().await?;
    Ok(Json(QueueDepth { visible: stats.visible, in_flight: stats.in_flight, dead_letters: stats.dead }))
}

/// `GET /metrics`: queue depth and records per status and failure kind where this process can
/// read them cheaply, and what it recorded (uploads; stage latencies where it runs the pipeline).
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    summary = "Prometheus metrics: queue depth, images per status, failures per kind, stage latencies",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")),
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let queue = match &state.queue {
        Some(queue) => Some(queue.stats().await?),
        None => None,
    };
    let counts = match state.metrics.record_counts {
        true => Some(state.metadata.counts().await?),
        false => None,
    };
    let text = metrics::render(queue, counts.as_ref(), state.metrics.recorder.as_ref());
    Ok(([(CONTENT_TYPE, metrics::CONTENT_TYPE)], text))
}

/// `GET /v1/openapi.json`: the API's description, gathered by the router from the routes it
/// mounts and handed to this handler as an extension (built once, at startup).
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    operation_id = "openapi",
    summary = "This document",
    responses((status = 200, description = "OpenAPI 3.1", body = Object)),
)]
pub(crate) async fn openapi(Extension(document): Extension<Arc<OpenApi>>) -> Json<OpenApi> {
    Json(OpenApi::clone(&document))
}
