//! Drives a running imgpipe stack with bulk uploads and measures it.
//!
//! The workspace reserves this crate now; its code lands with the step of the roadmap that needs it
//! (see the README), so that the crate layout of DESIGN.md is fixed from the start.
