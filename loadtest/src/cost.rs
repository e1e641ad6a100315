//! What a million images would cost on the AWS stack (`infra/template.yaml`), per service, from
//! what a run measured (processing time per image, sizes, record size, upload mode) and from
//! documented, overridable unit prices.
//!
//! The model counts, per image: API Gateway requests and ingest Lambda invocations (uploads,
//! presign batches, status reads), the orchestrator's share of an invocation, the processor's
//! share of a chunk, a share of a Step Functions Express execution, the SQS requests of one S3
//! event, the S3 requests and storage of the original and its renditions, and the DynamoDB
//! writes of the record's life. Prices are the first usage tier, on demand, without free tiers.

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

/// The shape of the deployed stack the estimate assumes. Defaults follow `infra/template.yaml`
/// and `imgpipe_core::policy`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CostModel {
    /// Processor memory in MB (`--lambda-memory-mb`). Lambda gives one vCPU per 1,769 MB.
    pub lambda_memory_mb: u32,
    /// Images per processor invocation (a chunk: one Map iteration).
    pub images_per_invocation: u32,
    /// Images per workflow execution (a full orchestrator batch at sustained load).
    pub images_per_workflow: u32,
    /// Chunks of one execution processed at once (the Map state's MaxConcurrency).
    pub map_max_concurrency: u32,
    /// Billed memory of an Express execution, in MB (64 MB chunks).
    pub sfn_billed_memory_mb: u32,
    /// Ingest memory in MB.
    pub ingest_memory_mb: u32,
    /// Billed ingest time per API request, in ms (a PutObject and a PutItem, or a presign batch).
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
}

impl Default for CostModel {
    fn default() -> Self {
        Self {
            lambda_memory_mb: 3008,
            images_per_invocation: 10,
            images_per_workflow: 500,
            map_max_concurrency: 8,
            sfn_billed_memory_mb: 64,
            ingest_memory_mb: 1024,
            ingest_ms: 30.0,
            orchestrator_memory_mb: 256,
            orchestrator_ms: 300.0,
            orchestrator_batch: 500,
            sqs_batch: 10,
            status_reads_per_image: 1.0,
        }
    }
}

/// Memory that buys one vCPU on Lambda.
const MB_PER_VCPU: f64 = 1769.0;
/// API Gateway HTTP APIs meter requests in 512 KB increments.
const API_METERING_BYTES: f64 = 512.0 * 1024.0;
const MILLION: f64 = 1_000_000.0;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// What a run measured, per image (means).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CostInputs {
    /// Processing time of one image on one core (sum of its record's stage durations), in ms.
    pub processing_ms: f64,
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
}

/// Prices a million images.
pub fn estimate(inputs: CostInputs, model: CostModel, prices: Prices) -> CostEstimate {
    let m = model;
    let presigned = inputs.presigned_fraction.clamp(0.0, 1.0);
    let direct = 1.0 - presigned;
    let presign_requests = if presigned > 0.0 { presigned / inputs.presign_batch.max(1.0) } else { 0.0 };
    let upload_units = (inputs.original_bytes / API_METERING_BYTES).ceil().max(1.0);
    let vcpus = f64::from(m.lambda_memory_mb) / MB_PER_VCPU;
    let chunk = f64::from(m.images_per_invocation.max(1));
    // A chunk's images are processed in parallel on the vCPUs the memory buys (rayon), so the
    // billed time per image is its one-core time over the parallelism.
    let image_s = inputs.processing_ms / 1000.0 / vcpus.min(chunk);
    let gb = |mb: u32| f64::from(mb) / 1024.0;

    // Per image.
    let api_requests = direct * upload_units + presign_requests + m.status_reads_per_image;
    let ingest_invocations = direct + presign_requests + m.status_reads_per_image;
    let orchestrator_invocations = 1.0 / f64::from(m.orchestrator_batch.max(1));
    let processor_invocations = 1.0 / chunk;
    let ingest_gb_s = ingest_invocations * m.ingest_ms / 1000.0 * gb(m.ingest_memory_mb);
    let orchestrator_gb_s = orchestrator_invocations * m.orchestrator_ms / 1000.0 * gb(m.orchestrator_memory_mb);
    let processor_gb_s = image_s * gb(m.lambda_memory_mb);
    let per_workflow = f64::from(m.images_per_workflow.max(1));
    let waves = ((per_workflow / chunk).ceil() / f64::from(m.map_max_concurrency.max(1))).ceil();
    let execution_s = (waves * chunk * image_s * 10.0).ceil() / 10.0; // 100 ms increments
    let sfn_gb_s = execution_s * gb(m.sfn_billed_memory_mb) / per_workflow;
    let sqs_requests = 1.0 + 2.0 / f64::from(m.sqs_batch.max(1)); // S3's send; a share of a receive and a delete
    let s3_puts = 1.0 + inputs.renditions;
    let s3_gets = 1.0;
    // A PutItem (or slot + PutItem when presigned) and the PROCESSING update are under 1 KB;
    // the final record is written whole.
    let writes = 2.0 + presigned + (inputs.record_bytes / 1024.0).ceil().max(1.0);
    let reads = m.status_reads_per_image * 0.5 * (inputs.record_bytes / 4096.0).ceil().max(1.0); // eventually consistent

    let line = |service: &str, item: &str, per_image: f64, unit: &str, usd_per_unit: f64| CostLine {
        service: service.into(),
        item: item.into(),
        quantity: per_image * MILLION,
        unit: unit.into(),
        usd: per_image * MILLION * usd_per_unit,
    };
    let lambda_request = prices.lambda_million_requests / MILLION;
    let lambda_gb_s = prices.lambda_arm_gb_second;
    let lines = vec![
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
        line("DynamoDB", "write request units", writes, "WRU", prices.dynamodb_million_writes / MILLION),
        line("DynamoDB", "read request units", reads, "RRU", prices.dynamodb_million_reads / MILLION),
    ];
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

    /// 200 ms per image, 200 KB originals, three renditions of 150 KB together, 1.5 KB records,
    /// direct uploads, the default stack and prices. Worked by hand, per million images:
    fn direct_case() -> CostEstimate {
        let inputs = CostInputs {
            processing_ms: 200.0,
            original_bytes: 200_000.0,
            rendition_bytes: 150_000.0,
            renditions: 3.0,
            record_bytes: 1500.0,
            presigned_fraction: 0.0,
            presign_batch: 100.0,
        };
        estimate(inputs, CostModel::default(), Prices::default())
    }

    #[test]
    fn direct_uploads_priced_by_hand() {
        let e = direct_case();
        // API Gateway: an upload (under 512 KB: one metered request) + a status read = 2M × $1/M.
        assert!(close(usd(&e, "HTTP API requests"), 2.00));
        // Ingest: 2M invocations × $0.20/M; 2M × 30 ms × 1 GB = 60,000 GB-s × $0.0000133334.
        assert!(close(usd(&e, "ingest invocations"), 0.40));
        assert!(close(usd(&e, "ingest duration"), 0.800_004));
        // Orchestrator: 1M / 500 = 2,000 invocations; 2,000 × 0.3 s × 0.25 GB = 150 GB-s.
        assert!(close(usd(&e, "orchestrator invocations"), 0.0004));
        assert!(close(usd(&e, "orchestrator duration"), 150.0 * 0.000_013_333_4));
        // Processor: 100,000 invocations; 3008 MB buys 3008/1769 vCPUs, so an image bills
        // 0.2 s × 1769/3008 at 3008/1024 GB = 0.2 × 1769/1024 = 0.345507813 GB-s.
        assert!(close(usd(&e, "processor invocations"), 0.02));
        assert!(close(usd(&e, "processor duration"), 345_507.812_5 * 0.000_013_333_4));
        // Step Functions: 2,000 executions of 50 chunks in ceil(50/8) = 7 waves of
        // 10 × 0.2 × 1769/3008 = 1.17620 s: 8.2334 s, billed 8.3 s at 64 MB = 0.51875 GB-s.
        assert!(close(usd(&e, "Express executions"), 0.002));
        assert!(close(usd(&e, "Express duration"), 2000.0 * 0.518_75 * 0.06 / 3600.0));
        // SQS: S3's send plus a tenth of a receive and of a delete: 1.2M × $0.40/M.
        assert!(close(usd(&e, "requests"), 0.48));
        // S3: the original + 3 renditions = 4M PUTs × $0.005/1000; 1M GETs × $0.0004/1000.
        assert!(close(usd(&e, "PUT requests"), 20.0));
        assert!(close(usd(&e, "GET requests"), 0.40));
        // DynamoDB: PutItem + PROCESSING update (1 WRU each) + the final 1.5 KB record (2 WRU)
        // = 4M WRU × $0.625/M; one eventually consistent read = 0.5M RRU × $0.125/M.
        assert!(close(usd(&e, "write request units"), 2.50));
        assert!(close(usd(&e, "read request units"), 0.0625));
        let total = 2.0
            + 0.4
            + 0.800_004
            + 0.0004
            + 150.0 * 0.000_013_333_4
            + 0.02
            + 345_507.812_5 * 0.000_013_333_4
            + 0.002
            + 2000.0 * 0.518_75 * 0.06 / 3600.0
            + 0.48
            + 20.0
            + 0.40
            + 2.50
            + 0.0625;
        assert!(close(e.total_usd, total), "{} vs {total}", e.total_usd);
        assert!((e.total_usd - 31.29).abs() < 0.01, "{}", e.total_usd);
        // Storage: 350,000 B × 1M = 325.96 GiB × $0.023 a month.
        assert!(close(e.storage_usd_per_month, 350_000.0 * 1e6 / (1u64 << 30) as f64 * 0.023));
        assert!(close(e.service_usd("S3"), 20.40));
    }

    #[test]
    fn presigned_uploads_move_bytes_off_the_api() {
        let mut inputs = direct_case().inputs;
        inputs.presigned_fraction = 1.0;
        inputs.original_bytes = 3_000_000.0; // would be 6 metered requests as a direct upload
        let e = estimate(inputs, CostModel::default(), Prices::default());
        // One presign request per 100 files + a status read: 1.01M requests and invocations.
        assert!(close(usd(&e, "HTTP API requests"), 1.01));
        assert!(close(usd(&e, "ingest invocations"), 1.01 * 0.20));
        // The slot is one more write: 5M WRU.
        assert!(close(usd(&e, "write request units"), 5.0 * 0.625));
        inputs.presigned_fraction = 0.0;
        let direct = estimate(inputs, CostModel::default(), Prices::default());
        assert!(close(usd(&direct, "HTTP API requests"), 6.0 + 1.0), "3 MB = six 512 KB increments");
    }

    #[test]
    fn below_one_vcpu_the_processor_bills_the_same_cpu_time_more_slowly() {
        // At 1769 MB (one vCPU) an image bills 0.2 s at 1769/1024 GB; at 884.5 MB, half a vCPU
        // takes 0.4 s at half the memory: the same GB-s.
        let at = |mb: u32| {
            let model = CostModel { lambda_memory_mb: mb, ..CostModel::default() };
            usd(&estimate(direct_case().inputs, model, Prices::default()), "processor duration")
        };
        assert!(close(at(1769), 0.2 * 1769.0 / 1024.0 * 1e6 * 0.000_013_333_4));
        assert!((at(1769) - at(3008)).abs() < 1e-9);
        assert!((at(1000) - at(1769)).abs() < 1e-9);
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
        std::fs::write(&json, r#"{"sqs_million_requests": 0.5}"#).unwrap();
        assert_eq!(Prices::load(&json).unwrap().sqs_million_requests, 0.5);
        std::fs::write(&toml, "lambda_gb_second = 1\n").unwrap();
        let error = Prices::load(&toml).unwrap_err().to_string();
        assert!(error.contains("lambda_gb_second"), "{error}");
    }
}
