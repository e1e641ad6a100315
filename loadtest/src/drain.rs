//! Waiting for every accepted image to reach DONE or FAILED, by polling the listing
//! (`GET /v1/images?status=DONE|FAILED`, 1000 records a page), never one request per image.
//!
//! The listing is newest first by `created_ms`, and ids are ULIDs stamped at upload by the
//! server, so a tick stops paging once it is past the oldest id still open: the work per tick
//! follows what is still open, not what the target has ever stored.

use crate::api::{Api, CallError};
use indicatif::ProgressBar;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Records per listing page (the API's maximum).
const PAGE: usize = 1000;
/// How far before the oldest open id's timestamp a tick keeps paging, for clock steps and
/// `created_ms` written a moment after the id.
const SLACK_MS: u64 = 5_000;

/// Time spent per stage of an image's last attempt, in ms: the record's own type.
pub use imgpipe_core::record::StageDurations as Stages;

/// The parts of a final record the report uses (unknown fields are ignored, so a newer target
/// still parses).
#[derive(Debug, Clone, Deserialize)]
pub struct Final {
    /// Image id.
    pub id: String,
    /// `DONE` or `FAILED`.
    pub status: String,
    /// Accepted (upload complete, or presigned slot created), ms since the Unix epoch.
    pub created_ms: u64,
    /// Processing last started.
    #[serde(default)]
    pub started_ms: Option<u64>,
    /// Reached DONE or FAILED.
    #[serde(default)]
    pub finished_ms: Option<u64>,
    /// Stage times of the last attempt.
    #[serde(default)]
    pub durations_ms: Option<Stages>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<FinalError>,
    /// The original.
    #[serde(default)]
    pub source: Option<FinalSource>,
    /// The renditions (DONE).
    #[serde(default)]
    pub renditions: Vec<FinalRendition>,
    /// Size of the record's JSON.
    #[serde(skip)]
    pub record_bytes: usize,
}

/// A final record's `error`.
#[derive(Debug, Clone, Deserialize)]
pub struct FinalError {
    /// `corrupt`, `unsupported`, `too_large`, `limits` or `internal`.
    pub kind: String,
}

/// A final record's `source`.
#[derive(Debug, Clone, Deserialize)]
pub struct FinalSource {
    /// Size of the original.
    pub bytes: u64,
}

/// One of a final record's `renditions`.
#[derive(Debug, Clone, Deserialize)]
pub struct FinalRendition {
    /// Its size.
    pub bytes: u64,
}

/// What the drain saw.
#[derive(Debug, Default)]
pub struct Drained {
    /// Final records by id.
    pub finals: HashMap<String, Final>,
    /// Listing requests made.
    pub requests: u64,
    /// Listing requests that failed (retried at the next tick).
    pub errors: u64,
    /// From the start of the drain to its end.
    pub elapsed: Duration,
}

/// The listing refused us in a way waiting will not fix (a bad key, an unknown route).
#[derive(Debug, thiserror::Error)]
#[error("listing the records failed")]
pub struct DrainError(#[source] pub CallError);

/// Polls until every id of `ids` is final or `deadline` passes.
pub async fn drain(
    api: &Api,
    ids: impl IntoIterator<Item = String>,
    deadline: Instant,
    poll: Duration,
    bar: &ProgressBar,
) -> Result<Drained, DrainError> {
    let started = Instant::now();
    // id → its ULID's timestamp (0 when it is not a ULID: then every page is read).
    let mut open: HashMap<String, u64> = ids
        .into_iter()
        .map(|id| {
            let ms = ulid::Ulid::from_string(&id).map_or(0, |u| u.timestamp_ms());
            (id, ms)
        })
        .collect();
    let mut drained = Drained::default();
    while !open.is_empty() {
        let floor = open.values().copied().min().unwrap_or(0).saturating_sub(SLACK_MS);
        for status in ["DONE", "FAILED"] {
            if open.is_empty() {
                break; // the DONE pass closed the last open id: no FAILED listing needed
            }
            let mut cursor: Option<String> = None;
            loop {
                drained.requests += 1;
                let page = match api.list(status, cursor.as_deref(), PAGE).await {
                    Ok(page) => page,
                    Err(CallError::Status { status, code }) if (400..500).contains(&status) && status != 429 => {
                        return Err(DrainError(CallError::Status { status, code }));
                    }
                    Err(error) => {
                        drained.errors += 1;
                        tracing::warn!(%error, "listing records failed; retrying at the next tick");
                        break;
                    }
                };
                let mut oldest = u64::MAX;
                for value in page.images {
                    let created = value.get("created_ms").and_then(Value::as_u64).unwrap_or(0);
                    oldest = oldest.min(created);
                    let Some(id) = value.get("id").and_then(Value::as_str) else { continue };
                    if !open.contains_key(id) {
                        continue;
                    }
                    let record_bytes = value.to_string().len();
                    match serde_json::from_value::<Final>(value) {
                        Ok(mut record) => {
                            record.record_bytes = record_bytes;
                            open.remove(&record.id);
                            drained.finals.insert(record.id.clone(), record);
                        }
                        Err(error) => tracing::warn!(%error, "a record did not parse; it stays open"),
                    }
                }
                bar.set_position(drained.finals.len() as u64);
                if open.is_empty() || oldest < floor {
                    break;
                }
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        let now = Instant::now();
        if open.is_empty() || now >= deadline {
            break;
        }
        tokio::time::sleep(poll.min(deadline - now)).await;
    }
    bar.finish();
    drained.elapsed = started.elapsed();
    Ok(drained)
}
