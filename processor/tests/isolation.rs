//! Nothing one input does changes what the next one gives.
//!
//! Every corpus file and every generated hostile file goes through the kernel on one thread (a
//! one-thread rayon pool, so decoding, resizing, watermarking and encoding all share that
//! thread's state), each followed by a good JPEG, PNG and WebP whose renditions must be
//! byte-identical to what a fresh thread makes of them. The hostile files are truncations at many
//! offsets and bit flips at many seeds, aimed at each format's headers and entropy data: JPEG DHT,
//! DQT, SOF, SOS and scan data; PNG IHDR, PLTE, tRNS, iCCP and IDAT (half of them with the chunk's
//! CRC repaired, so the damage reaches the decoder); GIF header, descriptors and LZW data; WebP
//! VP8, VP8L, VP8X, ALPH, ANIM and ANMF.

mod support;

use image::{DynamicImage, ImageEncoder, ImageFormat};
use imgpipe_core::{InputFormat, Limits};
use processor::{Recipe, process};
use std::ops::Range;
use support::Xorshift;

/// Bit-flip variants per region of each seed file.
const FLIPS_PER_REGION: u64 = 8;
/// Truncation points per seed file, besides the start of each region.
const CUTS_PER_FILE: usize = 12;

/// A named part of a file, where damage is aimed.
struct Region {
    name: String,
    range: Range<usize>,
}

/// One damaged input and how it was made.
struct Hostile {
    name: String,
    bytes: Vec<u8>,
}

/// A good input and the renditions a fresh thread makes of it.
struct Good {
    name: &'static str,
    bytes: Vec<u8>,
    expected: Vec<(String, Vec<u8>)>,
}

fn renditions(bytes: &[u8], recipe: &Recipe) -> Vec<(String, Vec<u8>)> {
    let output = process(bytes, recipe, &Limits::default()).expect("a good input is processed");
    output.renditions.into_iter().map(|r| (r.name, r.bytes)).collect()
}

fn one_thread_pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap()
}

/// The good inputs, each made into renditions by its own new thread and the default recipe.
fn goods() -> Vec<Good> {
    goods_for(&support::default_recipe())
}

/// The good JPEG, PNG and WebP, each made into renditions of `recipe` by its own new thread.
fn goods_for(recipe: &Recipe) -> Vec<Good> {
    let photo = support::noisy(120, 90);
    let webp = webp::Encoder::from_rgb(photo.as_bytes(), 120, 90).encode(80.0).to_vec();
    [
        ("jpeg", support::encode_with_image(&photo, ImageFormat::Jpeg)),
        ("png", support::encode_with_image(&photo, ImageFormat::Png)),
        ("webp", webp),
    ]
    .into_iter()
    .map(|(name, bytes)| good(name, bytes, recipe))
    .collect()
}

/// A good input and what a new thread makes of it with `recipe`.
fn good(name: &'static str, bytes: Vec<u8>, recipe: &Recipe) -> Good {
    let expected = one_thread_pool().install(|| renditions(&bytes, recipe));
    Good { name, bytes, expected }
}

fn turbo_jpeg(image: &DynamicImage, progressive: bool) -> Vec<u8> {
    let rgb = image.to_rgb8();
    let mut compressor = turbojpeg::Compressor::new().unwrap();
    compressor.set_quality(85).unwrap();
    compressor.set_progressive(progressive).unwrap();
    let (width, height) = (rgb.width() as usize, rgb.height() as usize);
    let pixels = turbojpeg::Image {
        pixels: rgb.as_raw().as_slice(),
        width,
        pitch: width * 3,
        height,
        format: turbojpeg::PixelFormat::RGB,
    };
    compressor.compress_to_vec(pixels).unwrap()
}

fn png_with_profile(image: &DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = image::codecs::png::PngEncoder::new(&mut out);
    let profile: Vec<u8> = (0..=255u8).cycle().take(600).collect();
    encoder.set_icc_profile(profile).unwrap();
    encoder.write_image(image.as_bytes(), image.width(), image.height(), image.color().into()).unwrap();
    out
}

/// The files damage starts from: generated ones of every codec path, and valid corpus files.
fn seed_files() -> Vec<(String, Vec<u8>)> {
    let photo = support::noisy(160, 120);
    let mut seeds = vec![
        ("turbo-baseline.jpg".to_owned(), turbo_jpeg(&photo, false)),
        ("turbo-progressive.jpg".to_owned(), turbo_jpeg(&photo, true)),
        ("image-rs.jpg".to_owned(), support::encode_with_image(&photo, ImageFormat::Jpeg)),
        ("profile.png".to_owned(), png_with_profile(&photo)),
        (
            "rgba.png".to_owned(),
            support::encode_with_image(&DynamicImage::ImageRgba8(photo.to_rgba8()), ImageFormat::Png),
        ),
        ("image-rs.gif".to_owned(), support::encode_with_image(&photo, ImageFormat::Gif)),
        ("lossless.webp".to_owned(), support::encode_with_image(&photo, ImageFormat::WebP)),
        ("lossy.webp".to_owned(), webp::Encoder::from_rgb(photo.as_bytes(), 160, 120).encode(75.0).to_vec()),
    ];
    let corpus = support::corpus();
    for path in [
        "jpeg/test.jpg",
        "jpeg/pil_sample_cmyk.jpg",
        "png-valid/basi2c08.png",
        "png-valid/tbbn3p08.png",
        "png-valid/basn6a16.png",
        "apng/chunk_no_fctl.png",
        "gif/interlaced.gif",
        "gif/any-disposal.gif",
        "webp/anim.webp",
        "webp/lossy_alpha.webp",
    ] {
        seeds.push((path.to_owned(), std::fs::read(corpus.join(path)).unwrap()));
    }
    seeds
}

/// JPEG segments by marker; each scan's entropy-coded data is a region of its own.
fn jpeg_regions(b: &[u8]) -> Vec<Region> {
    let mut regions = Vec::new();
    let mut at = 2;
    while at + 4 <= b.len() && b[at] == 0xFF {
        let marker = b[at + 1];
        if marker == 0xD9 {
            break;
        }
        let end = (at + 2 + usize::from(u16::from_be_bytes([b[at + 2], b[at + 3]]))).min(b.len());
        let name = match marker {
            0xC4 => "DHT",
            0xDB => "DQT",
            0xC0..=0xC3 => "SOF",
            0xDA => "SOS",
            0xDD => "DRI",
            0xE0..=0xEF => "APP",
            _ => "segment",
        };
        regions.push(Region { name: format!("{name}@{at}"), range: at..end });
        at = end;
        if marker == 0xDA {
            let start = at;
            while at + 1 < b.len() && !(b[at] == 0xFF && b[at + 1] != 0 && !(0xD0..=0xD7).contains(&b[at + 1])) {
                at += 1;
            }
            regions.push(Region { name: format!("scan data@{start}"), range: start..at });
        }
    }
    regions
}

/// PNG chunks by type (length, type, data and CRC).
fn png_regions(b: &[u8]) -> Vec<Region> {
    let mut regions = Vec::new();
    let mut at = 8;
    while at + 12 <= b.len() {
        let length = u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        let end = (at + 12).saturating_add(length).min(b.len());
        let kind = String::from_utf8_lossy(&b[at + 4..at + 8]).into_owned();
        regions.push(Region { name: format!("{kind}@{at}"), range: at..end });
        at = end;
    }
    regions
}

/// GIF: header and screen descriptor, then each extension and image (descriptor and LZW data).
fn gif_regions(b: &[u8]) -> Vec<Region> {
    let mut regions = vec![Region { name: "header".into(), range: 0..13.min(b.len()) }];
    let table = |flags: u8| if flags & 0x80 != 0 { 3usize << ((flags & 7) + 1) } else { 0 };
    let mut at = 13 + b.get(10).map_or(0, |&f| table(f));
    let skip_blocks = |mut at: usize| {
        while at < b.len() && b[at] != 0 {
            at += 1 + usize::from(b[at]);
        }
        (at + 1).min(b.len())
    };
    while at < b.len() {
        let start = at;
        match b[at] {
            0x21 => {
                at = skip_blocks(at + 2);
                regions.push(Region { name: format!("extension@{start}"), range: start..at });
            }
            0x2C if at + 10 <= b.len() => {
                at += 10 + table(b[at + 9]);
                regions.push(Region { name: format!("descriptor@{start}"), range: start..at });
                let data = at;
                at = skip_blocks(at + 1);
                regions.push(Region { name: format!("LZW data@{data}"), range: data..at });
            }
            _ => break,
        }
    }
    regions
}

/// WebP: the RIFF header and each chunk; an ANMF frame's own chunks too.
fn webp_regions(b: &[u8]) -> Vec<Region> {
    fn chunks(b: &[u8], mut at: usize, end: usize, regions: &mut Vec<Region>) {
        while at + 8 <= end {
            let kind = String::from_utf8_lossy(&b[at..at + 4]).trim().to_owned();
            let size = u32::from_le_bytes(b[at + 4..at + 8].try_into().unwrap()) as usize;
            let stop = (at + 8).saturating_add(size).min(end);
            regions.push(Region { name: format!("{kind}@{at}"), range: at..stop });
            // The bitstream headers (VP8: frame tag and size; VP8L: signature, size and flags).
            let header = match kind.as_str() {
                "VP8" => 10,
                "VP8L" => 5,
                _ => 0,
            };
            if header > 0 && at + 8 + header <= stop {
                regions.push(Region { name: format!("{kind} header@{at}"), range: at + 8..at + 8 + header });
            }
            if kind == "ANMF" && at + 24 <= stop {
                chunks(b, at + 24, stop, regions);
            }
            at = stop + (size & 1);
        }
    }
    let mut regions = vec![Region { name: "RIFF header".into(), range: 0..12.min(b.len()) }];
    chunks(b, 12, b.len(), &mut regions);
    regions
}

/// Flips 1 to 3 bits inside `region`; for a PNG chunk, every other variant repairs its CRC.
fn flip(bytes: &[u8], region: &Region, seed: u64, png: bool) -> Vec<u8> {
    let mut rng = Xorshift::new(seed);
    let mut damaged = bytes.to_vec();
    let Range { start, end } = region.range;
    // Keep a PNG chunk's length intact when the CRC is repaired, or there is nothing to repair.
    let repair = png && seed.is_multiple_of(2) && end - start > 12;
    let first = if repair { start + 4 } else { start };
    let last = if repair { end - 4 } else { end };
    for _ in 0..=rng.below(3) {
        damaged[first + rng.below(last - first)] ^= 1 << rng.below(8);
    }
    if repair {
        let crc = support::crc32(&damaged[start + 4..end - 4]);
        damaged[end - 4..end].copy_from_slice(&crc.to_be_bytes());
    }
    damaged
}

/// Truncations and aimed bit flips of every seed file of `formats`.
fn hostile_inputs(formats: &[InputFormat]) -> Vec<Hostile> {
    let mut hostile = Vec::new();
    for (index, (name, bytes)) in seed_files().into_iter().enumerate() {
        let format = InputFormat::sniff(&bytes).unwrap_or_else(|| panic!("{name} is not an image"));
        if !formats.contains(&format) {
            continue;
        }
        let regions = match format {
            InputFormat::Jpeg => jpeg_regions(&bytes),
            InputFormat::Png => png_regions(&bytes),
            InputFormat::Gif => gif_regions(&bytes),
            InputFormat::Webp => webp_regions(&bytes),
            other => panic!("no regions for {other:?}"),
        };
        assert!(regions.len() >= 3, "{name}: only {} regions found", regions.len());
        let mut cuts: Vec<usize> = (1..=CUTS_PER_FILE).map(|k| bytes.len() * k / (CUTS_PER_FILE + 1)).collect();
        cuts.extend(regions.iter().map(|r| r.range.start).filter(|&at| at > 0));
        cuts.sort_unstable();
        cuts.dedup();
        for at in cuts {
            hostile.push(Hostile { name: format!("{name} cut at {at}"), bytes: bytes[..at].to_vec() });
        }
        for region in regions.iter().filter(|r| !r.range.is_empty()) {
            for variant in 0..FLIPS_PER_REGION {
                let seed = (index as u64) << 32 | (region.range.start as u64) << 8 | variant;
                hostile.push(Hostile {
                    name: format!("{name} {} flip #{variant}", region.name),
                    bytes: flip(&bytes, region, seed, format == InputFormat::Png),
                });
            }
        }
    }
    hostile
}

/// Every corpus file, as it is.
fn corpus_inputs() -> Vec<Hostile> {
    let dir = support::corpus();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| {
            let path = file["path"].as_str().unwrap();
            Hostile { name: format!("corpus {path}"), bytes: std::fs::read(dir.join(path)).unwrap() }
        })
        .collect()
}

/// Runs each input then every good one on one kernel thread with one recipe, as a long-lived
/// worker does; returns what differed from a fresh thread's output, by the input that came before.
fn carry_over(inputs: &[Hostile], goods: &[Good], limits: &Limits, recipe: &Recipe) -> Vec<String> {
    let pool = one_thread_pool();
    let mut differences = Vec::new();
    pool.install(|| {
        for input in inputs {
            // The outcome itself is checked elsewhere (corpus and hostile tests); here only what it leaves.
            let _ = process(&input.bytes, recipe, limits);
            for good in goods {
                let got = match process(&good.bytes, recipe, &Limits::default()) {
                    Ok(output) => output.renditions.into_iter().map(|r| (r.name, r.bytes)).collect(),
                    Err(e) => vec![("error".to_owned(), e.to_string().into_bytes())],
                };
                if got != good.expected {
                    let detail =
                        got.first().map(|(n, b)| format!("{n}: {}", String::from_utf8_lossy(&b[..b.len().min(120)])));
                    differences.push(format!(
                        "the good {} after {}: {}",
                        good.name,
                        input.name,
                        detail.unwrap_or_default()
                    ));
                }
            }
        }
    });
    differences
}

/// Fails with the first carry-overs, if any.
fn assert_isolated(inputs: &[Hostile], limits: &Limits) {
    assert_isolated_before(inputs, &goods(), limits);
}

/// Fails with the first carry-overs onto `goods`, if any.
fn assert_isolated_before(inputs: &[Hostile], goods: &[Good], limits: &Limits) {
    assert_isolated_with(inputs, goods, limits, &support::default_recipe());
}

/// Fails with the first carry-overs onto `goods` (made with `recipe`), if any.
fn assert_isolated_with(inputs: &[Hostile], goods: &[Good], limits: &Limits, recipe: &Recipe) {
    let differences = carry_over(inputs, goods, limits, recipe);
    assert!(
        differences.is_empty(),
        "{} carry-overs, first ones:\n{}",
        differences.len(),
        differences[..differences.len().min(10)].join("\n")
    );
}

#[test]
fn the_generated_hostile_set_aims_at_every_header_and_entropy_data() {
    let inputs = hostile_inputs(&Limits::DEFAULT_FORMATS);
    let aims = [
        "DHT@",
        "DQT@",
        "SOF@",
        "SOS@",
        "scan data@",
        "IHDR@",
        "IDAT@",
        "iCCP@",
        "PLTE@",
        "tRNS@",
        "header",
        "descriptor@",
        "LZW data@",
        "VP8@",
        "VP8 header@",
        "VP8L@",
        "VP8L header@",
        "VP8X@",
        "ALPH@",
        "ANIM@",
        "ANMF@",
        " cut at ",
    ];
    for aim in aims {
        assert!(inputs.iter().any(|h| h.name.contains(aim)), "no hostile input aimed at {aim}");
    }
    assert!(inputs.len() > 1000, "only {} hostile inputs", inputs.len());
}

#[test]
fn no_damaged_jpeg_changes_the_next_images_output() {
    assert_isolated(&hostile_inputs(&[InputFormat::Jpeg]), &Limits::default());
}

#[test]
fn no_damaged_png_changes_the_next_images_output() {
    assert_isolated(&hostile_inputs(&[InputFormat::Png]), &Limits::default());
}

#[test]
fn no_damaged_gif_or_webp_changes_the_next_images_output() {
    assert_isolated(&hostile_inputs(&[InputFormat::Gif, InputFormat::Webp]), &Limits::default());
}

#[test]
fn no_corpus_file_changes_the_next_images_output() {
    // TIFF and BMP decoders run too: a deployment may accept them.
    let all = Limits { formats: InputFormat::ALL.to_vec(), ..Limits::default() };
    for limits in [Limits::default(), all] {
        assert_isolated(&corpus_inputs(), &limits);
    }
}

#[test]
fn no_damaged_animation_changes_the_next_images_output_when_animations_and_avif_are_made() {
    // A preset that takes the frame-by-frame path (animated WebP and GIF, a smart crop) and
    // encodes AVIF: the damaged GIFs and WebPs (ANIM and ANMF among them) and the corpus's
    // animations and bombs go through it, each followed by good stills and a good animation.
    let recipe = support::recipe(
        r#"[presets.motion]
        renditions = [
          { name = "loop", width = 48, format = "webp", animated = true },
          { name = "gif", width = 40, height = 40, fit = "cover", gravity = "attention", format = "gif", animated = true },
          { name = "avif", width = 48, format = "avif", speed = 10 },
        ]"#,
        "motion",
    );
    let mut goods = goods_for(&recipe);
    let frames: Vec<_> = [30u8, 120, 210]
        .iter()
        .map(|&level| {
            let mut frame = support::noisy(120, 90).into_rgba8();
            frame.pixels_mut().for_each(|p| p[0] = level);
            image::Frame::from_parts(frame, 0, 0, image::Delay::from_numer_denom_ms(90, 1))
        })
        .collect();
    let mut gif = Vec::new();
    image::codecs::gif::GifEncoder::new(&mut gif).encode_frames(frames).unwrap();
    goods.push(good("animated gif", gif, &recipe));
    let mut inputs = hostile_inputs(&[InputFormat::Gif, InputFormat::Webp]);
    inputs.extend(
        corpus_inputs().into_iter().filter(|h| {
            ["gif", "webp", "apng", "bombs"].iter().any(|dir| h.name.starts_with(&format!("corpus {dir}/")))
        }),
    );
    assert_isolated_with(&inputs, &goods, &Limits::default(), &recipe);
}

/// `image` as a JPEG or a PNG carrying `icc`.
fn tagged(image: &DynamicImage, icc: &[u8], format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    let (bytes, width, height, layout) = (image.as_bytes(), image.width(), image.height(), image.color().into());
    if format == ImageFormat::Jpeg {
        let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
        encoder.set_icc_profile(icc.to_vec()).unwrap();
        encoder.write_image(bytes, width, height, layout).unwrap();
    } else {
        let mut encoder = image::codecs::png::PngEncoder::new(&mut out);
        encoder.set_icc_profile(icc.to_vec()).unwrap();
        encoder.write_image(bytes, width, height, layout).unwrap();
    }
    out
}

#[test]
fn no_colour_profile_changes_the_next_images_output() {
    // The kernel remembers colour conversions per thread, by profile. Goods that go through
    // them (Display P3 and Adobe RGB, JPEG and PNG) must come out as a fresh thread makes them
    // after profiles that are damaged, cut, grey, near-copies of theirs, or a CMYK photo's.
    let photo = support::noisy(120, 90);
    let p3 = moxcms::ColorProfile::new_display_p3().encode().unwrap();
    let adobe = moxcms::ColorProfile::new_adobe_rgb().encode().unwrap();
    let mut goods = goods();
    for (name, icc, format) in [
        ("display p3 jpeg", &p3, ImageFormat::Jpeg),
        ("display p3 png", &p3, ImageFormat::Png),
        ("adobe rgb jpeg", &adobe, ImageFormat::Jpeg),
    ] {
        let bytes = tagged(&photo, icc, format);
        let expected = one_thread_pool().install(|| renditions(&bytes, &support::default_recipe()));
        goods.push(Good { name, bytes, expected });
    }
    // First, on the fresh thread: a valid profile of P3's length whose red differs, as a crafted
    // look-alike would be; remembered first, it must not be what the good P3 images get.
    let mut near_p3 = moxcms::ColorProfile::new_display_p3();
    near_p3.red_colorant.x += 0.05;
    let near_p3 = near_p3.encode().unwrap();
    assert_eq!(near_p3.len(), p3.len());
    let mut profiles: Vec<(String, Vec<u8>)> = vec![
        ("a look-alike of display p3".into(), near_p3),
        ("garbage".into(), (0..=255u8).cycle().take(600).collect()),
        ("grey".into(), moxcms::ColorProfile::new_gray_with_gamma(2.2).encode().unwrap()),
    ];
    for (name, icc) in [("p3", &p3), ("adobe", &adobe)] {
        for cut in [16, icc.len() / 2, icc.len() - 1] {
            profiles.push((format!("{name} cut at {cut}"), icc[..cut].to_vec()));
        }
        for seed in 0..24u64 {
            let mut flipped = icc.clone();
            let at = (seed as usize * 7919) % flipped.len();
            flipped[at] ^= 1 << (seed % 8);
            profiles.push((format!("{name} with byte {at} flipped"), flipped));
        }
    }
    let mut inputs: Vec<Hostile> = profiles
        .iter()
        .flat_map(|(name, icc)| {
            [ImageFormat::Jpeg, ImageFormat::Png]
                .map(|format| Hostile { name: format!("{name} in a {format:?}"), bytes: tagged(&photo, icc, format) })
        })
        .collect();
    let cmyk = support::fixture("Channel_digital_image_CMYK_color.jpg");
    inputs.push(Hostile { name: "the CMYK photo".into(), bytes: cmyk.clone() });
    inputs.push(Hostile { name: "the CMYK photo, cut".into(), bytes: cmyk[..cmyk.len() / 2].to_vec() });
    assert_isolated_before(&inputs, &goods, &Limits::default());
}
