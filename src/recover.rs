//! Crash recovery of the local stack: what a killed process left unfinished goes back to work.

use adapters::local::{LOCAL_BUCKET, SqliteQueue};
use anyhow::Result;
use imgpipe_core::event::{Notification, S3Notification};
use imgpipe_core::ports::{EventQueue, MetadataStore, ObjectStore};
use imgpipe_core::preset::DEFAULT_PRESET;
use imgpipe_core::record::{MetadataRecord, Source, now_ms};
use imgpipe_core::seams::{ImageId, ORIGINALS_PREFIX, Status};
use ingest::intake;
use std::collections::HashSet;

/// Puts back in the queue what a crash may have left behind: with `requeue`, records PENDING or
/// PROCESSING whose event is no longer queued (it was handed to the runner and lost with the
/// process, or its re-drive could not be sent), and always originals stored without a record (a
/// crash between the file and the record). The local counterpart of the AWS sweeper
/// (`orchestrator::sweep`): one process, so what is open at start-up is all that was lost.
/// Processing is idempotent, so a duplicate event costs nothing visible; restarts do
/// not pile up duplicates, as an image whose event is still queued is left alone.
pub async fn recover(
    objects: &dyn ObjectStore,
    metadata: &dyn MetadataStore,
    queue: &SqliteQueue,
    requeue: bool,
) -> Result<()> {
    let mut requeued = 0;
    // Read only when requeueing: an ingest-only start has no use for the queue's contents.
    let queued: HashSet<String> = if requeue { queued_keys(queue).await? } else { HashSet::new() };
    let statuses: &[Status] = if requeue { &[Status::Pending, Status::Processing] } else { &[] };
    for &status in statuses {
        let mut cursor = None;
        loop {
            let page = metadata.list(Some(status), cursor.as_deref(), 500).await?;
            for record in page.records.iter().filter(|r| !queued.contains(&r.source.key)) {
                queue.send(&S3Notification::original_stored(LOCAL_BUCKET, &record.source, now_ms()).to_json()).await?;
                requeued += 1;
            }
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    let mut adopted = 0;
    for key in objects.list(ORIGINALS_PREFIX).await? {
        let Some(id) = ImageId::from_original_key(&key) else { continue };
        if metadata.get(id).await?.is_some() {
            continue;
        }
        let info = objects.head(&key).await?;
        let preset = info.meta.metadata.get(intake::PRESET_META).cloned().unwrap_or_else(|| DEFAULT_PRESET.into());
        let source = Source { key, bytes: info.size, etag: info.etag, content_type: info.meta.content_type };
        let record = MetadataRecord::pending(id, source, preset, now_ms());
        let notification = S3Notification::original_stored(LOCAL_BUCKET, &record.source, now_ms());
        metadata.accept(&record, &notification.to_json()).await?;
        adopted += 1;
    }
    if requeued + adopted > 0 {
        tracing::info!(requeued, adopted, "recovered unfinished work from the previous run");
    }
    Ok(())
}

/// The keys of the originals whose events (or re-drives) are still queued.
async fn queued_keys(queue: &SqliteQueue) -> Result<HashSet<String>> {
    let bodies = queue.bodies().await?;
    Ok(bodies
        .iter()
        .flat_map(|body| match Notification::parse(body) {
            Ok(Notification::Created(objects)) => objects,
            Ok(Notification::Redrive(redrive)) => redrive.images,
            _ => Vec::new(),
        })
        .map(|o| o.key)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use adapters::local::LocalBackend;
    use imgpipe_core::ports::EventQueue;
    use std::time::Duration;

    #[tokio::test]
    async fn recovery_requeues_lost_events_once_and_leaves_queued_ones_alone() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::open(dir.path()).unwrap();
        for n in 0..3 {
            let id = ImageId::generate();
            let source =
                Source { key: id.original_key("jpg"), bytes: n, etag: "e".into(), content_type: "image/jpeg".into() };
            let record = MetadataRecord::pending(id, source, DEFAULT_PRESET.into(), now_ms());
            let notification = S3Notification::original_stored(LOCAL_BUCKET, &record.source, now_ms());
            backend.metadata.accept(&record, &notification.to_json()).await.unwrap();
        }
        let recover_now = || recover(backend.objects.as_ref(), backend.metadata.as_ref(), &backend.queue, true);
        recover_now().await.unwrap();
        recover_now().await.unwrap();
        assert_eq!(backend.queue.bodies().await.unwrap().len(), 3, "events still queued are not duplicated");

        // Handed to a runner that died with the process: acknowledged, never processed.
        let received = backend.queue.receive(10, Duration::from_secs(60)).await.unwrap();
        backend.queue.ack(&received.iter().map(|m| m.receipt.clone()).collect::<Vec<_>>()).await.unwrap();
        recover_now().await.unwrap();
        recover_now().await.unwrap();
        assert_eq!(backend.queue.bodies().await.unwrap().len(), 3, "each lost event comes back once");
    }
}
