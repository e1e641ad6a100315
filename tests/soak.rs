//! A soak of the real `imgpipe serve` binary, short enough for CI: one server per worker count
//! (1 and 2), a few hundred uploads each with about 15 % hostile inputs interleaved in a seeded
//! order (bits flipped in JPEG Huffman and quantisation tables and frame headers, PNG headers
//! and data, WebP headers; truncations; text), over synthetic images and real photos. Every
//! upload is followed to its final record: DONE ones must have renditions byte-identical to
//! what the kernel makes of the same bytes on fresh threads, FAILED ones the kind a fresh run
//! gives; nothing may stay PENDING or PROCESSING, and the server's memory must not grow from
//! the first half of the run to the second.
//!
//! This is what a user does over time and what tests of one file on fresh state miss: with a
//! per-thread JPEG decoder that kept libjpeg state, one JPEG with a damaged Huffman table made
//! every later JPEG on that kernel thread fail `corrupt`. The long form, thousands of uploads
//! in a release build, is `loadtest soak` (loadtest/README.md).

#[path = "support/server.rs"]
mod server;
mod support;

use loadtest::inputs::InputKind;
use loadtest::{Inputs, Size, SoakConfig, SoakReport};
use server::Server;
use std::time::Duration;

/// Uploads per worker count: enough for every hostile kind to come round several times between
/// good images, few enough for a debug build on a shared 2-core machine.
const IMAGES: u64 = 300;

async fn soak_with(workers: usize) -> SoakReport {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with_workers(data.path(), workers, &[]);
    let fixtures = support::shared("IMGPIPE_FIXTURES", "fixtures");
    let out = tempfile::tempdir().unwrap();
    let config = SoakConfig {
        pid: Some(server.child.id()),
        workers: Some(workers),
        images: IMAGES,
        hostile: 0.15,
        sources: vec![
            Inputs::Synthetic(vec![Size { width: 320, height: 240 }, Size { width: 96, height: 64 }]),
            // A baseline photo (libjpeg-turbo, shrink-on-load) and a CMYK one (the image crate).
            Inputs::Corpus(fixtures.join("2569067123_aca715a2ee_o.jpg")),
            Inputs::Corpus(fixtures.join("Channel_digital_image_CMYK_color.jpg")),
        ],
        seed: 11,
        in_flight: 4,
        warmup: IMAGES / 5,
        image_timeout: Duration::from_secs(60),
        duration: Some(Duration::from_secs(150)),
        out: Some(out.path().to_path_buf()),
        ..SoakConfig::new(server.base.clone())
    };
    let report = loadtest::soak(config).await.unwrap();
    assert!(out.path().join("soak.md").exists() && out.path().join("rss.png").exists());
    eprintln!("{}", report.markdown());
    report
}

fn assert_passed(report: &SoakReport) {
    let failures = report.failures();
    assert!(failures.is_empty(), "{failures:#?}\n{:#?}", report.mismatch_examples);
    assert_eq!(report.checked, IMAGES);
    assert_eq!((report.done, report.failed), (report.good, report.hostile));
    assert_eq!((report.refused, report.stuck), (0, 0));
    // Every hostile kind came round, each often enough to poison what followed it.
    for kind in InputKind::HOSTILE {
        let uploads: u64 = report.outcomes_by_input.get(kind.as_str()).map_or(0, |o| o.values().sum());
        assert!(uploads >= 3, "{kind:?} uploaded {uploads} times: {:?}", report.outcomes_by_input);
    }
    let share = report.hostile_share();
    assert!((0.10..=0.20).contains(&share), "{share}");
    assert_eq!(report.renditions_identical, 3 * report.good);
    let rss = report.rss.as_ref().expect("the server's memory was sampled");
    assert!(rss.samples.len() >= 8, "{} samples", rss.samples.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn one_worker_ends_every_upload_as_a_fresh_run_does() {
    assert_passed(&soak_with(1).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_end_every_upload_as_a_fresh_run_does() {
    assert_passed(&soak_with(2).await);
}
