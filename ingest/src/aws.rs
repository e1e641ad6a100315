//! The ingest Lambda's pieces (feature `lambda`): S3 presigned URLs, the API key from
//! Secrets Manager, and the presets check before each request.

use crate::signing::{UploadUrls, UrlError};
use adapters::aws::S3ObjectStore;
use adapters::aws::presets::{LoadedPresets, WatchedPresets};
use adapters::aws::s3::IF_NONE_MATCH;
use async_trait::async_trait;
use aws_config::SdkConfig;
use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use imgpipe_core::PresetCatalog;
use imgpipe_core::seams::ImageId;
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
    UrlError { message: error.message.clone(), source: Some(Box::new(error)) }
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

/// The API's state as the ingest Lambda builds it: originals and renditions in S3 (presigned
/// URLs both ways), records in DynamoDB, no queue gauges and no record counts (see
/// [`crate::metrics::Exposition`]). The Lambda `main` and the emulated-stack tests share it.
pub fn lambda_state(
    originals: S3ObjectStore,
    processed: S3ObjectStore,
    metadata: Arc<dyn imgpipe_core::ports::MetadataStore>,
    presets: imgpipe_core::Live<PresetCatalog>,
    api_key: String,
    metrics: crate::metrics::Exposition,
) -> crate::AppState {
    crate::AppState {
        objects: Arc::new(originals.clone()),
        metadata,
        queue: None,
        config: Arc::new(crate::IngestConfig {
            api_key: Some(api_key),
            bucket: originals.bucket().to_owned(),
            ..crate::IngestConfig::default()
        }),
        urls: Arc::new(S3UploadUrls { originals, processed }),
        presets,
        metrics,
    }
}
