//! The one write path of an upload: store the original with its options, then accept it in the
//! metadata store together with the S3 ObjectCreated notification (which the local backend
//! enqueues in the same transaction, and the AWS backend leaves to S3).

use crate::error::ApiError;
use crate::state::AppState;
use bytes::Bytes;
use imgpipe_core::InputFormat;
use imgpipe_core::event::S3Notification;
use imgpipe_core::ports::{ObjectInfo, ObjectMeta};
use imgpipe_core::preset::DEFAULT_PRESET;
use imgpipe_core::record::{MetadataRecord, Source, now_ms, rfc3339};
use imgpipe_core::seams::{ImageId, ObjectRef, Status};
use std::collections::BTreeMap;

/// The object metadata key that carries the preset with the original.
pub const PRESET_META: &str = "preset";

/// Stores `bytes` as a new original for `id` and records it PENDING. The key's extension comes
/// from the bytes, never the name; unknown bytes are stored as `.bin` and still accepted, so
/// they end FAILED `unsupported` like every other accepted upload ends DONE or FAILED.
pub async fn accept_new(
    state: &AppState,
    id: ImageId,
    bytes: Bytes,
    content_type: &str,
    preset: &str,
) -> Result<(), ApiError> {
    let extension = InputFormat::sniff(&bytes).map_or("bin", InputFormat::extension);
    let key = id.original_key(extension);
    let info = put_original(state, &key, bytes, content_type, preset).await?;
    let source = Source { key, bytes: info.size, etag: info.etag, content_type: content_type.to_owned() };
    let record = MetadataRecord::pending(id, source, preset.to_owned(), now_ms());
    if let Err(error) = accept(state, &record).await {
        // The key is fresh, so the object is ours alone: do not leave it behind unrecorded.
        if let Err(cleanup) = state.objects.delete(&record.source.key).await {
            tracing::warn!(image_id = %id, key = %record.source.key, error = %cleanup, "orphaned original left behind");
        }
        return Err(error);
    }
    tracing::info!(image_id = %id, key = %record.source.key, bytes = record.source.bytes, "upload accepted");
    Ok(())
}

/// Stores the bytes of a reserved slot at its key and moves the slot to PENDING.
pub(crate) async fn accept_reserved(state: &AppState, slot: MetadataRecord, bytes: Bytes) -> Result<(), ApiError> {
    let info = put_original(state, &slot.source.key, bytes, &slot.source.content_type, &slot.preset).await?;
    // The slot's `created_ms` stays: the record was accepted when the slot was created.
    let mut record = slot;
    record.status = Status::Pending;
    record.source.bytes = info.size;
    record.source.etag = info.etag;
    record.expires_at = None;
    accept(state, &record).await?;
    tracing::info!(image_id = %record.id, key = %record.source.key, bytes = record.source.bytes, "presigned upload accepted");
    Ok(())
}

async fn put_original(
    state: &AppState,
    key: &str,
    bytes: Bytes,
    content_type: &str,
    preset: &str,
) -> Result<ObjectInfo, ApiError> {
    // Only what differs from the defaults travels: an absent preset means the default one (a
    // local original with nothing else to say needs no metadata file, and fsyncs half as often).
    let metadata = match preset {
        DEFAULT_PRESET => BTreeMap::new(),
        other => BTreeMap::from([(PRESET_META.to_owned(), other.to_owned())]),
    };
    let meta = ObjectMeta { content_type: content_type.to_owned(), metadata };
    Ok(state.objects.put(key, bytes, &meta).await?)
}

/// The S3 ObjectCreated notification for an original stored in `bucket` as `source`, now: what
/// S3 sends on AWS, and what the local backend enqueues for every accepted or recovered upload.
pub fn notification(bucket: &str, source: &Source) -> String {
    let object =
        ObjectRef { bucket: bucket.to_owned(), key: source.key.clone(), size: source.bytes, etag: source.etag.clone() };
    S3Notification::object_created(&object, &rfc3339(now_ms())).to_json()
}

async fn accept(state: &AppState, record: &MetadataRecord) -> Result<(), ApiError> {
    let notification = notification(&state.config.bucket, &record.source);
    match state.metadata.accept(record, &notification).await {
        Err(imgpipe_core::ports::MetadataError::Conflict { .. }) => Err(ApiError::AlreadyUploaded),
        other => Ok(other?),
    }
}
