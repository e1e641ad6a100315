//! [`ObjectStore`] conformance.

use bytes::Bytes;
use imgpipe_core::ports::{ObjectMeta, ObjectStore, StoreError};
use std::collections::BTreeMap;

/// Keys no backend may accept (each could name a path outside a filesystem store's root).
pub const HOSTILE_KEYS: &[&str] = &[
    "",
    "/etc/passwd",
    "../escaped",
    "../../escaped",
    "a/../../escaped",
    "a/./b",
    ".",
    "..",
    "a//b",
    "trailing/",
    "..\\escaped",
    "a\\b",
    "nul\0byte",
    "new\nline",
    "tab\there",
    "del\u{7f}",
];

fn text_meta() -> ObjectMeta {
    ObjectMeta { content_type: "text/plain".into(), metadata: BTreeMap::new() }
}

/// put, get, head, list and delete of one object agree with each other.
pub async fn round_trip(store: &dyn ObjectStore) {
    let key = "conformance/hello.txt";
    let info = store.put(key, Bytes::from_static(b"hello"), &text_meta()).await.unwrap();
    assert_eq!(info.key, key);
    assert_eq!(info.size, 5);
    // Opaque, but without S3's quotes: S3 gives the hex MD5, the local store an XXH3-128.
    assert!(info.etag.len() == 32 && info.etag.bytes().all(|b| b.is_ascii_hexdigit()), "{}", info.etag);
    assert_eq!(info.meta, text_meta());

    let (bytes, got) = store.get(key).await.unwrap();
    assert_eq!(&bytes[..], b"hello");
    assert_eq!(got, info);
    assert_eq!(store.head(key).await.unwrap(), info);
    assert_eq!(store.list("conformance/").await.unwrap(), vec![key.to_owned()]);
    assert_eq!(store.list("").await.unwrap(), vec![key.to_owned()]);

    store.delete(key).await.unwrap();
    assert!(matches!(store.get(key).await, Err(StoreError::NotFound { key: k }) if k == key));
    assert!(matches!(store.head(key).await, Err(StoreError::NotFound { .. })));
    assert!(store.list("conformance/").await.unwrap().is_empty());
    // Deleting what is not there is not an error.
    store.delete(key).await.unwrap();
}

/// Content type and user metadata come back as they were put.
pub async fn metadata_round_trip(store: &dyn ObjectStore) {
    // Lower-case names: S3 lower-cases user metadata names.
    let meta = ObjectMeta {
        content_type: "image/jpeg".into(),
        metadata: BTreeMap::from([("preset".into(), "default".into()), ("watermark".into(), "off".into())]),
    };
    let key = "originals/01JD0000000000000000000000.jpg";
    let put = store.put(key, Bytes::from_static(&[0xff, 0xd8, 0xff]), &meta).await.unwrap();
    assert_eq!(put.meta, meta);
    assert_eq!(store.head(key).await.unwrap().meta, meta);
    assert_eq!(store.get(key).await.unwrap().1.meta, meta);
}

/// Missing objects are NotFound; deleting and listing them is fine.
pub async fn not_found(store: &dyn ObjectStore) {
    assert!(matches!(store.get("missing/x").await, Err(StoreError::NotFound { key }) if key == "missing/x"));
    assert!(matches!(store.head("missing/x").await, Err(StoreError::NotFound { .. })));
    store.delete("missing/x").await.unwrap();
    assert!(store.list("missing/").await.unwrap().is_empty());
}

/// Hostile keys are refused by every operation, before touching storage.
pub async fn invalid_keys(store: &dyn ObjectStore) {
    for &key in HOSTILE_KEYS {
        let refused = |r: Result<(), StoreError>| matches!(r, Err(StoreError::InvalidKey { .. }));
        let put = store.put(key, Bytes::from_static(b"x"), &text_meta()).await.map(drop);
        assert!(refused(put), "put {key:?}");
        assert!(refused(store.get(key).await.map(drop)), "get {key:?}");
        assert!(refused(store.head(key).await.map(drop)), "head {key:?}");
        assert!(refused(store.delete(key).await), "delete {key:?}");
    }
    assert!(store.list("").await.unwrap().is_empty());
}

/// Overwriting replaces the bytes and changes the etag; the same bytes give the same etag.
pub async fn overwrite_changes_etag(store: &dyn ObjectStore) {
    let key = "processed/01JD0000000000000000000000/thumb.webp";
    let first = store.put(key, Bytes::from_static(b"first"), &text_meta()).await.unwrap();
    let second = store.put(key, Bytes::from_static(b"second!"), &text_meta()).await.unwrap();
    assert_ne!(first.etag, second.etag);
    let (bytes, info) = store.get(key).await.unwrap();
    assert_eq!(&bytes[..], b"second!");
    assert_eq!(info.etag, second.etag);
    assert_eq!(info.size, 7);
    let again = store.put(key, Bytes::from_static(b"second!"), &text_meta()).await.unwrap();
    assert_eq!(again.etag, second.etag);
    assert_eq!(store.list("").await.unwrap(), vec![key.to_owned()]);
}

/// `list` filters by string prefix (not only whole segments) and sorts lexically.
pub async fn list_is_lexical(store: &dyn ObjectStore) {
    for key in ["b/2", "a/2", "ab", "a/10", "a-b", "a/1"] {
        store.put(key, Bytes::from_static(b"x"), &text_meta()).await.unwrap();
    }
    let all = ["a-b", "a/1", "a/10", "a/2", "ab", "b/2"].map(String::from);
    assert_eq!(store.list("").await.unwrap(), all);
    assert_eq!(store.list("a/").await.unwrap(), all[1..4]);
    assert_eq!(store.list("a").await.unwrap(), all[..5]);
    assert_eq!(store.list("a/1").await.unwrap(), all[1..3]);
    assert!(store.list("c").await.unwrap().is_empty());
}

/// Readers racing a writer see one whole version or the other, never a mix or a torn file.
pub async fn put_is_atomic_for_readers(store: &dyn ObjectStore) {
    const SIZE: usize = 256 * 1024;
    let key = "conformance/racy.bin";
    let versions = [Bytes::from(vec![b'a'; SIZE]), Bytes::from(vec![b'b'; SIZE])];
    let mut etags = Vec::new();
    for version in &versions {
        etags.push(store.put(key, version.clone(), &text_meta()).await.unwrap().etag);
    }
    let writer = async {
        for round in 0..20 {
            store.put(key, versions[round % 2].clone(), &text_meta()).await.unwrap();
        }
    };
    let reader = async {
        for _ in 0..40 {
            let (bytes, info) = store.get(key).await.unwrap();
            assert_eq!(bytes.len(), SIZE);
            let first = bytes[0];
            assert!(bytes.iter().all(|&b| b == first), "torn read");
            assert_eq!(info.etag, etags[usize::from(first == b'b')]);
        }
    };
    tokio::join!(writer, reader);
}
