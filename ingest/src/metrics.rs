//! The Prometheus text of `GET /metrics`.

use imgpipe_core::ErrorKind;
use imgpipe_core::metrics::StageHistograms;
use imgpipe_core::ports::{Counts, QueueStats};
use imgpipe_core::seams::Status;
use std::fmt::Write as _;

/// The content type of the Prometheus text exposition format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders the gauges (queue gauges only when the queue is known) and the stage histograms.
/// Every status and error kind is written, zeros included, so series never vanish.
pub(crate) fn render(queue: Option<QueueStats>, counts: &Counts, histograms: &StageHistograms) -> String {
    let mut out = String::new();
    if let Some(stats) = queue {
        gauge(&mut out, "imgpipe_queue_visible", "Messages waiting in the ingest queue.", stats.visible);
        gauge(&mut out, "imgpipe_queue_in_flight", "Messages received and not yet acknowledged.", stats.in_flight);
        gauge(&mut out, "imgpipe_dead_letters", "Messages moved to the dead-letter queue.", stats.dead);
    }
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
    histograms.render(&mut out);
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

    #[test]
    fn renders_every_series_with_zeros() {
        let mut counts = Counts::default();
        counts.by_status.insert(Status::Done, 3);
        counts.failed_by_kind.insert(ErrorKind::Corrupt, 2);
        let stats = QueueStats { visible: 4, in_flight: 1, dead: 0 };
        let text = render(Some(stats), &counts, &StageHistograms::default());
        for line in [
            "imgpipe_queue_visible 4",
            "imgpipe_queue_in_flight 1",
            "imgpipe_dead_letters 0",
            "imgpipe_images{status=\"DONE\"} 3",
            "imgpipe_images{status=\"AWAITING_UPLOAD\"} 0",
            "imgpipe_failed_images{kind=\"corrupt\"} 2",
            "imgpipe_failed_images{kind=\"too_large\"} 0",
            "# TYPE imgpipe_stage_duration_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        let without_queue = render(None, &counts, &StageHistograms::default());
        assert!(!without_queue.contains("imgpipe_queue_visible"));
    }
}
