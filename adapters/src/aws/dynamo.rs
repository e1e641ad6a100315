//! [`DynamoMetadataStore`]: one DynamoDB item per image, the record's JSON attribute by
//! attribute, with a write-sharded GSI for listing by status.
//!
//! Table layout (the template declares the same): partition key `id` (S); GSI [`BY_STATUS`] with
//! hash [`STATUS_SHARD`] (N, the status and one of [`STATUS_SHARDS`] shards) and range
//! [`CREATED_KEY`] (S, `{created_ms:015}#{id}`, so pages are newest first with the id breaking
//! ties), projecting the keys and `error` only; TTL on `expires_at` (expired AWAITING_UPLOAD
//! slots).
//!
//! Why sharded: one partition key value takes about 1,000 write units a second, and every
//! status change deletes the image's index entry under the old key and puts one under the new.
//! Keyed on the status alone, the PENDING and PROCESSING keys saturate near 500 images/s and a
//! throttled index throttles the table's own writes. Spread over [`STATUS_SHARDS`] keys per
//! status, the index carries 32 × 1,000 / 2 = 16,000 images/s; a list reads every shard of the
//! statuses asked for and merges them by [`CREATED_KEY`]. Why keys only: an index entry then
//! costs one write unit whatever the record's size (a projected DONE record costs two or
//! more), and a page of records is one `BatchGetItem` of the merged ids.

use super::backend_error;
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, PutRequest, ReturnValue, ReturnValuesOnConditionCheckFailure, Select,
    WriteRequest,
};
use futures_util::{StreamExt, stream};
use imgpipe_core::ErrorKind;
use imgpipe_core::policy::RetryPolicy;
use imgpipe_core::ports::{BackendError, Begin, Counts, EventSource, MetadataError, MetadataStore, Page, SweepAction};
use imgpipe_core::record::MetadataRecord;
use imgpipe_core::seams::{ImageId, Status};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// The GSI that lists records by status, newest first.
pub const BY_STATUS: &str = "by-status";
/// The GSI's hash key attribute (N): [`status_shard`] of the record's status and shard.
pub const STATUS_SHARD: &str = "status_shard";
/// The record's shard (N, [`shard`]), written with the item and never changed, so that an update
/// can set `status_shard = index_shard + :base` without the id's hash (the state machine's Catch does).
pub const SHARD: &str = "index_shard";
/// Index keys per status. A non-final status key takes two write units per image (the entry
/// put, then deleted when the status moves on), a final one takes one: at about 1,000 write
/// units a second per key, the index carries `STATUS_SHARDS × 1,000 / 2` = 16,000 images/s.
/// Changing it re-keys every item: it is part of the table's layout.
pub const STATUS_SHARDS: u32 = 32;
/// The GSI's range key attribute.
pub const CREATED_KEY: &str = "created_key";
/// Index queries in flight at once while listing or counting (one per status and shard).
const QUERY_CONCURRENCY: usize = 16;
/// Most requests in one `BatchWriteItem` (DynamoDB's limit; moto accepts more, so it is ours).
pub const BATCH_WRITE_MAX: usize = 25;
/// Most keys in one `BatchGetItem` (DynamoDB's limit).
pub const BATCH_GET_MAX: usize = 100;
/// Write calls in flight at once: `BatchWriteItem`s of upload slots, `PutItem`s of final records.
pub const WRITE_CONCURRENCY: usize = 8;
/// Calls of one batch group before its unprocessed items are given up on.
const BATCH_ATTEMPTS: u32 = 8;
/// The wait before a batch group's unprocessed items are sent again: exponential from 50 ms,
/// capped at 2 s, with full jitter so that throttled writers do not all come back together.
const UNPROCESSED_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: BATCH_ATTEMPTS - 1,
    interval: Duration::from_millis(50),
    backoff_rate: 2.0,
    max_delay: Duration::from_secs(2),
};

type Item = HashMap<String, AttributeValue>;

/// Records in one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoMetadataStore {
    client: Client,
    table: String,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn created_key(created_ms: u64, id: ImageId) -> String {
    format!("{created_ms:015}#{id}")
}

/// The index shard of `id`: stable, and spread evenly over `0..STATUS_SHARDS`.
pub fn shard(id: ImageId) -> u32 {
    id.spread() % STATUS_SHARDS
}

/// The index key of `status` in `shard`: `100 × code + shard`, the codes in life order from 1
/// (AWAITING_UPLOAD 1, PENDING 2, PROCESSING 3, DONE 4, FAILED 5): DONE in shard 7 is 407.
pub fn status_shard(status: Status, shard: u32) -> u32 {
    let code = match status {
        Status::AwaitingUpload => 1,
        Status::Pending => 2,
        Status::Processing => 3,
        Status::Done => 4,
        Status::Failed => 5,
    };
    100 * code + shard
}

/// The attributes that put `id`'s item under `status` in the index.
fn index_values(id: ImageId, status: Status) -> [(String, AttributeValue); 2] {
    [(":shard".to_owned(), n(shard(id))), (":status_shard".to_owned(), n(status_shard(status, shard(id))))]
}

fn to_item(record: &MetadataRecord) -> Result<Item, MetadataError> {
    let mut item: Item = serde_dynamo::to_item(record)
        .map_err(|e| BackendError::permanent(format!("encoding the record of {}", record.id), e))?;
    item.insert(CREATED_KEY.into(), s(created_key(record.created_ms, record.id)));
    item.insert(SHARD.into(), n(shard(record.id)));
    item.insert(STATUS_SHARD.into(), n(status_shard(record.status, shard(record.id))));
    Ok(item)
}

fn from_item(item: Item) -> Result<MetadataRecord, MetadataError> {
    serde_dynamo::from_item(item).map_err(|e| BackendError::permanent("decoding a record", e).into())
}

/// Where a list stopped: the [`CREATED_KEY`] of the last record returned. Every status and
/// shard is read on from there, so one key is the whole position.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    before: String,
}

impl Cursor {
    fn encode(&self) -> String {
        hex::encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(text: &str) -> Result<Self, MetadataError> {
        let invalid = || MetadataError::InvalidCursor(text.to_owned());
        let bytes = hex::decode(text).map_err(|_| invalid())?;
        serde_json::from_slice(&bytes).map_err(|_| invalid())
    }
}

impl DynamoMetadataStore {
    /// The store over `table`.
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        Self::from_client(Client::new(config), table)
    }

    /// The store over `table` through a client configured by the caller.
    pub fn from_client(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    /// Puts `record` if `condition` holds; `Ok(false)` when it does not.
    async fn put_if(&self, record: &MetadataRecord, condition: &str, values: Item) -> Result<bool, MetadataError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(record)?))
            .condition_expression(condition)
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(values).filter(|v| !v.is_empty()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(backend_error(format!("writing the record of {}", record.id), e).into()),
        }
    }

    /// One `BatchWriteItem` group, with unprocessed items retried (full-jitter backoff).
    async fn batch_put(&self, records: &[MetadataRecord]) -> Result<(), MetadataError> {
        let mut requests = records
            .iter()
            .map(|r| {
                let put = PutRequest::builder()
                    .set_item(Some(to_item(r)?))
                    .build()
                    .map_err(|e| BackendError::permanent("building a put request", e))?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, MetadataError>>()?;
        for attempt in 1..=BATCH_ATTEMPTS {
            let output = self
                .client
                .batch_write_item()
                .request_items(&self.table, requests)
                .send()
                .await
                .map_err(|e| backend_error("writing records in a batch", e))?;
            requests = output.unprocessed_items().and_then(|u| u.get(&self.table)).cloned().unwrap_or_default();
            if requests.is_empty() {
                return Ok(());
            }
            tracing::debug!(unprocessed = requests.len(), attempt, "retrying unprocessed records");
            tokio::time::sleep(UNPROCESSED_RETRY.jittered(attempt, fastrand::f64())).await;
        }
        let message = format!("{} records still unprocessed after {BATCH_ATTEMPTS} attempts", requests.len());
        Err(BackendError::without_source(message, true).into())
    }

    /// The items of `ids` (at most [`BATCH_GET_MAX`]; those that exist), only `projection`'s
    /// attributes if given: one consistent `BatchGetItem`, unprocessed keys retried (full-jitter
    /// backoff).
    async fn batch_get(&self, ids: &[ImageId], projection: Option<&str>) -> Result<Vec<Item>, MetadataError> {
        let keys = ids.iter().map(|id| HashMap::from([("id".to_owned(), s(id.to_string()))])).collect();
        let mut request = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .set_projection_expression(projection.map(str::to_owned))
            .consistent_read(true)
            .build()
            .map_err(|e| BackendError::permanent("building a batch read", e))?;
        let mut found = Vec::new();
        for attempt in 1..=BATCH_ATTEMPTS {
            let output = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| backend_error("reading records in a batch", e))?;
            found.extend(output.responses().and_then(|r| r.get(&self.table)).into_iter().flatten().cloned());
            match output.unprocessed_keys().and_then(|u| u.get(&self.table)).filter(|k| !k.keys().is_empty()) {
                None => return Ok(found),
                Some(rest) => request = rest.clone(),
            }
            tracing::debug!(unprocessed = request.keys().len(), attempt, "retrying unprocessed keys");
            tokio::time::sleep(UNPROCESSED_RETRY.jittered(attempt, fastrand::f64())).await;
        }
        let message = format!("{} keys still unprocessed after {BATCH_ATTEMPTS} attempts", request.keys().len());
        Err(BackendError::without_source(message, true).into())
    }

    /// The records of `ids`, [`BATCH_GET_MAX`] per `BatchGetItem`, [`WRITE_CONCURRENCY`] calls
    /// at once; ids without an item are left out.
    async fn records(&self, ids: &[ImageId]) -> Result<HashMap<ImageId, MetadataRecord>, MetadataError> {
        let groups: Vec<_> = ids.chunks(BATCH_GET_MAX).map(|group| self.batch_get(group, None)).collect();
        let mut calls = stream::iter(groups).buffer_unordered(WRITE_CONCURRENCY);
        let mut records = HashMap::with_capacity(ids.len());
        while let Some(items) = calls.next().await {
            for item in items? {
                let record = from_item(item)?;
                records.insert(record.id, record);
            }
        }
        Ok(records)
    }

    /// A query of one index key: `status` in `shard`, newest first.
    fn by_status(
        &self,
        status: Status,
        shard: u32,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .index_name(BY_STATUS)
            .key_condition_expression(format!("{STATUS_SHARD} = :key"))
            .expression_attribute_values(":key", n(status_shard(status, shard)))
            .scan_index_forward(false)
    }

    /// Up to `limit` index entries (created key, id) of `status` in `shard`, newest first, older
    /// than `before`; and whether the shard may hold more.
    async fn query_shard(
        &self,
        status: Status,
        shard: u32,
        before: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<(String, ImageId)>, bool), MetadataError> {
        let mut query = self.by_status(status, shard).limit(i32::try_from(limit).unwrap_or(i32::MAX));
        if let Some(before) = before {
            query = query
                .key_condition_expression(format!("{STATUS_SHARD} = :key AND {CREATED_KEY} < :before"))
                .expression_attribute_values(":before", s(before));
        }
        let output =
            query.send().await.map_err(|e| backend_error(format!("listing {} records", status.as_str()), e))?;
        let entries = output
            .items()
            .iter()
            .filter_map(|item| {
                let key = item.get(CREATED_KEY)?.as_s().ok()?.clone();
                Some((key, item.get("id")?.as_s().ok()?.parse().ok()?))
            })
            .collect();
        Ok((entries, output.last_evaluated_key().is_some()))
    }

    /// Records with `status` in `shard`.
    async fn count_shard(&self, status: Status, shard: u32) -> Result<u64, MetadataError> {
        let mut pages = self.by_status(status, shard).select(Select::Count).into_paginator().send();
        let mut total = 0;
        while let Some(page) = pages.next().await {
            total += u64::try_from(page.map_err(|e| backend_error("counting records", e))?.count()).unwrap_or(0);
        }
        Ok(total)
    }

    /// FAILED records in `shard`, by error kind (the index projects `error`).
    async fn failures_in_shard(&self, shard: u32) -> Result<(u64, BTreeMap<ErrorKind, u64>), MetadataError> {
        let mut pages = self
            .by_status(Status::Failed, shard)
            .expression_attribute_names("#error", "error")
            .projection_expression("#error")
            .into_paginator()
            .send();
        let (mut failed, mut by_kind) = (0, BTreeMap::new());
        while let Some(page) = pages.next().await {
            let output = page.map_err(|e| backend_error("counting failures by kind", e))?;
            failed += output.items().len() as u64;
            for item in output.items() {
                let kind = item
                    .get("error")
                    .and_then(|e| e.as_m().ok())
                    .and_then(|m| m.get("kind"))
                    .and_then(|k| k.as_s().ok())
                    .and_then(|k| crate::parse_name::<ErrorKind>(k, "error kind").ok());
                if let Some(kind) = kind {
                    *by_kind.entry(kind).or_default() += 1;
                }
            }
        }
        Ok((failed, by_kind))
    }
}

/// Every index key of `statuses`.
fn index_keys(statuses: &[Status]) -> impl Iterator<Item = (Status, u32)> + '_ {
    statuses.iter().flat_map(|&status| (0..STATUS_SHARDS).map(move |shard| (status, shard)))
}

/// Statuses an attempt may start from (the local store's `begin` allows the same).
const STARTABLE: &str = "#status IN (:awaiting, :pending, :processing)";

fn startable_values() -> Item {
    HashMap::from([
        (":awaiting".to_owned(), s(Status::AwaitingUpload.as_str())),
        (":pending".to_owned(), s(Status::Pending.as_str())),
        (":processing".to_owned(), s(Status::Processing.as_str())),
    ])
}

#[async_trait]
impl MetadataStore for DynamoMetadataStore {
    /// S3 sends every ObjectCreated event as soon as the object is written.
    fn event_source(&self) -> EventSource {
        EventSource::ObjectStore
    }

    /// S3 sends the ObjectCreated event itself: `notification` is not needed here.
    async fn accept(&self, record: &MetadataRecord, _notification: &str) -> Result<(), MetadataError> {
        let conflict = MetadataError::Conflict { id: record.id, to: record.status };
        if record.status != Status::Pending {
            return Err(conflict);
        }
        let values = HashMap::from([(":awaiting".to_owned(), s(Status::AwaitingUpload.as_str()))]);
        match self.put_if(record, "attribute_not_exists(id) OR #status = :awaiting", values).await? {
            true => Ok(()),
            false => Err(conflict),
        }
    }

    /// [`BATCH_WRITE_MAX`] slots per `BatchWriteItem`, [`WRITE_CONCURRENCY`] calls at once, each
    /// call's `UnprocessedItems` retried: 1,000 slots take 40 calls, not 1,000 `PutItem`s one after
    /// another inside API Gateway's 30 s.
    async fn reserve(&self, slots: &[MetadataRecord]) -> Result<(), MetadataError> {
        if let Some(slot) = slots.iter().find(|r| r.status != Status::AwaitingUpload) {
            return Err(MetadataError::Conflict { id: slot.id, to: slot.status });
        }
        // The futures are made first: a closure inside the stream would not be `Send` for
        // `async_trait` (a higher-ranked lifetime the compiler cannot prove).
        let groups: Vec<_> = slots.chunks(BATCH_WRITE_MAX).map(|group| self.batch_put(group)).collect();
        let mut calls = stream::iter(groups).buffer_unordered(WRITE_CONCURRENCY);
        while let Some(written) = calls.next().await {
            written?;
        }
        Ok(())
    }

    async fn get(&self, id: ImageId) -> Result<Option<MetadataRecord>, MetadataError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", s(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend_error(format!("reading the record of {id}"), e))?;
        output.item.map(from_item).transpose()
    }

    /// One `BatchGetItem` per [`BATCH_GET_MAX`] ids, strongly consistent.
    async fn existing(&self, ids: &[ImageId]) -> Result<HashSet<ImageId>, MetadataError> {
        let mut unique: Vec<ImageId> = ids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let mut found = HashSet::new();
        for group in unique.chunks(BATCH_GET_MAX) {
            let items = self.batch_get(group, Some("id")).await?;
            found.extend(items.iter().filter_map(|item| item.get("id")?.as_s().ok()?.parse::<ImageId>().ok()));
        }
        Ok(found)
    }

    /// One conditional `UpdateItem`; when the condition fails, the old item comes back with the
    /// error (`ReturnValuesOnConditionCheckFailure`), so the processor needs no `GetItem`. It
    /// removes `expires_at`: a presigned upload's record goes from AWAITING_UPLOAD straight to
    /// PROCESSING, and the table's TTL would otherwise delete it once the slot's time is up.
    async fn begin(&self, id: ImageId, now_ms: u64) -> Result<Begin, MetadataError> {
        let mut values = startable_values();
        values.insert(":now".into(), AttributeValue::N(now_ms.to_string()));
        values.insert(":zero".into(), AttributeValue::N("0".into()));
        values.insert(":one".into(), AttributeValue::N("1".into()));
        values.extend(index_values(id, Status::Processing));
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", s(id.to_string()))
            .update_expression(
                "SET #status = :processing, attempts = if_not_exists(attempts, :zero) + :one, started_ms = :now, \
                 index_shard = :shard, status_shard = :status_shard REMOVE expires_at",
            )
            .condition_expression(format!("attribute_exists(id) AND {STARTABLE}"))
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => Ok(Begin::Started(from_item(output.attributes.unwrap_or_default())?)),
            Err(e) => match e.into_service_error() {
                UpdateItemError::ConditionalCheckFailedException(failed) => match failed.item {
                    None => Ok(Begin::Unknown),
                    Some(item) => {
                        let record = from_item(item)?;
                        if record.status.is_final() {
                            Ok(Begin::AlreadyFinal(record))
                        } else {
                            Err(MetadataError::Conflict { id, to: Status::Processing })
                        }
                    }
                },
                other => Err(BackendError::permanent(format!("starting an attempt on {id}"), other).into()),
            },
        }
    }

    /// One conditional `PutItem` per record, [`WRITE_CONCURRENCY`] at once, that never replaces
    /// a final record. Not `BatchWriteItem`, which takes no condition: two attempts finishing one
    /// image together (Express and S3 events are at-least-once) would rewrite a final record with
    /// another attempt count and other timings, and a late write could bring back a record that
    /// was meant to be gone (`tests/aws_stack.rs` watches for it). The write units are the same:
    /// one per item either way. Items are written whole and without `expires_at`, so the table's
    /// TTL never deletes a final record.
    async fn finish(&self, records: &[MetadataRecord]) -> Result<(), MetadataError> {
        if let Some(record) = records.iter().find(|r| !r.status.is_final()) {
            return Err(MetadataError::Conflict { id: record.id, to: record.status });
        }
        let records: Vec<MetadataRecord> =
            records.iter().map(|r| MetadataRecord { expires_at: None, ..r.clone() }).collect();
        let puts: Vec<_> = records.iter().map(|r| self.put_if(r, STARTABLE, startable_values())).collect();
        let mut puts = stream::iter(puts).buffer_unordered(WRITE_CONCURRENCY);
        while let Some(written) = puts.next().await {
            // `false`: another attempt finished the image first; its record stays.
            written?;
        }
        Ok(())
    }

    /// Reads the newest `limit` index entries older than the cursor from every shard of the
    /// statuses asked for ([`QUERY_CONCURRENCY`] queries at once), merges them by
    /// [`CREATED_KEY`], and reads the records of the newest `limit` in one `BatchGetItem` per
    /// [`BATCH_GET_MAX`]. The index is eventually consistent and the records are read after it:
    /// a record whose status moved on since is left out of a page listing its old status.
    async fn list(&self, status: Option<Status>, cursor: Option<&str>, limit: usize) -> Result<Page, MetadataError> {
        let limit = limit.max(1);
        let statuses: Vec<Status> = status.map_or_else(|| Status::ALL.to_vec(), |s| vec![s]);
        let before = cursor.map(Cursor::decode).transpose()?.map(|c| c.before);
        let queries: Vec<_> = index_keys(&statuses)
            .map(|(status, shard)| self.query_shard(status, shard, before.as_deref(), limit))
            .collect();
        let mut queries = stream::iter(queries).buffer_unordered(QUERY_CONCURRENCY);
        let (mut entries, mut more, mut unread_below) = (Vec::new(), false, None::<String>);
        while let Some(found) = queries.next().await {
            let (found, truncated) = found?;
            if truncated {
                more = true;
                // A shard cut short (by `limit`, or by a query's 1 MB) may hold unread entries
                // older than its last one: nothing older than that is safe to return yet.
                if let Some((last, _)) = found.last() {
                    unread_below = unread_below.max(Some(last.clone()));
                }
            }
            entries.extend(found);
        }
        entries.retain(|(key, _)| unread_below.as_ref().is_none_or(|below| key >= below));
        entries.sort_unstable_by(|a, b| b.cmp(a));
        entries.dedup_by(|a, b| a.1 == b.1);
        if entries.len() > limit {
            entries.truncate(limit);
            more = true;
        }
        let ids: Vec<ImageId> = entries.iter().map(|(_, id)| *id).collect();
        let mut found = self.records(&ids).await?;
        let records = ids.iter().filter_map(|id| found.remove(id)).filter(|r| statuses.contains(&r.status)).collect();
        let cursor = entries.last().filter(|_| more).map(|(key, _)| Cursor { before: key.clone() }.encode());
        Ok(Page { records, cursor })
    }

    /// One `Select: COUNT` query per status and shard, and FAILED read by kind from the index's
    /// projected `error`, [`QUERY_CONCURRENCY`] at once.
    async fn counts(&self) -> Result<Counts, MetadataError> {
        let open: Vec<Status> = Status::ALL.into_iter().filter(|&s| s != Status::Failed).collect();
        let counts: Vec<_> =
            index_keys(&open)
                .map(|(status, shard)| async move {
                    Ok::<_, MetadataError>((status, self.count_shard(status, shard).await?))
                })
                .collect();
        let mut counts_by_shard = stream::iter(counts).buffer_unordered(QUERY_CONCURRENCY);
        let mut counts = Counts::default();
        while let Some(counted) = counts_by_shard.next().await {
            let (status, count) = counted?;
            *counts.by_status.entry(status).or_default() += count;
        }
        let failures: Vec<_> = (0..STATUS_SHARDS).map(|shard| self.failures_in_shard(shard)).collect();
        let mut failures = stream::iter(failures).buffer_unordered(QUERY_CONCURRENCY);
        let mut failed = 0;
        while let Some(found) = failures.next().await {
            let (in_shard, by_kind) = found?;
            failed += in_shard;
            for (kind, count) in by_kind {
                *counts.failed_by_kind.entry(kind).or_default() += count;
            }
        }
        counts.by_status.insert(Status::Failed, failed);
        Ok(counts)
    }

    /// One `UpdateItem` whose condition is the record as seen: status, `attempts`, `started_ms`
    /// and `sweeps` (absent attributes when they were unset).
    async fn sweep(&self, seen: &MetadataRecord, action: &SweepAction, now_ms: u64) -> Result<bool, MetadataError> {
        if seen.status.is_final() {
            return Err(MetadataError::Conflict { id: seen.id, to: seen.status });
        }
        let mut values = HashMap::from([
            (":seen_status".to_owned(), s(seen.status.as_str())),
            (":attempts".to_owned(), n(seen.attempts)),
            (":sweeps".to_owned(), n(seen.sweeps)),
        ]);
        let mut names = HashMap::from([("#status".to_owned(), "status".to_owned())]);
        let unset_or = |attribute: &str, value: &str, zero: bool| {
            if zero {
                format!("(attribute_not_exists({attribute}) OR {attribute} = {value})")
            } else {
                format!("{attribute} = {value}")
            }
        };
        let started = match seen.started_ms {
            Some(ms) => {
                values.insert(":started".into(), n(ms));
                "started_ms = :started".to_owned()
            }
            None => "attribute_not_exists(started_ms)".to_owned(),
        };
        let condition = format!(
            "#status = :seen_status AND {} AND {} AND {started}",
            unset_or("attempts", ":attempts", seen.attempts == 0),
            unset_or("sweeps", ":sweeps", seen.sweeps == 0),
        );
        let update = match action {
            SweepAction::Redrive => {
                values.insert(":next".into(), n(u64::from(seen.sweeps) + 1));
                "SET sweeps = :next".to_owned()
            }
            SweepAction::Fail(error) => {
                let error = serde_dynamo::to_attribute_value(error)
                    .map_err(|e| BackendError::permanent(format!("encoding the error of {}", seen.id), e))?;
                values.insert(":failed".into(), s(Status::Failed.as_str()));
                values.insert(":error".into(), error);
                values.insert(":now".into(), n(now_ms));
                values.extend(index_values(seen.id, Status::Failed));
                names.insert("#error".into(), "error".into());
                "SET #status = :failed, #error = :error, finished_ms = :now, index_shard = :shard, \
                 status_shard = :status_shard REMOVE expires_at"
                    .to_owned()
            }
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", s(seen.id.to_string()))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(backend_error(format!("sweeping the record of {}", seen.id), e).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_keys_are_distinct_per_status_and_shard() {
        let keys: HashSet<u32> = index_keys(&Status::ALL).map(|(status, shard)| status_shard(status, shard)).collect();
        assert_eq!(keys.len(), Status::ALL.len() * STATUS_SHARDS as usize);
        assert_eq!(status_shard(Status::Done, 7), 407);
        let id = ImageId::generate();
        assert!(shard(id) < STATUS_SHARDS);
        assert_eq!(shard(id), shard(id), "stable");
    }

    /// The state machine's Catch writes FAILED records itself, with `index_shard` + a constant.
    #[test]
    fn the_state_machine_moves_failed_records_to_the_failed_index_key() {
        let asl = include_str!("../../../infra/statemachine/process-images.asl.json");
        assert!(asl.contains(&format!("{STATUS_SHARD} = {SHARD} + :failed_key")), "the Catch's UpdateExpression");
        let asl: serde_json::Value = serde_json::from_str(asl).unwrap();
        let failed = &asl["States"]["ProcessChunks"]["ItemProcessor"]["States"]["MarkChunkFailed"]["ItemProcessor"]["States"]
            ["RecordFailed"]["Parameters"]["ExpressionAttributeValues"][":failed_key"]["N"];
        assert_eq!(failed.as_str(), Some(status_shard(Status::Failed, 0).to_string().as_str()));
    }

    #[test]
    fn cursors_round_trip_and_refuse_junk() {
        let cursor = Cursor { before: created_key(1_700_000_000_000, ImageId::generate()) };
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap().before, cursor.before);
        for junk in ["", "zz", "7b7d", &hex::encode("{\"after\":1}")] {
            assert!(matches!(Cursor::decode(junk), Err(MetadataError::InvalidCursor(_))), "{junk}");
        }
    }
}
