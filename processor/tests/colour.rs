//! Colour management against an independent reference: photos tagged Display P3 and Adobe RGB
//! (1998), as PNG and JPEG, must come out as the reference conversion to sRGB computes them from
//! the published primaries and transfer curves, within mean ΔE00 < 1 and max < 3.
//!
//! The test images are made here: sharp's benchmark photo scaled to 512 wide, over a band of
//! saturated hues (which P3 and Adobe RGB hold and sRGB does not, so clipping is checked too),
//! tagged with the profile of each space (moxcms writes the ICC bytes; the reference does not use
//! moxcms).

mod support;

use image::{ImageEncoder, RgbImage};
use imgpipe_core::Limits;
use moxcms::ColorProfile;
use processor::process;

/// An RGB space by its published primaries (x, y) and transfer curve; white is D65 for all three.
struct Space {
    name: &'static str,
    primaries: [(f64, f64); 3],
    decode: fn(f64) -> f64,
}

const D65: (f64, f64) = (0.3127, 0.3290);

fn srgb_decode(v: f64) -> f64 {
    if v <= 0.04045 { v / 12.92 } else { ((v + 0.055) / 1.055).powf(2.4) }
}

fn srgb_encode(v: f64) -> f64 {
    if v <= 0.003_130_8 { v * 12.92 } else { 1.055 * v.powf(1.0 / 2.4) - 0.055 }
}

const SRGB: Space = Space { name: "sRGB", primaries: [(0.64, 0.33), (0.30, 0.60), (0.15, 0.06)], decode: srgb_decode };
const DISPLAY_P3: Space =
    Space { name: "Display P3", primaries: [(0.680, 0.320), (0.265, 0.690), (0.150, 0.060)], decode: srgb_decode };
const ADOBE_RGB: Space = Space {
    name: "Adobe RGB (1998)",
    primaries: [(0.64, 0.33), (0.21, 0.71), (0.15, 0.06)],
    decode: |v| v.powf(563.0 / 256.0),
};

type Matrix = [[f64; 3]; 3];

fn mul(m: &Matrix, v: [f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|r| m[r][0] * v[0] + m[r][1] * v[1] + m[r][2] * v[2])
}

fn inverse(m: &Matrix) -> Matrix {
    let c = |r: usize, col: usize| {
        let (r1, r2, c1, c2) = ((r + 1) % 3, (r + 2) % 3, (col + 1) % 3, (col + 2) % 3);
        m[r1][c1] * m[r2][c2] - m[r1][c2] * m[r2][c1]
    };
    let det = m[0][0] * c(0, 0) + m[0][1] * c(0, 1) + m[0][2] * c(0, 2);
    [0, 1, 2].map(|r| [0, 1, 2].map(|col| c(col, r) / det))
}

/// The linear RGB → XYZ matrix of a space (its white maps to D65 with Y = 1).
fn to_xyz(space: &Space) -> Matrix {
    let xyz = |(x, y): (f64, f64)| [x / y, 1.0, (1.0 - x - y) / y];
    let columns = space.primaries.map(xyz);
    let m: Matrix = [0, 1, 2].map(|r| [0, 1, 2].map(|c| columns[c][r]));
    let scale = mul(&inverse(&m), xyz(D65));
    [0, 1, 2].map(|r| [0, 1, 2].map(|c| m[r][c] * scale[c]))
}

/// The reference: 8-bit pixels of `space` to sRGB in 0..=1, clipped to sRGB's gamut.
fn reference(space: &Space, rgb: [u8; 3]) -> [f64; 3] {
    let m = mul_matrices(&inverse(&to_xyz(&SRGB)), &to_xyz(space));
    let linear = mul(&m, rgb.map(|v| (space.decode)(f64::from(v) / 255.0)));
    linear.map(|v| srgb_encode(v.clamp(0.0, 1.0)))
}

fn mul_matrices(a: &Matrix, b: &Matrix) -> Matrix {
    [0, 1, 2].map(|r| [0, 1, 2].map(|c| (0..3).map(|k| a[r][k] * b[k][c]).sum()))
}

/// CIELAB (D65) of an sRGB colour in 0..=1.
fn lab(srgb: [f64; 3]) -> [f64; 3] {
    let xyz = mul(&to_xyz(&SRGB), srgb.map(srgb_decode));
    let white = mul(&to_xyz(&SRGB), [1.0; 3]);
    let f =
        |t: f64| if t > (6.0f64 / 29.0).powi(3) { t.cbrt() } else { t / (3.0 * (6.0f64 / 29.0).powi(2)) + 4.0 / 29.0 };
    let [fx, fy, fz] = [0, 1, 2].map(|i| f(xyz[i] / white[i]));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// CIEDE2000 colour difference (Sharma, Wu and Dalal's formulation).
fn delta_e00([l1, a1, b1]: [f64; 3], [l2, a2, b2]: [f64; 3]) -> f64 {
    let deg = f64::to_radians;
    let c_bar = (a1.hypot(b1) + a2.hypot(b2)) / 2.0;
    let g = 0.5 * (1.0 - (c_bar.powi(7) / (c_bar.powi(7) + 25f64.powi(7))).sqrt());
    let (a1p, a2p) = ((1.0 + g) * a1, (1.0 + g) * a2);
    let (c1p, c2p) = (a1p.hypot(b1), a2p.hypot(b2));
    let hue = |b: f64, a: f64| if a == 0.0 && b == 0.0 { 0.0 } else { b.atan2(a).to_degrees().rem_euclid(360.0) };
    let (h1p, h2p) = (hue(b1, a1p), hue(b2, a2p));
    let dh = match h2p - h1p {
        _ if c1p * c2p == 0.0 => 0.0,
        d if d > 180.0 => d - 360.0,
        d if d < -180.0 => d + 360.0,
        d => d,
    };
    let (dl, dc, dh_big) = (l2 - l1, c2p - c1p, 2.0 * (c1p * c2p).sqrt() * deg(dh / 2.0).sin());
    let (l_bar, c_bar_p) = ((l1 + l2) / 2.0, (c1p + c2p) / 2.0);
    let h_bar = match (h1p - h2p).abs() {
        _ if c1p * c2p == 0.0 => h1p + h2p,
        d if d <= 180.0 => (h1p + h2p) / 2.0,
        _ if h1p + h2p < 360.0 => (h1p + h2p + 360.0) / 2.0,
        _ => (h1p + h2p - 360.0) / 2.0,
    };
    let t = 1.0 - 0.17 * deg(h_bar - 30.0).cos() + 0.24 * deg(2.0 * h_bar).cos() + 0.32 * deg(3.0 * h_bar + 6.0).cos()
        - 0.20 * deg(4.0 * h_bar - 63.0).cos();
    let d_theta = 30.0 * (-((h_bar - 275.0) / 25.0).powi(2)).exp();
    let r_c = 2.0 * (c_bar_p.powi(7) / (c_bar_p.powi(7) + 25f64.powi(7))).sqrt();
    let s_l = 1.0 + 0.015 * (l_bar - 50.0).powi(2) / (20.0 + (l_bar - 50.0).powi(2)).sqrt();
    let (s_c, s_h) = (1.0 + 0.045 * c_bar_p, 1.0 + 0.015 * c_bar_p * t);
    let r_t = -deg(2.0 * d_theta).sin() * r_c;
    ((dl / s_l).powi(2) + (dc / s_c).powi(2) + (dh_big / s_h).powi(2) + r_t * (dc / s_c) * (dh_big / s_h)).sqrt()
}

#[test]
fn ciede2000_matches_sharmas_published_pairs() {
    // Pairs 1, 7, 13 and 25 of the 34 test pairs of Sharma, Wu and Dalal (2005).
    let pairs = [
        ([50.0, 2.6772, -79.7751], [50.0, 0.0, -82.7485], 2.0425),
        ([50.0, 0.0, 0.0], [50.0, -1.0, 2.0], 2.3669),
        ([50.0, 2.49, -0.001], [50.0, -2.49, 0.0009], 7.1792),
        ([60.2574, -34.0099, 36.2677], [60.4626, -34.1751, 39.4387], 1.2644),
    ];
    for (a, b, expected) in pairs {
        assert!((delta_e00(a, b) - expected).abs() < 1e-4, "{a:?} {b:?}: {}", delta_e00(a, b));
    }
}

/// Sharp's photo, 512 wide, over a 512×64 band of saturated hues at two brightnesses.
fn test_image() -> RgbImage {
    let photo = image::load_from_memory(&support::fixture("2569067123_aca715a2ee_o.jpg")).unwrap();
    let photo = photo.resize(512, 512, image::imageops::FilterType::Triangle).into_rgb8();
    let (w, h) = photo.dimensions();
    RgbImage::from_fn(w, h + 64, |x, y| {
        if y < h {
            return *photo.get_pixel(x, y);
        }
        let (hue, value) = (f64::from(x) / f64::from(w) * 6.0, if y < h + 32 { 1.0 } else { 0.6 });
        let rise = hue.fract();
        let [r, g, b] = match hue as u32 {
            0 => [1.0, rise, 0.0],
            1 => [1.0 - rise, 1.0, 0.0],
            2 => [0.0, 1.0, rise],
            3 => [0.0, 1.0 - rise, 1.0],
            4 => [rise, 0.0, 1.0],
            _ => [1.0, 0.0, 1.0 - rise],
        };
        image::Rgb([r, g, b].map(|c| (c * value * 255.0).round() as u8))
    })
}

fn tagged_png(image: &RgbImage, icc: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = image::codecs::png::PngEncoder::new(&mut out);
    encoder.set_icc_profile(icc).unwrap();
    encoder.write_image(image.as_raw(), image.width(), image.height(), image::ExtendedColorType::Rgb8).unwrap();
    out
}

/// A 4:4:4 JPEG at quality 95 with `icc` in APP2, and the pixels libjpeg-turbo decodes from it
/// (what the reference converts: the colour test must not measure JPEG's loss).
fn tagged_jpeg(image: &RgbImage, icc: Vec<u8>) -> (Vec<u8>, RgbImage) {
    let mut out = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95);
    encoder.set_icc_profile(icc).unwrap();
    encoder.write_image(image.as_raw(), image.width(), image.height(), image::ExtendedColorType::Rgb8).unwrap();
    let decoded = turbojpeg::decompress(&out, turbojpeg::PixelFormat::RGB).unwrap();
    let pixels = RgbImage::from_raw(decoded.width as u32, decoded.height as u32, decoded.pixels).unwrap();
    (out, pixels)
}

/// Mean and max ΔE00 of `out` against the reference conversion of `source` from `space`.
fn delta_e(space: &Space, source: &RgbImage, out: &RgbImage) -> (f64, f64) {
    assert_eq!(source.dimensions(), out.dimensions());
    let errors: Vec<f64> = source
        .pixels()
        .zip(out.pixels())
        .map(|(s, o)| delta_e00(lab(reference(space, s.0)), lab(o.0.map(|v| f64::from(v) / 255.0))))
        .collect();
    (errors.iter().sum::<f64>() / errors.len() as f64, errors.iter().copied().fold(0.0, f64::max))
}

/// A preset with one rendition the size of the image, so the pixels are not resized.
const SAME: &str = r#"[presets.same]
renditions = [{ name = "same", width = 4096, fit = "inside", format = "png" }]"#;

#[test]
fn p3_and_adobe_rgb_photos_convert_to_srgb_within_delta_e_1() {
    let image = test_image();
    let recipe = support::recipe(SAME, "same");
    for (space, profile) in [(&DISPLAY_P3, ColorProfile::new_display_p3()), (&ADOBE_RGB, ColorProfile::new_adobe_rgb())]
    {
        let icc = profile.encode().unwrap();
        let (jpeg, jpeg_pixels) = tagged_jpeg(&image, icc.clone());
        for (format, bytes, source) in
            [("PNG", tagged_png(&image, icc.clone()), image.clone()), ("JPEG", jpeg, jpeg_pixels)]
        {
            let out = process(&bytes, &recipe, &Limits::default()).unwrap();
            let out = image::load_from_memory(&out.renditions[0].bytes).unwrap().into_rgb8();
            let (mean, max) = delta_e(space, &source, &out);
            println!("{} {format}: mean ΔE00 {mean:.3}, max {max:.3}", space.name);
            assert!(mean < 1.0 && max < 3.0, "{} {format}: mean ΔE00 {mean:.3}, max {max:.3}", space.name);
            // The check can fail: the same pixels left unconverted fail both bounds.
            let (unconverted, worst) = delta_e(space, &source, &source);
            assert!(
                unconverted > 1.5 && worst > 3.0,
                "{} {format}: unconverted {unconverted:.3}, {worst:.3}",
                space.name
            );
        }
    }
}

#[test]
fn a_wide_gamut_jpeg_stays_off_the_ycbcr_path_and_an_srgb_one_does_not_change() {
    let image = test_image();
    let jpegs = r#"[presets.j]
renditions = [{ name = "j", width = 4096, fit = "inside", format = "jpeg", quality = 95 }]"#;
    let recipe = support::recipe(jpegs, "j");
    // Display P3 through a JPEG-only preset (the YCbCr path's kind): converted all the same.
    let (jpeg, source) = tagged_jpeg(&image, ColorProfile::new_display_p3().encode().unwrap());
    let out = process(&jpeg, &recipe, &Limits::default()).unwrap();
    let out = image::load_from_memory(&out.renditions[0].bytes).unwrap().into_rgb8();
    let (mean, _) = delta_e(&DISPLAY_P3, &source, &out);
    assert!(mean < 1.5, "mean ΔE00 {mean:.3} (JPEG re-encoded at 95)");
    // An sRGB profile is the identity: the output is byte for byte the untagged one's.
    let (tagged, _) = tagged_jpeg(&image, ColorProfile::new_srgb().encode().unwrap());
    let mut untagged = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut untagged, 95)
        .write_image(image.as_raw(), image.width(), image.height(), image::ExtendedColorType::Rgb8)
        .unwrap();
    let [a, b] = [tagged, untagged].map(|bytes| process(&bytes, &recipe, &Limits::default()).unwrap());
    assert_eq!(a.renditions[0].bytes, b.renditions[0].bytes);
}
