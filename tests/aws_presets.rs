//! Custom presets on the emulated AWS stack (moto at `IMGPIPE_MOTO_URL`), as the two functions
//! wire them: a presets TOML with a PNG logo watermark and a text one sits in a config bucket;
//! the ingest `Router` (with its refresh layer) accepts uploads naming its presets and refuses
//! unknown ones; the processor's `ChunkService` makes the renditions the TOML describes, the
//! logo drawn in its corner; a change to the object reaches both after the refresh interval.

use adapters::aws::presets::{Refresh, WatchedPresets};
use adapters::aws::{DynamoMetadataStore, S3ObjectStore, emulator};
use bytes::Bytes;
use image::{AnimationDecoder, ImageFormat, Rgba, RgbaImage};
use imgpipe_core::OutputFormat;
use imgpipe_core::ports::{MetadataStore, ObjectMeta, ObjectStore};
use imgpipe_core::seams::{ChunkInput, ImageId, Status};
use ingest::aws::{catalog, refreshing_presets};
use processor::chunk::{ChunkService, Recipes};
use serde_json::{Value, json};
use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

const API_KEY: &str = "presets-test-key";
const KEY: &str = "site/presets.toml";
const LOGO_KEY: &str = "site/logos/mark.png";

/// `custom` draws the logo bottom-right on `small`; `plain` is the same renditions without it;
/// `caption` draws text.
const PRESETS: &str = r##"
[presets.custom]
watermark = { image = "logos/mark.png", position = "bottom-right", opacity = 1.0, scale = 0.2, margin = 0.02 }
renditions = [
  { name = "small", width = 320, height = 240, fit = "cover", format = "png", watermark = true },
  { name = "tiny", width = 64, fit = "inside", format = "webp" },
]

[presets.plain]
renditions = [
  { name = "small", width = 320, height = 240, fit = "cover", format = "png" },
  { name = "tiny", width = 64, fit = "inside", format = "webp" },
]

[presets.caption]
watermark = { text = "imgpipe", position = "top-left", opacity = 1.0, scale = 0.5 }
renditions = [
  { name = "card", width = 200, format = "jpeg", quality = 70, watermark = true },
  { name = "card-avif", width = 200, format = "avif", speed = 10, watermark = true },
]

[presets.motion]
renditions = [
  { name = "loop", width = 32, format = "webp", animated = true },
  { name = "poster", width = 32, format = "png" },
]
"##;

fn png(image: &RgbaImage) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, ImageFormat::Png).unwrap();
    bytes.into_inner()
}

/// A 640x480 gradient: every pixel differs from its neighbours, so a watermark shows.
fn photo() -> Vec<u8> {
    png(&RgbaImage::from_fn(640, 480, |x, y| Rgba([(x / 3) as u8, (y / 2) as u8, ((x + y) / 5) as u8, 255])))
}

/// A 64×48 GIF of 4 frames, each a solid grey a step lighter, 120 ms apiece.
fn animation() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut out);
        encoder.set_repeat(image::codecs::gif::Repeat::Infinite).unwrap();
        for level in [40u8, 90, 140, 190] {
            let pixels = RgbaImage::from_pixel(64, 48, Rgba([level, level, level, 255]));
            let delay = image::Delay::from_numer_denom_ms(120, 1);
            encoder.encode_frame(image::Frame::from_parts(pixels, 0, 0, delay)).unwrap();
        }
    }
    out
}

/// An opaque pure-blue logo.
fn logo() -> Vec<u8> {
    png(&RgbaImage::from_pixel(40, 40, Rgba([0, 0, 255, 255])))
}

/// The config, originals and processed buckets and the table, with names of their own.
struct Stack {
    config_bucket: S3ObjectStore,
    originals: S3ObjectStore,
    processed: S3ObjectStore,
    metadata: DynamoMetadataStore,
    table: String,
    sdk: aws_config::SdkConfig,
}

impl Stack {
    async fn create() -> Stack {
        let config = emulator::config(&emulator::url_from_env()).await;
        let names =
            [emulator::unique_name("config"), emulator::unique_name("originals"), emulator::unique_name("processed")];
        for name in &names {
            emulator::create_bucket(&config, name).await.unwrap();
        }
        let table = emulator::unique_name("records");
        emulator::create_table(&config, &table).await.unwrap();
        let [config_bucket, originals, processed] = names.map(|name| S3ObjectStore::new(&config, name));
        let metadata = DynamoMetadataStore::new(&config, &table);
        Stack { config_bucket, originals, processed, metadata, table, sdk: config }
    }

    async fn put_config(&self, key: &str, bytes: Vec<u8>) {
        self.config_bucket.put(key, Bytes::from(bytes), &ObjectMeta::default()).await.unwrap();
    }

    /// The ingest's presets and Router as its `main` builds them, on a loopback port.
    async fn serve_ingest(&self, refresh: Duration) -> String {
        let presets = Arc::new(WatchedPresets::open(self.config_bucket.clone(), KEY, refresh, catalog).await.unwrap());
        let config = ingest::aws::Config {
            originals_bucket: self.originals.bucket().to_owned(),
            processed_bucket: self.processed.bucket().to_owned(),
            metadata_table: self.table.clone(),
            api_key: API_KEY.into(),
        };
        let state = ingest::aws::state(&self.sdk, &config, presets.live());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = refreshing_presets(ingest::router(state), presets);
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        format!("http://{addr}")
    }

    /// The processor's presets and chunk service as its `main` builds them.
    async fn processor(&self, refresh: Duration) -> (WatchedPresets<Recipes>, ChunkService) {
        let presets =
            WatchedPresets::open(self.config_bucket.clone(), KEY, refresh, processor::lambda::recipes).await.unwrap();
        let config = processor::lambda::Config {
            threads: 2,
            ..processor::lambda::Config::new(self.originals.bucket(), self.processed.bucket(), &self.table)
        };
        let service = processor::lambda::service(&self.sdk, &config, presets.live()).unwrap();
        (presets, service)
    }

    /// Processes the originals of `ids` as one chunk; every image must end DONE.
    async fn process(&self, service: &ChunkService, ids: &[ImageId]) {
        let mut images = Vec::new();
        for id in ids {
            let record = self.metadata.get(*id).await.unwrap().unwrap();
            let info = self.originals.head(&record.source.key).await.unwrap();
            images.push(json!({"bucket": self.originals.bucket(), "key": record.source.key, "size": info.size, "etag": info.etag}));
        }
        let input: ChunkInput =
            serde_json::from_value(json!({"batch_id": emulator::unique_name("batch"), "images": images})).unwrap();
        let output = service.process(&input).await.unwrap();
        for outcome in &output.results {
            assert_eq!(outcome.status, Status::Done, "{outcome:?}");
        }
    }

    /// Rendition `name` of `id`: its record's (format, width, height), and its decoded pixels.
    async fn rendition(&self, id: ImageId, name: &str) -> ((OutputFormat, u32, u32), RgbaImage) {
        let record = self.metadata.get(id).await.unwrap().unwrap();
        let rendition = record.renditions.iter().find(|r| r.name == name).unwrap_or_else(|| panic!("no {name}"));
        let (bytes, _) = self.processed.get(&rendition.key).await.unwrap();
        let pixels = image::load_from_memory(&bytes).unwrap().to_rgba8();
        assert_eq!(pixels.dimensions(), (rendition.width, rendition.height), "{name}: record and bytes agree");
        ((rendition.format, rendition.width, rendition.height), pixels)
    }
}

async fn upload(client: &reqwest::Client, api: &str, preset: &str, bytes: Vec<u8>) -> reqwest::Response {
    client
        .post(format!("{api}/v1/images?preset={preset}"))
        .bearer_auth(API_KEY)
        .header("content-type", imgpipe_core::InputFormat::sniff_content_type(&bytes))
        .body(bytes)
        .send()
        .await
        .unwrap()
}

async fn accepted(client: &reqwest::Client, api: &str, preset: &str) -> ImageId {
    accepted_bytes(client, api, preset, photo()).await
}

async fn accepted_bytes(client: &reqwest::Client, api: &str, preset: &str, bytes: Vec<u8>) -> ImageId {
    let response = upload(client, api, preset, bytes).await;
    assert_eq!(response.status(), 202, "preset {preset}");
    let body: Value = response.json().await.unwrap();
    body["images"][0]["id"].as_str().unwrap().parse().unwrap()
}

/// The smallest box holding every pixel where `a` and `b` differ: (x0, y0, x1, y1), exclusive.
fn differing_box(a: &RgbaImage, b: &RgbaImage) -> Option<(u32, u32, u32, u32)> {
    let mut found: Option<(u32, u32, u32, u32)> = None;
    for (x, y, pixel) in a.enumerate_pixels() {
        if pixel != b.get_pixel(x, y) {
            let (x0, y0, x1, y1) = found.unwrap_or((x, y, x + 1, y + 1));
            found = Some((x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1)));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_presets_from_s3_make_their_renditions_with_the_logo() {
    let stack = Stack::create().await;
    stack.put_config(KEY, PRESETS.as_bytes().to_vec()).await;
    stack.put_config(LOGO_KEY, logo()).await;
    let api = stack.serve_ingest(Duration::from_secs(60)).await;
    let (_presets, service) = stack.processor(Duration::from_secs(60)).await;
    let client = reqwest::Client::new();

    let unknown = upload(&client, &api, "nope", photo()).await;
    assert_eq!(unknown.status(), 400);
    assert_eq!(unknown.json::<Value>().await.unwrap()["code"], "unknown_preset");

    let (custom, plain, caption) = (
        accepted(&client, &api, "custom").await,
        accepted(&client, &api, "plain").await,
        accepted(&client, &api, "caption").await,
    );
    let motion = accepted_bytes(&client, &api, "motion", animation()).await;
    stack.process(&service, &[custom, plain, caption, motion]).await;

    // The animated GIF stays animated in `loop` (4 frames, 120 ms each, each lighter), and
    // `poster` is its first frame.
    let record = stack.metadata.get(motion).await.unwrap().unwrap();
    let key = |name: &str| record.renditions.iter().find(|r| r.name == name).unwrap().key.clone();
    let (bytes, info) = stack.processed.get(&key("loop")).await.unwrap();
    assert_eq!(info.meta.content_type, "image/webp");
    let frames = image::codecs::webp::WebPDecoder::new(Cursor::new(bytes.to_vec())).unwrap().into_frames();
    let frames: Vec<(u8, u32)> = frames
        .map(|frame| {
            let frame = frame.unwrap();
            let (numer, denom) = frame.delay().numer_denom_ms();
            (frame.buffer().get_pixel(16, 12)[0], numer / denom)
        })
        .collect();
    assert_eq!(frames.iter().map(|f| f.1).collect::<Vec<_>>(), [120; 4]);
    assert!(frames.windows(2).all(|w| w[1].0 > w[0].0 + 30), "{frames:?}");
    assert_eq!(stack.rendition(motion, "poster").await.0, (OutputFormat::Png, 32, 24));

    // Sizes and formats as the TOML says.
    let (small, marked) = stack.rendition(custom, "small").await;
    assert_eq!(small, (OutputFormat::Png, 320, 240));
    assert_eq!(stack.rendition(custom, "tiny").await.0, (OutputFormat::Webp, 64, 48));
    assert_eq!(stack.rendition(caption, "card").await.0, (OutputFormat::Jpeg, 200, 150));
    let record = stack.metadata.get(caption).await.unwrap().unwrap();
    let avif = record.renditions.iter().find(|r| r.name == "card-avif").unwrap();
    assert_eq!((avif.format, avif.width, avif.height), (OutputFormat::Avif, 200, 150));
    let (bytes, info) = stack.processed.get(&avif.key).await.unwrap();
    assert_eq!((info.meta.content_type.as_str(), &bytes[4..12]), ("image/avif", &b"ftypavif"[..]));
    assert!(avif.key.ends_with("/card-avif.avif"), "{}", avif.key);
    let names: Vec<String> =
        stack.metadata.get(custom).await.unwrap().unwrap().renditions.into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["small", "tiny"]);

    // The logo: the same rendition without a watermark differs only in the bottom-right corner,
    // by a box as wide as scale x width (0.2 x 320 = 64), inset by the margin, and blue there.
    let (_, unmarked) = stack.rendition(plain, "small").await;
    let (x0, y0, x1, y1) = differing_box(&marked, &unmarked).expect("the logo changed some pixels");
    assert!(x0 >= 320 / 2 && y0 >= 240 / 2, "differences outside the bottom-right corner: {x0},{y0}..{x1},{y1}");
    assert!((60..=68).contains(&(x1 - x0)), "logo width {} for scale 0.2 of 320", x1 - x0);
    assert!(x1 <= 320 - 5 && y1 <= 240 - 5, "the margin is kept: {x1},{y1}");
    let centre = marked.get_pixel((x0 + x1) / 2, (y0 + y1) / 2);
    assert!(centre[2] > 240 && centre[0] < 15 && centre[1] < 15, "opaque blue logo, got {centre:?}");
    assert_eq!(
        stack.rendition(custom, "tiny").await.1,
        stack.rendition(plain, "tiny").await.1,
        "tiny has no watermark"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_presets_object_reaches_both_functions_and_a_broken_one_changes_nothing() {
    let stack = Stack::create().await;
    stack.put_config(KEY, PRESETS.as_bytes().to_vec()).await;
    stack.put_config(LOGO_KEY, logo()).await;
    let api = stack.serve_ingest(Duration::ZERO).await;
    let (presets, service) = stack.processor(Duration::ZERO).await;
    let client = reqwest::Client::new();
    assert_eq!(upload(&client, &api, "later", photo()).await.status(), 400, "not defined yet");

    let added =
        format!("{PRESETS}\n[presets.later]\nrenditions = [{{ name = \"wide\", width = 100, format = \"png\" }}]\n");
    stack.put_config(KEY, added.into_bytes()).await;
    let later = accepted(&client, &api, "later").await;
    assert_eq!(presets.refresh().await, Refresh::Reloaded, "the processor's check before its invocation");
    stack.process(&service, &[later]).await;
    assert_eq!(stack.rendition(later, "wide").await.0, (OutputFormat::Png, 100, 75));

    // A broken file (and a logo that is not a PNG): both keep serving the last good presets.
    stack
        .put_config(
            KEY,
            b"[presets.later]\nrenditions = [{ name = \"wide\", widht = 100, format = \"png\" }]\n".to_vec(),
        )
        .await;
    let still = accepted(&client, &api, "custom").await;
    assert_eq!(presets.refresh().await, Refresh::KeptLastGood);
    stack.put_config(KEY, PRESETS.as_bytes().to_vec()).await;
    stack.put_config(LOGO_KEY, b"not a png".to_vec()).await;
    assert_eq!(presets.refresh().await, Refresh::KeptLastGood);
    accepted(&client, &api, "later").await;
    stack.process(&service, &[still]).await;
    assert_eq!(stack.rendition(still, "small").await.0, (OutputFormat::Png, 320, 240));
}
