//! The model against closed-form cases: each test lifts every limit but one (or all) and
//! checks the numbers that limit alone implies.

use super::config::{StackConfig, UploadPath};
use super::resource::Resource;
use super::result::RunResult;
use super::run::run_one;
use super::sim::Sim;
use super::stage::Stage;
use imgpipe_core::policy::{CHUNK_SIZE, MAP_MAX_CONCURRENCY, MAX_CHUNKS_PER_WORKFLOW};

/// Every limit out of the way: only the fixed delays are left.
fn unlimited() -> StackConfig {
    StackConfig {
        api_account_rps: 1e9,
        api_account_burst: 1e9,
        api_rps: 1e9,
        api_burst: 1e9,
        orchestrator_concurrency: 1_000,
        start_execution_per_s: 1e9,
        lambda_concurrency: 1_000_000,
        lambda_scale_step: 1_000_000,
        ddb_index_images_per_s: 1e9,
        ddb_start_wcu: 1e10,
        ddb_table_max_wcu: 1e10,
        s3_start_partitions: 1_000_000,
        s3_max_partitions: 1_000_000,
        ..StackConfig::default()
    }
}

fn stage(result: &RunResult, stage: Stage) -> f64 {
    result.stages.iter().find(|(s, _)| *s == stage).expect("every stage").1
}

fn assert_near(what: &str, actual: f64, expected: f64, tolerance: f64) {
    assert!((actual - expected).abs() <= tolerance, "{what}: {actual} is not {expected} ± {tolerance}");
}

/// Mean of the samples' finished images/s with `from <= t < to`.
fn finished_rate(result: &RunResult, from: f64, to: f64) -> f64 {
    let window: Vec<f64> =
        result.samples.iter().filter(|s| s.t > from && s.t <= to).map(|s| s.finished_per_s).collect();
    window.iter().sum::<f64>() / window.len() as f64
}

#[test]
fn defaults_follow_the_policy_and_the_issue() {
    let c = StackConfig::default();
    assert_eq!(c.chunk_size as usize, CHUNK_SIZE);
    assert_eq!(c.chunks_per_workflow as usize, MAX_CHUNKS_PER_WORKFLOW);
    assert_eq!(c.map_concurrency as usize, MAP_MAX_CONCURRENCY);
    assert_eq!((c.retries, c.max_redrives, c.redrive_delay_s), (3, 12, 120.0));
    assert_eq!(c.vcpus(), 2.0);
    // 60 ms fetch + 10 × 87 ms / 2 vCPUs + 40 ms store.
    assert_near("chunk time", c.chunk_s(10), 0.535, 1e-12);
    assert!(c.validate().is_ok());
    assert!(StackConfig { step_s: 0.0, ..c }.validate().is_err());
}

#[test]
fn below_every_limit_latency_is_the_sum_of_the_fixed_delays() {
    // 100 images/s, a window of 5 s that closes before the batch fills, one Map wave.
    let c = StackConfig { batch_size: 10_000, chunks_per_workflow: 100, map_concurrency: 100, ..unlimited() };
    let r = run_one(&c, 1020, 100.0, false);
    let fixed = c.put_s + c.delivery_s + c.orchestrator_s + c.chunk_s(10);
    assert_eq!((r.done, r.failed, r.throttled_invocations), (1020, 0, 0));
    // The first image of each batch waits the whole window, the last none: W/2 on average.
    assert_near("max latency", r.latency.max_s, fixed + c.batch_window_s, 1e-6);
    assert_near("mean latency", r.latency.mean_s, fixed + c.batch_window_s / 2.0, 1e-6);
    for (s, expected) in [
        (Stage::Upload, c.put_s),
        (Stage::Delivery, c.delivery_s),
        (Stage::Batching, c.batch_window_s / 2.0),
        (Stage::QueueWait, 0.0),
        (Stage::Orchestrator, c.orchestrator_s),
        (Stage::WorkflowWait, 0.0),
        (Stage::LambdaThrottle, 0.0),
        (Stage::Processing, c.chunk_s(10)),
        (Stage::StoreThrottle, 0.0),
    ] {
        assert_near(s.label(), stage(&r, s), expected, 1e-6);
    }
    // The last image (arrived in the step at 10.1 s) closes its batch's window.
    assert_near("drain", r.drain_s, 10.1 + fixed, 1e-6);
    assert_eq!(r.bottleneck, None);
}

#[test]
fn direct_uploads_are_held_to_the_api_throttle() {
    // 10,000/s of direct uploads against a 5,000 rps stage throttle with a 5,000 burst.
    let c = StackConfig { upload_path: UploadPath::Direct, api_rps: 5000.0, api_burst: 5000.0, ..unlimited() };
    let images = 100_000;
    let r = run_one(&c, images, 10_000.0, false);
    // The burst goes at once, the rest at 5,000/s; then the fixed delays (and a batch's fill
    // at 5,000/s: one step).
    let admitted_by = (images as f64 - 5000.0) / 5000.0;
    let fixed = c.direct_upload_s + c.delivery_s + c.orchestrator_s + c.chunk_s(10);
    assert_near("drain", r.drain_s, admitted_by + fixed, 2.0 * c.step_s);
    assert_eq!(r.bottleneck.as_deref(), Some(Resource::ApiGateway.label()));
    // The last image arrived at 10 s and was let in at 19 s.
    assert_near("max upload wait", r.latency.max_s - fixed, admitted_by - 10.0, 2.0 * c.step_s);
}

#[test]
fn a_batch_fills_in_b_over_r_seconds() {
    // B / R = 0.5 s, well inside the 5 s window.
    let c = StackConfig { step_s: 0.01, chunks_per_workflow: 100, map_concurrency: 100, ..unlimited() };
    let rate = 1000.0;
    let r = run_one(&c, 5000, rate, false);
    let fill = f64::from(c.batch_size) / rate;
    // Arrivals come a step at a time: the batch's first step waits fill − one step.
    assert_near("mean batching", stage(&r, Stage::Batching), (fill - c.step_s) / 2.0, 1e-6);
    assert_near("queue wait", stage(&r, Stage::QueueWait), 0.0, 1e-6);
    let fixed = c.put_s + c.delivery_s + c.orchestrator_s + c.chunk_s(10);
    assert_near("max latency", r.latency.max_s, fixed + fill - c.step_s, 1e-6);
}

#[test]
fn above_the_orchestrators_capacity_the_queue_grows_at_r_minus_c_and_drains_in_n_over_c() {
    // 2 orchestrators × 500 images / 0.5 s = 2,000 images/s, under 3,000 arriving.
    let c = StackConfig { orchestrator_concurrency: 2, orchestrator_s: 0.5, ..unlimited() };
    let (rate, images) = (3000.0, 60_000);
    let capacity = 2.0 * 500.0 / 0.5;
    let r = run_one(&c, images, rate, false);
    let depth = |t: f64| r.samples.iter().find(|s| (s.t - t).abs() < 1e-6).expect("a sample").queue as f64;
    assert_near("queue growth over 10 s", depth(15.0) - depth(5.0), (rate - capacity) * 10.0, 600.0);
    let n = images as f64;
    assert_near("peak queue", r.peak_queue as f64, (rate - capacity) * n / rate, 600.0);
    // The last batch leaves the orchestrator N/c after the first message, then runs its
    // workflow's ceil(50 / 8) = 7 waves.
    let waves = (f64::from(c.chunks_per_workflow) / f64::from(c.map_concurrency)).ceil();
    let expected = c.put_s + c.delivery_s + n / capacity + waves * c.chunk_s(10);
    // Slack: the first two batches' fill time (2 × B / R) and a step.
    assert_near("drain", r.drain_s, expected, 2.0 * 500.0 / rate + c.step_s);
    assert_eq!(r.bottleneck.as_deref(), Some(Resource::OrchestratorConcurrency.label()));
    assert_eq!(r.done, images);
}

#[test]
fn with_concurrency_l_and_chunk_time_t_throughput_is_l_times_10_over_t() {
    // 50 slots, one of them the orchestrator's (presigning free): 49 processors.
    let c = StackConfig { lambda_concurrency: 50, orchestrator_concurrency: 1, presign_s: 0.0, ..unlimited() };
    let r = run_one(&c, 60_000, 5000.0, false);
    let expected = 49.0 * 10.0 / c.chunk_s(10);
    assert_near("finished/s while saturated", finished_rate(&r, 10.0, 40.0), expected, 0.02 * expected);
    assert!(r.peak_processor_in_flight <= 50, "never more than the account allows");
    assert!(r.throttled_invocations > 0 && r.redriven_chunks > 0);
    assert_eq!(r.bottleneck.as_deref(), Some(Resource::LambdaConcurrency.label()));
}

#[test]
fn lambda_ramps_from_zero_by_1000_every_10_s() {
    // Chunks of 50 s, so nothing ends during the ramp; a high account limit.
    let c = StackConfig {
        lambda_concurrency: 10_000,
        lambda_scale_step: 1000,
        kernel_ms: 10_000.0,
        sample_s: 0.1,
        ..unlimited()
    };
    let mut sim = Sim::new(&c, 10_000_000, 50_000.0);
    while sim.k < 400 {
        sim.step();
    }
    let samples = &sim.samples;
    let first = samples.iter().find(|s| s.processor_in_flight > 0).expect("the processor ran").t;
    let at = |t: f64| samples.iter().rev().find(|s| s.t <= t + 1e-9).expect("a sample").processor_in_flight;
    for s in samples {
        let periods = ((s.t - first) / 10.0).floor().max(0.0) as u32;
        assert!(s.processor_in_flight <= 1000 * (periods + 1), "{} running at {:.1} s", s.processor_in_flight, s.t);
    }
    assert_eq!(at(first + 9.9), 1000);
    assert_eq!(at(first + 19.9), 2000);
    assert_eq!(at(first + 29.9), 3000);
}

#[test]
fn the_dynamodb_index_binds_at_16000_images_per_s_under_50000() {
    let c = StackConfig { ddb_index_images_per_s: 16_000.0, ..unlimited() };
    let images = 400_000;
    let r = run_one(&c, images, 50_000.0, false);
    assert_near("finished/s while saturated", finished_rate(&r, 5.0, 20.0), 16_000.0, 160.0);
    let first_done = c.put_s + c.delivery_s + 0.01 + c.orchestrator_s + c.chunk_s(10);
    // The bucket holds a second's worth: the first 16,000 pass at once.
    assert_near("drain", r.drain_s, first_done + (images as f64 - 16_000.0) / 16_000.0, 0.3);
    assert_eq!(r.bottleneck.as_deref(), Some(Resource::DynamoIndex.label()));
    assert_eq!((r.done, r.throttled_invocations), (images, 0));
    assert!(stage(&r, Stage::StoreThrottle) > 5.0);
}

#[test]
fn a_new_table_serves_4000_units_then_doubles_after_30_minutes() {
    let c = StackConfig { ddb_start_wcu: 4000.0, ddb_table_max_wcu: 40_000.0, ..unlimited() };
    let r = run_one(&c, 6_000_000, 2000.0, false);
    let per_image = c.ddb_units_per_image;
    assert_near("finished/s in the first 30 min", finished_rate(&r, 100.0, 1700.0), 4000.0 / per_image, 7.0);
    assert_near("finished/s in the next 30 min", finished_rate(&r, 1850.0, 2950.0), 8000.0 / per_image, 14.0);
    assert_eq!(r.bottleneck.as_deref(), Some(Resource::DynamoTable.label()));
}
