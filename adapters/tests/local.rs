//! The local adapters: the conformance suite, then what only the local backend promises
//! (atomic accept+enqueue, crash-restart, a root no key escapes, one file shared by writers).

#[macro_use]
mod conformance;

use adapters::LocalBackend;
use adapters::local::{SqliteDb, SqliteQueue};
use bytes::Bytes;
use conformance::metadata::{done, notification, pending};
use conformance::objects::HOSTILE_KEYS;
use conformance::{LEASE_EXPIRY_WAIT, LONG_LEASE, SHORT_LEASE};
use imgpipe_core::ports::{
    Begin, EventQueue, MetadataError, MetadataStore, ObjectMeta, ObjectStore, QueueStats, StoreError,
};
use imgpipe_core::record::MetadataRecord;
use imgpipe_core::seams::Status;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// A fresh backend in a fresh directory (kept alive by the returned guard).
fn open() -> (TempDir, LocalBackend) {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::open(dir.path()).unwrap();
    (dir, backend)
}

conformance_suite!(objects as objects, {
    let (dir, backend) = super::open();
    (dir, backend.objects)
});
// The same suite through a hand-off in front of the files (as the local stack uses them).
conformance_suite!(objects as objects_through_handoff, {
    let (dir, backend) = super::open();
    (dir, std::sync::Arc::new(adapters::local::Handoff::new(backend.objects, 1 << 20)))
});
conformance_suite!(queue as queue, {
    let (dir, backend) = super::open();
    (dir, backend.queue)
});
conformance_suite!(metadata as metadata, {
    let (dir, backend) = super::open();
    (dir, backend.metadata)
});

#[tokio::test]
async fn queue_dead_letters_after_max_receives() {
    let dir = tempfile::tempdir().unwrap();
    let queue = SqliteQueue::new(SqliteDb::open(&dir.path().join("q.sqlite")).unwrap()).with_max_receives(2);
    conformance::queue::dead_letters_after_max_receives(&queue, 2).await;
    let letters = queue.dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!((letters[0].body.as_str(), letters[0].receive_count), ("poison", 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_records_survive_the_slot_sweep() {
    let (_dir, backend) = open();
    let metadata = backend.metadata.clone();
    conformance::metadata::final_records_survive_expiry(&*backend.metadata, |now| {
        let metadata = metadata.clone();
        async move { metadata.expire_slots(now).await.unwrap() }
    })
    .await;
}

// ---- local only ----

#[tokio::test]
async fn accept_writes_record_and_event_together_or_neither() {
    let (_dir, backend) = open();
    let record = pending(1_700_000_000_000);
    backend.metadata.accept(&record, &notification(&record)).await.unwrap();
    let message = backend.queue.receive(10, LONG_LEASE).await.unwrap();
    assert_eq!(message.len(), 1);
    assert_eq!(message[0].body, notification(&record));
    backend.queue.ack(&[message[0].receipt.clone()]).await.unwrap();

    // Refused accepts enqueue nothing: a duplicate, and a record that is not PENDING.
    assert!(matches!(
        backend.metadata.accept(&record, &notification(&record)).await,
        Err(MetadataError::Conflict { .. })
    ));
    let not_pending = MetadataRecord { status: Status::Done, ..pending(1_700_000_000_000) };
    assert!(matches!(
        backend.metadata.accept(&not_pending, &notification(&not_pending)).await,
        Err(MetadataError::Conflict { .. })
    ));
    assert_eq!(backend.metadata.get(not_pending.id).await.unwrap(), None);
    assert_eq!(backend.queue.stats().await.unwrap(), QueueStats::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_restart_and_leases_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let record = pending(1_700_000_000_000);
    let finished = done(&record);
    let leased = {
        let backend = LocalBackend::open(dir.path()).unwrap();
        backend.objects.put(&record.source.key, Bytes::from_static(b"jpeg"), &ObjectMeta::default()).await.unwrap();
        backend.metadata.accept(&record, &notification(&record)).await.unwrap();
        let other = pending(1_700_000_000_001);
        backend.metadata.accept(&other, &notification(&other)).await.unwrap();
        backend.metadata.finish(&[done(&other)]).await.unwrap();
        backend.queue.receive(1, SHORT_LEASE).await.unwrap().remove(0)
        // Dropped here without an ack, as if the process were killed.
    };

    let backend = LocalBackend::open(dir.path()).unwrap();
    assert_eq!(&backend.objects.get(&record.source.key).await.unwrap().0[..], b"jpeg");
    assert_eq!(backend.metadata.get(record.id).await.unwrap(), Some(record.clone()));
    let stats = backend.queue.stats().await.unwrap();
    assert_eq!((stats.in_flight, stats.visible), (1, 1));
    tokio::time::sleep(LEASE_EXPIRY_WAIT).await;
    let again = backend.queue.receive(10, LONG_LEASE).await.unwrap();
    let back = again.iter().find(|m| m.id == leased.id).expect("the leased message came back");
    assert_eq!(back.receive_count, 2);

    assert!(matches!(backend.metadata.begin(record.id, 1).await.unwrap(), Begin::Started(_)));
    backend.metadata.finish(std::slice::from_ref(&finished)).await.unwrap();
    drop(backend);
    let backend = LocalBackend::open(dir.path()).unwrap();
    assert_eq!(backend.metadata.get(record.id).await.unwrap(), Some(finished));
}

/// Every file under `dir`, except the object root and the database files.
fn files_outside_root(dir: &Path, root: &Path) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.starts_with(root) {
                continue;
            }
            if path.is_dir() {
                pending.push(path.clone());
            }
            if !path.file_name().unwrap().to_string_lossy().starts_with("imgpipe.sqlite") {
                found.insert(path);
            }
        }
    }
    found
}

#[tokio::test]
async fn hostile_keys_cannot_escape_the_root() {
    let (dir, backend) = open();
    let root = backend.objects.root().to_path_buf();
    std::fs::create_dir_all(dir.path().join("secret")).unwrap();
    std::fs::write(dir.path().join("secret/file"), b"secret").unwrap();
    let before = files_outside_root(dir.path(), &root);

    let absolute = dir.path().join("escaped").to_string_lossy().into_owned();
    let mut keys: Vec<&str> = HOSTILE_KEYS.to_vec();
    keys.extend(["../secret/file", "../escaped", "a/../../escaped", "../../../../../../tmp/escaped", &absolute]);
    for key in keys {
        let put = backend.objects.put(key, Bytes::from_static(b"x"), &ObjectMeta::default()).await;
        assert!(matches!(put, Err(StoreError::InvalidKey { .. })), "put {key:?}");
        assert!(matches!(backend.objects.get(key).await, Err(StoreError::InvalidKey { .. })), "get {key:?}");
        assert!(matches!(backend.objects.delete(key).await, Err(StoreError::InvalidKey { .. })), "delete {key:?}");
    }
    assert!(backend.objects.list("../").await.unwrap().is_empty());
    assert!(backend.objects.list("../secret/").await.unwrap().is_empty());
    assert_eq!(files_outside_root(dir.path(), &root), before);
    assert!(!Path::new(&absolute).exists());
    assert_eq!(std::fs::read(dir.path().join("secret/file")).unwrap(), b"secret");
}

#[tokio::test]
async fn metadata_files_and_temporary_files_are_not_listed() {
    let (_dir, backend) = open();
    let meta = ObjectMeta { content_type: "image/png".into(), metadata: [("preset".into(), "x".into())].into() };
    backend.objects.put("a/b.png", Bytes::from_static(b"png"), &meta).await.unwrap();
    std::fs::write(backend.objects.root().join("a/.imgpipe-tmp-leftover"), b"partial").unwrap();
    std::fs::create_dir_all(backend.objects.root().join(".imgpipe-meta/a")).unwrap();
    std::fs::write(backend.objects.root().join(".imgpipe-meta/a/c.png.json"), b"{}").unwrap();
    assert_eq!(backend.objects.list("").await.unwrap(), vec!["a/b.png".to_owned()]);
}

#[tokio::test]
async fn metadata_travels_with_the_bytes_and_an_overwrite_without_any_drops_it() {
    let (_dir, backend) = open();
    let tagged = ObjectMeta { content_type: "image/webp".into(), metadata: [("k".into(), "v".into())].into() };
    let info = backend.objects.put("r/x.webp", Bytes::from_static(b"1"), &tagged).await.unwrap();
    assert_eq!(backend.objects.head("r/x.webp").await.unwrap(), info);
    let plain = ObjectMeta { content_type: "image/webp".into(), ..ObjectMeta::default() };
    let info = backend.objects.put("r/x.webp", Bytes::from_static(b"22"), &plain).await.unwrap();
    assert!(!backend.objects.root().join(".imgpipe-meta").join("r").exists(), "no sidecar left");
    assert_eq!(backend.objects.head("r/x.webp").await.unwrap(), info);
    assert_eq!(backend.objects.get("r/x.webp").await.unwrap().1, info);
}

#[tokio::test]
async fn metadata_too_large_for_an_attribute_goes_to_a_sidecar_and_an_overwrite_drops_it() {
    let (_dir, backend) = open();
    // Over 64 KiB: no filesystem keeps an extended attribute this large.
    let large = ObjectMeta { content_type: "image/png".into(), metadata: [("k".into(), "v".repeat(100_000))].into() };
    let info = backend.objects.put("a/b.png", Bytes::from_static(b"png"), &large).await.unwrap();
    let sidecar = backend.objects.root().join(".imgpipe-meta/a/b.png.json");
    assert!(sidecar.is_file());
    assert_eq!(backend.objects.head("a/b.png").await.unwrap(), info);
    assert_eq!(backend.objects.get("a/b.png").await.unwrap().1, info);

    // Small metadata again: the stale sidecar must not describe the new bytes.
    let small = ObjectMeta { content_type: "image/png".into(), metadata: [("k".into(), "v".into())].into() };
    let info = backend.objects.put("a/b.png", Bytes::from_static(b"png2"), &small).await.unwrap();
    assert_eq!(backend.objects.head("a/b.png").await.unwrap(), info);
    assert_eq!(backend.objects.get("a/b.png").await.unwrap().1, info);
}

#[tokio::test]
async fn a_key_cannot_be_an_object_and_a_prefix_but_deletes_free_the_name() {
    let (_dir, backend) = open();
    let meta = ObjectMeta::default();
    backend.objects.put("a/b", Bytes::from_static(b"1"), &meta).await.unwrap();
    assert!(matches!(
        backend.objects.put("a", Bytes::from_static(b"2"), &meta).await,
        Err(StoreError::InvalidKey { .. })
    ));
    assert!(matches!(
        backend.objects.put("a/b/c", Bytes::from_static(b"3"), &meta).await,
        Err(StoreError::InvalidKey { .. })
    ));
    assert!(matches!(backend.objects.get("a").await, Err(StoreError::NotFound { .. })));
    assert!(matches!(backend.objects.get("a/b/c").await, Err(StoreError::NotFound { .. })));
    // The refused puts left no metadata behind.
    assert!(!backend.objects.root().join(".imgpipe-meta/a.json").exists());
    assert!(!backend.objects.root().join(".imgpipe-meta/a/b/c.json").exists());
    backend.objects.delete("a/b").await.unwrap();
    backend.objects.put("a", Bytes::from_static(b"2"), &meta).await.unwrap();
    assert_eq!(backend.objects.list("").await.unwrap(), vec!["a".to_owned()]);
}

#[cfg(unix)]
#[tokio::test]
async fn a_fifo_or_directory_at_a_key_is_no_object_and_never_blocks() {
    let (_dir, backend) = open();
    let root = backend.objects.root();
    std::fs::create_dir_all(root.join("odd/dir")).unwrap();
    let made = std::process::Command::new("mkfifo").arg(root.join("odd/fifo")).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    for key in ["odd/fifo", "odd/dir"] {
        let limit = std::time::Duration::from_secs(5);
        let get = tokio::time::timeout(limit, backend.objects.get(key)).await.expect("get returns");
        assert!(matches!(get, Err(StoreError::NotFound { .. })), "{key}: {get:?}");
        let head = tokio::time::timeout(limit, backend.objects.head(key)).await.expect("head returns");
        assert!(matches!(head, Err(StoreError::NotFound { .. })), "{key}: {head:?}");
    }
    assert_eq!(backend.objects.list("odd/").await.unwrap(), Vec::<String>::new());
}

#[tokio::test]
async fn a_file_without_metadata_is_described_by_its_bytes_and_name() {
    let (_dir, backend) = open();
    std::fs::create_dir_all(backend.objects.root().join("by")).unwrap();
    std::fs::write(backend.objects.root().join("by/hand.txt"), b"hello").unwrap();
    let info = backend.objects.head("by/hand.txt").await.unwrap();
    assert_eq!((info.size, info.etag), (5, adapters::local::fs::content_etag(b"hello")));
    assert_eq!(info.meta.content_type, "text/plain");
    std::fs::write(backend.objects.root().join("by/hand.bin"), b"hello").unwrap();
    let info = backend.objects.head("by/hand.bin").await.unwrap();
    assert_eq!(info.meta.content_type, "application/octet-stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_two_connections_do_not_fail_busy() {
    let dir = tempfile::tempdir().unwrap();
    // Two backends on one file behave like two processes: two connections competing for the lock.
    let backends = [LocalBackend::open(dir.path()).unwrap(), LocalBackend::open(dir.path()).unwrap()];
    let mut tasks = Vec::new();
    for task in 0..8u64 {
        let backend = backends[(task % 2) as usize].clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = 0;
            for i in 0..20u64 {
                let record = pending(1_700_000_000_000 + task * 100 + i);
                backend.metadata.accept(&record, &notification(&record)).await.unwrap();
                backend.queue.send("extra").await.unwrap();
                let received = backend.queue.receive(1, LONG_LEASE).await.unwrap();
                backend.queue.ack(&received.iter().map(|m| m.receipt.clone()).collect::<Vec<_>>()).await.unwrap();
                acked += received.len() as u64;
                assert!(matches!(backend.metadata.begin(record.id, 1).await.unwrap(), Begin::Started(_)));
                backend.metadata.finish(&[done(&record)]).await.unwrap();
            }
            acked
        }));
    }
    let mut acked = 0;
    for task in tasks {
        acked += task.await.unwrap();
    }
    // Every iteration finds at least one visible message (each adds two, takes at most one).
    assert_eq!(acked, 160);
    let counts = backends[0].metadata.counts().await.unwrap();
    assert_eq!(counts.by_status[&Status::Done], 160);
    let stats = backends[1].queue.stats().await.unwrap();
    assert_eq!((stats.visible, stats.in_flight), (320 - acked, 0));
}

#[tokio::test]
async fn stale_and_unknown_receipts_are_ignored() {
    let (_dir, backend) = open();
    backend.queue.send("event").await.unwrap();
    let first = backend.queue.receive(1, SHORT_LEASE).await.unwrap().remove(0);
    tokio::time::sleep(LEASE_EXPIRY_WAIT).await;
    let second = backend.queue.receive(1, LONG_LEASE).await.unwrap().remove(0);
    // The first receive's handle was superseded: it must not delete the message now leased again.
    backend.queue.ack(&[first.receipt, "no-such-receipt".into()]).await.unwrap();
    assert_eq!(backend.queue.stats().await.unwrap().in_flight, 1);
    backend.queue.ack(&[second.receipt]).await.unwrap();
    assert_eq!(backend.queue.stats().await.unwrap(), QueueStats::default());
}

#[tokio::test]
async fn messages_are_received_in_send_order() {
    let (_dir, backend) = open();
    for i in 0..5 {
        backend.queue.send(&i.to_string()).await.unwrap();
    }
    let bodies: Vec<_> = backend.queue.receive(10, LONG_LEASE).await.unwrap().into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, ["0", "1", "2", "3", "4"]);
}

#[tokio::test]
async fn a_forged_cursor_is_refused_as_invalid() {
    let (_dir, backend) = open();
    for cursor in ["", "nonsense", "12.not-an-id", "x.01JD0000000000000000000000"] {
        match backend.metadata.list(None, Some(cursor), 10).await {
            Err(MetadataError::InvalidCursor(c)) => assert_eq!(c, cursor),
            other => panic!("{cursor:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_waiting_consumer_wakes_when_a_message_is_sent_and_otherwise_at_the_timeout() {
    let (_dir, backend) = open();
    let started = std::time::Instant::now();
    backend.queue.wait(std::time::Duration::from_millis(100)).await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(100));

    let queue = backend.queue.clone();
    let waiter = tokio::spawn(async move {
        let started = std::time::Instant::now();
        queue.wait(std::time::Duration::from_secs(30)).await;
        started.elapsed()
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    backend.queue.send("{}").await.unwrap();
    let waited = tokio::time::timeout(std::time::Duration::from_secs(10), waiter).await.unwrap().unwrap();
    assert!(waited < std::time::Duration::from_secs(5), "woke after {waited:?}");
}

#[tokio::test]
async fn expired_upload_slots_are_removed_and_nothing_else() {
    let (_dir, backend) = open();
    let slot = conformance::metadata::awaiting(1_700_000_000_000);
    let expires = slot.expires_at.unwrap();
    backend.metadata.reserve(std::slice::from_ref(&slot)).await.unwrap();
    let uploaded = pending(1_700_000_000_000);
    backend.metadata.accept(&uploaded, &notification(&uploaded)).await.unwrap();
    assert_eq!(backend.metadata.expire_slots(expires).await.unwrap(), 0, "not before it expires");
    assert_eq!(backend.metadata.expire_slots(expires + 1).await.unwrap(), 1);
    assert_eq!(backend.metadata.get(slot.id).await.unwrap(), None);
    assert!(backend.metadata.get(uploaded.id).await.unwrap().is_some());
}
