//! The model's parameters: every limit and delay of the stack, each a flag with its source.

use super::error::SimulateError;
use imgpipe_core::policy::{
    CHUNK_SIZE, MAP_MAX_CONCURRENCY, MAX_CHUNKS_PER_WORKFLOW, MAX_REDRIVES, REDRIVE_DELAY, RETRY,
};
use serde::{Deserialize, Serialize};

/// How a client sends its images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum UploadPath {
    /// `POST /v1/images`: every image is an API request and an ingest invocation.
    Direct,
    /// `POST /v1/uploads` for a batch of signed URLs, then a `PUT` of each file straight to S3.
    Presigned,
}

/// The stack's parameters: every limit and delay of the model, each a flag of
/// `loadtest simulate` with its source. Defaults are the deployed stack's as issue 12 states
/// them; where the template's default differs, the field says so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
pub struct StackConfig {
    /// How clients upload.
    #[arg(long = "upload", value_enum, default_value_t = UploadPath::Presigned)]
    pub upload_path: UploadPath,
    /// API Gateway account-level throttle per Region, requests/s (AWS default quota).
    #[arg(long, default_value_t = 10_000.0)]
    pub api_account_rps: f64,
    /// API Gateway account-level burst, requests (AWS default quota).
    #[arg(long, default_value_t = 5_000.0)]
    pub api_account_burst: f64,
    /// Stage throttle, requests/s: the template's ApiThrottlingRateLimit (default 6,000).
    #[arg(long, default_value_t = 6_000.0)]
    pub api_rps: f64,
    /// Stage burst, requests: the template's ApiThrottlingBurstLimit (default 5,000).
    #[arg(long, default_value_t = 5_000.0)]
    pub api_burst: f64,
    /// Seconds of one direct upload of a 3 MB image through API Gateway and the ingest Lambda
    /// (the ingest invocation lasts that long).
    #[arg(long, default_value_t = 0.12)]
    pub direct_upload_s: f64,
    /// Files per presign request (`loadtest run --presign-batch`).
    #[arg(long, default_value_t = 100)]
    pub presign_batch: u32,
    /// Seconds of one presign invocation (the client keeps presigning ahead of its PUTs, so it
    /// adds to the ingest Lambda's concurrency, not to an image's latency).
    #[arg(long, default_value_t = 0.1)]
    pub presign_s: f64,
    /// Seconds of one client PUT of a 3 MB image to a signed URL.
    #[arg(long, default_value_t = 0.12)]
    pub put_s: f64,
    /// Seconds from an original stored to its S3 event in SQS (constant in the model).
    #[arg(long, default_value_t = 1.0)]
    pub delivery_s: f64,
    /// Messages per orchestrator invocation: OrchestratorBatchSize.
    #[arg(long, default_value_t = 500)]
    pub batch_size: u32,
    /// Batching window, seconds: OrchestratorBatchWindowSeconds.
    #[arg(long, default_value_t = 5.0)]
    pub batch_window_s: f64,
    /// Orchestrator invocations at once: OrchestratorMaxConcurrency as deployed for a burst (the
    /// template's default is 5).
    #[arg(long, default_value_t = 20)]
    pub orchestrator_concurrency: u32,
    /// Seconds of one orchestrator invocation (a batch: lookups, grouping, StartExecution calls).
    #[arg(long, default_value_t = 0.3)]
    pub orchestrator_s: f64,
    /// Images per chunk (one processor invocation): `policy::CHUNK_SIZE`.
    #[arg(long, default_value_t = CHUNK_SIZE as u32)]
    pub chunk_size: u32,
    /// Chunks per workflow: `policy::MAX_CHUNKS_PER_WORKFLOW`.
    #[arg(long, default_value_t = MAX_CHUNKS_PER_WORKFLOW as u32)]
    pub chunks_per_workflow: u32,
    /// Chunks of one workflow at once, the Map's MaxConcurrency: `policy::MAP_MAX_CONCURRENCY`.
    #[arg(long, default_value_t = MAP_MAX_CONCURRENCY as u32)]
    pub map_concurrency: u32,
    /// Step Functions Express StartExecution token bucket, executions/s (and its bucket size).
    #[arg(long, default_value_t = 6_000.0)]
    pub start_execution_per_s: f64,
    /// An Express execution is stopped after this many seconds (AWS limit).
    #[arg(long, default_value_t = 300.0)]
    pub express_cap_s: f64,
    /// Seconds to fetch a chunk's originals (parallel S3 GETs of 3 MB).
    #[arg(long, default_value_t = 0.06)]
    pub fetch_s: f64,
    /// Processor CPU milliseconds per image on one vCPU (the `default` preset on a 6 MP JPEG,
    /// measured under the Lambda harness: `cost::MEASURED_PROCESSOR_CPU_MS_PER_IMAGE`).
    #[arg(long, default_value_t = crate::cost::MEASURED_PROCESSOR_CPU_MS_PER_IMAGE)]
    pub kernel_ms: f64,
    /// Processor memory, MB; vCPUs = memory / 1769 (Lambda), used by rayon in parallel.
    #[arg(long, default_value_t = 3538)]
    pub processor_memory_mb: u32,
    /// Seconds to store a chunk's renditions (S3 PUTs) and records (DynamoDB) when not throttled.
    #[arg(long, default_value_t = 0.04)]
    pub store_s: f64,
    /// Lambda concurrent executions of the account, shared by every function (AWS default).
    #[arg(long, default_value_t = 1_000)]
    pub lambda_concurrency: u32,
    /// Concurrent executions a function may add per scaling period (the 2023 scaling model).
    #[arg(long, default_value_t = 1_000)]
    pub lambda_scale_step: u32,
    /// Lambda's scaling period, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub lambda_scale_period_s: f64,
    /// Retries of a throttled chunk in the state machine (`policy::RETRY`: up to 2/4/8 s apart,
    /// FULL jitter as in the state machine).
    #[arg(long, default_value_t = RETRY.max_attempts)]
    pub retries: u32,
    /// Re-drives of a chunk still throttled after its retries, then FAILED: `policy::MAX_REDRIVES`.
    #[arg(long, default_value_t = MAX_REDRIVES)]
    pub max_redrives: u32,
    /// Seconds a re-driven chunk waits in the queue: `policy::REDRIVE_DELAY`.
    #[arg(long, default_value_t = REDRIVE_DELAY.as_secs_f64())]
    pub redrive_delay_s: f64,
    /// The by-status index's ceiling, images/s: 32 write shards × 1,000 WCU/s per partition / 2
    /// units per image on a non-final status key.
    #[arg(long, default_value_t = 16_000.0)]
    pub ddb_index_images_per_s: f64,
    /// Write units per image on the busier of the table (3) and its by-status index (5), as
    /// `adapters/tests/aws_write_units.rs` measures them; each has its own warm throughput and
    /// quota, so the index binds first.
    #[arg(long, default_value_t = 5.0)]
    pub ddb_units_per_image: f64,
    /// Write units/s the on-demand table serves at the start: 4,000 for a new table (twice its
    /// 2,000 "previous peak"); set it to what the table was pre-warmed to.
    #[arg(long, default_value_t = 4_000.0)]
    pub ddb_start_wcu: f64,
    /// On-demand can serve twice its previous peak after this many seconds (30 minutes).
    #[arg(long, default_value_t = 1_800.0)]
    pub ddb_growth_period_s: f64,
    /// Per-table on-demand write quota, WCU/s (AWS default, adjustable).
    #[arg(long, default_value_t = 40_000.0)]
    pub ddb_table_max_wcu: f64,
    /// PUTs/s per S3 partitioned prefix (AWS guidance).
    #[arg(long, default_value_t = 3_500.0)]
    pub s3_put_per_partition: f64,
    /// S3 partitions per bucket at the start of the burst. Assumption: a bucket not yet split.
    #[arg(long, default_value_t = 1)]
    pub s3_start_partitions: u32,
    /// Seconds for S3 to double a busy bucket's partitions. Assumption: AWS publishes no rate.
    #[arg(long, default_value_t = 300.0)]
    pub s3_split_period_s: f64,
    /// Most partitions: the spread prefixes (4 hex digits of the id's hash, `ImageId::spread_prefix`).
    #[arg(long, default_value_t = 65_536)]
    pub s3_max_partitions: u32,
    /// Renditions per image (the `default` preset: thumb, medium, large).
    #[arg(long, default_value_t = 3)]
    pub renditions: u32,
    /// The model's time step, seconds.
    #[arg(long, default_value_t = 0.1)]
    pub step_s: f64,
    /// Seconds between the time series' samples.
    #[arg(long, default_value_t = 1.0)]
    pub sample_s: f64,
}

/// Parses no arguments, to take [`StackConfig`]'s defaults from its flags (one source).
#[derive(clap::Parser)]
struct Defaults {
    #[command(flatten)]
    stack: StackConfig,
}

impl Default for StackConfig {
    fn default() -> Self {
        <Defaults as clap::Parser>::parse_from(["simulate"]).stack
    }
}

impl StackConfig {
    /// The processor's vCPUs (Lambda allots one per 1,769 MB).
    pub fn vcpus(&self) -> f64 {
        f64::from(self.processor_memory_mb) / 1769.0
    }

    /// Seconds of one processor invocation over `images` images, not throttled.
    pub fn chunk_s(&self, images: u32) -> f64 {
        self.fetch_s + f64::from(images) * self.kernel_ms / 1000.0 / self.vcpus() + self.store_s
    }

    /// What is wrong with the parameters, if anything (rates and sizes must be positive).
    pub fn validate(&self) -> Result<(), SimulateError> {
        let positive = [
            ("api-account-rps", self.api_account_rps),
            ("api-rps", self.api_rps),
            ("start-execution-per-s", self.start_execution_per_s),
            ("processor-memory-mb", f64::from(self.processor_memory_mb)),
            ("ddb-index-images-per-s", self.ddb_index_images_per_s),
            ("ddb-start-wcu", self.ddb_start_wcu),
            ("s3-put-per-partition", self.s3_put_per_partition),
            ("s3-start-partitions", f64::from(self.s3_start_partitions)),
            ("batch-size", f64::from(self.batch_size)),
            ("chunk-size", f64::from(self.chunk_size)),
            ("chunks-per-workflow", f64::from(self.chunks_per_workflow)),
            ("map-concurrency", f64::from(self.map_concurrency)),
            ("orchestrator-concurrency", f64::from(self.orchestrator_concurrency)),
            ("step-s", self.step_s),
            ("sample-s", self.sample_s),
        ];
        match positive.iter().find(|(_, v)| !(*v > 0.0 && v.is_finite())) {
            Some((name, v)) => Err(SimulateError::Parameter(format!("--{name} must be positive, not {v}"))),
            None => Ok(()),
        }
    }
}
