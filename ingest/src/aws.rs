//! The ingest Lambda's pieces (feature `lambda`): its [`Config`], the [`state`] its `main` and
//! the emulated-stack tests build alike, S3 presigned URLs, the API key from Secrets Manager,
//! and the presets check before each request.

use crate::metrics::Exposition;
use crate::signing::{UploadUrls, UrlError};
use crate::{AppState, IngestConfig};
use adapters::aws::presets::{LoadedPresets, WatchedPresets};
use adapters::aws::s3::IF_NONE_MATCH;
use adapters::aws::{DynamoMetadataStore, Env, MissingVar, S3ObjectStore, vars};
use async_trait::async_trait;
use aws_config::SdkConfig;
use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use imgpipe_core::seams::ImageId;
use imgpipe_core::{Live, PresetCatalog};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// How long a rendition download link lives.
pub const DOWNLOAD_TTL: Duration = Duration::from_secs(5 * 60);

/// Uploads go straight to the originals bucket and downloads come straight from the processed
/// one, through S3 presigned URLs: the bytes never pass through the function.
#[derive(Debug, Clone)]
pub struct S3UploadUrls {
    /// Where uploads land.
    pub originals: S3ObjectStore,
    /// Where renditions are.
    pub processed: S3ObjectStore,
}

fn url_error(error: imgpipe_core::ports::BackendError) -> UrlError {
    UrlError { message: error.to_string(), source: Some(Box::new(error)) }
}

#[async_trait]
impl UploadUrls for S3UploadUrls {
    /// The content type and length are signed into the URL: S3 refuses any other. So is
    /// `If-None-Match: *`: S3 refuses a second PUT to the key (412), so the original the record
    /// and renditions describe is never replaced.
    async fn presign_put(
        &self,
        _id: ImageId,
        key: &str,
        size: u64,
        content_type: &str,
        ttl: Duration,
    ) -> Result<String, UrlError> {
        self.originals.presign_put(key, content_type, size, ttl).await.map_err(url_error)
    }

    fn put_headers(&self) -> &'static [(&'static str, &'static str)] {
        &[(IF_NONE_MATCH, "*")]
    }

    async fn download(&self, key: &str) -> Result<Option<String>, UrlError> {
        self.processed.presign_get(key, DOWNLOAD_TTL).await.map(Some).map_err(url_error)
    }
}

/// The API key: the secret string of `secret_arn` (read once, at cold start).
pub async fn api_key(config: &SdkConfig, secret_arn: &str) -> Result<String, UrlError> {
    let client = aws_sdk_secretsmanager::Client::new(config);
    let output = client.get_secret_value().secret_id(secret_arn).send().await.map_err(|e| UrlError {
        message: format!("reading the API key from {secret_arn}: {e}"),
        source: Some(Box::new(e)),
    })?;
    output
        .secret_string()
        .map(|key| key.trim().to_owned())
        .filter(|key| !key.is_empty())
        .ok_or_else(|| UrlError { message: format!("secret {secret_arn} holds no key string"), source: None })
}

/// What the ingest serves of loaded presets: their catalog (uploads may name any of them).
pub fn catalog(presets: &LoadedPresets) -> Result<PresetCatalog, Infallible> {
    Ok(presets.catalog.clone())
}

/// `router` with a presets check before every request, so a warm function serves a changed
/// presets object within the refresh interval (see [`WatchedPresets::refresh`]).
pub fn refreshing_presets(router: Router, presets: Arc<WatchedPresets<PresetCatalog>>) -> Router {
    router.layer(middleware::from_fn(move |request: Request, next: Next| {
        let presets = presets.clone();
        async move {
            presets.refresh().await;
            next.run(request).await
        }
    }))
}

/// What the ingest Lambda is configured with: its buckets, its table and its API key.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// Where uploads land (`ORIGINALS_BUCKET`).
    pub originals_bucket: String,
    /// Where renditions are (`PROCESSED_BUCKET`).
    pub processed_bucket: String,
    /// The metadata records (`METADATA_TABLE`).
    pub metadata_table: String,
    /// The key clients must present (the secret `API_KEY_SECRET_ARN` names).
    pub api_key: String,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The API key stays out of logs.
        f.debug_struct("Config")
            .field("originals_bucket", &self.originals_bucket)
            .field("processed_bucket", &self.processed_bucket)
            .field("metadata_table", &self.metadata_table)
            .finish_non_exhaustive()
    }
}

/// The ingest Lambda's configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required environment variable is missing.
    #[error(transparent)]
    Missing(#[from] MissingVar),
    /// The API key could not be read from its secret.
    #[error("the API key: {0}")]
    ApiKey(#[source] UrlError),
}

impl Config {
    /// From the environment the template sets, failing fast on a missing variable; the API key
    /// is read from Secrets Manager (once, at cold start).
    pub async fn from_env(sdk: &SdkConfig) -> Result<Config, ConfigError> {
        let secret_arn = Env.require(vars::API_KEY_SECRET_ARN)?;
        Ok(Config {
            originals_bucket: Env.require(vars::ORIGINALS_BUCKET)?,
            processed_bucket: Env.require(vars::PROCESSED_BUCKET)?,
            metadata_table: Env.require(vars::METADATA_TABLE)?,
            api_key: api_key(sdk, &secret_arn).await.map_err(ConfigError::ApiKey)?,
        })
    }
}

/// The API's state as the ingest Lambda builds it: originals and renditions in S3 (presigned
/// URLs both ways), records in DynamoDB, this instance's own counters in `/metrics` and no
/// queue gauges or record counts (see [`crate::metrics::Exposition`]). The Lambda `main` and
/// the emulated-stack tests share it.
pub fn state(sdk: &SdkConfig, config: &Config, presets: Live<PresetCatalog>) -> AppState {
    let originals = S3ObjectStore::new(sdk, &config.originals_bucket);
    let processed = S3ObjectStore::new(sdk, &config.processed_bucket);
    let metadata = DynamoMetadataStore::new(sdk, &config.metadata_table);
    let ingest = IngestConfig {
        api_key: Some(config.api_key.clone()),
        bucket: config.originals_bucket.clone(),
        ..IngestConfig::default()
    };
    let urls = S3UploadUrls { originals: originals.clone(), processed };
    // The pipeline's numbers are in CloudWatch (EMF from the other functions), and counting
    // records would read the whole status index.
    let metrics = Exposition { recorder: Some(crate::metrics::install()), record_counts: false };
    AppState::new(Arc::new(originals), Arc::new(metadata), Arc::new(urls), presets, ingest).with_metrics(metrics)
}
