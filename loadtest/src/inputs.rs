//! The bodies a run uploads, prepared before the clock starts: a folder read into memory, or
//! synthetic images encoded from the seed, plus the hostile inputs. Bodies are [`Bytes`], so
//! every upload of the same input shares one buffer.

use crate::config::{Inputs, Mode, Size};
use bytes::Bytes;
use image::{ImageFormat, RgbImage};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What an input is; hostile kinds must end FAILED with their [`InputKind::expected_failure`],
/// never DONE nor lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// A synthetic JPEG.
    Jpeg,
    /// A synthetic PNG.
    Png,
    /// A synthetic (lossless) WebP.
    Webp,
    /// A file of the corpus folder.
    File,
    /// A JPEG cut off halfway: its end of image and most of its scan are missing.
    TruncatedJpeg,
    /// Text bytes sent as an image.
    NotAnImage,
    /// A small baseline JPEG with the top bit of one code count flipped in a Huffman table
    /// (DHT): libjpeg-turbo reports "Bogus Huffman table definition".
    HuffmanFlippedJpeg,
    /// A small JPEG with a quantisation table (DQT) renumbered past the four that exist.
    QuantFlippedJpeg,
    /// A small JPEG whose frame header (SOF0) gives a component a zero sampling factor.
    FrameFlippedJpeg,
    /// A small PNG with one bit of its width or height flipped (IHDR), its CRC left stale.
    HeaderFlippedPng,
    /// A small PNG with a few bits flipped in its compressed pixels (IDAT), CRCs left stale.
    DataFlippedPng,
    /// A PNG cut off inside its pixel data.
    TruncatedPng,
    /// A small lossless WebP whose bitstream header (VP8L) claims an unknown version.
    VersionFlippedWebp,
    /// A WebP cut off inside its bitstream.
    TruncatedWebp,
}

impl InputKind {
    /// Every hostile kind, in the order the generator makes them.
    pub const HOSTILE: [InputKind; 10] = [
        InputKind::TruncatedJpeg,
        InputKind::NotAnImage,
        InputKind::HuffmanFlippedJpeg,
        InputKind::QuantFlippedJpeg,
        InputKind::FrameFlippedJpeg,
        InputKind::HeaderFlippedPng,
        InputKind::DataFlippedPng,
        InputKind::TruncatedPng,
        InputKind::VersionFlippedWebp,
        InputKind::TruncatedWebp,
    ];

    /// The snake_case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            InputKind::Jpeg => "jpeg",
            InputKind::Png => "png",
            InputKind::Webp => "webp",
            InputKind::File => "file",
            InputKind::TruncatedJpeg => "truncated_jpeg",
            InputKind::NotAnImage => "not_an_image",
            InputKind::HuffmanFlippedJpeg => "huffman_flipped_jpeg",
            InputKind::QuantFlippedJpeg => "quant_flipped_jpeg",
            InputKind::FrameFlippedJpeg => "frame_flipped_jpeg",
            InputKind::HeaderFlippedPng => "header_flipped_png",
            InputKind::DataFlippedPng => "data_flipped_png",
            InputKind::TruncatedPng => "truncated_png",
            InputKind::VersionFlippedWebp => "version_flipped_webp",
            InputKind::TruncatedWebp => "truncated_webp",
        }
    }

    /// Whether this input is made to fail.
    pub fn is_hostile(self) -> bool {
        self.expected_failure().is_some()
    }

    /// The error kind a hostile input must end FAILED with (`None` for regular inputs).
    pub fn expected_failure(self) -> Option<&'static str> {
        match self {
            InputKind::Jpeg | InputKind::Png | InputKind::Webp | InputKind::File => None,
            InputKind::NotAnImage => Some("unsupported"),
            _ => Some("corrupt"),
        }
    }
}

/// One body to upload.
#[derive(Debug, Clone)]
pub struct Input {
    /// The bytes (cheap to clone).
    pub bytes: Bytes,
    /// The declared content type.
    pub content_type: &'static str,
    /// What it is.
    pub kind: InputKind,
    /// A file name for bulk presign requests.
    pub name: String,
}

/// Why the inputs could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The corpus folder (or a file in it) could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The corpus folder holds no file.
    #[error("{0} holds no files")]
    Empty(PathBuf),
    /// A synthetic image could not be encoded.
    #[error("cannot encode a synthetic {format:?} image")]
    Encode {
        /// The format.
        format: ImageFormat,
        /// Why.
        #[source]
        source: image::ImageError,
    },
}

/// Which input one upload sends, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    /// Index into [`InputSet::inputs`].
    pub input: u32,
    /// Sent through a presigned URL rather than a direct POST.
    pub presigned: bool,
}

/// Every body of a run.
#[derive(Debug, Clone)]
pub struct InputSet {
    inputs: Vec<Input>,
    regular: Vec<u32>,
    hostile: Vec<u32>,
}

/// Distinct synthetic images made per size and format (so bodies differ without costing memory
/// per upload).
const VARIANTS: u64 = 3;

impl InputSet {
    /// Reads `Inputs::Corpus` or generates `Inputs::Synthetic` from `seed`, and adds the hostile
    /// inputs. Generation is CPU work: call it off the async runtime.
    pub fn prepare(inputs: &Inputs, seed: u64) -> Result<Self, InputError> {
        Self::prepare_all(std::slice::from_ref(inputs), seed)
    }

    /// [`InputSet::prepare`] over several sources (e.g. synthetic images and a few real photos),
    /// their inputs one after another.
    pub fn prepare_all(sources: &[Inputs], seed: u64) -> Result<Self, InputError> {
        let mut regular = Vec::new();
        for source in sources {
            regular.extend(match source {
                Inputs::Corpus(dir) => corpus(dir)?,
                Inputs::Synthetic(sizes) => synthetic(sizes, seed)?,
            });
        }
        let hostile = hostile_inputs(&regular, seed)?;
        let regular_ids = (0..regular.len() as u32).collect();
        let hostile_ids = (regular.len() as u32..(regular.len() + hostile.len()) as u32).collect();
        Ok(Self { inputs: regular.into_iter().chain(hostile).collect(), regular: regular_ids, hostile: hostile_ids })
    }

    /// The input at `index`.
    pub fn get(&self, index: u32) -> &Input {
        &self.inputs[index as usize]
    }

    /// Every input.
    pub fn inputs(&self) -> &[Input] {
        &self.inputs
    }

    /// The uploads of a run, deterministic in `seed`: which input each sends (a `hostile`
    /// fraction of them alternating over the hostile inputs) and whether it goes presigned.
    pub fn plan(&self, images: u64, hostile: f64, mode: Mode, seed: u64) -> Vec<Item> {
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x9e37_79b9_7f4a_7c15);
        let mut hostile_sent = 0usize;
        (0..images)
            .map(|_| {
                let input = if hostile > 0.0 && rng.f64() < hostile {
                    hostile_sent += 1;
                    self.hostile[(hostile_sent - 1) % self.hostile.len()]
                } else {
                    self.regular[rng.usize(..self.regular.len())]
                };
                let presigned = match mode {
                    Mode::Direct => false,
                    Mode::Presigned => true,
                    Mode::Mixed => rng.bool(),
                };
                Item { input, presigned }
            })
            .collect()
    }
}

fn synthetic(sizes: &[Size], seed: u64) -> Result<Vec<Input>, InputError> {
    let formats = [
        (ImageFormat::Jpeg, InputKind::Jpeg),
        (ImageFormat::Png, InputKind::Png),
        (ImageFormat::WebP, InputKind::Webp),
    ];
    let jobs: Vec<(Size, ImageFormat, InputKind, u64)> = sizes
        .iter()
        .flat_map(|&size| formats.iter().flat_map(move |&(f, k)| (0..VARIANTS).map(move |v| (size, f, k, v))))
        .collect();
    // Encoding big images takes a while: one thread per core.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(jobs.len()).max(1);
    let results: Vec<Result<Input, InputError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let jobs = &jobs;
                scope.spawn(move || {
                    jobs.iter()
                        .enumerate()
                        .filter(|(i, _)| i % threads == t)
                        .map(|(i, &(size, format, kind, variant))| {
                            let pixels = pixels(size, seed.wrapping_mul(1000).wrapping_add(i as u64));
                            let bytes = encode(pixels, format)?;
                            Ok((
                                i,
                                Input {
                                    bytes,
                                    content_type: content_type(format),
                                    kind,
                                    name: format!("synthetic-{size}-{variant}.{}", extension(format)),
                                },
                            ))
                        })
                        .collect::<Vec<Result<(usize, Input), InputError>>>()
                })
            })
            .collect();
        let mut all: Vec<Result<(usize, Input), InputError>> =
            handles.into_iter().flat_map(|h| h.join().expect("an encoder thread panicked")).collect();
        all.sort_by_key(|r| r.as_ref().map_or(0, |(i, _)| *i));
        all.into_iter().map(|r| r.map(|(_, input)| input)).collect()
    });
    results.into_iter().collect()
}

/// A smooth gradient with a few blocks and mild noise: compresses like a photo more than a flat
/// fill does, and differs per seed.
fn pixels(size: Size, seed: u64) -> RgbImage {
    let mut rng = fastrand::Rng::with_seed(seed);
    let base = [rng.u8(..), rng.u8(..), rng.u8(..)];
    let blocks: Vec<(u32, u32, u32, u32, [u8; 3])> = (0..6)
        .map(|_| {
            let (x, y) = (rng.u32(0..size.width), rng.u32(0..size.height));
            let (w, h) = (rng.u32(1..=size.width / 3 + 1), rng.u32(1..=size.height / 3 + 1));
            (x, y, w, h, [rng.u8(..), rng.u8(..), rng.u8(..)])
        })
        .collect();
    let (sw, sh) = (size.width.max(2) - 1, size.height.max(2) - 1);
    RgbImage::from_fn(size.width, size.height, |x, y| {
        let fill = blocks.iter().rev().find(|(bx, by, bw, bh, _)| x >= *bx && x < bx + bw && y >= *by && y < by + bh);
        let [r, g, b] = match fill {
            Some((.., colour)) => *colour,
            None => {
                let (fx, fy) = (x * 255 / sw, y * 255 / sh);
                [
                    base[0].wrapping_add(fx as u8),
                    base[1].wrapping_add(fy as u8),
                    base[2].wrapping_add(((fx + fy) / 2) as u8),
                ]
            }
        };
        let noise = rng.u8(..16);
        image::Rgb([r.saturating_add(noise), g.saturating_add(noise), b.saturating_add(noise)])
    })
}

fn encode(pixels: RgbImage, format: ImageFormat) -> Result<Bytes, InputError> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(pixels)
        .write_to(&mut out, format)
        .map_err(|source| InputError::Encode { format, source })?;
    Ok(Bytes::from(out.into_inner()))
}

fn content_type(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "image/jpeg",
        ImageFormat::Png => "image/png",
        ImageFormat::WebP => "image/webp",
        ImageFormat::Gif => "image/gif",
        ImageFormat::Tiff => "image/tiff",
        ImageFormat::Bmp => "image/bmp",
        _ => "application/octet-stream",
    }
}

fn extension(format: ImageFormat) -> &'static str {
    format.extensions_str().first().copied().unwrap_or("bin")
}

/// Every file under `dir` (hidden ones skipped), in path order, typed by its first bytes; `dir`
/// may also be a single file.
fn corpus(dir: &Path) -> Result<Vec<Input>, InputError> {
    let read_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InputError::Read { path, source }
    };
    let mut files = Vec::new();
    let hidden = |entry: &walkdir::DirEntry| entry.depth() > 0 && entry.file_name().to_string_lossy().starts_with('.');
    for entry in walkdir::WalkDir::new(dir).follow_links(true).into_iter().filter_entry(|e| !hidden(e)) {
        let entry =
            entry.map_err(|e| InputError::Read { path: e.path().unwrap_or(dir).to_path_buf(), source: e.into() })?;
        if !entry.file_type().is_dir() {
            files.push(entry.into_path());
        }
    }
    files.sort();
    let mut inputs = Vec::with_capacity(files.len());
    for path in files {
        let bytes = std::fs::read(&path).map_err(read_error(&path))?;
        if bytes.is_empty() {
            continue; // the API refuses empty bodies outright; they would only count as refusals
        }
        let content_type = image::guess_format(&bytes).map_or("application/octet-stream", content_type);
        let name = path.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
        inputs.push(Input { bytes: Bytes::from(bytes), content_type, kind: InputKind::File, name });
    }
    if inputs.is_empty() {
        return Err(InputError::Empty(dir.to_path_buf()));
    }
    Ok(inputs)
}

/// One input of each [`InputKind::HOSTILE`] kind: a JPEG cut in half (a regular one when there
/// is one), text posing as a PNG, and small synthetic JPEG, PNG and WebP images damaged where
/// decoders keep state (Huffman and quantisation tables, frame and image headers), or cut short.
/// Which table, bit and offset is damaged follows `seed`.
fn hostile_inputs(regular: &[Input], seed: u64) -> Result<Vec<Input>, InputError> {
    let small = |format| encode(pixels(Size { width: 160, height: 120 }, seed ^ 0x5eed), format);
    let (jpeg, png, webp) = (small(ImageFormat::Jpeg)?, small(ImageFormat::Png)?, small(ImageFormat::WebP)?);
    let big_jpeg = match regular.iter().find(|i| i.content_type == "image/jpeg" && i.bytes.len() > 1024) {
        Some(input) => input.bytes.clone(),
        None => jpeg.clone(),
    };
    let mut rng = fastrand::Rng::with_seed(seed ^ 0xbad_f00d);
    let text = Bytes::from_static(b"this is a text file, not an image; the pipeline must end it FAILED unsupported\n");
    let damaged = InputKind::HOSTILE
        .into_iter()
        .map(|kind| {
            let (bytes, content_type, name) = match kind {
                InputKind::TruncatedJpeg => (big_jpeg.slice(..big_jpeg.len() / 2), "image/jpeg", "truncated.jpg"),
                InputKind::NotAnImage => (text.clone(), "image/png", "not-an-image.png"),
                InputKind::HuffmanFlippedJpeg => (damage::huffman(&jpeg, &mut rng), "image/jpeg", "huffman.jpg"),
                InputKind::QuantFlippedJpeg => (damage::quantisation(&jpeg, &mut rng), "image/jpeg", "dqt.jpg"),
                InputKind::FrameFlippedJpeg => (damage::frame(&jpeg, &mut rng), "image/jpeg", "sof.jpg"),
                InputKind::HeaderFlippedPng => (damage::png_header(&png, &mut rng), "image/png", "ihdr.png"),
                InputKind::DataFlippedPng => (damage::png_data(&png, &mut rng), "image/png", "idat.png"),
                InputKind::TruncatedPng => (damage::png_cut(&png, &mut rng), "image/png", "truncated.png"),
                InputKind::VersionFlippedWebp => (damage::webp_version(&webp, &mut rng), "image/webp", "vp8l.webp"),
                InputKind::TruncatedWebp => (damage::webp_cut(&webp, &mut rng), "image/webp", "truncated.webp"),
                regular => unreachable!("{regular:?} is not hostile"),
            };
            Input { bytes, content_type, kind, name: name.into() }
        })
        .collect();
    Ok(damaged)
}

/// Damage done to well-formed images where it hurts: each function finds its segment, chunk or
/// field by walking the file's structure (so it lands there whatever the encoder wrote) and
/// panics when the structure is missing, which only a change of the synthetic encoder can cause.
mod damage {
    use bytes::Bytes;
    use std::ops::Range;

    /// The payloads (after the length) of every JPEG marker segment `marker` before the scan.
    pub(super) fn jpeg_segments(jpeg: &[u8], marker: u8) -> Vec<Range<usize>> {
        let mut found = Vec::new();
        let mut at = 2; // after SOI
        while at + 4 <= jpeg.len() && jpeg[at] == 0xFF {
            let kind = jpeg[at + 1];
            let end = at + 2 + usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
            if kind == marker {
                found.push(at + 4..end.min(jpeg.len()));
            }
            if kind == 0xDA {
                break; // the entropy-coded scan follows
            }
            at = end;
        }
        found
    }

    /// The data range of the first PNG chunk named `name`.
    pub(super) fn png_chunk(png: &[u8], name: &[u8; 4]) -> Range<usize> {
        let mut at = 8; // after the signature
        while at + 8 <= png.len() {
            let length = u32::from_be_bytes(png[at..at + 4].try_into().expect("4 bytes")) as usize;
            if &png[at + 4..at + 8] == name {
                return at + 8..at + 8 + length;
            }
            at += 12 + length;
        }
        panic!("the synthetic PNG has no {} chunk", String::from_utf8_lossy(name))
    }

    /// The data range of the first RIFF chunk `fourcc` of a WebP.
    pub(super) fn webp_chunk(webp: &[u8], fourcc: &[u8; 4]) -> Range<usize> {
        let mut at = 12; // after RIFF, its size and WEBP
        while at + 8 <= webp.len() {
            let length = u32::from_le_bytes(webp[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
            if &webp[at..at + 4] == fourcc {
                return at + 8..at + 8 + length;
            }
            at += 8 + length + (length & 1);
        }
        panic!("the synthetic WebP has no {} chunk", String::from_utf8_lossy(fourcc))
    }

    fn edited(bytes: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Bytes {
        let mut copy = bytes.to_vec();
        edit(&mut copy);
        Bytes::from(copy)
    }

    /// Flips the top bit of the count of codes of one length (1..=16) in one Huffman table:
    /// 128 codes more than the table holds symbols for.
    pub(super) fn huffman(jpeg: &[u8], rng: &mut fastrand::Rng) -> Bytes {
        let tables = jpeg_segments(jpeg, 0xC4);
        assert!(!tables.is_empty(), "the synthetic JPEG has no DHT segment");
        let table = &tables[rng.usize(..tables.len())];
        // The segment starts with the table's class and id, then its 16 code counts.
        let count = table.start + 1 + rng.usize(..16);
        edited(jpeg, |b| b[count] ^= 0x80)
    }

    /// Renumbers the first quantisation table to 4 or 8 (one bit of its id; JPEG has ids 0..=3).
    pub(super) fn quantisation(jpeg: &[u8], rng: &mut fastrand::Rng) -> Bytes {
        let table = jpeg_segments(jpeg, 0xDB).into_iter().next().expect("the synthetic JPEG has a DQT segment");
        let bit = if rng.bool() { 0x04 } else { 0x08 };
        edited(jpeg, |b| b[table.start] ^= bit)
    }

    /// Clears the horizontal sampling factor of one component in the frame header (its set
    /// bits flipped), which libjpeg-turbo refuses as bogus.
    pub(super) fn frame(jpeg: &[u8], rng: &mut fastrand::Rng) -> Bytes {
        let frame = jpeg_segments(jpeg, 0xC0).into_iter().next().expect("the synthetic JPEG is baseline (SOF0)");
        // Precision, height, width, component count; then id, sampling, table per component.
        let components = usize::from(jpeg[frame.start + 5]);
        let sampling = frame.start + 6 + 3 * rng.usize(..components) + 1;
        edited(jpeg, |b| b[sampling] &= 0x0F)
    }

    /// Flips the lowest bit of the width or the height in IHDR, leaving its CRC stale.
    pub(super) fn png_header(png: &[u8], rng: &mut fastrand::Rng) -> Bytes {
        let header = png_chunk(png, b"IHDR");
        let field = if rng.bool() { header.start + 3 } else { header.start + 7 };
        edited(png, |b| b[field] ^= 0x01)
    }

    /// Flips one to three bits in the first IDAT's compressed data, leaving its CRC stale.
    pub(super) fn png_data(png: &[u8], rng: &mut fastrand::Rng) -> Bytes {
        let data = png_chunk(png, b"IDAT");
        let flips = rng.usize(1..=3);
        edited(png, |b| {
            for _ in 0..flips {
                b[rng.usize(data.clone())] ^= 1 << rng.u8(..8);
            }
        })
    }

    /// Cuts the PNG somewhere in its first IDAT.
    pub(super) fn png_cut(png: &[u8], rng: &mut fastrand::Rng) -> Bytes {
        let data = png_chunk(png, b"IDAT");
        Bytes::copy_from_slice(&png[..rng.usize(data.start + 1..data.end)])
    }

    /// Sets one of the three version bits of the VP8L header (only version 0 exists).
    pub(super) fn webp_version(webp: &[u8], rng: &mut fastrand::Rng) -> Bytes {
        let bitstream = webp_chunk(webp, b"VP8L");
        // Signature byte, then 14 bits width - 1, 14 bits height - 1, alpha, 3 version bits.
        let version_bit = 0x20 << rng.u8(..3);
        edited(webp, |b| b[bitstream.start + 4] |= version_bit)
    }

    /// Cuts the WebP somewhere in the second half of its bitstream.
    pub(super) fn webp_cut(webp: &[u8], rng: &mut fastrand::Rng) -> Bytes {
        let bitstream = webp_chunk(webp, b"VP8L");
        let middle = bitstream.start + bitstream.len() / 2;
        Bytes::copy_from_slice(&webp[..rng.usize(middle..bitstream.end)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> InputSet {
        InputSet::prepare(&Inputs::Synthetic(vec![Size { width: 48, height: 32 }]), 7).unwrap()
    }

    #[test]
    fn synthetic_inputs_decode_as_what_they_claim_and_are_deterministic() {
        let set = small();
        let regular: Vec<&Input> = set.inputs().iter().filter(|i| !i.kind.is_hostile()).collect();
        assert_eq!(regular.len(), 3 * VARIANTS as usize);
        for input in &regular {
            let decoded = image::load_from_memory(&input.bytes).unwrap();
            assert_eq!((decoded.width(), decoded.height()), (48, 32));
            assert_eq!(content_type(image::guess_format(&input.bytes).unwrap()), input.content_type);
        }
        let again = small();
        assert!(set.inputs().iter().zip(again.inputs()).all(|(a, b)| a.bytes == b.bytes));
        // Variants differ from one another.
        assert_ne!(regular[0].bytes, regular[1].bytes);
    }

    #[test]
    fn hostile_inputs_are_one_of_each_kind_damaged_where_they_say() {
        let set = small();
        let find = |kind| &set.inputs().iter().find(|i| i.kind == kind).unwrap().bytes;
        let kinds: Vec<InputKind> = set.inputs().iter().map(|i| i.kind).filter(|k| k.is_hostile()).collect();
        assert_eq!(kinds, InputKind::HOSTILE);
        // Lenient decoders fill a cut scan with grey, so check the shape rather than decode:
        // a JPEG's start without its end-of-image marker (libjpeg-turbo calls that corrupt).
        let cut = find(InputKind::TruncatedJpeg);
        assert!(cut.starts_with(&[0xFF, 0xD8]) && !cut.ends_with(&[0xFF, 0xD9]), "{:?}", &cut[cut.len() - 2..]);
        assert!(image::load_from_memory(find(InputKind::NotAnImage)).is_err());
        assert!(image::guess_format(find(InputKind::NotAnImage)).is_err());

        // Each damaged file differs from its source in the segment or chunk it names, only there.
        let source = |format| encode(pixels(Size { width: 160, height: 120 }, 7 ^ 0x5eed), format).unwrap();
        let (jpeg, png, webp) = (source(ImageFormat::Jpeg), source(ImageFormat::Png), source(ImageFormat::WebP));
        let differing = |a: &[u8], b: &[u8]| -> Vec<usize> { (0..a.len()).filter(|&i| a[i] != b[i]).collect() };
        let within = |kind, source: &Bytes, ranges: Vec<std::ops::Range<usize>>| {
            let damaged = find(kind);
            let changed = differing(source, damaged);
            assert!(!changed.is_empty(), "{kind:?} changed nothing");
            assert!(
                changed.iter().all(|i| ranges.iter().any(|r| r.contains(i))),
                "{kind:?}: {changed:?} vs {ranges:?}"
            );
        };
        within(InputKind::HuffmanFlippedJpeg, &jpeg, damage::jpeg_segments(&jpeg, 0xC4));
        within(InputKind::QuantFlippedJpeg, &jpeg, damage::jpeg_segments(&jpeg, 0xDB));
        within(InputKind::FrameFlippedJpeg, &jpeg, damage::jpeg_segments(&jpeg, 0xC0));
        within(InputKind::HeaderFlippedPng, &png, vec![damage::png_chunk(&png, b"IHDR")]);
        within(InputKind::DataFlippedPng, &png, vec![damage::png_chunk(&png, b"IDAT")]);
        within(InputKind::VersionFlippedWebp, &webp, vec![damage::webp_chunk(&webp, b"VP8L")]);
        for (kind, source) in [(InputKind::TruncatedPng, &png), (InputKind::TruncatedWebp, &webp)] {
            let cut = find(kind);
            assert!(cut.len() < source.len() && source.starts_with(cut), "{kind:?}");
        }
        // One bit in the Huffman table: the top bit of a code count.
        let huffman = differing(&jpeg, find(InputKind::HuffmanFlippedJpeg));
        assert_eq!(huffman.len(), 1);
        assert_eq!(jpeg[huffman[0]] ^ find(InputKind::HuffmanFlippedJpeg)[huffman[0]], 0x80);
    }

    #[test]
    fn plans_follow_the_mode_and_the_hostile_fraction() {
        let set = small();
        let plan = set.plan(2000, 0.1, Mode::Mixed, 3);
        assert_eq!(plan, set.plan(2000, 0.1, Mode::Mixed, 3), "same seed, same plan");
        let hostile = plan.iter().filter(|i| set.get(i.input).kind.is_hostile()).count();
        assert!((150..250).contains(&hostile), "{hostile} hostile of 2000 at 10%");
        let presigned = plan.iter().filter(|i| i.presigned).count();
        assert!((900..1100).contains(&presigned), "{presigned} presigned of 2000 mixed");
        assert!(
            set.plan(100, 0.0, Mode::Direct, 3).iter().all(|i| !i.presigned && !set.get(i.input).kind.is_hostile())
        );
        assert!(set.plan(100, 0.0, Mode::Presigned, 3).iter().all(|i| i.presigned));
    }

    #[test]
    fn a_corpus_folder_is_read_recursively_and_typed_by_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("nested")).unwrap();
        let png = encode(pixels(Size { width: 8, height: 8 }, 1), ImageFormat::Png).unwrap();
        std::fs::write(dir.path().join("nested/a.jpg"), &png).unwrap(); // a PNG named .jpg
        std::fs::write(dir.path().join("b.txt"), b"hello").unwrap();
        std::fs::write(dir.path().join(".hidden"), b"skip me").unwrap();
        let set = InputSet::prepare(&Inputs::Corpus(dir.path().to_path_buf()), 1).unwrap();
        let files: Vec<(&str, &str)> = set
            .inputs()
            .iter()
            .filter(|i| i.kind == InputKind::File)
            .map(|i| (i.name.as_str(), i.content_type))
            .collect();
        assert_eq!(files, vec![("b.txt", "application/octet-stream"), ("a.jpg", "image/png")]);
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(InputSet::prepare(&Inputs::Corpus(empty.path().into()), 1), Err(InputError::Empty(_))));
    }
}
