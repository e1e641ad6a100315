//! [`EventQueue`] conformance: SQS semantics.

use super::{LEASE_EXPIRY_WAIT, LONG_LEASE, SHORT_LEASE};
use imgpipe_core::ports::{EventQueue, Message, QueueStats};
use std::collections::BTreeSet;
use std::time::Duration;

/// Receives until `n` messages have come, `max` per call (a backend may return fewer than are
/// visible, as SQS's short polling does), asserting that no call returns more than `max`.
pub async fn receive_n(queue: &dyn EventQueue, n: usize, max: usize, lease: Duration) -> Vec<Message> {
    let mut received = Vec::new();
    for _ in 0..50 {
        if received.len() >= n {
            break;
        }
        let batch = queue.receive(max, lease).await.unwrap();
        assert!(batch.len() <= max, "received {} with max {max}", batch.len());
        received.extend(batch);
    }
    assert_eq!(received.len(), n, "expected {n} messages");
    received
}

fn receipts(messages: &[Message]) -> Vec<String> {
    messages.iter().map(|m| m.receipt.clone()).collect()
}

/// Sent messages are received once each, leased, and gone once acknowledged.
pub async fn send_receive_ack(queue: &dyn EventQueue) {
    queue.send("one").await.unwrap();
    queue.send("two").await.unwrap();
    let messages = receive_n(queue, 2, 10, LONG_LEASE).await;
    let bodies: BTreeSet<_> = messages.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, BTreeSet::from(["one", "two"]));
    assert!(messages.iter().all(|m| m.receive_count == 1 && !m.receipt.is_empty()));
    assert_ne!(messages[0].id, messages[1].id);
    // Leased: not visible again while the lease lasts.
    assert!(queue.receive(10, LONG_LEASE).await.unwrap().is_empty());
    queue.ack(&receipts(&messages)).await.unwrap();
    queue.ack(&[]).await.unwrap();
    assert_eq!(queue.stats().await.unwrap(), QueueStats::default());
}

/// An unacknowledged message comes back after its lease, counted, with a new receipt.
pub async fn lease_expiry_redelivers(queue: &dyn EventQueue) {
    queue.send("event").await.unwrap();
    let first = receive_n(queue, 1, 10, SHORT_LEASE).await.remove(0);
    assert_eq!(first.receive_count, 1);
    assert!(queue.receive(10, LONG_LEASE).await.unwrap().is_empty());
    tokio::time::sleep(LEASE_EXPIRY_WAIT).await;
    let second = receive_n(queue, 1, 10, LONG_LEASE).await.remove(0);
    assert_eq!(second.id, first.id);
    assert_eq!(second.body, "event");
    assert_eq!(second.receive_count, 2);
    assert_ne!(second.receipt, first.receipt);
    queue.ack(&[second.receipt]).await.unwrap();
    assert_eq!(queue.stats().await.unwrap(), QueueStats::default());
}

/// A message received `max_receives` times without an ack moves to the dead letters on the
/// next receive instead of being returned. `queue` must dead-letter after `max_receives`.
pub async fn dead_letters_after_max_receives(queue: &dyn EventQueue, max_receives: u32) {
    queue.send("poison").await.unwrap();
    for count in 1..=max_receives {
        let message = receive_n(queue, 1, 10, SHORT_LEASE).await.remove(0);
        assert_eq!(message.receive_count, count);
        tokio::time::sleep(LEASE_EXPIRY_WAIT).await;
    }
    assert!(queue.receive(10, LONG_LEASE).await.unwrap().is_empty());
    assert_eq!(queue.stats().await.unwrap(), QueueStats { visible: 0, in_flight: 0, dead: 1 });
}

/// No receive returns more than `max`, and every message is eventually received exactly once.
pub async fn receive_respects_max(queue: &dyn EventQueue) {
    for i in 0..5 {
        queue.send(&format!("m{i}")).await.unwrap();
    }
    assert!(queue.receive(0, LONG_LEASE).await.unwrap().is_empty());
    let messages = receive_n(queue, 5, 2, LONG_LEASE).await;
    let ids: BTreeSet<_> = messages.iter().map(|m| m.id.clone()).collect();
    assert_eq!(ids.len(), 5);
    let bodies: BTreeSet<_> = messages.iter().map(|m| m.body.clone()).collect();
    assert_eq!(bodies, (0..5).map(|i| format!("m{i}")).collect());
}

/// Stats count visible, leased and dead messages.
pub async fn stats(queue: &dyn EventQueue) {
    assert_eq!(queue.stats().await.unwrap(), QueueStats::default());
    for body in ["a", "b", "c"] {
        queue.send(body).await.unwrap();
    }
    assert_eq!(queue.stats().await.unwrap(), QueueStats { visible: 3, in_flight: 0, dead: 0 });
    let leased = receive_n(queue, 1, 1, LONG_LEASE).await;
    assert_eq!(queue.stats().await.unwrap(), QueueStats { visible: 2, in_flight: 1, dead: 0 });
    queue.ack(&receipts(&leased)).await.unwrap();
    assert_eq!(queue.stats().await.unwrap(), QueueStats { visible: 2, in_flight: 0, dead: 0 });
}

/// A delayed message is not received before its delay (whole seconds), and is after it.
pub async fn delayed_send_waits(queue: &dyn EventQueue) {
    queue.send_delayed("later", Duration::from_secs(1)).await.unwrap();
    queue.send("now").await.unwrap();
    let first = queue.receive(10, LONG_LEASE).await.unwrap();
    assert_eq!(first.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["now"]);
    tokio::time::sleep(LEASE_EXPIRY_WAIT).await;
    let later = receive_n(queue, 1, 10, LONG_LEASE).await;
    assert_eq!(later[0].body, "later");
}
