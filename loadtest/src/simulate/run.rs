//! One burst from the first upload to the last final record, with a progress bar.

use super::config::StackConfig;
use super::result::RunResult;
use super::sim::Sim;

/// Simulates one burst of `images` uploads at `rate` per second until every image is final.
pub fn run_one(config: &StackConfig, images: u64, rate: f64, progress: bool) -> RunResult {
    let bar = progress.then(|| Bar::new(images, rate));
    let mut sim = Sim::new(config, images, rate);
    while sim.finished < images {
        sim.step();
        if let Some(bar) = &bar {
            bar.update(sim.finished, sim.k as f64 * config.step_s);
        }
        // A guard against a model that never drains (every image FAILs at the latest after its
        // re-drives, so this takes a broken parameter): stop after a simulated week.
        if sim.k as f64 * config.step_s > 7.0 * 86_400.0 {
            break;
        }
    }
    if let Some(bar) = bar {
        bar.finish();
    }
    sim.result()
}

/// A progress bar over final images, drawn only once a run has taken a second.
struct Bar {
    bar: indicatif::ProgressBar,
    started: std::time::Instant,
}

impl Bar {
    fn new(images: u64, rate: f64) -> Self {
        let bar = indicatif::ProgressBar::with_draw_target(Some(images), indicatif::ProgressDrawTarget::hidden());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} final")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_message(format!("{rate}/s"));
        Bar { bar, started: std::time::Instant::now() }
    }

    fn update(&self, finished: u64, t: f64) {
        if self.bar.is_hidden() && self.started.elapsed().as_secs_f64() > 1.0 {
            self.bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        if finished != self.bar.position() {
            self.bar.set_position(finished);
            self.bar.set_message(format!("t = {t:.0} s"));
        }
    }

    fn finish(self) {
        self.bar.finish_and_clear();
    }
}
