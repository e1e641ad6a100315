//! [`SfnWorkflows`]: starts one Step Functions Express execution per batch.

use super::backend_error;
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sfn::Client;
use imgpipe_core::ports::{WorkflowError, WorkflowStarter};
use imgpipe_core::seams::WorkflowInput;

/// Step Functions refuses execution inputs over 256 KiB.
pub const MAX_INPUT_BYTES: usize = 256 * 1024;

/// Starts executions of one state machine, named after the batch.
///
/// The name does not make a start idempotent: Express workflows do not deduplicate executions by
/// name (AWS documents that only Standard workflows do), so a redelivered batch may run twice, at
/// the same time even. What keeps that harmless is the processor's conditional
/// [`MetadataStore::begin`](imgpipe_core::ports::MetadataStore::begin) and deterministic keys
/// (`tests/aws_stack.rs` runs a batch twice at once to prove it).
#[derive(Debug, Clone)]
pub struct SfnWorkflows {
    client: Client,
    state_machine_arn: String,
}

impl SfnWorkflows {
    /// A starter for the state machine `state_machine_arn`.
    pub fn new(config: &SdkConfig, state_machine_arn: impl Into<String>) -> Self {
        Self { client: Client::new(config), state_machine_arn: state_machine_arn.into() }
    }
}

#[async_trait]
impl WorkflowStarter for SfnWorkflows {
    async fn start(&self, input: WorkflowInput) -> Result<(), WorkflowError> {
        let json = serde_json::to_string(&input).map_err(|e| WorkflowError::InvalidInput(e.to_string()))?;
        if json.len() > MAX_INPUT_BYTES {
            return Err(WorkflowError::InvalidInput(format!(
                "batch {} is {} bytes; Step Functions takes at most {MAX_INPUT_BYTES}",
                input.batch_id,
                json.len()
            )));
        }
        let started = self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(&input.batch_id)
            .input(json)
            .send()
            .await;
        match started {
            Ok(_) => Ok(()),
            // A Standard workflow (or moto) refuses a second execution of the same name: the batch
            // was started before. Express never says so; its duplicates are handled downstream.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_execution_already_exists()) => Ok(()),
            Err(e) => Err(backend_error(format!("starting batch {}", input.batch_id), e).into()),
        }
    }
}
