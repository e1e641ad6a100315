//! The ports' conformance suite, written once and run against every backend (after
//! `object_store`'s `integration.rs`): `tests/local.rs` runs it on the local adapters,
//! `tests/aws.rs` on the AWS adapters against an emulator.
//!
//! The cases are listed once, in [`conformance_suite!`], so every backend runs every case: a
//! case added here runs everywhere, and none can be left out of one backend by accident.
//!
//! Each function takes a fresh, empty instance of the port and asserts only what the port's
//! contract promises, so that any backend that passes is interchangeable. Timing-dependent
//! checks use real leases and sleeps, never backend hooks.

/// One test module of a port's cases for one backend: `conformance_suite!(objects as name, make)`
/// (or `queue`, `metadata`) expands to `mod name` with one `#[tokio::test]` per case, named as
/// the case. `make` is evaluated (and may `.await`) inside each test, giving `(guard, store)`:
/// the guard lives as long as the test (a local backend's temporary directory; `()` if none),
/// and `&*store` is the port under test.
macro_rules! conformance_suite {
    (objects as $name:ident, $make:expr) => {
        conformance_suite!(@module objects as $name, $make;
            round_trip, metadata_round_trip, not_found, invalid_keys, overwrite_changes_etag, list_is_lexical,
            put_is_atomic_for_readers,
        );
    };
    (queue as $name:ident, $make:expr) => {
        conformance_suite!(@module queue as $name, $make;
            send_receive_ack, lease_expiry_redelivers, receive_respects_max, stats, delayed_send_waits,
        );
    };
    (metadata as $name:ident, $make:expr) => {
        conformance_suite!(@module metadata as $name, $make;
            accept_then_get, duplicate_accept_conflicts, reserve_then_accept_upgrades,
            begin_transitions_and_counts_attempts, begin_on_final_is_already_final, begin_unknown,
            finish_is_exactly_once, list_paginates_newest_first, list_merges_many_records, counts_by_status_and_kind,
            begin_and_finish_remove_expires_at, existing_reports_records, sweep_is_conditional_on_the_record_as_seen,
        );
    };
    (@module $port:ident as $name:ident, $make:expr; $($case:ident),+ $(,)?) => {
        mod $name {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (_guard, store) = $make;
                    crate::conformance::$port::$case(&*store).await;
                }
            )+
        }
    };
}

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
