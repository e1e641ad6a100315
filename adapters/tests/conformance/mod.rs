//! The ports' conformance suite, written once and run against every backend (STYLE.md, after
//! `object_store`'s `integration.rs`): `tests/local.rs` runs it on the local adapters, the AWS
//! adapters run it on an emulator.
//!
//! Each function takes a fresh, empty instance of the port and asserts only what the port's
//! contract promises, so that any backend that passes is interchangeable. Timing-dependent
//! checks use real leases and sleeps, never backend hooks.

pub mod metadata;
pub mod objects;
pub mod queue;

use std::time::Duration;

/// The shortest lease every backend honours: SQS visibility timeouts are whole seconds.
pub const SHORT_LEASE: Duration = Duration::from_secs(1);

/// Long enough after [`SHORT_LEASE`] for the lease to have expired on every backend.
pub const LEASE_EXPIRY_WAIT: Duration = Duration::from_millis(1500);

/// A lease no test outlives.
pub const LONG_LEASE: Duration = Duration::from_secs(60);
