//! Object keys every backend accepts: one rule, so that a key that works locally works on S3
//! and the other way round (S3 itself takes almost any byte string; the filesystem does not).

use imgpipe_core::ports::StoreError;

/// Longest key, in bytes (S3's limit).
pub const MAX_KEY_BYTES: usize = 1024;

/// Longest `/`-separated segment, in bytes: a file name is at most 255 bytes on common
/// filesystems, and the local store appends `.json` to name a key's metadata sidecar.
pub const MAX_SEGMENT_BYTES: usize = 250;

/// Segments starting with this are the local store's own files (temporary files, sidecars).
pub const RESERVED_SEGMENT_PREFIX: &str = ".imgpipe";

/// Checks that `key` is a portable object key: non-empty, at most [`MAX_KEY_BYTES`], relative,
/// `/`-separated segments that are neither empty nor `.` nor `..`, and no backslash, NUL or
/// other control character. Such a key can never name a path outside the store's root.
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    let refuse = |reason: &'static str| Err(StoreError::InvalidKey { key: key.to_owned(), reason });
    if key.is_empty() {
        return refuse("empty");
    }
    if key.len() > MAX_KEY_BYTES {
        return refuse("longer than 1024 bytes");
    }
    if key.starts_with('/') {
        return refuse("absolute");
    }
    if key.contains('\\') {
        return refuse("contains a backslash");
    }
    if key.chars().any(char::is_control) {
        return refuse("contains a control character");
    }
    for segment in key.split('/') {
        match segment {
            "" => return refuse("empty segment"),
            "." | ".." => return refuse("`.` or `..` segment"),
            s if s.len() > MAX_SEGMENT_BYTES => return refuse("segment longer than 250 bytes"),
            s if s.starts_with(RESERVED_SEGMENT_PREFIX) => return refuse("reserved `.imgpipe` segment"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_keys_pass() {
        for key in ["originals/01JD.jpg", "processed/01JD/thumb.webp", "a", "a b/ü+%.png", ".hidden/x", "a/.b"] {
            assert!(validate_key(key).is_ok(), "{key}");
        }
    }

    #[test]
    fn hostile_keys_are_refused() {
        let long = "a".repeat(1025);
        let long_segment = format!("a/{}", "b".repeat(251));
        for key in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            ".",
            "..",
            "a//b",
            "a/",
            "a\\..\\b",
            "a\0b",
            "a\nb",
            "a\u{7f}b",
            "a\u{85}b",
            ".imgpipe-meta/x.json",
            "a/.imgpipe-tmp-1",
            &long,
            &long_segment,
        ] {
            assert!(matches!(validate_key(key), Err(StoreError::InvalidKey { .. })), "{key:?}");
        }
    }
}
