//! [`SqliteQueue`]: the event queue as a table, with SQS semantics (visibility lease, receive
//! count, dead-letter table after `max_receives`).

use super::sqlite::{SqliteDb, to_sql_ms, write_tx};
use async_trait::async_trait;
use imgpipe_core::policy::MAX_RECEIVES;
use imgpipe_core::ports::{EventQueue, MAX_SEND_DELAY, Message, QueueError, QueueStats};
use imgpipe_core::record::now_ms;
use rusqlite::{Connection, OptionalExtension, params};
use std::time::Duration;

/// The local [`EventQueue`]: rows of the `queue` table of a [`SqliteDb`].
///
/// Messages are received in send order (SQS standard queues promise no order; callers must not
/// rely on it). Acknowledging an unknown or superseded receipt is a no-op, as SQS's
/// DeleteMessage is for a handle that expired or was superseded by a later receive: the message
/// stays queued and will be delivered again, which at-least-once consumers handle anyway. So this
/// backend never returns [`QueueError::StaleReceipt`].
#[derive(Debug, Clone)]
pub struct SqliteQueue {
    db: SqliteDb,
    max_receives: u32,
}

/// A message that was received too many times and moved out of the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The message's id.
    pub id: String,
    /// Its body.
    pub body: String,
    /// How many times it was received.
    pub receive_count: u32,
    /// When it was moved, in milliseconds since the Unix epoch.
    pub died_ms: u64,
}

impl SqliteQueue {
    /// The queue stored in `db`, dead-lettering after [`MAX_RECEIVES`] receives.
    pub fn new(db: SqliteDb) -> SqliteQueue {
        SqliteQueue { db, max_receives: MAX_RECEIVES }
    }

    /// The same queue, dead-lettering a message once it has been received `max_receives` times
    /// (at least 1) and is due again.
    pub fn with_max_receives(mut self, max_receives: u32) -> SqliteQueue {
        self.max_receives = max_receives.max(1);
        self
    }

    /// The dead-lettered messages, oldest first (for inspection and redrive by hand).
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError> {
        let letters = self
            .db
            .call("listing dead letters", |conn| {
                let mut statement = conn.prepare_cached(
                    "SELECT message_id, body, receive_count, died_ms FROM dead_letters ORDER BY died_ms, message_id",
                )?;
                let rows = statement.query_map([], |row| {
                    Ok(DeadLetter {
                        id: row.get(0)?,
                        body: row.get(1)?,
                        receive_count: row.get(2)?,
                        died_ms: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
                    })
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        Ok(letters)
    }
}

/// Appends a message in the caller's transaction (so that `accept` can enqueue atomically).
pub(crate) fn enqueue(conn: &Connection, body: &str, now_ms: u64) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO queue (message_id, body, visible_at_ms, receive_count) VALUES (?1, ?2, ?3, 0)")?
        .execute(params![ulid::Ulid::generate().to_string(), body, to_sql_ms(now_ms)])?;
    Ok(())
}

impl SqliteQueue {
    /// The body of every message still in the queue (visible or leased), oldest first; dead
    /// letters excluded.
    pub async fn bodies(&self) -> Result<Vec<String>, QueueError> {
        let bodies = self
            .db
            .call("reading queued messages", |conn| {
                let mut statement = conn.prepare_cached("SELECT body FROM queue ORDER BY seq")?;
                let rows = statement.query_map([], |row| row.get(0))?;
                rows.collect::<rusqlite::Result<Vec<String>>>()
            })
            .await?;
        Ok(bodies)
    }
}

#[async_trait]
impl EventQueue for SqliteQueue {
    async fn send(&self, body: &str) -> Result<(), QueueError> {
        let body = body.to_owned();
        self.db.call("sending a message", move |conn| enqueue(conn, &body, now_ms())).await?;
        self.db.message_sent();
        Ok(())
    }

    /// Whole seconds, as SQS: the row's visibility starts that much later.
    async fn send_delayed(&self, body: &str, delay: Duration) -> Result<(), QueueError> {
        let body = body.to_owned();
        let delay_ms = delay.min(MAX_SEND_DELAY).as_secs() * 1000;
        self.db.call("sending a delayed message", move |conn| enqueue(conn, &body, now_ms() + delay_ms)).await?;
        Ok(())
    }

    async fn wait(&self, timeout: Duration) {
        self.db.wait_for_message(timeout).await;
    }

    async fn receive(&self, max: usize, lease: Duration) -> Result<Vec<Message>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let max_receives = self.max_receives;
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        let messages = self
            .db
            .call("receiving messages", move |conn| {
                let tx = write_tx(conn)?;
                // Read the clock once the write lock is held: a message another process
                // committed while we waited for the lock is then already visible to us.
                let now = now_ms();
                let mut received = Vec::new();
                while received.len() < max {
                    let next = tx
                        .prepare_cached(
                            "SELECT seq, message_id, body, receive_count FROM queue
                             WHERE visible_at_ms <= ?1 ORDER BY seq LIMIT 1",
                        )?
                        .query_row([to_sql_ms(now)], |row| {
                            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, row.get(2)?, row.get::<_, u32>(3)?))
                        })
                        .optional()?;
                    let Some((seq, id, body, count)) = next else { break };
                    let count = count.saturating_add(1);
                    if count > max_receives {
                        // As an SQS redrive policy does: the receive that would exceed the limit
                        // moves the message instead of returning it.
                        tx.prepare_cached(
                            "INSERT OR REPLACE INTO dead_letters (message_id, body, receive_count, died_ms)
                             VALUES (?1, ?2, ?3, ?4)",
                        )?
                        .execute(params![id, body, count - 1, to_sql_ms(now)])?;
                        tx.prepare_cached("DELETE FROM queue WHERE seq = ?1")?.execute([seq])?;
                        continue;
                    }
                    // A fresh random handle per receive, so an older receive cannot delete the
                    // message once someone else holds it.
                    let receipt = ulid::Ulid::generate().to_string();
                    tx.prepare_cached(
                        "UPDATE queue SET receive_count = ?1, receipt = ?2, visible_at_ms = ?3 WHERE seq = ?4",
                    )?
                    .execute(params![
                        count,
                        receipt,
                        to_sql_ms(now.saturating_add(lease_ms)),
                        seq
                    ])?;
                    received.push(Message { id, receipt, body, receive_count: count });
                }
                tx.commit()?;
                Ok(received)
            })
            .await?;
        Ok(messages)
    }

    async fn ack(&self, receipts: &[String]) -> Result<(), QueueError> {
        if receipts.is_empty() {
            return Ok(());
        }
        let receipts = receipts.to_vec();
        self.db
            .call("acknowledging messages", move |conn| {
                let tx = write_tx(conn)?;
                {
                    let mut delete = tx.prepare_cached("DELETE FROM queue WHERE receipt = ?1")?;
                    for receipt in &receipts {
                        delete.execute([receipt])?;
                    }
                }
                tx.commit()
            })
            .await?;
        Ok(())
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        let stats = self
            .db
            .call("counting messages", |conn| {
                let now = to_sql_ms(now_ms());
                conn.prepare_cached(
                    "SELECT
                        (SELECT COUNT(*) FROM queue WHERE visible_at_ms <= ?1),
                        (SELECT COUNT(*) FROM queue WHERE visible_at_ms > ?1),
                        (SELECT COUNT(*) FROM dead_letters)",
                )?
                .query_row([now], |row| {
                    let count = |i| row.get::<_, i64>(i).map(|n| u64::try_from(n).unwrap_or(0));
                    Ok(QueueStats { visible: count(0)?, in_flight: count(1)?, dead: count(2)? })
                })
            })
            .await?;
        Ok(stats)
    }
}
