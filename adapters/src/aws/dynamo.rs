//! [`DynamoMetadataStore`]: one DynamoDB item per image, the record's JSON attribute by
//! attribute, with a GSI for listing by status.
//!
//! Table layout (the template declares the same): partition key `id` (S); GSI [`BY_STATUS`] with
//! hash `status` (S) and range [`CREATED_KEY`] (S, `{created_ms:015}#{id}`, so pages are newest
//! first with the id breaking ties); TTL on `expires_at` (expired AWAITING_UPLOAD slots).

use super::{backend_error, full_jitter};
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
use imgpipe_core::ports::{BackendError, Begin, Counts, EventSource, MetadataError, MetadataStore, Page, SweepAction};
use imgpipe_core::record::MetadataRecord;
use imgpipe_core::seams::{ImageId, Status};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// The GSI that lists records by status, newest first.
pub const BY_STATUS: &str = "by-status";
/// The GSI's range key attribute.
pub const CREATED_KEY: &str = "created_key";
/// Most requests in one `BatchWriteItem` (DynamoDB's limit; moto accepts more, so it is ours).
pub const BATCH_WRITE_MAX: usize = 25;
/// Most keys in one `BatchGetItem` (DynamoDB's limit).
pub const BATCH_GET_MAX: usize = 100;
/// Write calls in flight at once: `BatchWriteItem`s of upload slots, `PutItem`s of final records.
pub const WRITE_CONCURRENCY: usize = 8;
/// Calls of one batch group before its unprocessed items are given up on.
const BATCH_ATTEMPTS: u32 = 8;

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

fn created_key(created_ms: u64, id: ImageId) -> String {
    format!("{created_ms:015}#{id}")
}

fn to_item(record: &MetadataRecord) -> Result<Item, MetadataError> {
    let mut item: Item = serde_dynamo::to_item(record)
        .map_err(|e| BackendError::permanent(format!("encoding the record of {}", record.id), e))?;
    item.insert(CREATED_KEY.into(), s(created_key(record.created_ms, record.id)));
    Ok(item)
}

fn from_item(item: Item) -> Result<MetadataRecord, MetadataError> {
    serde_dynamo::from_item(item).map_err(|e| BackendError::permanent("decoding a record", e).into())
}

/// Where a list stopped: the last record returned per status (absent: not started; `None`:
/// that status is exhausted).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Cursor(BTreeMap<Status, Option<(String, String)>>);

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
            tokio::time::sleep(full_jitter(Duration::from_millis(50), Duration::from_secs(2), attempt)).await;
        }
        Err(BackendError {
            message: format!("{} records still unprocessed after {BATCH_ATTEMPTS} attempts", requests.len()),
            retryable: true,
            source: None,
        }
        .into())
    }

    /// Which of `ids` (at most [`BATCH_GET_MAX`]) have an item: one consistent `BatchGetItem`
    /// that reads only the key, with unprocessed keys retried (full-jitter backoff).
    async fn batch_existing(&self, ids: &[ImageId]) -> Result<HashSet<ImageId>, MetadataError> {
        let keys = ids.iter().map(|id| HashMap::from([("id".to_owned(), s(id.to_string()))])).collect();
        let mut request = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .projection_expression("id")
            .consistent_read(true)
            .build()
            .map_err(|e| BackendError::permanent("building a batch read", e))?;
        let mut found = HashSet::new();
        for attempt in 1..=BATCH_ATTEMPTS {
            let output = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| backend_error("reading records in a batch", e))?;
            let items = output.responses().and_then(|r| r.get(&self.table)).map(Vec::as_slice).unwrap_or_default();
            found.extend(items.iter().filter_map(|item| item.get("id")?.as_s().ok()?.parse::<ImageId>().ok()));
            match output.unprocessed_keys().and_then(|u| u.get(&self.table)).filter(|k| !k.keys().is_empty()) {
                None => return Ok(found),
                Some(rest) => request = rest.clone(),
            }
            tracing::debug!(unprocessed = request.keys().len(), attempt, "retrying unprocessed keys");
            tokio::time::sleep(full_jitter(Duration::from_millis(50), Duration::from_secs(2), attempt)).await;
        }
        Err(BackendError {
            message: format!("{} keys still unprocessed after {BATCH_ATTEMPTS} attempts", request.keys().len()),
            retryable: true,
            source: None,
        }
        .into())
    }

    /// A query of the [`BY_STATUS`] index for the records with `status`.
    fn by_status(&self, status: Status) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .index_name(BY_STATUS)
            .key_condition_expression("#status = :status")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status.as_str()))
    }

    /// One page of one status, newest first, after `after` (a `(created_key, id)` pair).
    async fn query_status(
        &self,
        status: Status,
        after: Option<&(String, String)>,
        limit: usize,
    ) -> Result<(Vec<MetadataRecord>, bool), MetadataError> {
        let start = after.map(|(key, id)| {
            HashMap::from([
                ("id".to_owned(), s(id.clone())),
                ("status".to_owned(), s(status.as_str())),
                (CREATED_KEY.to_owned(), s(key.clone())),
            ])
        });
        let output = self
            .by_status(status)
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| backend_error(format!("listing {} records", status.as_str()), e))?;
        let records = output.items().iter().cloned().map(from_item).collect::<Result<Vec<_>, _>>()?;
        let more = output.last_evaluated_key().is_some() && records.len() == limit;
        Ok((records, more))
    }

    async fn count_status(&self, status: Status) -> Result<u64, MetadataError> {
        let mut pages = self.by_status(status).select(Select::Count).into_paginator().send();
        let mut total = 0;
        while let Some(page) = pages.next().await {
            total += u64::try_from(page.map_err(|e| backend_error("counting records", e))?.count()).unwrap_or(0);
        }
        Ok(total)
    }
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
            found.extend(self.batch_existing(group).await?);
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
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", s(id.to_string()))
            .update_expression(
                "SET #status = :processing, attempts = if_not_exists(attempts, :zero) + :one, started_ms = :now \
                 REMOVE expires_at",
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

    async fn list(&self, status: Option<Status>, cursor: Option<&str>, limit: usize) -> Result<Page, MetadataError> {
        let limit = limit.max(1);
        let statuses: Vec<Status> = status.map_or_else(|| Status::ALL.to_vec(), |s| vec![s]);
        let mut cursor = cursor.map(Cursor::decode).transpose()?.unwrap_or_default();
        // The newest `limit` of each status still open, merged, are the newest `limit` of all.
        let mut candidates = Vec::new();
        let mut fetched = BTreeMap::new();
        for &status in &statuses {
            let after = match cursor.0.get(&status) {
                Some(None) => continue,
                Some(Some(after)) => Some(after.clone()),
                None => None,
            };
            let (records, more) = self.query_status(status, after.as_ref(), limit).await?;
            fetched.insert(status, (records.len(), more));
            candidates.extend(records);
        }
        candidates.sort_by_key(|r| std::cmp::Reverse((r.created_ms, r.id)));
        candidates.truncate(limit);
        for (&status, &(count, more)) in &fetched {
            let taken: Vec<&MetadataRecord> = candidates.iter().filter(|r| r.status == status).collect();
            if taken.len() == count && !more {
                cursor.0.insert(status, None);
            } else if let Some(last) = taken.last() {
                cursor.0.insert(status, Some((created_key(last.created_ms, last.id), last.id.to_string())));
            }
        }
        let done = statuses.iter().all(|s| matches!(cursor.0.get(s), Some(None)));
        Ok(Page { records: candidates, cursor: (!done).then(|| cursor.encode()) })
    }

    async fn counts(&self) -> Result<Counts, MetadataError> {
        let mut counts = Counts::default();
        for status in Status::ALL.into_iter().filter(|&s| s != Status::Failed) {
            counts.by_status.insert(status, self.count_status(status).await?);
        }
        // FAILED is counted while its records are tallied by kind: one pass, not two.
        let mut pages = self
            .by_status(Status::Failed)
            .expression_attribute_names("#error", "error")
            .projection_expression("#error")
            .into_paginator()
            .send();
        let mut failed = 0;
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
                    *counts.failed_by_kind.entry(kind).or_default() += 1;
                }
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
        let n = |v: u64| AttributeValue::N(v.to_string());
        let mut values = HashMap::from([
            (":seen_status".to_owned(), s(seen.status.as_str())),
            (":attempts".to_owned(), n(seen.attempts.into())),
            (":sweeps".to_owned(), n(seen.sweeps.into())),
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
                names.insert("#error".into(), "error".into());
                "SET #status = :failed, #error = :error, finished_ms = :now REMOVE expires_at".to_owned()
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
