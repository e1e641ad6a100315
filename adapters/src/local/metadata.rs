//! [`SqliteMetadataStore`]: one row per image in the `records` table, holding the same
//! [`MetadataRecord`] JSON as DynamoDB, with `status` and `created_ms` copied out for indexing.

use super::queue::enqueue;
use super::sqlite::{SqliteDb, to_sql_ms, write_tx};
use crate::parse_name;
use async_trait::async_trait;
use imgpipe_core::ErrorKind;
use imgpipe_core::ports::{BackendError, Begin, Counts, EventSource, MetadataError, MetadataStore, Page, SweepAction};
use imgpipe_core::record::MetadataRecord;
use imgpipe_core::seams::{ImageId, Status};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashSet;

/// The local [`MetadataStore`], in the `records` table of a [`SqliteDb`].
///
/// Shares its database with the [`SqliteQueue`](super::SqliteQueue) built on the same
/// [`SqliteDb`]: [`accept`](MetadataStore::accept) enqueues there.
#[derive(Debug, Clone)]
pub struct SqliteMetadataStore {
    db: SqliteDb,
}

impl SqliteMetadataStore {
    /// The store kept in `db`.
    pub fn new(db: SqliteDb) -> SqliteMetadataStore {
        SqliteMetadataStore { db }
    }

    /// Deletes AWAITING_UPLOAD slots whose `expires_at` (Unix seconds) is before `now_secs`: their
    /// upload URL no longer works, so their bytes will never come (DynamoDB's TTL on AWS). Only
    /// slots are looked at (through the status index, not a scan of every record); no other
    /// record has `expires_at` anyway, as on AWS, where the TTL deletes whatever carries one.
    pub async fn expire_slots(&self, now_secs: u64) -> Result<usize, MetadataError> {
        let now = i64::try_from(now_secs).unwrap_or(i64::MAX);
        let deleted = self
            .db
            .call("expiring upload slots", move |conn| {
                conn.prepare_cached(
                    "DELETE FROM records WHERE status = ?1 AND json_extract(record, '$.expires_at') < ?2",
                )?
                .execute(rusqlite::params![Status::AwaitingUpload.as_str(), now])
            })
            .await?;
        Ok(deleted)
    }
}

/// What a write found, decided inside its transaction.
enum Outcome {
    Written,
    Refused(ImageId, Status),
}

impl Outcome {
    fn into_result(self) -> Result<(), MetadataError> {
        match self {
            Outcome::Written => Ok(()),
            Outcome::Refused(id, to) => Err(MetadataError::Conflict { id, to }),
        }
    }
}

#[async_trait]
impl MetadataStore for SqliteMetadataStore {
    /// `accept` enqueues the event with the record.
    fn event_source(&self) -> EventSource {
        EventSource::MetadataStore
    }

    /// Inserts the PENDING record, or upgrades an AWAITING_UPLOAD slot, and enqueues
    /// `notification`, in one transaction: a refused record enqueues nothing. A record whose
    /// status is not PENDING is refused.
    async fn accept(&self, record: &MetadataRecord, notification: &str) -> Result<(), MetadataError> {
        if record.status != Status::Pending {
            return Err(MetadataError::Conflict { id: record.id, to: record.status });
        }
        let row = Row::of(record)?;
        let notification = notification.to_owned();
        let outcome = self
            .db
            .call("accepting an upload", move |conn| {
                let tx = write_tx(conn)?;
                match stored_status(&tx, &row.id)? {
                    None => row.insert(&tx)?,
                    Some(Status::AwaitingUpload) => row.replace(&tx)?,
                    Some(_) => return Ok(Outcome::Refused(row.image_id, Status::Pending)),
                }
                enqueue(&tx, &notification, imgpipe_core::record::now_ms())?;
                tx.commit()?;
                Ok(Outcome::Written)
            })
            .await?;
        if matches!(outcome, Outcome::Written) {
            self.db.message_sent();
        }
        outcome.into_result()
    }

    /// Inserts the AWAITING_UPLOAD slots in one transaction; an existing record with one of the
    /// ids refuses the whole request, and nothing is written.
    async fn reserve(&self, slots: &[MetadataRecord]) -> Result<(), MetadataError> {
        if let Some(slot) = slots.iter().find(|r| r.status != Status::AwaitingUpload) {
            return Err(MetadataError::Conflict { id: slot.id, to: slot.status });
        }
        let rows = slots.iter().map(Row::of).collect::<Result<Vec<_>, _>>()?;
        let outcome = self
            .db
            .call("reserving upload slots", move |conn| {
                let tx = write_tx(conn)?;
                for row in &rows {
                    let inserted = tx
                        .prepare_cached(
                            "INSERT INTO records (id, status, created_ms, record) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (id) DO NOTHING",
                        )?
                        .execute(params![row.id, row.status, row.created_ms, row.json])?;
                    if inserted != 1 {
                        // Dropping the transaction rolls back the slots inserted before.
                        return Ok(Outcome::Refused(row.image_id, Status::AwaitingUpload));
                    }
                }
                tx.commit()?;
                Ok(Outcome::Written)
            })
            .await?;
        outcome.into_result()
    }

    async fn get(&self, id: ImageId) -> Result<Option<MetadataRecord>, MetadataError> {
        let record = self
            .db
            .call("reading a record", move |conn| {
                conn.prepare_cached("SELECT record FROM records WHERE id = ?1")?
                    .query_row([id.to_string()], parse_record)
                    .optional()
            })
            .await?;
        Ok(record)
    }

    /// One query, the ids passed as one JSON array (one cached statement whatever their number).
    async fn existing(&self, ids: &[ImageId]) -> Result<HashSet<ImageId>, MetadataError> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let ids = serde_json::to_string(ids).map_err(|e| BackendError::permanent("encoding ids", e))?;
        let found = self
            .db
            .call("looking records up", move |conn| {
                let mut statement =
                    conn.prepare_cached("SELECT id FROM records WHERE id IN (SELECT value FROM json_each(?1))")?;
                let rows = statement.query_map([ids], |row| row.get::<_, String>(0))?;
                rows.collect::<rusqlite::Result<Vec<String>>>()
            })
            .await?;
        Ok(found.iter().filter_map(|id| id.parse().ok()).collect())
    }

    async fn begin(&self, id: ImageId, now_ms: u64) -> Result<Begin, MetadataError> {
        let begin =
            self.db
                .call("starting an attempt", move |conn| {
                    let tx = write_tx(conn)?;
                    let stored = tx
                        .prepare_cached("SELECT record FROM records WHERE id = ?1")?
                        .query_row([id.to_string()], parse_record)
                        .optional()?;
                    let Some(record) = stored else { return Ok(Begin::Unknown) };
                    if record.status.is_final() {
                        return Ok(Begin::AlreadyFinal(record));
                    }
                    let record = record.begun(now_ms);
                    let json = to_json(&record)?;
                    tx.prepare_cached("UPDATE records SET status = ?1, record = ?2 WHERE id = ?3")?
                        .execute(params![Status::Processing.as_str(), json, id.to_string()])?;
                    tx.commit()?;
                    Ok(Begin::Started(record))
                })
                .await?;
        Ok(begin)
    }

    /// Writes every record in one transaction, without `expires_at`, except over a record already
    /// DONE or FAILED. A record that is not itself final is refused and nothing is written.
    async fn finish(&self, records: &[MetadataRecord]) -> Result<(), MetadataError> {
        if let Some(record) = records.iter().find(|r| !r.status.is_final()) {
            return Err(MetadataError::Conflict { id: record.id, to: record.status });
        }
        if records.is_empty() {
            return Ok(());
        }
        let rows = records
            .iter()
            .map(|r| Row::of(&MetadataRecord { expires_at: None, ..r.clone() }))
            .collect::<Result<Vec<_>, _>>()?;
        self.db
            .call("finishing records", move |conn| {
                let tx = write_tx(conn)?;
                {
                    // The WHERE on the upsert is what makes end states exactly-once: a second
                    // finish (a retried chunk, a duplicate event) finds the row final and skips it.
                    let mut upsert = tx.prepare_cached(
                        "INSERT INTO records (id, status, created_ms, record) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (id) DO UPDATE SET status = excluded.status, record = excluded.record
                         WHERE records.status NOT IN ('DONE', 'FAILED')",
                    )?;
                    for row in &rows {
                        upsert.execute(params![row.id, row.status, row.created_ms, row.json])?;
                    }
                }
                tx.commit()
            })
            .await?;
        Ok(())
    }

    /// Pages newest first by (`created_ms`, `id`); the cursor is the last record's position, so
    /// pages neither repeat nor skip records when others are added meanwhile. A `limit` of 0 is
    /// taken as 1.
    async fn list(&self, status: Option<Status>, cursor: Option<&str>, limit: usize) -> Result<Page, MetadataError> {
        let after = cursor.map(Cursor::parse).transpose()?;
        let limit = limit.max(1);
        let fetch = i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1;
        let mut records = self
            .db
            .call("listing records", move |conn| {
                // Separate statements rather than `?1 IS NULL OR status = ?1`, which would keep
                // SQLite from using the (status, created_ms, id) index.
                let mut sql = String::from("SELECT record FROM records WHERE 1 = 1");
                if status.is_some() {
                    sql.push_str(" AND status = :status");
                }
                if after.is_some() {
                    sql.push_str(" AND (created_ms, id) < (:created_ms, :id)");
                }
                sql.push_str(" ORDER BY created_ms DESC, id DESC LIMIT :limit");
                let mut statement = conn.prepare_cached(&sql)?;
                let mut named: Vec<(&str, &dyn rusqlite::ToSql)> = vec![(":limit", &fetch)];
                let status_name = status.map(Status::as_str);
                if let Some(status) = &status_name {
                    named.push((":status", status));
                }
                if let Some(after) = &after {
                    named.push((":created_ms", &after.created_ms));
                    named.push((":id", &after.id));
                }
                let rows = statement.query_map(named.as_slice(), parse_record)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        let cursor = if records.len() > limit {
            records.truncate(limit);
            records
                .last()
                .map(|last| Cursor { created_ms: to_sql_ms(last.created_ms), id: last.id.to_string() }.encode())
        } else {
            None
        };
        Ok(Page { records, cursor })
    }

    /// Every status and every error kind is present, with 0 when none.
    async fn counts(&self) -> Result<Counts, MetadataError> {
        let (statuses, kinds) = self
            .db
            .call("counting records", |conn| {
                let statuses = group_counts(conn, "SELECT status, COUNT(*) FROM records GROUP BY status")?;
                let kinds = group_counts(
                    conn,
                    "SELECT json_extract(record, '$.error.kind'), COUNT(*) FROM records
                     WHERE status = 'FAILED' GROUP BY 1",
                )?;
                Ok((statuses, kinds))
            })
            .await?;
        let mut counts = Counts {
            by_status: Status::ALL.iter().map(|&s| (s, 0)).collect(),
            failed_by_kind: ErrorKind::ALL.iter().map(|&k| (k, 0)).collect(),
        };
        for (name, n) in statuses {
            let Some(name) = name else { continue };
            let status = parse_name::<Status>(&name, "status")?;
            *counts.by_status.entry(status).or_default() += n;
        }
        for (name, n) in kinds {
            // A FAILED record without an error kind is counted as ours to explain: internal.
            let kind = match name {
                Some(name) => parse_name::<ErrorKind>(&name, "error kind")?,
                None => ErrorKind::Internal,
            };
            *counts.failed_by_kind.entry(kind).or_default() += n;
        }
        Ok(counts)
    }

    /// Reads and writes in one write transaction: the comparison and the write are atomic.
    async fn sweep(&self, seen: &MetadataRecord, action: &SweepAction, now_ms: u64) -> Result<bool, MetadataError> {
        if seen.status.is_final() {
            return Err(MetadataError::Conflict { id: seen.id, to: seen.status });
        }
        let (seen, action) = (seen.clone(), action.clone());
        let written =
            self.db
                .call("sweeping a record", move |conn| {
                    let tx = write_tx(conn)?;
                    let stored = tx
                        .prepare_cached("SELECT record FROM records WHERE id = ?1")?
                        .query_row([seen.id.to_string()], parse_record)
                        .optional()?;
                    let Some(mut record) = stored else { return Ok(false) };
                    let unchanged = (record.status, record.attempts, record.started_ms, record.sweeps)
                        == (seen.status, seen.attempts, seen.started_ms, seen.sweeps);
                    if !unchanged {
                        return Ok(false);
                    }
                    match action {
                        SweepAction::Redrive => record.sweeps += 1,
                        SweepAction::Fail(error) => {
                            record.error = Some(error);
                            record = record.finished(Status::Failed, now_ms);
                        }
                    }
                    tx.prepare_cached("UPDATE records SET status = ?1, record = ?2 WHERE id = ?3")?
                        .execute(params![record.status.as_str(), to_json(&record)?, record.id.to_string()])?;
                    tx.commit()?;
                    Ok(true)
                })
                .await?;
        Ok(written)
    }
}

/// A record ready to be written: its key columns and its JSON.
struct Row {
    image_id: ImageId,
    id: String,
    status: &'static str,
    created_ms: i64,
    json: String,
}

impl Row {
    fn of(record: &MetadataRecord) -> Result<Row, MetadataError> {
        let json = serde_json::to_string(record)
            .map_err(|e| BackendError::permanent(format!("serialising the record of {}", record.id), e))?;
        Ok(Row {
            image_id: record.id,
            id: record.id.to_string(),
            status: record.status.as_str(),
            created_ms: to_sql_ms(record.created_ms),
            json,
        })
    }

    fn insert(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.prepare_cached("INSERT INTO records (id, status, created_ms, record) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![self.id, self.status, self.created_ms, self.json])?;
        Ok(())
    }

    fn replace(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.prepare_cached("UPDATE records SET status = ?2, created_ms = ?3, record = ?4 WHERE id = ?1")?
            .execute(params![self.id, self.status, self.created_ms, self.json])?;
        Ok(())
    }
}

/// The position after which the next page starts. Opaque to clients: `{created_ms}.{id}`.
struct Cursor {
    created_ms: i64,
    id: String,
}

impl Cursor {
    fn encode(&self) -> String {
        format!("{}.{}", self.created_ms, self.id)
    }

    fn parse(text: &str) -> Result<Cursor, MetadataError> {
        let parsed = text.split_once('.').and_then(|(ms, id)| {
            let created_ms = ms.parse::<i64>().ok()?;
            let id = id.parse::<ImageId>().ok()?;
            Some(Cursor { created_ms, id: id.to_string() })
        });
        parsed.ok_or_else(|| MetadataError::InvalidCursor(text.to_owned()))
    }
}

fn stored_status(conn: &Connection, id: &str) -> rusqlite::Result<Option<Status>> {
    let name: Option<String> = conn
        .prepare_cached("SELECT status FROM records WHERE id = ?1")?
        .query_row([id], |row| row.get(0))
        .optional()?;
    name.map(|name| {
        serde_json::from_value(serde_json::Value::String(name))
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
    })
    .transpose()
}

fn parse_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<MetadataRecord> {
    let json: String = row.get(0)?;
    serde_json::from_str(&json)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

fn to_json(record: &MetadataRecord) -> rusqlite::Result<String> {
    serde_json::to_string(record).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn group_counts(conn: &Connection, sql: &str) -> rusqlite::Result<Vec<(Option<String>, u64)>> {
    let mut statement = conn.prepare_cached(sql)?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0))))?;
    rows.collect()
}
