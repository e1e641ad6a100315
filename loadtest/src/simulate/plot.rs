//! One figure per simulated run: the queue and the images in flight over time, arrivals and
//! completions per second, and a stacked bar of where an image's time goes.

use super::result::{RunResult, Sample};
use crate::plot::{
    COMPLETED, DrawResult, FONT, Figure, GREY, MARKER, UPLOADED, chart, legend, line_key, seconds_label,
};
use plotters::coord::Shift;
use plotters::prelude::*;

/// A run's figure.
pub(super) struct RunPlot<'a> {
    /// The run.
    pub run: &'a RunResult,
}

impl Figure for RunPlot<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let r = self.run;
        let title = format!(
            "Simulated burst: {} images at {}/s — p50 {:.1} s, p99 {:.1} s, drained in {:.0} s",
            r.images, r.rate, r.latency.p50_s, r.latency.p99_s, r.drain_s
        );
        let area = area.titled(&title, (FONT, 18))?;
        let (left, right) = area.split_horizontally(590);
        let (top, bottom) = left.split_vertically(left.dim_in_pixel().1 / 2);
        let x_max = r.samples.last().map_or(1.0, |s| s.t).max(1.0);
        let x_label = |x: &f64| seconds_label(*x, x_max);

        let peak = r.samples.iter().map(|s| s.queue.max(s.in_system)).max().unwrap_or(0);
        let mut depth = chart(
            &top,
            "Images waiting".to_string(),
            (x_max, "seconds since the first upload"),
            ((peak as f64 * 1.3).max(1.0), "images"),
            &x_label,
        )?;
        type Depth = fn(&Sample) -> f64;
        let series: [(&str, RGBColor, Depth); 2] = [
            ("uploaded, not final", UPLOADED, |s| s.in_system as f64),
            ("SQS queue (messages)", MARKER, |s| s.queue as f64),
        ];
        for (label, colour, value) in series {
            depth
                .draw_series(LineSeries::new(r.samples.iter().map(|s| (s.t, value(s))), colour.stroke_width(2)))?
                .label(label)
                .legend(line_key(colour));
        }
        legend(&mut depth)?;

        let peak_rate = r.samples.iter().map(|s| s.arrived_per_s.max(s.finished_per_s)).fold(1.0, f64::max);
        let mut rates = chart(
            &bottom,
            "Throughput".to_string(),
            (x_max, "seconds since the first upload"),
            (peak_rate * 1.3, "images/s"),
            &x_label,
        )?;
        type Rate = fn(&Sample) -> f64;
        let lines: [(&str, RGBColor, Rate); 3] = [
            ("uploaded", GREY, |s| s.arrived_per_s),
            ("final (DONE or FAILED)", COMPLETED, |s| s.finished_per_s),
            ("of which FAILED", MARKER, |s| s.failed_per_s),
        ];
        for (label, colour, rate) in lines {
            let points = r.samples.iter().map(|s| (s.t, rate(s)));
            rates.draw_series(LineSeries::new(points, colour.stroke_width(2)))?.label(label).legend(line_key(colour));
        }
        legend(&mut rates)?;

        where_time_goes(r, &right)
    }
}

/// One bar: the mean seconds of each stage, stacked, with the stages named in the legend.
fn where_time_goes<DB: DrawingBackend>(r: &RunResult, area: &DrawingArea<DB, Shift>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let total: f64 = r.stages.iter().map(|(_, s)| s).sum();
    let y_max = (total * 1.02).max(0.001);
    let mut chart = ChartBuilder::on(area)
        .caption("Where time goes (mean s per image)", (FONT, 15))
        .margin(12)
        .y_label_area_size(52)
        .build_cartesian_2d(0.0..1.0, 0.0..y_max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .y_desc("seconds")
        .y_label_formatter(&|y| if y_max >= 5.0 { format!("{y:.0}") } else { format!("{y:.1}") })
        .label_style((FONT, 12))
        .light_line_style(WHITE)
        .draw()?;
    let mut bottom = 0.0;
    for (i, (stage, seconds)) in r.stages.iter().enumerate() {
        if *seconds <= 0.0 {
            continue;
        }
        let colour = Palette99::pick(i).to_rgba();
        let top = bottom + seconds;
        chart
            .draw_series(std::iter::once(Rectangle::new([(0.02, bottom), (0.16, top)], colour.filled())))?
            .label(format!("{} {seconds:.2}", stage.label()))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled()));
        bottom = top;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 11))
        .draw()?;
    Ok(())
}
