//! The one write path of an upload: the original and its record, in the order the metadata
//! store's [`EventSource`] needs, so that an ObjectCreated event never finds an object without
//! its record:
//!
//! - AWS (S3 announces the object): the PENDING record first, then the object. If the object
//!   cannot be written, the record is finished FAILED `internal` (a PutItem, which the ingest
//!   role already has), never left PENDING without an original.
//! - Local (`accept` enqueues the event with the record, in one transaction): the object first,
//!   then record and event together; a refused record removes the fresh object again. A crash
//!   between the two leaves an original without a record, which start-up recovery adopts.

use crate::error::ApiError;
use crate::state::AppState;
use bytes::Bytes;
use imgpipe_core::event::S3Notification;
use imgpipe_core::format::UNKNOWN_CONTENT_TYPE;
use imgpipe_core::ports::{EventSource, ObjectInfo, ObjectMeta};
use imgpipe_core::preset::DEFAULT_PRESET;
use imgpipe_core::record::{MetadataRecord, Source, now_ms};
use imgpipe_core::seams::{ImageId, Status};
use imgpipe_core::{ImageError, InputFormat};
use std::collections::BTreeMap;

/// The object metadata key that carries the preset with the original.
pub const PRESET_META: &str = "preset";

/// Stores `bytes` as a new original for `id` and records it PENDING. The key's extension and
/// the recorded content type come from the bytes, never from the name or the client's header;
/// unknown bytes are stored as `.bin` (`application/octet-stream`) and still accepted, so they
/// end FAILED `unsupported` like every other accepted upload ends DONE or FAILED. `filename`
/// is the client's name for the file, recorded as given (text to show, never a path).
pub async fn accept_new(
    state: &AppState,
    id: ImageId,
    bytes: Bytes,
    preset: &str,
    filename: Option<String>,
) -> Result<(), ApiError> {
    let format = InputFormat::sniff(&bytes);
    let source = Source {
        key: id.original_key(format.map_or("bin", InputFormat::extension)),
        bytes: bytes.len() as u64,
        etag: String::new(),
        content_type: format.map_or(UNKNOWN_CONTENT_TYPE, InputFormat::content_type).to_owned(),
    };
    let record = MetadataRecord { filename, ..MetadataRecord::pending(id, source, preset.to_owned(), now_ms()) };
    let record = store(state, record, bytes, Fresh::Key).await?;
    tracing::info!(image_id = %id, key = %record.source.key, bytes = record.source.bytes, "upload accepted");
    imgpipe_core::metrics::upload_accepted(record.source.bytes);
    Ok(())
}

/// Stores the bytes of a reserved slot at its key and moves the slot to PENDING.
pub(crate) async fn accept_reserved(state: &AppState, slot: MetadataRecord, bytes: Bytes) -> Result<(), ApiError> {
    // The slot's `created_ms` stays: the record was accepted when the slot was created.
    let mut record = slot;
    record.status = Status::Pending;
    record.source.bytes = bytes.len() as u64;
    record.source.content_type = InputFormat::sniff_content_type(&bytes).to_owned();
    record.expires_at = None;
    let record = store(state, record, bytes, Fresh::NotKey).await?;
    tracing::info!(image_id = %record.id, key = %record.source.key, bytes = record.source.bytes, "presigned upload accepted");
    imgpipe_core::metrics::upload_accepted(record.source.bytes);
    Ok(())
}

/// Whether the original's key was made for this request (so a failed upload may remove it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fresh {
    Key,
    NotKey,
}

/// Writes the original and accepts `record`, in the order [`EventSource`] asks for; returns
/// the record as accepted.
async fn store(
    state: &AppState,
    mut record: MetadataRecord,
    bytes: Bytes,
    fresh: Fresh,
) -> Result<MetadataRecord, ApiError> {
    match state.metadata.event_source() {
        EventSource::MetadataStore => {
            let info = put_original(state, &record, bytes).await?;
            record.source.etag = info.etag;
            if let Err(error) = accept(state, &record).await {
                if fresh == Fresh::Key {
                    // The key is fresh, so the object is ours alone: do not leave it unrecorded.
                    remove_original(state, &record).await;
                }
                return Err(error);
            }
        }
        EventSource::ObjectStore => {
            // The etag is the store's to report: the processor records it from the object.
            accept(state, &record).await?;
            if let Err(error) = put_original(state, &record, bytes).await {
                fail_unstored(state, &record, &error).await;
                return Err(error);
            }
        }
    }
    Ok(record)
}

/// Ends a record whose original could not be stored FAILED `internal`, so that it does not stay
/// PENDING forever, and an event for bytes that did land after all (a timeout after S3 stored
/// them) finds a final record and is dropped.
async fn fail_unstored(state: &AppState, record: &MetadataRecord, error: &ApiError) {
    let mut failed = record.clone();
    failed.error = Some(ImageError::internal(format!("the original could not be stored: {error}")));
    let failed = failed.finished(Status::Failed, now_ms());
    if let Err(e) = state.metadata.finish(std::slice::from_ref(&failed)).await {
        tracing::error!(image_id = %record.id, error = %e, "record left PENDING without its original");
    }
}

async fn remove_original(state: &AppState, record: &MetadataRecord) {
    if let Err(cleanup) = state.objects.delete(&record.source.key).await {
        tracing::warn!(image_id = %record.id, key = %record.source.key, error = %cleanup, "orphaned original left behind");
    }
}

async fn put_original(state: &AppState, record: &MetadataRecord, bytes: Bytes) -> Result<ObjectInfo, ApiError> {
    // Only what differs from the defaults travels: an absent preset means the default one (a
    // local original with nothing else to say needs no metadata file, and fsyncs half as often).
    let metadata = match record.preset.as_str() {
        DEFAULT_PRESET => BTreeMap::new(),
        other => BTreeMap::from([(PRESET_META.to_owned(), other.to_owned())]),
    };
    let meta = ObjectMeta { content_type: record.source.content_type.clone(), metadata };
    Ok(state.objects.put(&record.source.key, bytes, &meta).await?)
}

async fn accept(state: &AppState, record: &MetadataRecord) -> Result<(), ApiError> {
    let notification = S3Notification::original_stored(&state.config.bucket, &record.source, now_ms()).to_json();
    match state.metadata.accept(record, &notification).await {
        Err(imgpipe_core::ports::MetadataError::Conflict { .. }) => Err(ApiError::AlreadyUploaded),
        other => Ok(other?),
    }
}
