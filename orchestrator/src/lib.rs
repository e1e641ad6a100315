//! Turns S3 ObjectCreated events into workflow executions: parse, drop test events, dedupe, chunk, start.
//!
//! The workspace reserves this crate now; its code lands with the step of the roadmap that needs it
//! (see the README), so that the crate layout of DESIGN.md is fixed from the start.
