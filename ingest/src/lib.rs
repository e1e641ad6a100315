//! The upload API: one axum Router served by lambda_http on AWS and axum::serve locally.
//!
//! The workspace reserves this crate now; its code lands with the step of the roadmap that needs it
//! (see the README), so that the crate layout of DESIGN.md is fixed from the start.
