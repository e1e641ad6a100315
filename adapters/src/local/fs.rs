//! [`FsObjectStore`]: objects as plain files under a root directory (so a person can browse
//! them). An object's metadata, when the key does not already say it all (renditions need none:
//! their content type is their extension's), is JSON in an extended attribute of the object's
//! own file, or in a sidecar file under `root/.imgpipe-meta/` where the filesystem has no user
//! attributes.

use crate::keys::{RESERVED_SEGMENT_PREFIX, validate_key};
use async_trait::async_trait;
use bytes::Bytes;
use imgpipe_core::ports::{BackendError, ObjectInfo, ObjectMeta, ObjectStore, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

/// The directory under the root that holds the sidecars; keys cannot name it (see
/// [`RESERVED_SEGMENT_PREFIX`]), so listing skips it and no object collides with it.
const META_DIR: &str = ".imgpipe-meta";

/// Temporary files of in-progress puts start with this (also reserved, also skipped).
const TEMP_PREFIX: &str = ".imgpipe-tmp-";

/// Why a key that is both an object and a prefix of other objects is refused.
const CLASH: &str = "an object and a prefix of other objects at once (not possible on a filesystem)";

/// Content type of an object without a sidecar whose extension names none (S3's default too).
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// The content type a key's extension implies, for objects stored without a sidecar.
fn implied_content_type(key: &str) -> &'static str {
    let extension = key.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase());
    match extension.as_deref() {
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("tif" | "tiff") => "image/tiff",
        Some("bmp") => "image/bmp",
        Some("json") => "application/json",
        Some("txt") => "text/plain",
        _ => DEFAULT_CONTENT_TYPE,
    }
}

/// The local [`ObjectStore`]: a directory tree.
///
/// Puts are atomic (a temporary file, fsynced, renamed over the object), so a reader sees the
/// old bytes or the new ones, with their metadata: the attribute is set on the temporary file
/// and renamed with it. A sidecar (no user attributes) is renamed into place just before the
/// bytes, so there a `head` during an overwrite may briefly pair the new metadata with the old
/// bytes; `get` always computes the etag from the bytes it returns.
///
/// Unlike S3, a key cannot be both an object and a prefix of other keys (`a` and `a/b`): such a
/// put fails with [`StoreError::InvalidKey`].
#[derive(Debug, Clone)]
pub struct FsObjectStore {
    root: PathBuf,
    durability: Durability,
}

/// What a completed put survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A power loss: every put fsyncs its file and directory before it returns.
    PowerLoss,
    /// The process being killed, not the machine losing power (the bytes are in the page
    /// cache, not yet on disk). For a data directory that lives no longer than the process, as
    /// `imgpipe process` makes when given no `--data`: fsyncs there buy nothing.
    ProcessCrash,
}

/// An object's stored metadata (in its attribute or its sidecar).
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    content_type: String,
    metadata: BTreeMap<String, String>,
    size: u64,
    etag: String,
}

impl FsObjectStore {
    /// The store rooted at `root` (created on the first put), durable across power loss.
    pub fn new(root: PathBuf) -> FsObjectStore {
        FsObjectStore::with_durability(root, Durability::PowerLoss)
    }

    /// The store rooted at `root`, with puts as durable as `durability` says.
    pub fn with_durability(root: PathBuf, durability: Durability) -> FsObjectStore {
        FsObjectStore { root, durability }
    }

    /// The directory the objects live in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file that holds the bytes of `key` (which may not exist yet). For a caller that
    /// wants the file itself, e.g. to hard-link it elsewhere instead of copying its bytes.
    pub fn file_path(&self, key: &str) -> Result<PathBuf, StoreError> {
        validate_key(key)?;
        Ok(self.object_path(key))
    }

    fn object_path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn sidecar_path(&self, key: &str) -> PathBuf {
        self.root.join(META_DIR).join(format!("{key}.json"))
    }

    /// Runs blocking filesystem work on the blocking pool.
    async fn blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&FsObjectStore) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || work(&store))
            .await
            .map_err(|e| StoreError::Backend(BackendError::permanent("filesystem task failed", e)))?
    }
}

/// The etag of `bytes`: 32 hex digits of their XXH3-128 hash.
///
/// S3 uses the MD5 of a single-part put, but an etag is opaque: it only has to change when the
/// bytes do. XXH3 hashes at memory speed (MD5 managed ~0.6 GB/s, a millisecond and more per
/// photo, on every put and every get), and the store is private, so no one can choose
/// colliding bytes for a key the server named.
pub fn content_etag(bytes: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

#[async_trait]
impl ObjectStore for FsObjectStore {
    async fn put(&self, key: &str, bytes: Bytes, meta: &ObjectMeta) -> Result<ObjectInfo, StoreError> {
        validate_key(key)?;
        let key = key.to_owned();
        let meta = meta.clone();
        self.blocking(move |store| {
            let info = ObjectInfo { key: key.clone(), size: bytes.len() as u64, etag: content_etag(&bytes), meta };
            // Refuse a file/directory clash before writing anything, so that a refused put
            // leaves no sidecar behind.
            store.check_no_clash(&key)?;
            let durable = store.durability == Durability::PowerLoss;
            let object = store.object_path(&key);
            if info.meta == default_meta(&key) {
                // Nothing to say beyond the key: no attribute, no sidecar, and none left over
                // from an earlier version of this key.
                write_atomically(&object, &bytes, durable, |_| Ok(())).map_err(|e| io_error(&key, Op::Write, e))?;
                store.remove_sidecar(&key)?;
                return Ok(info);
            }
            let stored = Stored {
                content_type: info.meta.content_type.clone(),
                metadata: info.meta.metadata.clone(),
                size: info.size,
                etag: info.etag.clone(),
            };
            let json = serde_json::to_vec(&stored).map_err(|e| {
                StoreError::Backend(BackendError::permanent(format!("serialising metadata of {key}"), e))
            })?;
            let sidecar = store.sidecar_path(&key);
            let mut in_sidecar = false;
            write_atomically(&object, &bytes, durable, |file| {
                if xattr::set(file, &json) {
                    return Ok(());
                }
                in_sidecar = true;
                write_atomically(&sidecar, &json, durable, |_| Ok(()))
            })
            .map_err(|e| io_error(&key, Op::Write, e))?;
            if !in_sidecar {
                store.remove_sidecar(&key)?;
            }
            Ok(info)
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<(Bytes, ObjectInfo), StoreError> {
        validate_key(key)?;
        let key = key.to_owned();
        self.blocking(move |store| {
            let (file, stat) = store.open_object(&key)?;
            let bytes = read_all(&key, &file, &stat)?;
            let meta = store.stored(&key, &file)?.map(Stored::into_meta);
            let info = ObjectInfo {
                key: key.clone(),
                size: bytes.len() as u64,
                etag: content_etag(&bytes),
                meta: meta.unwrap_or_else(|| default_meta(&key)),
            };
            Ok((Bytes::from(bytes), info))
        })
        .await
    }

    async fn head(&self, key: &str) -> Result<ObjectInfo, StoreError> {
        validate_key(key)?;
        let key = key.to_owned();
        self.blocking(move |store| {
            let (file, stat) = store.open_object(&key)?;
            match store.stored(&key, &file)? {
                Some(stored) if stored.size == stat.len() => Ok(ObjectInfo {
                    key,
                    size: stored.size,
                    etag: stored.etag,
                    meta: ObjectMeta { content_type: stored.content_type, metadata: stored.metadata },
                }),
                // No metadata (a file put there by hand, or a crash between a sidecar's rename
                // and the bytes') or metadata that does not describe these bytes: describe the
                // bytes themselves.
                stored => {
                    let bytes = read_all(&key, &file, &stat)?;
                    let meta = stored.map_or_else(|| default_meta(&key), Stored::into_meta);
                    Ok(ObjectInfo { key, size: bytes.len() as u64, etag: content_etag(&bytes), meta })
                }
            }
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        let key = key.to_owned();
        self.blocking(move |store| {
            let path = store.object_path(&key);
            match fs::remove_file(&path) {
                Ok(()) => remove_empty_parents(&path, &store.root),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(&key, Op::Delete, e)),
            }
            store.remove_sidecar(&key)?;
            Ok(())
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let prefix = prefix.to_owned();
        self.blocking(move |store| {
            // Walk only the directory the prefix's complete segments name, when they form a
            // valid key; the prefix is otherwise only compared as a string, never used as a path.
            let (start_dir, start_key) = match prefix.rfind('/') {
                Some(end) if validate_key(&prefix[..end]).is_ok() => {
                    (store.root.join(&prefix[..end]), format!("{}/", &prefix[..end]))
                }
                _ => (store.root.clone(), String::new()),
            };
            let mut keys = Vec::new();
            walk(&start_dir, &start_key, &mut keys).map_err(|e| io_error(&prefix, Op::List, e))?;
            keys.retain(|key| key.starts_with(&prefix));
            keys.sort_unstable();
            Ok(keys)
        })
        .await
    }
}

impl FsObjectStore {
    /// Fails if a directory on the way to `key` is a file, or `key` itself is a directory.
    fn check_no_clash(&self, key: &str) -> Result<(), StoreError> {
        let clash = || StoreError::InvalidKey { key: key.to_owned(), reason: CLASH };
        let path = self.object_path(key);
        if path.is_dir() {
            return Err(clash());
        }
        let mut dir = path.parent();
        while let Some(current) = dir.filter(|d| d.starts_with(&self.root) && *d != self.root) {
            if current.exists() && !current.is_dir() {
                return Err(clash());
            }
            dir = current.parent();
        }
        Ok(())
    }

    fn remove_sidecar(&self, key: &str) -> Result<(), StoreError> {
        let path = self.sidecar_path(key);
        match fs::remove_file(&path) {
            Ok(()) => remove_empty_parents(&path, &self.root.join(META_DIR)),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {}
            Err(e) => return Err(io_error(key, Op::Delete, e)),
        }
        Ok(())
    }

    /// Opens the regular file of `key`. Anything else at its path (a directory, a FIFO, a
    /// device) is no object, and is never opened: opening a FIFO would block.
    fn open_object(&self, key: &str) -> Result<(File, fs::Metadata), StoreError> {
        let path = self.object_path(key);
        let stat = fs::metadata(&path).map_err(|e| io_error(key, Op::Read, e))?;
        if !stat.is_file() {
            return Err(StoreError::NotFound { key: key.to_owned() });
        }
        let file = File::open(&path).map_err(|e| io_error(key, Op::Read, e))?;
        Ok((file, stat))
    }

    /// The metadata stored with `key`, whose file is open as `file`: its attribute, else its
    /// sidecar, else none.
    fn stored(&self, key: &str, file: &File) -> Result<Option<Stored>, StoreError> {
        let json = match xattr::get(file) {
            Some(json) => json,
            None => match fs::read(self.sidecar_path(key)) {
                Ok(json) => json,
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => return Ok(None),
                Err(e) => return Err(io_error(key, Op::Read, e)),
            },
        };
        serde_json::from_slice(&json)
            .map(Some)
            .map_err(|e| StoreError::Backend(BackendError::permanent(format!("metadata of {key} is unreadable"), e)))
    }
}

impl Stored {
    fn into_meta(self) -> ObjectMeta {
        ObjectMeta { content_type: self.content_type, metadata: self.metadata }
    }
}

/// The whole content of `key`'s open `file`, whose size `stat` gives.
fn read_all(key: &str, mut file: &File, stat: &fs::Metadata) -> Result<Vec<u8>, StoreError> {
    let mut bytes = Vec::with_capacity(stat.len() as usize);
    file.read_to_end(&mut bytes).map_err(|e| io_error(key, Op::Read, e))?;
    Ok(bytes)
}

/// What an object stored without metadata is described as.
fn default_meta(key: &str) -> ObjectMeta {
    ObjectMeta { content_type: implied_content_type(key).to_owned(), metadata: BTreeMap::new() }
}

/// Writes `bytes` to a temporary file next to `path`, runs `before_rename` on it, and renames it
/// over `path`, so that `path` holds the old bytes or the new ones, even after a crash. When
/// `durable`, the file is fsynced before the rename and the directory after it, so that this
/// holds after a power loss too.
fn write_atomically(
    path: &Path,
    bytes: &[u8],
    durable: bool,
    before_rename: impl FnOnce(&File) -> io::Result<()>,
) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| io::Error::new(ErrorKind::InvalidInput, "path has no parent"))?;
    let temp = dir.join(format!("{TEMP_PREFIX}{}", ulid::Ulid::generate()));
    // A concurrent delete may remove a directory that just became empty between our
    // `create_dir_all` and the create: try again a few times.
    let mut attempts = 0;
    let mut file = loop {
        fs::create_dir_all(dir)?;
        match File::create_new(&temp) {
            Ok(file) => break file,
            Err(e) if e.kind() == ErrorKind::NotFound && attempts < 3 => attempts += 1,
            Err(e) => return Err(e),
        }
    };
    let written = file
        .write_all(bytes)
        .and_then(|()| before_rename(&file))
        .and_then(|()| if durable { file.sync_all() } else { Ok(()) })
        .and_then(|()| fs::rename(&temp, path));
    if let Err(e) = written {
        // Best effort: a leftover temporary file is skipped by `list` anyway.
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    if durable { File::open(dir)?.sync_all() } else { Ok(()) }
}

/// An object's metadata as an extended attribute of its own file, in the `user.` namespace that
/// the file's owner may write.
#[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
mod xattr {
    use rustix::fs::{XattrFlags, fgetxattr, fsetxattr};
    use rustix::io::Errno;
    use std::fs::File;

    const NAME: &str = "user.imgpipe.meta";

    /// Sets the attribute; false where the filesystem keeps no user attributes (or none this
    /// large), and the caller must keep the metadata elsewhere.
    pub fn set(file: &File, value: &[u8]) -> bool {
        fsetxattr(file, NAME, value, XattrFlags::empty()).is_ok()
    }

    /// The attribute's value, if the file has one.
    pub fn get(file: &File) -> Option<Vec<u8>> {
        let mut value = vec![0u8; 512];
        loop {
            match fgetxattr(file, NAME, &mut value[..]) {
                Ok(len) => {
                    value.truncate(len);
                    return Some(value);
                }
                // Attribute values are 64 KiB at most.
                Err(Errno::RANGE) if value.len() < 1 << 16 => value.resize(value.len() * 4, 0),
                Err(_) => return None,
            }
        }
    }
}

/// No extended attributes here: every object's metadata goes to a sidecar.
#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
mod xattr {
    use std::fs::File;

    pub fn set(_: &File, _: &[u8]) -> bool {
        false
    }

    pub fn get(_: &File) -> Option<Vec<u8>> {
        None
    }
}

/// Removes the now-empty directories between `path` and `base`, so that a deleted key leaves no
/// directory behind that would block a later put of an object with that directory's name.
fn remove_empty_parents(path: &Path, base: &Path) {
    let mut dir = path.parent();
    while let Some(current) = dir {
        // `remove_dir` fails on a non-empty directory: that is the stop condition, not an error.
        if current == base || !current.starts_with(base) || fs::remove_dir(current).is_err() {
            break;
        }
        dir = current.parent();
    }
}

/// Collects the keys of the files under `dir`, whose key prefix is `key_prefix`.
fn walk(dir: &Path, key_prefix: &str, keys: &mut Vec<String>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        // A name that is not UTF-8, or is reserved (sidecars, temporary files), is no key.
        let Ok(name) = entry.file_name().into_string() else { continue };
        if name.starts_with(RESERVED_SEGMENT_PREFIX) {
            continue;
        }
        let key = format!("{key_prefix}{name}");
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), &format!("{key}/"), keys)?;
        } else if kind.is_file() {
            keys.push(key);
        }
    }
    Ok(())
}

/// What was being done when an I/O error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    Write,
    Delete,
    List,
}

impl Op {
    fn verb(self) -> &'static str {
        match self {
            Op::Read => "reading",
            Op::Write => "writing",
            Op::Delete => "deleting",
            Op::List => "listing",
        }
    }
}

/// Maps an I/O error on `key`: missing means NotFound; a file/directory clash means NotFound
/// when reading and, when writing, a key that cannot exist on a filesystem; anything else is a
/// backend failure.
fn io_error(key: &str, op: Op, error: io::Error) -> StoreError {
    // `create_dir_all` over a file reports AlreadyExists.
    let clash = matches!(
        error.kind(),
        ErrorKind::NotADirectory | ErrorKind::IsADirectory | ErrorKind::DirectoryNotEmpty | ErrorKind::AlreadyExists
    );
    match error.kind() {
        ErrorKind::NotFound => StoreError::NotFound { key: key.to_owned() },
        _ if clash && op == Op::Read => StoreError::NotFound { key: key.to_owned() },
        _ if clash => StoreError::InvalidKey { key: key.to_owned(), reason: CLASH },
        ErrorKind::Interrupted | ErrorKind::TimedOut | ErrorKind::WouldBlock => {
            StoreError::Backend(BackendError::retryable(format!("{} {key}", op.verb()), error))
        }
        _ => StoreError::Backend(BackendError::permanent(format!("{} {key}", op.verb()), error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_32_hex_digits_of_the_bytes() {
        assert_eq!(content_etag(b"hello"), "b5e9c1ad071b3e7fc779cfaa5e523818");
        assert_eq!(content_etag(b"hello"), content_etag(b"hello"));
        assert_ne!(content_etag(b"hello"), content_etag(b"hellp"));
        assert_eq!(content_etag(b"").len(), 32);
    }
}
