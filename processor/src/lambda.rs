//! The processor Lambda's handler: one Map iteration's chunk in, per-image outcomes out.
//!
//! Images that cannot be processed (corrupt, unsupported, too large) are outcomes, not errors.
//! A chunk fails as a whole only when the infrastructure does; its error type tells the state
//! machine's `Retry` (which matches [`RETRYABLE_ERROR`]) whether to try again before `Catch`
//! marks its images FAILED.
//!
//! [`service`] builds the chunk service from a [`Config`] as the Lambda `main` does; the
//! emulated-stack tests call it too, so the two cannot drift apart.

use crate::RecipeError;
use crate::chunk::{ChunkConfig, ChunkService, Recipes};
use adapters::aws::presets::LoadedPresets;
use adapters::aws::{DynamoMetadataStore, Env, MissingVar, S3ObjectStore, vars};
use aws_config::SdkConfig;
use imgpipe_core::seams::{ChunkInput, ChunkOutput};
use imgpipe_core::{Limits, Live};
use lambda_runtime::Diagnostic;
use std::sync::Arc;

/// The error type of a chunk worth retrying (throttling, 5xx, timeouts): the ASL's Retry names it.
pub const RETRYABLE_ERROR: &str = "RetryableError";
/// The error type of a chunk that will fail again: the ASL's Catch takes it at once.
pub const PERMANENT_ERROR: &str = "PermanentError";

/// Processes one chunk.
pub async fn handle(service: &ChunkService, input: ChunkInput) -> Result<ChunkOutput, Diagnostic> {
    service.process(&input).await.map_err(|e| {
        tracing::error!(batch_id = %input.batch_id, retryable = e.is_retryable(), error = %e, "chunk failed");
        Diagnostic {
            error_type: if e.is_retryable() { RETRYABLE_ERROR } else { PERMANENT_ERROR }.into(),
            error_message: e.to_string(),
        }
    })
}

/// What the processor serves of loaded presets: a recipe per preset, logos decoded (a logo that
/// is not a readable PNG fails here, naming it).
pub fn recipes(presets: &LoadedPresets) -> Result<Recipes, RecipeError> {
    Recipes::new(&presets.catalog, |logo| presets.logo(logo))
}

/// Originals fetched (and renditions stored) at once per kernel thread: enough S3 requests in
/// flight to keep each thread fed while others wait on the network.
pub const IO_PER_THREAD: usize = 4;

/// What the processor Lambda is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where originals are read (`ORIGINALS_BUCKET`).
    pub originals_bucket: String,
    /// Where renditions are stored (`PROCESSED_BUCKET`).
    pub processed_bucket: String,
    /// The metadata records (`METADATA_TABLE`).
    pub metadata_table: String,
    /// Threads that run the kernel.
    pub threads: usize,
    /// Limits applied to every image.
    pub limits: Limits,
}

impl Config {
    /// The function's settings for these resources, with one kernel thread per vCPU Lambda
    /// shows (it gives one vCPU's worth of time per 1,769 MB, so the template's default of
    /// 3538 MB is two whole ones) and the default limits.
    pub fn new(originals_bucket: &str, processed_bucket: &str, metadata_table: &str) -> Config {
        Config {
            originals_bucket: originals_bucket.to_owned(),
            processed_bucket: processed_bucket.to_owned(),
            metadata_table: metadata_table.to_owned(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            limits: Limits::default(),
        }
    }

    /// From the environment the template sets, failing fast on a missing variable.
    pub fn from_env() -> Result<Config, MissingVar> {
        Ok(Config::new(
            &Env.require(vars::ORIGINALS_BUCKET)?,
            &Env.require(vars::PROCESSED_BUCKET)?,
            &Env.require(vars::METADATA_TABLE)?,
        ))
    }
}

/// The chunk service as the processor Lambda builds it: originals from S3, renditions to the
/// processed bucket, records in DynamoDB, the kernel on its own pool of `config.threads`, the
/// recipes `recipes` holds when each image starts.
pub fn service(
    sdk: &SdkConfig,
    config: &Config,
    recipes: impl Into<Live<Recipes>>,
) -> Result<ChunkService, rayon::ThreadPoolBuildError> {
    let threads = config.threads.max(1);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let service = ChunkService::new(
        Arc::new(S3ObjectStore::new(sdk, &config.originals_bucket)),
        Arc::new(DynamoMetadataStore::new(sdk, &config.metadata_table)),
        recipes,
        Arc::new(pool),
        ChunkConfig { io_concurrency: IO_PER_THREAD * threads, limits: config.limits.clone() },
    );
    Ok(service.with_rendition_store(Arc::new(S3ObjectStore::new(sdk, &config.processed_bucket))))
}
