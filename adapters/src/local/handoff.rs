//! [`Handoff`]: the bytes of just-written objects, handed to their first reader from memory.

use async_trait::async_trait;
use bytes::Bytes;
use imgpipe_core::ports::{ObjectInfo, ObjectMeta, ObjectStore, StoreError};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

/// An [`ObjectStore`] that keeps the bytes of its latest puts in memory, up to a byte budget,
/// and hands them to the first `get` of their key instead of reading them back.
///
/// In the local pipeline an original is read once, by the processor, soon after its upload
/// wrote it: through the hand-off its bytes go from the upload to the kernel without a read
/// from the filesystem (a copy, page faults and a hash per image). Every put reaches the inner
/// store before it returns, so durability is the inner store's. A put or delete of a key drops
/// its entry first; puts of one key that overlap leave none (which one the inner store kept is
/// not known), and when the budget is full the oldest entries go. The hand-off only sees what
/// is written through it: every writer of these objects must use the same one (locally, one
/// process owns the data directory).
pub struct Handoff {
    inner: Arc<dyn ObjectStore>,
    budget: u64,
    held: Mutex<Held>,
    /// Signalled whenever bytes leave the hand-off.
    freed: Notify,
}

/// The entries, oldest first, and the puts and deletes in flight.
#[derive(Default)]
struct Held {
    entries: HashMap<String, Entry>,
    /// Keys in the order they were handed in, with the entry's serial (a key put again gets a
    /// new serial; its old place in the line is skipped).
    order: VecDeque<(String, u64)>,
    bytes: u64,
    serial: u64,
    /// Writes in flight per key, and whether two of them overlapped.
    writing: HashMap<String, Writing>,
}

struct Entry {
    bytes: Bytes,
    info: ObjectInfo,
    serial: u64,
}

#[derive(Default)]
struct Writing {
    in_flight: u32,
    overlapped: bool,
}

impl Handoff {
    /// A hand-off in front of `inner` that holds at most `budget` bytes.
    pub fn new(inner: Arc<dyn ObjectStore>, budget: u64) -> Handoff {
        Handoff { inner, budget, held: Mutex::default(), freed: Notify::new() }
    }

    /// Bytes held now.
    pub fn held_bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// Waits until at most half the budget is held, or `patience` has passed: a producer that
    /// calls it before each put stays just ahead of the reader, so what it writes is read from
    /// memory. Patience bounds the wait when nothing reads what is held.
    pub async fn until_room(&self, patience: Duration) {
        let _ = tokio::time::timeout(patience, async {
            loop {
                let freed = self.freed.notified();
                if self.held_bytes() <= self.budget / 2 {
                    return;
                }
                freed.await;
            }
        })
        .await;
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        // The state is consistent after every statement that changes it: a panic elsewhere
        // while it was locked leaves nothing half done.
        self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Drops `key`'s entry and notes a write of it in flight.
    fn begin_write(&self, key: &str) {
        self.lock().begin_write(key);
        self.freed.notify_waiters();
    }
}

impl Held {
    fn begin_write(&mut self, key: &str) {
        self.remove(key);
        let writing = self.writing.entry(key.to_owned()).or_default();
        writing.in_flight += 1;
        writing.overlapped |= writing.in_flight > 1;
    }

    /// Ends a write of `key`; returns whether it overlapped another one.
    fn end_write(&mut self, key: &str) -> bool {
        let Some(writing) = self.writing.get_mut(key) else { return true };
        writing.in_flight -= 1;
        let overlapped = writing.overlapped;
        if writing.in_flight == 0 {
            self.writing.remove(key);
        }
        overlapped
    }

    fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.bytes -= entry.bytes.len() as u64;
        Some(entry)
    }

    fn insert(&mut self, key: &str, bytes: Bytes, info: ObjectInfo, budget: u64) {
        self.serial += 1;
        self.bytes += bytes.len() as u64;
        self.order.push_back((key.to_owned(), self.serial));
        self.entries.insert(key.to_owned(), Entry { bytes, info, serial: self.serial });
        while self.bytes > budget {
            let Some((oldest, serial)) = self.order.pop_front() else { break };
            if self.entries.get(&oldest).is_some_and(|e| e.serial == serial) {
                self.remove(&oldest);
            }
        }
        // Places of entries already taken or replaced are dropped when they reach the front;
        // keep the line from growing without bound when they never do.
        if self.order.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.order.retain(|(key, serial)| entries.get(key).is_some_and(|e| e.serial == *serial));
        }
    }
}

#[async_trait]
impl ObjectStore for Handoff {
    async fn put(&self, key: &str, bytes: Bytes, meta: &ObjectMeta) -> Result<ObjectInfo, StoreError> {
        self.begin_write(key);
        let result = self.inner.put(key, bytes.clone(), meta).await;
        let mut held = self.lock();
        let overlapped = held.end_write(key);
        if let Ok(info) = &result
            && !overlapped
            && bytes.len() as u64 <= self.budget
        {
            held.insert(key, bytes, info.clone(), self.budget);
        }
        drop(held);
        self.freed.notify_waiters();
        result
    }

    async fn get(&self, key: &str) -> Result<(Bytes, ObjectInfo), StoreError> {
        let taken = self.lock().remove(key);
        match taken {
            Some(entry) => {
                self.freed.notify_waiters();
                Ok((entry.bytes, entry.info))
            }
            None => self.inner.get(key).await,
        }
    }

    async fn head(&self, key: &str) -> Result<ObjectInfo, StoreError> {
        self.inner.head(key).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.begin_write(key);
        let result = self.inner.delete(key).await;
        self.lock().end_write(key);
        result
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(prefix).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::FsObjectStore;

    fn handoff(budget: u64) -> (tempfile::TempDir, Arc<FsObjectStore>, Handoff) {
        let dir = tempfile::tempdir().unwrap();
        let files = Arc::new(FsObjectStore::new(dir.path().to_path_buf()));
        let handoff = Handoff::new(files.clone(), budget);
        (dir, files, handoff)
    }

    async fn put(store: &dyn ObjectStore, key: &str, bytes: &'static [u8]) -> ObjectInfo {
        store.put(key, Bytes::from_static(bytes), &ObjectMeta::default()).await.unwrap()
    }

    #[tokio::test]
    async fn the_first_get_takes_the_bytes_from_memory_later_ones_read_the_store() {
        let (_dir, files, handoff) = handoff(1024);
        let info = put(&handoff, "a", b"first").await;
        assert_eq!(handoff.held_bytes(), 5);
        // Changed behind the hand-off's back (never done in the stack): the first get still
        // returns what was put through it, which shows it came from memory.
        put(&*files, "a", b"changed").await;
        assert_eq!(handoff.get("a").await.unwrap(), (Bytes::from_static(b"first"), info));
        assert_eq!(handoff.held_bytes(), 0);
        assert_eq!(handoff.get("a").await.unwrap().0, Bytes::from_static(b"changed"));
    }

    #[tokio::test]
    async fn put_and_delete_replace_or_drop_the_entry() {
        let (_dir, _files, handoff) = handoff(1024);
        put(&handoff, "a", b"one").await;
        put(&handoff, "a", b"two!").await;
        assert_eq!(handoff.held_bytes(), 4);
        assert_eq!(handoff.get("a").await.unwrap().0, Bytes::from_static(b"two!"));
        put(&handoff, "b", b"bee").await;
        handoff.delete("b").await.unwrap();
        assert_eq!(handoff.held_bytes(), 0);
        assert!(matches!(handoff.get("b").await, Err(StoreError::NotFound { .. })));
    }

    #[tokio::test]
    async fn the_oldest_entries_go_when_the_budget_is_full() {
        let (_dir, files, handoff) = handoff(10);
        put(&handoff, "a", b"aaaa").await;
        put(&handoff, "b", b"bbbb").await;
        put(&handoff, "c", b"cccc").await;
        put(&handoff, "big", b"more than ten bytes").await;
        assert_eq!(handoff.held_bytes(), 8);
        // "a" was evicted: its get reads the store, which was changed behind the hand-off.
        put(&*files, "a", b"disk").await;
        put(&*files, "b", b"disk").await;
        assert_eq!(handoff.get("a").await.unwrap().0, Bytes::from_static(b"disk"));
        assert_eq!(handoff.get("b").await.unwrap().0, Bytes::from_static(b"bbbb"));
        assert_eq!(handoff.get("big").await.unwrap().0, Bytes::from_static(b"more than ten bytes"));
    }

    #[tokio::test]
    async fn overlapping_puts_of_a_key_leave_no_entry() {
        let (_dir, _files, handoff) = handoff(1024);
        handoff.begin_write("a"); // another put of "a" is in flight
        put(&handoff, "a", b"inner").await;
        assert_eq!(handoff.held_bytes(), 0);
        handoff.lock().end_write("a"); // and ends
        // Once nothing is in flight, puts are held again.
        put(&handoff, "a", b"again").await;
        assert_eq!(handoff.held_bytes(), 5);
    }

    #[tokio::test]
    async fn until_room_returns_when_a_reader_frees_half_the_budget() {
        let (_dir, _files, handoff) = handoff(8);
        let handoff = Arc::new(handoff);
        put(&*handoff, "a", b"aaaaaa").await;
        let waiter = tokio::spawn({
            let handoff = handoff.clone();
            async move { handoff.until_room(Duration::from_secs(30)).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "6 of 8 bytes held: no room yet");
        handoff.get("a").await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap();
        // Patience bounds the wait when nothing reads.
        put(&*handoff, "b", b"bbbbbb").await;
        tokio::time::timeout(Duration::from_secs(5), handoff.until_room(Duration::from_millis(10))).await.unwrap();
    }
}
