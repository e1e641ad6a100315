//! The orchestrator Lambda's handler: an SQS batch of S3 notifications (and re-drives) in, the
//! messages to redeliver out (`ReportBatchItemFailures`); and the sweeper Lambda's.
//!
//! [`Orchestrator::new`] and [`SweeperClients::new`] build what each Lambda `main` builds at
//! cold start, from its config; the emulated-stack tests build them the same way.

use crate::dispatch::{dispatch, report_unrecorded};
use crate::sweep::{SweepError, Sweeper};
use adapters::aws::{DynamoMetadataStore, Env, MissingVar, SfnWorkflows, SqsQueue, vars};
use aws_config::SdkConfig;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use imgpipe_core::policy::SweepPolicy;
use imgpipe_core::ports::{MetadataStore, WorkflowStarter};

/// Starts a workflow per group of the batch; the response lists exactly the messages whose
/// group did not start, unreadable ones and those naming an original without a record, so SQS
/// redelivers only those (and dead-letters them after the queue's `maxReceiveCount`).
pub async fn handle(
    event: SqsEvent,
    workflows: &dyn WorkflowStarter,
    metadata: &dyn MetadataStore,
) -> SqsBatchResponse {
    let dispatched = dispatch(workflows, metadata, event.records.iter().map(|r| r.body.as_deref().unwrap_or(""))).await;
    for (index, key) in &dispatched.unrecorded {
        let record = &event.records[*index];
        let receives = record.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse().ok()).unwrap_or(1);
        report_unrecorded(record.message_id.as_deref().unwrap_or_default(), key, receives);
    }
    SqsBatchResponse {
        batch_item_failures: dispatched
            .failed
            .iter()
            .map(|&i| BatchItemFailure { item_identifier: event.records[i].message_id.clone().unwrap_or_default() })
            .collect(),
    }
}

/// One scheduled sweep (the EventBridge event carries nothing it needs); its counts are the
/// answer, and the summary log line the template's metric filters read.
pub async fn sweep(sweeper: &Sweeper<'_>) -> Result<serde_json::Value, SweepError> {
    let report = sweeper.run(imgpipe_core::record::now_ms()).await?;
    Ok(serde_json::json!({
        "stuck": report.stuck,
        "redriven": report.redriven,
        "failed": report.failed,
        "moved_on": report.moved_on,
    }))
}

/// What the orchestrator Lambda is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The Express state machine it starts (`STATE_MACHINE_ARN`).
    pub state_machine_arn: String,
    /// The metadata records, checked before a workflow starts (`METADATA_TABLE`).
    pub metadata_table: String,
}

impl Config {
    /// From the environment the template sets, failing fast on a missing variable.
    pub fn from_env() -> Result<Config, MissingVar> {
        Ok(Config {
            state_machine_arn: Env.require(vars::STATE_MACHINE_ARN)?,
            metadata_table: Env.require(vars::METADATA_TABLE)?,
        })
    }
}

/// The orchestrator Lambda's clients, built once at cold start.
#[derive(Debug, Clone)]
pub struct Orchestrator {
    /// Where workflows start.
    pub workflows: SfnWorkflows,
    /// Where records are read.
    pub metadata: DynamoMetadataStore,
}

impl Orchestrator {
    /// The clients `config` names.
    pub fn new(sdk: &SdkConfig, config: &Config) -> Self {
        Self {
            workflows: SfnWorkflows::new(sdk, &config.state_machine_arn),
            metadata: DynamoMetadataStore::new(sdk, &config.metadata_table),
        }
    }

    /// Handles one SQS batch (see [`handle`]).
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        handle(event, &self.workflows, &self.metadata).await
    }
}

/// What the sweeper Lambda is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweeperConfig {
    /// The metadata records it sweeps (`METADATA_TABLE`).
    pub metadata_table: String,
    /// The ingest queue re-drives go through (`INGEST_QUEUE_URL`).
    pub ingest_queue_url: String,
    /// The bucket re-drives name originals in (`ORIGINALS_BUCKET`).
    pub originals_bucket: String,
}

impl SweeperConfig {
    /// From the environment the template sets, failing fast on a missing variable.
    pub fn from_env() -> Result<SweeperConfig, MissingVar> {
        Ok(SweeperConfig {
            metadata_table: Env.require(vars::METADATA_TABLE)?,
            ingest_queue_url: Env.require(vars::INGEST_QUEUE_URL)?,
            originals_bucket: Env.require(vars::ORIGINALS_BUCKET)?,
        })
    }
}

/// The sweeper Lambda's clients, built once at cold start; [`SweeperClients::sweeper`] borrows them.
#[derive(Debug, Clone)]
pub struct SweeperClients {
    /// The records swept.
    pub metadata: DynamoMetadataStore,
    /// The ingest queue (the sweeper only sends, so no dead-letter queue).
    pub queue: SqsQueue,
    /// The bucket re-drives name originals in.
    pub originals_bucket: String,
}

impl SweeperClients {
    /// The clients `config` names.
    pub fn new(sdk: &SdkConfig, config: &SweeperConfig) -> Self {
        Self {
            metadata: DynamoMetadataStore::new(sdk, &config.metadata_table),
            queue: SqsQueue::new(sdk, &config.ingest_queue_url, None),
            originals_bucket: config.originals_bucket.clone(),
        }
    }

    /// A sweeper over these clients with `policy` (the Lambda's: `imgpipe_core::policy::SWEEP`).
    pub fn sweeper(&self, policy: SweepPolicy) -> Sweeper<'_> {
        Sweeper::new(&self.metadata, &self.queue, self.originals_bucket.clone(), policy)
    }
}
