//! The presets loader on moto (`IMGPIPE_MOTO_URL`), through the real S3 adapter: a file and its
//! logos load; a bad file, a missing object or a missing or non-PNG logo fails naming what is
//! wrong and where; a changed object is picked up after the refresh interval, and a change that
//! does not load leaves the last good presets served.

use adapters::aws::presets::{LoadedPresets, PresetsError, Refresh, WatchedPresets};
use adapters::aws::{S3ObjectStore, emulator};
use bytes::Bytes;
use imgpipe_core::PresetCatalog;
use imgpipe_core::ports::{ObjectMeta, ObjectStore};
use imgpipe_core::preset::Mark;
use std::convert::Infallible;
use std::time::Duration;

/// A 2x2 red PNG (RGBA).
const LOGO: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x02, 0x00, 0x00, 0x00, 0x02, 0x08, 0x06, 0x00, 0x00, 0x00, 0x72, 0xb6, 0x0d, 0x24, 0x00, 0x00, 0x00, 0x11, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0, 0x1f, 0x84, 0x19, 0x60, 0x0c, 0x00, 0x47, 0xca, 0x07,
    0xf9, 0x67, 0x59, 0x6e, 0xb7, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

const KEY: &str = "site/presets.toml";

/// A logo watermark preset and a text one; the logo path is relative to [`KEY`].
const PRESETS: &str = r##"
[presets.custom]
watermark = { image = "logos/mark.png", position = "bottom-right", opacity = 1.0, scale = 0.2 }
renditions = [
  { name = "small", width = 320, height = 240, fit = "cover", format = "png", watermark = true },
  { name = "tiny", width = 64, fit = "inside", format = "webp" },
]

[presets.caption]
watermark = { text = "hello", position = "top-left" }
renditions = [{ name = "card", width = 200, format = "jpeg", quality = 70, watermark = true }]
"##;

/// A fresh config bucket.
async fn bucket() -> S3ObjectStore {
    let config = emulator::config(&emulator::url_from_env()).await;
    let name = emulator::unique_name("config");
    emulator::create_bucket(&config, &name).await.unwrap();
    S3ObjectStore::new(&config, name)
}

async fn put(store: &S3ObjectStore, key: &str, bytes: &[u8]) {
    store.put(key, Bytes::copy_from_slice(bytes), &ObjectMeta::default()).await.unwrap();
}

/// The bucket with [`PRESETS`] at [`KEY`] and its logo.
async fn bucket_with_presets() -> S3ObjectStore {
    let store = bucket().await;
    put(&store, KEY, PRESETS.as_bytes()).await;
    put(&store, "site/logos/mark.png", LOGO).await;
    store
}

/// Keeps what was loaded as it is, to look at it.
fn as_loaded(presets: &LoadedPresets) -> Result<LoadedPresets, Infallible> {
    Ok(presets.clone())
}

async fn open(store: &S3ObjectStore, refresh: Duration) -> Result<WatchedPresets<LoadedPresets>, PresetsError> {
    WatchedPresets::open(store.clone(), KEY, refresh, as_loaded).await
}

fn names(presets: &WatchedPresets<LoadedPresets>) -> Vec<String> {
    presets.live().current().catalog.iter().map(|p| p.name.clone()).collect()
}

#[tokio::test]
async fn a_presets_object_loads_with_its_logos() {
    let store = bucket_with_presets().await;
    let presets = open(&store, Duration::from_secs(60)).await.unwrap();
    let loaded = presets.live().current();
    assert_eq!(names(&presets), ["caption", "custom", "default"], "the file's presets and the built-in default");
    let custom = loaded.catalog.get("custom").unwrap();
    let small = &custom.renditions[0];
    assert_eq!((small.name.as_str(), small.format.extension()), ("small", "png"));
    assert!(matches!(&custom.watermark.as_ref().unwrap().mark, Mark::Logo { path } if path == "logos/mark.png"));
    assert_eq!(loaded.logo("logos/mark.png").unwrap(), LOGO, "the logo, read relative to the presets key");
    let caption = loaded.catalog.get("caption").unwrap();
    assert!(matches!(&caption.watermark.as_ref().unwrap().mark, Mark::Text { text, .. } if text == "hello"));
    assert_eq!(presets.refresh().await, Refresh::NotDue, "checked at most every interval");
}

#[tokio::test]
async fn a_bad_file_fails_with_the_local_message_and_the_location() {
    let store = bucket().await;
    let bad = "[presets.a]\nrenditions = [\n  { name = \"x\", width = 10, format = \"png\", qualty = 3 },\n]\n";
    put(&store, KEY, bad.as_bytes()).await;
    let err = open(&store, Duration::ZERO).await.err().unwrap().to_string();
    let local = PresetCatalog::from_toml(bad).unwrap_err().to_string();
    assert_eq!(err, format!("presets s3://{}/{KEY}: {local}", store.bucket()));
    assert!(err.contains("qualty") && err.contains("line 3"), "{err}");
}

#[tokio::test]
async fn a_missing_object_fails_naming_it() {
    let store = bucket().await;
    let err = open(&store, Duration::ZERO).await.err().unwrap();
    assert!(matches!(err, PresetsError::Missing { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("s3://{}/{KEY}", store.bucket())), "{err}");
}

#[tokio::test]
async fn a_missing_or_non_png_logo_fails_naming_it() {
    let store = bucket().await;
    put(&store, KEY, PRESETS.as_bytes()).await;
    let err = open(&store, Duration::ZERO).await.err().unwrap();
    assert!(matches!(err, PresetsError::LogoMissing { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("\"logos/mark.png\"") && text.contains("site/logos/mark.png"), "{text}");

    put(&store, "site/logos/mark.png", b"GIF89a not a png").await;
    let err = open(&store, Duration::ZERO).await.err().unwrap();
    assert!(matches!(err, PresetsError::LogoNotPng { .. }), "{err:?}");
    assert!(err.to_string().contains("\"logos/mark.png\""), "{err}");

    let escapes = PRESETS.replace("logos/mark.png", "../../mark.png");
    put(&store, KEY, escapes.as_bytes()).await;
    let err = open(&store, Duration::ZERO).await.err().unwrap();
    assert!(matches!(err, PresetsError::LogoMissing { .. }) && err.to_string().contains("../../mark.png"), "{err}");
}

#[tokio::test]
async fn changes_load_after_the_interval_and_bad_ones_keep_the_last_good() {
    let store = bucket_with_presets().await;
    let presets = open(&store, Duration::ZERO).await.unwrap();
    let live = presets.live();
    assert_eq!(presets.refresh().await, Refresh::Unchanged);

    // A new preset: served after the next check.
    let added =
        format!("{PRESETS}\n[presets.later]\nrenditions = [{{ name = \"a\", width = 10, format = \"png\" }}]\n");
    put(&store, KEY, added.as_bytes()).await;
    assert_eq!(presets.refresh().await, Refresh::Reloaded);
    assert!(live.current().catalog.get("later").is_some(), "handed-out handles follow the reload");
    let good = live.current();

    // A broken change: logged, and the last good presets stay, whole.
    put(&store, KEY, b"[presets.later]\nrenditions = [{ name = \"a\", width = 0, format = \"png\" }]\n").await;
    assert_eq!(presets.refresh().await, Refresh::KeptLastGood);
    assert_eq!(live.current().catalog, good.catalog);
    assert_eq!(presets.refresh().await, Refresh::KeptLastGood, "retried at every check until it loads");

    // A file naming a logo uploaded after it: kept until the logo is there, then loaded.
    let new_logo = added.replace("logos/mark.png", "logos/new.png");
    put(&store, KEY, new_logo.as_bytes()).await;
    assert_eq!(presets.refresh().await, Refresh::KeptLastGood);
    put(&store, "site/logos/new.png", LOGO).await;
    assert_eq!(presets.refresh().await, Refresh::Reloaded);
    assert!(live.current().logo("logos/new.png").is_ok());

    // Only the logo's bytes change: the file's ETag is the same, the logo's is not.
    let mut other = LOGO.to_vec();
    other.extend_from_slice(b"trailing bytes after IEND");
    put(&store, "site/logos/new.png", &other).await;
    assert_eq!(presets.refresh().await, Refresh::Reloaded);
    assert_eq!(live.current().logo("logos/new.png").unwrap(), other);
    assert_eq!(presets.refresh().await, Refresh::Unchanged);
}

#[tokio::test]
async fn a_warm_function_checks_at_most_every_interval() {
    let store = bucket_with_presets().await;
    let presets = open(&store, Duration::from_secs(1)).await.unwrap();
    let added =
        format!("{PRESETS}\n[presets.later]\nrenditions = [{{ name = \"a\", width = 10, format = \"png\" }}]\n");
    put(&store, KEY, added.as_bytes()).await;
    assert_eq!(presets.refresh().await, Refresh::NotDue);
    assert!(!names(&presets).contains(&"later".to_owned()), "not before the interval");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(presets.refresh().await, Refresh::Reloaded);
    assert!(names(&presets).contains(&"later".to_owned()));
}

#[tokio::test]
async fn built_in_presets_need_no_bucket() {
    let presets = WatchedPresets::builtin(as_loaded).unwrap();
    assert_eq!(names(&presets), ["default"]);
    assert_eq!(presets.refresh().await, Refresh::Fixed);
}
