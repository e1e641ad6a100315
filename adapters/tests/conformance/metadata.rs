//! [`MetadataStore`] conformance: forward-only status, exactly-once end states, keyset pages.

use imgpipe_core::event::S3Notification;
use imgpipe_core::ports::{Begin, MetadataError, MetadataStore};
use imgpipe_core::record::{MetadataRecord, RenditionRecord, Source};
use imgpipe_core::seams::{ImageId, Status};
use imgpipe_core::{ErrorKind, ImageError, OutputFormat};
use std::collections::BTreeSet;

/// A PENDING record created at `created_ms`, with a client file name that is hostile markup and
/// not ASCII (every case checks it comes back unchanged).
pub fn pending(created_ms: u64) -> MetadataRecord {
    let id = ImageId::generate();
    let source = Source {
        key: id.original_key("jpg"),
        bytes: 1234,
        etag: "5d41402abc4b2a76b9719d911017c592".into(),
        content_type: "image/jpeg".into(),
    };
    let filename = Some("<img src=x onerror=alert(1)> ünï \"q\".jpg".to_owned());
    MetadataRecord { filename, ..MetadataRecord::pending(id, source, "default".into(), created_ms) }
}

/// An AWAITING_UPLOAD slot created at `created_ms`.
pub fn awaiting(created_ms: u64) -> MetadataRecord {
    MetadataRecord { status: Status::AwaitingUpload, expires_at: Some(created_ms / 1000 + 900), ..pending(created_ms) }
}

/// `record` finished DONE with one rendition.
pub fn done(record: &MetadataRecord) -> MetadataRecord {
    MetadataRecord {
        status: Status::Done,
        renditions: vec![RenditionRecord {
            name: "thumb".into(),
            key: record.id.rendition_key("thumb", OutputFormat::Webp),
            format: OutputFormat::Webp,
            width: 256,
            height: 256,
            bytes: 999,
        }],
        finished_ms: Some(record.created_ms + 500),
        ..record.clone()
    }
}

/// `record` finished FAILED with an error of `kind`.
pub fn failed(record: &MetadataRecord, kind: ErrorKind) -> MetadataRecord {
    MetadataRecord {
        status: Status::Failed,
        error: Some(ImageError::new(kind, "conformance")),
        finished_ms: Some(record.created_ms + 500),
        ..record.clone()
    }
}

/// The ObjectCreated event of `record`'s original.
pub fn notification(record: &MetadataRecord) -> String {
    // 2026-01-01T00:00:00.000Z: a fixed time keeps the bodies comparable.
    S3Notification::original_stored("conformance", &record.source, 1_767_225_600_000).to_json()
}

async fn accept(store: &dyn MetadataStore, record: &MetadataRecord) {
    store.accept(record, &notification(record)).await.unwrap();
}

/// An accepted record reads back as written; an unknown id reads as `None`.
pub async fn accept_then_get(store: &dyn MetadataStore) {
    let record = pending(1_700_000_000_000);
    accept(store, &record).await;
    assert_eq!(store.get(record.id).await.unwrap(), Some(record));
    assert_eq!(store.get(ImageId::generate()).await.unwrap(), None);
}

/// Accepting the same id twice is a conflict and keeps the first record.
pub async fn duplicate_accept_conflicts(store: &dyn MetadataStore) {
    let record = pending(1_700_000_000_000);
    accept(store, &record).await;
    let again = MetadataRecord { preset: "other".into(), ..record.clone() };
    let error = store.accept(&again, &notification(&again)).await.unwrap_err();
    assert!(matches!(error, MetadataError::Conflict { id, to: Status::Pending } if id == record.id), "{error:?}");
    assert_eq!(store.get(record.id).await.unwrap(), Some(record));
}

/// Slots are reserved in bulk (more than one DynamoDB batch) and each is AWAITING_UPLOAD; a
/// request holding any other status writes nothing; accept upgrades a slot.
pub async fn reserve_then_accept_upgrades(store: &dyn MetadataStore) {
    let slots: Vec<MetadataRecord> = (0..30).map(|i| awaiting(1_700_000_000_000 + i)).collect();
    store.reserve(&slots).await.unwrap();
    for slot in &slots {
        assert_eq!(store.get(slot.id).await.unwrap().as_ref(), Some(slot));
    }
    let stray = MetadataRecord { status: Status::Pending, expires_at: None, ..awaiting(1_700_000_000_100) };
    let refused = [awaiting(1_700_000_000_101), stray.clone()];
    let error = store.reserve(&refused).await.unwrap_err();
    assert!(matches!(error, MetadataError::Conflict { to: Status::Pending, .. }), "{error:?}");
    for record in &refused {
        assert_eq!(store.get(record.id).await.unwrap(), None, "a refused request reserved nothing");
    }

    let slot = slots[0].clone();
    let uploaded =
        MetadataRecord { status: Status::Pending, expires_at: None, created_ms: slot.created_ms + 10, ..slot };
    accept(store, &uploaded).await;
    assert_eq!(store.get(uploaded.id).await.unwrap(), Some(uploaded.clone()));
}

/// `begin` moves a record to PROCESSING and counts every attempt.
pub async fn begin_transitions_and_counts_attempts(store: &dyn MetadataStore) {
    let record = pending(1_700_000_000_000);
    accept(store, &record).await;
    let Begin::Started(first) = store.begin(record.id, 1_700_000_000_100).await.unwrap() else { panic!("not started") };
    assert_eq!(first.status, Status::Processing);
    assert_eq!(first.attempts, 1);
    assert_eq!(first.started_ms, Some(1_700_000_000_100));
    assert_eq!(MetadataRecord { status: Status::Pending, attempts: 0, started_ms: None, ..first.clone() }, record);
    assert_eq!(store.get(record.id).await.unwrap(), Some(first));
    // A retry of the same image (the previous attempt died) counts again.
    let Begin::Started(second) = store.begin(record.id, 1_700_000_000_200).await.unwrap() else {
        panic!("not started")
    };
    assert_eq!((second.attempts, second.started_ms), (2, Some(1_700_000_000_200)));
    assert_eq!(store.get(record.id).await.unwrap(), Some(second));
}

/// `begin` on a DONE or FAILED record changes nothing and returns it.
pub async fn begin_on_final_is_already_final(store: &dyn MetadataStore) {
    for finished in [done as fn(&MetadataRecord) -> MetadataRecord, |r| failed(r, ErrorKind::Corrupt)] {
        let record = pending(1_700_000_000_000);
        accept(store, &record).await;
        let Begin::Started(started) = store.begin(record.id, 1_700_000_000_100).await.unwrap() else {
            panic!("not started")
        };
        let end = finished(&started);
        store.finish(std::slice::from_ref(&end)).await.unwrap();
        assert_eq!(store.begin(record.id, 1_700_000_000_900).await.unwrap(), Begin::AlreadyFinal(end.clone()));
        assert_eq!(store.get(record.id).await.unwrap(), Some(end));
    }
}

/// `begin` on an id without a record says so and creates nothing.
pub async fn begin_unknown(store: &dyn MetadataStore) {
    let id = ImageId::generate();
    assert_eq!(store.begin(id, 1_700_000_000_000).await.unwrap(), Begin::Unknown);
    assert_eq!(store.get(id).await.unwrap(), None);
}

/// The first final write wins; later ones (duplicates, retries) leave it as is, while the
/// other records of the same batch are still written.
pub async fn finish_is_exactly_once(store: &dyn MetadataStore) {
    let a = pending(1_700_000_000_000);
    let b = pending(1_700_000_000_001);
    accept(store, &a).await;
    accept(store, &b).await;
    for record in [&a, &b] {
        store.begin(record.id, 1_700_000_000_100).await.unwrap();
    }
    let a_done = done(&a);
    store.finish(std::slice::from_ref(&a_done)).await.unwrap();
    let a_failed = failed(&a, ErrorKind::Internal);
    let b_done = done(&b);
    store.finish(&[a_failed, b_done.clone()]).await.unwrap();
    assert_eq!(store.get(a.id).await.unwrap(), Some(a_done));
    assert_eq!(store.get(b.id).await.unwrap(), Some(b_done));
    store.finish(&[]).await.unwrap();
}

/// Walks every page of `list(status)`, `limit` at a time.
async fn walk(store: &dyn MetadataStore, status: Option<Status>, limit: usize) -> Vec<MetadataRecord> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let page = store.list(status, cursor.as_deref(), limit).await.unwrap();
        assert!(page.records.len() <= limit);
        // Only the last page may be empty (a backend may not know a page was the last).
        assert!(!page.records.is_empty() || page.cursor.is_none(), "empty page with a cursor");
        all.extend(page.records);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return all,
        }
    }
    panic!("more than 100 pages");
}

/// Pages come newest first (created, then id), with no duplicate and no gap, per status too.
pub async fn list_paginates_newest_first(store: &dyn MetadataStore) {
    let mut records = Vec::new();
    // Equal creation times too: the id breaks the tie.
    for (i, created) in [1000, 2000, 2000, 3000, 4000, 4000, 4000, 5000].into_iter().enumerate() {
        let created = 1_700_000_000_000 + created;
        let record = match i % 3 {
            0 => {
                let record = pending(created);
                accept(store, &record).await;
                record
            }
            1 => {
                let record = awaiting(created);
                store.reserve(std::slice::from_ref(&record)).await.unwrap();
                record
            }
            _ => {
                let record = pending(created);
                accept(store, &record).await;
                let end = done(&record);
                store.finish(std::slice::from_ref(&end)).await.unwrap();
                end
            }
        };
        records.push(record);
    }
    records.sort_by_key(|r| std::cmp::Reverse((r.created_ms, r.id)));

    for limit in [1, 3, 8, 100] {
        let all = walk(store, None, limit).await;
        assert_eq!(all, records, "limit {limit}");
    }
    for status in Status::ALL {
        let expected: Vec<_> = records.iter().filter(|r| r.status == status).cloned().collect();
        let listed = walk(store, Some(status), 2).await;
        assert_eq!(listed, expected, "{status:?}");
        let ids: BTreeSet<_> = listed.iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), listed.len());
    }
}

/// Many records, spread over every index shard a backend has and three statuses, read in pages
/// of odd sizes: newest first, none lost, none repeated.
pub async fn list_merges_many_records(store: &dyn MetadataStore) {
    let base = 1_700_000_100_000;
    let mut records = Vec::new();
    for i in 0..72u64 {
        // Three records at each creation time: the id breaks the ties.
        let record = pending(base + i / 3 * 10);
        accept(store, &record).await;
        let record = match i % 4 {
            0 => {
                let end = done(&record);
                store.finish(std::slice::from_ref(&end)).await.unwrap();
                end
            }
            1 => match store.begin(record.id, base + 1_000).await.unwrap() {
                Begin::Started(begun) => begun,
                other => panic!("{other:?}"),
            },
            _ => record,
        };
        records.push(record);
    }
    records.sort_by_key(|r| std::cmp::Reverse((r.created_ms, r.id)));
    for limit in [7, 50] {
        assert_eq!(walk(store, None, limit).await, records, "limit {limit}");
    }
    let done: Vec<_> = records.iter().filter(|r| r.status == Status::Done).cloned().collect();
    assert_eq!(walk(store, Some(Status::Done), 5).await, done);
}

/// Counts per status, and FAILED records per error kind.
pub async fn counts_by_status_and_kind(store: &dyn MetadataStore) {
    let counts = store.counts().await.unwrap();
    assert!(counts.by_status.values().all(|&n| n == 0));
    let now = 1_700_000_000_000;
    for _ in 0..2 {
        accept(store, &pending(now)).await;
    }
    store.reserve(&[awaiting(now)]).await.unwrap();
    let processing = pending(now);
    accept(store, &processing).await;
    store.begin(processing.id, now + 1).await.unwrap();
    let mut ends = vec![done(&pending(now))];
    for kind in [ErrorKind::Corrupt, ErrorKind::Corrupt, ErrorKind::TooLarge] {
        ends.push(failed(&pending(now), kind));
    }
    for end in &ends {
        accept(store, &MetadataRecord { status: Status::Pending, ..end.clone() }).await;
    }
    store.finish(&ends).await.unwrap();

    let counts = store.counts().await.unwrap();
    let status = |s| counts.by_status.get(&s).copied().unwrap_or(0);
    assert_eq!(
        Status::ALL.map(status),
        [1, 2, 1, 1, 3],
        "AWAITING_UPLOAD, PENDING, PROCESSING, DONE, FAILED: {:?}",
        counts.by_status
    );
    let kind = |k| counts.failed_by_kind.get(&k).copied().unwrap_or(0);
    assert_eq!(ErrorKind::ALL.map(kind), [2, 0, 1, 0, 0], "{:?}", counts.failed_by_kind);
}

/// Nothing past AWAITING_UPLOAD keeps `expires_at` (DynamoDB's TTL deletes any item that has
/// one): `begin` straight from a slot (an S3 presigned PUT) removes it, and `finish` writes
/// final records without it, through the batch (DONE) and the guarded (FAILED `internal`) path.
pub async fn begin_and_finish_remove_expires_at(store: &dyn MetadataStore) {
    let now = 1_700_000_000_000;
    let mut ends = Vec::new();
    for finish in [done as fn(&MetadataRecord) -> MetadataRecord, |r| failed(r, ErrorKind::Internal)] {
        let slot = awaiting(now);
        store.reserve(std::slice::from_ref(&slot)).await.unwrap();
        let Begin::Started(started) = store.begin(slot.id, now + 100).await.unwrap() else { panic!("not started") };
        assert_eq!(started.expires_at, None, "begin returns the record without expires_at");
        assert_eq!(store.get(slot.id).await.unwrap().unwrap().expires_at, None, "begin removes expires_at");
        // Even when the caller hands over a record that still has it.
        ends.push(MetadataRecord { expires_at: slot.expires_at, ..finish(&started) });
    }
    store.finish(&ends).await.unwrap();
    for end in &ends {
        let stored = store.get(end.id).await.unwrap().unwrap();
        assert_eq!(stored, MetadataRecord { expires_at: None, ..end.clone() });
    }
}

/// After the expiry sweep (`expire(now_secs)`: DynamoDB's TTL on AWS, the slot sweep locally)
/// runs far past every slot's expiry, expired slots are gone and every final record is still
/// there, unchanged, whichever way it got there (slot or direct upload).
pub async fn final_records_survive_expiry<F, Fut>(store: &dyn MetadataStore, expire: F)
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let now = 1_700_000_000_000;
    let never_uploaded = awaiting(now);
    store.reserve(std::slice::from_ref(&never_uploaded)).await.unwrap();
    let mut ends = Vec::new();
    for (i, finish) in [
        done as fn(&MetadataRecord) -> MetadataRecord,
        |r| failed(r, ErrorKind::Corrupt),
        |r| failed(r, ErrorKind::Internal),
    ]
    .into_iter()
    .enumerate()
    {
        // A slot that went straight to PROCESSING (S3 presigned PUT), one accepted first (local
        // signed PUT), and a direct upload.
        let record = match i {
            0 => {
                let slot = awaiting(now);
                store.reserve(std::slice::from_ref(&slot)).await.unwrap();
                slot
            }
            1 => {
                let slot = awaiting(now);
                store.reserve(std::slice::from_ref(&slot)).await.unwrap();
                let accepted = MetadataRecord { status: Status::Pending, expires_at: None, ..slot };
                accept(store, &accepted).await;
                accepted
            }
            _ => {
                let record = pending(now);
                accept(store, &record).await;
                record
            }
        };
        let Begin::Started(started) = store.begin(record.id, now + 100).await.unwrap() else { panic!("not started") };
        ends.push(finish(&started));
    }
    store.finish(&ends).await.unwrap();
    let mut before = Vec::new();
    for end in &ends {
        before.push(store.get(end.id).await.unwrap());
    }

    // Far past every slot's expiry (its URL lifetime), plus an hour.
    let later = never_uploaded.expires_at.unwrap() + 3600;
    assert_eq!(expire(later).await, 1, "only the slot whose bytes never came expires");
    assert_eq!(store.get(never_uploaded.id).await.unwrap(), None);
    for (end, before) in ends.iter().zip(before) {
        let after = store.get(end.id).await.unwrap();
        assert!(after.is_some(), "final record {} ({:?}) deleted by the expiry sweep", end.id, end.status);
        assert_eq!(after, before);
    }
}

/// `existing` reports exactly the ids that have a record, whatever their status, for any
/// number of ids (DynamoDB reads 100 keys per call), duplicates included.
pub async fn existing_reports_records(store: &dyn MetadataStore) {
    assert!(store.existing(&[]).await.unwrap().is_empty());
    let accepted = pending(1_700_000_000_000);
    accept(store, &accepted).await;
    let slot = awaiting(1_700_000_000_000);
    store.reserve(std::slice::from_ref(&slot)).await.unwrap();
    let mut ids: Vec<ImageId> = (0..230).map(|_| ImageId::generate()).collect();
    ids.insert(3, accepted.id);
    ids.push(slot.id);
    ids.push(accepted.id);
    let found = store.existing(&ids).await.unwrap();
    assert_eq!(found, [accepted.id, slot.id].into_iter().collect());
}

/// The sweeper's write: only on a record still exactly as listed, so two sweeps of one listing
/// count once (at the same time too), a record that moved on is left alone, a re-drive keeps the
/// status, giving up makes it FAILED, and a final record is never written.
pub async fn sweep_is_conditional_on_the_record_as_seen(store: &dyn MetadataStore) {
    use imgpipe_core::ports::SweepAction;
    let now = 1_700_000_000_000;
    let stuck = pending(now);
    accept(store, &stuck).await;
    let seen = store.get(stuck.id).await.unwrap().unwrap();
    // Two sweepers at once, same listing: one count.
    let (a, b) = tokio::join!(
        store.sweep(&seen, &SweepAction::Redrive, now + 1),
        store.sweep(&seen, &SweepAction::Redrive, now + 1)
    );
    assert_eq!([a.unwrap(), b.unwrap()].iter().filter(|&&w| w).count(), 1, "two sweeps of one listing count once");
    let swept = store.get(stuck.id).await.unwrap().unwrap();
    assert_eq!(swept, MetadataRecord { sweeps: 1, ..seen.clone() }, "a re-drive only counts");
    assert!(!store.sweep(&seen, &SweepAction::Redrive, now + 2).await.unwrap(), "a stale listing writes nothing");

    // Out of re-drives: FAILED internal, finished now, the rest of the record kept.
    let error = ImageError::new(ErrorKind::Internal, "stuck in PENDING after 1 re-drives");
    assert!(store.sweep(&swept, &SweepAction::Fail(error.clone()), now + 3).await.unwrap());
    let failed = store.get(stuck.id).await.unwrap().unwrap();
    let want = MetadataRecord {
        status: Status::Failed,
        error: Some(error.clone()),
        finished_ms: Some(now + 3),
        ..swept.clone()
    };
    assert_eq!(failed, want);
    assert!(!store.sweep(&swept, &SweepAction::Redrive, now + 4).await.unwrap(), "FAILED is never swept again");
    assert!(matches!(store.sweep(&failed, &SweepAction::Redrive, now + 4).await, Err(MetadataError::Conflict { .. })));

    // PROCESSING, begun again after the listing (a re-drive reached the processor): left alone.
    let busy = pending(now);
    accept(store, &busy).await;
    store.begin(busy.id, now + 10).await.unwrap();
    let listed = store.get(busy.id).await.unwrap().unwrap();
    store.begin(busy.id, now + 20).await.unwrap();
    assert!(!store.sweep(&listed, &SweepAction::Fail(error.clone()), now + 30).await.unwrap());
    assert_eq!(store.get(busy.id).await.unwrap().unwrap().status, Status::Processing);

    // Finished after the listing: left DONE, untouched.
    let finishing = pending(now);
    accept(store, &finishing).await;
    let Begin::Started(started) = store.begin(finishing.id, now + 10).await.unwrap() else { panic!("not started") };
    let ended = done(&started);
    store.finish(std::slice::from_ref(&ended)).await.unwrap();
    assert!(!store.sweep(&started, &SweepAction::Fail(error), now + 30).await.unwrap());
    assert_eq!(store.get(finishing.id).await.unwrap(), Some(ended));
}
