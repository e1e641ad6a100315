//! `imgpipe process DIR`: every file of a folder pushed through the local pipeline, then its
//! renditions and a summary exported.
//!
//! - [`run`](run::run): the command: starts the stack, uploads, waits until every record is
//!   final, exports, reports.
//! - [`upload`]: finds the files and hands each to the ingest path, as an HTTP upload would.
//! - [`export`]: each DONE image's renditions, read through the object-store port, into OUT.
//! - [`summary`]: the summary lines, `summary.json`, the printed report and the exit policy.

pub mod export;
pub mod run;
pub mod summary;
pub mod upload;

pub use run::run;
pub use summary::{Line, Summary};
pub use upload::Upload;
