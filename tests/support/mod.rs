//! Shared by the binary's tests: where `../shared` is.

use std::path::{Path, PathBuf};

/// A directory of `../shared`, from `var` or (outside CI) the checkout's sibling `shared/`.
/// Under CI a missing variable is a failure, never a skip.
pub fn shared(var: &str, sub: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(dir) => PathBuf::from(dir),
        None if std::env::var_os("CI").is_some() => panic!("{var} is not set"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared").join(sub),
    }
}
