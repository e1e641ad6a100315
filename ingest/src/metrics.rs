//! `GET /metrics`: what this process recorded through `imgpipe_core::metrics` (Prometheus
//! recorder), plus gauges read from the stores at scrape time.
//!
//! The store gauges (queue depth, records per status and failure kind) are snapshots of shared
//! state, not events this process saw, so they are read when scraped rather than recorded.

use imgpipe_core::ErrorKind;
use imgpipe_core::metrics::{BATCH_BUCKETS, BATCH_IMAGES, STAGE_BUCKETS, STAGE_DURATION, describe};
use imgpipe_core::ports::{Counts, QueueStats};
use imgpipe_core::seams::Status;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

/// The content type of the Prometheus text exposition format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often recorded histogram samples are folded into their buckets between scrapes (so an
/// unscraped process does not keep every sample).
const UPKEEP: Duration = Duration::from_secs(5);

/// What `GET /metrics` shows besides the queue gauges (shown when the state has a queue).
#[derive(Clone, Debug, Default)]
pub struct Exposition {
    /// The process's recorder ([`install`]): every series recorded in this process.
    pub recorder: Option<PrometheusHandle>,
    /// Whether each scrape counts records per status and error kind: an index count on SQLite;
    /// on DynamoDB a read of the whole status index per scrape, which is not cheap at scale.
    pub record_counts: bool,
}

/// A Prometheus recorder with imgpipe's histogram buckets, not installed (see [`install`]).
pub fn recorder() -> PrometheusRecorder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(STAGE_DURATION.into()), &STAGE_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(BATCH_IMAGES.into()), &BATCH_BUCKETS))
        .expect("the bucket lists are constant and not empty")
        .build_recorder()
}

/// Installs [`recorder`] as the process's global `metrics` recorder on the first call and
/// returns its handle (later calls return the same handle). If another recorder was installed
/// first, the handle renders nothing recorded and a warning says so.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => describe(),
                Err(e) => tracing::warn!(error = %e, "another metrics recorder is installed; /metrics shows none"),
            }
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP);
                    upkeep.run_upkeep();
                }
            });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "no metrics upkeep thread; histogram samples are folded at each scrape only");
            }
            handle
        })
        .clone()
}

/// Renders the queue gauges (when the queue is known), the record counts (when counted) and
/// the recorder's series. Every status and error kind is written, zeros included, so series
/// never vanish.
pub(crate) fn render(
    queue: Option<QueueStats>,
    counts: Option<&Counts>,
    recorder: Option<&PrometheusHandle>,
) -> String {
    let mut out = String::new();
    if let Some(stats) = queue {
        gauge(&mut out, "imgpipe_queue_visible", "Messages waiting in the ingest queue.", stats.visible);
        gauge(&mut out, "imgpipe_queue_in_flight", "Messages received and not yet acknowledged.", stats.in_flight);
        gauge(&mut out, "imgpipe_dead_letters", "Messages moved to the dead-letter queue.", stats.dead);
    }
    if let Some(counts) = counts {
        header(&mut out, "imgpipe_images", "Images per status.");
        for status in Status::ALL {
            let n = counts.by_status.get(&status).copied().unwrap_or(0);
            let _ = writeln!(out, "imgpipe_images{{status=\"{}\"}} {n}", status.as_str());
        }
        header(&mut out, "imgpipe_failed_images", "FAILED images per error kind.");
        for kind in ErrorKind::ALL {
            let n = counts.failed_by_kind.get(&kind).copied().unwrap_or(0);
            let _ = writeln!(out, "imgpipe_failed_images{{kind=\"{}\"}} {n}", kind.as_str());
        }
    }
    if let Some(recorder) = recorder {
        out.push_str(&recorder.render());
    }
    out
}

fn header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, help);
    let _ = writeln!(out, "{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgpipe_core::metrics::{self as record, Stage};

    #[test]
    fn renders_every_store_series_with_zeros() {
        let mut counts = Counts::default();
        counts.by_status.insert(Status::Done, 3);
        counts.failed_by_kind.insert(ErrorKind::Corrupt, 2);
        let stats = QueueStats { visible: 4, in_flight: 1, dead: 0 };
        let text = render(Some(stats), Some(&counts), None);
        for line in [
            "imgpipe_queue_visible 4",
            "imgpipe_queue_in_flight 1",
            "imgpipe_dead_letters 0",
            "imgpipe_images{status=\"DONE\"} 3",
            "imgpipe_images{status=\"AWAITING_UPLOAD\"} 0",
            "imgpipe_failed_images{kind=\"corrupt\"} 2",
            "imgpipe_failed_images{kind=\"too_large\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        let bare = render(None, None, None);
        assert!(bare.is_empty(), "{bare}");
    }

    #[test]
    fn recorded_stages_land_in_their_buckets() {
        let recorder = recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe();
            record::stage(Stage::Decode, 0.003);
            record::stage(Stage::Decode, 0.030);
            record::image_failed(ErrorKind::Corrupt);
            record::upload_accepted(1234);
        });
        let text = render(None, None, Some(&handle));
        for line in [
            "# TYPE imgpipe_stage_duration_seconds histogram",
            "imgpipe_stage_duration_seconds_bucket{stage=\"decode\",le=\"0.0025\"} 0",
            "imgpipe_stage_duration_seconds_bucket{stage=\"decode\",le=\"0.005\"} 1",
            "imgpipe_stage_duration_seconds_bucket{stage=\"decode\",le=\"0.05\"} 2",
            "imgpipe_stage_duration_seconds_count{stage=\"decode\"} 2",
            "imgpipe_stage_duration_seconds_sum{stage=\"decode\"} 0.033",
            "imgpipe_images_failed_total{kind=\"corrupt\"} 1",
            "imgpipe_uploads_accepted_total 1",
            "imgpipe_upload_bytes_total 1234",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("stage=\"resize\""), "an unrecorded stage is not shown:\n{text}");
    }
}
