//! The sweeper: finds records left PENDING or PROCESSING past a deadline and sends them back
//! through the ingest queue, a bounded number of times, then marks them FAILED `internal`.
//!
//! Why it exists: on AWS nothing else notices a record whose work was lost. An Express
//! execution that hits its 5-minute limit runs no Catch; a processor that times out mid-chunk
//! after its `begin` leaves PROCESSING behind; an S3 event can be dead-lettered or lost. The
//! local stack's start-up recovery (`imgpipe::stack::recover`) covers a crashed process; this
//! covers a running stack, on a schedule (the template's `SweeperSchedule`).
//!
//! How it stays safe to run twice at once, or while the pipeline works: each write is
//! [`MetadataStore::sweep`], conditional on the record being exactly as listed, so a record
//! that finished or began again meanwhile is left alone and two sweepers count one re-drive;
//! and a record swept `n` times is due again only `n` × `resweep_after` later, so a sweeper
//! that lists a record just after another swept it leaves it for a later sweep.
//! The count comes before the message: a sweeper that dies between the two has spent one
//! re-drive of the budget, and the next sweep finds the record again. Re-drives go through the
//! queue as [`Redrive`] messages, so the orchestrator's grouping and the workflow's
//! backpressure apply to them as to any upload.

use imgpipe_core::ImageError;
use imgpipe_core::event::Redrive;
use imgpipe_core::policy::{CHUNK_SIZE, SweepPolicy};
use imgpipe_core::ports::{EventQueue, MetadataError, MetadataStore, QueueError, SweepAction};
use imgpipe_core::record::MetadataRecord;
use imgpipe_core::seams::{ObjectRef, Status};
use std::collections::BTreeMap;
use tracing::{error, info, warn};

/// Records read per page of [`MetadataStore::list`].
const PAGE: usize = 200;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Open records past their deadline.
    pub stuck: usize,
    /// Of those, counted and sent back through the queue.
    pub redriven: usize,
    /// Of those, out of re-drives and marked FAILED `internal`.
    pub failed: usize,
    /// Of those, changed since they were listed (finished, begun again, or swept by another
    /// sweeper): left alone.
    pub moved_on: usize,
}

/// Why a sweep stopped.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// Listing the open records failed.
    #[error("listing {status} records")]
    List {
        /// The status listed.
        status: &'static str,
        /// The store's error.
        #[source]
        source: MetadataError,
    },
    /// Writing the sweep on a record failed.
    #[error("recording the sweep of {id}")]
    Record {
        /// The image.
        id: String,
        /// The store's error.
        #[source]
        source: MetadataError,
    },
    /// Sending re-drives failed (their records were counted and will be found again).
    #[error("sending a re-drive of {images} images")]
    Send {
        /// Images in the message.
        images: usize,
        /// The queue's error.
        #[source]
        source: QueueError,
    },
}

/// Re-drives and fails stuck records over `metadata` and `queue`.
pub struct Sweeper<'a> {
    metadata: &'a dyn MetadataStore,
    queue: &'a dyn EventQueue,
    bucket: String,
    policy: SweepPolicy,
}

impl<'a> Sweeper<'a> {
    /// A sweeper whose re-drives name originals in `bucket` (records keep only the key).
    pub fn new(
        metadata: &'a dyn MetadataStore,
        queue: &'a dyn EventQueue,
        bucket: impl Into<String>,
        policy: SweepPolicy,
    ) -> Self {
        Self { metadata, queue, bucket: bucket.into(), policy }
    }

    /// One sweep at `now_ms`: every PENDING record created before its deadline and every
    /// PROCESSING one whose attempt started before its deadline, through the status listing.
    pub async fn run(&self, now_ms: u64) -> Result<SweepReport, SweepError> {
        let mut report = SweepReport::default();
        for (status, after) in
            [(Status::Pending, self.policy.pending_after), (Status::Processing, self.policy.processing_after)]
        {
            let resweep = self.policy.resweep_after.as_millis() as u64;
            // Stuck: waiting since before `after` ago, plus `resweep_after` per earlier sweep.
            let due = |r: &MetadataRecord| {
                since(r).saturating_add(after.as_millis() as u64).saturating_add(resweep * u64::from(r.sweeps)) < now_ms
            };
            let mut cursor = None;
            loop {
                let page = self
                    .metadata
                    .list(Some(status), cursor.as_deref(), PAGE)
                    .await
                    .map_err(|source| SweepError::List { status: status.as_str(), source })?;
                let stuck = page.records.into_iter().filter(|r| r.status == status && due(r));
                self.sweep_page(stuck, now_ms, &mut report).await?;
                match page.cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        info!(
            stuck = report.stuck,
            redriven = report.redriven,
            failed = report.failed,
            moved_on = report.moved_on,
            "sweep finished"
        );
        Ok(report)
    }

    async fn sweep_page(
        &self,
        stuck: impl Iterator<Item = MetadataRecord>,
        now_ms: u64,
        report: &mut SweepReport,
    ) -> Result<(), SweepError> {
        // Re-drives by the attempt they carry (one per sweep of the record), so each message's
        // workflow compares one number with the budget.
        let mut redrives: BTreeMap<u32, Vec<ObjectRef>> = BTreeMap::new();
        for record in stuck {
            report.stuck += 1;
            let status = record.status.as_str();
            let action = if record.sweeps < self.policy.max_sweeps {
                SweepAction::Redrive
            } else {
                SweepAction::Fail(ImageError::internal(format!("stuck in {status} after {} re-drives", record.sweeps)))
            };
            let written = self
                .metadata
                .sweep(&record, &action, now_ms)
                .await
                .map_err(|source| SweepError::Record { id: record.id.to_string(), source })?;
            let image_id = record.id.to_string();
            match (written, action) {
                (false, _) => {
                    report.moved_on += 1;
                    info!(image_id, status, "record changed since it was listed; left alone");
                }
                (true, SweepAction::Redrive) => {
                    report.redriven += 1;
                    let sweeps = record.sweeps + 1;
                    warn!(image_id, status, sweeps, max_sweeps = self.policy.max_sweeps, "stuck record re-driven");
                    redrives.entry(sweeps).or_default().push(ObjectRef {
                        bucket: self.bucket.clone(),
                        key: record.source.key,
                        size: record.source.bytes,
                        etag: record.source.etag,
                    });
                }
                (true, SweepAction::Fail(error)) => {
                    report.failed += 1;
                    error!(image_id, status, reason = %error.message, "stuck record marked FAILED");
                }
            }
        }
        for (attempt, images) in redrives {
            for chunk in images.chunks(CHUNK_SIZE) {
                let redrive = Redrive {
                    attempt,
                    images: chunk.to_vec(),
                    reason: format!("swept: stuck PENDING or PROCESSING (re-drive {attempt})"),
                };
                self.queue
                    .send(&redrive.to_json())
                    .await
                    .map_err(|source| SweepError::Send { images: chunk.len(), source })?;
            }
        }
        Ok(())
    }
}

/// When the record's current wait began: its creation while PENDING, its attempt's start while
/// PROCESSING.
fn since(record: &MetadataRecord) -> u64 {
    match record.status {
        Status::Processing => record.started_ms.unwrap_or(record.created_ms),
        _ => record.created_ms,
    }
}
