//! How every figure of the tool is drawn: a [`Figure`] written once per backend, SVG (text left
//! to the viewer's fonts) and PNG (drawn into a pixel buffer with the processor's bundled font
//! through ab_glyph, so no system font library is needed, and encoded by `image`), and the
//! charts' common look (colours, axes, legend). The figures themselves live with what they show:
//! `report::Plot` for a run, `RssPlot` for a soak, `RunPlot` for a simulation.

use crate::files::{WriteError, io};
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::{Path, PathBuf};
use std::sync::Once;

const SIZE: (u32, u32) = (960, 540);
pub(crate) const FONT: &str = "sans-serif";

pub(crate) const UPLOADED: RGBColor = RGBColor(31, 119, 180);
pub(crate) const COMPLETED: RGBColor = RGBColor(44, 160, 44);
pub(crate) const MARKER: RGBColor = RGBColor(214, 39, 40);
pub(crate) const GREY: RGBColor = RGBColor(127, 127, 127);

pub(crate) type DrawResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// A plot that can be drawn on any backend.
pub(crate) trait Figure {
    /// Draws the plot over `area`.
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static;
}

/// Draws `figure` as `NAME.svg` and `NAME.png` into `dir`; the paths written.
pub(crate) fn write_figure(dir: &Path, name: &str, figure: &impl Figure) -> Result<Vec<PathBuf>, WriteError> {
    static FONTS: Once = Once::new();
    FONTS.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            plotters::style::register_font(FONT, style, processor::watermark::FONT_TTF)
                .unwrap_or_else(|_| panic!("the bundled font parses"));
        }
    });
    let svg_path = dir.join(format!("{name}.svg"));
    let mut svg = String::new();
    paint(&SVGBackend::with_string(&mut svg, SIZE).into_drawing_area(), figure).map_err(plot_error(&svg_path))?;
    std::fs::write(&svg_path, svg).map_err(io(&svg_path))?;

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
    let file = std::fs::File::create(path).map_err(io(path))?;
    let encoder =
        PngEncoder::new_with_quality(std::io::BufWriter::new(file), CompressionType::Best, FilterType::Adaptive);
    encoder.write_image(pixels, SIZE.0, SIZE.1, image::ExtendedColorType::Rgb8).map_err(|e| plot_error(e.to_string()))
}

fn plot_error(path: &Path) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> WriteError {
    let path = path.to_path_buf();
    move |e| WriteError::Plot { path, message: e.to_string() }
}

/// An axis label without decimals (counts, milliseconds, rates).
pub(crate) fn whole(x: f64) -> String {
    format!("{x:.0}")
}

/// Seconds with a decimal only when the whole axis spans a few seconds.
pub(crate) fn seconds_label(x: f64, axis_max: f64) -> String {
    if axis_max >= 5.0 { format!("{x:.0}") } else { format!("{x:.1}") }
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
