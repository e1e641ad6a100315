//! `imgpipe`: the embedded (single machine) mode of the pipeline, as a library the `imgpipe`
//! binary parses its arguments into.
//!
//! - [`cli`]: the command line (clap types) and the local stack's settings from flags and env.
//! - [`serve`]: `imgpipe serve`, the v1 upload API on 127.0.0.1 and the whole pipeline (queue
//!   with SQS semantics, orchestrator, workflow runner, processor, metadata) over a data directory.
//! - [`process`]: `imgpipe process DIR`, every file of a folder through that same pipeline, with
//!   progress, then the renditions and a summary exported.
//! - [`stack`]: wiring only: the local stack built from its parts over a data directory.
//! - [`recover`]: what a killed process left unfinished, put back to work at start-up.
//! - [`telemetry`]: the one place the tracing subscriber is built, for every command.
//!
//! The parts themselves (domain, kernel, orchestrator, API, adapters) are the workspace's other
//! crates; see `docs/architecture.md`.

#![warn(missing_docs)]

pub mod cli;
pub mod process;
pub mod recover;
pub mod serve;
pub mod stack;
pub mod telemetry;
