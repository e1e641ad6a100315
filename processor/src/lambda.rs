//! The processor Lambda's handler: one Map iteration's chunk in, per-image outcomes out.
//!
//! Images that cannot be processed (corrupt, unsupported, too large) are outcomes, not errors.
//! A chunk fails as a whole only when the infrastructure does; its error type tells the state
//! machine's `Retry` (which matches [`RETRYABLE_ERROR`]) whether to try again before `Catch`
//! marks its images FAILED.

use crate::RecipeError;
use crate::chunk::{ChunkService, Recipes};
use adapters::aws::presets::LoadedPresets;
use imgpipe_core::seams::{ChunkInput, ChunkOutput};
use lambda_runtime::Diagnostic;

/// The error type of a chunk worth retrying (throttling, 5xx, timeouts): the ASL's Retry names it.
pub const RETRYABLE_ERROR: &str = "RetryableError";
/// The error type of a chunk that will fail again: the ASL's Catch takes it at once.
pub const PERMANENT_ERROR: &str = "PermanentError";

/// Processes one chunk.
pub async fn handle(service: &ChunkService, input: ChunkInput) -> Result<ChunkOutput, Diagnostic> {
    service.process(&input).await.map_err(|e| {
        tracing::error!(batch_id = %input.batch_id, retryable = e.retryable, error = %e.message, "chunk failed");
        Diagnostic {
            error_type: if e.retryable { RETRYABLE_ERROR } else { PERMANENT_ERROR }.into(),
            error_message: e.message,
        }
    })
}

/// What the processor serves of loaded presets: a recipe per preset, logos decoded (a logo that
/// is not a readable PNG fails here, naming it).
pub fn recipes(presets: &LoadedPresets) -> Result<Recipes, RecipeError> {
    Recipes::new(&presets.catalog, |logo| presets.logo(logo))
}
