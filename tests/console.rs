//! The web console in a real browser: `imgpipe serve` (the real binary) on a free port, driven by
//! Debian's headless chromium through playwright-core (`tests/console/drive.mjs`; both are
//! installed by `./scripts/setup`). Each test is one scenario of the driver.
//!
//! `IMGPIPE_CONSOLE_SCREENSHOT=PATH` keeps the gallery's screenshot there (the README's is
//! `docs/console.png`).

#[path = "support/server.rs"]
mod server;
mod support;

use serde_json::{Value, json};
use server::Server;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Runs one scenario of the driver against `base`; panics with its output when a check failed.
fn drive(scenario: &str, base: &str, args: Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed in {}: run ./scripts/setup",
        dir.display()
    );
    assert!(Path::new("/usr/bin/chromium").exists(), "no /usr/bin/chromium: run ./scripts/setup");
    let output = Command::new("node")
        .current_dir(&dir)
        .args(["drive.mjs", scenario, base, &args.to_string()])
        .output()
        .expect("node runs (Node.js 18 or later)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "console {scenario} failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("console {scenario}: ok")), "{stdout}");
}

/// A distinct photo-like JPEG (or PNG) per index.
fn image_bytes(n: u32, format: image::ImageFormat) -> Vec<u8> {
    let (width, height) = (480 + 40 * n, 360 + 20 * n);
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        let t = n * 23;
        image::Rgb([((x * 255 / width) + t) as u8, ((y * 255 / height) + 2 * t) as u8, (128 + 40 * n) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(image).write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_owned()
}

const HOSTILE: &str = "<img src=x onerror=alert(1)>.png";

#[test]
fn twelve_files_through_the_page_end_as_ten_thumbnails_and_two_failures() {
    let files = tempfile::tempdir().unwrap();
    // Five real photos from the shared fixtures (CMYK, alpha, a gain map among them) and five made here.
    let fixtures = support::shared("IMGPIPE_FIXTURES", "fixtures");
    let photos = [
        "2569067123_aca715a2ee_o.jpg",
        "Channel_digital_image_CMYK_color.jpg",
        "alpha-premultiply-2048x1536-paper.png",
        "gain-map.jpg",
    ];
    let mut paths: Vec<String> = photos.iter().map(|name| fixtures.join(name).to_str().unwrap().to_owned()).collect();
    let hostile = std::fs::read(fixtures.join("gradients-rgb8.png")).unwrap();
    paths.push(write(files.path(), HOSTILE, &hostile));
    for n in 0..5 {
        let (format, extension) =
            if n % 3 == 0 { (image::ImageFormat::Png, "png") } else { (image::ImageFormat::Jpeg, "jpg") };
        paths.push(write(files.path(), &format!("photo-{n:02}.{extension}"), &image_bytes(n, format)));
    }
    // Broken: a JPEG cut short (presigned as image/jpeg, fails in the decoder), and a text file
    // (a type no slot takes: uploaded directly, fails as unsupported).
    let jpeg = image_bytes(10, image::ImageFormat::Jpeg);
    paths.push(write(files.path(), "cut-short.jpg", &jpeg[..jpeg.len() / 3]));
    paths.push(write(files.path(), "notes.txt", b"not an image at all\n"));

    let server = Server::in_temp_dir();
    let screenshot = std::env::var("IMGPIPE_CONSOLE_SCREENSHOT")
        .ok()
        .map(PathBuf::from)
        .map(|path| if path.is_absolute() { path } else { Path::new(env!("CARGO_MANIFEST_DIR")).join(path) });
    let screenshot = screenshot.unwrap_or_else(|| files.path().join("gallery.png"));
    let args = json!({
        "files": paths,
        "done": 10,
        "failed": ["corrupt", "unsupported"],
        "hostile": HOSTILE,
        "screenshot": screenshot,
    });
    drive("upload", &server.base, args);
    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "the gallery screenshot is a PNG");
}

#[test]
fn the_page_asks_for_the_api_key_once_and_keeps_it_for_the_tab_and_takes_drops_and_folders() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--api-key", "console-s3cret"]);
    let files = tempfile::tempdir().unwrap();
    let photo = write(files.path(), "one.jpg", &image_bytes(1, image::ImageFormat::Jpeg));
    let folder = files.path().join("holiday");
    std::fs::create_dir(&folder).unwrap();
    write(&folder, "a.jpg", &image_bytes(2, image::ImageFormat::Jpeg));
    write(&folder, "b.png", &image_bytes(3, image::ImageFormat::Png));
    let args = json!({
        "key": "console-s3cret",
        "files": [photo],
        "folder": folder,
        "folder_files": ["holiday/a.jpg", "holiday/b.png"],
    });
    drive("key", &server.base, args);
}

#[tokio::test(flavor = "multi_thread")]
async fn sixty_images_page_through_the_gallery() {
    let server = Server::in_temp_dir();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut form = reqwest::multipart::Form::new();
    for n in 0..60 {
        let bytes = image_bytes(n % 12, image::ImageFormat::Jpeg);
        form = form.part("file", reqwest::multipart::Part::bytes(bytes).file_name(format!("image-{n:02}.jpg")));
    }
    let response = client.post(format!("{}/v1/images", server.base)).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), 202);
    let base = server.base.clone();
    tokio::task::spawn_blocking(move || drive("pages", &base, json!({ "sizes": [24, 24, 12], "total": 60 })))
        .await
        .unwrap();
}
