//! The ingest Lambda: the same axum `Router` as `imgpipe serve`, behind API Gateway, over S3
//! and DynamoDB.

use adapters::aws::{WatchedPresets, sdk_config};
use ingest::aws::{Config, catalog, refreshing_presets, state};
use lambda_http::{Error, tracing};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let sdk = sdk_config().await;
    let config = Config::from_env(&sdk).await?;
    let presets = Arc::new(WatchedPresets::from_env(&sdk, catalog).await?);
    let state = state(&sdk, &config, presets.live());
    lambda_http::run(refreshing_presets(ingest::router(state), presets)).await
}
