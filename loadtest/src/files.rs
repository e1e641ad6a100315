//! A report's files: the folder, the JSON and Markdown every report writes, and what goes
//! wrong writing (or reading back) any of them, plots included.

use serde::Serialize;
use std::path::{Path, PathBuf};

/// A report could not be written (or read back).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A file or folder could not be written.
    #[error("cannot write {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A plot could not be drawn.
    #[error("cannot draw {path}: {message}")]
    Plot {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A report could not be read back (compare).
    #[error("{path} is not a loadtest report: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// Creates `dir` (and its parents) and writes `STEM.json` (`report`, pretty) and `STEM.md`
/// (`markdown`) into it; the two paths.
pub(crate) fn write_report(
    dir: &Path,
    stem: &str,
    report: &impl Serialize,
    markdown: &str,
) -> Result<Vec<PathBuf>, WriteError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let json = dir.join(format!("{stem}.json"));
    let text = serde_json::to_string_pretty(report).expect("a report serializes");
    std::fs::write(&json, text).map_err(io(&json))?;
    let md = dir.join(format!("{stem}.md"));
    std::fs::write(&md, markdown).map_err(io(&md))?;
    Ok(vec![json, md])
}

/// Maps an I/O error at `path` to [`WriteError::Io`].
pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError {
    let path = path.to_path_buf();
    move |source| WriteError::Io { path, source }
}
