//! The upload stage of `process`: the folder's files, each read and handed to the ingest path.

use anyhow::{Context, Result};
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use imgpipe_core::ImageError;
use imgpipe_core::seams::ImageId;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;
use walkdir::{DirEntry, WalkDir};

use crate::stack::Stack;

/// How long an upload of `process` waits for the processor to take earlier originals before it
/// goes ahead anyway (they are then read back from the files).
pub const UPLOAD_PATIENCE: Duration = Duration::from_secs(1);

/// Files read and handed to the ingest path at once.
const CONCURRENT_UPLOADS: usize = 16;

/// One file of the folder and what its upload gave: the new image's id, or why it was refused
/// before it reached the pipeline (unreadable, too large).
#[derive(Debug)]
pub struct Upload {
    /// The file, relative to the folder.
    pub file: PathBuf,
    /// The image's id, or why there is none.
    pub result: Result<ImageId, ImageError>,
}

/// Every file under `dir`, recursively, sorted; hidden files and directories are skipped.
pub fn list_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in WalkDir::new(dir).follow_links(true).into_iter().filter_entry(|e| e.depth() == 0 || !is_hidden(e)) {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        if !entry.file_type().is_dir() {
            files.push(entry.into_path());
        }
    }
    files.sort();
    Ok(files)
}

fn is_hidden(entry: &DirEntry) -> bool {
    entry.file_name().to_string_lossy().starts_with('.')
}

/// Uploads `files` (found under `dir`) with `preset`, showing a progress bar; the result keeps
/// the order of `files`.
pub async fn upload_all(
    stack: &Stack,
    dir: &Path,
    files: &[PathBuf],
    preset: &str,
    max_bytes: u64,
) -> Result<Vec<Upload>> {
    let bar = ProgressBar::new(files.len() as u64).with_style(ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg} ({per_sec})",
    )?);
    bar.set_message("uploaded");
    let uploads = stream::iter(files)
        .map(|file| {
            let (state, bar, handoff) = (stack.state.clone(), bar.clone(), stack.handoff.clone());
            let relative = file.strip_prefix(dir).unwrap_or(file).to_path_buf();
            async move {
                // Stay just ahead of the processor, so that it takes each original from memory.
                handoff.until_room(UPLOAD_PATIENCE).await;
                let result = upload(&state, file, preset, max_bytes).await;
                bar.inc(1);
                Upload { file: relative, result }
            }
        })
        .buffered(CONCURRENT_UPLOADS)
        .collect()
        .await;
    bar.finish_and_clear();
    Ok(uploads)
}

/// Reads a file and hands it to the ingest path, as an upload would.
pub async fn upload(
    state: &ingest::AppState,
    file: &Path,
    preset: &str,
    max_bytes: u64,
) -> Result<ImageId, ImageError> {
    let path = file.to_path_buf();
    let bytes = tokio::task::spawn_blocking(move || read_file(&path, max_bytes))
        .await
        .map_err(|e| ImageError::internal(format!("reading the file failed: {e}")))??;
    let id = ImageId::generate();
    let filename = file.file_name().map(|name| name.to_string_lossy().into_owned());
    ingest::intake::accept_new(state, id, Bytes::from(bytes), preset, filename)
        .await
        .map_err(|e| ImageError::internal(format!("the upload was refused: {e}")))?;
    Ok(id)
}

/// Reads `path` whole, refusing it from its size before reading when it is over `max_bytes`.
pub fn read_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>, ImageError> {
    let unreadable = |e: std::io::Error| ImageError::internal(format!("cannot read the file: {e}"));
    let too_large =
        |size: u64| ImageError::too_large(format!("the file is {size} bytes; the limit is {max_bytes} bytes"));
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let size = file.metadata().map_err(unreadable)?.len();
    if size > max_bytes {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // A file that grew since it was measured is still read no further than the limit.
    file.take(max_bytes.saturating_add(1)).read_to_end(&mut bytes).map_err(unreadable)?;
    match bytes.len() as u64 {
        read if read > max_bytes => Err(too_large(read)),
        _ => Ok(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgpipe_core::ErrorKind;

    #[test]
    fn a_file_over_the_limit_is_refused_as_too_large_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.bin");
        std::fs::write(&path, vec![0u8; 11]).unwrap();
        assert_eq!(read_file(&path, 11).unwrap().len(), 11);
        assert_eq!(read_file(&path, 10).unwrap_err().kind, ErrorKind::TooLarge);
    }

    #[test]
    fn hidden_files_are_skipped_and_nested_ones_found_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("b/.git")).unwrap();
        for name in ["b/2.jpg", "a.png", ".DS_Store", "b/.git/config"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let found: Vec<_> = list_files(dir.path())
            .unwrap()
            .into_iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().to_path_buf())
            .collect();
        assert_eq!(found, [PathBuf::from("a.png"), PathBuf::from("b/2.jpg")]);
    }
}
