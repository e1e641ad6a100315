//! Criterion benchmarks of the kernel, stage by stage and whole, on sharp's benchmark JPEG
//! (2725×2225), a progressive re-encode of it, and a 2048×1536 PNG with alpha.
//!
//! `cargo bench -p benches` (add `-- decode` etc. to pick a group).

use benches::{ALPHA_PNG, SHARP_BENCH_IMAGE, SHARP_WORKLOAD_TOML, read_fixture};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use image::DynamicImage;
use imgpipe_core::preset::{Anchor, Mark, Rgb, Watermark};
use imgpipe_core::{Limits, OutputFormat, PresetCatalog};
use processor::watermark::Stamp;
use processor::{Recipe, decode, encode, gravity, placeholder, probe, process, resize};
use rayon::prelude::*;
use std::hint::black_box;
use std::time::Duration;

struct Inputs {
    jpeg: Vec<u8>,
    progressive: Vec<u8>,
    png: Vec<u8>,
    /// The same JPEG tagged Display P3 (an APP2 profile): every pixel goes through the CMS.
    p3: Vec<u8>,
}

/// `jpeg` with `icc` in one APP2 segment right after SOI.
fn with_icc(jpeg: &[u8], icc: &[u8]) -> Vec<u8> {
    let len = u16::try_from(2 + 14 + icc.len()).expect("a one-chunk profile");
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE2]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(b"ICC_PROFILE\0\x01\x01");
    out.extend_from_slice(icc);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn inputs() -> Inputs {
    let jpeg = read_fixture(SHARP_BENCH_IMAGE).expect("sharp's benchmark image");
    let png = read_fixture(ALPHA_PNG).expect("the alpha PNG");
    let photo = image::load_from_memory(&jpeg).unwrap().into_rgb8();
    let progressive = benches::progressive_jpeg(&photo).unwrap();
    let p3 = with_icc(&jpeg, &moxcms::ColorProfile::new_display_p3().encode().unwrap());
    Inputs { jpeg, progressive, png, p3 }
}

fn turbojpeg_compressor() -> turbojpeg::Compressor {
    let mut compressor = turbojpeg::Compressor::new().unwrap();
    compressor.set_quality(90).unwrap();
    compressor
}

fn recipe(toml: &str, name: &str) -> Recipe {
    let catalog = PresetCatalog::from_toml(toml).unwrap();
    Recipe::text_only(catalog.get(name).unwrap().clone()).unwrap()
}

fn decode_at(bytes: &[u8], need: (u32, u32)) -> DynamicImage {
    let limits = Limits::default();
    let header = probe::probe(bytes, &limits).unwrap();
    decode::decode(bytes, &header, &limits, Some(need)).unwrap().image
}

fn bench_decode(c: &mut Criterion, inputs: &Inputs) {
    let mut group = c.benchmark_group("decode");
    for (name, bytes, need) in [
        ("jpeg full", &inputs.jpeg, (2725, 2225)),
        ("jpeg shrink 1/2", &inputs.jpeg, (720, 588)),
        ("jpeg shrink 1/8", &inputs.jpeg, (314, 256)),
        ("progressive jpeg full", &inputs.progressive, (2725, 2225)),
        ("progressive jpeg shrink 1/2", &inputs.progressive, (720, 588)),
        ("png rgba", &inputs.png, (2048, 1536)),
    ] {
        group.bench_function(name, |b| b.iter(|| decode_at(black_box(bytes), need)));
    }
    group.finish();
}

/// What a libjpeg-turbo handle per image costs (the kernel makes one per image: a handle kept
/// per thread carried a damaged JPEG's state into the next): the same decode with one handle
/// reused and with a new one each time, on a thumbnail-sized JPEG (the worst case) and the photo.
fn bench_decoder_handle(c: &mut Criterion, inputs: &Inputs) {
    let mut group = c.benchmark_group("jpeg decoder handle");
    let small = image::load_from_memory(&inputs.jpeg).unwrap().thumbnail_exact(160, 120).into_rgb8();
    let small = turbojpeg_compressor()
        .compress_to_vec(turbojpeg::Image {
            pixels: small.as_raw().as_slice(),
            width: 160,
            pitch: 480,
            height: 120,
            format: turbojpeg::PixelFormat::RGB,
        })
        .unwrap();
    let decode_with = |decompressor: &mut turbojpeg::Decompressor, bytes: &[u8]| {
        let header = decompressor.read_header(bytes).unwrap();
        let mut pixels = vec![0u8; header.width * header.height * 3];
        let image = turbojpeg::Image {
            pixels: pixels.as_mut_slice(),
            width: header.width,
            pitch: header.width * 3,
            height: header.height,
            format: turbojpeg::PixelFormat::RGB,
        };
        decompressor.decompress(bytes, image).unwrap();
        pixels
    };
    for (name, bytes) in [("160x120", &small), ("2725x2225", &inputs.jpeg)] {
        let mut kept = turbojpeg::Decompressor::new().unwrap();
        group.bench_function(format!("{name} reused"), |b| b.iter(|| decode_with(&mut kept, black_box(bytes))));
        group.bench_function(format!("{name} new per image"), |b| {
            b.iter(|| decode_with(&mut turbojpeg::Decompressor::new().unwrap(), black_box(bytes)))
        });
    }
    group.bench_function("new handle alone", |b| b.iter(|| turbojpeg::Decompressor::new().unwrap()));
    group.finish();
}

fn bench_resize(c: &mut Criterion, inputs: &Inputs) {
    let mut group = c.benchmark_group("resize lanczos3");
    let full = decode_at(&inputs.jpeg, (2725, 2225));
    let half = decode_at(&inputs.jpeg, (720, 588));
    let rgba = decode_at(&inputs.png, (2048, 1536));
    group.bench_function("2725x2225 -> 720x588", |b| b.iter(|| resize::resize(black_box(&full), (720, 588), true)));
    group.bench_function("1363x1113 -> 720x588", |b| b.iter(|| resize::resize(black_box(&half), (720, 588), true)));
    group.bench_function("rgba 2048x1536 -> 1024x768", |b| {
        b.iter(|| resize::resize(black_box(&rgba), (1024, 768), false))
    });
    group.finish();
}

/// What a DONE record's extras cost: the placeholder from the 1024-wide rendition the default
/// preset makes it from, and a smart crop's window on the 314×256 image its thumb is cut from.
fn bench_extras(c: &mut Criterion, inputs: &Inputs) {
    use image::metadata::Orientation;
    use imgpipe_core::preset::Gravity;
    let mut group = c.benchmark_group("extras");
    let medium = resize::resize(&decode_at(&inputs.jpeg, (1024, 836)), (1024, 836), false).unwrap();
    group.bench_function("placeholder from 1024x836", |b| {
        b.iter(|| placeholder::of_image(black_box(&medium), Orientation::NoTransforms))
    });
    let full = resize::resize(&medium, (314, 256), false).unwrap();
    for gravity in [Gravity::Entropy, Gravity::Attention] {
        group.bench_function(format!("{} window 314x256 -> 256x256", gravity.as_str()), |b| {
            b.iter(|| gravity::window(black_box(&full), (256, 256), gravity))
        });
    }
    group.finish();
}

fn bench_watermark(c: &mut Criterion, inputs: &Inputs) {
    let mut group = c.benchmark_group("watermark");
    let medium = resize::resize(&decode_at(&inputs.jpeg, (1024, 836)), (1024, 836), false).unwrap();
    let text = Mark::Text { text: "© imgpipe".into(), color: Rgb::WHITE };
    let stamp = Stamp::new(
        Watermark { mark: text, position: Anchor::BottomRight, margin: 0.02, opacity: 0.5, scale: 0.25 },
        None,
    );
    stamp.apply(&mut medium.clone()); // render and cache the overlay
    group.bench_function("text on 1024x836 (cached overlay)", |b| {
        b.iter_batched_ref(|| medium.clone(), |image| stamp.apply(image), criterion::BatchSize::LargeInput)
    });
    group.finish();
}

fn bench_encode(c: &mut Criterion, inputs: &Inputs) {
    let mut group = c.benchmark_group("encode");
    let out = resize::resize(&decode_at(&inputs.jpeg, (720, 588)), (720, 588), true).unwrap();
    let thumb = resize::resize(&out, (256, 256), true).unwrap();
    let rgba = resize::resize(&decode_at(&inputs.png, (2048, 1536)), (512, 384), false).unwrap();
    group.bench_function("jpeg q80 720x588", |b| b.iter(|| encode::encode(black_box(&out), OutputFormat::Jpeg, 80)));
    group.bench_function("webp q80 256x256", |b| b.iter(|| encode::encode(black_box(&thumb), OutputFormat::Webp, 80)));
    group.bench_function("png rgba 512x384", |b| b.iter(|| encode::encode(black_box(&rgba), OutputFormat::Png, 80)));
    group.finish();

    // AVIF costs tens to hundreds of milliseconds per image: fewer samples. rav1e works on the
    // global rayon pool (every core), as in the kernel.
    let mut group = c.benchmark_group("encode avif");
    group.sample_size(10);
    for speed in [4, 6, 8] {
        group.bench_function(format!("q60 speed {speed} 256x256"), |b| {
            b.iter(|| encode::avif(black_box(&thumb), 60, speed, None))
        });
    }
    group.bench_function("q60 speed 6 720x588", |b| b.iter(|| encode::avif(black_box(&out), 60, 6, None)));
    group.finish();
}

fn bench_whole(c: &mut Criterion, inputs: &Inputs) {
    let mut group = c.benchmark_group("process");
    let default = Recipe::text_only(PresetCatalog::builtin().get("default").unwrap().clone()).unwrap();
    let sharp = recipe(SHARP_WORKLOAD_TOML, "sharp-bench");
    // The default preset with its thumb cropped by attention instead of at the centre.
    let attention = recipe(
        &imgpipe_core::preset::BUILTIN_TOML
            .replace("[presets.default]", "[presets.attention]")
            .replace(r#"fit = "cover","#, r#"fit = "cover", gravity = "attention","#),
        "attention",
    );
    let limits = Limits::default();
    let single = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    for (name, recipe, bytes) in [
        ("sharp workload (720x588 q80), jpeg", &sharp, &inputs.jpeg),
        ("default preset, jpeg", &default, &inputs.jpeg),
        ("default preset, display p3 jpeg", &default, &inputs.p3),
        ("default preset with attention crop, jpeg", &attention, &inputs.jpeg),
        ("default preset, progressive jpeg", &default, &inputs.progressive),
        ("default preset, png rgba", &default, &inputs.png),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| single.install(|| process(black_box(bytes), recipe, &limits).unwrap()))
        });
    }
    group.finish();
}

/// A 480×270 animated GIF of 20 frames, 80 ms each: a window panning across sharp's photo.
fn animated_gif(inputs: &Inputs) -> Vec<u8> {
    use image::codecs::gif::{GifEncoder, Repeat};
    let photo = resize::resize(&decode_at(&inputs.jpeg, (681, 556)), (681, 556), false).unwrap().into_rgba8();
    let mut out = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut out, 30);
        encoder.set_repeat(Repeat::Infinite).unwrap();
        for i in 0..20 {
            let frame = image::imageops::crop_imm(&photo, i * 10, i * 5, 480, 270).to_image();
            let delay = image::Delay::from_numer_denom_ms(80, 1);
            encoder.encode_frame(image::Frame::from_parts(frame, 0, 0, delay)).unwrap();
        }
    }
    out
}

fn bench_animation(c: &mut Criterion, inputs: &Inputs) {
    let mut group = c.benchmark_group("animation");
    group.sample_size(10);
    let gif = animated_gif(inputs);
    let rendition = |format: &str, animated: bool| {
        let toml = format!(
            "[presets.a]\nrenditions = [{{ name = \"a\", width = 240, format = \"{format}\", animated = {animated} }}]"
        );
        recipe(&toml, "a")
    };
    let limits = Limits::default();
    let single = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    for (name, recipe) in [
        ("gif 480x270x20 to animated webp 240w", rendition("webp", true)),
        ("gif 480x270x20 to animated gif 240w", rendition("gif", true)),
        ("gif 480x270x20 to still webp 240w (first frame)", rendition("webp", false)),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| single.install(|| process(black_box(&gif), &recipe, &limits).unwrap()))
        });
    }
    group.finish();
}

fn bench_batch(c: &mut Criterion, inputs: &Inputs) {
    const BATCH: usize = 8;
    let mut group = c.benchmark_group("batch of 8, default preset");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    let default = Recipe::text_only(PresetCatalog::builtin().get("default").unwrap().clone()).unwrap();
    let limits = Limits::default();
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut counts = vec![1];
    if all > 1 {
        counts.push(all);
    }
    for threads in counts {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        group.bench_with_input(BenchmarkId::new("threads", threads), &threads, |b, _| {
            b.iter(|| {
                pool.install(|| {
                    (0..BATCH).into_par_iter().map(|_| process(&inputs.jpeg, &default, &limits).unwrap()).count()
                })
            })
        });
    }
    group.finish();
}

fn kernel(c: &mut Criterion) {
    let inputs = inputs();
    bench_decode(c, &inputs);
    bench_decoder_handle(c, &inputs);
    bench_resize(c, &inputs);
    bench_extras(c, &inputs);
    bench_watermark(c, &inputs);
    bench_encode(c, &inputs);
    bench_whole(c, &inputs);
    bench_animation(c, &inputs);
    bench_batch(c, &inputs);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = kernel
}
criterion_main!(benches);
