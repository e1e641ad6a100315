//! The contracts between parts (`docs/architecture.md`, "Contracts"): ids, object keys and the
//! payloads that travel between the orchestrator, the workflow and the processor.

use crate::format::OutputFormat;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where originals are stored: every original's key starts with it (the S3 notification's
/// filter, the orchestrator's and the recovery's listing).
pub const ORIGINALS_PREFIX: &str = "originals/";

/// Where renditions are stored: every rendition's key starts with it.
pub const PROCESSED_PREFIX: &str = "processed/";

/// An image's id: a ULID assigned at upload, time-sortable, the only key a client needs.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, description = "A ULID."))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageId(ulid::Ulid);

impl ImageId {
    /// A fresh id for an upload happening now.
    pub fn generate() -> Self {
        ImageId(ulid::Ulid::generate())
    }

    /// A stable 32-bit hash of the id (FNV-1a over its 16 bytes). ULIDs sort by time, so keys
    /// and index entries named by the id alone all land at the tail of one key range; this
    /// spreads them: the object keys' prefix ([`ImageId::spread_prefix`]) and the metadata
    /// index's shard are taken from it.
    pub fn spread(self) -> u32 {
        self.0.to_bytes().iter().fold(0x811c_9dc5_u32, |hash, &byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193))
    }

    /// The four hex digits after `originals/` and `processed/`: 65,536 prefixes, so thousands of
    /// PUTs per second spread over as many S3 partitions as S3 cares to split them into.
    pub fn spread_prefix(self) -> String {
        format!("{:04x}", self.spread() >> 16)
    }

    /// The key of the original upload, given its extension: `originals/{prefix}/{id}.{ext}`.
    pub fn original_key(self, extension: &str) -> String {
        format!("{ORIGINALS_PREFIX}{}/{self}.{extension}", self.spread_prefix())
    }

    /// The key of one rendition, `processed/{prefix}/{id}/{rendition}.{ext}`: deterministic, so
    /// a retry overwrites identical bytes.
    pub fn rendition_key(self, rendition: &str, format: OutputFormat) -> String {
        format!("{PROCESSED_PREFIX}{}/{self}/{rendition}.{}", self.spread_prefix(), format.extension())
    }

    /// Recovers the id from an original's key: `originals/{prefix}/{id}.{ext}`, or the
    /// layout before spread prefixes, `originals/{id}.{ext}`. A prefix that is not the id's
    /// own is not an original's key.
    pub fn from_original_key(key: &str) -> Option<Self> {
        let path = key.strip_prefix(ORIGINALS_PREFIX)?;
        let (prefix, file) = match path.split_once('/') {
            Some((prefix, file)) => (Some(prefix), file),
            None => (None, path),
        };
        let stem = file.split_once('.').map_or(file, |(stem, _)| stem);
        let id: Self = stem.parse().ok()?;
        prefix.is_none_or(|p| p == id.spread_prefix()).then_some(id)
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for ImageId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ulid::Ulid::from_string(s).map(ImageId).map_err(|e| format!("invalid image id {s:?}: {e}"))
    }
}

impl TryFrom<String> for ImageId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<ImageId> for String {
    fn from(id: ImageId) -> String {
        id.to_string()
    }
}

/// A stored object, as named by an S3 event: keys only, never bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Bucket (the data directory's bucket name locally).
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Entity tag of the version that was written.
    pub etag: String,
}

/// A workflow execution's input: the chunks its Map iterates over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowInput {
    /// Deterministic id of the batch (also the execution name).
    pub batch_id: String,
    /// Times these images were sent back to the queue before (0: first run; see
    /// [`Redrive`](crate::event::Redrive)). Absent in inputs written before it existed.
    #[serde(default)]
    pub attempt: u32,
    /// The chunks, each one processor invocation.
    pub chunks: Vec<Vec<ObjectRef>>,
}

/// One processor invocation's input (one Map iteration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkInput {
    /// The batch this chunk belongs to.
    pub batch_id: String,
    /// The workflow's [`WorkflowInput::attempt`], for the chunk's re-drive when capacity runs out.
    #[serde(default)]
    pub attempt: u32,
    /// The originals to process.
    pub images: Vec<ObjectRef>,
}

/// One processor invocation's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkOutput {
    /// One outcome per input image.
    pub results: Vec<ImageOutcome>,
}

/// The outcome of one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageOutcome {
    /// The image.
    pub id: ImageId,
    /// DONE or FAILED.
    pub status: Status,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::error::ImageError>,
}

/// Where an image is in its life.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// A presigned upload slot whose bytes have not arrived.
    AwaitingUpload,
    /// Stored and queued.
    Pending,
    /// A processor is on it.
    Processing,
    /// Every rendition is stored.
    Done,
    /// It will never succeed; `error` says why.
    Failed,
}

impl Status {
    /// Every status, in life order.
    pub const ALL: [Status; 5] =
        [Status::AwaitingUpload, Status::Pending, Status::Processing, Status::Done, Status::Failed];

    /// The stable SCREAMING_SNAKE_CASE name used in JSON and queries.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::AwaitingUpload => "AWAITING_UPLOAD",
            Status::Pending => "PENDING",
            Status::Processing => "PROCESSING",
            Status::Done => "DONE",
            Status::Failed => "FAILED",
        }
    }

    /// Whether the image has reached an end state.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Done | Status::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_the_id() {
        let id = ImageId::generate();
        let prefix = id.spread_prefix();
        let key = id.original_key("jpg");
        assert_eq!(key, format!("originals/{prefix}/{id}.jpg"));
        assert_eq!(ImageId::from_original_key(&key), Some(id));
        assert_eq!(id.rendition_key("thumb", OutputFormat::Webp), format!("processed/{prefix}/{id}/thumb.webp"));
        assert_eq!(ImageId::from_original_key("processed/x.jpg"), None);
        assert_eq!(ImageId::from_original_key("originals/not-an-id.jpg"), None);
        assert_eq!(ImageId::from_original_key(&format!("originals/{id}/x.jpg")), None);
    }

    #[test]
    fn keys_before_spread_prefixes_still_name_their_id() {
        let id = ImageId::generate();
        assert_eq!(ImageId::from_original_key(&format!("originals/{id}.jpg")), Some(id));
        assert_eq!(ImageId::from_original_key(&format!("originals/{id}")), Some(id));
        let other = if id.spread_prefix() == "0000" { "0001" } else { "0000" };
        assert_eq!(ImageId::from_original_key(&format!("originals/{other}/{id}.jpg")), None, "not its prefix");
    }

    #[test]
    fn spread_is_stable_and_spreads_ids_of_one_millisecond() {
        // FNV-1a of 16 zero bytes: a fixed value, so keys never move between releases.
        assert_eq!(ImageId(ulid::Ulid::nil()).spread(), 0x6969_1905);
        let ids: Vec<ImageId> = (0..4096).map(|_| ImageId::generate()).collect();
        let prefixes: std::collections::HashSet<String> = ids.iter().map(|id| id.spread_prefix()).collect();
        // 4,096 ids over 65,536 prefixes: almost all distinct (about 124 collisions expected).
        assert!(prefixes.len() > 3800, "{}", prefixes.len());
        let mut per_shard = [0u32; 32];
        for id in &ids {
            per_shard[(id.spread() % 32) as usize] += 1;
        }
        // 128 expected per shard; a hash that did not spread would leave some far off.
        assert!(per_shard.iter().all(|&n| (80..=180).contains(&n)), "{per_shard:?}");
    }

    #[test]
    fn payloads_have_the_documented_json_shape() {
        let id: ImageId = "01JD0000000000000000000000".parse().unwrap();
        let output = ChunkOutput {
            results: vec![
                ImageOutcome { id, status: Status::Done, error: None },
                ImageOutcome { id, status: Status::Failed, error: Some(crate::ImageError::corrupt("truncated")) },
            ],
        };
        let json = serde_json::to_value(&output).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"results": [
                {"id": "01JD0000000000000000000000", "status": "DONE"},
                {"id": "01JD0000000000000000000000", "status": "FAILED", "error": {"kind": "corrupt", "message": "truncated"}},
            ]})
        );
        let input: ChunkInput = serde_json::from_value(serde_json::json!({
            "batch_id": "b1", "images": [{"bucket": "o", "key": "originals/a.jpg", "size": 3, "etag": "e"}]
        }))
        .unwrap();
        assert_eq!(input.images[0].key, "originals/a.jpg");
        assert_eq!(input.attempt, 0, "inputs without an attempt are first runs");
    }
}
