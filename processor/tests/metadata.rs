//! `keep_metadata`: renditions carry exactly the EXIF fields their preset keeps, in every output
//! format and on both kernel paths; orientation never; GPS only when named; broken EXIF costs the
//! metadata, not the image.

mod support;

use exif::{Field, In, Tag, Value};
use imgpipe_core::{Limits, OutputFormat};
use processor::{metadata, process};
use std::io::Cursor;

/// A 600×400 JPEG whose EXIF holds a copyright, an artist, a camera, a GPS position and
/// `orientation`.
fn photo(orientation: u16) -> Vec<u8> {
    let ascii =
        |tag, text: &str| Field { tag, ifd_num: In::PRIMARY, value: Value::Ascii(vec![text.as_bytes().to_vec()]) };
    let rational = |n: u32| exif::Rational { num: n, denom: 1 };
    let fields = [
        ascii(Tag::Copyright, "(c) Jane Doe 2026"),
        ascii(Tag::Artist, "Jane Doe"),
        ascii(Tag::Make, "Canon"),
        ascii(Tag::GPSLatitudeRef, "N"),
        Field {
            tag: Tag::GPSLatitude,
            ifd_num: In::PRIMARY,
            value: Value::Rational(vec![rational(48), rational(51), rational(29)]),
        },
        Field { tag: Tag::Orientation, ifd_num: In::PRIMARY, value: Value::Short(vec![orientation]) },
    ];
    let mut writer = exif::experimental::Writer::new();
    fields.iter().for_each(|f| writer.push_field(f));
    let mut tiff = Cursor::new(Vec::new());
    writer.write(&mut tiff, false).unwrap();
    let pixels = support::noisy(600, 400).into_rgb8();
    let jpeg = support::encode_with_image(&image::DynamicImage::ImageRgb8(pixels), image::ImageFormat::Jpeg);
    metadata::embed(jpeg, OutputFormat::Jpeg, &tiff.into_inner())
}

fn tags_of(bytes: &[u8]) -> Vec<Tag> {
    match exif::Reader::new().read_from_container(&mut Cursor::new(bytes)) {
        Ok(exif) => exif.fields().map(|f| f.tag).collect(),
        Err(_) => Vec::new(),
    }
}

fn preset(keep: &str, formats: &[&str]) -> processor::Recipe {
    let renditions: Vec<String> = formats
        .iter()
        .map(|f| format!("{{ name = \"{f}\", width = 300, fit = \"inside\", format = \"{f}\" }}"))
        .collect();
    let toml = format!("[presets.p]\nkeep_metadata = [{keep}]\nrenditions = [{}]", renditions.join(", "));
    support::recipe(&toml, "p")
}

#[test]
fn renditions_keep_exactly_the_named_fields_in_every_format() {
    let out =
        process(&photo(1), &preset(r#""copyright", "artist""#, &["jpeg", "png", "webp", "avif"]), &Limits::default())
            .unwrap();
    for rendition in &out.renditions {
        let tags = tags_of(&rendition.bytes);
        assert!(tags.contains(&Tag::Copyright) && tags.contains(&Tag::Artist), "{}: {tags:?}", rendition.name);
        for dropped in [Tag::Make, Tag::GPSLatitude, Tag::Orientation] {
            assert!(!tags.contains(&dropped), "{}: {dropped} kept in {tags:?}", rendition.name);
        }
        // Still a valid file of its format, of its size.
        let size = support::rendition_size(&rendition.bytes);
        assert_eq!(size, (rendition.width, rendition.height), "{}", rendition.name);
    }
    let exif = exif::Reader::new().read_from_container(&mut Cursor::new(&out.renditions[0].bytes)).unwrap();
    let copyright = exif.get_field(Tag::Copyright, In::PRIMARY).unwrap();
    assert_eq!(copyright.display_value().to_string(), "\"(c) Jane Doe 2026\"");
}

#[test]
fn gps_is_kept_only_when_named_and_on_the_ycbcr_path_too() {
    // A JPEG-only preset takes the YCbCr path.
    let out = process(&photo(1), &preset(r#""gps""#, &["jpeg"]), &Limits::default()).unwrap();
    let tags = tags_of(&out.renditions[0].bytes);
    assert!(tags.contains(&Tag::GPSLatitude) && tags.contains(&Tag::GPSLatitudeRef), "{tags:?}");
    assert!(!tags.contains(&Tag::Copyright), "{tags:?}");
    let everything_else = r#""copyright", "artist", "description", "camera", "date", "exposure""#;
    let out = process(&photo(1), &preset(everything_else, &["jpeg", "webp"]), &Limits::default()).unwrap();
    for rendition in &out.renditions {
        let tags = tags_of(&rendition.bytes);
        assert!(tags.contains(&Tag::Make) && !tags.contains(&Tag::GPSLatitude), "{}: {tags:?}", rendition.name);
    }
}

#[test]
fn orientation_is_never_kept_and_the_pixels_are_turned() {
    let out = process(&photo(6), &preset(r#""copyright""#, &["jpeg", "png"]), &Limits::default()).unwrap();
    for rendition in &out.renditions {
        assert_eq!((rendition.width, rendition.height), (300, 450), "{}", rendition.name);
        assert_eq!(tags_of(&rendition.bytes), [Tag::Copyright], "{}", rendition.name);
    }
}

#[test]
fn the_default_keeps_nothing_and_broken_exif_costs_only_the_metadata() {
    let out = process(&photo(1), &support::default_recipe(), &Limits::default()).unwrap();
    assert!(out.renditions.iter().all(|r| tags_of(&r.bytes).is_empty()));
    let out = process(&photo(1), &preset("", &["avif"]), &Limits::default()).unwrap();
    assert!(tags_of(&out.renditions[0].bytes).is_empty() && !out.renditions[0].bytes.windows(4).any(|w| w == b"Exif"));
    // An EXIF segment of garbage, then one whose directory points past its end.
    let jpeg = support::encode_with_image(&support::noisy(64, 64), image::ImageFormat::Jpeg);
    let mut cut = b"MM\0\x2a\0\0\0\x08\0\x05".to_vec();
    cut.extend_from_slice(&[0xFF; 20]);
    for tiff in [b"\x13\x37 not a tiff directory at all".to_vec(), cut] {
        let broken = metadata::embed(jpeg.clone(), OutputFormat::Jpeg, &tiff);
        let out = process(&broken, &preset(r#""copyright""#, &["jpeg", "png"]), &Limits::default()).unwrap();
        assert!(out.renditions.iter().all(|r| tags_of(&r.bytes).is_empty()));
    }
}
