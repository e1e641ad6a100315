//! `imgpipe serve` as a user runs it: the real binary on a free port over a temp data dir.
//! The shared corpus through the API, a SIGKILL in the middle of 300 uploads, and every event
//! delivered twice: every accepted image ends DONE or FAILED exactly once, nothing is orphaned.

#[path = "support/server.rs"]
mod server;
mod support;

use adapters::local::LocalBackend;
use imgpipe_core::event::S3Notification;
use imgpipe_core::ports::{EventQueue, MetadataStore, ObjectStore};
use imgpipe_core::seams::{ImageId, ObjectRef, Status};
use serde_json::Value;
use server::Server;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

async fn upload(client: &reqwest::Client, base: &str, bytes: Vec<u8>) -> Option<String> {
    let response = client.post(format!("{base}/v1/images")).body(bytes).send().await.ok()?;
    if response.status() != 202 {
        return None;
    }
    let body: Value = response.json().await.ok()?;
    Some(body["images"][0]["id"].as_str()?.to_owned())
}

async fn wait_all_final(client: &reqwest::Client, base: &str, ids: &[String]) -> BTreeMap<String, Value> {
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut records = BTreeMap::new();
    while records.len() < ids.len() {
        assert!(Instant::now() < deadline, "{} of {} images never finished", ids.len() - records.len(), ids.len());
        let waiting: Vec<&String> = ids.iter().filter(|id| !records.contains_key(*id)).collect();
        for id in waiting {
            let record: Value =
                client.get(format!("{base}/v1/images/{id}")).send().await.unwrap().json().await.unwrap();
            if record["status"] == "DONE" || record["status"] == "FAILED" {
                records.insert(id.clone(), record);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    records
}

#[tokio::test(flavor = "multi_thread")]
async fn the_corpus_through_the_api_ends_as_the_manifest_expects() {
    let corpus = support::shared("IMGPIPE_CORPUS", "corpus");
    let manifest: Value = serde_json::from_slice(&std::fs::read(corpus.join("manifest.json")).unwrap()).unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--max-bytes", "26214400"]);
    let client = client();
    let mut expected = BTreeMap::new();
    for file in manifest["files"].as_array().unwrap() {
        let bytes = std::fs::read(corpus.join(file["path"].as_str().unwrap())).unwrap();
        let id = upload(&client, &server.base, bytes).await.unwrap_or_else(|| panic!("{} was refused", file["path"]));
        expected.insert(id, file.clone());
    }
    let ids: Vec<String> = expected.keys().cloned().collect();
    let records = wait_all_final(&client, &server.base, &ids).await;
    let mut mismatches = Vec::new();
    for (id, record) in &records {
        let file = &expected[id];
        let class = match record["status"].as_str().unwrap() {
            "DONE" => "ok".to_owned(),
            _ => format!("reject-{}", record["error"]["kind"].as_str().unwrap().replace('_', "-")),
        };
        let acceptable = file["acceptable"].as_array().unwrap().iter().any(|a| a == class.as_str());
        if class != file["expected"] && !acceptable {
            mismatches.push(format!("{}: {class}, expected {}", file["path"], file["expected"]));
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    let health = client.get(format!("{}/healthz", server.base)).send().await.unwrap();
    assert_eq!(health.status(), 200, "the server must stay up");
    let pending: Value =
        client.get(format!("{}/v1/images?status=PENDING", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(pending["images"].as_array().unwrap().len(), 0);

    // What the pipeline recorded agrees with the records: one count per final record, one
    // latency per stage of every DONE image (this server processed each image once).
    let text = client.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap();
    let done = records.values().filter(|r| r["status"] == "DONE").count() as f64;
    assert!(done > 0.0);
    assert_eq!(sample(&text, "imgpipe_uploads_accepted_total"), Some(ids.len() as f64), "{text}");
    assert_eq!(sample(&text, "imgpipe_images_done_total"), Some(done), "{text}");
    for kind in imgpipe_core::ErrorKind::ALL {
        let failed = records.values().filter(|r| r["error"]["kind"] == kind.as_str()).count() as f64;
        assert_eq!(sample(&text, &format!("imgpipe_images_failed_total{{kind=\"{}\"}}", kind.as_str())), Some(failed));
    }
    for stage in imgpipe_core::metrics::Stage::ALL {
        let stage = stage.as_str();
        let count = sample(&text, &format!("imgpipe_stage_duration_seconds_count{{stage=\"{stage}\"}}"));
        assert_eq!(count, Some(done), "{stage}:\n{text}");
        let sum = sample(&text, &format!("imgpipe_stage_duration_seconds_sum{{stage=\"{stage}\"}}")).unwrap();
        assert!(sum > 0.0, "{stage} took no time at all:\n{text}");
        let slowest = format!("imgpipe_stage_duration_seconds_bucket{{stage=\"{stage}\",le=\"+Inf\"}}");
        assert_eq!(sample(&text, &slowest), Some(done), "{stage}");
    }
    assert!(sample(&text, "imgpipe_processor_read_bytes_total").unwrap() > 0.0);
    assert!(sample(&text, "imgpipe_processor_written_bytes_total").unwrap() > 0.0);
    assert!(sample(&text, "imgpipe_executions_started_total").unwrap() >= 1.0);
}

/// The value of the Prometheus sample `series` (name and labels, exactly as rendered).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A small distinct JPEG per index (distinct bytes, distinct etags).
fn small_jpeg(n: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, (n % 256) as u8]));
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(image).write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

/// Every accepted id is final once, DONE ones have every rendition, and no file is orphaned.
async fn assert_consistent(data: &Path, accepted: &BTreeSet<String>) {
    let backend = LocalBackend::open(data).unwrap();
    let mut with_renditions = BTreeSet::new();
    for key in backend.objects.list("processed/").await.unwrap() {
        // processed/{spread}/{id}/{rendition}.{ext}
        with_renditions.insert(key.split('/').nth(2).unwrap().to_owned());
    }
    let originals = backend.objects.list("originals/").await.unwrap();
    for key in &originals {
        let id = ImageId::from_original_key(key).unwrap();
        assert!(backend.metadata.get(id).await.unwrap().is_some(), "orphan original {key}");
    }
    for id in accepted {
        let record = backend.metadata.get(id.parse().unwrap()).await.unwrap().unwrap();
        assert!(record.status.is_final(), "{id} is {:?}", record.status);
        if record.status == Status::Done {
            assert_eq!(record.renditions.len(), 3, "{id}");
            let placeholder = record.placeholder.as_ref().expect("a DONE record has a placeholder");
            assert!(placeholder.dominant_color.starts_with('#') && !placeholder.thumbhash.is_empty(), "{id}");
            for rendition in &record.renditions {
                backend.objects.head(&rendition.key).await.unwrap();
            }
        } else {
            assert!(!with_renditions.contains(id), "FAILED {id} has renditions");
        }
    }
    for id in &with_renditions {
        let record = backend.metadata.get(id.parse().unwrap()).await.unwrap().unwrap();
        assert_eq!(record.status, Status::Done, "renditions of a {:?} image {id}", record.status);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigkill_mid_run_loses_nothing_and_duplicates_change_nothing() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let client = client();
    let mut accepted = BTreeSet::new();
    for n in 0..300 {
        if let Some(id) = upload(&client, &server.base, small_jpeg(n)).await {
            accepted.insert(id);
        }
    }
    assert_eq!(accepted.len(), 300);
    server.kill();

    let server = Server::start(data.path(), &[]);
    let ids: Vec<String> = accepted.iter().cloned().collect();
    let before = wait_all_final(&client, &server.base, &ids).await;
    server.kill();
    assert_consistent(data.path(), &accepted).await;

    // Deliver every event twice more, out of order: nothing visible may change.
    {
        let backend = LocalBackend::open(data.path()).unwrap();
        for id in accepted.iter().rev() {
            let record = backend.metadata.get(id.parse().unwrap()).await.unwrap().unwrap();
            let object = ObjectRef {
                bucket: "local".into(),
                key: record.source.key,
                size: record.source.bytes,
                etag: record.source.etag,
            };
            let event = S3Notification::object_created(&object, "t").to_json();
            backend.queue.send(&event).await.unwrap();
            backend.queue.send(&event).await.unwrap();
        }
    }
    let server = Server::start(data.path(), &[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let metrics = client.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap();
        let gauge = |name: &str| {
            metrics.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        };
        if gauge("imgpipe_queue_visible") == Some(0.0) && gauge("imgpipe_queue_in_flight") == Some(0.0) {
            break;
        }
        assert!(Instant::now() < deadline, "the queue never drained");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = wait_all_final(&client, &server.base, &ids).await;
    assert_eq!(before, after, "a duplicate delivery changed a final record");
    server.kill();
    assert_consistent(data.path(), &accepted).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_original_stored_without_its_record_is_picked_up_at_the_next_start() {
    // What a crash between writing the file and committing the record leaves behind.
    let data = tempfile::tempdir().unwrap();
    let id = ImageId::generate();
    {
        let backend = LocalBackend::open(data.path()).unwrap();
        let meta = imgpipe_core::ports::ObjectMeta {
            content_type: "image/jpeg".into(),
            metadata: [("preset".to_owned(), "default".to_owned())].into(),
        };
        backend.objects.put(&id.original_key("jpg"), small_jpeg(7).into(), &meta).await.unwrap();
    }
    let server = Server::start(data.path(), &[]);
    let records = wait_all_final(&client(), &server.base, &[id.to_string()]).await;
    assert_eq!(records[&id.to_string()]["status"], "DONE");
    server.kill();
    assert_consistent(data.path(), &BTreeSet::from([id.to_string()])).await;
}

#[test]
fn a_public_bind_without_an_api_key_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_imgpipe"))
        .args(["serve", "--addr", "0.0.0.0:0", "--data", data.path().to_str().unwrap()])
        .env_remove("IMGPIPE_API_KEY")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("without an API key") && stderr.contains("--api-key"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_in_flight_work_and_leaves_the_rest_queued() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path(), &["--shutdown-seconds", "20"]);
    let client = client();
    let mut accepted = BTreeSet::new();
    for n in 0..40 {
        accepted.insert(upload(&client, &server.base, small_jpeg(1000 + n)).await.unwrap());
    }
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    // Whatever was not processed before the exit finishes after a restart.
    let server = Server::start(data.path(), &[]);
    let ids: Vec<String> = accepted.iter().cloned().collect();
    wait_all_final(&client, &server.base, &ids).await;
    server.kill();
    assert_consistent(data.path(), &accepted).await;
}
