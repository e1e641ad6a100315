//! The upload API: one axum [`Router`](axum::Router) over the ports, served by `lambda_http` on
//! AWS and by `axum::serve` locally. It knows neither Lambda nor SQLite.
//!
//! - [`routes`]: [`router`] and [`document`], gathered from the same handlers (each carries its
//!   OpenAPI operation); handlers stay thin.
//! - [`state`]: [`AppState`] (the ports, presets, metrics) and [`IngestConfig`] (key, limits).
//! - [`metrics`]: the Prometheus recorder behind `GET /metrics` ([`metrics::install`]) and what it shows.
//! - [`signing`]: [`UploadUrls`], and [`LocalUploadUrls`], the HMAC-signed upload URLs of local mode.
//! - [`error`]: [`ApiError`], every refusal with its status and stable `code`, mapped in one place.
//! - [`openapi`]: what the OpenAPI document says beyond the operations: info, security schemes,
//!   which operations need the key.
//! - [`console`]: the web console at `/` (embedded files, strict CSP), on the same router.
//! - [`intake`]: the one write path of an upload (also used by `imgpipe process`).
//! - [`aws`] (feature `lambda`): S3 presigned URLs and the API key from Secrets Manager.
//! - internals: `auth` (the API key layer), `body` (reading under a byte limit).

#![warn(missing_docs)]

mod auth;
#[cfg(feature = "lambda")]
pub mod aws;
mod body;
pub mod console;
pub mod error;
pub mod intake;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod signing;
pub mod state;

pub use error::ApiError;
pub use routes::{document, router};
pub use signing::{LocalUploadUrls, UploadUrls};
pub use state::{AppState, IngestConfig};
