//! The ingest Lambda: the same axum `Router` as `imgpipe serve`, behind API Gateway, over S3
//! and DynamoDB.

use adapters::aws::{DynamoMetadataStore, Env, S3ObjectStore, WatchedPresets, sdk_config, vars};
use ingest::aws::{api_key, catalog, lambda_state, refreshing_presets};
use ingest::metrics::Exposition;
use lambda_http::{Error, tracing};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = sdk_config().await;
    let originals = S3ObjectStore::new(&config, Env.require(vars::ORIGINALS_BUCKET)?);
    let processed = S3ObjectStore::new(&config, Env.require(vars::PROCESSED_BUCKET)?);
    let metadata = DynamoMetadataStore::new(&config, Env.require(vars::METADATA_TABLE)?);
    let key = api_key(&config, &Env.require(vars::API_KEY_SECRET_ARN)?).await?;
    let presets = Arc::new(WatchedPresets::from_env(&config, catalog).await?);
    // This instance's own counters only: the pipeline's numbers are in CloudWatch (EMF from the
    // other functions), and counting records would read the whole status index.
    let metrics = Exposition { recorder: Some(ingest::metrics::install()), record_counts: false };
    let state = lambda_state(originals, processed, Arc::new(metadata), presets.live(), key, metrics);
    lambda_http::run(refreshing_presets(ingest::router(state), presets)).await
}
