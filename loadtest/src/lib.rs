//! Drives a running imgpipe stack (the local `imgpipe serve`, or the API deployed on AWS) with
//! bulk uploads through the public v1 API only, waits until every accepted image is DONE or
//! FAILED, and reports throughput, latency, failures and what a million images would cost.
//!
//! - [`config`]: [`RunConfig`]: the target, the load shape ([`Load`]: closed or open loop), the
//!   upload [`Mode`] (direct, presigned, mixed) and the [`Inputs`].
//! - [`inputs`]: the bodies, prepared before the clock starts: a folder, or synthetic
//!   JPEG/PNG/WebP images from a seed, plus hostile ones (truncations, text, bits flipped in
//!   JPEG Huffman and quantisation tables and frame headers, PNG headers and data, WebP).
//! - [`run()`]: one run: upload phase, drain, report. The binary is a thin wrapper around it.
//! - [`report`]: [`Report`] (`report.json`), its Markdown, its [`report::Plot`]s, and [`compare`];
//!   [`files`]: the JSON and Markdown every report writes, and [`files::WriteError`].
//! - [`cost`]: the cost model per million images, with documented, overridable unit prices.
//! - [`stats`]: HDR latency percentiles, time series, the clock offset to the target.
//! - [`soak()`]: a long run against one server: every upload followed to its final record and
//!   checked against a fresh run of the kernel ([`soak::expect_fresh`]), the server's memory
//!   sampled ([`rss`]), a [`SoakReport`] with its plot.
//! - [`simulate()`]: a discrete-event model of the AWS stack under a burst (no stack needed):
//!   latency, drain time, queue depth, bottleneck and where time goes, per upload rate.
//! - [`api`]: the v1 client (one pooled connection set); [`drain`]: paged polling of the listing.
//! - internals: `drive` (the closed and open loops), `plot` (how a figure is drawn: SVG and PNG
//!   through plotters with the processor's font, and the charts' look).

#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod cost;
pub mod drain;
mod drive;
pub mod files;
pub mod inputs;
mod plot;
pub mod report;
pub mod rss;
mod run;
pub mod simulate;
pub mod soak;
pub mod stats;

pub use config::{Inputs, Load, Mode, RunConfig, Size};
pub use report::{Report, compare};
pub use run::{RunError, run};
pub use simulate::{SimReport, StackConfig, simulate};
pub use soak::{SoakConfig, SoakError, SoakReport, soak};
