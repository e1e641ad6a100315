//! The v1 API end to end: the real router on a loopback port over a fresh local backend.

use adapters::LocalBackend;
use imgpipe_core::OutputFormat;
use imgpipe_core::ports::{Begin, EventQueue, MetadataStore, ObjectMeta, ObjectStore, QueueStats};
use imgpipe_core::record::{MetadataRecord, RenditionRecord, now_ms};
use imgpipe_core::seams::{ImageId, Status};
use imgpipe_core::{PresetCatalog, preset::DEFAULT_PRESET};
use ingest::metrics::Exposition;
use ingest::{AppState, IngestConfig, LocalUploadUrls, router};
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;

const JPEG: &[u8] = b"\xFF\xD8\xFF\xE0 not really a jpeg, but it sniffs as one";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n not really a png either";
const SECRET: [u8; 32] = [42; 32];

/// A running API over its own data directory.
struct TestApp {
    base: String,
    client: reqwest::Client,
    backend: LocalBackend,
    urls: LocalUploadUrls,
    _dir: TempDir,
}

async fn spawn_app() -> TestApp {
    spawn_with(IngestConfig::default()).await
}

async fn spawn_with(config: IngestConfig) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::open(dir.path()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let urls = LocalUploadUrls::new(base.clone(), SECRET);
    let state = AppState::new(
        backend.objects.clone(),
        backend.metadata.clone(),
        Arc::new(urls.clone()),
        PresetCatalog::builtin(),
        config,
    )
    .with_queue(backend.queue.clone())
    .with_metrics(Exposition { recorder: Some(ingest::metrics::install()), record_counts: true });
    tokio::spawn(axum::serve(listener, router(state)).into_future());
    TestApp { base, client: reqwest::Client::new(), backend, urls, _dir: dir }
}

impl TestApp {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    async fn upload_raw(&self, path: &str, bytes: &'static [u8], content_type: &str) -> reqwest::Response {
        self.client.post(self.url(path)).header("content-type", content_type).body(bytes).send().await.unwrap()
    }

    /// Uploads `bytes` raw and returns the new id.
    async fn upload_one(&self, bytes: &'static [u8]) -> ImageId {
        let response = self.upload_raw("/v1/images", bytes, "image/jpeg").await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: Value = response.json().await.unwrap();
        body["images"][0]["id"].as_str().unwrap().parse().unwrap()
    }

    async fn record(&self, id: ImageId) -> MetadataRecord {
        self.backend.metadata.get(id).await.unwrap().unwrap()
    }

    async fn queue(&self) -> QueueStats {
        self.backend.queue.stats().await.unwrap()
    }

    async fn originals(&self) -> Vec<String> {
        self.backend.objects.list("originals/").await.unwrap()
    }

    async fn presign(&self, files: Value) -> reqwest::Response {
        self.client.post(self.url("/v1/uploads")).json(&json!({"files": files})).send().await.unwrap()
    }
}

/// Asserts the response is a JSON error with `status` and `code`.
async fn assert_error(response: reqwest::Response, status: StatusCode, code: &str) {
    assert_eq!(response.status(), status, "expected {code}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

#[tokio::test]
async fn healthz_is_ok() {
    let app = spawn_app().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"status": "ok"}));
}

#[tokio::test]
async fn a_raw_upload_is_stored_recorded_pending_and_queued() {
    let app = spawn_app().await;
    // What `curl --data-binary` declares: the record keeps what the bytes are instead.
    let response = app.upload_raw("/v1/images?preset=default", JPEG, "application/x-www-form-urlencoded").await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.unwrap();
    let images = body["images"].as_array().unwrap();
    assert_eq!(images.len(), 1);
    let id: ImageId = images[0]["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(images[0]["status"], "PENDING");
    assert_eq!(images[0]["url"], format!("/v1/images/{id}"));

    let record = app.record(id).await;
    assert_eq!(record.status, Status::Pending);
    assert_eq!(record.preset, DEFAULT_PRESET);
    assert_eq!(record.source.key, id.original_key("jpg"));
    assert_eq!(record.source.bytes, JPEG.len() as u64);
    assert_eq!(record.source.content_type, "image/jpeg");
    let (bytes, info) = app.backend.objects.get(&record.source.key).await.unwrap();
    assert_eq!(&bytes[..], JPEG);
    assert_eq!(info.etag, record.source.etag);
    // The default preset goes without saying; another one travels with the original.
    assert_eq!(info.meta.metadata.get("preset"), None);
    assert_eq!(info.meta.content_type, "image/jpeg");
    assert_eq!(app.queue().await.visible, 1);

    let message = &app.backend.queue.receive(10, Duration::from_secs(30)).await.unwrap()[0];
    let event: Value = serde_json::from_str(&message.body).unwrap();
    assert_eq!(event["Records"][0]["eventName"], "ObjectCreated:Put");
    assert_eq!(event["Records"][0]["s3"]["bucket"]["name"], "local");
    assert_eq!(event["Records"][0]["s3"]["object"]["size"], JPEG.len());
}

#[tokio::test]
async fn a_multipart_upload_of_three_files_makes_three_records_and_messages() {
    let app = spawn_app().await;
    let unknown: &[u8] = b"plain text is accepted, and will fail as unsupported";
    let form = Form::new()
        .part("file", Part::bytes(JPEG).file_name("a.jpg").mime_str("image/jpeg").unwrap())
        .part("file", Part::bytes(PNG).file_name("b.png").mime_str("image/jpeg").unwrap())
        .text("preset", "default")
        .part("file", Part::bytes(unknown).file_name("c.txt").mime_str("text/plain").unwrap());
    let response = app.client.post(app.url("/v1/images")).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.unwrap();
    let images = body["images"].as_array().unwrap();
    assert_eq!(images.len(), 3);

    // Content types sniffed from the bytes, whatever each part declared.
    let expected =
        [(JPEG, "jpg", "image/jpeg"), (PNG, "png", "image/png"), (unknown, "bin", "application/octet-stream")];
    for (image, (bytes, extension, content_type)) in images.iter().zip(expected) {
        assert_eq!(image["status"], "PENDING");
        let id: ImageId = image["id"].as_str().unwrap().parse().unwrap();
        let record = app.record(id).await;
        assert_eq!(record.status, Status::Pending);
        assert_eq!(record.source.key, id.original_key(extension));
        assert_eq!(record.source.content_type, content_type);
        assert_eq!(&app.backend.objects.get(&record.source.key).await.unwrap().0[..], bytes);
    }
    let names: Vec<_> = filenames(&app, images).await;
    assert_eq!(names, ["a.jpg", "b.png", "c.txt"], "each part's filename, as text");
    assert_eq!(app.queue().await.visible, 3);
}

async fn filenames(app: &TestApp, images: &[Value]) -> Vec<String> {
    let mut names = Vec::new();
    for image in images {
        let record = app.record(image["id"].as_str().unwrap().parse().unwrap()).await;
        names.push(record.filename.unwrap_or_default());
    }
    names
}

#[tokio::test]
async fn uploads_past_the_limit_are_refused_and_store_nothing() {
    let app = spawn_with(IngestConfig { max_upload_bytes: 1024, ..IngestConfig::default() }).await;
    static BIG: [u8; 2000] = [0xFF; 2000];

    // Declared length over the limit.
    assert_error(
        app.upload_raw("/v1/images", &BIG, "image/jpeg").await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    // No declared length: refused while streaming.
    let chunks = (0..4).map(|_| Ok::<_, std::io::Error>(vec![0xFFu8; 500]));
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let response = app.client.post(app.url("/v1/images")).body(body).send().await.unwrap();
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    // Multipart: the files together are held to the limit, and none is stored.
    let form = Form::new()
        .part("file", Part::bytes(&BIG[..700]).file_name("a.jpg"))
        .part("file", Part::bytes(&BIG[..700]).file_name("b.jpg"));
    let response = app.client.post(app.url("/v1/images")).multipart(form).send().await.unwrap();
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;

    assert!(app.originals().await.is_empty());
    assert_eq!(app.queue().await, QueueStats::default());
    // Exactly the limit is fine.
    assert_eq!(app.upload_raw("/v1/images", &BIG[..1024], "image/jpeg").await.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn unknown_presets_and_empty_uploads_are_refused() {
    let app = spawn_app().await;
    assert_error(
        app.upload_raw("/v1/images?preset=nope", JPEG, "image/jpeg").await,
        StatusCode::BAD_REQUEST,
        "unknown_preset",
    )
    .await;
    let form = Form::new().text("preset", "nope").part("file", Part::bytes(JPEG).file_name("a.jpg"));
    let response = app.client.post(app.url("/v1/images")).multipart(form).send().await.unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "unknown_preset").await;

    assert_error(app.upload_raw("/v1/images", b"", "image/jpeg").await, StatusCode::BAD_REQUEST, "empty_upload").await;
    let form = Form::new().text("preset", "default");
    let response = app.client.post(app.url("/v1/images")).multipart(form).send().await.unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "empty_upload").await;
    let form = Form::new().part("file", Part::bytes(&b""[..]).file_name("empty.jpg"));
    let response = app.client.post(app.url("/v1/images")).multipart(form).send().await.unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "empty_upload").await;

    assert!(app.originals().await.is_empty());
    assert_eq!(app.queue().await.visible, 0);
}

#[tokio::test]
async fn records_are_read_by_id_and_listed_in_pages() {
    let app = spawn_app().await;
    let mut ids = BTreeSet::new();
    for _ in 0..5 {
        ids.insert(app.upload_one(JPEG).await);
    }
    let id = *ids.first().unwrap();
    let response = app.get(&format!("/v1/images/{id}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let record: MetadataRecord = response.json().await.unwrap();
    assert_eq!((record.id, record.status), (id, Status::Pending));

    let (mut seen, mut cursor) = (BTreeSet::new(), None::<String>);
    loop {
        let query = cursor.as_ref().map_or(String::new(), |c| format!("&cursor={c}"));
        let page: Value = app.get(&format!("/v1/images?limit=2{query}")).await.json().await.unwrap();
        let records = page["images"].as_array().unwrap();
        assert!(records.len() <= 2);
        for record in records {
            assert!(seen.insert(record["id"].as_str().unwrap().parse::<ImageId>().unwrap()));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    let pending: Value = app.get("/v1/images?status=PENDING").await.json().await.unwrap();
    assert_eq!(pending["images"].as_array().unwrap().len(), 5);
    assert_eq!(pending["next_cursor"], Value::Null);
    let done: Value = app.get("/v1/images?status=DONE").await.json().await.unwrap();
    assert_eq!(done["images"], json!([]));

    assert_error(app.get("/v1/images?status=bogus").await, StatusCode::BAD_REQUEST, "invalid_query").await;
    // An empty status is not "any status": the OpenAPI document says the value is an enum.
    assert_error(app.get("/v1/images?status=").await, StatusCode::BAD_REQUEST, "invalid_query").await;
    assert_error(app.get("/v1/images?limit=0").await, StatusCode::BAD_REQUEST, "invalid_query").await;
    assert_error(app.get("/v1/images?limit=1001").await, StatusCode::BAD_REQUEST, "invalid_query").await;
    assert_error(app.get("/v1/images?limit=ten").await, StatusCode::BAD_REQUEST, "invalid_query").await;
    assert_error(app.get("/v1/images?cursor=forged").await, StatusCode::BAD_REQUEST, "invalid_query").await;
}

#[tokio::test]
async fn invalid_and_unknown_ids_are_told_apart() {
    let app = spawn_app().await;
    assert_error(app.get("/v1/images/not-an-id").await, StatusCode::BAD_REQUEST, "invalid_id").await;
    let unknown = ImageId::generate();
    assert_error(app.get(&format!("/v1/images/{unknown}")).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(app.get(&format!("/v1/images/{unknown}/renditions/thumb")).await, StatusCode::NOT_FOUND, "not_found")
        .await;
    assert_error(app.get("/v1/images/nope/renditions/thumb").await, StatusCode::BAD_REQUEST, "invalid_id").await;
}

#[tokio::test]
async fn renditions_are_not_ready_while_pending_and_served_once_done() {
    let app = spawn_app().await;
    let id = app.upload_one(JPEG).await;
    let path = format!("/v1/images/{id}/renditions/thumb");
    assert_error(app.get(&path).await, StatusCode::CONFLICT, "not_ready").await;

    // What the processor does: begin, store the rendition, finish DONE.
    let Begin::Started(mut record) = app.backend.metadata.begin(id, now_ms()).await.unwrap() else {
        panic!("the record should start")
    };
    let thumb: &[u8] = b"RIFF....WEBPVP8 thumb bytes";
    let key = id.rendition_key("thumb", OutputFormat::Webp);
    let meta = ObjectMeta { content_type: "image/webp".into(), ..ObjectMeta::default() };
    app.backend.objects.put(&key, bytes::Bytes::from_static(thumb), &meta).await.unwrap();
    record.status = Status::Done;
    record.finished_ms = Some(now_ms());
    record.renditions = vec![RenditionRecord {
        name: "thumb".into(),
        key,
        format: OutputFormat::Webp,
        width: 10,
        height: 8,
        bytes: thumb.len() as u64,
    }];
    app.backend.metadata.finish(&[record]).await.unwrap();

    let response = app.get(&path).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "image/webp");
    assert_eq!(&response.bytes().await.unwrap()[..], thumb);
    assert_error(app.get(&format!("/v1/images/{id}/renditions/huge")).await, StatusCode::NOT_FOUND, "not_found").await;
}

/// Presigns one file and returns (id, url, content type header).
async fn presign_one(app: &TestApp, bytes: usize, content_type: &str) -> (ImageId, String) {
    let response = app.presign(json!([{"filename": "a.png", "content_type": content_type, "bytes": bytes}])).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let upload = &body["uploads"][0];
    assert_eq!(upload["method"], "PUT");
    assert_eq!(upload["filename"], "a.png");
    // Locally nothing but the type is signed into the URL (a second PUT is refused by the slot).
    assert_eq!(upload["headers"], json!({"content-type": content_type}));
    assert!(upload["expires_at"].as_u64().unwrap() > now_ms() / 1000);
    (upload["id"].as_str().unwrap().parse().unwrap(), upload["url"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_presigned_upload_becomes_pending_once_put() {
    let app = spawn_app().await;
    let (id, url) = presign_one(&app, PNG.len(), "image/png").await;
    let slot = app.record(id).await;
    assert_eq!(slot.status, Status::AwaitingUpload);
    assert!(slot.expires_at.is_some());
    assert_eq!(app.queue().await.visible, 0);

    let response = app.client.put(&url).header("content-type", "image/png").body(PNG).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"id": id.to_string(), "status": "PENDING"}));
    let record = app.record(id).await;
    assert_eq!(record.status, Status::Pending);
    assert_eq!(record.expires_at, None);
    assert_eq!(record.source.key, id.original_key("png"));
    assert_eq!(&app.backend.objects.get(&record.source.key).await.unwrap().0[..], PNG);
    assert_eq!(app.queue().await.visible, 1);

    let again = app.client.put(&url).header("content-type", "image/png").body(PNG).send().await.unwrap();
    assert_error(again, StatusCode::CONFLICT, "already_uploaded").await;
    assert_eq!(app.queue().await.visible, 1);
}

#[tokio::test]
async fn a_presigned_upload_records_what_its_bytes_are() {
    let app = spawn_app().await;
    // Declared (and signed) as JPEG, but the bytes are a PNG: the record says PNG.
    let (id, url) = presign_one(&app, PNG.len(), "image/jpeg").await;
    let response = app.client.put(&url).header("content-type", "image/jpeg").body(PNG).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let record = app.record(id).await;
    assert_eq!((record.status, record.source.content_type.as_str()), (Status::Pending, "image/png"));
}

#[tokio::test]
async fn signed_uploads_are_bound_to_signature_expiry_size_and_type() {
    let app = spawn_app().await;
    let (id, url) = presign_one(&app, PNG.len(), "image/png").await;
    let put = |url: String, content_type: &'static str, body: &'static [u8]| {
        app.client.put(url).header("content-type", content_type).body(body).send()
    };

    let last = url.chars().last().unwrap();
    let tampered = format!("{}{}", &url[..url.len() - 1], if last == '0' { '1' } else { '0' });
    assert_error(put(tampered, "image/png", PNG).await.unwrap(), StatusCode::FORBIDDEN, "bad_signature").await;
    let bigger = url.replace(&format!("size={}", PNG.len()), &format!("size={}", PNG.len() + 1));
    assert_error(put(bigger, "image/png", PNG).await.unwrap(), StatusCode::FORBIDDEN, "bad_signature").await;
    let unsigned = url.split_once('?').unwrap().0.to_owned();
    assert_error(put(unsigned, "image/png", PNG).await.unwrap(), StatusCode::FORBIDDEN, "bad_signature").await;

    let key = app.record(id).await.source.key;
    let expired = app.urls.upload_url(id, &key, PNG.len() as u64, "image/png", now_ms() / 1000 - 1);
    assert_error(put(expired, "image/png", PNG).await.unwrap(), StatusCode::FORBIDDEN, "url_expired").await;

    assert_error(put(url.clone(), "image/png", JPEG).await.unwrap(), StatusCode::BAD_REQUEST, "size_mismatch").await;
    let short = &PNG[..PNG.len() - 1];
    assert_error(put(url.clone(), "image/png", short).await.unwrap(), StatusCode::BAD_REQUEST, "size_mismatch").await;
    assert_error(put(url.clone(), "image/jpeg", PNG).await.unwrap(), StatusCode::BAD_REQUEST, "content_type_mismatch")
        .await;

    // None of it stored or queued anything; the genuine upload still works.
    assert!(app.originals().await.is_empty());
    assert_eq!(app.record(id).await.status, Status::AwaitingUpload);
    assert_eq!(put(url, "image/png", PNG).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn bulk_requests_are_checked_before_anything_is_reserved() {
    let app = spawn_with(IngestConfig { max_bulk_files: 2, max_upload_bytes: 100, ..IngestConfig::default() }).await;
    let file = json!({"filename": "a.jpg", "content_type": "image/jpeg", "bytes": 10});
    let response = app.presign(json!([file, file, file])).await;
    assert_error(response, StatusCode::BAD_REQUEST, "too_many_files").await;
    let response = app.presign(json!([file, {"filename": "b.jpg", "content_type": "image/jpeg", "bytes": 101}])).await;
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert_error(app.presign(json!([])).await, StatusCode::BAD_REQUEST, "empty_upload").await;
    let response =
        app.client.post(app.url("/v1/uploads")).json(&json!({"preset": "nope", "files": [file]})).send().await.unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "unknown_preset").await;
    let response = app.client.post(app.url("/v1/uploads")).body("{not json").send().await.unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_body").await;
    // Only the image types this deployment takes, and the error names the field.
    for refused in ["application/x-www-form-urlencoded", "image/tiff", "image/svg+xml"] {
        let other = json!({"filename": "b", "content_type": refused, "bytes": 10});
        let response = app.presign(json!([file, other])).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "unsupported_content_type", "{body}");
        assert!(body["message"].as_str().unwrap().starts_with("files[1].content_type: "), "{body}");
    }
    let response = app.presign(json!([{"filename": "b", "content_type": "", "bytes": 10}])).await;
    let body: Value = response.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("files[0].content_type"), "{body}");

    let listed: Value = app.get("/v1/images").await.json().await.unwrap();
    assert_eq!(listed["images"], json!([]));
    let response = app.presign(json!([file, file])).await;
    assert_eq!(response.status(), StatusCode::OK);
    let ids: BTreeSet<_> = response.json::<Value>().await.unwrap()["uploads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);
}

#[tokio::test]
async fn the_api_key_guards_every_route_but_health_and_signed_uploads() {
    let app = spawn_with(IngestConfig { api_key: Some("s3cret".into()), ..IngestConfig::default() }).await;
    let id = ImageId::generate();
    let protected = [
        ("GET", "/v1/images".to_owned()),
        ("POST", "/v1/images".to_owned()),
        ("GET", format!("/v1/images/{id}")),
        ("GET", format!("/v1/images/{id}/renditions/thumb")),
        ("POST", "/v1/uploads".to_owned()),
        ("GET", "/metrics".to_owned()),
        ("GET", "/v1/queue".to_owned()),
        ("GET", "/v1/openapi.json".to_owned()),
        ("GET", "/v1/presets".to_owned()),
    ];
    for (method, path) in &protected {
        let method: reqwest::Method = method.parse().unwrap();
        let bare = app.client.request(method.clone(), app.url(path)).send().await.unwrap();
        assert_error(bare, StatusCode::UNAUTHORIZED, "unauthorized").await;
        let wrong = app.client.request(method.clone(), app.url(path)).bearer_auth("guess").send().await.unwrap();
        assert_error(wrong, StatusCode::UNAUTHORIZED, "unauthorized").await;
        let wrong = app.client.request(method, app.url(path)).header("x-api-key", "s3cre").send().await.unwrap();
        assert_error(wrong, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    let bearer = app.client.get(app.url("/v1/images")).bearer_auth("s3cret").send().await.unwrap();
    assert_eq!(bearer.status(), StatusCode::OK);
    let header = app.client.get(app.url("/v1/images")).header("x-api-key", "s3cret").send().await.unwrap();
    assert_eq!(header.status(), StatusCode::OK);
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    // The console's files are open: the page asks for the key itself.
    for path in ["/", "/console/app.js", "/console/app.css", "/console/icon.svg"] {
        assert_eq!(app.get(path).await.status(), StatusCode::OK, "{path}");
    }

    // The presigned URL needs no key: the signature is the credential.
    let response = app
        .client
        .post(app.url("/v1/uploads"))
        .header("x-api-key", "s3cret")
        .json(&json!({"files": [{"filename": "a.png", "content_type": "image/png", "bytes": PNG.len()}]}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    let url = body["uploads"][0]["url"].as_str().unwrap();
    let put = app.client.put(url).header("content-type", "image/png").body(PNG).send().await.unwrap();
    assert_eq!(put.status(), StatusCode::OK);
}

#[tokio::test]
async fn metrics_expose_queue_and_record_gauges_and_the_uploads_counted() {
    // nextest runs each test in its own process: the global recorder counts this test's only.
    let app = spawn_app().await;
    app.upload_one(JPEG).await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = response.text().await.unwrap();
    let bytes = format!("imgpipe_upload_bytes_total {}", JPEG.len());
    for line in [
        "imgpipe_queue_visible 1",
        "imgpipe_queue_in_flight 0",
        "imgpipe_dead_letters 0",
        "imgpipe_images{status=\"PENDING\"} 1",
        "imgpipe_images{status=\"DONE\"} 0",
        "imgpipe_failed_images{kind=\"unsupported\"} 0",
        "imgpipe_uploads_accepted_total 1",
        &bytes,
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    // A process that only serves the API shows no latencies it can never measure.
    assert!(!text.contains("imgpipe_stage_duration_seconds"), "{text}");
    let queue: Value = app.get("/v1/queue").await.json().await.unwrap();
    assert_eq!(queue, json!({"visible": 1, "in_flight": 0, "dead_letters": 0}));
}

#[tokio::test]
async fn the_openapi_document_describes_exactly_the_served_routes() {
    let app = spawn_app().await;
    let response = app.get("/v1/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    let doc: Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(doc["components"]["schemas"]["Error"]["required"], json!(["code", "message"]));
    assert_eq!(doc, serde_json::to_value(ingest::document()).unwrap(), "served as built");

    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |m| (m.to_uppercase(), path.clone())))
        .collect();
    let api: BTreeSet<(String, String)> = [
        ("POST", "/v1/images"),
        ("GET", "/v1/images"),
        ("GET", "/v1/images/{id}"),
        ("GET", "/v1/images/{id}/renditions/{name}"),
        ("POST", "/v1/uploads"),
        ("PUT", "/v1/uploads/{id}"),
        ("GET", "/healthz"),
        ("GET", "/v1/queue"),
        ("GET", "/metrics"),
        ("GET", "/v1/openapi.json"),
        ("GET", "/v1/presets"),
    ]
    .into_iter()
    .map(|(method, path)| (method.to_owned(), path.to_owned()))
    .collect();
    assert_eq!(documented, api);

    // Every documented (method, path) is routed: whatever the handler answers, it is not the
    // router's "no route" nor "method not allowed".
    let id = ImageId::generate().to_string();
    for (method, path) in &documented {
        let concrete = path.replace("{id}", &id).replace("{name}", "thumb");
        let response = app.client.request(method.parse().unwrap(), app.url(&concrete)).body("x").send().await.unwrap();
        assert_ne!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        if response.headers().get("content-type").is_some_and(|v| v == "application/json") {
            let body: Value = response.json().await.unwrap();
            assert_ne!(body["code"], "no_route", "{method} {path}");
        }
    }
    // And what is not documented is not routed.
    assert_error(app.get("/v1/nothing").await, StatusCode::NOT_FOUND, "no_route").await;
    let delete = app.client.delete(app.url("/v1/images")).send().await.unwrap();
    assert_error(delete, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    let post = app.client.post(app.url("/healthz")).send().await.unwrap();
    assert_error(post, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
}

#[tokio::test]
async fn the_document_says_which_operations_need_the_key_as_the_router_enforces_it() {
    let app = spawn_with(IngestConfig { api_key: Some("s3cret".into()), ..IngestConfig::default() }).await;
    let doc = serde_json::to_value(ingest::document()).unwrap();
    let id = ImageId::generate().to_string();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let keyed = !operation["security"].as_array().unwrap().is_empty();
            assert_eq!(keyed, operation["responses"].get("401").is_some(), "{method} {path}");
            let concrete = path.replace("{id}", &id).replace("{name}", "thumb");
            let method: reqwest::Method = method.to_uppercase().parse().unwrap();
            let response = app.client.request(method.clone(), app.url(&concrete)).send().await.unwrap();
            assert_eq!(response.status() == StatusCode::UNAUTHORIZED, keyed, "{method} {path}");
        }
    }
}

#[tokio::test]
async fn presets_list_what_an_upload_may_name() {
    let app = spawn_app().await;
    let body: Value = app.get("/v1/presets").await.json().await.unwrap();
    assert_eq!(body["default"], DEFAULT_PRESET);
    let default = &body["presets"][0];
    assert_eq!(default["name"], "default");
    let renditions = default["renditions"].as_array().unwrap();
    let summary: Vec<_> = renditions
        .iter()
        .map(|r| (r["name"].clone(), r["format"].clone(), r["fit"].clone(), r["width"].clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (json!("thumb"), json!("webp"), json!("cover"), json!(256)),
            (json!("medium"), json!("jpeg"), json!("inside"), json!(1024)),
            (json!("large"), json!("jpeg"), json!("inside"), json!(2048)),
        ]
    );
    assert_eq!(renditions[1]["height"], Value::Null, "an unbounded side is null");
    assert_eq!(renditions[1]["watermark"], true);
}

#[tokio::test]
async fn the_console_is_served_with_a_strict_policy_and_api_answers_are_not_sniffed() {
    let app = spawn_app().await;
    let page = app.get("/").await;
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let policy = headers["content-security-policy"].to_str().unwrap();
    for directive in ["default-src 'none'", "script-src 'self';", "frame-ancestors 'none'", "base-uri 'none'"] {
        assert!(policy.contains(directive), "{directive} missing from {policy}");
    }
    assert!(!policy.contains("unsafe"), "{policy}");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(page.text().await.unwrap().contains(r#"<script type="module" src="/console/app.js">"#));
    let script = app.get("/console/app.js").await;
    assert_eq!(script.headers()["content-type"], "text/javascript; charset=utf-8");
    // Every answer, the API's too, says `nosniff`.
    for path in ["/", "/console/app.js", "/healthz", "/v1/images", "/v1/nothing"] {
        assert_eq!(app.get(path).await.headers()["x-content-type-options"], "nosniff", "{path}");
    }
}

#[tokio::test]
async fn a_presigned_upload_keeps_its_filename_as_given() {
    let app = spawn_app().await;
    let hostile = "<img src=x onerror=alert(1)>.png";
    let response = app.presign(json!([{"filename": hostile, "content_type": "image/png", "bytes": PNG.len()}])).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["uploads"][0]["filename"], hostile);
    let id: ImageId = body["uploads"][0]["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(app.record(id).await.filename.as_deref(), Some(hostile));
    let record: Value = app.get(&format!("/v1/images/{id}")).await.json().await.unwrap();
    assert_eq!(record["filename"], hostile, "served as JSON text, the client decides how to show it");
    let long = "x".repeat(513);
    let response = app.presign(json!([{"filename": long, "content_type": "image/png", "bytes": 1}])).await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_body").await;
}
