//! The metadata record: one per image, the same JSON in DynamoDB and SQLite.
//!
//! # Lifecycle
//!
//! ```text
//!  POST /v1/uploads ─reserve─▶ AWAITING_UPLOAD ─(no bytes before expires_at)─▶ deleted (TTL, local sweep)
//!                                   │ local signed PUT: accept   │ S3 presigned PUT: begin
//!                                   ▼                            │
//!  POST /v1/images ──accept───▶ PENDING                          │
//!                                   │ begin (processor)          │
//!                                   ▼                            ▼
//!                               PROCESSING ◀─────────────────────┘  (begin again on a retry or redelivery)
//!                                   │ finish (processor), a Catch, or the ingest (original not stored)
//!                                   ▼
//!                               DONE | FAILED   (never written again)
//! ```
//!
//! | transition | who writes it | how |
//! |---|---|---|
//! | → AWAITING_UPLOAD | ingest, `POST /v1/uploads` | `reserve`: conditional put, with `expires_at` |
//! | → PENDING | ingest (direct upload; the local signed PUT) | `accept`: conditional put (new id, or over a slot), no `expires_at` |
//! | → PROCESSING | processor, per attempt | `begin`: conditional update, removes `expires_at` (an S3 presigned PUT skips PENDING on AWS) |
//! | → DONE / FAILED | processor | `finish`: the record `begin` returned, made final ([`MetadataRecord::finished`]): no `expires_at`, the etag of the object it read, the sniffed content type |
//! | → FAILED `internal` | the state machine's Catch (AWS), the local runner's | a conditional `UpdateItem` that also removes `expires_at`; locally `finish` |
//! | → FAILED `internal` | ingest, when the original could not be stored after its record was written (AWS) | `finish` |
//! | PENDING/PROCESSING, `sweeps` + 1; then → FAILED `internal` | the sweeper (AWS), for a record stuck open past its deadline | `sweep`: conditional on the record as listed, never over a final one |
//!
//! `expires_at` exists only while a record is AWAITING_UPLOAD. DynamoDB's TTL deletes *any*
//! item whose `expires_at` has passed, whatever its status, so every write that moves a record
//! past AWAITING_UPLOAD removes it; the local sweep deletes expired slots the same way.
//!
//! A record exists before its original: on AWS the ingest writes the record, then the object
//! (S3 announces the object itself); locally the object is written first and the record and its
//! queued event are committed together afterwards (see [`EventSource`](crate::ports::EventSource)).
//! Until processing, `source.etag` may be empty (an S3 presigned PUT, or a direct upload on AWS,
//! whose record precedes its bytes); a final record carries the etag of the object processed.

use crate::error::ImageError;
use crate::format::{InputFormat, OutputFormat};
use crate::seams::{ImageId, Status};
use serde::{Deserialize, Serialize};

/// Everything known about one image, from upload to DONE or FAILED.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadataRecord {
    /// The image's id (partition key).
    pub id: ImageId,
    /// Where it is in its life.
    pub status: Status,
    /// The uploaded original.
    pub source: Source,
    /// The preset its renditions follow.
    pub preset: String,
    /// The file name the client gave, if any: untrusted text, for people to recognise the image
    /// by (never part of a key or a path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// What the original turned out to be, once decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<Original>,
    /// A placeholder to show while the renditions load (DONE only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<Placeholder>,
    /// The stored renditions (DONE only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renditions: Vec<RenditionRecord>,
    /// Why it failed (FAILED only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ImageError>,
    /// Processing attempts started so far.
    #[serde(default)]
    pub attempts: u32,
    /// Times the sweeper found this record stuck and re-drove it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sweeps: u32,
    /// Milliseconds since the Unix epoch: accepted (upload complete or slot created).
    pub created_ms: u64,
    /// When processing last started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    /// When it reached DONE or FAILED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    /// Time spent per stage of the last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durations_ms: Option<StageDurations>,
    /// Unix seconds after which an AWAITING_UPLOAD slot expires (DynamoDB TTL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

/// The uploaded original.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// Object key: `originals/{spread}/{id}.{ext}`.
    pub key: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Entity tag of the stored object (empty until known: see the module's lifecycle).
    pub etag: String,
    /// Content type sniffed from the bytes (until they are read, a slot's declared image type).
    pub content_type: String,
}

/// What the original is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Original {
    /// Sniffed format.
    pub format: InputFormat,
    /// Upright width.
    pub width: u32,
    /// Upright height.
    pub height: u32,
    /// EXIF orientation, 1..=8.
    pub orientation: u8,
}

/// What a front end can show before any rendition has loaded, computed from pixels the kernel
/// already holds.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placeholder {
    /// The image's [ThumbHash](https://evanw.github.io/thumbhash/), base64 (about 25 to 35
    /// characters): a blurred preview with the image's aspect ratio and alpha.
    pub thumbhash: String,
    /// The most common colour, `#rrggbb` (the fullest bin of a 16×16×16 RGB histogram, as sharp's
    /// `dominant`), for a plain background behind the image.
    pub dominant_color: String,
}

/// One stored rendition.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenditionRecord {
    /// Rendition name in the preset.
    pub name: String,
    /// Object key: `processed/{spread}/{id}/{name}.{ext}`.
    pub key: String,
    /// Encoding.
    pub format: OutputFormat,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Size in bytes.
    pub bytes: u64,
}

/// Milliseconds spent per stage (a stage missing from stored JSON reads as 0).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StageDurations {
    /// Probe and decode.
    pub decode: f64,
    /// All resizes.
    pub resize: f64,
    /// All watermarks.
    pub watermark: f64,
    /// All encodes.
    pub encode: f64,
    /// Reading the original and writing the renditions.
    pub store: f64,
}

impl StageDurations {
    /// All stages together.
    pub fn total(&self) -> f64 {
        self.decode + self.resize + self.watermark + self.encode + self.store
    }
}

impl MetadataRecord {
    /// A fresh PENDING record for an original that has been stored.
    pub fn pending(id: ImageId, source: Source, preset: String, now_ms: u64) -> Self {
        Self {
            id,
            status: Status::Pending,
            source,
            preset,
            filename: None,
            original: None,
            placeholder: None,
            renditions: Vec::new(),
            error: None,
            attempts: 0,
            sweeps: 0,
            created_ms: now_ms,
            started_ms: None,
            finished_ms: None,
            durations_ms: None,
            expires_at: None,
        }
    }

    /// The record as an attempt starts on it (what `begin` stores): PROCESSING, one attempt
    /// more, started now, no `expires_at` (it is past AWAITING_UPLOAD for good).
    pub fn begun(mut self, now_ms: u64) -> Self {
        self.status = Status::Processing;
        self.attempts = self.attempts.saturating_add(1);
        self.started_ms = Some(now_ms);
        self.expires_at = None;
        self
    }

    /// The record ended `status` (DONE or FAILED) now. A final record never carries
    /// `expires_at`: DynamoDB's TTL would delete it.
    pub fn finished(mut self, status: Status, now_ms: u64) -> Self {
        debug_assert!(status.is_final(), "{status:?} is not final");
        self.status = status;
        self.finished_ms = Some(now_ms);
        self.expires_at = None;
        self
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `ms` since the Unix epoch as RFC 3339 UTC with milliseconds, as S3 writes `eventTime`.
pub fn rfc3339(ms: u64) -> String {
    let (days, rest) = ((ms / 86_400_000) as i64, ms % 86_400_000);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm, proleptic Gregorian).
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, milli) = (rest / 3_600_000, rest / 60_000 % 60, rest / 1000 % 60, rest % 1000);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_767_225_599_999), "2025-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(1_709_210_096_789), "2024-02-29T12:34:56.789Z");
    }

    #[test]
    fn nothing_past_awaiting_upload_keeps_expires_at() {
        let id = ImageId::generate();
        let source = Source { key: id.original_key("jpg"), bytes: 1, etag: String::new(), content_type: "x".into() };
        let slot = MetadataRecord {
            status: Status::AwaitingUpload,
            expires_at: Some(1),
            ..MetadataRecord::pending(id, source, "default".into(), 0)
        };
        let begun = slot.clone().begun(5);
        assert_eq!(
            (begun.status, begun.attempts, begun.started_ms, begun.expires_at),
            (Status::Processing, 1, Some(5), None)
        );
        for status in [Status::Done, Status::Failed] {
            let end = slot.clone().finished(status, 9);
            assert_eq!((end.status, end.finished_ms, end.expires_at), (status, Some(9), None));
        }
    }

    #[test]
    fn records_round_trip_through_json_without_empty_fields() {
        let id = ImageId::generate();
        let source =
            Source { key: id.original_key("jpg"), bytes: 10, etag: "e".into(), content_type: "image/jpeg".into() };
        let record = MetadataRecord::pending(id, source, "default".into(), 1_700_000_000_000);
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["status"], "PENDING");
        assert!(json.get("error").is_none() && json.get("renditions").is_none());
        assert_eq!(serde_json::from_value::<MetadataRecord>(json).unwrap(), record);
    }
}
