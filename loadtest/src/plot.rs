//! The report's plots, each drawn once per backend: SVG (text left to the viewer's fonts) and
//! PNG (drawn into a pixel buffer with the bundled DejaVu Sans through ab_glyph, so no system
//! font library is needed, and encoded by `image`).

use crate::report::{PLOTS, Report, WriteError};
use crate::rss::RssFigures;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::{Path, PathBuf};
use std::sync::Once;

const SIZE: (u32, u32) = (960, 540);
pub(crate) const FONT: &str = "sans-serif";
/// The processor's bundled watermark font (DejaVu Sans Bold; licence beside it).
const FONT_BYTES: &[u8] = include_bytes!("../../processor/assets/DejaVuSans-Bold.ttf");

pub(crate) const UPLOADED: RGBColor = RGBColor(31, 119, 180);
pub(crate) const COMPLETED: RGBColor = RGBColor(44, 160, 44);
pub(crate) const MARKER: RGBColor = RGBColor(214, 39, 40);
pub(crate) const GREY: RGBColor = RGBColor(127, 127, 127);

pub(crate) type DrawResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Draws every plot of [`PLOTS`] as `NAME.svg` and `NAME.png` into `dir`; the paths written.
pub fn write_all(report: &Report, dir: &Path) -> Result<Vec<PathBuf>, WriteError> {
    let mut written = Vec::new();
    for name in PLOTS {
        written.extend(write_figure(dir, name, &ReportPlot { name, report })?);
    }
    Ok(written)
}

/// A plot that can be drawn on any backend.
pub(crate) trait Figure {
    /// Draws the plot over `area`.
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static;
}

/// One of the report's plots.
struct ReportPlot<'a> {
    name: &'a str,
    report: &'a Report,
}

impl Figure for ReportPlot<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        draw(self.name, self.report, area)
    }
}

/// Draws `figure` as `NAME.svg` and `NAME.png` into `dir`; the paths written.
pub(crate) fn write_figure(dir: &Path, name: &str, figure: &impl Figure) -> Result<Vec<PathBuf>, WriteError> {
    static FONTS: Once = Once::new();
    FONTS.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            plotters::style::register_font(FONT, style, FONT_BYTES)
                .unwrap_or_else(|_| panic!("the bundled font parses"));
        }
    });
    let svg_path = dir.join(format!("{name}.svg"));
    let mut svg = String::new();
    paint(&SVGBackend::with_string(&mut svg, SIZE).into_drawing_area(), figure).map_err(plot_error(&svg_path))?;
    std::fs::write(&svg_path, svg).map_err(|source| WriteError::Io { path: svg_path.clone(), source })?;

    let png_path = dir.join(format!("{name}.png"));
    let mut pixels = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
    paint(&BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area(), figure).map_err(plot_error(&png_path))?;
    write_png(&png_path, &pixels)?;
    Ok(vec![svg_path, png_path])
}

/// A white background, the figure, and the backend's output.
fn paint<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, figure: &impl Figure) -> DrawResult
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE)?;
    figure.draw(area)?;
    area.present()?;
    Ok(())
}

/// Encodes an RGB buffer of [`SIZE`] as PNG, compressed hard (plots are flat colours).
fn write_png(path: &Path, pixels: &[u8]) -> Result<(), WriteError> {
    use image::ImageEncoder;
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let plot_error = |message: String| WriteError::Plot { path: path.to_path_buf(), message };
    let file = std::fs::File::create(path).map_err(|source| WriteError::Io { path: path.to_path_buf(), source })?;
    let encoder =
        PngEncoder::new_with_quality(std::io::BufWriter::new(file), CompressionType::Best, FilterType::Adaptive);
    encoder.write_image(pixels, SIZE.0, SIZE.1, image::ExtendedColorType::Rgb8).map_err(|e| plot_error(e.to_string()))
}

fn plot_error(path: &Path) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> WriteError {
    let path = path.to_path_buf();
    move |e| WriteError::Plot { path, message: e.to_string() }
}

fn draw<DB: DrawingBackend>(name: &str, report: &Report, area: &DrawingArea<DB, Shift>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    match name {
        "latency_histogram" => latency_histogram(report, area),
        "latency_cdf" => latency_cdf(report, area),
        "throughput" => throughput(report, area),
        "in_flight" => in_flight(report, area),
        other => unreachable!("no plot named {other}"),
    }
}

/// An axis label without decimals (counts, milliseconds, rates).
pub(crate) fn whole(x: f64) -> String {
    format!("{x:.0}")
}

/// Seconds with a decimal only when the whole axis spans a few seconds.
pub(crate) fn seconds_label(x: f64, axis_max: f64) -> String {
    if axis_max >= 5.0 { format!("{x:.0}") } else { format!("{x:.1}") }
}

fn subtitle(report: &Report) -> String {
    let p = &report.parameters;
    format!("{} images, {}, {}", report.pipeline.uploaded, p.mode, p.load)
}

pub(crate) type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A chart over `area` in the report's look, from 0 to each axis' maximum, its mesh drawn with
/// the axes' descriptions; x labels by `x_label`, y labels whole numbers.
pub(crate) fn chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    caption: String,
    (x_max, x_desc): (f64, &str),
    (y_max, y_desc): (f64, &str),
    x_label: &dyn Fn(&f64) -> String,
) -> Result<Chart<'a, DB>, Box<dyn std::error::Error + Send + Sync>>
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 18))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(x_label)
        .y_label_formatter(&|y| whole(*y))
        .label_style((FONT, 13))
        .light_line_style(WHITE)
        .draw()?;
    Ok(chart)
}

/// A series' key in the legend: a short line in its colour.
pub(crate) fn line_key(colour: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
}

/// The series' labels, boxed in the upper right corner.
pub(crate) fn legend<'a, DB: DrawingBackend + 'a>(chart: &mut Chart<'a, DB>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 13))
        .draw()?;
    Ok(())
}

fn latency_histogram<DB: DrawingBackend>(report: &Report, area: &DrawingArea<DB, Shift>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let bins = &report.e2e_histogram;
    let x_max = bins.last().map_or(1.0, |b| b.hi_ms).max(1.0);
    let y_max = bins.iter().map(|b| b.count).max().unwrap_or(0).max(1) as f64 * 1.3; // room for the legend
    let mut chart = chart(
        area,
        format!("End-to-end latency (accepted → DONE/FAILED): {}", subtitle(report)),
        (x_max, "latency (ms)"),
        (y_max, "images"),
        &|x| whole(*x),
    )?;
    chart.draw_series(
        bins.iter().map(|b| Rectangle::new([(b.lo_ms, 0.0), (b.hi_ms, b.count as f64)], UPLOADED.mix(0.75).filled())),
    )?;
    let e2e = &report.pipeline.e2e_latency;
    for (label, value, colour) in [("p50", e2e.p50_ms, COMPLETED), ("p99", e2e.p99_ms, MARKER)] {
        if e2e.count == 0 {
            break;
        }
        chart
            .draw_series(std::iter::once(PathElement::new(vec![(value, 0.0), (value, y_max)], colour.stroke_width(2))))?
            .label(format!("{label} {value:.0} ms"))
            .legend(line_key(colour));
    }
    if e2e.count > 0 {
        legend(&mut chart)?;
    }
    Ok(())
}

fn latency_cdf<DB: DrawingBackend>(report: &Report, area: &DrawingArea<DB, Shift>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let points = &report.e2e_cdf;
    let x_max = points.last().map_or(1.0, |p| p.0).max(1.0);
    let mut chart = chart(
        area,
        format!("End-to-end latency CDF: {}", subtitle(report)),
        (x_max, "latency (ms)"),
        (100.0, "images at or under (%)"),
        &|x| whole(*x),
    )?;
    chart.draw_series(LineSeries::new(points.iter().map(|&(ms, q)| (ms, q * 100.0)), UPLOADED.stroke_width(2)))?;
    Ok(())
}

fn throughput<DB: DrawingBackend>(report: &Report, area: &DrawingArea<DB, Shift>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let s = &report.series;
    let x_max = s.seconds(s.uploaded.len()).max(0.001);
    let peak = s.uploaded.iter().chain(&s.completed).copied().max().unwrap_or(0);
    let y_max = (s.rate(peak) * 1.3).max(1.0); // room for the legend
    let mut chart = chart(
        area,
        format!("Throughput per {} ms: {}", s.bucket_ms, subtitle(report)),
        (x_max, "seconds since start"),
        (y_max, "images/s"),
        &|x| seconds_label(*x, x_max),
    )?;
    for (label, counts, colour) in
        [("uploaded", &s.uploaded, UPLOADED), ("completed (DONE or FAILED)", &s.completed, COMPLETED)]
    {
        // Steps: each bucket's rate held across its width.
        let steps =
            counts.iter().enumerate().flat_map(|(i, &c)| [(s.seconds(i), s.rate(c)), (s.seconds(i + 1), s.rate(c))]);
        chart.draw_series(LineSeries::new(steps, colour.stroke_width(2)))?.label(label).legend(line_key(colour));
    }
    legend(&mut chart)?;
    Ok(())
}

fn in_flight<DB: DrawingBackend>(report: &Report, area: &DrawingArea<DB, Shift>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let s = &report.series;
    let x_max = s.seconds(s.in_flight.len()).max(0.001);
    let y_max = (s.in_flight.iter().copied().max().unwrap_or(0) as f64 * 1.15).max(1.0);
    let mut chart = chart(
        area,
        format!("Images accepted, not yet final: {}", subtitle(report)),
        (x_max, "seconds since start"),
        (y_max, "images in flight"),
        &|x| seconds_label(*x, x_max),
    )?;
    let points = s.in_flight.iter().enumerate().map(|(i, &n)| (s.seconds(i + 1), n as f64));
    let start = std::iter::once((0.0, 0.0));
    chart.draw_series(
        AreaSeries::new(start.chain(points), 0.0, UPLOADED.mix(0.35)).border_style(UPLOADED.stroke_width(2)),
    )?;
    Ok(())
}

/// A soak's resident memory over time, with the warm-up's end, the first half's peak and the
/// peak the second half may reach.
pub(crate) struct RssPlot<'a> {
    /// The samples and their verdict.
    pub rss: &'a RssFigures,
    /// The chart's title.
    pub caption: String,
}

impl Figure for RssPlot<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let rss = self.rss;
        let seconds = |ms: u64| ms as f64 / 1000.0;
        let mib = |kib: u64| kib as f64 / 1024.0;
        let x_max = rss.samples.last().map_or(0.0, |s| seconds(s.ms)).max(0.001);
        let top = rss.samples.iter().map(|s| s.kib).max().unwrap_or(0).max(rss.allowed_kib);
        let y_max = (mib(top) * 1.3).max(1.0); // room for the legend
        let mut chart = chart(
            area,
            self.caption.clone(),
            (x_max, "seconds since start"),
            (y_max, "server resident memory (MiB)"),
            &|x| seconds_label(*x, x_max),
        )?;
        let line = |points: Vec<(f64, f64)>, colour: RGBColor| PathElement::new(points, colour.stroke_width(2));
        chart
            .draw_series(LineSeries::new(
                rss.samples.iter().map(|s| (seconds(s.ms), mib(s.kib))),
                UPLOADED.stroke_width(2),
            ))?
            .label("VmRSS")
            .legend(line_key(UPLOADED));
        if let Some(warm) = rss.samples.iter().find(|s| s.finished >= rss.warmup_images) {
            let x = seconds(warm.ms);
            chart
                .draw_series(std::iter::once(line(vec![(x, 0.0), (x, y_max)], GREY)))?
                .label(format!("warm-up done ({} images)", rss.warmup_images))
                .legend(line_key(GREY));
        }
        for (label, kib, colour) in [
            ("first half's peak", rss.first_half_peak_kib, COMPLETED),
            ("allowed peak in the second half", rss.allowed_kib, MARKER),
        ] {
            let y = mib(kib);
            chart
                .draw_series(std::iter::once(line(vec![(0.0, y), (x_max, y)], colour)))?
                .label(format!("{label}: {y:.0} MiB"))
                .legend(line_key(colour));
        }
        legend(&mut chart)
    }
}
