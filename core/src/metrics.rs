//! The pipeline's metrics: one catalogue of names, recorded through the `metrics` facade.
//!
//! Libraries call the functions below; which recorder receives the numbers is the binary's
//! choice: Prometheus text behind `GET /metrics` for `imgpipe serve` (and the ingest
//! function's own counters on Lambda), CloudWatch Embedded Metric Format log lines for the
//! processor and orchestrator functions. Without a recorder every call is a no-op. Names follow
//! the Prometheus conventions (`_total`, `_seconds`, `_bytes`) in both exports, so a scrape and
//! the CloudWatch dashboard read the same names. Labels are few and bounded (stage, error kind,
//! refusal reason): on CloudWatch each label is a dimension, and every combination a metric.

use crate::ErrorKind;
use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};

/// Time spent per image in one pipeline stage (label `stage`), in seconds.
pub const STAGE_DURATION: &str = "imgpipe_stage_duration_seconds";
/// Images the processor finished DONE.
pub const IMAGES_DONE: &str = "imgpipe_images_done_total";
/// Images the pipeline finished FAILED (label `kind`).
pub const IMAGES_FAILED: &str = "imgpipe_images_failed_total";
/// Bytes of originals the processor read.
pub const BYTES_IN: &str = "imgpipe_processor_read_bytes_total";
/// Bytes of renditions the processor stored.
pub const BYTES_OUT: &str = "imgpipe_processor_written_bytes_total";
/// Images per started workflow (one batch).
pub const BATCH_IMAGES: &str = "imgpipe_batch_images";
/// Workflow executions started.
pub const EXECUTIONS_STARTED: &str = "imgpipe_executions_started_total";
/// Workflow executions that did not start (their messages are redelivered).
pub const EXECUTION_START_FAILURES: &str = "imgpipe_execution_start_failures_total";
/// Queue messages left for redelivery (label `reason`).
pub const MESSAGES_REFUSED: &str = "imgpipe_messages_refused_total";
/// Uploads the API accepted (raw, multipart, or a presigned slot's bytes through the API).
pub const UPLOADS_ACCEPTED: &str = "imgpipe_uploads_accepted_total";
/// Bytes of the uploads the API accepted.
pub const UPLOAD_BYTES: &str = "imgpipe_upload_bytes_total";

/// Upper bounds of the stage latency buckets, in seconds (Prometheus export).
pub const STAGE_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Upper bounds of the images-per-workflow buckets (Prometheus export).
pub const BATCH_BUCKETS: [f64; 9] = [1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0];

/// A timed stage of an image's processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Bytes to pixels, oriented and in 8-bit sRGB.
    Decode,
    /// Every rendition's resize.
    Resize,
    /// Drawing the watermarks.
    Watermark,
    /// Every rendition's encode.
    Encode,
    /// Fetching the original and storing the renditions.
    Store,
    /// From the upload's record to the final record.
    EndToEnd,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 6] =
        [Stage::Decode, Stage::Resize, Stage::Watermark, Stage::Encode, Stage::Store, Stage::EndToEnd];

    /// The value of the `stage` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Resize => "resize",
            Stage::Watermark => "watermark",
            Stage::Encode => "encode",
            Stage::Store => "store",
            Stage::EndToEnd => "end_to_end",
        }
    }
}

/// Why the orchestrator left a queue message for redelivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not an S3 notification it can read (dead-lettered after the receive limit).
    Unreadable,
    /// It names an original that has no record.
    Unrecorded,
    /// The records could not be looked up.
    Lookup,
    /// Its workflow did not start.
    Start,
}

impl Refusal {
    /// The value of the `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unreadable => "unreadable",
            Refusal::Unrecorded => "unrecorded",
            Refusal::Lookup => "lookup_failed",
            Refusal::Start => "start_failed",
        }
    }
}

/// Gives every metric its unit and help text (Prometheus `# HELP`, CloudWatch `Unit`): call
/// once after installing a recorder.
pub fn describe() {
    describe_histogram!(STAGE_DURATION, Unit::Seconds, "Time spent per image in each pipeline stage.");
    describe_counter!(IMAGES_DONE, Unit::Count, "Images the processor finished DONE.");
    describe_counter!(IMAGES_FAILED, Unit::Count, "Images finished FAILED, per error kind.");
    describe_counter!(BYTES_IN, Unit::Bytes, "Bytes of originals the processor read.");
    describe_counter!(BYTES_OUT, Unit::Bytes, "Bytes of renditions the processor stored.");
    describe_histogram!(BATCH_IMAGES, Unit::Count, "Images per started workflow.");
    describe_counter!(EXECUTIONS_STARTED, Unit::Count, "Workflow executions started.");
    describe_counter!(EXECUTION_START_FAILURES, Unit::Count, "Workflow executions that did not start.");
    describe_counter!(MESSAGES_REFUSED, Unit::Count, "Queue messages left for redelivery, per reason.");
    describe_counter!(UPLOADS_ACCEPTED, Unit::Count, "Uploads the API accepted.");
    describe_counter!(UPLOAD_BYTES, Unit::Bytes, "Bytes of the uploads the API accepted.");
}

/// Registers the processor's series before anything is processed, so that a scrape shows
/// them (at zero) from the start: for a process that runs the pipeline, not for one that only
/// serves the API (it would show latencies it can never measure).
pub fn register_pipeline() {
    for stage in Stage::ALL {
        // Registering the handle is what makes the series exist; no sample is recorded.
        let _ = histogram!(STAGE_DURATION, "stage" => stage.as_str());
    }
    counter!(IMAGES_DONE).increment(0);
    for kind in ErrorKind::ALL {
        counter!(IMAGES_FAILED, "kind" => kind.as_str()).increment(0);
    }
    counter!(BYTES_IN).increment(0);
    counter!(BYTES_OUT).increment(0);
}

/// Records that `stage` took `seconds` for one image.
pub fn stage(stage: Stage, seconds: f64) {
    histogram!(STAGE_DURATION, "stage" => stage.as_str()).record(seconds);
}

/// Records an image finished DONE.
pub fn image_done() {
    counter!(IMAGES_DONE).increment(1);
}

/// Records an image finished FAILED with `kind`.
pub fn image_failed(kind: ErrorKind) {
    counter!(IMAGES_FAILED, "kind" => kind.as_str()).increment(1);
}

/// Records `bytes` of an original read by the processor.
pub fn bytes_in(bytes: u64) {
    counter!(BYTES_IN).increment(bytes);
}

/// Records `bytes` of renditions stored by the processor.
pub fn bytes_out(bytes: u64) {
    counter!(BYTES_OUT).increment(bytes);
}

/// Records a started workflow of `images` images.
pub fn execution_started(images: usize) {
    counter!(EXECUTIONS_STARTED).increment(1);
    histogram!(BATCH_IMAGES).record(images as f64);
}

/// Records a workflow that did not start.
pub fn execution_start_failed() {
    counter!(EXECUTION_START_FAILURES).increment(1);
}

/// Records `messages` queue messages left for redelivery for `reason`.
pub fn messages_refused(reason: Refusal, messages: usize) {
    if messages > 0 {
        counter!(MESSAGES_REFUSED, "reason" => reason.as_str()).increment(messages as u64);
    }
}

/// Records an accepted upload of `bytes` bytes.
pub fn upload_accepted(bytes: u64) {
    counter!(UPLOADS_ACCEPTED).increment(1);
    counter!(UPLOAD_BYTES).increment(bytes);
}
