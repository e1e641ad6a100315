//! imgpipe's domain, shared by every part of the pipeline and both backends.
//!
//! - [`error`]: the error taxonomy every failed image ends in (`corrupt`, `unsupported`, …).
//! - [`format`]: input formats (sniffed from bytes) and output formats.
//! - [`limits`]: the bounds checked before the memory they protect is allocated.
//! - [`live`]: [`Live`], a shared value replaced whole (the presets a function serves).
//! - [`preset`]: named rendition recipes, parsed from TOML (parse, don't validate).
//! - [`seams`]: the contracts between parts: image ids, object keys, workflow and processor payloads.
//! - [`event`]: the S3 ObjectCreated notification, the queue message of both modes.
//! - [`record`]: the metadata record, one per image.
//! - [`metrics`]: the metrics catalogue (names, units) and the calls that record them.
//! - [`ports`]: object store, event queue, workflow starter, metadata store.
//! - [`policy`]: chunk sizes and the retry policy shared by the state machine and the local runner.
//!
//! This crate does no I/O: it only describes.

#![warn(missing_docs)]

pub mod error;
pub mod event;
pub mod format;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod policy;
pub mod ports;
pub mod preset;
pub mod record;
pub mod seams;

pub use error::{ErrorKind, ImageError};
pub use format::{InputFormat, OutputFormat, sniff_undecodable};
pub use limits::Limits;
pub use live::Live;
pub use preset::{Preset, PresetCatalog};
