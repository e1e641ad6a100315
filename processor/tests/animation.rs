//! Animations kept animated: GIF, WebP and APNG originals through `animated = true` renditions
//! come out as animated WebP and GIF with every frame, in order, with its delay; the budget and
//! still presets give the first frame; the watermark and the crop are the same on every frame.

mod support;

use image::codecs::gif::{GifDecoder, GifEncoder, Repeat};
use image::codecs::webp::WebPDecoder;
use image::{AnimationDecoder, Delay, DynamicImage, Frame, Rgba, RgbaImage};
use imgpipe_core::{Limits, OutputFormat};
use processor::process;
use std::io::Cursor;

/// The frames every input holds: a solid colour each, with a white square moving left to right,
/// and each frame's delay in milliseconds.
const COLOURS: [[u8; 3]; 3] = [[200, 30, 30], [30, 160, 40], [40, 60, 200]];
const DELAYS: [u32; 3] = [100, 200, 300];
const SIZE: (u32, u32) = (64, 48);

fn frame(i: usize) -> RgbaImage {
    let [r, g, b] = COLOURS[i];
    RgbaImage::from_fn(SIZE.0, SIZE.1, |x, y| {
        let square = (8 + 16 * i as u32..16 + 16 * i as u32).contains(&x) && (20..28).contains(&y);
        if square { Rgba([255, 255, 255, 255]) } else { Rgba([r, g, b, 255]) }
    })
}

fn gif() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut out);
        encoder.set_repeat(Repeat::Infinite).unwrap();
        for (i, &ms) in DELAYS.iter().enumerate() {
            let delay = Delay::from_numer_denom_ms(ms, 1);
            encoder.encode_frame(Frame::from_parts(frame(i), 0, 0, delay)).unwrap();
        }
    }
    out
}

/// An animated WebP of the frames, through imgpipe's own encoder (near-lossless at quality 100),
/// read back by the `image` crate's decoder. (The `webp` crate's encoder ends the last frame at
/// time 0, which libwebp turns into the mean delay.)
fn webp() -> Vec<u8> {
    let frames: Vec<_> = (0..3).map(|i| (DynamicImage::ImageRgba8(frame(i)), DELAYS[i])).collect();
    let catalog = imgpipe_core::PresetCatalog::from_toml(
        "[presets.w]\nrenditions = [{ name = \"w\", width = 64, format = \"webp\", quality = 100, animated = true }]",
    )
    .unwrap();
    processor::encode::animation(&frames, &catalog.get("w").unwrap().renditions[0]).unwrap()
}

fn apng() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, SIZE.0, SIZE.1);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_animated(3, 0).unwrap();
        let mut writer = encoder.write_header().unwrap();
        for (i, &ms) in DELAYS.iter().enumerate() {
            writer.set_frame_delay(ms as u16, 1000).unwrap();
            writer.write_image_data(frame(i).as_raw()).unwrap();
        }
        writer.finish().unwrap();
    }
    out
}

/// An animated rendition's frames and their delays, decoded by the `image` crate.
fn decoded(bytes: &[u8], format: OutputFormat) -> Vec<(RgbaImage, u32)> {
    let frames = match format {
        OutputFormat::Gif => GifDecoder::new(Cursor::new(bytes)).unwrap().into_frames(),
        OutputFormat::Webp => WebPDecoder::new(Cursor::new(bytes)).unwrap().into_frames(),
        other => panic!("{other} is not animated"),
    };
    let frames: Vec<_> = frames
        .map(|frame| {
            let frame = frame.unwrap();
            let (numer, denom) = frame.delay().numer_denom_ms();
            (frame.into_buffer(), numer / denom)
        })
        .collect();
    if frames.is_empty() {
        // A still WebP has no animation frames: its one picture.
        return vec![(image::load_from_memory(bytes).unwrap().to_rgba8(), 0)];
    }
    frames
}

fn mean(image: &RgbaImage) -> [f64; 3] {
    let n = f64::from(image.width() * image.height());
    let mut sum = [0.0; 3];
    for p in image.pixels() {
        (0..3).for_each(|c| sum[c] += f64::from(p[c]));
    }
    sum.map(|s| s / n)
}

/// The mean colour of a frame of the inputs above, white square included.
fn expected_mean(i: usize) -> [f64; 3] {
    mean(&frame(i))
}

fn close(a: [f64; 3], b: [f64; 3], tolerance: f64) -> bool {
    a.iter().zip(b).all(|(a, b)| (a - b).abs() <= tolerance)
}

const PRESET: &str = r#"[presets.anim]
renditions = [
  { name = "webp", width = 32, format = "webp", quality = 90, animated = true },
  { name = "gif", width = 32, format = "gif", animated = true },
  { name = "still", width = 32, format = "png" },
]"#;

#[test]
fn gif_webp_and_apng_stay_animated_with_every_frame_and_delay() {
    let recipe = support::recipe(PRESET, "anim");
    for (name, input) in [("gif", gif()), ("webp", webp()), ("apng", apng())] {
        let out = process(&input, &recipe, &Limits::default()).unwrap();
        assert_eq!((out.facts.width, out.facts.height), SIZE, "{name}");
        for rendition in &out.renditions[..2] {
            assert_eq!((rendition.width, rendition.height), (32, 24), "{name} → {}", rendition.name);
            let frames = decoded(&rendition.bytes, rendition.format);
            let delays: Vec<u32> = frames.iter().map(|f| f.1).collect();
            assert_eq!(delays, DELAYS, "{name} → {}", rendition.name);
            for (i, (pixels, _)) in frames.iter().enumerate() {
                assert_eq!(pixels.dimensions(), (32, 24), "{name} → {} frame {i}", rendition.name);
                let got = mean(pixels);
                assert!(close(got, expected_mean(i), 12.0), "{name} → {} frame {i}: {got:?}", rendition.name);
            }
            // The square moves: frames are not copies of the first.
            assert_ne!(frames[0].0, frames[2].0, "{name} → {}", rendition.name);
        }
        let still = image::load_from_memory(&out.renditions[2].bytes).unwrap().to_rgba8();
        assert!(close(mean(&still), expected_mean(0), 3.0), "{name} still: {:?}", mean(&still));
    }
}

#[test]
fn over_the_pixel_budget_and_in_still_presets_an_animation_gives_its_first_frame() {
    let recipe = support::recipe(PRESET, "anim");
    let just_under = Limits { max_animation_pixels: 3 * 64 * 48 - 1, ..Limits::default() };
    let out = process(&gif(), &recipe, &just_under).unwrap();
    for rendition in &out.renditions[..2] {
        let frames = decoded(&rendition.bytes, rendition.format);
        assert_eq!(frames.len(), 1, "{}", rendition.name);
        assert!(close(mean(&frames[0].0), expected_mean(0), 12.0), "{}", rendition.name);
    }
    let at_budget = Limits { max_animation_pixels: 3 * 64 * 48, ..Limits::default() };
    let out = process(&gif(), &recipe, &at_budget).unwrap();
    assert_eq!(decoded(&out.renditions[1].bytes, OutputFormat::Gif).len(), 3);
    // A preset without `animated` renditions: the first frame, as before.
    let out = process(&webp(), &support::default_recipe(), &Limits::default()).unwrap();
    let thumb = image::load_from_memory(&out.renditions[0].bytes).unwrap().to_rgba8();
    assert!(close(mean(&thumb), [200.0, 30.0, 30.0], 16.0), "{:?}", mean(&thumb));
}

#[test]
fn the_watermark_and_a_smart_crop_are_the_same_on_every_frame() {
    let toml = |watermark: bool| {
        format!(
            r#"[presets.p]
            watermark = {{ text = "imgpipe", position = "top-left", opacity = 1.0, scale = 0.5 }}
            renditions = [{{ name = "a", width = 24, height = 24, fit = "cover", gravity = "attention", format = "gif", animated = true, watermark = {watermark} }}]"#
        )
    };
    let marked = process(&gif(), &support::recipe(&toml(true), "p"), &Limits::default()).unwrap();
    let plain = process(&gif(), &support::recipe(&toml(false), "p"), &Limits::default()).unwrap();
    let (marked, plain) = (
        decoded(&marked.renditions[0].bytes, OutputFormat::Gif),
        decoded(&plain.renditions[0].bytes, OutputFormat::Gif),
    );
    assert_eq!((marked.len(), plain.len()), (3, 3));
    for (i, ((m, _), (p, _))) in marked.iter().zip(&plain).enumerate() {
        assert_eq!(m.dimensions(), (24, 24));
        // The top-left mark changes the top half of every frame and leaves the bottom row alone.
        let differs = |y: u32| (0..24).any(|x| m.get_pixel(x, y) != p.get_pixel(x, y));
        assert!((0..6).any(differs), "frame {i}: no watermark");
        assert!(!differs(23), "frame {i}: the watermark reached the bottom row");
    }
    // One crop window for all frames: the background colour fills each frame where the square
    // is not, so a frame's mean stays that of its colour with at most a square inside.
    for (i, (frame, _)) in plain.iter().enumerate() {
        let [r, g, b] = COLOURS[i];
        let corner = frame.get_pixel(23, 23);
        assert!(close([corner[0], corner[1], corner[2]].map(f64::from), [r, g, b].map(f64::from), 12.0), "frame {i}");
    }
}

/// The same animation with a different frame count decodes to that count (nothing cached
/// between images).
#[test]
fn a_still_image_after_an_animation_is_unaffected() {
    let recipe = support::recipe(PRESET, "anim");
    let still = support::encode_with_image(&DynamicImage::ImageRgba8(frame(1)), image::ImageFormat::Png);
    let before = process(&still, &recipe, &Limits::default()).unwrap();
    process(&gif(), &recipe, &Limits::default()).unwrap();
    let after = process(&still, &recipe, &Limits::default()).unwrap();
    assert_eq!(before.renditions, after.renditions);
    assert_eq!(decoded(&after.renditions[1].bytes, OutputFormat::Gif).len(), 1);
}

#[test]
fn an_animation_with_an_exif_orientation_is_turned_upright_in_every_frame() {
    // Orientation 6: the stored 64×48 frames show as 48×64.
    let field =
        exif::Field { tag: exif::Tag::Orientation, ifd_num: exif::In::PRIMARY, value: exif::Value::Short(vec![6]) };
    let mut writer = exif::experimental::Writer::new();
    writer.push_field(&field);
    let mut tiff = Cursor::new(Vec::new());
    writer.write(&mut tiff, false).unwrap();
    let turned = processor::metadata::embed(apng(), OutputFormat::Png, &tiff.into_inner());
    let out = process(&turned, &support::recipe(PRESET, "anim"), &Limits::default()).unwrap();
    assert_eq!((out.facts.width, out.facts.height, out.facts.orientation), (48, 64, 6));
    for rendition in &out.renditions[..2] {
        let frames = decoded(&rendition.bytes, rendition.format);
        assert_eq!(frames.len(), 3, "{}", rendition.name);
        for (i, (pixels, _)) in frames.iter().enumerate() {
            assert_eq!(pixels.dimensions(), (32, 43), "{} frame {i}", rendition.name);
        }
    }
    assert_eq!((out.renditions[2].width, out.renditions[2].height), (32, 43));
}
