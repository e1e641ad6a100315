//! The AWS backends: S3 objects, an SQS queue, Step Functions Express workflows and DynamoDB
//! records, through the official SDK; and the presets file read from S3 ([`presets`]).
//!
//! Configuration comes from the environment only ([`Env`]), and fails fast naming the missing
//! variable. `AWS_ENDPOINT_URL` points every client at an emulator (moto in the tests).

pub mod dynamo;
pub mod emf;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod presets;
pub mod s3;
pub mod sfn;
pub mod sqs;

pub use dynamo::DynamoMetadataStore;
pub use emf::EmfMetrics;
pub use presets::WatchedPresets;
pub use s3::S3ObjectStore;
pub use sfn::SfnWorkflows;
pub use sqs::SqsQueue;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use imgpipe_core::ports::BackendError;

/// The environment variables the functions read.
pub mod vars {
    /// Bucket of uploaded originals.
    pub const ORIGINALS_BUCKET: &str = "ORIGINALS_BUCKET";
    /// Bucket of renditions.
    pub const PROCESSED_BUCKET: &str = "PROCESSED_BUCKET";
    /// The DynamoDB table of metadata records.
    pub const METADATA_TABLE: &str = "METADATA_TABLE";
    /// The Express state machine the orchestrator starts.
    pub const STATE_MACHINE_ARN: &str = "STATE_MACHINE_ARN";
    /// The ingest queue S3 notifies: the sweeper sends stuck records' events back into it.
    pub const INGEST_QUEUE_URL: &str = "INGEST_QUEUE_URL";
    /// The Secrets Manager secret holding the API key (ingest).
    pub const API_KEY_SECRET_ARN: &str = "API_KEY_SECRET_ARN";
    /// The private bucket of configuration objects (the presets file and its logos).
    pub const CONFIG_BUCKET: &str = "CONFIG_BUCKET";
    /// The presets TOML: a key in [`CONFIG_BUCKET`] or an `s3://bucket/key` URL; empty or unset
    /// serves the built-in presets only (ingest and processor).
    pub const PRESETS_KEY: &str = "PRESETS_KEY";
    /// Seconds between two checks of the presets object for changes on a warm function.
    pub const PRESETS_REFRESH_SECONDS: &str = "PRESETS_REFRESH_SECONDS";
}

/// A required setting is missing.
#[derive(Debug, thiserror::Error)]
#[error(
    "environment variable {0} is not set: the stack template sets it on every function; set it by hand to run outside Lambda"
)]
pub struct MissingVar(pub &'static str);

/// Reads the process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Env;

impl Env {
    /// The value of `name`, or an error naming it.
    pub fn require(self, name: &'static str) -> Result<String, MissingVar> {
        std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or(MissingVar(name))
    }
}

/// The SDK configuration from the environment (region, credentials, `AWS_ENDPOINT_URL`).
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// Error codes that mean "slow down and try again" on every AWS service.
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "SlowDown",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "TransactionInProgressException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
];

/// Whether a failed SDK call may succeed if tried again: throttling, 5xx, timeouts and
/// connection failures are; client errors (4xx: bad input, missing permissions) are not.
/// The one place this is decided, for every service.
pub fn is_retryable<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(service) => {
            let throttled = service.err().code().is_some_and(|code| THROTTLING.contains(&code));
            let status = service.raw().status().as_u16();
            throttled || status >= 500 || status == 429
        }
        _ => false,
    }
}

/// A [`BackendError`] for a failed SDK call, retryable as [`is_retryable`] decides.
pub fn backend_error<E>(what: impl Into<String>, error: SdkError<E, HttpResponse>) -> BackendError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let what = what.into();
    let detail = match &error {
        SdkError::ServiceError(service) => {
            format!("{}: {}", service.err().code().unwrap_or("error"), service.err().message().unwrap_or(""))
        }
        other => other.to_string(),
    };
    let message = format!("{what}: {detail}");
    if is_retryable(&error) { BackendError::retryable(message, error) } else { BackendError::permanent(message, error) }
}
