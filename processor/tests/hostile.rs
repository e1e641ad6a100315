//! Generated hostile inputs: truncations, bit flips, zero sizes, bombs and extreme shapes.
//! Every one ends as a typed error or a correct image: never a panic, hang or silent garbage.

mod support;

use image::{DynamicImage, ImageFormat, RgbImage};
use imgpipe_core::{ErrorKind, Limits};
use processor::process;
use std::io::Write;

fn valid_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let image = support::noisy(300, 200);
    vec![
        ("jpeg", support::encode_with_image(&image, ImageFormat::Jpeg)),
        ("png", support::encode_with_image(&image, ImageFormat::Png)),
        ("gif", support::encode_with_image(&image, ImageFormat::Gif)),
        ("webp", support::encode_with_image(&image, ImageFormat::WebP)),
    ]
}

#[test]
fn truncated_images_are_corrupt_not_grey_filled() {
    let recipe = support::default_recipe();
    for (format, bytes) in valid_inputs() {
        process(&bytes, &recipe, &Limits::default()).unwrap_or_else(|e| panic!("{format}: the intact file fails: {e}"));
        for percent in [10, 25, 50, 75, 90] {
            let cut = &bytes[..bytes.len() * percent / 100];
            match process(cut, &recipe, &Limits::default()) {
                Err(e) => assert_eq!(e.kind, ErrorKind::Corrupt, "{format} cut at {percent}%: {e}"),
                Ok(_) => panic!("{format} cut at {percent}% was accepted"),
            }
        }
    }
}

#[test]
fn bit_flips_never_panic_and_never_look_like_our_fault() {
    let recipe = support::default_recipe();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (format, bytes) in valid_inputs() {
        let mut outcomes = [0usize; 2];
        for _ in 0..60 {
            let mut damaged = bytes.clone();
            for _ in 0..=(next() % 4) {
                let at = (next() % damaged.len() as u64) as usize;
                damaged[at] ^= 1 << (next() % 8);
            }
            match process(&damaged, &recipe, &Limits::default()) {
                Ok(out) => {
                    assert_eq!(out.renditions.len(), 3);
                    outcomes[0] += 1;
                }
                Err(e) => {
                    assert_ne!(e.kind, ErrorKind::Internal, "{format}: {e}");
                    outcomes[1] += 1;
                }
            }
        }
        assert_eq!(outcomes.iter().sum::<usize>(), 60, "{format}");
    }
}

fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(data);
    out.extend_from_slice(&support::crc32(&crc_input).to_be_bytes());
    out
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// A PNG built chunk by chunk: IHDR for `width`×`height` 8-bit RGB, `extra` chunks, then
/// `idat` (already compressed) and IEND.
fn png(width: u32, height: u32, extra: &[Vec<u8>], idat: &[u8]) -> Vec<u8> {
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(chunk(b"IHDR", &ihdr));
    for c in extra {
        out.extend_from_slice(c);
    }
    out.extend(chunk(b"IDAT", idat));
    out.extend(chunk(b"IEND", &[]));
    out
}

fn rgb_rows(width: u32, height: u32) -> Vec<u8> {
    let row = 1 + 3 * width as usize;
    vec![0u8; row * height as usize]
}

/// This process's peak resident memory, in MiB (Linux).
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}

#[test]
fn a_small_png_with_a_huge_colour_profile_cannot_take_the_memory() {
    // 16×16 pixels, but the iCCP chunk inflates to 300 MB (about 300 KB on disk). The decoder
    // either never inflates it or stops at the allocation budget fixed from the header's size.
    let mut iccp = b"bomb\0\0".to_vec();
    iccp.extend(zlib(&vec![0u8; 300 * 1024 * 1024]));
    let bytes = png(16, 16, &[chunk(b"iCCP", &iccp)], &zlib(&rgb_rows(16, 16)));
    assert!(bytes.len() < 400 * 1024, "{} bytes", bytes.len());
    let before = peak_rss_mib();
    match process(&bytes, &support::default_recipe(), &Limits::default()) {
        Ok(out) => assert_eq!((out.facts.width, out.facts.height), (16, 16)),
        Err(e) => assert_eq!(e.kind, ErrorKind::Limits, "{e}"),
    }
    // Processing must not raise this process's peak memory by anything like the profile's size.
    assert!(peak_rss_mib() <= before + 64, "peak grew from {before} to {} MiB", peak_rss_mib());
}

#[test]
fn declared_sizes_over_the_limits_are_too_large_before_any_decoding() {
    let recipe = support::default_recipe();
    // 8000×8000 = 64 MP > 50 MP, with a tiny deflate stream that would inflate to 192 MB.
    let bomb = png(8000, 8000, &[], &zlib(&rgb_rows(100, 1)));
    assert_eq!(process(&bomb, &recipe, &Limits::default()).unwrap_err().kind, ErrorKind::TooLarge);
    let wide = png(20_000, 1, &[], &zlib(&rgb_rows(20_000, 1)));
    assert_eq!(process(&wide, &recipe, &Limits::default()).unwrap_err().kind, ErrorKind::TooLarge);
    let tight = Limits { max_pixels: 100 * 100, ..Limits::default() };
    let err = process(&support::fixture("gradients-rgb8.png"), &recipe, &tight).unwrap_err();
    assert_eq!(err.kind, ErrorKind::TooLarge);
    assert!(err.message.contains("1000×1000"), "{}", err.message);
}

#[test]
fn zero_sized_images_are_corrupt() {
    let recipe = support::default_recipe();
    assert_eq!(
        process(&png(0, 10, &[], &zlib(&[])), &recipe, &Limits::default()).unwrap_err().kind,
        ErrorKind::Corrupt
    );
    // A JPEG frame header declaring 0 columns.
    let mut jpeg = support::encode_with_image(&support::noisy(16, 16), ImageFormat::Jpeg);
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    jpeg[sof + 7..sof + 9].copy_from_slice(&[0, 0]);
    assert_eq!(process(&jpeg, &recipe, &Limits::default()).unwrap_err().kind, ErrorKind::Corrupt);
    assert_eq!(process(b"", &recipe, &Limits::default()).unwrap_err().kind, ErrorKind::Unsupported);
}

#[test]
fn extreme_aspect_ratios_produce_exact_sizes() {
    let recipe = support::default_recipe();
    for (width, height) in [(16_383, 1), (1, 16_383), (4000, 3)] {
        let image = DynamicImage::ImageRgb8(RgbImage::from_pixel(width, height, image::Rgb([10, 200, 30])));
        let bytes = support::encode_with_image(&image, ImageFormat::Png);
        let out = process(&bytes, &recipe, &Limits::default()).unwrap();
        let sizes: Vec<_> = out.renditions.iter().map(|r| (r.width, r.height)).collect();
        let medium = (
            (1024.min(width)),
            ((f64::from(height) * f64::from(1024.min(width)) / f64::from(width)).round() as u32).max(1),
        );
        let large = (
            (2048.min(width)),
            ((f64::from(height) * f64::from(2048.min(width)) / f64::from(width)).round() as u32).max(1),
        );
        assert_eq!(sizes, [(256, 256), medium, large], "{width}×{height}");
        for r in &out.renditions {
            let back = image::load_from_memory(&r.bytes).unwrap().to_rgb8();
            let p = back.get_pixel(0, 0);
            assert!(p[1] > 150 && p[0] < 60, "{width}×{height} {}: {p:?}", r.name);
        }
    }
}

#[test]
fn animations_with_too_many_frames_hit_the_frame_limit() {
    let mut bytes = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut bytes);
        let frames =
            (0..12).map(|i| image::Frame::new(image::RgbaImage::from_pixel(4, 4, image::Rgba([i * 20, 0, 0, 255]))));
        encoder.encode_frames(frames).unwrap();
    }
    let recipe = support::default_recipe();
    let out = process(&bytes, &recipe, &Limits::default()).unwrap();
    assert_eq!((out.facts.width, out.facts.height), (4, 4));
    let err = process(&bytes, &recipe, &Limits { max_frames: 10, ..Limits::default() }).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Limits);
    assert!(err.message.contains("12 frames"), "{}", err.message);
}

#[test]
fn tiff_and_bmp_decode_when_a_deployment_accepts_them() {
    let image = support::noisy(64, 48);
    let all = Limits { formats: imgpipe_core::InputFormat::ALL.to_vec(), ..Limits::default() };
    for format in [ImageFormat::Tiff, ImageFormat::Bmp] {
        let bytes = support::encode_with_image(&image, format);
        let out = process(&bytes, &support::default_recipe(), &all).unwrap();
        assert_eq!((out.facts.width, out.facts.height), (64, 48), "{format:?}");
        let err = process(&bytes, &support::default_recipe(), &Limits::default()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unsupported, "{format:?}");
    }
}

#[test]
fn progressive_jpegs_with_too_many_scans_hit_the_scan_limit() {
    // A real progressive JPEG whose last scan is repeated 600 times: a small file that makes the
    // decoder pass over every coefficient again per scan.
    let rgb = support::noisy(64, 48).to_rgb8();
    let mut compressor = turbojpeg::Compressor::new().unwrap();
    compressor.set_progressive(true).unwrap();
    let image = turbojpeg::Image {
        pixels: rgb.as_raw().as_slice(),
        width: 64,
        pitch: 192,
        height: 48,
        format: turbojpeg::PixelFormat::RGB,
    };
    let jpeg = compressor.compress_to_vec(image).unwrap();
    let last_scan = jpeg.windows(2).rposition(|w| w == [0xFF, 0xDA]).unwrap();
    let end = jpeg.len() - 2;
    let mut many = jpeg[..end].to_vec();
    for _ in 0..600 {
        many.extend_from_slice(&jpeg[last_scan..end]);
    }
    many.extend_from_slice(&[0xFF, 0xD9]);
    let recipe = support::default_recipe();
    process(&jpeg, &recipe, &Limits::default()).expect("the original progressive JPEG decodes");
    let err = process(&many, &recipe, &Limits::default()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Limits, "{err}");
    assert!(err.message.contains("500 scans"), "{}", err.message);
    let lenient = Limits { max_scans: 10_000, ..Limits::default() };
    let err = process(&many, &recipe, &lenient).map(|_| ()).unwrap_err();
    assert_ne!(err.kind, ErrorKind::Limits, "without the limit the scans are decoded: {err}");
}

#[test]
fn avif_and_heic_originals_are_unsupported_by_name() {
    let avif = processor::encode::avif(&support::noisy(64, 48), 60, 10, None).unwrap();
    let err = process(&avif, &support::default_recipe(), &Limits::default()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unsupported);
    assert!(err.message.starts_with("AVIF images are not decoded here"), "{}", err.message);
    // The head of an iPhone photo: `ftyp` with brand heic.
    let mut heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec();
    heic.extend_from_slice(&[0; 64]);
    let err = process(&heic, &support::default_recipe(), &Limits::default()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unsupported);
    assert!(err.message.contains("HEIC/HEIF images are not decoded here"), "{}", err.message);
}
