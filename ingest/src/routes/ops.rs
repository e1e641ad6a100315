//! Operations: health, metrics and the OpenAPI document.

use crate::error::ApiError;
use crate::state::AppState;
use crate::{metrics, openapi as document};
use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde_json::{Value, json};

/// `GET /healthz`: the process serves requests (it touches no backend, so a slow store does not
/// get healthy instances recycled).
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /v1/queue`: messages waiting, in flight, and dead letters (received too often), when
/// this process can see the queue (404 `no_route` otherwise).
#[tracing::instrument(skip_all)]
pub(crate) async fn queue(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let queue = state.queue.as_ref().ok_or(ApiError::NoRoute)?;
    let stats = queue.stats().await?;
    Ok(Json(json!({"visible": stats.visible, "in_flight": stats.in_flight, "dead_letters": stats.dead})))
}

/// `GET /metrics`: queue depth and records per status and failure kind where this process can
/// read them cheaply, and what it recorded (uploads; stage latencies where it runs the pipeline).
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

/// `GET /v1/openapi.json`: the API's description, built from the route table.
pub(crate) async fn openapi() -> Json<Value> {
    Json(document::document())
}
