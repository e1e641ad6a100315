//! The ingest Lambda: the same axum `Router` as `imgpipe serve`, behind API Gateway, over S3
//! and DynamoDB.

use adapters::aws::{DynamoMetadataStore, Env, S3ObjectStore, WatchedPresets, sdk_config, vars};
use ingest::aws::{S3UploadUrls, api_key, catalog, refreshing_presets};
use ingest::metrics::Exposition;
use ingest::{AppState, IngestConfig};
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
    let state = AppState {
        objects: Arc::new(originals.clone()),
        metadata: Arc::new(metadata),
        queue: None,
        urls: Arc::new(S3UploadUrls { originals: originals.clone(), processed }),
        presets: presets.live(),
        // This instance's own counters only: the pipeline's numbers are in CloudWatch (EMF from
        // the other functions), and counting records would read the whole status index.
        metrics: Exposition { recorder: Some(ingest::metrics::install()), record_counts: false },
        config: Arc::new(IngestConfig {
            api_key: Some(key),
            bucket: originals.bucket().to_owned(),
            ..IngestConfig::default()
        }),
    };
    lambda_http::run(refreshing_presets(ingest::router(state), presets)).await
}
