//! The kernel under libFuzzer, with the isolation oracle: any input, then a good JPEG, PNG and
//! WebP on the same thread, whose renditions must be byte-identical to a fresh thread's. Any
//! panic that escapes `process`, any crash, hang or memory blow-up, and any carry-over from one
//! input to the next is a finding. A decoder panic that `process` catches (it ends the image as
//! `corrupt`, by contract) is not: libfuzzer-sys's hook would abort on it, so the default hook
//! is put back, and the oracle then checks the panic left nothing behind.

#![no_main]

use image::{DynamicImage, ImageFormat, RgbImage};
use imgpipe_core::{Limits, PresetCatalog};
use libfuzzer_sys::fuzz_target;
use processor::{Recipe, process};
use std::sync::LazyLock;

/// The default preset's shape (a cover WebP thumbnail, watermarked JPEGs) plus a PNG, at sizes
/// small enough for hundreds of runs a second: every encoder, the watermark and both resize
/// paths run on every good input.
const PRESETS: &str = r#"
[presets.fuzz]
watermark = { text = "© imgpipe", position = "bottom-right", opacity = 0.5, scale = 0.25, margin = 0.02 }
renditions = [
  { name = "thumb", width = 32, height = 32, fit = "cover", format = "webp" },
  { name = "medium", width = 64, fit = "inside", format = "jpeg", quality = 82, watermark = true },
  { name = "flat", width = 48, height = 48, fit = "exact", format = "png" },
]
"#;

fn recipe() -> Recipe {
    let catalog = PresetCatalog::from_toml(PRESETS).expect("the fuzz preset parses");
    Recipe::text_only(catalog.get("fuzz").expect("the fuzz preset").clone()).unwrap()
}

/// Renditions by name, or the error.
type Outcome = Result<Vec<(String, Vec<u8>)>, String>;

/// What the kernel makes of `bytes`.
fn outcome(bytes: &[u8], recipe: &Recipe) -> Outcome {
    process(bytes, recipe, &Limits::default())
        .map(|out| out.renditions.into_iter().map(|r| (r.name, r.bytes)).collect())
        .map_err(|e| e.to_string())
}

/// Small good inputs and what a fresh thread makes of each.
static GOODS: LazyLock<Vec<(Vec<u8>, Outcome)>> = LazyLock::new(|| {
    let photo = DynamicImage::ImageRgb8(RgbImage::from_fn(80, 60, |x, y| {
        image::Rgb([(x * 5 % 256) as u8, (y * 7 % 256) as u8, ((x * y) % 256) as u8])
    }));
    [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::WebP]
        .into_iter()
        .map(|format| {
            let mut bytes = std::io::Cursor::new(Vec::new());
            photo.write_to(&mut bytes, format).unwrap();
            let bytes = bytes.into_inner();
            let expected = std::thread::scope(|s| {
                s.spawn(|| one_thread_pool().install(|| outcome(&bytes, &recipe()))).join().unwrap()
            });
            assert!(expected.is_ok(), "a good {format:?} fails: {expected:?}");
            (bytes, expected)
        })
        .collect()
});

/// One recipe and one single-thread rayon pool for the whole run: every input shares its state.
static WORKER: LazyLock<(Recipe, rayon::ThreadPool)> = LazyLock::new(|| {
    // The standard hook instead of libfuzzer-sys's aborting one; a panic escaping this target
    // still aborts (libfuzzer-sys catches it and aborts).
    drop(std::panic::take_hook());
    (recipe(), one_thread_pool())
});

fn one_thread_pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap()
}

fuzz_target!(|data: &[u8]| {
    let goods = &*GOODS;
    let (recipe, pool) = &*WORKER;
    pool.install(|| {
        let _ = process(data, recipe, &Limits::default());
        for (bytes, expected) in goods {
            assert_eq!(&outcome(bytes, recipe), expected, "a good image changed after this input");
        }
    });
});
