//! Golden checks on real photos: orientation, dimensions per fit mode, stripped metadata,
//! colour conversion and the limits on `../shared/fixtures` and the corpus.

mod support;

use imgpipe_core::{ErrorKind, Limits, OutputFormat};
use processor::{Encoded, process};

fn decode(encoded: &Encoded) -> image::RgbImage {
    image::load_from_memory(&encoded.bytes).unwrap().to_rgb8()
}

/// Mean absolute difference per channel, 0..=255.
fn mean_diff(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let sum: u64 = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| u64::from(x.abs_diff(*y))).sum();
    sum as f64 / a.as_raw().len() as f64
}

const SIZES: &str = r#"
[presets.sizes]
renditions = [
  { name = "inside",  width = 300, height = 300, fit = "inside", format = "png" },
  { name = "cover",   width = 120, height = 200, fit = "cover",  format = "jpeg" },
  { name = "exact",   width = 50,  height = 40,  fit = "exact",  format = "webp" },
  { name = "wide",    width = 1000,              fit = "inside", format = "jpeg" },
  { name = "up",      height = 2400, fit = "inside", format = "jpeg", upscale = true },
]
"#;

#[test]
fn all_eight_exif_orientations_come_out_upright() {
    let dir = support::corpus().join("exif-orientation");
    let recipe = support::recipe(SIZES, "sizes");
    let limits = Limits::default();
    let reference = process(&std::fs::read(dir.join("Landscape_1.jpg")).unwrap(), &recipe, &limits).unwrap();
    for n in 1..=8 {
        let bytes = std::fs::read(dir.join(format!("Landscape_{n}.jpg"))).unwrap();
        let out = process(&bytes, &recipe, &limits).unwrap();
        assert_eq!((out.facts.width, out.facts.height, out.facts.orientation), (1800, 1200, n), "Landscape_{n}");
        for (made, expected) in out.renditions.iter().zip(&reference.renditions) {
            let diff = mean_diff(&decode(made), &decode(expected));
            assert!(diff < 6.0, "Landscape_{n} {}: differs from upright by {diff:.1}", made.name);
        }
    }
    // The check has teeth: the stored (unrotated) pixels of a rotated file are far from upright.
    let raw = image::load_from_memory(&std::fs::read(dir.join("Landscape_3.jpg")).unwrap()).unwrap();
    let upright = image::load_from_memory(&std::fs::read(dir.join("Landscape_1.jpg")).unwrap()).unwrap();
    assert!(mean_diff(&raw.to_rgb8(), &upright.to_rgb8()) > 20.0);
}

#[test]
fn outputs_have_the_exact_size_each_fit_mode_promises() {
    let recipe = support::recipe(SIZES, "sizes");
    // (file, upright size, expected inside-300 size, expected wide size, expected up size)
    let cases = [
        ("2569067123_aca715a2ee_o.jpg", (2725, 2225), (300, 245), (1000, 817), (2939, 2400)),
        ("alpha-premultiply-2048x1536-paper.png", (2048, 1536), (300, 225), (1000, 750), (3200, 2400)),
        ("gradients-rgb8.png", (1000, 1000), (300, 300), (1000, 1000), (2400, 2400)),
        ("Channel_digital_image_CMYK_color.jpg", (500, 333), (300, 200), (500, 333), (3604, 2400)),
    ];
    for (file, upright, inside, wide, up) in cases {
        let out = process(&support::fixture(file), &recipe, &Limits::default()).unwrap();
        assert_eq!((out.facts.width, out.facts.height), upright, "{file}");
        let sizes: Vec<_> = out.renditions.iter().map(|r| (r.name.as_str(), (r.width, r.height))).collect();
        assert_eq!(
            sizes,
            [("inside", inside), ("cover", (120, 200)), ("exact", (50, 40)), ("wide", wide), ("up", up)],
            "{file}"
        );
        for rendition in &out.renditions {
            let decoded = image::load_from_memory(&rendition.bytes).unwrap();
            assert_eq!((decoded.width(), decoded.height()), (rendition.width, rendition.height), "{file}");
            let format = image::guess_format(&rendition.bytes).unwrap();
            let expected = match rendition.format {
                OutputFormat::Jpeg => image::ImageFormat::Jpeg,
                OutputFormat::Png => image::ImageFormat::Png,
                OutputFormat::Webp => image::ImageFormat::WebP,
                OutputFormat::Avif => image::ImageFormat::Avif,
                OutputFormat::Gif => image::ImageFormat::Gif,
            };
            assert_eq!(format, expected, "{file} {}", rendition.name);
        }
    }
}

#[test]
fn avif_renditions_have_their_size_depth_and_alpha_and_follow_quality() {
    let recipe = support::recipe(
        r#"[presets.avif]
        renditions = [
          { name = "cover", width = 120, height = 200, fit = "cover", format = "avif" },
          { name = "inside", width = 300, format = "avif", quality = 80, speed = 8 },
          { name = "low", width = 300, format = "avif", quality = 30, speed = 8 },
        ]"#,
        "avif",
    );
    // (file, has alpha, `inside` size)
    let cases = [
        ("2569067123_aca715a2ee_o.jpg", false, (300, 245)),
        ("alpha-premultiply-2048x1536-paper.png", true, (300, 225)),
        ("Channel_digital_image_CMYK_color.jpg", false, (300, 200)),
    ];
    for (file, alpha, inside) in cases {
        let out = process(&support::fixture(file), &recipe, &Limits::default()).unwrap();
        let info: Vec<_> = out.renditions.iter().map(|r| support::avif_info(&r.bytes)).collect();
        assert_eq!(
            info,
            [(120, 200, 8, alpha), (inside.0, inside.1, 8, alpha), (inside.0, inside.1, 8, alpha)],
            "{file}"
        );
        assert!(out.renditions.iter().all(|r| r.format == OutputFormat::Avif));
        let sizes: Vec<_> = out.renditions.iter().map(|r| (r.width, r.height)).collect();
        assert_eq!(sizes, info.iter().map(|i| (i.0, i.1)).collect::<Vec<_>>(), "{file}");
        let (high, low) = (out.renditions[1].bytes.len(), out.renditions[2].bytes.len());
        assert!(low * 3 < high * 2, "{file}: quality 30 made {low} bytes, quality 80 {high}");
    }
}

#[test]
fn the_default_preset_makes_its_three_renditions() {
    let out = process(&support::fixture("2569067123_aca715a2ee_o.jpg"), &support::default_recipe(), &Limits::default())
        .unwrap();
    let sizes: Vec<_> = out.renditions.iter().map(|r| (r.name.as_str(), r.format, r.width, r.height)).collect();
    assert_eq!(
        sizes,
        [
            ("thumb", OutputFormat::Webp, 256, 256),
            ("medium", OutputFormat::Jpeg, 1024, 836),
            ("large", OutputFormat::Jpeg, 2048, 1672),
        ]
    );
    let t = out.facts.timings;
    assert!(t.decode > std::time::Duration::ZERO && t.resize > std::time::Duration::ZERO);
    assert!(t.watermark > std::time::Duration::ZERO && t.encode > std::time::Duration::ZERO);
}

#[test]
fn watermarked_renditions_differ_from_plain_ones_only_in_the_corner() {
    let plain = support::recipe(
        r#"[presets.plain]
        renditions = [{ name = "medium", width = 1024, fit = "inside", format = "png" }]"#,
        "plain",
    );
    let marked = support::recipe(
        r#"[presets.marked]
        watermark = { text = "© imgpipe", position = "bottom-right", opacity = 0.8, scale = 0.25, margin = 0.02 }
        renditions = [{ name = "medium", width = 1024, fit = "inside", format = "png", watermark = true }]"#,
        "marked",
    );
    let bytes = support::fixture("gradients-rgb8.png");
    let a = decode(&process(&bytes, &plain, &Limits::default()).unwrap().renditions[0]);
    let b = decode(&process(&bytes, &marked, &Limits::default()).unwrap().renditions[0]);
    let changed: Vec<(u32, u32)> =
        a.enumerate_pixels().filter(|(x, y, p)| p.0 != b.get_pixel(*x, *y).0).map(|(x, y, _)| (x, y)).collect();
    assert!(changed.len() > 2_000, "only {} pixels changed", changed.len());
    assert!(changed.iter().all(|&(x, y)| x > 700 && y > 900), "watermark outside the bottom-right corner");
}

/// Segment markers in a JPEG up to the first scan.
fn jpeg_markers(bytes: &[u8]) -> Vec<u8> {
    let mut markers = Vec::new();
    let mut pos = 2;
    while pos + 4 <= bytes.len() && bytes[pos] == 0xFF {
        let marker = bytes[pos + 1];
        markers.push(marker);
        if marker == 0xDA {
            break;
        }
        pos += 2 + usize::from(u16::from_be_bytes([bytes[pos + 2], bytes[pos + 3]]));
    }
    markers
}

/// RIFF chunk names of a WebP, or PNG chunk names.
fn chunk_names(bytes: &[u8], png: bool) -> Vec<String> {
    let (mut pos, header) = if png { (8, 8) } else { (12, 8) };
    let mut names = Vec::new();
    while pos + header <= bytes.len() {
        let (len, name) = if png {
            (u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize, &bytes[pos + 4..pos + 8])
        } else {
            (u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize, &bytes[pos..pos + 4])
        };
        names.push(String::from_utf8_lossy(name).into_owned());
        pos += header + len + if png { 4 } else { len & 1 };
    }
    names
}

#[test]
fn no_output_carries_exif_xmp_or_icc_metadata() {
    let recipe = support::recipe(SIZES, "sizes");
    let inputs = [
        support::fixture("gain-map.jpg"),
        support::fixture("Channel_digital_image_CMYK_color.jpg"),
        std::fs::read(support::corpus().join("exif-orientation/Landscape_6.jpg")).unwrap(),
        std::fs::read(support::corpus().join("jpeg/hopper_bad_exif.jpg")).unwrap(),
        std::fs::read(support::corpus().join("jpeg/icc_profile_big.jpg")).unwrap(),
    ];
    for input in inputs {
        // The inputs do carry metadata: APP1 (EXIF/XMP) or APP2 (ICC/MPF).
        assert!(jpeg_markers(&input).iter().any(|m| matches!(m, 0xE1 | 0xE2)));
        for rendition in process(&input, &recipe, &Limits::default()).unwrap().renditions {
            match rendition.format {
                OutputFormat::Jpeg => {
                    let markers = jpeg_markers(&rendition.bytes);
                    assert!(markers.contains(&0xDA), "{markers:x?}");
                    assert!(
                        markers.iter().all(|m| !(0xE1..=0xEF).contains(m)),
                        "APPn in {}: {markers:x?}",
                        rendition.name
                    );
                }
                OutputFormat::Webp => {
                    let chunks = chunk_names(&rendition.bytes, false);
                    assert!(chunks.iter().all(|c| !["EXIF", "XMP ", "ICCP"].contains(&c.as_str())), "{chunks:?}");
                }
                OutputFormat::Avif => {
                    assert!(!rendition.bytes.windows(4).any(|w| w == b"Exif"), "{}", rendition.name);
                }
                OutputFormat::Gif => {}
                OutputFormat::Png => {
                    let chunks = chunk_names(&rendition.bytes, true);
                    assert!(chunks.contains(&"IDAT".to_string()), "{chunks:?}");
                    let metadata = ["eXIf", "iTXt", "tEXt", "zTXt", "iCCP"];
                    assert!(chunks.iter().all(|c| !metadata.contains(&c.as_str())), "{chunks:?}");
                }
            }
        }
    }
}

#[test]
fn cmyk_jpegs_convert_with_the_right_polarity_and_hue() {
    // libjpeg-turbo decodes CMYK but will not convert it; Adobe's CMYK is stored inverted.
    // References: mean R, G, B of libvips' colour-managed conversion (`vips copy in.jpg out.png`).
    // The first file carries a CMYK profile, which imgpipe applies too (it measured [109, 132,
    // 110] with the naive conversion it used before); the second has none, so both tools fall back
    // to a generic conversion (libvips to a bundled press profile, imgpipe to the naive formula,
    // [30, 5, 7]): only brightness and the dominant channel are compared there. An inverted
    // (negative) conversion is off by more than 150 in brightness.
    let recipe = support::recipe(SIZES, "sizes");
    let cases = [
        (
            "Channel_digital_image_CMYK_color.jpg",
            support::fixture("Channel_digital_image_CMYK_color.jpg"),
            [129.0, 133.0, 123.0],
        ),
        (
            "pil_sample_cmyk.jpg",
            std::fs::read(support::corpus().join("jpeg/pil_sample_cmyk.jpg")).unwrap(),
            [54.0, 35.0, 44.0],
        ),
    ];
    for (file, bytes, reference) in cases {
        let out = process(&bytes, &recipe, &Limits::default()).unwrap();
        let rgb = decode(&out.renditions[0]);
        let mean =
            |c: usize| rgb.pixels().map(|p| f64::from(p[c])).sum::<f64>() / f64::from(rgb.width() * rgb.height());
        let means = [mean(0), mean(1), mean(2)];
        println!("{file}: mean RGB {means:?}, libvips {reference:?}");
        let brightness = |m: [f64; 3]| m.iter().sum::<f64>() / 3.0;
        let dominant = |m: [f64; 3]| (0..3).max_by(|&a, &b| m[a].total_cmp(&m[b])).unwrap();
        if file.starts_with("Channel") {
            let off = means.iter().zip(reference).map(|(m, r)| (m - r).abs()).fold(0.0, f64::max);
            assert!(off < 2.0, "{file}: mean RGB {means:?} vs {reference:?}");
        } else {
            assert!(
                (brightness(means) - brightness(reference)).abs() < 40.0,
                "{file}: mean RGB {means:?} vs {reference:?}"
            );
            assert_eq!(dominant(means), dominant(reference), "{file}: mean RGB {means:?} vs {reference:?}");
        }
    }
}

#[test]
fn the_giant_image_is_rejected_from_its_header() {
    let started = std::time::Instant::now();
    let err =
        process(&support::fixture("giant-image.jpg"), &support::default_recipe(), &Limits::default()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::TooLarge);
    assert!(err.message.contains("20000×14000"), "{}", err.message);
    // Decoding 280 MP would take seconds and gigabytes; the header check takes microseconds.
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

#[test]
fn grey_and_alpha_inputs_produce_8_bit_rgb_outputs() {
    let recipe = support::recipe(SIZES, "sizes");
    let out = process(&support::fixture("alpha-premultiply-2048x1536-paper.png"), &recipe, &Limits::default()).unwrap();
    // PNG and WebP keep the alpha channel; JPEG flattens it on the (white) background.
    let png = image::load_from_memory(&out.renditions[0].bytes).unwrap();
    assert_eq!(png.color(), image::ColorType::Rgba8);
    let jpeg = image::load_from_memory(&out.renditions[1].bytes).unwrap();
    assert_eq!(jpeg.color(), image::ColorType::Rgb8);
    let grey16 = std::fs::read(support::corpus().join("png-valid/basn0g16.png")).unwrap();
    let out = process(&grey16, &recipe, &Limits::default()).unwrap();
    assert_eq!(image::load_from_memory(&out.renditions[0].bytes).unwrap().color(), image::ColorType::Rgb8);
}

#[test]
fn placeholders_preview_the_photo_on_both_paths() {
    use base64::Engine;
    let photo = support::fixture("2569067123_aca715a2ee_o.jpg");
    let limits = Limits::default();
    // The default preset takes the RGB path; a JPEG-only preset the YCbCr one.
    let rgb = process(&photo, &support::default_recipe(), &limits).unwrap();
    let jpegs = r#"[presets.j]
renditions = [{ name = "m", width = 1024, fit = "inside", format = "jpeg" }]"#;
    let planar = process(&photo, &support::recipe(jpegs, "j"), &limits).unwrap();
    let pixels = image::load_from_memory(&photo).unwrap().into_rgb8();
    let mean = |c: usize| pixels.pixels().map(|p| f32::from(p[c])).sum::<f32>() / pixels.len() as f32 * 3.0 / 255.0;
    for out in [&rgb, &planar] {
        let placeholder = &out.facts.placeholder;
        let hash = base64::engine::general_purpose::STANDARD.decode(&placeholder.thumbhash).unwrap();
        let aspect = thumbhash::thumb_hash_to_approximate_aspect_ratio(&hash).unwrap();
        assert!((aspect - 2725.0 / 2225.0).abs() < 0.15, "aspect {aspect}");
        let (r, g, b, a) = thumbhash::thumb_hash_to_average_rgba(&hash).unwrap();
        for (hashed, real) in [(r, mean(0)), (g, mean(1)), (b, mean(2))] {
            assert!(
                (hashed - real).abs() < 0.03,
                "average {:?} against the photo's {:?}",
                (r, g, b),
                (mean(0), mean(1), mean(2))
            );
        }
        assert_eq!(a, 1.0);
        assert!(placeholder.dominant_color.len() == 7 && placeholder.dominant_color.starts_with('#'));
    }
    assert_eq!(rgb.facts.placeholder.dominant_color, planar.facts.placeholder.dominant_color);
}
