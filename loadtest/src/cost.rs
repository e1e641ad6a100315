//! What a million images would cost on the AWS stack (`infra/template.yaml`), per service, from
//! what a run measured (kernel and I/O time per image, sizes, record size, upload mode) and from
//! documented, overridable unit prices and assumptions.
//!
//! The model counts, per image: API Gateway requests and ingest Lambda invocations (uploads,
//! presign batches, status reads, rendition downloads), the orchestrator's share of an
//! invocation, the processor's share of a chunk (kernel time on the vCPUs the memory buys *and*
//! the time it waits on S3 and DynamoDB), a share of a Step Functions Express execution, the SQS
//! requests of one S3 event, the S3 requests and storage of the original and its renditions,
//! the DynamoDB writes of the record's life on the table and on the by-status index
//! ([`dynamodb_write_units`]) and its reads, the CloudWatch Logs the functions, Lambda and the API
//! write, X-Ray's sampled traces, and, as options (zero by default), clients' rendition
//! downloads and their data transfer out. Prices are the first usage tier, on demand, without
//! free tiers. [`CostEstimate::for_upload`] prices the same images as all-direct or
//! all-presigned uploads; [`CostEstimate::by_service`] sums the lines per service.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Unit prices in USD, us-east-1, as the AWS pricing pages list them (checked 2025). Every field
/// may be overridden from a TOML or JSON file (`--prices`); missing fields keep these values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Prices {
    /// "AWS Lambda Pricing", duration, Arm (Graviton) price, first 7.5 billion GB-seconds a
    /// month: USD per GB-second.
    pub lambda_arm_gb_second: f64,
    /// "AWS Lambda Pricing", requests: USD per million.
    pub lambda_million_requests: f64,
    /// "AWS Step Functions Pricing", Express Workflows, requests: USD per million.
    pub sfn_express_million_requests: f64,
    /// "AWS Step Functions Pricing", Express Workflows, duration (billed in 64 MB chunks and
    /// 100 ms increments), first 1,000 GB-hours: USD per GB-hour.
    pub sfn_express_gb_hour: f64,
    /// "Amazon SQS Pricing", standard queue requests (each 64 KB chunk of a payload is one),
    /// past the free million: USD per million.
    pub sqs_million_requests: f64,
    /// "Amazon S3 Pricing", S3 Standard, PUT, COPY, POST and LIST requests: USD per 1,000.
    pub s3_thousand_puts: f64,
    /// "Amazon S3 Pricing", S3 Standard, GET, SELECT and all other requests: USD per 1,000.
    pub s3_thousand_gets: f64,
    /// "Amazon S3 Pricing", S3 Standard storage, first 50 TB: USD per GB-month.
    pub s3_gb_month: f64,
    /// "Amazon DynamoDB Pricing", on-demand capacity, write request units: USD per million.
    pub dynamodb_million_writes: f64,
    /// "Amazon DynamoDB Pricing", on-demand capacity, read request units: USD per million.
    pub dynamodb_million_reads: f64,
    /// "Amazon API Gateway Pricing", HTTP APIs, first 300 million requests a month (metered in
    /// 512 KB increments): USD per million.
    pub api_gateway_million_requests: f64,
    /// "Amazon CloudWatch Pricing", Logs, Standard log class, collect (data ingestion): USD per
    /// GB.
    pub cloudwatch_logs_gb_ingested: f64,
    /// "Amazon CloudWatch Pricing", Logs, store (archival): USD per GB-month.
    pub cloudwatch_logs_gb_month: f64,
    /// "Amazon S3 Pricing", data transfer out from S3 to the internet, first 10 TB a month: USD
    /// per GB.
    pub data_transfer_out_gb: f64,
    /// "AWS X-Ray Pricing", traces recorded: USD per million.
    pub xray_million_traces: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Self {
            lambda_arm_gb_second: 0.000_013_333_4,
            lambda_million_requests: 0.20,
            sfn_express_million_requests: 1.00,
            sfn_express_gb_hour: 0.06,
            sqs_million_requests: 0.40,
            s3_thousand_puts: 0.005,
            s3_thousand_gets: 0.0004,
            s3_gb_month: 0.023,
            dynamodb_million_writes: 0.625,
            dynamodb_million_reads: 0.125,
            api_gateway_million_requests: 1.00,
            cloudwatch_logs_gb_ingested: 0.50,
            cloudwatch_logs_gb_month: 0.03,
            data_transfer_out_gb: 0.09,
            xray_million_traces: 5.00,
        }
    }
}

/// A prices file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PricesError {
    /// It could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It is not valid TOML or JSON of [`Prices`] (unknown keys included).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, and where.
        message: String,
    },
}

impl Prices {
    /// Reads prices from `path`: JSON if it ends in `.json`, TOML otherwise.
    pub fn load(path: &Path) -> Result<Self, PricesError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PricesError::Read { path: shown.clone(), source })?;
        let parsed = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            toml::from_str(&text).map_err(|e| e.to_string())
        };
        parsed.map_err(|message| PricesError::Parse { path: shown, message })
    }
}

/// The shape of the deployed stack the estimate assumes, and the few latencies and log sizes it
/// cannot measure through the public API. Defaults follow `infra/template.yaml` and
/// `imgpipe_core::policy`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CostModel {
    /// Processor memory in MB (`--lambda-memory-mb`). Lambda gives one vCPU per 1,769 MB.
    pub lambda_memory_mb: u32,
    /// Images per processor invocation (a chunk: one Map iteration).
    pub images_per_invocation: u32,
    /// Images per workflow execution (a full execution at sustained load).
    pub images_per_workflow: u32,
    /// Chunks of one execution processed at once (the Map state's MaxConcurrency).
    pub map_max_concurrency: u32,
    /// Billed memory of an Express execution, in MB (64 MB chunks).
    pub sfn_billed_memory_mb: u32,
    /// Ingest memory in MB.
    pub ingest_memory_mb: u32,
    /// Billed ingest time per API request besides moving an original: routing, the key check,
    /// one DynamoDB call, in ms.
    pub ingest_ms: f64,
    /// Orchestrator memory in MB.
    pub orchestrator_memory_mb: u32,
    /// Billed orchestrator time per invocation, in ms.
    pub orchestrator_ms: f64,
    /// S3 events per orchestrator invocation (the event source's batch size).
    pub orchestrator_batch: u32,
    /// Messages per SQS receive and per delete call (the API's maximum, 10).
    pub sqs_batch: u32,
    /// Status reads (`GET /v1/images/{id}`) a client makes per image.
    pub status_reads_per_image: f64,
    /// Images the processor has in I/O at once, per kernel thread (`processor/src/main.rs`:
    /// `io_concurrency: 4 * threads`, one thread per started vCPU).
    pub io_per_thread: u32,
    /// One DynamoDB request from a function, in ms: the processor's `begin` per image and the
    /// final record's conditional put (the chunk's puts run at once: one round).
    pub dynamodb_ms: f64,
    /// First byte of one S3 request from a function, in ms.
    pub s3_request_ms: f64,
    /// Throughput of S3 transfers from a function, in MB/s: the ingest's PutObject of a direct
    /// upload, and [`modelled_io_ms`] when a run measured no I/O.
    pub s3_mb_per_s: f64,
    /// Option: rendition downloads per image by clients (`GET /v1/images/{id}/renditions/{name}`,
    /// answered with a redirect to a presigned S3 GET). 0 = processing only.
    pub downloads_per_image: f64,
    /// Option: bytes of one downloaded rendition (default: the mean rendition of the run).
    pub download_bytes: Option<f64>,
    /// What the processor and the orchestrator log per image at the default level (`info`), as
    /// Lambda's JSON log format writes it: EMF metric documents and tracing lines
    /// ([`MEASURED_PIPELINE_LOG_BYTES_PER_IMAGE`]).
    pub pipeline_log_bytes_per_image: f64,
    /// What the ingest logs per direct upload (the `upload accepted` line). Measured:
    /// [`MEASURED_INGEST_LOG_BYTES_PER_UPLOAD`].
    pub ingest_log_bytes_per_upload: f64,
    /// Lambda's own records per invocation with `LogFormat: JSON` (`platform.start`,
    /// `platform.report` with its X-Ray `tracing` field): an assumption, see
    /// [`PLATFORM_LOG_BYTES_PER_INVOCATION`].
    pub platform_log_bytes_per_invocation: f64,
    /// One API Gateway access log line (the template's `AccessLogSettings.Format` filled in).
    pub access_log_bytes_per_request: f64,
    /// Days CloudWatch keeps the logs (`LogRetentionDays`).
    pub log_retention_days: u32,
    /// Share of requests X-Ray records as traces (the default sampling rule: one a second, then
    /// 5 %; at sustained load the 5 % is what counts).
    pub xray_sampled_fraction: f64,
}

impl Default for CostModel {
    fn default() -> Self {
        Self {
            lambda_memory_mb: 3538,
            images_per_invocation: 10,
            images_per_workflow: 80,
            map_max_concurrency: 8,
            sfn_billed_memory_mb: 64,
            ingest_memory_mb: 1024,
            ingest_ms: 20.0,
            orchestrator_memory_mb: 256,
            orchestrator_ms: 300.0,
            orchestrator_batch: 500,
            sqs_batch: 10,
            status_reads_per_image: 1.0,
            io_per_thread: 4,
            dynamodb_ms: 10.0,
            s3_request_ms: 20.0,
            s3_mb_per_s: 80.0,
            downloads_per_image: 0.0,
            download_bytes: None,
            pipeline_log_bytes_per_image: MEASURED_PIPELINE_LOG_BYTES_PER_IMAGE,
            ingest_log_bytes_per_upload: MEASURED_INGEST_LOG_BYTES_PER_UPLOAD,
            platform_log_bytes_per_invocation: PLATFORM_LOG_BYTES_PER_INVOCATION,
            access_log_bytes_per_request: ACCESS_LOG_BYTES_PER_REQUEST,
            log_retention_days: 30,
            xray_sampled_fraction: 0.05,
        }
    }
}

/// What the processor and orchestrator functions write to their log groups per image, at the
/// default level, in Lambda's JSON log format. Measured: 334 B. A DONE image logs no tracing
/// line at `info`; the processor's EMF documents after each chunk (a counters document and one
/// per stage with the chunk's ten samples, 3.26 KB a chunk) are 326 B per image, and the
/// orchestrator's `workflow started` lines and EMF add 7.5 B. Measure again with
/// `cargo test -p loadtest --test log_bytes -- --nocapture` (30 photos in chunks of 10 through
/// the chunk service, the Lambda subscriber's configuration and the EMF recorder as the
/// functions build them); the test fails when this default drifts 15 % from what it measures.
pub const MEASURED_PIPELINE_LOG_BYTES_PER_IMAGE: f64 = 334.0;
/// The ingest's `upload accepted` line of one direct upload, in Lambda's JSON format inside
/// the runtime's and the route's spans (request id, X-Ray trace id): 414 B, measured by the
/// same test. Presign requests and status reads log no line at `info`.
pub const MEASURED_INGEST_LOG_BYTES_PER_UPLOAD: f64 = 414.0;
/// Lambda's `platform.start` (about 130 bytes: time, type, requestId, version) and
/// `platform.report` (about 450 bytes: duration, billed duration, memory size, max memory
/// used, status, and with active tracing the X-Ray segment) per invocation, as Lambda writes
/// them with `LogFormat: JSON`; a cold start adds `platform.initStart` and `initReport`, rare
/// at sustained load. An assumption from AWS's documented record shapes, not a measurement.
pub const PLATFORM_LOG_BYTES_PER_INVOCATION: f64 = 600.0;
/// The API's access log line: `infra/template.yaml`'s format filled with a request id, an IPv4
/// address, the request time, method, path, status, length and latencies: 256 B
/// (`loadtest/tests/log_bytes.rs` fills it in).
pub const ACCESS_LOG_BYTES_PER_REQUEST: f64 = 256.0;

/// Memory that buys one vCPU on Lambda.
pub const MB_PER_VCPU: f64 = 1769.0;
/// API Gateway HTTP APIs meter requests in 512 KB increments.
const API_METERING_BYTES: f64 = 512.0 * 1024.0;
/// DynamoDB bills a write request unit per 1 KB of item written.
const WRITE_UNIT_BYTES: f64 = 1024.0;
/// DynamoDB bills a (strongly consistent) read request unit per 4 KB of item read.
const READ_UNIT_BYTES: f64 = 4096.0;
const MILLION: f64 = 1_000_000.0;
/// AWS bills data (logs, transfer, storage) per GB of 2^30 bytes.
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// DynamoDB write request units of one image's record over its life, on the base table and on
/// the by-status index.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WriteUnits {
    /// Writes of the item itself.
    pub table: f64,
    /// Writes of its by-status index entry (a status change deletes one entry and puts another).
    pub index: f64,
}

impl WriteUnits {
    /// Table and index together.
    pub fn total(&self) -> f64 {
        self.table + self.index
    }
}

/// The write units of one image, direct or presigned (the same: 7 + ⌈record/1 KB⌉), with the
/// by-status index write-sharded and projected KEYS_ONLY plus `error`, so that each index entry
/// write is under 1 KB:
///
/// | step | direct upload | presigned upload (AWS) | table | index |
/// |---|---|---|---|---|
/// | created | PENDING `PutItem` | AWAITING_UPLOAD slot (`BatchWriteItem`) | 1 | put 1 |
/// | `begin` | `UpdateItem` → PROCESSING | `UpdateItem` AWAITING_UPLOAD → PROCESSING (no PENDING write) | 1 | delete 1 + put 1 |
/// | `finish` | conditional `PutItem` of the final record | the same | R | delete 1 + put 1 |
///
/// R = ⌈`record_item_bytes`/1 KB⌉, at least 1 (a conditional put bills the larger of the old and
/// the new item: the new one). The old layout (index projecting ALL, unsharded) wrote the whole
/// item to the index too: 6 + 2R.
pub fn dynamodb_write_units(record_item_bytes: f64) -> WriteUnits {
    let record = (record_item_bytes / WRITE_UNIT_BYTES).ceil().max(1.0);
    WriteUnits { table: 2.0 + record, index: 5.0 }
}

/// What a run measured, per image (means).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CostInputs {
    /// Kernel time of one image on one core (decode, resize, watermark, encode), in ms.
    pub processing_ms: f64,
    /// Wall time one image waits on storage in the processor: fetching the original and storing
    /// the renditions (the record's `store` stage), in ms. Zero: [`modelled_io_ms`].
    pub io_ms: f64,
    /// Size of an original.
    pub original_bytes: f64,
    /// Size of all of an image's renditions together.
    pub rendition_bytes: f64,
    /// Renditions per image.
    pub renditions: f64,
    /// Size of a final metadata record (JSON, close to its DynamoDB item size).
    pub record_bytes: f64,
    /// Share of uploads through presigned URLs (their bytes go to S3, not through the API).
    pub presigned_fraction: f64,
    /// Files per presign request.
    pub presign_batch: f64,
}

/// The processor's CPU time per image on one vCPU, in ms: the real processor bootstrap (release,
/// x86_64) under a Lambda Runtime API harness, pinned to one core, chunks of 10 of the 2725×2225
/// fixture with the `default` preset, S3 and DynamoDB in moto. Measured: 87.0 ms, the median of
/// three runs (81.5, 87.0, 88.5) on the 2-core reference machine of
/// `cargo run --release -p benches --features lambda --bin lambda` (README, "The processor on
/// Lambda, measured"); the same harness gave 83.0 to 101.0 ms per image with two threads.
pub const MEASURED_PROCESSOR_CPU_MS_PER_IMAGE: f64 = 87.0;

/// The reference image of the READMEs' cost tables: a 3 MB, 6 MP JPEG original; the default
/// preset's three renditions of a 6 MP photo (640,052 B together, as `imgpipe process` makes them
/// of the 2725×2225 fixture `2569067123_aca715a2ee_o.jpg`) and its 900 B final record;
/// [`MEASURED_PROCESSOR_CPU_MS_PER_IMAGE`] of processor CPU per image on one vCPU; the storage
/// I/O left to [`modelled_io_ms`]; direct uploads.
pub const REFERENCE: CostInputs = CostInputs {
    processing_ms: MEASURED_PROCESSOR_CPU_MS_PER_IMAGE,
    io_ms: 0.0,
    original_bytes: 3_000_000.0,
    rendition_bytes: 640_052.0,
    renditions: 3.0,
    record_bytes: 900.0,
    presigned_fraction: 0.0,
    presign_batch: 100.0,
};

/// The processor's storage wait per image when none was measured: a GET of the original and
/// the rendition PUTs (at once: one first byte, their bytes at [`CostModel::s3_mb_per_s`]).
pub fn modelled_io_ms(inputs: &CostInputs, model: &CostModel) -> f64 {
    let transfer = |bytes: f64| bytes / 1e6 / model.s3_mb_per_s.max(f64::MIN_POSITIVE) * 1000.0;
    2.0 * model.s3_request_ms + transfer(inputs.original_bytes) + transfer(inputs.rendition_bytes)
}

/// The processor's billed time for one full chunk, in ms: the kernel time on the vCPUs the
/// memory buys, plus the I/O the chunk waits on.
///
/// I/O: each image's `begin` (a DynamoDB call), fetch and rendition PUTs run in waves of
/// `io_per_thread × threads` images, and the chunk's final records are written at once (one
/// DynamoDB round). The I/O is *added* to the kernel time, as if none of it hid behind kernel
/// work: the first wave's fetches come before any kernel work and the last images' PUTs and
/// the final writes after it, and on 2 vCPUs the kernel is the bottleneck in between, so the
/// true billed time lies between max(kernel, I/O) and this sum; the sum is the safe side.
pub fn processor_chunk_ms(inputs: &CostInputs, model: &CostModel) -> f64 {
    let images = f64::from(model.images_per_invocation.max(1));
    let vcpus = f64::from(model.lambda_memory_mb) / MB_PER_VCPU;
    let kernel = inputs.processing_ms * images / vcpus.min(images);
    let threads = vcpus.ceil().max(1.0);
    let in_flight = (f64::from(model.io_per_thread) * threads).max(1.0);
    let io_ms = if inputs.io_ms > 0.0 { inputs.io_ms } else { modelled_io_ms(inputs, model) };
    let waves = (images / in_flight).ceil();
    kernel + waves * (model.dynamodb_ms + io_ms) + model.dynamodb_ms
}

/// One priced quantity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostLine {
    /// The AWS service.
    pub service: String,
    /// What is counted.
    pub item: String,
    /// How many per million images.
    pub quantity: f64,
    /// The unit of `quantity`.
    pub unit: String,
    /// USD per million images.
    pub usd: f64,
}

/// The estimate for a million images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostEstimate {
    /// Every priced quantity, service by service.
    pub lines: Vec<CostLine>,
    /// Sum of the lines: USD per million images processed.
    pub total_usd: f64,
    /// Keeping a million images' originals and renditions in S3: USD per month.
    pub storage_usd_per_month: f64,
    /// The measured inputs.
    pub inputs: CostInputs,
    /// The assumed stack.
    pub model: CostModel,
    /// The unit prices.
    pub prices: Prices,
}

impl CostEstimate {
    /// USD per million images for `service`.
    pub fn service_usd(&self, service: &str) -> f64 {
        self.lines.iter().filter(|l| l.service == service).map(|l| l.usd).sum()
    }

    /// USD per million images per service, in the order the lines name them.
    pub fn by_service(&self) -> Vec<(String, f64)> {
        let mut services: Vec<(String, f64)> = Vec::new();
        for line in &self.lines {
            match services.iter_mut().find(|(s, _)| *s == line.service) {
                Some((_, usd)) => *usd += line.usd,
                None => services.push((line.service.clone(), line.usd)),
            }
        }
        services
    }

    /// The same images and stack, every upload direct (`presigned` false) or presigned.
    pub fn for_upload(&self, presigned: bool) -> CostEstimate {
        let inputs = CostInputs { presigned_fraction: if presigned { 1.0 } else { 0.0 }, ..self.inputs };
        estimate(inputs, self.model, self.prices)
    }
}

/// Prices a million images.
pub fn estimate(inputs: CostInputs, model: CostModel, prices: Prices) -> CostEstimate {
    let m = model;
    let presigned = inputs.presigned_fraction.clamp(0.0, 1.0);
    let direct = 1.0 - presigned;
    let presign_requests = if presigned > 0.0 { presigned / inputs.presign_batch.max(1.0) } else { 0.0 };
    let upload_units = (inputs.original_bytes / API_METERING_BYTES).ceil().max(1.0);
    let chunk = f64::from(m.images_per_invocation.max(1));
    let chunk_s = processor_chunk_ms(&inputs, &m) / 1000.0;
    let gb = |mb: u32| f64::from(mb) / 1024.0;
    let reads = m.status_reads_per_image;
    let downloads = m.downloads_per_image.max(0.0);

    // Per image.
    let api_requests = direct * upload_units + presign_requests + reads + downloads;
    let ingest_invocations = direct + presign_requests + reads + downloads;
    let orchestrator_invocations = 1.0 / f64::from(m.orchestrator_batch.max(1));
    let processor_invocations = 1.0 / chunk;
    // A direct upload's request also carries the original to S3 (PutObject).
    let put_original_ms = m.s3_request_ms + inputs.original_bytes / 1e6 / m.s3_mb_per_s.max(f64::MIN_POSITIVE) * 1000.0;
    let ingest_ms = ingest_invocations * m.ingest_ms + direct * put_original_ms;
    let ingest_gb_s = ingest_ms / 1000.0 * gb(m.ingest_memory_mb);
    let orchestrator_gb_s = orchestrator_invocations * m.orchestrator_ms / 1000.0 * gb(m.orchestrator_memory_mb);
    let processor_gb_s = chunk_s * gb(m.lambda_memory_mb) / chunk;
    let per_workflow = f64::from(m.images_per_workflow.max(1));
    let waves = ((per_workflow / chunk).ceil() / f64::from(m.map_max_concurrency.max(1))).ceil();
    let execution_s = (waves * chunk_s * 10.0).ceil() / 10.0; // 100 ms increments
    let sfn_gb_s = execution_s * gb(m.sfn_billed_memory_mb) / per_workflow;
    let sqs_requests = 1.0 + 2.0 / f64::from(m.sqs_batch.max(1)); // S3's send; a share of a receive and a delete
    let s3_puts = 1.0 + inputs.renditions;
    let s3_gets = 1.0 + downloads; // the processor's read; each download's presigned GET
    let writes = dynamodb_write_units(inputs.record_bytes);
    // Strongly consistent: the orchestrator's existence check (BatchGetItem) of a record still
    // under 4 KB, and each status read or download's GetItem of the final record.
    let record_reads = (inputs.record_bytes / READ_UNIT_BYTES).ceil().max(1.0);
    let download_bytes = m.download_bytes.unwrap_or(if inputs.renditions > 0.0 {
        inputs.rendition_bytes / inputs.renditions
    } else {
        0.0
    });
    let egress_gb = downloads * download_bytes / GIB;
    // Logs, in GB per image.
    let lambda_invocations = ingest_invocations + orchestrator_invocations + processor_invocations;
    let function_log_gb = (m.pipeline_log_bytes_per_image + direct * m.ingest_log_bytes_per_upload) / GIB;
    let platform_log_gb = lambda_invocations * m.platform_log_bytes_per_invocation / GIB;
    // One access line per request, however many 512 KB increments it is metered as.
    let access_log_gb = ingest_invocations * m.access_log_bytes_per_request / GIB;
    let log_gb = function_log_gb + platform_log_gb + access_log_gb;
    // Kept uncompressed for the retention period (an upper bound: CloudWatch archives compressed).
    let log_gb_months = log_gb * f64::from(m.log_retention_days) / 30.0;
    // A trace per sampled API request (the ingest starts it: HTTP APIs have no X-Ray), per
    // sampled orchestrator invocation and per sampled execution (its processor calls join it).
    let traces = m.xray_sampled_fraction * (ingest_invocations + orchestrator_invocations + 1.0 / per_workflow);

    let line = |service: &str, item: &str, per_image: f64, unit: &str, usd_per_unit: f64| CostLine {
        service: service.into(),
        item: item.into(),
        quantity: per_image * MILLION,
        unit: unit.into(),
        usd: per_image * MILLION * usd_per_unit,
    };
    let lambda_request = prices.lambda_million_requests / MILLION;
    let lambda_gb_s = prices.lambda_arm_gb_second;
    let wru = prices.dynamodb_million_writes / MILLION;
    let rru = prices.dynamodb_million_reads / MILLION;
    let logs_gb = prices.cloudwatch_logs_gb_ingested;
    let mut lines = vec![
        line(
            "API Gateway",
            "HTTP API requests",
            api_requests,
            "requests",
            prices.api_gateway_million_requests / MILLION,
        ),
        line("Lambda", "ingest invocations", ingest_invocations, "requests", lambda_request),
        line("Lambda", "ingest duration", ingest_gb_s, "GB-s", lambda_gb_s),
        line("Lambda", "orchestrator invocations", orchestrator_invocations, "requests", lambda_request),
        line("Lambda", "orchestrator duration", orchestrator_gb_s, "GB-s", lambda_gb_s),
        line("Lambda", "processor invocations", processor_invocations, "requests", lambda_request),
        line("Lambda", "processor duration", processor_gb_s, "GB-s", lambda_gb_s),
        line(
            "Step Functions",
            "Express executions",
            1.0 / per_workflow,
            "requests",
            prices.sfn_express_million_requests / MILLION,
        ),
        line("Step Functions", "Express duration", sfn_gb_s, "GB-s", prices.sfn_express_gb_hour / 3600.0),
        line("SQS", "requests", sqs_requests, "requests", prices.sqs_million_requests / MILLION),
        line("S3", "PUT requests", s3_puts, "requests", prices.s3_thousand_puts / 1000.0),
        line("S3", "GET requests", s3_gets, "requests", prices.s3_thousand_gets / 1000.0),
        line("DynamoDB", "table write units", writes.table, "WRU", wru),
        line("DynamoDB", "index write units", writes.index, "WRU", wru),
        line("DynamoDB", "existence check reads", 1.0, "RRU", rru),
        line("DynamoDB", "status and download reads", (reads + downloads) * record_reads, "RRU", rru),
        line("CloudWatch Logs", "function log lines", function_log_gb, "GB", logs_gb),
        line("CloudWatch Logs", "Lambda platform records", platform_log_gb, "GB", logs_gb),
        line("CloudWatch Logs", "API access logs", access_log_gb, "GB", logs_gb),
        line("CloudWatch Logs", "log storage", log_gb_months, "GB-months", prices.cloudwatch_logs_gb_month),
        line("X-Ray", "traces recorded", traces, "traces", prices.xray_million_traces / MILLION),
    ];
    if downloads > 0.0 {
        lines.push(line(
            "Data transfer",
            "renditions out to the internet",
            egress_gb,
            "GB",
            prices.data_transfer_out_gb,
        ));
    }
    let total_usd = lines.iter().map(|l| l.usd).sum();
    let stored_gb = (inputs.original_bytes + inputs.rendition_bytes) * MILLION / GIB;
    CostEstimate { lines, total_usd, storage_usd_per_month: stored_gb * prices.s3_gb_month, inputs, model, prices }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64) -> bool {
        (got - want).abs() <= want.abs() * 1e-9 + 1e-12
    }

    fn usd(estimate: &CostEstimate, item: &str) -> f64 {
        estimate.lines.iter().find(|l| l.item == item).unwrap_or_else(|| panic!("no line {item}")).usd
    }

    const GIB: f64 = 1_073_741_824.0;
    const GB_S: f64 = 0.000_013_333_4;

    /// The default stack (3538 MB = 2 vCPUs, chunks of 10, 80 images per execution), with round
    /// log sizes so the hand-worked figures do not move when the measured ones do.
    fn model() -> CostModel {
        CostModel {
            pipeline_log_bytes_per_image: 300.0,
            ingest_log_bytes_per_upload: 400.0,
            platform_log_bytes_per_invocation: 700.0,
            access_log_bytes_per_request: 280.0,
            ..CostModel::default()
        }
    }

    /// 200 ms of kernel and 50 ms of storage I/O per image, 200 KB originals, three renditions
    /// of 150 KB together, 1.5 KB records, direct uploads, default prices. Worked by hand, per
    /// million images:
    fn direct_case() -> CostEstimate {
        let inputs = CostInputs {
            processing_ms: 200.0,
            io_ms: 50.0,
            original_bytes: 200_000.0,
            rendition_bytes: 150_000.0,
            renditions: 3.0,
            record_bytes: 1500.0,
            presigned_fraction: 0.0,
            presign_batch: 100.0,
        };
        estimate(inputs, model(), Prices::default())
    }

    #[test]
    fn direct_uploads_priced_by_hand() {
        let e = direct_case();
        // API Gateway: an upload (under 512 KB: one metered request) + a status read = 2M × $1/M.
        assert!(close(usd(&e, "HTTP API requests"), 2.00));
        // Ingest: 2M invocations × $0.20/M. Time per image: 20 ms per request × 2, plus the
        // upload's PutObject, 20 ms + 0.2 MB at 80 MB/s = 22.5 ms: 62.5 ms at 1 GB = 62,500 GB-s.
        assert!(close(usd(&e, "ingest invocations"), 0.40));
        assert!(close(usd(&e, "ingest duration"), 62_500.0 * GB_S));
        // Orchestrator: 1M / 500 = 2,000 invocations; 2,000 × 0.3 s × 0.25 GB = 150 GB-s.
        assert!(close(usd(&e, "orchestrator invocations"), 0.0004));
        assert!(close(usd(&e, "orchestrator duration"), 150.0 * GB_S));
        // Processor: 100,000 invocations. 3538 MB = 2 vCPUs: a chunk's kernel time is
        // 10 × 200 / 2 = 1000 ms; 2 threads × 4 = 8 images in I/O at once, so 2 waves of
        // (begin 10 ms + 50 ms of storage) + one round of final puts (10 ms) = 130 ms;
        // 1.13 s × 3538/1024 GB / 10 images = 0.390423828 GB-s per image.
        assert!(close(usd(&e, "processor invocations"), 0.02));
        assert!(close(usd(&e, "processor duration"), 390_423.828_125 * GB_S));
        // Step Functions: 12,500 executions of 8 chunks in one wave of 1.13 s, billed 1.2 s at
        // 64 MB = 0.075 GB-s: 937.5 GB-s per million images.
        assert!(close(usd(&e, "Express executions"), 0.0125));
        assert!(close(usd(&e, "Express duration"), 937.5 * 0.06 / 3600.0));
        // SQS: S3's send plus a tenth of a receive and of a delete: 1.2M × $0.40/M.
        assert!(close(usd(&e, "requests"), 0.48));
        // S3: the original + 3 renditions = 4M PUTs × $0.005/1000; 1M GETs × $0.0004/1000.
        assert!(close(usd(&e, "PUT requests"), 20.0));
        assert!(close(usd(&e, "GET requests"), 0.40));
        // DynamoDB: table: PENDING put 1 + PROCESSING update 1 + the final 1.5 KB record 2 = 4
        // WRU; index: put 1 + (delete + put) × 2 = 5 WRU; × $0.625/M. Reads, consistent: the
        // orchestrator's existence check and the status read, 1 RRU each × $0.125/M.
        assert!(close(usd(&e, "table write units"), 4.0 * 0.625));
        assert!(close(usd(&e, "index write units"), 5.0 * 0.625));
        assert!(close(usd(&e, "existence check reads"), 0.125));
        assert!(close(usd(&e, "status and download reads"), 0.125));
        // Logs at $0.50/GB: the functions' 300 + 400 (the upload's line) = 700 B; platform
        // records of 2 + 0.002 + 0.1 invocations × 700 B = 1,471.4 B; 2 access lines × 280 B.
        // Kept 30 days: one month of all three at $0.03.
        let (lines, platform, access) = (700e6 / GIB, 1471.4e6 / GIB, 560e6 / GIB);
        assert!(close(usd(&e, "function log lines"), lines * 0.5));
        assert!(close(usd(&e, "Lambda platform records"), platform * 0.5));
        assert!(close(usd(&e, "API access logs"), access * 0.5));
        assert!(close(usd(&e, "log storage"), (lines + platform + access) * 0.03));
        // X-Ray: 5 % of 2 ingest + 0.002 orchestrator invocations + 0.0125 executions =
        // 100,725 traces × $5/M.
        assert!(close(usd(&e, "traces recorded"), 0.503_625));
        // No downloads asked for: no data transfer line.
        assert!(e.lines.iter().all(|l| l.service != "Data transfer"));
        let total = 2.0
            + 0.4
            + 62_500.0 * GB_S
            + 0.0004
            + 150.0 * GB_S
            + 0.02
            + 390_423.828_125 * GB_S
            + 0.0125
            + 937.5 * 0.06 / 3600.0
            + 0.48
            + 20.0
            + 0.40
            + 9.0 * 0.625
            + 0.25
            + (lines + platform + access) * 0.53
            + 0.503_625;
        assert!(close(e.total_usd, total), "{} vs {total}", e.total_usd);
        assert!((e.total_usd - 37.10).abs() < 0.01, "{}", e.total_usd);
        // Storage: 350,000 B × 1M = 325.96 GiB × $0.023 a month.
        assert!(close(e.storage_usd_per_month, 350_000.0 * 1e6 / GIB * 0.023));
        assert!(close(e.service_usd("S3"), 20.40));
        let services: Vec<String> = e.by_service().into_iter().map(|(s, _)| s).collect();
        let expected = ["API Gateway", "Lambda", "Step Functions", "SQS", "S3", "DynamoDB", "CloudWatch Logs", "X-Ray"];
        assert_eq!(services, expected);
        assert!(close(e.by_service().iter().map(|(_, usd)| usd).sum::<f64>(), e.total_usd));
    }

    #[test]
    fn write_units_are_seven_plus_the_record_for_either_upload() {
        // 900 B: R = 1, so 3 on the table and 5 on the index: 8 in all.
        let small = dynamodb_write_units(900.0);
        assert_eq!((small.table, small.index, small.total()), (3.0, 5.0, 8.0));
        // 1 KB exactly is still one unit; a byte more is two.
        assert_eq!(dynamodb_write_units(1024.0).total(), 8.0);
        assert_eq!(dynamodb_write_units(1025.0).total(), 9.0);
        // An unknown (zero) size still writes one unit.
        assert_eq!(dynamodb_write_units(0.0).total(), 8.0);
    }

    #[test]
    fn presigned_uploads_move_bytes_off_the_api_and_write_no_pending_record() {
        let mut inputs = direct_case().inputs;
        inputs.original_bytes = 3_000_000.0; // 5.72 512 KB increments: 6 metered requests direct
        let direct = estimate(inputs, model(), Prices::default());
        let e = direct.for_upload(true);
        assert_eq!(e.inputs.presigned_fraction, 1.0);
        // One presign request per 100 files + a status read: 1.01M requests and invocations.
        assert!(close(usd(&e, "HTTP API requests"), 1.01));
        assert!(close(usd(&e, "ingest invocations"), 1.01 * 0.20));
        assert!(close(usd(&direct, "HTTP API requests"), 6.0 + 1.0), "3 MB = six 512 KB increments");
        // …but two access log lines, not seven.
        assert!(close(usd(&direct, "API access logs"), 2.0 * 280e6 / GIB * 0.5));
        // Ingest time: 1.01 × 20 ms at 1 GB; direct: 2 × 20 ms + PutObject 20 + 3 MB at 80 MB/s
        // (37.5 ms) = 97.5 ms.
        assert!(close(usd(&e, "ingest duration"), 20_200.0 * GB_S));
        assert!(close(usd(&direct, "ingest duration"), 97_500.0 * GB_S));
        // The slot replaces the PENDING put (no PENDING write on AWS's presigned path): the
        // same 9 WRU.
        for item in ["table write units", "index write units", "existence check reads"] {
            assert!(close(usd(&e, item), usd(&direct, item)), "{item}");
        }
        // No upload line in the ingest's log; 1.01 + 0.002 + 0.1 invocations' platform
        // records; 1.01 access lines.
        assert!(close(usd(&e, "function log lines"), 300e6 / GIB * 0.5));
        assert!(close(usd(&e, "Lambda platform records"), 1.112 * 700e6 / GIB * 0.5));
        assert!(close(usd(&e, "API access logs"), 1.01 * 280e6 / GIB * 0.5));
        // Both: the same processing, S3, SQS and Step Functions.
        for service in ["S3", "SQS", "Step Functions"] {
            assert!(close(e.service_usd(service), direct.service_usd(service)), "{service}");
        }
        assert!(close(usd(&e, "processor duration"), usd(&direct, "processor duration")));
    }

    #[test]
    fn downloads_add_requests_reads_gets_and_egress() {
        let base = direct_case();
        // Two downloads of a 1 MB rendition per image.
        let model = CostModel { downloads_per_image: 2.0, download_bytes: Some(1_048_576.0), ..model() };
        let e = estimate(base.inputs, model, Prices::default());
        // Each download: an API request and an ingest invocation (the redirect), a consistent
        // GetItem of the record (1 RRU), a presigned S3 GET, and 1 MB out: 2M GETs,
        // 2M × 1/1024 GB = 1953.125 GB × $0.09.
        assert!(close(usd(&e, "HTTP API requests"), 4.00));
        assert!(close(usd(&e, "ingest invocations"), 0.80));
        assert!(close(usd(&e, "ingest duration"), (62_500.0 + 40_000.0) * GB_S));
        assert!(close(usd(&e, "status and download reads"), 3.0 * 0.125));
        assert!(close(usd(&e, "GET requests"), 3.0 * 0.40));
        assert!(close(usd(&e, "renditions out to the internet"), 1953.125 * 0.09));
        assert!(close(e.service_usd("Data transfer"), 175.781_25));
        // Without a size, a download is the mean rendition: 50,000 B.
        let model = CostModel { downloads_per_image: 1.0, ..self::model() };
        let mean = estimate(base.inputs, model, Prices::default());
        assert!(close(usd(&mean, "renditions out to the internet"), 50_000.0 * 1e6 / GIB * 0.09));
    }

    #[test]
    fn storage_io_is_billed_at_the_processors_memory() {
        let at = |io_ms: f64, mb: u32| {
            let inputs = CostInputs { io_ms, ..direct_case().inputs };
            let model = CostModel { lambda_memory_mb: mb, ..model() };
            usd(&estimate(inputs, model, Prices::default()), "processor duration")
        };
        // 100 ms more I/O per image at 3538 MB: 2 waves × 100 ms per chunk of 10 = 20 ms per
        // image × 3538/1024 GB = 0.069101563 GB-s.
        assert!(close(at(150.0, 3538) - at(50.0, 3538), 69_101.562_5 * GB_S));
        // At 7076 MB (4 vCPUs) the kernel bills the same GB-s but 16 images fit in I/O at once:
        // one wave, 10 + 150 + 10 ms a chunk = 17 ms per image × 7076/1024 GB.
        let kernel = 0.2 * 1769.0 / 1024.0 * 1e6 * GB_S; // 200 ms on one vCPU's worth of memory
        assert!(close(at(150.0, 7076), kernel + 0.017 * 7076.0 / 1024.0 * 1e6 * GB_S));
        // Unmeasured I/O is modelled: GET 20 ms + 0.2 MB / 80 MB/s, PUTs 20 ms + 0.15 MB /
        // 80 MB/s = 44.375 ms.
        let inputs = CostInputs { io_ms: 0.0, ..direct_case().inputs };
        assert!(close(modelled_io_ms(&inputs, &model()), 44.375));
        assert!(close(processor_chunk_ms(&inputs, &model()), 1000.0 + 2.0 * 54.375 + 10.0));
    }

    #[test]
    fn below_one_vcpu_the_kernel_bills_the_same_cpu_time_more_slowly() {
        // Without I/O: at 1769 MB (one vCPU) an image bills 0.2 s at 1769/1024 GB; at 884.5 MB,
        // half a vCPU takes 0.4 s at half the memory: the same GB-s.
        let at = |mb: u32| {
            let model = CostModel { lambda_memory_mb: mb, dynamodb_ms: 0.0, ..model() };
            let inputs = CostInputs { io_ms: f64::MIN_POSITIVE, ..direct_case().inputs };
            usd(&estimate(inputs, model, Prices::default()), "processor duration")
        };
        assert!(close(at(1769), 0.2 * 1769.0 / 1024.0 * 1e6 * GB_S));
        assert!((at(1769) - at(3538)).abs() < 1e-6);
        assert!((at(1000) - at(1769)).abs() < 1e-6);
    }

    #[test]
    fn a_prices_file_overrides_only_what_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("prices.toml");
        std::fs::write(&toml, "lambda_arm_gb_second = 0.0000166667\ns3_thousand_puts = 0.0054\n").unwrap();
        let prices = Prices::load(&toml).unwrap();
        assert_eq!(prices.lambda_arm_gb_second, 0.0000166667);
        assert_eq!(prices.s3_thousand_puts, 0.0054);
        assert_eq!(prices.sqs_million_requests, Prices::default().sqs_million_requests);
        let json = dir.path().join("prices.json");
        std::fs::write(&json, r#"{"sqs_million_requests": 0.5, "cloudwatch_logs_gb_ingested": 0.25}"#).unwrap();
        let prices = Prices::load(&json).unwrap();
        assert_eq!((prices.sqs_million_requests, prices.cloudwatch_logs_gb_ingested), (0.5, 0.25));
        std::fs::write(&toml, "lambda_gb_second = 1\n").unwrap();
        let error = Prices::load(&toml).unwrap_err().to_string();
        assert!(error.contains("lambda_gb_second"), "{error}");
    }

    #[test]
    fn an_older_reports_cost_still_reads() {
        // A report.json written before the I/O, log and download fields existed.
        let old = r#"{"processing_ms": 22.9, "original_bytes": 30000.0, "rendition_bytes": 20000.0,
            "renditions": 3.0, "record_bytes": 800.0, "presigned_fraction": 0.0, "presign_batch": 100.0}"#;
        let inputs: CostInputs = serde_json::from_str(old).unwrap();
        assert_eq!((inputs.processing_ms, inputs.io_ms), (22.9, 0.0));
        let model: CostModel =
            serde_json::from_str(r#"{"lambda_memory_mb": 3008, "images_per_workflow": 500}"#).unwrap();
        assert_eq!((model.images_per_workflow, model.downloads_per_image), (500, 0.0));
    }

    /// The processor's memory size against its cost per image, for the README (`cargo test -p
    /// loadtest --lib processor_memory_sizes -- --nocapture` prints the table): the CPU part
    /// costs the same at any size, the storage waits are billed at the whole size, so the
    /// smallest size is the cheapest; whole waves of I/O make the curve uneven above it.
    #[test]
    fn processor_memory_sizes() {
        let prices = Prices::default();
        let mut costs = Vec::new();
        println!("| memory | vCPUs | chunk of 10 | GB-s per image | USD per million images |");
        println!("|---:|---:|---:|---:|---:|");
        for mb in [1024, 1769, 3538, 5307, 10240] {
            let model = CostModel { lambda_memory_mb: mb, ..CostModel::default() };
            let chunk_ms = processor_chunk_ms(&REFERENCE, &model);
            let gb_s = chunk_ms / 1000.0 * f64::from(mb) / 1024.0 / 10.0;
            let usd = gb_s * prices.lambda_arm_gb_second * MILLION;
            println!("| {mb} MB | {:.2} | {chunk_ms:.0} ms | {gb_s:.3} | {usd:.2} |", f64::from(mb) / MB_PER_VCPU);
            costs.push((mb, gb_s));
        }
        let cheapest = costs.iter().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
        assert_eq!(cheapest.0, 1024, "{costs:?}");
        let at = |mb| costs.iter().find(|c| c.0 == mb).unwrap().1;
        assert!(at(1769) < at(3538), "{costs:?}");
    }
}
