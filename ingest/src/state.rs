//! What every handler shares: the ports, the upload URL signer, the presets and the limits.

use crate::metrics::Exposition;
use crate::signing::UploadUrls;
use imgpipe_core::ports::{EventQueue, MetadataStore, ObjectStore};
use imgpipe_core::{InputFormat, Limits, Live, PresetCatalog};
use std::sync::Arc;
use std::time::Duration;

/// The API's settings. [`Default`] serves the local mode: no key, bucket `local`, 50 MiB uploads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestConfig {
    /// The key clients must present (`Authorization: Bearer KEY` or `x-api-key: KEY`); `None`
    /// leaves the API open, which only a loopback bind should allow.
    pub api_key: Option<String>,
    /// The originals bucket, as named in object refs and S3 event notifications.
    pub bucket: String,
    /// Largest accepted upload in bytes: one file, or one whole request body.
    pub max_upload_bytes: u64,
    /// Most files in one request (bulk presign or multipart).
    pub max_bulk_files: usize,
    /// How long a presigned upload URL (and its AWAITING_UPLOAD slot) stays valid.
    pub upload_url_ttl: Duration,
    /// The image formats this deployment takes (the processor's [`Limits::formats`]): a bulk
    /// upload may declare only their content types.
    pub formats: Vec<InputFormat>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            api_key: None,
            bucket: "local".into(),
            max_upload_bytes: 50 * 1024 * 1024,
            max_bulk_files: 1000,
            upload_url_ttl: Duration::from_secs(15 * 60),
            formats: Limits::DEFAULT_FORMATS.to_vec(),
        }
    }
}

/// The handlers' shared state; cheap to clone (everything is behind an `Arc`).
#[derive(Clone)]
pub struct AppState {
    /// Where originals are put and renditions read.
    pub objects: Arc<dyn ObjectStore>,
    /// One record per image.
    pub metadata: Arc<dyn MetadataStore>,
    /// The ingest queue, when this process can see it (queue gauges in `/metrics`).
    pub queue: Option<Arc<dyn EventQueue>>,
    /// Presigned upload and download URLs.
    pub urls: Arc<dyn UploadUrls>,
    /// The presets an upload may name (on AWS, replaced when the presets object changes).
    pub presets: Live<PresetCatalog>,
    /// What `/metrics` shows: this process's recorder, and whether to count records.
    pub metrics: Exposition,
    /// Keys, limits and names.
    pub config: Arc<IngestConfig>,
}

impl AppState {
    /// A state over these ports and settings, without queue gauges or a metrics recorder (add
    /// them with [`AppState::with_queue`] and [`AppState::with_metrics`]).
    pub fn new(
        objects: Arc<dyn ObjectStore>,
        metadata: Arc<dyn MetadataStore>,
        urls: Arc<dyn UploadUrls>,
        presets: impl Into<Live<PresetCatalog>>,
        config: IngestConfig,
    ) -> Self {
        Self {
            objects,
            metadata,
            queue: None,
            urls,
            presets: presets.into(),
            metrics: Exposition::default(),
            config: Arc::new(config),
        }
    }

    /// The same state, showing `queue`'s gauges in `/metrics` (a process that can see its queue).
    pub fn with_queue(mut self, queue: Arc<dyn EventQueue>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// The same state, with `metrics` as what `/metrics` shows.
    pub fn with_metrics(mut self, metrics: Exposition) -> Self {
        self.metrics = metrics;
        self
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The ports are trait objects without `Debug`; the config is what tells states apart.
        // The API key stays out of logs.
        f.debug_struct("AppState")
            .field("bucket", &self.config.bucket)
            .field("max_upload_bytes", &self.config.max_upload_bytes)
            .field("api_key", &self.config.api_key.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}
