//! The ports' backends: AWS (S3, SQS, Step Functions, DynamoDB) and local (filesystem, SQLite).
//!
//! The workspace reserves this crate now; its code lands with the step of the roadmap that needs it
//! (see the README), so that the crate layout of DESIGN.md is fixed from the start.
