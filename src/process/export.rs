//! The export stage of `process`: each DONE image's renditions, out of the object store and into
//! OUT/<file>/<rendition>.<ext>.

use crate::process::summary::Line;
use crate::process::upload::Upload;
use anyhow::{Context, Result};
use imgpipe_core::ports::ObjectStore;
use imgpipe_core::record::MetadataRecord;
use imgpipe_core::seams::{ImageId, Status};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Writes each DONE image's renditions, read from `renditions` through the object-store port
/// (whatever backs it), into OUT/<file>/, and builds one summary line per upload. `records`
/// holds the final record of every accepted upload.
pub async fn export(
    renditions: &dyn ObjectStore,
    uploads: Vec<Upload>,
    records: &BTreeMap<ImageId, MetadataRecord>,
    out: &Path,
) -> Result<Vec<Line>> {
    let mut lines = Vec::with_capacity(uploads.len());
    for Upload { file, result } in uploads {
        let line = match result {
            Err(error) => {
                Line { file, id: None, status: Status::Failed, error: Some(error), record: None, renditions: vec![] }
            }
            Ok(id) => {
                let record = records.get(&id).cloned().context("a record vanished")?;
                let paths = write_renditions(renditions, &record, &out.join(&file)).await?;
                Line {
                    file,
                    id: Some(id),
                    status: record.status,
                    error: record.error.clone(),
                    record: Some(record),
                    renditions: paths,
                }
            }
        };
        lines.push(line);
    }
    Ok(lines)
}

/// Writes the renditions of `record` into `dir`, one file each, and returns their paths.
async fn write_renditions(store: &dyn ObjectStore, record: &MetadataRecord, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::with_capacity(record.renditions.len());
    if !record.renditions.is_empty() {
        // A FAILED image gets no directory.
        tokio::fs::create_dir_all(dir).await.with_context(|| format!("cannot create {}", dir.display()))?;
    }
    for rendition in &record.renditions {
        let path = dir.join(format!("{}.{}", rendition.name, rendition.format.extension()));
        let (bytes, _) =
            store.get(&rendition.key).await.with_context(|| format!("cannot read rendition {}", rendition.key))?;
        tokio::fs::write(&path, &bytes).await.with_context(|| format!("cannot write {}", path.display()))?;
        paths.push(path);
    }
    Ok(paths)
}
