//! The colour-management choice, measured: moxcms (what the kernel uses) against Little CMS 2
//! (lcms2), converting the same Display P3 and Adobe RGB pixels to sRGB, relative colorimetric,
//! 8-bit, on one thread. The pixels are sharp's photo at 1024×836 (a rendition's size) and at full
//! size (2725×2225: what a JPEG decodes to when a rendition needs every pixel).
//!
//! `cargo bench -p benches --features lcms2 --bench colour`

use benches::{SHARP_BENCH_IMAGE, read_fixture};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;

fn colour(c: &mut Criterion) {
    let photo = image::load_from_memory(&read_fixture(SHARP_BENCH_IMAGE).unwrap()).unwrap();
    let sizes = [
        ("1024x836", photo.resize(1024, 836, image::imageops::FilterType::Triangle).into_rgb8()),
        ("2725x2225", photo.into_rgb8()),
    ];
    let spaces =
        [("display-p3", moxcms::ColorProfile::new_display_p3()), ("adobe-rgb", moxcms::ColorProfile::new_adobe_rgb())];
    let mut group = c.benchmark_group("to srgb");
    for (space, profile) in &spaces {
        let icc = profile.encode().unwrap();
        let options = moxcms::TransformOptions {
            rendering_intent: moxcms::RenderingIntent::RelativeColorimetric,
            ..Default::default()
        };
        let srgb = moxcms::ColorProfile::new_srgb();
        let parsed = moxcms::ColorProfile::new_from_slice(&icc).unwrap();
        let mox = parsed.create_transform_8bit(moxcms::Layout::Rgb, &srgb, moxcms::Layout::Rgb, options).unwrap();
        let little = lcms2::Transform::<[u8; 3], [u8; 3]>::new(
            &lcms2::Profile::new_icc(&icc).unwrap(),
            lcms2::PixelFormat::RGB_8,
            &lcms2::Profile::new_srgb(),
            lcms2::PixelFormat::RGB_8,
            lcms2::Intent::RelativeColorimetric,
        )
        .unwrap();
        for (size, pixels) in &sizes {
            group.throughput(Throughput::Elements(u64::from(pixels.width() * pixels.height())));
            let mut out = vec![0u8; pixels.as_raw().len()];
            group.bench_function(format!("moxcms {space} {size}"), |b| {
                b.iter(|| mox.transform(black_box(pixels.as_raw()), &mut out).unwrap())
            });
            let src: Vec<[u8; 3]> = pixels.pixels().map(|p| p.0).collect();
            let mut dst = vec![[0u8; 3]; src.len()];
            group.bench_function(format!("lcms2 {space} {size}"), |b| {
                b.iter(|| little.transform_pixels(black_box(&src), &mut dst))
            });
            // Same answers, or the race means nothing: within one level on 99.9% of the channels.
            mox.transform(pixels.as_raw(), &mut out).unwrap();
            little.transform_pixels(&src, &mut dst);
            let off = out.iter().zip(dst.iter().flatten()).filter(|(a, b)| a.abs_diff(**b) > 1).count();
            assert!(off * 1000 <= out.len(), "{space} {size}: {off} of {} channels differ by more than 1", out.len());
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = colour
}
criterion_main!(benches);
