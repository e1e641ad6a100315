//! `loadtest` against the real `imgpipe serve` on a free port: a few hundred small synthetic
//! images in each upload mode (closed and open loop), with hostile inputs mixed in. The report
//! must add up (completed + failed + lost = uploaded, nothing lost), count each hostile input as
//! a failure of its kind, order its percentiles, and write its plots.

#[path = "support/server.rs"]
mod server;

use loadtest::inputs::InputKind;
use loadtest::report::Plot;
use loadtest::{Inputs, Load, Mode, Report, RunConfig, Size};
use server::Server;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const IMAGES: u64 = 240;

fn config(server: &Server, mode: Mode, load: Load, out: &Path) -> RunConfig {
    RunConfig {
        images: IMAGES,
        mode,
        load,
        inputs: Inputs::Synthetic(vec![Size { width: 64, height: 48 }, Size { width: 320, height: 240 }]),
        hostile: 0.08,
        seed: 42,
        presign_batch: 40,
        drain_timeout: Duration::from_secs(180),
        poll_interval: Duration::from_millis(100),
        out: Some(out.to_path_buf()),
        ..RunConfig::new(server.base.clone())
    }
}

/// What every mode's report must satisfy.
fn assert_consistent(report: &Report, out: &Path) {
    let (u, p) = (&report.uploads, &report.pipeline);
    assert_eq!((u.attempted, u.accepted, u.refused), (IMAGES, IMAGES, 0), "{:?}", u.refusals);
    assert_eq!(p.uploaded, u.accepted);
    assert_eq!(p.completed + p.failed + p.lost, p.uploaded);
    assert_eq!(p.lost, 0, "lost: {:?}", p.lost_ids);

    // Hostile inputs end FAILED with their kind; every other input ends DONE.
    let mut expected_failures: BTreeMap<String, u64> = BTreeMap::new();
    for (input, outcomes) in &p.outcomes_by_input {
        let found: Vec<&String> = outcomes.keys().collect();
        match InputKind::HOSTILE.iter().find(|k| k.as_str() == input).and_then(|k| k.expected_failure()) {
            Some(kind) => {
                let failed = format!("failed:{kind}");
                assert_eq!(found, [&failed], "{input}: {:?}", p.outcomes_by_input);
                *expected_failures.entry(kind.to_owned()).or_default() += outcomes[&failed];
            }
            None => assert_eq!(found, ["done"], "{input}: {:?}", p.outcomes_by_input),
        }
    }
    assert_eq!(p.failures_by_kind, expected_failures);
    for input in ["jpeg", "png", "webp", "truncated_jpeg", "not_an_image", "huffman_flipped_jpeg"] {
        assert!(p.outcomes_by_input.contains_key(input), "no {input}: {:?}", p.outcomes_by_input);
    }

    for (name, q) in [("e2e", p.e2e_latency), ("upload", u.latency), ("queue", p.queue_wait)] {
        let ordered = [q.min_ms, q.p50_ms, q.p90_ms, q.p99_ms, q.p999_ms, q.max_ms];
        assert!(ordered.windows(2).all(|w| w[0] <= w[1]), "{name} percentiles out of order: {q:?}");
        assert!(q.min_ms <= q.mean_ms && q.mean_ms <= q.max_ms, "{name}: {q:?}");
    }
    assert_eq!(p.e2e_latency.count, p.completed + p.failed);
    assert!(p.e2e_latency.p50_ms > 0.0 && u.per_s > 0.0 && p.finished_per_s > 0.0);
    assert_eq!(report.series.uploaded.iter().sum::<u64>(), p.uploaded);
    assert_eq!(report.series.completed.iter().sum::<u64>(), p.completed + p.failed);
    assert_eq!(report.e2e_histogram.iter().map(|b| b.count).sum::<u64>(), p.e2e_latency.count);
    assert!(report.cost.total_usd > 0.0 && report.cost.inputs.processing_ms > 0.0, "{:?}", report.cost.inputs);

    // The files: the JSON reads back (floats to within parsing precision); the plots are real
    // images.
    let read = Report::read(&out.join("report.json")).unwrap();
    assert_eq!(
        (&read.target, &read.parameters.mode, &read.series),
        (&report.target, &report.parameters.mode, &report.series)
    );
    assert_eq!((&read.pipeline.outcomes_by_input, read.pipeline.lost), (&p.outcomes_by_input, p.lost));
    assert!((read.pipeline.e2e_latency.p99_ms - p.e2e_latency.p99_ms).abs() < 1e-9);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains(&format!("| uploaded = completed + failed + lost | {IMAGES} =")), "{md}");
    for name in Plot::ALL.map(Plot::file_stem) {
        let svg = std::fs::read_to_string(out.join(format!("{name}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.len() > 1000, "{name}.svg");
        let png = image::open(out.join(format!("{name}.png"))).unwrap();
        assert_eq!((png.width(), png.height()), (960, 540), "{name}.png");
        let rgb = png.to_rgb8();
        assert!(rgb.pixels().any(|p| p.0 != [255, 255, 255]), "{name}.png is blank");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn direct_uploads_in_a_closed_loop_add_up() {
    let server = Server::in_temp_dir();
    let out = tempfile::tempdir().unwrap();
    let report =
        loadtest::run(config(&server, Mode::Direct, Load::Closed { concurrency: 16 }, out.path())).await.unwrap();
    assert_consistent(&report, out.path());
    assert_eq!(report.uploads.presign_requests, 0);
    assert_eq!(report.cost.inputs.presigned_fraction, 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn presigned_uploads_in_a_closed_loop_add_up() {
    let server = Server::in_temp_dir();
    let out = tempfile::tempdir().unwrap();
    let report =
        loadtest::run(config(&server, Mode::Presigned, Load::Closed { concurrency: 16 }, out.path())).await.unwrap();
    assert_consistent(&report, out.path());
    // 240 files in batches of 40, every slot used.
    assert_eq!((report.uploads.presign_requests, report.uploads.presign_failures), (6, 0));
    assert_eq!(report.uploads.unused_slots, 0);
    assert_eq!(report.cost.inputs.presigned_fraction, 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn mixed_uploads_in_an_open_loop_add_up_and_compare() {
    let server = Server::in_temp_dir();
    let out = tempfile::tempdir().unwrap();
    let load = Load::Open { rate: 300.0, max_in_flight: 64 };
    let report = loadtest::run(config(&server, Mode::Mixed, load, out.path())).await.unwrap();
    assert_consistent(&report, out.path());
    let presigned = report.cost.inputs.presigned_fraction;
    assert!((0.3..0.7).contains(&presigned), "{presigned} of mixed uploads presigned");
    // The schedule spreads 240 uploads over 0.8 s, so the phase cannot be much shorter.
    assert!(report.uploads.elapsed_s >= 0.79, "{}", report.uploads.elapsed_s);
    let table = loadtest::compare(&report, &report);
    assert!(table.contains("| uploads/s |") && table.contains("| lost | 0 | 0 | 0 % |"), "{table}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_target_is_an_error_not_a_report() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let error = loadtest::run(RunConfig::new(format!("http://127.0.0.1:{port}"))).await.unwrap_err();
    assert!(matches!(error, loadtest::RunError::Unreachable { .. }), "{error}");
}
